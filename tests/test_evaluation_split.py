"""Split evaluation: groups of tasks evaluated apart, merged into the mteb.json of an unsplit run;
the workflow's jobs for it."""

import json
from types import SimpleNamespace

import pytest

from l3prune import LLMEncoder
from l3prune.cli import main
from l3prune.evaluation.groups import split_tasks, task_group

WORDS = "the model layer text query document passage retrieve question answer encoder prune small large loss".split()
TIMINGS = ("encode_seconds", "evaluation_seconds")


def sentence(i: int) -> str:
    return " ".join(WORDS[(i * 5 + j) % len(WORDS)] for j in range(3 + i % 4)) + f" {i}"


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def fake_task(name, samples=None, parts=()):
    stats = {"test": {"num_samples": samples}} if samples is not None else None
    return SimpleNamespace(
        metadata=SimpleNamespace(name=name, tasks=list(parts), descriptive_stats=stats, eval_splits=["test"])
    )


def names(groups):
    return [[task.metadata.name for task in group] for group in groups]


def test_groups_are_balanced_by_size_largest_first():
    tasks = [fake_task(name, size) for name, size in [("A", 40), ("B", 100), ("C", 10), ("D", 60), ("E", 50)]]
    # by hand: B=100 -> 1; D=60 -> 2; E=50 -> 2 (110); A=40 -> 1 (140); C=10 -> 2 (120)
    assert names(split_tasks(tasks, 2)) == [["A", "B"], ["C", "D", "E"]]
    assert names([task_group(tasks, 2, 2)]) == [["C", "D", "E"]]
    # an aggregate task weighs as its parts together
    aggregate = fake_task("Agg", parts=[fake_task("a1", 70), fake_task("a2", 70)])
    assert names(split_tasks([aggregate, *tasks[:2]], 2)) == [["Agg"], ["A", "B"]]


def test_tasks_of_equal_size_go_round_robin_and_surplus_groups_are_empty():
    tasks = [fake_task(name, 5) for name in "DCBA"]
    assert names(split_tasks(tasks, 2)) == [["C", "A"], ["D", "B"]]  # sorted names: A 1, B 2, C 1, D 2
    assert names(split_tasks(tasks[:1], 3)) == [["D"], [], []]


def test_every_benchmark_task_is_in_exactly_one_group():
    import mteb

    tasks = list(mteb.get_benchmark("MTEB(eng, v1)").tasks)
    groups = names(split_tasks(tasks, 5))
    assert sorted(name for group in groups for name in group) == sorted(task.metadata.name for task in tasks)
    assert names(split_tasks(tasks, 5)) == groups  # the same split in every job


@pytest.fixture(scope="module")
def split_setup(tiny_model_dir, tmp_path_factory):
    """A saved variant and a tasks file of five local tasks of four types, no text shared between tasks."""
    root = tmp_path_factory.mktemp("split")
    variant = root / "variant"
    LLMEncoder.from_pretrained(tiny_model_dir("llama")).save(variant)
    n = iter(range(1000))
    sts = [
        write_jsonl(
            root / f"sts{k}.jsonl",
            [{"sentence1": sentence(next(n)), "sentence2": sentence(next(n)), "score": float(i % 3)} for i in range(5 + k)],
        )
        for k in range(2)
    ]
    cls = [{"text": sentence(next(n)), "label": i % 2, "split": "train" if i < 12 else "test"} for i in range(18)]
    clu = [{"text": sentence(next(n)), "label": i % 3} for i in range(12)]
    pair = [{"sentence1": sentence(next(n)), "sentence2": sentence(next(n)), "label": i % 2} for i in range(8)]
    tasks = root / "tasks.yaml"
    tasks.write_text(
        "local_tasks:\n"
        f"  - {{name: S1, type: STS, path: {sts[0]}}}\n"
        f"  - {{name: S2, type: STS, path: {sts[1]}}}\n"
        f"  - {{name: C, type: Classification, path: {write_jsonl(root / 'c.jsonl', cls)}}}\n"
        f"  - {{name: K, type: Clustering, path: {write_jsonl(root / 'k.jsonl', clu)}}}\n"
        f"  - {{name: P, type: PairClassification, path: {write_jsonl(root / 'p.jsonl', pair)}}}\n"
        "batch_size: 4\n"
    )
    return variant, tasks


def evaluate_cli(variant, tasks, out, *extra):
    assert main(["evaluate", str(variant), "--tasks", str(tasks), "--out", str(out), "--name", "l3prune/t-v", *extra]) == 0
    return json.loads(out.read_text())


def without_timings(summary):
    summary = {key: value for key, value in summary.items() if key not in TIMINGS}
    summary["tasks"] = {
        name: {key: value for key, value in task.items() if key not in TIMINGS}
        for name, task in summary["tasks"].items()
    }
    return summary


def test_split_evaluation_merges_into_the_unsplit_summary(split_setup, tmp_path):
    variant, tasks = split_setup
    whole = evaluate_cli(variant, tasks, tmp_path / "whole" / "mteb.json")
    out = tmp_path / "split"
    parts = [out / f"mteb.part-{k}-of-3.json" for k in (1, 2, 3)]
    written = [evaluate_cli(variant, tasks, part, "--task-group", str(k), "--task-groups", "3") for k, part in enumerate(parts, 1)]
    groups = [part["task_group"]["tasks"] for part in written]
    assert sorted(name for group in groups for name in group) == ["C", "K", "P", "S1", "S2"]
    assert all(groups) and all(set(part["tasks"]) == set(group) for part, group in zip(written, groups, strict=True))

    merged_path = out / "mteb.json"
    assert main(["evaluate-merge", *map(str, reversed(parts)), "--out", str(merged_path)]) == 0
    merged = json.loads(merged_path.read_text())
    assert list(merged["tasks"]) == list(whole["tasks"])  # the tasks file's order
    assert without_timings(merged) == without_timings(whole)  # every score, count and field
    assert merged["average"] == whole["average"]


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda parts: parts[:1], r"the parts must be groups 1 to 2, each once: missing \[2\]"),
        (lambda parts: [parts[0], parts[0]], r"missing \[2\]; given twice \[1\]"),
        (lambda parts: [{**parts[0], "revision": "other"}, parts[1]], r"p1\.json and \S+p0\.json are parts of different evaluations: revision 'r' against 'other'"),
        (lambda parts: [{k: v for k, v in parts[0].items() if k != "task_group"}, parts[1]], r"is not a part of a split evaluation"),
    ],
)
def test_merging_parts_that_do_not_make_one_evaluation_is_a_one_line_error(tmp_path, capsys, edit, message):
    import re

    part = {
        "model": "m", "revision": "r", "source": "s", "base_model": "b", "num_layers": 2, "num_parameters": 9,
        "embedding_dim": 4, "cache": True, "batch_size": 2, "max_length": 8, "mteb_version": "2", "mteb_results": "x",
    }  # fmt: skip
    task = {"main_score": 0.5, "encode_seconds": 0.0, "texts_requested": 1, "texts_encoded": 1, "texts_loaded": 0}
    parts = [
        {**part, "tasks": {name: task}, "task_group": {"index": k, "count": 2, "tasks": [name], "all_tasks": ["A", "B"]}}
        for k, name in ((1, "A"), (2, "B"))
    ]
    paths = []
    for i, data in enumerate(edit(parts)):
        paths.append(tmp_path / f"p{i}.json")
        paths[-1].write_text(json.dumps(data))
    assert main(["evaluate-merge", *map(str, paths), "--out", str(tmp_path / "m.json")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("l3prune: error: ") and err.count("\n") == 1 and re.search(message, err)
    assert not (tmp_path / "m.json").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--task-group", "1"], "--task-group and --task-groups go together: give both (e.g. --task-group 1 --task-groups 4)"),
        (["--task-group", "3", "--task-groups", "2"], "--task-group must be from 1 to --task-groups 2, got 3"),
        (["--task-group", "1", "--task-groups", "0"], "--task-groups must be at least 1, got 0"),
    ],
)
def test_bad_task_group_options_fail_before_the_model_loads(tmp_path, capsys, args, message):
    tasks = tmp_path / "tasks.yaml"
    tasks.write_text("tasks: [STS12]\n")
    # the variant does not exist: an error about it would mean the model was being loaded
    assert main(["evaluate", str(tmp_path / "none"), "--tasks", str(tasks), "--out", str(tmp_path / "m.json"), *args]) == 2
    assert capsys.readouterr().err == f"l3prune: error: {message}\n"


def test_workflow_runs_one_evaluate_job_per_group_and_one_merge(tmp_path):
    from test_workflow import by_rule, dry_run

    jobs = by_rule(dry_run(tmp_path, ["results/llama3/small/mteb.json"], config={"models": {"llama3": {"evaluation_groups": 3}}}))
    assert "evaluate" not in jobs
    parts = [f"results/llama3/small/mteb.part-{k}-of-3.json" for k in (1, 2, 3)]
    assert sorted(job.output[0] for job in jobs["evaluate_group"]) == parts
    for job in jobs["evaluate_group"]:
        k = job.output[0].split("part-")[1].split("-of")[0]
        assert f"--out {job.output[0]} --name l3prune/llama3-small" in job.shellcmd
        assert f"--task-group {k} --task-groups 3" in job.shellcmd
        assert job.resources["gpu"] == 1  # each group job asks for what an evaluate job does
    (merge,) = jobs["evaluate_merge"]
    assert (merge.input, merge.output) == (tuple(parts), ("results/llama3/small/mteb.json",))
    assert merge.shellcmd.startswith(f"python3 -m l3prune evaluate-merge {' '.join(parts)} --out results/llama3/small/mteb.json")


def test_workflow_without_groups_keeps_one_evaluate_job(tmp_path):
    from test_workflow import by_rule, dry_run

    jobs = by_rule(dry_run(tmp_path, ["results/llama3/small/mteb.json"]))
    assert len(jobs["evaluate"]) == 1 and "evaluate_group" not in jobs and "evaluate_merge" not in jobs
    assert "--task-group" not in jobs["evaluate"][0].shellcmd
