"""Supervised contrastive LoRA training of (pruned) LLM encoders on the HF Trainer (exports: l3prune.export).

from l3prune.config import load_config
from l3prune.training import train
folders = train(load_config("config/training/demo.json"))   # {variant: trained folder}
"""

from .run import train, train_variant

__all__ = ["train", "train_variant"]
