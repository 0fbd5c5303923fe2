"""`load_dataset`, the seed's entry point to the training data."""

from __future__ import annotations

import os

from .blocks import BlockedDataset
from .e5 import E5Data
from .jsonl import JsonlData
from .wiki1m import Wiki1M

DATASETS: dict[str, type[BlockedDataset]] = {"E5": E5Data, "Wiki1M": Wiki1M, "jsonl": JsonlData}


def load_dataset(
    name: str,
    split: str = "train",
    *,
    file_path: str | os.PathLike,
    effective_batch_size: int = 1,
    seed: int = 42,
) -> BlockedDataset:
    """A training dataset whose consecutive blocks of `effective_batch_size` samples each come
    from one sub-dataset (see `blocks.py`); `ds[i]` is a TrainSample."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; available: {', '.join(DATASETS)}")
    if split != "train":
        raise ValueError(f"split {split!r} is not available; the training datasets have only split 'train'")
    return DATASETS[name](file_path, effective_batch_size=effective_batch_size, seed=seed)
