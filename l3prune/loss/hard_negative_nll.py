"""The contrastive loss of LLM2Vec / L3Prune: in-batch negatives plus hard negatives."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .gather import all_gather_with_grad, is_distributed


class HardNegativeNLLLoss(torch.nn.Module):
    """Mean cross-entropy of scale x cosine similarity between each query and every positive and
    hard negative of the (global) batch, the target being the query's own positive.

    Under torch.distributed (world size > 1) queries, positives and negatives are gathered from
    all processes, gradients flowing back to their owners, so every process computes the loss of
    the global batch; every process must then call it, all with or all without negatives.
    Similarities and loss are computed in float32 at least (float64 inputs stay float64).
    `scale` is 1 / temperature: 20 by default, 50 in the original training configs.
    """

    def __init__(self, scale: float = 20.0):
        super().__init__()
        self.scale = scale

    def forward(
        self, q_reps: torch.Tensor, d_reps_pos: torch.Tensor, d_reps_neg: torch.Tensor | None = None
    ) -> torch.Tensor:
        scores = self.scores(q_reps, d_reps_pos, d_reps_neg)
        targets = torch.arange(len(scores), device=scores.device)  # positives come first, in query order
        return F.cross_entropy(scores, targets)

    def scores(
        self, q_reps: torch.Tensor, d_reps_pos: torch.Tensor, d_reps_neg: torch.Tensor | None = None
    ) -> torch.Tensor:
        """[global queries, global positives + negatives]: scale x cosine, the logits of the loss."""
        if q_reps.shape[0] != d_reps_pos.shape[0]:
            raise ValueError(
                f"{q_reps.shape[0]} queries but {d_reps_pos.shape[0]} positives; each query needs exactly one positive"
            )
        documents = [d_reps_pos] if d_reps_neg is None else [d_reps_pos, d_reps_neg]
        if is_distributed():
            q_reps = all_gather_with_grad(q_reps)
            documents = [all_gather_with_grad(d) for d in documents]
        dtype = torch.promote_types(q_reps.dtype, torch.float32)  # bf16/fp16 similarities are too coarse
        queries = F.normalize(q_reps.to(dtype), dim=-1)
        documents = F.normalize(torch.cat(documents).to(dtype), dim=-1)
        return self.scale * queries @ documents.T

    def extra_repr(self) -> str:
        return f"scale={self.scale}"
