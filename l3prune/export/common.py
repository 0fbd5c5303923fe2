"""What every export starts with: an output folder that is new (or empty), and the variant's
encoder with its adapter merged into the weights."""

from __future__ import annotations

import os
from pathlib import Path

from ..encoder import LLMEncoder


def check_new_output(out: Path) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ValueError(f"{out} exists; remove it or choose another output folder")


def load_merged(variant_dir: str | os.PathLike) -> LLMEncoder:
    """The variant's encoder with its adapter (if any) merged: the plain model that is exported."""
    if not Path(variant_dir).is_dir():
        raise FileNotFoundError(f"variant folder {variant_dir} not found (a folder from `l3prune train`)")
    return LLMEncoder.from_pretrained(variant_dir, merge_adapter=True)
