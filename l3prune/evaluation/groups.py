"""Splitting a tasks file's tasks into N groups that separate jobs evaluate in parallel.

The split is a function of the task list and N only, so every job of a split evaluation computes
the same one. Tasks are balanced by size (greedy, largest first, each to the lightest group):
an MTEB task's size is the number of samples of its evaluation splits from mteb's own metadata
(an aggregate task, CQADupstackRetrieval, sums its parts); a local task's is the line count of
its files. Sizes only balance the groups; they do not change any result.
"""

from __future__ import annotations


def task_size(task) -> int:
    parts = list(getattr(task.metadata, "tasks", []) or [])
    if parts:
        return sum(task_size(part) for part in parts)
    spec = getattr(task, "spec", None)  # a local task (local_tasks.py) has its files
    if spec is not None:
        return sum(sum(1 for _ in open(path, "rb")) for path in spec.files.values())
    stats = task.metadata.descriptive_stats or {}
    return sum((stats.get(split) or {}).get("num_samples") or 0 for split in task.metadata.eval_splits)


def split_tasks(tasks: list, count: int) -> list[list]:
    """`count` groups of `tasks` (some empty when there are fewer tasks), each in the tasks' order."""
    if count < 1:
        raise ValueError(f"task group count must be at least 1, got {count}")
    sizes = {task.metadata.name: task_size(task) for task in tasks}
    loads = [[0, 0] for _ in range(count)]  # per group: total size, number of tasks
    group_of = {}
    for name in sorted(sizes, key=lambda name: (-sizes[name], name)):
        # the lightest group; among equal ones the one with fewer tasks, then the first
        chosen = min(range(count), key=lambda g: (loads[g][0], loads[g][1], g))
        loads[chosen][0] += sizes[name]
        loads[chosen][1] += 1
        group_of[name] = chosen
    return [[task for task in tasks if group_of[task.metadata.name] == g] for g in range(count)]


def task_group(tasks: list, index: int, count: int) -> list:
    """The tasks of group `index` (1 to `count`)."""
    if not 1 <= index <= count:
        raise ValueError(f"task group {index} of {count}: choose a group from 1 to {count}")
    return split_tasks(tasks, count)[index - 1]
