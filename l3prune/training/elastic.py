"""Elastic training's loss: the weighted sum of the configured loss at each trained depth.

The model (ContrastiveModel with `depths`) gives each column as [B, K, D], one embedding per depth
from one forward pass; this loss scores depth i's queries against depth i's documents only. Any
loss works under it: HardNegativeNLLLoss gathers each depth's rows across processes as it does
alone, and the cached loss (GradCache) caches the [B, K, D] stacks as it caches [B, D] ones.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


class ElasticLoss(torch.nn.Module):
    """sum_i weights[i] x loss_fn(q[:, i], p[:, i], n[:, i]); `last` keeps each depth's loss of the
    last call (detached), for the training log."""

    def __init__(self, loss_fn: torch.nn.Module, weights: Sequence[float]):
        super().__init__()
        if not weights:
            raise ValueError("elastic training needs at least one depth")
        self.loss_fn = loss_fn
        self.weights = [float(w) for w in weights]
        self.last: list[torch.Tensor] = []

    def forward(self, *columns: torch.Tensor | None) -> torch.Tensor:
        depths = {column.shape[1] for column in columns if column is not None}
        if depths != {len(self.weights)}:
            raise ValueError(
                f"elastic loss over {len(self.weights)} depths given columns of {sorted(depths)} depths"
            )
        losses = [
            self.loss_fn(*(None if column is None else column[:, i] for column in columns))
            for i in range(len(self.weights))
        ]
        self.last = [loss.detach() for loss in losses]
        return sum(weight * loss for weight, loss in zip(self.weights, losses, strict=True))

    def extra_repr(self) -> str:
        return f"weights={self.weights}"
