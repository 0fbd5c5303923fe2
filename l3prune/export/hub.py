"""The hub folder: the merged model and the sentence-transformers files at its root, and README.md,
the model card. Written offline; uploading it is one `hf upload` (docs/publishing.md).

Its MTEB scores come from the variant's mteb.json (`<variant>/../mteb.json` from the workflow, or
the file given); its pruning record from the variant's model_info.json; its training settings from
the training config, when given.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..assets.model_names import hub_name
from ..files import atomic_output, read_json
from .card import model_card
from .common import check_new_output, load_merged
from .sentence_transformers import write_sentence_transformers


def default_mteb_summary(variant_dir: Path) -> Path | None:
    """The workflow keeps a variant's model in `<variant>/model` and its scores in `<variant>/mteb.json`."""
    for candidate in (variant_dir / "mteb.json", variant_dir.parent / "mteb.json"):
        if candidate.is_file():
            return candidate
    return None


def export_hub(
    variant_dir: str | os.PathLike,
    out: str | os.PathLike,
    *,
    repo_id: str | None = None,
    mteb_json: str | os.PathLike | None = None,
    training_config: str | os.PathLike | None = None,
    license: str | None = None,
) -> Path:
    """Write the hub folder of `variant_dir` to `out`; `repo_id` is the hub name the card calls it
    (default: the mteb model name of its scores, else `l3prune/<folder name>`)."""
    variant_dir, out = Path(variant_dir), Path(out)
    check_new_output(out)
    mteb_path = Path(mteb_json) if mteb_json else default_mteb_summary(variant_dir)
    summary = read_json(mteb_path) if mteb_path else None
    training = _training_settings(training_config) if training_config else None
    encoder = load_merged(variant_dir)
    name = repo_id or (summary or {}).get("model") or f"l3prune/{variant_dir.resolve().name}"
    card = model_card(
        encoder,
        name,
        hub_name(str(encoder.base_model_name_or_path)),
        mteb_summary=summary,
        model_info=read_json(variant_dir / "model_info.json", if_missing=None),
        training=training,
        license=license,
    )
    with atomic_output(out) as staging:
        staging.mkdir()
        write_sentence_transformers(encoder, staging)
        (staging / "README.md").write_text(card)
    return out


def _training_settings(path: str | os.PathLike) -> dict:
    from ..config import load_config, step_settings

    return step_settings(load_config(path), "train")
