"""A hub model's names: whether a name is a hub repo id, where its download lives, and the hub name
a downloaded folder records (assets.hub_model writes that record). Light: no hub client, no torch.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from ..files import read_json

SOURCE_FILE = "l3prune_source.json"  # in a downloaded folder: which repo and commit it holds

# huggingface_hub's rule for repo ids ("name" or "namespace/name"; no "--" or "..")
_REPO_ID = re.compile(r"(?!.*--)(?!.*\.\.)[\w.-]+(/[\w.-]+)?")


def hub_repo_id(name_or_path: str) -> str | None:
    """`name_or_path` when it is a model hub name (not an existing path and shaped like a repo
    id), else None: a path, or something that looks like one (absolute, ./, ~, several /)."""
    if Path(name_or_path).exists() or name_or_path.startswith((".", "~")):
        return None
    return name_or_path if _REPO_ID.fullmatch(name_or_path) and len(name_or_path) <= 96 else None


def model_folder(model_dir: str | os.PathLike, repo_id: str) -> Path:
    """Where a hub model's snapshot lives: `<model_dir>/<namespace>/<name>`, so the folder's last
    component is the model's own name (what evaluation names results after)."""
    return Path(model_dir) / repo_id


def hub_name(name_or_path: str | os.PathLike) -> str:
    """The model hub name of a base model: what a folder made by download_model records, else
    `name_or_path` itself (for naming and publishing a variant trained from the local copy)."""
    source = read_json(Path(name_or_path) / SOURCE_FILE, if_missing={})
    return source.get("repo_id") or str(name_or_path)


def display_name(name_or_path: str | os.PathLike) -> str:
    """A base model's name for titles: the last part of its hub name (the one a downloaded
    folder records), else of its path: `Meta-Llama-3-8B-Instruct`, not a folder path."""
    if not str(name_or_path):
        return ""
    name = hub_name(name_or_path).rstrip("/")
    return name.rsplit("/", 1)[-1] or name
