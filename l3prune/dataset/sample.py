"""The training sample every dataset yields."""

from __future__ import annotations

from typing import NamedTuple

Text = str | list[str]  # a text, or [instruction, text]


class TrainSample(NamedTuple):
    """A (query, positive, negative) triple; the query carries its instruction as [instruction, text].

    Positives and negatives are plain texts; `negative` is None where the data has no hard negative.
    """

    query: Text
    positive: Text
    negative: Text | None = None
