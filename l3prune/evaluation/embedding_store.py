"""Embeddings kept on disk while a variant is evaluated, so a preempted job does not encode again
what it had already encoded.

    <folder>/<Task>/<shard>.keys.npy      the keys of a shard's rows (32 hex digits each)
    <folder>/<Task>/<shard>.vectors.npy   its embeddings, float32 [rows, dim]

The folder is per model revision (mteb_model.model_revision: model, encoder settings, the
max_length, dtype), so one key, a digest of (instruction, text), names one embedding. Shards are
written whole (vectors first, then the keys file, each atomically), and a shard counts only once
its keys file exists, so a job killed while writing leaves no half shard; jobs evaluating other
tasks of the same variant in parallel write other folders.
"""

from __future__ import annotations

import hashlib
import shutil
import uuid
from pathlib import Path

import numpy as np

from ..files import atomic_output

Key = tuple[str, str]  # (instruction, text)


def key_digest(key: Key) -> bytes:
    instruction, text = key
    return hashlib.sha256(f"{len(instruction)}:{instruction}{text}".encode()).hexdigest()[:32].encode()


class _TaskShards:
    """The shards of one task folder: a sorted key index over them, the vectors mapped lazily."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.shards: list[Path] = []  # vectors files, by shard number
        self._vectors: dict[int, np.ndarray] = {}
        keys, shard_of, row_of = [], [], []
        for keys_file in sorted(folder.glob("*.keys.npy")):
            vectors = keys_file.with_name(keys_file.name.replace(".keys.npy", ".vectors.npy"))
            if vectors.is_file():
                self._add(np.load(keys_file), vectors, keys, shard_of, row_of)
        self._index(keys, shard_of, row_of)

    def _add(self, digests, vectors: Path, keys, shard_of, row_of) -> None:
        keys.append(np.asarray(digests, dtype="S32"))
        shard_of.append(np.full(len(digests), len(self.shards), dtype=np.int64))
        row_of.append(np.arange(len(digests), dtype=np.int64))
        self.shards.append(vectors)

    def _index(self, keys, shard_of, row_of) -> None:
        keys = np.concatenate(keys) if keys else np.empty(0, dtype="S32")
        order = np.argsort(keys, kind="stable")
        self.keys = keys[order]
        self.shard_of = np.concatenate(shard_of)[order] if shard_of else np.empty(0, dtype=np.int64)
        self.row_of = np.concatenate(row_of)[order] if row_of else np.empty(0, dtype=np.int64)

    def find(self, digests: np.ndarray) -> np.ndarray:
        """The index position of each digest, -1 where it is not stored."""
        at = np.searchsorted(self.keys, digests)
        found = at < len(self.keys)
        found[found] = self.keys[at[found]] == digests[found]
        return np.where(found, at, -1)

    def _mapped(self, shard: int) -> np.ndarray:
        if shard not in self._vectors:
            self._vectors[shard] = np.load(self.shards[shard], mmap_mode="r")
        return self._vectors[shard]

    def rows(self, positions: np.ndarray) -> np.ndarray:
        """The embeddings at index `positions`, read shard by shard (only those rows)."""
        shard_ids, rows = self.shard_of[positions], self.row_of[positions]
        out = np.empty((len(positions), self._mapped(int(shard_ids[0])).shape[1]), dtype=np.float32)
        for shard in np.unique(shard_ids):
            chosen = shard_ids == shard
            out[chosen] = self._mapped(int(shard))[rows[chosen]]
        return out

    def append(self, digests: np.ndarray, vectors: Path) -> None:
        keys, shard_of, row_of = [self.keys], [self.shard_of], [self.row_of]
        self._add(digests, vectors, keys, shard_of, row_of)
        self._index(keys, shard_of, row_of)


class EmbeddingStore:
    """Embeddings by (instruction, text) under `folder`, one subfolder per task."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self._tasks: dict[str, _TaskShards] = {}

    def _task(self, task: str) -> _TaskShards:
        if task not in self._tasks:
            self._tasks[task] = _TaskShards(self.folder / task)
        return self._tasks[task]

    def lookup(self, task: str, keys: list[Key]) -> tuple[list[Key], np.ndarray]:
        """The keys stored for `task`, in the order given, and their embeddings."""
        shards = self._task(task)
        if not keys or not len(shards.keys):
            return [], np.empty((0, 0), dtype=np.float32)
        positions = shards.find(np.array([key_digest(key) for key in keys], dtype="S32"))
        hit = positions >= 0
        if not hit.any():
            return [], np.empty((0, 0), dtype=np.float32)
        return [key for key, found in zip(keys, hit, strict=True) if found], shards.rows(positions[hit])

    def save(self, task: str, keys: list[Key], embeddings: np.ndarray) -> None:
        """Write one shard of `keys` and their embeddings."""
        if not keys:
            return
        digests = np.array([key_digest(key) for key in keys], dtype="S32")
        stem = self.folder / task / uuid.uuid4().hex
        vectors = stem.with_name(stem.name + ".vectors.npy")
        with atomic_output(vectors) as tmp, open(tmp, "wb") as f:
            np.save(f, np.asarray(embeddings, dtype=np.float32))
        with atomic_output(stem.with_name(stem.name + ".keys.npy")) as tmp, open(tmp, "wb") as f:
            np.save(f, digests)  # last: the shard counts from here on
        self._task(task).append(digests, vectors)

    def drop(self, tasks) -> None:
        """Delete the embeddings of `tasks` (their results are saved: nothing will read them)."""
        for task in tasks:
            self._tasks.pop(task, None)
            shutil.rmtree(self.folder / task, ignore_errors=True)
