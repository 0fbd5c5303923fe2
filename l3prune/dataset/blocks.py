"""Arranging several sub-datasets so that every training batch comes from one of them.

In-batch negatives only teach something when they are of the same kind as the positive, so a
global batch (per-device batch x processes = `effective_batch_size`) never mixes sub-datasets.
The arrangement is the original one: shuffle each sub-dataset's ids, cut them into blocks of
`effective_batch_size`, drop each incomplete last block, shuffle the blocks. Read the dataset in
order (a sequential sampler) and each consecutive block is one batch.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import numpy as np

from .sample import TrainSample

logger = logging.getLogger(__name__)


def block_order(sizes: Sequence[int], block_size: int, seed: int) -> np.ndarray:
    """Global sample ids (sub-dataset k owns ids sum(sizes[:k]) ...) in blocks of one sub-dataset."""
    rng = np.random.default_rng(seed)
    blocks, first_id = [], 0
    for size in sizes:
        ids = rng.permutation(size) + first_id
        num_blocks = size // block_size
        blocks.append(ids[: num_blocks * block_size].reshape(num_blocks, block_size))
        first_id += size
    blocks = np.concatenate(blocks)
    return blocks[rng.permutation(len(blocks))].reshape(-1)


class BlockedDataset:
    """Named sub-datasets (each: len() and [row] -> TrainSample) in a seeded order where each
    consecutive block of `effective_batch_size` samples comes from one sub-dataset.

    Only the order (one int64 per sample) lives here; samples are read from the sub-datasets
    when indexed. `subset_of(i)` names the sub-dataset sample i came from. A map-style dataset
    (len and indexing) as torch's DataLoader takes it; no torch import, so data checks stay light.
    """

    def __init__(
        self, subsets: Mapping[str, Sequence[TrainSample]], effective_batch_size: int, seed: int = 42
    ):
        if (
            isinstance(effective_batch_size, bool)
            or not isinstance(effective_batch_size, int)
            or effective_batch_size < 1
        ):
            raise ValueError(f"effective_batch_size must be a positive integer, got {effective_batch_size!r}")
        self.subset_names = list(subsets)
        self.effective_batch_size = effective_batch_size
        self.seed = seed
        self._subsets = list(subsets.values())
        sizes = [len(subset) for subset in self._subsets]
        for subset in self._subsets:  # fail now on a wrong file, not hours into training
            if len(subset):
                subset[0]
        self._first_ids = np.cumsum([0, *sizes])
        self._order = block_order(sizes, effective_batch_size, seed)
        if len(self._order) == 0:
            counts = ", ".join(f"{name}: {size}" for name, size in zip(self.subset_names, sizes, strict=True))
            raise ValueError(f"no sub-dataset has a full batch of {effective_batch_size} samples ({counts})")
        for name, size in zip(self.subset_names, sizes, strict=True):
            dropped = size % effective_batch_size
            logger.info("%s: %d samples, %d left out (incomplete last batch)", name, size, dropped)

    def __len__(self) -> int:
        return len(self._order)

    def __getitem__(self, index: int) -> TrainSample:
        subset, row = self._locate(index)
        return self._subsets[subset][row]

    def subset_of(self, index: int) -> str:
        return self.subset_names[self._locate(index)[0]]

    def _locate(self, index: int) -> tuple[int, int]:
        sample_id = int(self._order[index])
        subset = int(np.searchsorted(self._first_ids, sample_id, side="right")) - 1
        return subset, sample_id - int(self._first_ids[subset])
