"""The on-disk embedding cache: a preempted evaluation encodes on its rerun only what it had not
written, under keys that change with the instruction, the text and the model revision (max_length)."""

import json

import numpy as np
import pytest

from l3prune import LLMEncoder
from l3prune.evaluation import mteb_model
from l3prune.evaluation.embedding_store import EmbeddingStore
from l3prune.evaluation.run import evaluate
from l3prune.evaluation.tasks_file import load_tasks_file

WORDS = "the model layer text query document passage retrieve question answer encoder prune small large".split()


class Preempted(BaseException):
    """What a kill looks like to the code: not an Exception, so nothing catches it."""


class EncodeCounter:
    """Stands in for encoder.encode: records each input it encodes; raises Preempted once `limit`
    inputs have been encoded."""

    def __init__(self, encode, limit=None):
        self.encode, self.limit, self.inputs = encode, limit, []

    def __call__(self, inputs, **kwargs):
        if self.limit is not None and len(self.inputs) + len(inputs) > self.limit:
            raise Preempted
        self.inputs += [tuple(x) if isinstance(x, list) else ("", x) for x in inputs]
        return self.encode(inputs, **kwargs)


def sentence(i: int) -> str:
    return " ".join(WORDS[(i * 3 + j) % len(WORDS)] for j in range(2 + i % 5)) + f" {i}"


@pytest.fixture
def variant(tiny_llama, tmp_path):
    folder = tmp_path / "variant"
    LLMEncoder.from_pretrained(tiny_llama).save(folder)
    return folder


@pytest.fixture
def tasks(tmp_path):
    """One STS task of 10 distinct texts; further text of the tasks file after it."""
    rows = [{"sentence1": sentence(2 * i), "sentence2": sentence(2 * i + 1), "score": float(i % 3)} for i in range(5)]
    path = tmp_path / "sts.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))

    def write(extra="", instruction="Compare:"):
        file = tmp_path / "tasks.yaml"
        file.write_text(f"local_tasks:\n  - {{name: S, type: STS, path: {path}, instruction: '{instruction}'}}\n{extra}")
        return load_tasks_file(file)

    return write


def run(variant, config, out, monkeypatch, limit=None, **kwargs):
    encoder = LLMEncoder.from_pretrained(variant)  # a fresh process's encoder
    counter = EncodeCounter(encoder.encode, limit)
    monkeypatch.setattr(encoder, "encode", counter)
    try:
        summary = evaluate(encoder, config, out, name="l3prune/t-v", source=variant, **kwargs)
    except Preempted:
        summary = None
    return summary, counter.inputs


def stored_rows(out) -> int:
    return sum(len(np.load(f)) for f in (out.parent / "embeddings").rglob("*.keys.npy"))


def test_a_rerun_after_preemption_encodes_only_what_was_not_written(variant, tasks, tmp_path, monkeypatch):
    monkeypatch.setattr(mteb_model, "PERSIST_EVERY", 3)
    out = tmp_path / "out" / "mteb.json"
    # killed before the 8th text: every chunk of 3 (or a call's rest) finished before is on disk
    summary, first = run(variant, tasks(), out, monkeypatch, limit=7)
    assert summary is None and not out.exists()
    assert 3 <= len(first) <= 7 and stored_rows(out) == len(first)

    summary, second = run(variant, tasks(), out, monkeypatch)
    texts = {("Compare:", sentence(i)) for i in range(10)}
    assert set(second) == texts - set(first) and len(second) == 10 - len(first)
    task = summary["tasks"]["S"]
    assert (task["texts_encoded"], task["texts_loaded"]) == (10 - len(first), len(first))
    # the embeddings read back are those an uninterrupted run computes
    fresh, _ = run(variant, tasks("cache: false\n"), tmp_path / "fresh" / "mteb.json", monkeypatch)
    assert task["main_score"] == fresh["tasks"]["S"]["main_score"]
    assert stored_rows(out) == 0  # the task's result is saved: its embeddings are deleted


def test_another_instruction_or_length_does_not_reuse_stored_embeddings(variant, tasks, tmp_path, monkeypatch):
    out = tmp_path / "out" / "mteb.json"
    summary, first = run(variant, tasks("keep_embeddings: true\n"), out, monkeypatch)
    assert len(first) == 10 and stored_rows(out) == 10
    # a changed instruction: the task reruns and encodes every text again
    summary, second = run(variant, tasks("keep_embeddings: true\n", instruction="Match:"), out, monkeypatch)
    assert len(second) == 10 and summary["tasks"]["S"]["texts_loaded"] == 0
    # the first instruction again, at another max_length: another revision, nothing reused
    summary, third = run(variant, tasks("keep_embeddings: true\n"), out, monkeypatch, max_length=16)
    assert len(third) == 10 and summary["tasks"]["S"]["texts_loaded"] == 0
    assert len(list((out.parent / "embeddings").iterdir())) == 2  # one folder per revision


def test_disk_cache_off_writes_nothing(variant, tasks, tmp_path, monkeypatch):
    out = tmp_path / "out" / "mteb.json"
    run(variant, tasks("disk_cache: false\nkeep_embeddings: true\n"), out, monkeypatch)
    assert not (out.parent / "embeddings").exists()


def test_store_keys_by_instruction_and_text_and_ignores_a_half_written_shard(tmp_path):
    store = EmbeddingStore(tmp_path)
    rows = np.arange(6, dtype=np.float32).reshape(3, 2)
    store.save("T", [("i", "a"), ("i", "b"), ("", "a")], rows)
    # a new store (another process) reads the shard back
    keys, found = EmbeddingStore(tmp_path).lookup("T", [("", "a"), ("j", "a"), ("i", "a"), ("ia", "")])
    assert keys == [("", "a"), ("i", "a")]
    np.testing.assert_array_equal(found, [[4, 5], [0, 1]])
    assert EmbeddingStore(tmp_path).lookup("Other", [("i", "a")])[0] == []
    # vectors written, keys not yet (killed in between): the shard does not count
    (shard,) = (tmp_path / "T").glob("*.keys.npy")
    shard.unlink()
    assert EmbeddingStore(tmp_path).lookup("T", [("i", "a")])[0] == []
