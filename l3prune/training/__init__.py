"""Supervised contrastive LoRA training of (pruned) LLM encoders on the HF Trainer, and its exports.

from l3prune.config import load_config
from l3prune.training import train
folders = train(load_config("config/training/demo.json"))   # {variant: trained folder}
"""

_EXPORTS = {
    "train": "run",
    "train_variant": "run",
    "export_merged": "export",
    "export_sentence_transformers": "export",
}
__all__ = list(_EXPORTS)


def __getattr__(name):
    # resolved on use, so `l3prune train --help` (which imports .commands) stays fast
    if name in _EXPORTS:
        from importlib import import_module

        return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
