"""`load_loss`, the seed's entry point to the losses."""

from __future__ import annotations

import torch

from .hard_negative_nll import HardNegativeNLLLoss

LOSSES: dict[str, type[torch.nn.Module]] = {"HardNegativeNLLLoss": HardNegativeNLLLoss}


def load_loss(name: str, **kwargs) -> torch.nn.Module:
    """The loss class `name` built with `kwargs`, e.g. load_loss("HardNegativeNLLLoss", scale=50.0)."""
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; available: {', '.join(LOSSES)}")
    return LOSSES[name](**kwargs)
