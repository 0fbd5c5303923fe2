"""The whole workflow on a tiny random model: every rule runs its real l3prune command.

A working folder gets a tiny model, training pairs, three local tasks and a config naming them;
`snakemake` then builds results/tiny/summary.csv through layerwise loss, prune points, training
and evaluation of every variant, and a second call finds nothing to do.
"""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
WORDS = "the model layer text query document passage retrieve question answer encoder prune small large loss".split()


def sentence(i: int, n: int = 6) -> str:
    return " ".join(WORDS[(i * 7 + j * 3) % len(WORDS)] for j in range(n))


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, HF_HUB_OFFLINE="1")  # PATH as it is: the jobs need no l3prune on it
    return subprocess.run(
        [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--configfile", "tiny.yaml",
         "--cores", "2", *args],
        cwd=workdir, capture_output=True, text=True, env=env, timeout=600,
    )  # fmt: skip


@pytest.fixture
def workdir(tmp_path, tiny_llama):
    (tmp_path / "config").symlink_to(REPO / "config")  # the repository's config.yaml, with tiny.yaml over it
    pairs = [
        {"query": sentence(i), "positive": sentence(i + 1), "negative": sentence(i + 9)} for i in range(32)
    ]
    write_jsonl(tmp_path / "pairs.jsonl", pairs)
    (tmp_path / "train.json").write_text(
        json.dumps(
            {
                "model_name_or_path": str(tiny_llama),
                "pooling_mode": "mean",
                "torch_dtype": "float32",
                "max_seq_length": 32,
                "dataset_name": "jsonl",
                "dataset_file_path": "pairs.jsonl",
                "per_device_train_batch_size": 4,
                "learning_rate": 0.001,
                "stop_after_n_steps": 2,
                "save_steps": 1,
                "lora_r": 4,
                "autoprune": "small+large",
                "l3prune_batch_size": 4,
                "l3prune_num_batches": 2,
            }
        )
    )
    tasks = {
        "sts": [
            {"sentence1": sentence(i), "sentence2": sentence(i + 2), "score": float(i % 5)} for i in range(8)
        ],
        "classification": [
            {"text": sentence(i), "label": ["x", "y"][i % 2], "split": "train" if i < 12 else "test"}
            for i in range(20)
        ],
        "clustering": [{"text": sentence(i), "label": i % 3} for i in range(12)],
    }
    for name, rows in tasks.items():
        write_jsonl(tmp_path / f"{name}.jsonl", rows)
    (tmp_path / "tasks.yaml").write_text(
        yaml.safe_dump(
            {
                "local_tasks": [
                    {"name": "TinySTS", "type": "STS", "path": "sts.jsonl"},
                    {"name": "TinyClassification", "type": "Classification", "path": "classification.jsonl"},
                    {"name": "TinyClustering", "type": "Clustering", "path": "clustering.jsonl"},
                ],
                "batch_size": 8,
            }
        )
    )
    one_thread = {"gpu": 0, "threads": 1, "mem_mb": 2000, "runtime": 10}
    (tmp_path / "tiny.yaml").write_text(
        yaml.safe_dump(
            {
                "run": ["tiny"],
                "models": {
                    "tiny": {
                        "training_config": "train.json",
                        "tasks": "tasks.yaml",
                        "untrained_baselines": True,
                        "resources": {step: one_thread for step in ("layerwise_loss", "train", "evaluate")},
                    }
                },
            }
        )
    )
    return tmp_path


@pytest.mark.slow
def test_whole_workflow_runs_and_a_rerun_does_nothing(workdir, tiny_llama):
    first = snakemake(workdir)
    assert first.returncode == 0, first.stderr[-3000:]

    points = json.loads((workdir / "results/tiny/prune_points.json").read_text())
    assert points["num_layers"] == 4
    with open(workdir / "results/tiny/summary.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    assert list(rows[0]) == [
        "variant", "layers", "parameters", "percent_removed", "train_steps", "train_seconds", "TinySTS",
        "TinyClassification", "TinyClustering", "average", "untrained_average", "points_lost_by_cutting", "points_recovered_by_training", "encode_seconds",
    ]  # fmt: skip
    by_variant = {row["variant"]: row for row in rows}
    assert rows[0]["variant"] == "full" and set(by_variant) == {"full", "small", "large"}
    assert [int(by_variant[v]["layers"]) for v in ("full", "small", "large")] == [
        4,
        points["small"],
        points["large"],
    ]
    assert by_variant["full"]["percent_removed"] == "0.0"
    for row in rows:  # the untrained baseline of each variant is its cut base model, evaluated alike
        untrained = json.loads((workdir / f"results/tiny/{row['variant']}/untrained/mteb.json").read_text())
        assert untrained["num_layers"] == int(row["layers"])
        assert float(row["untrained_average"]) == pytest.approx(untrained["average"], abs=1e-4)
        recovered = 100 * (float(row["average"]) - untrained["average"])
        assert float(row["points_recovered_by_training"]) == pytest.approx(recovered, abs=0.02)
        scores = [float(row[task]) for task in ("TinySTS", "TinyClassification", "TinyClustering")]
        assert abs(float(row["average"]) - sum(scores) / 3) < 1e-3  # each rounded to 4 decimals
        info = json.loads((workdir / f"results/tiny/{row['variant']}/model/model_info.json").read_text())
        assert int(row["parameters"]) == info["params_after"]
    assert (workdir / "results/tiny/score_vs_parameters.png").stat().st_size > 0
    assert (workdir / "results/tiny/prune_points.png").stat().st_size > 0
    for log in ("layerwise_loss", "prune_points", "report", "full/train", "small/evaluate"):
        assert (workdir / f"logs/tiny/{log}.log").is_file()

    second = snakemake(workdir, "--dry-run")
    assert second.returncode == 0, second.stderr[-3000:]
    assert (
        "Nothing to be done (all requested files are present and up to date)."
        in second.stdout + second.stderr
    )
    assert_reruns_only_what_changed(workdir)


def planned_jobs(workdir: Path) -> dict[str, int]:
    """Rule -> how many of its jobs a dry run would run (its job stats table)."""
    run = snakemake(workdir, "--dry-run", "--quiet", "rules")
    assert run.returncode == 0, run.stderr[-3000:]
    rows = (line.split() for line in (run.stdout + run.stderr).splitlines())
    return {row[0]: int(row[1]) for row in rows if len(row) == 2 and row[1].isdigit() and row[0] != "total"}


def assert_reruns_only_what_changed(workdir: Path) -> None:
    config_path = workdir / "train.json"
    original = json.loads(config_path.read_text())

    def edit(**changes):
        config_path.write_text(json.dumps({**original, **changes}))

    # how a run logs, saves, shows progress or saves memory changes no result; nor do job resources
    edit(logging_steps=7, save_steps=3, disable_tqdm=True, gradient_checkpointing=True)
    assert planned_jobs(workdir) == {}
    workflow_config = workdir / "tiny.yaml"
    original_workflow_config = workflow_config.read_text()
    workflow_config.write_text(original_workflow_config.replace("runtime: 10", "runtime: 20").replace("mem_mb: 2000", "mem_mb: 3000"))
    assert planned_jobs(workdir) == {}
    workflow_config.write_text(original_workflow_config)
    # a training setting retrains every variant (and evaluates and reports again), not the layerwise loss
    edit(learning_rate=0.002)
    assert planned_jobs(workdir) == {"train": 3, "evaluate": 3, "report": 1, "all": 1}  # baselines stay
    # a setting the layerwise loss reads reruns it; `full` does not wait for it, and whether small and
    # large retrain is decided once the new picks are known (a dry run lists them)
    edit(l3prune_num_batches=3)
    planned = planned_jobs(workdir)
    assert planned["layerwise_loss"] == 1 and planned["prune_points"] == 1 and planned["train"] == 2
    config_path.write_text(json.dumps(original))
    assert planned_jobs(workdir) == {}
    # a layerwise rerun that picks the same layer counts retrains neither small nor large
    models = {v: (workdir / f"results/tiny/{v}/model").stat().st_mtime_ns for v in ("full", "small", "large")}
    rerun = snakemake(workdir, "--forcerun", "layerwise_loss")
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "rule layerwise_loss:" in rerun.stderr and "rule train:" not in rerun.stderr
    assert {v: (workdir / f"results/tiny/{v}/model").stat().st_mtime_ns for v in models} == models
    assert planned_jobs(workdir) == {}


@pytest.mark.slow
def test_config_paths_with_spaces_and_semicolons_reach_commands_intact(workdir, tiny_llama):
    """Config values that reach shell commands are quoted: such paths work and inject nothing."""
    import shutil

    odd = workdir / "my configs; touch INJECTED"
    odd.mkdir()
    model = odd / "tiny model; touch INJECTED"
    shutil.copytree(tiny_llama, model)
    train = json.loads((workdir / "train.json").read_text())
    (odd / "train $(touch INJECTED).json").write_text(json.dumps(dict(train, model_name_or_path=str(model))))
    config = yaml.safe_load((workdir / "tiny.yaml").read_text())
    config["models"]["tiny"]["training_config"] = "my configs; touch INJECTED/train $(touch INJECTED).json"
    (workdir / "tiny.yaml").write_text(yaml.safe_dump(config))

    run = snakemake(workdir, "results/tiny/prune_points.json")
    assert run.returncode == 0, run.stderr[-3000:]
    assert json.loads((workdir / "results/tiny/prune_points.json").read_text())["num_layers"] == 4
    loss = json.loads((workdir / "results/tiny/layerwise_loss.json").read_text())
    assert loss["model"] == str(model)
    assert not list(workdir.rglob("INJECTED"))


def set_train_job(workdir, **train_job):
    """Train `full` for one whole epoch (8 batches of 4 pairs in one process), with `train_job` in its resources."""
    train = json.loads((workdir / "train.json").read_text())
    del train["stop_after_n_steps"]
    (workdir / "train.json").write_text(json.dumps(dict(train, num_train_epochs=1)))
    config = yaml.safe_load((workdir / "tiny.yaml").read_text())
    resources = config["models"]["tiny"]["resources"]
    resources["train"] = dict(resources["train"], **train_job)  # the fixture's steps share one mapping
    (workdir / "tiny.yaml").write_text(yaml.safe_dump(config))


def assert_trained_by_two_processes(workdir):
    """32 pairs in global batches of 2 x 4 take 4 steps, not 8; each process says so."""
    assert json.loads((workdir / "results/tiny/full/model/model_info.json").read_text())["steps"] == 4
    log = (workdir / "logs/tiny/full/train.log").read_text()
    for rank in (1, 2):
        assert f"variant full: process {rank} of 2, global batch 8 (4 per process)" in log


@pytest.mark.slow
def test_train_job_with_two_processes_trains_on_the_global_batch(workdir):
    """`processes: 2` (here without GPUs) launches 2 training processes in the one train job."""
    set_train_job(workdir, processes=2)
    run = snakemake(workdir, "results/tiny/full/model")
    assert run.returncode == 0, run.stderr[-3000:]
    assert_trained_by_two_processes(workdir)
