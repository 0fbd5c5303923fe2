"""Elastic training's loss: the weighted sum of the configured loss at each trained depth, plus an
optional distillation term from the deepest depth to each shallower one.

The model (ContrastiveModel with `depths`) gives each column as [B, K, D], one embedding per depth
from one forward pass; this loss scores depth i's queries against depth i's documents only. Any
loss works under it: HardNegativeNLLLoss gathers each depth's rows across processes as it does
alone, and the cached loss (GradCache) caches the [B, K, D] stacks as it caches [B, D] ones.

The distillation term is AdaptiveLayerLoss's and 2DMSE's idea in the contrastive loss's own terms:
each query's softmax over the batch's documents at a shallow depth is pulled towards the deepest
depth's (KL divergence, the deepest depth a fixed teacher), so a shallow depth learns the ranking
the deepest depth learns, not only its own positive.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F


class ElasticLoss(torch.nn.Module):
    """sum_i weights[i] x loss_fn(q[:, i], p[:, i], n[:, i])
    + distillation x sum_{i < deepest} KL(softmax(scores_deepest) || softmax(scores_i)),
    depths ordered shallowest first and scores the logits `loss_fn.scores` gives.
    `last` keeps each depth's loss of the last call (detached) and `last_distillation` the
    distillation term's, to look at one batch's parts (the training log has their sum)."""

    def __init__(self, loss_fn: torch.nn.Module, weights: Sequence[float], distillation: float = 0.0):
        super().__init__()
        if not weights:
            raise ValueError("elastic training needs at least one depth")
        if distillation and not hasattr(loss_fn, "scores"):
            raise ValueError(
                f"elastic distillation needs a loss with a scores() method (HardNegativeNLLLoss), "
                f"not {type(loss_fn).__name__}"
            )
        self.loss_fn = loss_fn
        self.weights = [float(w) for w in weights]
        self.distillation = float(distillation)
        self.last: list[torch.Tensor] = []
        self.last_distillation: torch.Tensor | None = None

    def forward(self, *columns: torch.Tensor | None) -> torch.Tensor:
        depths = {column.shape[1] for column in columns if column is not None}
        if depths != {len(self.weights)}:
            raise ValueError(
                f"elastic loss over {len(self.weights)} depths given columns of {sorted(depths)} depths"
            )
        at_depth = [[None if c is None else c[:, i] for c in columns] for i in range(len(self.weights))]
        losses = [self.loss_fn(*depth_columns) for depth_columns in at_depth]
        self.last = [loss.detach() for loss in losses]
        total = sum(weight * loss for weight, loss in zip(self.weights, losses, strict=True))
        if self.distillation and len(at_depth) > 1:
            distillation = self._distillation(at_depth)
            self.last_distillation = distillation.detach()
            total = total + self.distillation * distillation
        return total

    def _distillation(self, at_depth: list[list[torch.Tensor | None]]) -> torch.Tensor:
        with torch.no_grad():
            teacher = F.log_softmax(self.loss_fn.scores(*at_depth[-1]), dim=-1)
        students = (F.log_softmax(self.loss_fn.scores(*columns), dim=-1) for columns in at_depth[:-1])
        return sum(F.kl_div(s, teacher, log_target=True, reduction="batchmean") for s in students)

    def extra_repr(self) -> str:
        return f"weights={self.weights}, distillation={self.distillation}"
