"""The Snakemake workflow, dry-run: which jobs each target needs, what they run, what they ask for.

Each dry run uses the repository's Snakefile and config/ in an empty working folder, so results
already on disk never hide a job.
"""

import json
import logging
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from snakemake.api import SnakemakeApi
from snakemake.settings.types import (
    ConfigSettings,
    DAGSettings,
    DeploymentMethod,
    DeploymentSettings,
    OutputSettings,
    Quietness,
    ResourceSettings,
)
from snakemake_interface_common.exceptions import WorkflowError
from snakemake_interface_logger_plugins.common import LogEvent

from l3prune.config import load_config
from l3prune.demo.assets import STEPS as DEMO_STEPS
from l3prune.variants import variant_names

REPO = Path(__file__).resolve().parents[1]
PAPER_MODELS = {"llama3": "MetaLlama3", "mistral": "Mistral", "qwen2": "Qwen2", "phi3": "Phi3"}


@dataclass(frozen=True)
class Job:
    rule: str
    input: tuple
    output: tuple
    wildcards: dict
    shellcmd: str
    threads: int
    resources: dict


class JobRecorder(logging.Handler):
    """Collects the jobs a dry run plans, from Snakemake's structured job records."""

    def __init__(self):
        super().__init__()
        self.jobs: list[Job] = []

    def emit(self, record):
        if getattr(record, "event", None) == LogEvent.JOB_INFO:
            self.jobs.append(
                Job(
                    rule=record.rule_name,
                    input=tuple(record.input),
                    output=tuple(record.output),
                    wildcards=dict(record.wildcards),
                    shellcmd=record.shellcmd or "",
                    threads=record.threads,
                    resources={k: v for k, v in record.resources.items() if not k.startswith("_")},
                )
            )


def dry_run(workdir: Path, targets=(), config: dict | None = None, use_conda: bool = False) -> list[Job]:
    """The jobs `snakemake -n TARGETS` plans in `workdir` (with `config` merged over config.yaml)."""
    if not (workdir / "config").exists():
        (workdir / "config").symlink_to(REPO / "config")
    configfiles = []
    if config is not None:
        override = workdir / "override.yaml"
        override.write_text(yaml.safe_dump(config))
        configfiles.append(override)
    recorder = JobRecorder()
    logger = logging.getLogger("snakemake")
    logger.addHandler(recorder)
    try:
        with SnakemakeApi(OutputSettings(quiet={Quietness.ALL})) as api:
            workflow = api.workflow(
                ResourceSettings(cores=64),  # more than any job asks for, so threads are not capped
                ConfigSettings(configfiles=configfiles),
                deployment_settings=DeploymentSettings(
                    deployment_method={DeploymentMethod.CONDA} if use_conda else set()
                ),
                snakefile=REPO / "Snakefile",
                workdir=workdir,
            )
            workflow.dag(DAGSettings(targets=set(targets))).execute_workflow(executor="dryrun")
    finally:
        logger.removeHandler(recorder)
    return recorder.jobs


@dataclass(frozen=True)
class Command:
    """What a job's shell command runs: environment, launcher, l3prune command, its arguments, log."""

    env: dict[str, str]
    launcher: tuple[str, ...]  # what runs `l3prune` (python3 -m, or torchrun ... -m)
    command: str
    positional: tuple[str, ...]
    options: dict[str, str | bool]  # --flag: True
    log: str


def command(job: Job) -> Command:
    """A job's shell command read as the shell reads it (quoting, spacing and order of options aside)."""
    words = shlex.split(job.shellcmd)
    cut = words.index("2>&1")
    assert words[cut + 1 : cut + 3] == ["|", "tee"], job.shellcmd
    words, log = words[:cut], words[cut + 3]
    leading = 0
    while re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", words[leading]):  # VAR=value before the program
        leading += 1
    env = dict(word.split("=", 1) for word in words[:leading])
    words = words[leading:]
    start = words.index("l3prune") + 1
    launcher, name, args = tuple(words[: start - 1]), words[start], words[start + 1 :]
    positional, options, i = [], {}, 0
    while i < len(args):
        if args[i].startswith("--"):
            takes_value = i + 1 < len(args) and not args[i + 1].startswith("--")
            options[args[i]] = args[i + 1] if takes_value else True
            i += 2 if takes_value else 1
        else:
            positional.append(args[i])
            i += 1
    return Command(env, launcher, name, tuple(positional), options, log)


def by_rule(jobs: list[Job]) -> dict[str, list[Job]]:
    grouped: dict[str, list[Job]] = {}
    for job in jobs:
        grouped.setdefault(job.rule, []).append(job)
    return grouped


def test_llama3_small_is_download_layerwise_loss_prune_points_train_evaluate(tmp_path):
    jobs = by_rule(dry_run(tmp_path, ["results/llama3/small/mteb.json"]))

    assert sorted(jobs) == [
        "download_archive", "download_model", "evaluate", "layerwise_loss", "prune_points", "train"
    ]  # fmt: skip
    assert all(len(group) == 1 for group in jobs.values())
    download, fetch_model, loss, points, train, evaluate = (
        jobs[rule][0]
        for rule in (
            "download_archive",
            "download_model",
            "layerwise_loss",
            "prune_points",
            "train",
            "evaluate",
        )
    )
    config = "config/training/MetaLlama3.json"
    model = "resources/models/meta-llama/Meta-Llama-3-8B-Instruct"
    # each step reads what the one before wrote
    assert download.output == ("cache/echo-data",)
    assert fetch_model.output == (model,)
    # the training config reaches the jobs as a parameter: an edit reruns only what it changes
    assert loss.input == ("cache/echo-data", model) and f"layerwise-loss {config} --model" in loss.shellcmd
    assert loss.output == ("results/llama3/layerwise_loss.json",)
    assert points.input == loss.output
    assert points.output == ("results/llama3/prune_points.json", "results/llama3/prune_points.png")
    # small waits for the prune points checkpoint; its layer count is a param, not the file an input
    assert train.input == ("<TBD>",)
    assert "--prune-points results/llama3/prune_points.json" in train.shellcmd
    assert f"train {config} --model" in train.shellcmd
    assert train.output == ("results/llama3/small/model",)
    assert evaluate.input == ("results/llama3/small/model", "config/eval/mteb_eng_v1.yaml")
    assert evaluate.output == ("results/llama3/small/mteb.json",)
    # ... through the l3prune command line
    assert download.shellcmd.startswith(
        "python3 -m l3prune download 'https://drive.usercontent.google.com/download?id="
    )
    assert (
        "--out cache/echo-data.tar --extract cache/echo-data --subdir echo-data --layout E5"
        in download.shellcmd
    )
    python, offline = ("python3", "-m"), {"HF_HUB_OFFLINE": "1"}  # GPU jobs run offline, downloads not
    assert command(fetch_model) == Command(
        {}, python, "download-model", ("meta-llama/Meta-Llama-3-8B-Instruct",), {"--out": model},
        "logs/download/models/meta-llama/Meta-Llama-3-8B-Instruct.log",
    )  # fmt: skip
    assert command(loss) == Command(
        offline, python, "layerwise-loss", (config,),
        {"--model": model, "--out": "results/llama3/layerwise_loss.json"}, "logs/llama3/layerwise_loss.log",
    )  # fmt: skip
    assert command(points) == Command(
        {}, python, "prune-points", ("results/llama3/layerwise_loss.json",),
        {"--out": "results/llama3/prune_points.json", "--plot": "results/llama3/prune_points.png"},
        "logs/llama3/prune_points.log",
    )  # fmt: skip
    assert command(train) == Command(
        offline, python, "train", (config,),
        {"--model": model, "--variant": "small", "--prune-points": "results/llama3/prune_points.json",
         "--output-dir": "results/llama3/small/model"},
        "logs/llama3/small/train.log",
    )  # fmt: skip
    assert command(evaluate) == Command(
        {}, python, "evaluate", ("results/llama3/small/model",),
        {"--tasks": "config/eval/mteb_eng_v1.yaml", "--out": "results/llama3/small/mteb.json",
         "--name": "l3prune/llama3-small", "--training-config": config},
        "logs/llama3/small/evaluate.log",
    )  # fmt: skip
    # the GPU steps ask for what config.yaml gives; light steps take the defaults
    paper = yaml.safe_load((REPO / "config/config.yaml").read_text())["models"]["llama3"]["resources"]
    for job, step in ((loss, "layerwise_loss"), (train, "train"), (evaluate, "evaluate")):
        wanted = paper[step]
        assert job.threads == wanted["threads"]
        assert {k: job.resources[k] for k in ("gpu", "mem_mb", "runtime")} == {
            k: wanted[k] for k in ("gpu", "mem_mb", "runtime")
        }
    assert points.threads == 1 and "gpu" not in points.resources


def test_full_and_fixed_variants_need_no_prune_points(tmp_path):
    demo = json.loads((REPO / "config/training/demo.json").read_text())
    (tmp_path / "demo_p25.json").write_text(json.dumps(dict(demo, percent_prune=[0.25], autoprune="all")))
    config = {"models": {"demo": {"training_config": "demo_p25.json"}}}
    jobs = dry_run(tmp_path, ["results/llama3/full/mteb.json", "results/demo/p25/mteb.json"], config)

    assert sorted(job.rule for job in jobs) == [
        "demo_assets",
        "download_archive",
        "download_model",
        "evaluate",
        "evaluate",
        "train",
        "train",
    ]
    trains = {job.wildcards["variant"]: job for job in jobs if job.rule == "train"}
    assert "--prune-points" not in trains["full"].shellcmd
    assert command(trains["p25"]).positional == ("demo_p25.json",)
    assert command(trains["p25"]).options == {
        "--model": "resources/demo/model", "--variant": "p25", "--output-dir": "results/demo/p25/model"
    }  # fmt: skip
    assert trains["p25"].input == (
        "resources/demo/train.jsonl",
        "resources/demo/model",
    )


def test_a_malformed_tasks_file_fails_before_any_job_naming_it(tmp_path):
    (tmp_path / "bad_tasks.yaml").write_text("local_tasks: [LeeSTS]\n")
    config = {"models": {"demo": {"tasks": "bad_tasks.yaml"}}}
    with pytest.raises(WorkflowError) as error:
        dry_run(tmp_path, ["results/demo/full/mteb.json"], config)
    assert "bad_tasks.yaml: local_tasks[0]: 'LeeSTS' is not of type 'object'" in str(error.value)


@pytest.mark.parametrize("variant", ["p25", "l8", "p30"])
def test_a_variant_the_training_config_lacks_fails_before_any_job(tmp_path, variant):
    with pytest.raises(WorkflowError) as error:
        dry_run(tmp_path, [f"results/demo/{variant}/mteb.json"])
    assert f"config/training/demo.json: no variant '{variant}'; this config has: full, small, large" in str(
        error.value
    )


def test_default_target_is_the_offline_demo(tmp_path):
    jobs = by_rule(dry_run(tmp_path))
    trained = variant_names(load_config(REPO / "config/training/demo.json"))
    # the elastic variant is evaluated by depth (tests/test_workflow_elastic.py)
    demo_variants = [v for v in trained if v != "elastic"]

    assert {"full", "small", "large"} <= set(demo_variants)
    assert {rule: len(group) for rule, group in jobs.items()} == {
        "all": 1,
        "report": 1,
        "evaluate": len(demo_variants) + 3,  # and elastic@small, elastic@large, elastic@full
        "evaluate_untrained": len(demo_variants),  # the demo's report shows what training recovers
        "train": len(trained),
        "prune_points": 1,
        "layerwise_loss": 1,
        "demo_assets": 1,
    }
    assert jobs["all"][0].input == ("results/demo/summary.csv",)
    report = jobs["report"][0]
    rows = [*demo_variants, "elastic@small", "elastic@large", "elastic@full"]
    assert report.input == (
        *(f"results/demo/{variant}/mteb.json" for variant in rows),
        *(f"results/demo/{variant}/model" for variant in trained),
        *(f"results/demo/{variant}/untrained/mteb.json" for variant in demo_variants),
    )
    assert report.output == ("results/demo/summary.csv", "results/demo/score_vs_parameters.png")
    report_command = shlex.split(report.shellcmd.split(" 2>&1")[0])
    assert report_command[:6] == ["python3", "-m", "l3prune", "report", "results/demo", "--out-dir"]
    assert report_command[6:] == ["results/demo", "--variants", *rows]
    tasks = tuple(
        f"resources/demo/tasks/{name}.jsonl" for name in ("lee_sts", "bbc_classification", "bbc_clustering")
    )
    # the rule declares exactly what `l3prune demo-assets` builds
    built = tuple(f"resources/demo/{name}" for step in DEMO_STEPS for name in step.outputs)
    assert built == ("resources/demo/model", "resources/demo/train.jsonl", *tasks)
    assert jobs["demo_assets"][0].output == (*built, "resources/demo/MANIFEST.json")
    for evaluate in jobs["evaluate"]:  # evaluation waits for the local task files the tasks file names
        assert evaluate.input[1:] == ("config/eval/demo.yaml", *tasks)
    for job in jobs["train"] + jobs["layerwise_loss"] + jobs["evaluate"]:
        assert job.threads == 2 and job.resources["gpu"] == 0  # the demo runs on 2 CPU cores


def test_paper_models_share_one_download_of_the_e5_data(tmp_path):
    jobs = by_rule(dry_run(tmp_path, config={"run": list(PAPER_MODELS)}))

    assert [job.output for job in jobs["download_archive"]] == [("cache/echo-data",)]
    assert sorted(job.wildcards["model"] for job in jobs["report"]) == sorted(PAPER_MODELS)
    for model, config_name in PAPER_MODELS.items():
        variants = variant_names(load_config(REPO / f"config/training/{config_name}.json"))
        assert {"full", "small", "large"} <= set(variants)
        trained = sorted(job.wildcards["variant"] for job in jobs["train"] if job.wildcards["model"] == model)
        assert trained == sorted(variants)
    assert "demo_assets" not in jobs


def test_a_local_model_is_an_input_and_a_hub_name_is_downloaded_first(tmp_path):
    model = tmp_path / "my-model"
    model.mkdir()
    for name, model_path in (("local.json", str(model)), ("hub.json", "org/not-a-local-folder")):
        (tmp_path / name).write_text(
            f'{{"model_name_or_path": "{model_path}", "dataset_name": "jsonl", "dataset_file_path": "pairs.jsonl"}}'
        )
    (tmp_path / "pairs.jsonl").write_text("")
    models = {
        name: {"training_config": f"{name}.json", "tasks": "config/eval/demo.yaml"}
        for name in ("local", "hub")
    }

    jobs = dry_run(
        tmp_path, ["results/local/full/model", "results/hub/full/model"], config={"models": models}
    )

    inputs = {job.wildcards["model"]: job.input for job in jobs if job.rule == "train"}
    hub_folder = "resources/models/org/not-a-local-folder"
    assert inputs == {"local": ("pairs.jsonl", str(model)), "hub": ("pairs.jsonl", hub_folder)}
    assert [job.output for job in jobs if job.rule == "download_model"] == [(hub_folder,)]


def test_wiki1m_data_is_one_downloaded_file(tmp_path):
    (tmp_path / "wiki.json").write_text(
        '{"model_name_or_path": "org/model", "dataset_name": "Wiki1M", '
        '"dataset_file_path": "cache/wiki1m_for_simcse.txt", "autoprune": "small"}'
    )
    models = {"wiki": {"training_config": "wiki.json", "tasks": "config/eval/demo.yaml"}}
    pinned = {"url": "https://example.org/wiki1m.txt", "sha256": "ab" * 32}

    jobs = by_rule(
        dry_run(
            tmp_path,
            ["results/wiki/layerwise_loss.json"],
            config={"models": models, "downloads": {"cache/wiki1m_for_simcse.txt": pinned}},
        )
    )

    assert sorted(jobs) == ["download_file", "download_model", "layerwise_loss"]
    assert command(jobs["download_file"][0]) == Command(
        {}, ("python3", "-m"), "download", ("https://example.org/wiki1m.txt",),
        {"--sha256": "ab" * 32, "--out": "cache/wiki1m_for_simcse.txt"},
        "logs/download/cache/wiki1m_for_simcse.txt.log",
    )  # fmt: skip
    assert jobs["layerwise_loss"][0].input == ("cache/wiki1m_for_simcse.txt", "resources/models/org/model")


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (
            {"modles": {}},
            "config: 'modles' is not one of ['run', 'models', 'model_dir', 'downloads', 'demo_assets']",
        ),
        ({"run": "demo"}, "config key 'run': 'demo' is not of type 'array'"),
        (
            {"models": {"demo": {"resources": {"train": {"threads": "two"}}}}},
            "config key 'models.demo.resources.train.threads': 'two' is not of type 'integer'",
        ),
        (
            {"models": {"demo": {"resources": {"evaluate": {"gpus": 1}}}}},
            "config key 'models.demo.resources.evaluate': 'gpus' is not one of ['gpu', 'threads', 'mem_mb', 'runtime']",
        ),
        (
            {"models": {"demo": {"resources": {"train": {"gpus": 1}}}}},
            "config key 'models.demo.resources.train': 'gpus' is not one of ['gpu', 'threads', 'mem_mb', 'runtime', 'processes']",
        ),
        (
            {"models": {"demo": {"resources": {"evaluate": {"processes": 2}}}}},
            "config key 'models.demo.resources.evaluate': 'processes' is not one of ['gpu', 'threads', 'mem_mb', 'runtime']",
        ),
        (
            {"models": {"demo": {"resources": {"train": {"processes": 0}}}}},
            "config key 'models.demo.resources.train.processes': 0 is less than the minimum of 1",
        ),
        (
            {"models": {"demo": {"resources": {"train": {"gpu": -1}}}}},
            "config key 'models.demo.resources.train.gpu': -1 is less than the minimum of 0",
        ),
        (
            {"models": {"mine": {"tasks": "t.yaml"}}},
            "config key 'models.mine': 'training_config' is a required property",
        ),
        (
            {"models": {"a/b": {"training_config": "c.json", "tasks": "t.yaml"}}},
            "config key 'models': 'a/b' does not match '^[A-Za-z0-9][A-Za-z0-9_.-]*$'",
        ),
        (
            {"downloads": {"cache/x": {"url": "ftp://x", "sha256": None}}},
            "config key 'downloads.cache/x.url': 'ftp://x' does not match '^https?://'",
        ),
        (
            {"downloads": {"cache/x": {"url": "https://x", "sha256": None, "archive_folder": "x"}}},
            "config key 'downloads.cache/x': 'archive' is a dependency of 'archive_folder'",
        ),
    ],  # fmt: skip
)
def test_config_errors_are_one_line_naming_the_key_and_what_is_allowed(tmp_path, override, message):
    with pytest.raises(ValueError) as error:
        dry_run(tmp_path, config=override)
    assert str(error.value) == message


def test_run_must_name_defined_models(tmp_path):
    with pytest.raises(ValueError) as error:
        dry_run(tmp_path, config={"run": ["demo", "lama3"]})
    assert (
        "config key 'run': lama3 not defined under 'models' (defined: demo, llama3, mistral, qwen2, phi3)"
        in str(error.value)
    )


def test_a_bad_training_config_fails_before_any_job(tmp_path):
    (tmp_path / "bad.json").write_text(
        '{"model_name_or_path": "m", "dataset_file_path": "d", "autoprune": "medium"}'
    )
    models = {"bad": {"training_config": "bad.json", "tasks": "config/eval/demo.yaml"}}
    with pytest.raises(WorkflowError) as error:
        dry_run(tmp_path, config={"models": models, "run": ["bad"]})
    assert (
        "bad.json: key 'autoprune': 'medium' is not one of ['small', 'large', 'small+large', 'all', None]"
        in str(error.value)
    )


def test_lint_finds_nothing(tmp_path, capsys):
    (tmp_path / "config").symlink_to(REPO / "config")
    with SnakemakeApi(OutputSettings(quiet={Quietness.ALL})) as api:
        api.workflow(ResourceSettings(cores=1), snakefile=REPO / "Snakefile", workdir=tmp_path).lint(
            json=True
        )
    assert json.loads(capsys.readouterr().out) == {"snakefiles": [], "rules": []}


def test_the_conda_environment_installs_exactly_the_package_dependencies():
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    environment = yaml.safe_load((REPO / "workflow/envs/l3prune.yaml").read_text())
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    (pip,) = [entry["pip"] for entry in environment["dependencies"] if isinstance(entry, dict)]
    assert pip == pyproject["project"]["dependencies"]
    assert "python=3.11" in environment["dependencies"]


def test_with_use_conda_every_job_runs_the_same_command_in_the_environment(tmp_path, monkeypatch, caplog):
    # A stand-in conda answering what Snakemake asks before it plans jobs: the dry run plans what a
    # real --use-conda run would. Its commands equal a plain run's: the environment, not the
    # commands, decides which python3 runs (Snakemake's software-env trigger still sees a switch).
    conda = tmp_path / "bin" / "conda"
    conda.parent.mkdir()
    conda.write_text(
        "#!/bin/sh\n"
        'case "$1" in\n'
        """  info) echo '{"conda_prefix": "/nowhere", "platform": "linux-64"}' ;;\n"""
        '  --version) echo "conda 24.11.0" ;;\n'
        """  config) echo '{"get": {"channel_priority": "strict"}}' ;;\n"""
        "  *) exit 1 ;;\n"
        "esac\n"
    )
    conda.chmod(0o755)
    monkeypatch.setenv("PATH", f"{conda.parent}{os.pathsep}{os.environ['PATH']}")
    target = ["results/llama3/small/mteb.json"]
    (tmp_path / "plain").mkdir()
    (tmp_path / "conda").mkdir()

    plain = dry_run(tmp_path / "plain", target)
    with caplog.at_level(logging.INFO, logger="snakemake"):
        in_conda = dry_run(tmp_path / "conda", target, use_conda=True)

    env_file = REPO / "workflow/rules/../envs/l3prune.yaml"
    assert f"Conda environment {env_file} will be created." in caplog.messages
    assert sorted(job.shellcmd for job in in_conda) == sorted(job.shellcmd for job in plain)
    assert len(plain) == 6


def test_jobs_find_this_repository_and_snakemakes_interpreter_first(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    monkeypatch.delenv("PYTHONPATH", raising=False)
    dry_run(tmp_path, ["results/demo/layerwise_loss.json"])
    assert os.environ["PYTHONPATH"] == str(REPO)
    assert os.environ["PATH"] == f"{Path(sys.executable).parent}:/usr/bin:/bin"
    dry_run(tmp_path, ["results/demo/layerwise_loss.json"])  # a second run adds nothing
    assert os.environ["PATH"] == f"{Path(sys.executable).parent}:/usr/bin:/bin"


def test_snakefmt_leaves_the_workflow_unchanged():
    result = subprocess.run(
        [sys.executable, "-m", "snakefmt", "--check", "Snakefile", "workflow"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr


def test_slurm_profile_is_found_from_the_repository_root():
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "--profile", "slurm", "-n", "--quiet", "rules", "--", "results/llama3/full/mteb.json"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "Using profile slurm for setting default command line arguments." in result.stdout + result.stderr
    profile = yaml.safe_load((REPO / "slurm/config.yaml").read_text())
    assert (profile["executor"], profile["slurm-status-command"]) == ("slurm", "squeue")
    assert profile["jobs"] >= 1  # a cluster executor needs it


def test_remote_code_runs_only_when_the_training_config_opts_in(tmp_path):
    paper = json.loads((REPO / "config/training/Phi3.json").read_text())
    (tmp_path / "remote.json").write_text(json.dumps(dict(paper, trust_remote_code=True)))
    target = ["results/phi3/full/mteb.json"]
    default = by_rule(dry_run(tmp_path, target))["evaluate"][0]
    opted_in = by_rule(dry_run(tmp_path, target, {"models": {"phi3": {"training_config": "remote.json"}}}))
    assert "--trust-remote-code" not in default.shellcmd
    assert command(opted_in["evaluate"][0]).options["--trust-remote-code"] is True


@pytest.mark.parametrize(
    ("train_job", "launcher"),
    [
        ({"gpu": 1}, "python3 -m l3prune"),
        ({"gpu": 2}, "torchrun --standalone --nproc_per_node 2 -m l3prune"),
        ({"gpu": 4, "processes": 2}, "torchrun --standalone --nproc_per_node 2 -m l3prune"),
        ({"gpu": 0, "processes": 2}, "torchrun --standalone --nproc_per_node 2 -m l3prune"),
        ({"gpu": 2, "processes": 1}, "python3 -m l3prune"),
    ],
)
def test_train_runs_one_process_per_gpu_under_torchrun(tmp_path, train_job, launcher):
    config = {"models": {"llama3": {"resources": {"train": {**train_job, "threads": 8}}}}}
    (train,) = by_rule(dry_run(tmp_path, ["results/llama3/full/model"], config))["train"]
    run = command(train)
    assert run.launcher == tuple(launcher.split()[:-1]) and run.command == "train"
    assert run.options == {
        "--model": "resources/models/meta-llama/Meta-Llama-3-8B-Instruct", "--variant": "full",
        "--output-dir": "results/llama3/full/model",
    }  # fmt: skip
    assert train.resources["gpu"] == train_job["gpu"]


def test_more_training_processes_than_gpus_is_refused(tmp_path):
    config = {"models": {"llama3": {"resources": {"train": {"gpu": 2, "processes": 3}}}}}
    with pytest.raises(ValueError) as error:
        dry_run(tmp_path, ["results/llama3/full/model"], config)
    assert str(error.value) == (
        "config key 'models.llama3.resources.train.processes': 3 processes for 2 GPUs; each process needs a GPU "
        "of its own (at most 2, or gpu: 0 to run them on the CPU)"
    )


def test_planning_the_five_models_imports_neither_torch_nor_transformers(tmp_path):
    """Every `snakemake` call and every cluster job re-reads the workflow: it must not pay seconds
    for torch (bench/planning.py times it). A torch and a transformers that fail on import stand in
    for the real ones; the training-arguments schemas were kept by an earlier read of a config."""
    import os

    for name in ("torch", "transformers"):
        (tmp_path / "blocked" / name).mkdir(parents=True)
        (tmp_path / "blocked" / name / "__init__.py").write_text(
            f"raise ImportError('{name} imported while planning')"
        )
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache"), "HF_HUB_OFFLINE": "1"}
    warm = "from l3prune.config import load_config; load_config('config/training/demo.json')"
    subprocess.run([sys.executable, "-c", warm], cwd=REPO, env=env, check=True)
    blocked = {**env, "PYTHONPATH": os.pathsep.join([str(tmp_path / "blocked"), env.get("PYTHONPATH", "")])}
    plan = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--quiet", "rules", "--config", "run=[demo,llama3,mistral,qwen2,phi3]"],
        cwd=REPO, env=blocked, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert plan.returncode == 0, plan.stderr[-3000:]
    assert "layerwise_loss" in plan.stdout and "imported while planning" not in plan.stdout + plan.stderr


def test_untrained_baselines_are_evaluated_where_the_switch_is_on(tmp_path):
    demo = by_rule(dry_run(tmp_path))["evaluate_untrained"]
    commands = {job.wildcards["variant"]: command(job) for job in demo}
    assert set(commands) == {"full", "small", "large"}
    assert commands["full"] == Command(
        {"HF_HUB_OFFLINE": "1"}, ("python3", "-m"), "evaluate-untrained", ("config/training/demo.json",),
        {"--model": "resources/demo/model", "--variant": "full", "--tasks": "config/eval/demo.yaml",
         "--out": "results/demo/full/untrained/mteb.json", "--name": "l3prune/demo-full-untrained"},
        "logs/demo/full/evaluate_untrained.log",
    )  # fmt: skip
    assert commands["small"].options["--prune-points"] == "results/demo/prune_points.json"
    full = next(job for job in demo if job.wildcards["variant"] == "full")
    assert full.input == (
        "resources/demo/model",
        "config/eval/demo.yaml",
        *full.input[2:],
    )  # no training data
    # the paper models cost GPU time per evaluation: off unless asked for
    (tmp_path / "paper").mkdir()
    paper = by_rule(dry_run(tmp_path / "paper", config={"run": ["llama3"]}))
    assert "evaluate_untrained" not in paper
    assert not any("untrained" in path for path in paper["report"][0].input)
    # a model that trains no `full` still evaluates its untrained base as the report's reference
    override = {"run": ["demo"], "models": {"demo": {"train_full": False}}}
    (tmp_path / "nofull").mkdir()
    jobs = by_rule(dry_run(tmp_path / "nofull", config=override))
    assert {job.wildcards["variant"] for job in jobs["evaluate_untrained"]} == {"full", "small", "large"}
    assert {job.wildcards["variant"] for job in jobs["train"]} == {"small", "large", "elastic"}
    assert "--variants full small large" in jobs["report"][0].shellcmd
