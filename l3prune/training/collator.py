"""Turning a batch of TrainSamples into the encoder's features, one set per text column."""

from __future__ import annotations

from collections.abc import Callable, Sequence


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
        with_negative = sum(s.negative is not None for s in samples)
        if with_negative == len(samples):
            batch["negative"] = self.tokenize([s.negative for s in samples])
        elif with_negative:
            raise ValueError(
                f"a training batch mixes {with_negative} samples with a hard negative and "
                f"{len(samples) - with_negative} without; give every sample of a data file a 'negative' or none"
            )
        return batch
