"""Turning a batch of TrainSamples into the encoder's features, one set per text column."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ..dataset import batch_negatives


class ContrastiveCollator:
    """[TrainSample(query, positive, negative), ...] -> {"query": features, "positive": features,
    "negative": features}; "negative" is left out when the batch has no hard negatives.

    `tokenize` is `LLMEncoder.tokenize`, so training reads texts exactly as inference does
    (instruction joining, pooling mask, length limits).
    """

    def __init__(self, tokenize: Callable):
        self.tokenize = tokenize

    def __call__(self, samples: Sequence) -> dict[str, dict]:
        batch = {
            "query": self.tokenize([s.query for s in samples]),
            "positive": self.tokenize([s.positive for s in samples]),
        }
        negatives = batch_negatives(samples)
        if negatives is not None:
            batch["negative"] = self.tokenize(negatives)
        return batch
