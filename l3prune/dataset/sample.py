"""The training sample every dataset yields."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

Text = str | list[str]  # a text, or [instruction, text]


class TrainSample(NamedTuple):
    """A (query, positive, negative) triple; the query carries its instruction as [instruction, text].

    Positives and negatives are plain texts; `negative` is None where the data has no hard negative.
    """

    query: Text
    positive: Text
    negative: Text | None = None


def batch_negatives(samples: Sequence[TrainSample]) -> list[Text] | None:
    """The batch's hard negatives, or None when it has none; a batch mixing both is an error, since
    the loss is either with hard negatives or without (layerwise loss and training alike)."""
    with_negative = sum(s.negative is not None for s in samples)
    if with_negative == 0:
        return None
    if with_negative < len(samples):
        raise ValueError(
            f"a batch mixes {with_negative} samples with a hard negative and "
            f"{len(samples) - with_negative} without; give every sample of a data file a 'negative' or none"
        )
    return [s.negative for s in samples]
