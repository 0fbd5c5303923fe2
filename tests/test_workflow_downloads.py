"""The workflow fetches every hub model once, before the GPU jobs, which then load it offline; the
`train_full` switch. Dry runs of the repository's Snakefile (helpers from test_workflow.py)."""

import json

import pytest
from snakemake.exceptions import MissingInputException
from snakemake_interface_common.exceptions import WorkflowError
from test_workflow import PAPER_MODELS, REPO, by_rule, command, dry_run

# the paper's models as their training configs name them on the hub
PAPER_HUB_NAMES = {
    "llama3": "meta-llama/Meta-Llama-3-8B-Instruct",
    "mistral": "mistralai/Mistral-7B-Instruct-v0.2",
    "qwen2": "Qwen/Qwen2-7B-Instruct",
    "phi3": "microsoft/Phi-3-mini-4k-instruct",
}


def test_paper_models_are_downloaded_once_each_before_their_offline_gpu_jobs(tmp_path):
    jobs = dry_run(tmp_path, config={"run": list(PAPER_HUB_NAMES)})
    rules = by_rule(jobs)

    folders = {model: f"resources/models/{name}" for model, name in PAPER_HUB_NAMES.items()}
    for model, config_name in PAPER_MODELS.items():
        config = json.loads((REPO / f"config/training/{config_name}.json").read_text())
        assert config["model_name_or_path"] == PAPER_HUB_NAMES[model]
    downloads = {job.output[0]: job for job in rules["download_model"]}
    assert sorted(downloads) == sorted(folders.values())  # one download per model, no more
    for model, folder in folders.items():
        fetch = downloads[folder]
        assert fetch.shellcmd.startswith(f"python3 -m l3prune download-model {PAPER_HUB_NAMES[model]} ")
        assert "HF_HUB_OFFLINE" not in fetch.shellcmd and "gpu" not in fetch.resources
        gpu_jobs = [
            job
            for job in jobs
            if job.wildcards.get("model") == model and job.rule in ("layerwise_loss", "train")
        ]
        assert sorted(job.rule for job in gpu_jobs) == ["layerwise_loss", "train", "train", "train"]
        for job in gpu_jobs:
            # the download's folder is an input: Snakemake runs the download first (small and large
            # wait for the prune points checkpoint, itself after the layerwise loss that reads it)
            small_or_large = job.rule == "train" and job.wildcards["variant"] in ("small", "large")
            assert job.input == ("<TBD>",) if small_or_large else folder in job.input
            assert job.shellcmd.startswith("HF_HUB_OFFLINE=1 python3 -m l3prune ")
            assert f" --model {folder} " in job.shellcmd
            assert PAPER_HUB_NAMES[model] not in job.shellcmd.replace(folder, "")
            assert jobs.index(fetch) < jobs.index(job)  # and plans it before them


def test_the_offline_demo_downloads_no_model(tmp_path):
    rules = by_rule(dry_run(tmp_path))
    assert "download_model" not in rules
    (loss,) = rules["layerwise_loss"]
    assert loss.input[-1] == "resources/demo/model"
    assert " --model resources/demo/model " in loss.shellcmd


def test_a_model_dir_holding_the_demo_leaves_the_demo_to_its_own_rule(tmp_path):
    rules = by_rule(dry_run(tmp_path, ["results/demo/layerwise_loss.json"], {"model_dir": "resources"}))
    assert sorted(rules) == ["demo_assets", "layerwise_loss"]


def test_model_dir_and_revision_reach_the_download_and_the_jobs(tmp_path):
    commit = "0123456789abcdef0123456789abcdef01234567"
    config = {"model_dir": "/shared/models", "models": {"llama3": {"revision": commit}}}
    rules = by_rule(dry_run(tmp_path, ["results/llama3/layerwise_loss.json"], config))

    folder = "/shared/models/meta-llama/Meta-Llama-3-8B-Instruct"
    (fetch,) = rules["download_model"]
    assert fetch.output == (folder,)
    assert command(fetch).positional == ("meta-llama/Meta-Llama-3-8B-Instruct",)
    assert command(fetch).options == {"--revision": commit, "--out": folder}
    assert command(rules["layerwise_loss"][0]).options["--model"] == folder


def test_two_revisions_of_one_hub_model_are_refused_naming_both(tmp_path):
    paper = json.loads((REPO / "config/training/MetaLlama3.json").read_text())
    (tmp_path / "again.json").write_text(json.dumps(paper))
    models = {
        "llama3": {"revision": "main"},
        "again": {"training_config": "again.json", "tasks": "config/eval/demo.yaml", "revision": "v2"},
    }
    with pytest.raises(WorkflowError) as error:
        dry_run(tmp_path, ["results/again/layerwise_loss.json"], {"models": models})
    assert (
        "config key 'models.*.revision': meta-llama/Meta-Llama-3-8B-Instruct is asked for at several revisions "
        "(again: v2, llama3: main); its folder holds one"
    ) in str(error.value)


def test_a_missing_local_model_path_is_a_missing_input_not_a_download(tmp_path):
    (tmp_path / "local.json").write_text(
        '{"model_name_or_path": "/no/such/model", "dataset_name": "jsonl", "dataset_file_path": "pairs.jsonl"}'
    )
    (tmp_path / "pairs.jsonl").write_text("")
    models = {"local": {"training_config": "local.json", "tasks": "config/eval/demo.yaml"}}
    with pytest.raises(MissingInputException) as error:
        dry_run(tmp_path, ["results/local/layerwise_loss.json"], {"models": models})
    assert "Missing input files for rule layerwise_loss" in str(error.value)
    assert "affected files:\n        /no/such/model" in str(error.value)


def test_train_full_false_drops_full_from_the_dag_and_the_report(tmp_path):
    rules = by_rule(
        dry_run(tmp_path, ["results/llama3/summary.csv"], {"models": {"llama3": {"train_full": False}}})
    )

    assert sorted(job.wildcards["variant"] for job in rules["train"]) == ["large", "small"]
    assert sorted(job.wildcards["variant"] for job in rules["evaluate"]) == ["large", "small"]
    (report,) = rules["report"]
    assert not any("/full/" in path for path in report.input)
    assert " --variants small large " in report.shellcmd
    # the default trains it
    (tmp_path / "default").mkdir()
    default = by_rule(dry_run(tmp_path / "default", ["results/llama3/summary.csv"]))
    assert sorted(job.wildcards["variant"] for job in default["train"]) == ["full", "large", "small"]
    assert " --variants full small large " in default["report"][0].shellcmd


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (
            {"models": {"llama3": {"train_full": "no"}}},
            "config key 'models.llama3.train_full': 'no' is not of type 'boolean'",
        ),
        ({"model_dir": ""}, "config key 'model_dir': '' should be non-empty"),
        (
            {"downloads": {"cache/x": {"url": "https://x", "sha256": None, "layout": "E5"}}},
            "config key 'downloads.cache/x': 'archive' is a dependency of 'layout'",
        ),
        (
            {
                "downloads": {
                    "cache/x": {"url": "https://x", "sha256": None, "archive": "x.tar", "layout": "e5"}
                }
            },
            "config key 'downloads.cache/x.layout': 'e5' is not one of ['E5']",
        ),
    ],  # fmt: skip
)
def test_config_errors_of_the_new_keys_are_one_line(tmp_path, override, message):
    with pytest.raises(ValueError) as error:
        dry_run(tmp_path, config=override)
    assert str(error.value) == message


def test_a_misspelt_model_key_lists_revision_and_train_full(tmp_path):
    with pytest.raises(ValueError) as error:
        dry_run(tmp_path, config={"models": {"llama3": {"revison": "main"}}})
    assert str(error.value).startswith(
        "config key 'models.llama3': 'revison' is not one of ['training_config', "
    )
    assert "'revision', 'train_full'" in str(error.value)
