"""The optional export rule: off by default, one hub folder per variant when models.<m>.export is on."""

from test_workflow import REPO, by_rule, command, dry_run

from l3prune.config import load_config
from l3prune.variants import variant_names


def test_no_export_job_unless_the_model_asks_for_it(tmp_path):
    assert "export" not in by_rule(dry_run(tmp_path))


def test_export_on_writes_each_variants_hub_folder_after_its_evaluation(tmp_path):
    jobs = by_rule(dry_run(tmp_path, config={"models": {"demo": {"export": True}}}))
    # one elastic adapter serves several depths: not one hub model (tests/test_workflow_elastic.py)
    variants = [v for v in variant_names(load_config(REPO / "config/training/demo.json")) if v != "elastic"]

    exports = {job.wildcards["variant"]: job for job in jobs["export"]}
    assert sorted(exports) == sorted(variants)
    assert set(jobs["all"][0].input) == {
        "results/demo/summary.csv",
        *(f"results/demo/{v}/hub" for v in variants),
    }
    small = exports["small"]
    assert small.input == ("results/demo/small/model", "results/demo/small/mteb.json")
    assert small.output == ("results/demo/small/hub",)
    run = command(small)
    assert (run.env, run.command, run.positional) == (
        {"HF_HUB_OFFLINE": "1"}, "export", ("hub", "results/demo/small/model", "results/demo/small/hub")
    )  # fmt: skip
    assert run.options == {
        "--mteb": "results/demo/small/mteb.json", "--training-config": "config/training/demo.json",
        "--repo-id": "l3prune/demo-small",
    }  # fmt: skip
    # what the hub folders' cards report
    evaluated = {job.output[0] for job in jobs["evaluate"]}
    assert {f"results/demo/{v}/mteb.json" for v in variants} <= evaluated


def test_export_must_be_a_boolean(tmp_path):
    import pytest

    with pytest.raises(Exception, match="^config key 'models.demo.export': 'yes' is not of type 'boolean'$"):
        dry_run(tmp_path, config={"models": {"demo": {"export": "yes"}}})
