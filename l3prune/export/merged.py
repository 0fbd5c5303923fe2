"""The merged export: a variant with its adapter folded into the weights, a folder that
`AutoModel.from_pretrained` loads as it is (and LLMEncoder.from_pretrained with the variant's settings)."""

from __future__ import annotations

import os
from pathlib import Path

from .common import check_new_output, load_merged


def export_merged(variant_dir: str | os.PathLike, out: str | os.PathLike) -> Path:
    out = Path(out)
    check_new_output(out)
    load_merged(variant_dir).save(out)
    return out
