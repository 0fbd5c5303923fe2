"""An LLMEncoder as an mteb 2 model: instructions by task, an in-run embedding cache, a ModelMeta.

mteb's evaluators encode without de-duplication: an STS task encodes both sides of every pair,
so the Lee task (1,225 pairs over 50 documents) would embed each document 49 times. The cache
keys embeddings by (instruction, text), so each distinct input is encoded once per run (tasks
that share a corpus or a sentence with the same instruction share its embedding). Its memory is
bounded: past `max_bytes` the oldest embeddings are dropped, which only costs re-encoding.

With an EmbeddingStore (embedding_store.py) the embeddings are also written to disk, every
PERSIST_EVERY new texts, and looked up there before encoding: a job killed part way through a
task encodes on its rerun only what it had not written yet.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from time import perf_counter

import numpy as np
from mteb.models.abs_encoder import AbsEncoder
from mteb.models.model_meta import ModelMeta, ScoringFunction
from mteb.types import PromptType

from .embedding_store import EmbeddingStore
from .instructions import InstructionTable

Key = tuple[str, str]  # (instruction, text); "" = no instruction
# new texts encoded between two writes to the store: what a preempted job may have to redo
PERSIST_EVERY = 8192


class EmbeddingCache:
    """Embeddings computed so far, by (instruction, text); counts how many lookups it served.

    Holds at most `max_bytes` of embeddings (default 4 GiB, about 260k rows of 4096 floats);
    beyond that the oldest rows are dropped first.
    """

    def __init__(self, max_bytes: int = 4 << 30):
        self._rows: dict[Key, np.ndarray] = {}
        self.max_bytes = max_bytes
        self.nbytes = 0
        self.hits = 0  # inputs answered from the cache (or by an identical input in the same call)
        self.misses = 0  # distinct inputs that had to be encoded

    def __len__(self) -> int:
        return len(self._rows)

    def missing(self, keys: list[Key]) -> list[Key]:
        """The distinct keys not cached yet, in first-seen order; updates the hit/miss counts."""
        absent = list(dict.fromkeys(key for key in keys if key not in self._rows))
        self.misses += len(absent)
        self.hits += len(keys) - len(absent)
        return absent

    def add(self, keys: list[Key], embeddings: np.ndarray) -> None:
        self._rows.update(zip(keys, embeddings, strict=True))
        self.nbytes += embeddings[: len(keys)].nbytes

    def get(self, keys: list[Key]) -> np.ndarray:
        """The rows of `keys` (all just added or cached), then the oldest rows beyond the budget are dropped."""
        rows = np.stack([self._rows[key] for key in keys])
        while self.nbytes > self.max_bytes and self._rows:
            self.nbytes -= self._rows.pop(next(iter(self._rows))).nbytes
        return rows


class MTEBEncoder(AbsEncoder):
    """mteb's encoder protocol over an LLMEncoder.

    Documents of retrieval-like tasks (mteb asks with prompt_type=document) get no instruction;
    everything else (queries, both sides of STS/classification/clustering/pair classification)
    gets the task's instruction from `instructions`, passed to the encoder as [instruction, text].
    """

    def __init__(
        self,
        encoder,
        instructions: InstructionTable,
        meta: ModelMeta,
        cache: bool = True,
        store: EmbeddingStore | None = None,
    ):
        self.model = encoder
        self.instructions = instructions
        self.mteb_model_meta = meta
        self.cache = EmbeddingCache() if cache else None
        self.store = store if cache else None  # the store fills the cache: no cache, no store
        self.persist_every = PERSIST_EVERY
        self.texts_requested = 0
        self.texts_encoded = 0
        self.texts_loaded = 0  # read back from the store instead of encoded
        self.encode_seconds = 0.0

    def counts(self) -> dict[str, float]:
        return dict(
            texts_requested=self.texts_requested,
            texts_encoded=self.texts_encoded,
            texts_loaded=self.texts_loaded,
            encode_seconds=self.encode_seconds,
        )

    def encode(self, inputs, *, task_metadata, hf_split, hf_subset, prompt_type=None, **kwargs) -> np.ndarray:
        texts = [text for batch in inputs for text in batch["text"]]
        instruction = (
            ""
            if prompt_type == PromptType.document
            else self.instructions.instruction(task_metadata.name, task_metadata.type)
        )
        keys = [(instruction, text) for text in texts]
        self.texts_requested += len(keys)
        batch_size, progress = kwargs.get("batch_size", 32), kwargs.get("show_progress_bar", False)
        if self.cache is None:
            return self._encode(keys, batch_size, progress)
        to_encode = self.cache.missing(keys)
        if self.store is None:
            self.cache.add(to_encode, self._encode(to_encode, batch_size, progress))
            return self.cache.get(keys)
        stored, embeddings = self.store.lookup(task_metadata.name, to_encode)
        self.cache.add(stored, embeddings)
        self.texts_loaded += len(stored)
        stored = set(stored)
        # longest first, so each written chunk batches texts of similar length
        to_encode = sorted((key for key in to_encode if key not in stored), key=lambda key: -len(key[1]))
        for start in range(0, len(to_encode), self.persist_every):
            chunk = to_encode[start : start + self.persist_every]
            embeddings = self._encode(chunk, batch_size, progress)
            self.store.save(task_metadata.name, chunk, embeddings)
            self.cache.add(chunk, embeddings)
        return self.cache.get(keys)

    def _encode(self, keys: list[Key], batch_size: int, show_progress_bar: bool) -> np.ndarray:
        if not keys:
            return np.empty((0, 0), dtype=np.float32)
        start = perf_counter()
        embeddings = self.model.encode(
            [[instruction, text] if instruction else text for instruction, text in keys],
            batch_size=batch_size,
            show_progress_bar=show_progress_bar,
            convert_to_numpy=True,
        )
        self.encode_seconds += perf_counter() - start
        self.texts_encoded += len(keys)
        return embeddings


def model_revision(source: str | Path, encoder) -> str:
    """A fingerprint of the model as evaluated, used as the mteb revision so that cached results
    of an older or differently loaded variant are never taken for this one.

    It covers the base model, the encoder settings (layer count, pooling, the max_length inputs
    are cut to, set by the evaluation or saved with the variant), the dtype and,
    when `source` is a folder, each file's name, size and modification time (cheap; a retrained
    variant rewrites its files).
    """
    digest = hashlib.sha256()
    identity = dict(
        base_model=str(encoder.base_model_name_or_path),
        settings=encoder.settings(),
        max_length=encoder.max_length,
        dtype=str(next(encoder.model.parameters()).dtype),
    )
    digest.update(json.dumps(identity, sort_keys=True).encode())
    folder = Path(source)
    if folder.is_dir():
        for file in sorted(p for p in folder.iterdir() if p.is_file()):
            stat = file.stat()
            digest.update(f"{file.name}:{stat.st_size}:{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:12]


def published_parameters(encoder) -> int:
    """The parameter count of the model as published: a LoRA adapter's own weights fold into the
    base weights when merged, so they are not counted."""
    return sum(p.numel() for name, p in encoder.model.named_parameters() if "lora_" not in name)


def mteb_name(base_model: str | Path, variant: str) -> str:
    """The mteb model name of `variant` of `base_model` (a hub name or a path): l3prune/<the base
    model's last path part>-<variant>, e.g. l3prune/Meta-Llama-3-8B-Instruct-small."""
    return f"l3prune/{Path(str(base_model)).name}-{variant}"


def model_meta(
    encoder,
    name: str,
    source: str | Path,
    *,
    training_datasets: set[str] | None = None,
    framework: tuple[str, ...] = ("PyTorch",),
    release_date: str | None = None,
    license: str | None = None,
) -> ModelMeta:
    """mteb's record of the model; loader_kwargs are what reloads it: LLMEncoder.from_pretrained(**loader_kwargs).
    `training_datasets`: the mteb tasks its training data overlaps (None: unknown)."""
    from ..assets.model_names import hub_name

    return ModelMeta.create_empty(
        overwrites=dict(
            name=name,
            revision=model_revision(source, encoder),
            loader_kwargs=dict(name_or_path=str(source), num_layers=encoder.num_layers),
            n_parameters=published_parameters(encoder),
            n_embedding_parameters=encoder.model.get_input_embeddings().weight.numel(),
            embed_dim=encoder.model.config.hidden_size,
            max_tokens=encoder.max_length,
            adapted_from=hub_name(str(encoder.base_model_name_or_path)),
            similarity_fn_name=ScoringFunction.COSINE,  # the enum: a plain string is not validated here and fails later
            use_instructions=True,
            framework=list(framework),
            training_datasets=training_datasets,
            release_date=release_date,
            license=license,
            open_weights=True,
        )
    )
