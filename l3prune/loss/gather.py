"""Concatenating a tensor from every process, with gradients flowing back to each owner.

Every process computes the same global loss from the gathered tensors, so the gradient that
reaches a process's own rows is the sum of the gradients of all processes' (identical) losses:
world_size x d(loss)/d(own rows). DDP then averages parameter gradients over the processes,
which leaves exactly the gradient of one process training on the whole global batch.
(`torch.distributed.nn.functional.all_gather` does the same but is deprecated and needs
all-to-all support; this uses only all_gather and all_reduce, which every backend has.)
"""

from __future__ import annotations

import torch
import torch.distributed as dist


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def all_gather_with_grad(tensor: torch.Tensor) -> torch.Tensor:
    """Every process's `tensor`, concatenated along dim 0 in rank order (row counts may differ)."""
    row_count = torch.tensor([tensor.shape[0]], device=tensor.device)
    row_counts = [torch.empty_like(row_count) for _ in range(dist.get_world_size())]
    dist.all_gather(row_counts, row_count)
    return _AllGatherWithGrad.apply(tensor, [int(n) for n in row_counts])


class _AllGatherWithGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, tensor: torch.Tensor, row_counts: list[int]) -> torch.Tensor:
        rank = dist.get_rank()
        ctx.own_rows = slice(sum(row_counts[:rank]), sum(row_counts[: rank + 1]))
        padded = tensor.new_zeros((max(row_counts), *tensor.shape[1:]))  # all_gather needs equal shapes
        padded[: tensor.shape[0]] = tensor
        gathered = [torch.empty_like(padded) for _ in row_counts]
        dist.all_gather(gathered, padded)
        return torch.cat([part[:rows] for part, rows in zip(gathered, row_counts, strict=True)])

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        grad = grad.contiguous()
        dist.all_reduce(grad)  # sum over the processes' losses
        return grad[ctx.own_rows], None
