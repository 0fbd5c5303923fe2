"""The tasks file: which tasks an evaluation runs and how (YAML, checked before any model loads).

    tasks: [STS12, SciFact]           # MTEB task names
    benchmark: "MTEB(eng, v2)"        # or null
    local_tasks:                      # tasks from local files (see local_tasks.py)
      - {name: LeeSTS, type: STS, path: resources/demo/tasks/lee_sts.jsonl}
    instructions: {SciFact: "..."}    # override the instruction table per task
    batch_size: 32
    max_length: 512                   # tokens per input (default: the encoder's saved length)
    cache: true                       # the in-run embedding cache
    disk_cache: true                  # also on disk, read back by a rerun (needs cache)
    keep_embeddings: false            # keep a task's embeddings on disk after its result is saved

Relative paths are taken from the current directory (where Snakemake runs).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

from l3prune.schema import schema_violation

# local task type -> the file keys it reads
LOCAL_TASK_FILES = {
    "STS": ("path",),
    "Retrieval": ("corpus", "queries", "qrels"),
    "Classification": ("path",),
    "Clustering": ("path",),
    "PairClassification": ("path",),
}
_FILE_KEYS = ("path", "corpus", "queries", "qrels")

# local task type -> the metrics mteb reports for it (any may be its main_score), and the default.
# Written out so a typo fails before the model loads; tests/test_evaluation.py checks them against
# what mteb computes.
_CUTOFFS = (1, 3, 5, 10, 20, 100, 1000)  # mteb's AbsTaskRetrieval.k_values
_RANKING = ("ndcg", "map", "recall", "precision", "mrr")
LOCAL_TASK_METRICS = {
    "STS": [
        f"{similarity}{statistic}"
        for similarity in ("", "cosine_", "manhattan_", "euclidean_")
        for statistic in ("pearson", "spearman")
    ],
    "Retrieval": [
        "accuracy",
        *(f"{metric}_at_{k}" for metric in (*_RANKING, "hit_rate") for k in _CUTOFFS),
        *(
            f"nauc_{metric}_at_{k}_{stat}"
            for metric in _RANKING
            for k in _CUTOFFS
            for stat in ("max", "std", "diff1")
        ),
    ],
    "Classification": [
        "accuracy",
        *(f"{metric}{average}" for metric in ("f1", "precision", "recall") for average in ("", "_weighted")),
        "ap",  # ap and ap_weighted: binary tasks only
        "ap_weighted",
    ],
    "Clustering": ["v_measure", "v_measure_std", "ami", "ami_std"],
    "PairClassification": [
        f"{similarity}_{metric}"
        for similarity in ("similarity", "cosine", "manhattan", "euclidean", "dot", "max")
        for metric in ("accuracy", "f1", "precision", "recall", "ap")
    ],
}
DEFAULT_MAIN_SCORE = {
    "STS": "cosine_spearman",
    "Retrieval": "ndcg_at_10",
    "Classification": "accuracy",
    "Clustering": "v_measure",
    "PairClassification": "max_ap",
}

_LOCAL_TASK_SCHEMA = {
    "type": "object",
    "required": ["name", "type"],
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string", "pattern": r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$"},
        "type": {"enum": list(LOCAL_TASK_FILES)},
        **{key: {"type": "string", "minLength": 1} for key in _FILE_KEYS},
        "instruction": {"type": "string"},
        "main_score": {"type": "string", "minLength": 1},
    },
}
SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "tasks": {"type": "array", "items": {"type": "string", "minLength": 1}},
        "benchmark": {"type": ["string", "null"]},
        "local_tasks": {"type": "array", "items": _LOCAL_TASK_SCHEMA},
        "instructions": {"type": "object", "additionalProperties": {"type": "string"}},
        "batch_size": {"type": "integer", "minimum": 1},
        "max_length": {"type": ["integer", "null"], "minimum": 1},
        "cache": {"type": "boolean"},
        "disk_cache": {"type": "boolean"},
        "keep_embeddings": {"type": "boolean"},
    },
}


@dataclass(frozen=True)
class LocalTaskSpec:
    name: str
    type: str
    files: dict[str, Path]  # file key ("path", or "corpus"/"queries"/"qrels") -> file
    instruction: str | None = None
    main_score: str | None = None


@dataclass(frozen=True)
class EvalConfig:
    tasks: list[str] = field(default_factory=list)
    benchmark: str | None = None
    local_tasks: list[LocalTaskSpec] = field(default_factory=list)
    instructions: dict[str, str] = field(default_factory=dict)
    batch_size: int = 32
    max_length: int | None = None  # None: the encoder's own (saved) length
    cache: bool = True
    disk_cache: bool = True
    keep_embeddings: bool = False

    def instruction_overrides(self) -> dict[str, str]:
        """The tasks file's instructions, local tasks' own ones included."""
        local = {spec.name: spec.instruction for spec in self.local_tasks if spec.instruction is not None}
        return {**local, **self.instructions}


# the tasks file's keys that are EvalConfig fields as they are
_SETTINGS = ("instructions", "batch_size", "max_length", "cache", "disk_cache", "keep_embeddings")


def benchmark_tasks(name: str) -> list:
    """The mteb task objects of an MTEB benchmark (mteb is imported here: only a benchmark needs it)."""
    import mteb

    try:
        return list(mteb.get_benchmark(name).tasks)
    except KeyError as e:
        raise ValueError(f"unknown MTEB benchmark {name!r}: {e.args[0]}") from None


def mteb_task(name: str):
    """The mteb task object of a task name (mteb is imported here: only named tasks need it)."""
    import mteb

    try:
        return mteb.get_task(name)
    except KeyError as e:
        # mteb's message starts with its own "KeyError: ", which the CLI line need not repeat
        raise ValueError(f"unknown MTEB task {name!r}: {e.args[0].removeprefix('KeyError: ')}") from None


def _local_task(path: Path, index: int, entry: dict) -> LocalTaskSpec:
    where = f"{path}: local_tasks[{index}] ({entry['name']})"
    needed = LOCAL_TASK_FILES[entry["type"]]
    missing = [key for key in needed if key not in entry]
    if missing:
        raise ValueError(
            f"{where}: type {entry['type']} needs key(s) {', '.join(missing)} (it reads {', '.join(needed)})"
        )
    unused = [key for key in _FILE_KEYS if key in entry and key not in needed]
    if unused:
        raise ValueError(
            f"{where}: key(s) {', '.join(unused)} not used by type {entry['type']} (it reads {', '.join(needed)})"
        )
    metrics = LOCAL_TASK_METRICS[entry["type"]]
    if "main_score" in entry and entry["main_score"] not in metrics:
        raise ValueError(
            f"{where}: main_score {entry['main_score']!r} is not a {entry['type']} metric; choose from {', '.join(metrics)}"
        )
    files = {key: Path(entry[key]) for key in needed}
    for key, file in files.items():
        if not file.is_file():
            raise FileNotFoundError(f"{where}: {key} file {file} not found")
    return LocalTaskSpec(
        entry["name"], entry["type"], files, entry.get("instruction"), entry.get("main_score")
    )


def _read_checked(path: Path) -> dict:
    """The tasks file's YAML, checked against SCHEMA (one-line errors naming the file)."""
    if not path.is_file():
        raise FileNotFoundError(f"tasks file {path} not found")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f":{mark.line + 1}" if mark else ""
        raise ValueError(f"{path}{line}: not valid YAML ({getattr(e, 'problem', e)})") from None
    data = {} if data is None else data
    violation = schema_violation(data, SCHEMA)
    if violation is not None:
        raise ValueError(f"{path}: {violation[0]}: {violation[1]}")
    return data


def local_task_paths(path: str | Path) -> list[str]:
    """The data files the tasks file's local tasks read, as written there: what the workflow's
    evaluate jobs wait for. Only the tasks file is checked; the data files may not exist yet."""
    data = _read_checked(Path(path))
    return [
        entry[key]
        for entry in data.get("local_tasks", [])
        for key in LOCAL_TASK_FILES[entry["type"]]
        if key in entry
    ]


def load_tasks_file(path: str | Path) -> EvalConfig:
    path = Path(path)
    data = _read_checked(path)
    local_tasks = [_local_task(path, i, entry) for i, entry in enumerate(data.get("local_tasks", []))]
    tasks = data.get("tasks", [])
    names = tasks + [spec.name for spec in local_tasks]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ValueError(
            f"{path}: task name(s) {', '.join(repeated)} given more than once (local task names must differ from MTEB ones)"
        )
    benchmark = data.get("benchmark")
    if not names and not benchmark:
        raise ValueError(f"{path}: nothing to evaluate; give `tasks`, `benchmark` or `local_tasks`")
    for name in tasks:  # before the model loads, not after
        try:
            mteb_task(name)
        except ValueError as e:
            raise ValueError(f"{path}: {e}") from None
    if benchmark:
        try:
            in_benchmark = {task.metadata.name for task in benchmark_tasks(benchmark)}
        except ValueError as e:
            raise ValueError(f"{path}: {e}") from None
        # a local task would replace the benchmark's task of that name (tasks are keyed by name)
        clashes = sorted(in_benchmark.intersection(spec.name for spec in local_tasks))
        if clashes:
            raise ValueError(
                f"{path}: local task name(s) {', '.join(clashes)} also name task(s) of benchmark {benchmark!r}; "
                "give the local task(s) another name"
            )
    given = {key: data[key] for key in _SETTINGS if key in data}  # EvalConfig's defaults for the rest
    return EvalConfig(tasks=tasks, benchmark=benchmark, local_tasks=local_tasks, **given)
