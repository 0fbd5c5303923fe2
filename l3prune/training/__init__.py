"""Supervised contrastive LoRA training of (pruned) LLM encoders on the HF Trainer, and its exports.

from l3prune.config import load_config
from l3prune.training import train
folders = train(load_config("config/training/demo.json"))   # {variant: trained folder}
"""

from .export import export_merged, export_sentence_transformers
from .run import train, train_variant

__all__ = ["export_merged", "export_sentence_transformers", "train", "train_variant"]
