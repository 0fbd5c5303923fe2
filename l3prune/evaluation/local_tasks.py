"""MTEB tasks read from local files (offline use, private data), one small class per task type.

    STS                 jsonl: sentence1, sentence2, score
    Retrieval           corpus.jsonl: _id, text[, title]; queries.jsonl: _id, text;
                        qrels.tsv: query-id, corpus-id, score (a header line is optional)
    Classification      jsonl: text, label, split (train | test)
    Clustering          jsonl: text, label
    PairClassification  jsonl: sentence1, sentence2, label (0 | 1)

Every local task evaluates one split, "test". A file with a bad line stops the run with a
one-line error naming file:line and the expected fields.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from datasets import Dataset, DatasetDict
from mteb.abstasks.classification import AbsTaskClassification
from mteb.abstasks.clustering import AbsTaskClustering
from mteb.abstasks.pair_classification import AbsTaskPairClassification
from mteb.abstasks.retrieval import AbsTaskRetrieval
from mteb.abstasks.retrieval_dataset_loaders import RetrievalSplitData
from mteb.abstasks.sts import AbsTaskSTS
from mteb.abstasks.task_metadata import TaskMetadata

from l3prune.files import sha256_file

from .tasks_file import DEFAULT_MAIN_SCORE, LocalTaskSpec


def read_jsonl(
    path: Path, fields: dict[str, type | tuple[type, ...]], values: dict[str, tuple] | None = None
) -> list[dict[str, Any]]:
    """The objects of a jsonl file, each checked to hold `fields` (name -> accepted types) and, for
    the fields named in `values`, one of the values listed there."""
    expected = ", ".join(fields)
    rows = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(
                    f"{path}:{number}: not valid JSON ({e.msg}); each line is an object with {expected}"
                ) from None
            if not isinstance(row, dict):
                raise ValueError(
                    f"{path}:{number}: expected an object with {expected}, got {type(row).__name__}"
                )
            for name, types in fields.items():
                if name not in row:
                    raise ValueError(f"{path}:{number}: missing key {name!r} (each line needs {expected})")
                if not isinstance(row[name], types) or isinstance(row[name], bool):
                    raise ValueError(
                        f"{path}:{number}: {name}={row[name]!r} has the wrong type (each line needs {expected})"
                    )
            for name, allowed in (values or {}).items():
                if row[name] not in allowed:
                    raise ValueError(
                        f"{path}:{number}: {name}={row[name]!r}; allowed values: {', '.join(map(str, allowed))}"
                    )
            rows.append(row)
    if not rows:
        raise ValueError(f"{path}: no examples (each line is an object with {expected})")
    return rows


def _columns(rows: list[dict], names: list[str]) -> dict[str, list]:
    return {name: [row[name] for row in rows] for name in names}


def files_sha256(paths) -> str:
    """The data revision of a local task: evaluate() reruns a task whose revision changed."""
    return hashlib.sha256(" ".join(sha256_file(path) for path in paths).encode()).hexdigest()[:16]


def local_metadata(spec: LocalTaskSpec) -> TaskMetadata:
    return TaskMetadata(
        name=spec.name,
        description=f"local {spec.type} task from {', '.join(map(str, spec.files.values()))}",
        type=spec.type,
        category="t2t",
        modalities=["text"],
        main_score=spec.main_score or DEFAULT_MAIN_SCORE[spec.type],
        dataset={"path": str(next(iter(spec.files.values()))), "revision": files_sha256(spec.files.values())},
        eval_splits=["test"],
        eval_langs=["eng-Latn"],
    )


class LocalTask:
    """Mixed into an mteb AbsTask: data from the files of a tasks-file entry (`spec`).

    build_local_task() makes a subclass per entry: mteb wants `metadata` on the class.
    """

    spec: LocalTaskSpec

    def load_data(self, num_proc: int | None = None, **kwargs: Any) -> None:
        if not self.data_loaded:
            self.dataset = {"default": self.read()}
            self.data_loaded = True

    def read(self):
        raise NotImplementedError


class LocalSTSTask(LocalTask, AbsTaskSTS):
    def read(self):
        path = self.spec.files["path"]
        rows = read_jsonl(path, {"sentence1": str, "sentence2": str, "score": (int, float)})
        scores = [row["score"] for row in rows]
        self.min_score, self.max_score = min(scores), max(scores)  # mteb rescales by these
        return DatasetDict({"test": Dataset.from_dict(_columns(rows, ["sentence1", "sentence2", "score"]))})


class LocalClassificationTask(LocalTask, AbsTaskClassification):
    def read(self):
        path = self.spec.files["path"]
        rows = read_jsonl(
            path, {"text": str, "label": (str, int), "split": str}, {"split": ("train", "test")}
        )
        # mteb's classifier scores binary tasks with pos_label=1: labels become ids 0..n-1
        label_ids = {label: i for i, label in enumerate(sorted({row["label"] for row in rows}, key=str))}
        splits = {}
        for split in ("train", "test"):
            chosen = [row for row in rows if row["split"] == split]
            if not chosen:
                raise ValueError(
                    f"{path}: no examples with split={split!r}; classification needs train and test examples"
                )
            splits[split] = Dataset.from_dict(
                {
                    "text": [row["text"] for row in chosen],
                    "label": [label_ids[row["label"]] for row in chosen],
                }
            )
        return DatasetDict(splits)


class LocalClusteringTask(LocalTask, AbsTaskClustering):
    input_column_name = "text"
    label_column_name = "label"
    # mteb embeds a 4% sample of its big hub sets; a local set is embedded whole
    max_fraction_of_documents_to_embed = None

    def read(self):
        rows = read_jsonl(self.spec.files["path"], {"text": str, "label": (str, int)})
        return DatasetDict({"test": Dataset.from_dict(_columns(rows, ["text", "label"]))})


class LocalPairClassificationTask(LocalTask, AbsTaskPairClassification):
    label_column_name = "label"

    def read(self):
        rows = read_jsonl(
            self.spec.files["path"], {"sentence1": str, "sentence2": str, "label": int}, {"label": (0, 1)}
        )
        return DatasetDict({"test": Dataset.from_dict(_columns(rows, ["sentence1", "sentence2", "label"]))})


def read_qrels(path: Path, query_ids: set[str], corpus_ids: set[str]) -> dict[str, dict[str, int]]:
    relevant: dict[str, dict[str, int]] = {}
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            fields = line.rstrip("\n").split("\t")
            if number == 1 and fields[-1] == "score":  # the BEIR header
                continue
            if len(fields) != 3 or not fields[2].lstrip("-").isdigit():
                raise ValueError(
                    f"{path}:{number}: expected query-id<TAB>corpus-id<TAB>integer score, got {line.strip()!r}"
                )
            query_id, corpus_id, score = fields
            if query_id not in query_ids:
                raise ValueError(f"{path}:{number}: query-id {query_id!r} is not in the queries file")
            if corpus_id not in corpus_ids:
                raise ValueError(f"{path}:{number}: corpus-id {corpus_id!r} is not in the corpus file")
            relevant.setdefault(query_id, {})[corpus_id] = int(score)
    if not relevant:
        raise ValueError(f"{path}: no relevance judgements (lines of query-id<TAB>corpus-id<TAB>score)")
    return relevant


class LocalRetrievalTask(LocalTask, AbsTaskRetrieval):
    def read(self):
        files = self.spec.files
        corpus = read_jsonl(files["corpus"], {"_id": str, "text": str})
        queries = read_jsonl(files["queries"], {"_id": str, "text": str})
        relevant = read_qrels(files["qrels"], {q["_id"] for q in queries}, {d["_id"] for d in corpus})
        split = RetrievalSplitData(
            corpus=Dataset.from_dict(
                {
                    "id": [d["_id"] for d in corpus],
                    "text": [d["text"] for d in corpus],
                    "title": [str(d.get("title") or "") for d in corpus],
                }
            ),
            queries=Dataset.from_dict(
                {"id": [q["_id"] for q in queries], "text": [q["text"] for q in queries]}
            ),
            relevant_docs=relevant,
            top_ranked=None,
        )
        return {"test": split}


TASK_CLASSES = {
    "STS": LocalSTSTask,
    "Retrieval": LocalRetrievalTask,
    "Classification": LocalClassificationTask,
    "Clustering": LocalClusteringTask,
    "PairClassification": LocalPairClassificationTask,
}


def build_local_task(spec: LocalTaskSpec) -> LocalTask:
    base = TASK_CLASSES[spec.type]
    task_class = type(
        f"{base.__name__}[{spec.name}]", (base,), {"metadata": local_metadata(spec), "spec": spec}
    )
    return task_class()
