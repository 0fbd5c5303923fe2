"""`load_loss`, the seed's entry point to the losses."""

from __future__ import annotations

from importlib import import_module

# name -> the module defining it; imported when built (the losses import torch, their names do not)
LOSSES: dict[str, str] = {"HardNegativeNLLLoss": "hard_negative_nll"}


def load_loss(name: str, **kwargs):
    """The loss class `name` built with `kwargs`, e.g. load_loss("HardNegativeNLLLoss", scale=50.0)."""
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; available: {', '.join(LOSSES)}")
    return getattr(import_module(f".{LOSSES[name]}", __package__), name)(**kwargs)
