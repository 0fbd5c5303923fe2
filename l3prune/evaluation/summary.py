"""mteb.json: a variant's evaluation summary, and its assembly from the parts of a split evaluation.

A part (`l3prune evaluate --task-group K --task-groups N`) is a summary of its group's tasks plus
`task_group: {index, count, tasks, all_tasks}`. merge_parts() checks that the parts are the N
groups of one evaluation (same model, revision and settings) and writes the summary the
unsplit evaluation would have written; only the timings, and texts_encoded where two groups
encode the same input, can differ.
"""

from __future__ import annotations

from pathlib import Path
from statistics import mean

from ..files import read_json

# the fields of a summary besides the tasks and their totals: all parts must agree on them
IDENTITY = ("model", "revision", "source", "base_model", "num_layers", "num_parameters", "embedding_dim")
SETTINGS = ("cache", "batch_size", "max_length", "mteb_version", "mteb_results")
TOTALS = ("encode_seconds", "texts_requested", "texts_encoded", "texts_loaded")


def build_summary(fields: dict, tasks: dict) -> dict:
    """The summary of `tasks` (task name -> its entry) with the IDENTITY and SETTINGS `fields`.
    `average` is the mean main score (None for an empty task group)."""
    return {
        **{key: fields[key] for key in IDENTITY},
        "average": mean(task["main_score"] for task in tasks.values()) if tasks else None,
        **{key: sum(task[key] for task in tasks.values()) for key in TOTALS},
        **{key: fields[key] for key in SETTINGS},
        "tasks": tasks,
    }


def _read_part(path: Path) -> dict:
    part = read_json(path)
    if "task_group" not in part:
        raise ValueError(
            f"{path} is not a part of a split evaluation (no task_group): "
            "write the parts with l3prune evaluate --task-group K --task-groups N"
        )
    return part


def merge_parts(paths: list[str | Path]) -> dict:
    """The summary of the evaluation whose N parts are `paths` (in any order)."""
    paths = [Path(path) for path in paths]
    parts = {path: _read_part(path) for path in paths}
    first, reference = paths[0], parts[paths[0]]
    group = reference["task_group"]
    for path, part in parts.items():
        for key in (*IDENTITY, *SETTINGS):
            if part[key] != reference[key]:
                raise ValueError(
                    f"{path} and {first} are parts of different evaluations: "
                    f"{key} {part[key]!r} against {reference[key]!r}"
                )
        for key in ("count", "all_tasks"):
            if part["task_group"][key] != group[key]:
                raise ValueError(
                    f"{path} and {first} split different task lists: task_group.{key} differs"
                )
    indices = sorted(part["task_group"]["index"] for part in parts.values())
    if indices != list(range(1, group["count"] + 1)):
        missing = sorted(set(range(1, group["count"] + 1)) - set(indices))
        repeated = sorted({i for i in indices if indices.count(i) > 1})
        raise ValueError(
            f"the parts must be groups 1 to {group['count']}, each once: "
            + "; ".join(
                filter(None, [missing and f"missing {missing}", repeated and f"given twice {repeated}"])
            )
        )
    tasks = {name: task for part in parts.values() for name, task in part["tasks"].items()}
    absent = [name for name in group["all_tasks"] if name not in tasks]
    if absent:
        raise ValueError(f"the parts lack task(s) {', '.join(absent)}")
    return build_summary(reference, {name: tasks[name] for name in group["all_tasks"]})
