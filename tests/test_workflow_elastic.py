"""The elastic variant in the workflow, dry-run: one training job, one evaluation per depth (rows
elastic@<depth>), all of them in the report next to the separately trained variants."""

import json

import pytest
from snakemake_interface_common.exceptions import WorkflowError
from test_workflow import REPO, by_rule, command, dry_run
from test_workflow_e2e import snakemake, workdir  # noqa: F401 -- workdir is a fixture

ROWS = ("elastic@small", "elastic@large", "elastic@full")


def test_the_demo_trains_the_elastic_variant_once_and_evaluates_each_depth(tmp_path):
    jobs = by_rule(dry_run(tmp_path))
    trains = {job.wildcards["variant"]: job for job in jobs["train"]}
    assert sorted(trains) == ["elastic", "full", "large", "small"]
    elastic = trains["elastic"]
    assert elastic.input == ("<TBD>",)  # small and large are depths: it waits for the prune points
    run = command(elastic)
    assert (run.command, run.positional, run.log) == (
        "train",
        ("config/training/demo.json",),
        "logs/demo/elastic/train.log",
    )
    assert run.options == {
        "--model": "resources/demo/model", "--variant": "elastic",
        "--prune-points": "results/demo/prune_points.json", "--output-dir": "results/demo/elastic/model",
    }  # fmt: skip
    evaluations = {job.wildcards["variant"]: job for job in jobs["evaluate"]}
    assert sorted(evaluations) == sorted(["full", "small", "large", *ROWS])
    for row in ROWS:
        job = evaluations[row]
        depth = row.split("@")[1]
        assert job.input[0] == "results/demo/elastic/model"  # one trained folder serves every depth
        assert job.output == (f"results/demo/{row}/mteb.json",)
        assert command(job).options["--elastic-depth"] == depth
        assert command(job).options["--name"] == f"l3prune/demo-{row}"
    assert "--elastic-depth" not in command(evaluations["small"]).options
    report = jobs["report"][0]
    assert report.input[:6] == tuple(f"results/demo/{v}/mteb.json" for v in ("full", "small", "large", *ROWS))
    assert "results/demo/elastic/model" in report.input  # its model_info.json sizes and costs the rows
    assert "--variants full small large elastic@small elastic@large elastic@full " in report.shellcmd
    # an elastic depth's untrained baseline is its separate variant's: not evaluated twice
    assert sorted(job.wildcards["variant"] for job in jobs["evaluate_untrained"]) == [
        "full",
        "large",
        "small",
    ]


def test_depths_without_small_or_large_need_no_prune_points(tmp_path):
    demo = json.loads((REPO / "config/training/demo.json").read_text())
    config_file = tmp_path / "fixed.json"
    config_file.write_text(
        json.dumps(dict(demo, autoprune=None, elastic_depths=[0.5, {"depth": "full", "weight": 2}]))
    )
    config = {"models": {"demo": {"training_config": "fixed.json", "untrained_baselines": False}}}
    jobs = by_rule(dry_run(tmp_path, config=config))
    assert "layerwise_loss" not in jobs and "prune_points" not in jobs
    trains = {job.wildcards["variant"]: job for job in jobs["train"]}
    assert sorted(trains) == ["elastic", "full"]
    assert trains["elastic"].input == ("resources/demo/train.jsonl", "resources/demo/model")
    assert "--prune-points" not in trains["elastic"].shellcmd
    rows = sorted(job.wildcards["variant"] for job in jobs["evaluate"])
    assert rows == ["elastic@full", "elastic@p50", "full"]


def test_a_config_without_elastic_depths_has_no_elastic_jobs(tmp_path):
    jobs = dry_run(tmp_path, config={"run": ["llama3"]})
    assert not [job for job in jobs if "elastic" in json.dumps(job.wildcards)]


@pytest.mark.parametrize(
    "target", ["results/demo/elastic@l8/mteb.json", "results/demo/elastic@p50/mteb.json"]
)
def test_a_depth_the_config_does_not_train_fails_before_any_job(tmp_path, target):
    with pytest.raises(WorkflowError) as error:
        dry_run(tmp_path, [target])
    depth = target.split("@")[1].split("/")[0]
    assert (
        f"config/training/demo.json: no elastic depth '{depth}'; elastic_depths has: small, large, full"
        in str(error.value)
    )


def test_the_elastic_variant_is_not_exported_as_one_model(tmp_path):
    jobs = by_rule(dry_run(tmp_path, config={"models": {"demo": {"export": True}}}))
    assert sorted(job.wildcards["variant"] for job in jobs["export"]) == ["full", "large", "small"]


@pytest.mark.slow
def test_the_elastic_rows_run_end_to_end_next_to_the_separate_variants(workdir):  # noqa: F811
    import csv

    config = json.loads((workdir / "train.json").read_text())
    (workdir / "train.json").write_text(json.dumps(config | {"elastic_depths": ["small", "large", "full"]}))
    run = snakemake(workdir)
    assert run.returncode == 0, run.stderr[-3000:]
    points = json.loads((workdir / "results/tiny/prune_points.json").read_text())
    with open(workdir / "results/tiny/summary.csv", newline="") as file:
        rows = {row["variant"]: row for row in csv.DictReader(file)}
    assert set(rows) == {"full", "small", "large", *ROWS}
    info = json.loads((workdir / "results/tiny/elastic/model/model_info.json").read_text())
    for row, depth in zip(ROWS, ("small", "large", "full"), strict=True):
        layers = 4 if depth == "full" else points[depth]
        assert int(rows[row]["layers"]) == layers
        assert rows[row]["parameters"] == rows[depth]["parameters"]  # the same cut, trained another way
        evaluated = json.loads((workdir / f"results/tiny/{row}/mteb.json").read_text())
        assert evaluated["num_layers"] == layers and evaluated["model"] == f"l3prune/tiny-{row}"
        assert rows[row]["train_steps"] == "2" and float(rows[row]["train_seconds"]) == round(
            info["train_seconds"], 1
        )
    for variant in ("full", "small", "large"):
        own = json.loads((workdir / f"results/tiny/{variant}/model/model_info.json").read_text())
        assert float(rows[variant]["train_seconds"]) == round(own["train_seconds"], 1) > 0
