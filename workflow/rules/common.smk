"""What each model's configs ask for, and which files feed each step (used by every rule file)."""

import functools
import json
import os
import re
import sys
from pathlib import Path

import yaml
from snakemake.utils import validate

from l3prune.code_version import code_version
from l3prune.config import load_config, step_settings
from l3prune.elastic import ELASTIC, POINT_DEPTHS, ROW_SEPARATOR, depth_names, row_name
from l3prune.variants import (
    check_variant_name,
    load_prune_points,
    needs_prune_points,
    variant_names,
)
from l3prune.assets.model_names import hub_repo_id, model_folder
from l3prune.evaluation.tasks_file import local_task_paths
from l3prune.schema import schema_violation

SCHEMA = Path(workflow.basedir) / "workflow/schemas/config.schema.yaml"
# Snakemake's own schema error names the key last, after the schema: this one names it first, in
# one line. validate() then fills in the schema's defaults.
_violation = schema_violation(config, yaml.safe_load(SCHEMA.read_text()))
if _violation:
    _where, _message = _violation
    raise ValueError(
        f"config key '{_where}': {_message}"
        if _where != "top level"
        else f"config: {_message}"
    )
validate(config, str(SCHEMA))

MODELS = config["models"]
MODEL_DIR = config["model_dir"]
DOWNLOADS = config["downloads"]
DEMO = config["demo_assets"]
DEMO_TASKS = ("lee_sts", "bbc_classification", "bbc_clustering")

# Jobs run `python3 -m l3prune`: this repository's code (PYTHONPATH) with Snakemake's own
# interpreter (first on PATH), which has the dependencies since this file imports l3prune. With
# --use-conda, conda's activation puts the python3 of workflow/envs/l3prune.yaml (the dependencies
# only) before it. Set here rather than in the commands, so that the commands (and with them
# Snakemake's 'code' and 'params' rerun triggers) do not depend on where the repository lies.
for _var, _path in (
    ("PYTHONPATH", workflow.basedir),
    ("PATH", str(Path(sys.executable).parent)),
):
    _entries = os.environ.get(_var, "").split(os.pathsep)
    if _entries[0] != _path:
        os.environ[_var] = os.pathsep.join([_path, *filter(None, _entries)])

_not_models = [name for name in config["run"] if name not in MODELS]
if _not_models:
    raise ValueError(
        f"config key 'run': {', '.join(_not_models)} not defined under 'models' "
        f"(defined: {', '.join(MODELS)})"
    )


def one_of(names):
    """A wildcard regex matching exactly these names (and nothing when there are none)."""
    return "|".join(re.escape(name) for name in names) or "(?!)"


_PRUNED = r"full|small|large|p\d+(?:\.\d+)?|l\d+"


wildcard_constraints:
    model=one_of(MODELS),
    # a trained variant, or a row elastic@<depth>: the elastic variant evaluated at one of its depths
    variant=rf"{_PRUNED}|{ELASTIC}|{ELASTIC}{ROW_SEPARATOR}(?:{_PRUNED})",


@functools.cache
def training_config(model):
    """The model's training config, parsed and checked once per run (errors name file and key)."""
    return load_config(MODELS[model]["training_config"])


def variants(model):
    """The variants built for a model by default: `full` (unless the model's `train_full` is
    false), then what its training config asks for."""
    names = variant_names(training_config(model))
    return names if MODELS[model]["train_full"] else [n for n in names if n != "full"]


def produced_by_workflow(path):
    """Whether the workflow makes this path: a configured download or the demo model."""
    return path in DOWNLOADS or path == f"{DEMO}/model"


def hub_model(model):
    """The model hub name of a model's base model, which rule download_model fetches; None for a
    local path (an existing one, one a rule makes, or one shaped like a path)."""
    name = training_config(model).model_name_or_path
    return None if produced_by_workflow(name) else hub_repo_id(name)


def base_model_folder(model):
    """The local folder a model's jobs load the base model from: the download of a hub model
    (<model_dir>/<namespace>/<name>), else model_name_or_path itself."""
    repo = hub_model(model)
    if repo is None:
        return training_config(model).model_name_or_path
    return str(model_folder(MODEL_DIR, repo))


def model_inputs(wildcards):
    """The files a base-model step reads: its training data and the base model's local folder
    (downloaded by rule download_model for a hub name). The training config is not one of them;
    a step reruns when a value that changes its result does (step_params), not on every edit.
    """
    cfg = training_config(wildcards.model)
    return {
        "data": cfg.dataset_file_path,
        "model": base_model_folder(wildcards.model),
    }


def step_params(step, command):
    """What a step's result depends on besides its input files, as params (Snakemake reruns a job
    whose params changed): the training config's values that change the step (None for steps the
    config does not reach) and the code version of the l3prune command it runs."""

    def settings(wildcards):
        if step is None:
            return ""
        return json.dumps(
            step_settings(training_config(wildcards.model), step), sort_keys=True
        )

    # the code the jobs run: this checkout's package (PYTHONPATH), whatever l3prune this file imported
    package = Path(workflow.basedir) / "l3prune"
    return {
        "settings": settings,
        "code": code_version(f"l3prune.commands.{command}", package),
    }


def revision_option(repo):
    """The download-model command's revision option: the `revision` of the models naming `repo`
    (none: main). Only models that set one have their training config read here."""
    asked = {
        name: spec["revision"]
        for name, spec in MODELS.items()
        if "revision" in spec and hub_model(name) == repo
    }
    if len(set(asked.values())) > 1:
        raise ValueError(
            f"config key 'models.*.revision': {repo} is asked for at several revisions "
            f"({', '.join(f'{name}: {rev}' for name, rev in sorted(asked.items()))}); its folder holds one"
        )
    return ["--revision", *set(asked.values())] if asked else []


def train_inputs(wildcards):
    """A variant's training inputs. `small` and `large` wait for the prune points (a checkpoint)
    but do not take the file as an input: they take the layer count as a param (prune_layers), so
    a layerwise rerun that picks the same counts retrains neither."""
    # a variant the training config does not define fails here, before any job, not in train
    check_variant_name(training_config(wildcards.model), wildcards.variant)
    if needs_prune_points(training_config(wildcards.model), wildcards.variant):
        checkpoints.prune_points.get(model=wildcards.model)
    return model_inputs(wildcards)


def prune_points_file(model):
    return f"results/{model}/prune_points.json"


def prune_layers(wildcards):
    """The layer count a variant is pruned to when L3Prune picks it (for the elastic variant, those
    of its depths small and large, e.g. `small=8 large=20`; empty for the others)."""
    cfg = training_config(wildcards.model)
    if not needs_prune_points(cfg, wildcards.variant):
        return ""
    checkpoints.prune_points.get(model=wildcards.model)
    points = load_prune_points(prune_points_file(wildcards.model))
    if wildcards.variant == ELASTIC:
        named = [n for n in depth_names(cfg.elastic_depths) if n in POINT_DEPTHS]
        return " ".join(f"{name}={points[name]}" for name in named)
    return points[wildcards.variant]


def prune_points_option(wildcards):
    """The train command's prune points option (none for variants that need none), as words
    for the shell to quote."""
    if not needs_prune_points(training_config(wildcards.model), wildcards.variant):
        return []
    return ["--prune-points", prune_points_file(wildcards.model)]


def untrained_inputs(wildcards):
    """An untrained baseline's inputs: the base model (small and large wait for their picks, as
    their training does), the tasks file and its local files."""
    inputs = train_inputs(wildcards)
    inputs.pop("data", None)  # evaluation reads no training data
    return {
        **inputs,
        "tasks": MODELS[wildcards.model]["tasks"],
        "task_files": local_task_files(wildcards),
    }


def rows(model):
    """What a model's evaluation scores: each trained variant, the elastic one as one row per
    depth (elastic@small, ...) in its place."""
    names = []
    for name in variants(model):
        if name == ELASTIC:
            depths = depth_names(training_config(model).elastic_depths)
            names += [row_name(depth) for depth in depths]
        else:
            names.append(name)
    return names


def trained_variant(model, row):
    """The trained variant a row is evaluated from (`elastic` for elastic@<depth>), checked."""
    variant, _, depth = row.partition(ROW_SEPARATOR)
    cfg = training_config(model)
    check_variant_name(cfg, variant)
    if depth and depth not in depth_names(cfg.elastic_depths):
        raise ValueError(
            f"{cfg.source}: no elastic depth {depth!r}; elastic_depths has: "
            f"{', '.join(depth_names(cfg.elastic_depths))}"
        )
    return variant


def evaluated_model(wildcards):
    """The model folder a row's evaluation loads."""
    return f"results/{wildcards.model}/{trained_variant(wildcards.model, wildcards.variant)}/model"


def evaluate_options(wildcards):
    """evaluate's options beyond the tasks: --trust-remote-code where the training config opts in,
    --elastic-depth for a row elastic@<depth>, --task-group K --task-groups N for a job of one group
    (rule evaluate_group); as words for the shell to quote."""
    _, _, depth = wildcards.variant.partition(ROW_SEPARATOR)
    options = remote_code_option(wildcards) + (
        ["--elastic-depth", depth] if depth else []
    )
    if "group" in wildcards.keys():
        options += ["--task-group", wildcards.group, "--task-groups", wildcards.groups]
    return options


def report_variants(model):
    """The rows a model's report lists: its trained variants (the elastic one by depth), and
    `full` when its untrained baseline is evaluated (the reference for what cutting costs)
    though it is not trained.
    """
    names = rows(model)
    if MODELS[model]["untrained_baselines"] and "full" not in names:
        names = ["full", *names]
    return names


def untrained_files(wildcards):
    """The untrained baselines the report reads (none when the model's switch is off)."""
    if not MODELS[wildcards.model]["untrained_baselines"]:
        return []
    # an elastic depth's baseline is the separate variant's: the same base model cut alike
    return expand(
        "results/{model}/{variant}/untrained/mteb.json",
        model=wildcards.model,
        variant=[v for v in report_variants(wildcards.model) if ROW_SEPARATOR not in v],
    )


def local_task_files(wildcards):
    """The local files the model's tasks file names, so that evaluate waits for them."""
    tasks = Path(MODELS[wildcards.model]["tasks"])
    if not tasks.is_file():
        return []  # Snakemake reports the tasks file itself as a missing input
    return local_task_paths(tasks)


def variant_files(path, of=None):
    """An input function: `path` (with {model} and {variant}) for each variant of the model, or
    each of `of(model)` (e.g. rows)."""

    def files(wildcards):
        return expand(
            path, model=wildcards.model, variant=(of or variants)(wildcards.model)
        )

    return files


def job_resource(step, key):
    """A model's `resources.<step>.<key>` from config.yaml, for the threads and resources of a job."""

    def get(wildcards):
        return MODELS[wildcards.model]["resources"][step][key]

    return get


def train_processes(model):
    """How many training processes a model's train job runs: `resources.train.processes`, or
    one per GPU when the job asks for several."""
    job = MODELS[model]["resources"]["train"]
    return job.get("processes", job["gpu"] if job["gpu"] > 1 else 1)


for _model, _spec in MODELS.items():
    _train_job = _spec["resources"]["train"]
    if 0 < _train_job["gpu"] < train_processes(_model):
        raise ValueError(
            f"config key 'models.{_model}.resources.train.processes': {train_processes(_model)} processes "
            f"for {_train_job['gpu']} GPUs; each process needs a GPU of its own (at most {_train_job['gpu']}, "
            "or gpu: 0 to run them on the CPU)"
        )


def train_launcher(wildcards):
    """The command a train job runs `l3prune` with: plain for one process, else torchrun starting
    that many on this node (a free port each, so jobs sharing a node do not collide)."""
    processes = train_processes(wildcards.model)
    if processes == 1:
        return ["python3", "-m", "l3prune"]
    return [
        "torchrun",
        "--standalone",
        "--nproc_per_node",
        str(processes),
        "-m",
        "l3prune",
    ]


def downloads(archive):
    """The configured download paths that are archives (archive=True) or plain files."""
    return [path for path, spec in DOWNLOADS.items() if ("archive" in spec) == archive]


def layout_option(path):
    """The download command's option checking the unpacked data set's files (none: unchecked)."""
    layout = DOWNLOADS[path].get("layout")
    return ["--layout", layout] if layout else []


def sha256_option(path):
    """The download command's sha256 option (none while the digest is not pinned)."""
    sha256 = DOWNLOADS[path]["sha256"]
    return ["--sha256", sha256] if sha256 else []


def subdir_option(path):
    """The download command's option naming the archive folder to keep (none: all of it)."""
    folder = DOWNLOADS[path].get("archive_folder")
    return ["--subdir", folder] if folder else []


def remote_code_option(wildcards):
    """`--trust-remote-code` only for a model whose training config opts in."""
    return (
        ["--trust-remote-code"]
        if training_config(wildcards.model).trust_remote_code
        else []
    )
