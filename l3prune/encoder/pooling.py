"""Pooling a decoder's token states into one vector, with the seed's (LLM2Vec's) semantics.

`pool_mask` marks the tokens that belong to the text (instruction tokens are attended to but
not pooled); `attention_mask` marks every real token. Neither assumes a padding side.
"""

from __future__ import annotations

import torch


def pool(
    hidden: torch.Tensor, attention_mask: torch.Tensor, pool_mask: torch.Tensor, mode: str
) -> torch.Tensor:
    """hidden [B, T, D] -> [B, D], in float32 whatever the model's dtype."""
    if mode in ("eos_token", "last_token", "bos_token"):
        positions = torch.arange(hidden.shape[1], device=hidden.device).expand_as(attention_mask)
        real = attention_mask.bool()
        if mode == "bos_token":  # the first real token
            index = torch.where(real, positions, hidden.shape[1]).min(dim=1).values
        else:  # the final real token
            index = torch.where(real, positions, -1).max(dim=1).values
        return hidden[torch.arange(hidden.shape[0], device=hidden.device), index].float()
    # float32 weights and sums: in bf16, counts past 256 round (257 -> 256) and long means drift
    mask = pool_mask.float()
    if mode == "weighted_mean":
        # The k-th pooled token (k = 1..n, left to right) weighs k / (n(n+1)/2): later tokens have
        # seen more of the text under causal attention.
        mask = torch.cumsum(mask, dim=1) * mask
    weights = mask / mask.sum(dim=1, keepdim=True).clamp(min=1e-9)
    return torch.einsum("btd,bt->bd", hidden.float(), weights)
