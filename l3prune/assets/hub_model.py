"""Model hub snapshots: a base model downloaded once into a local folder that offline jobs read.

    download_model("meta-llama/Meta-Llama-3-8B-Instruct", "resources/models/meta-llama/Meta-Llama-3-8B-Instruct")

huggingface_hub's `snapshot_download` does the transfer into `<dest>.partial/` (a fixed name, so an
interrupted download resumes there: finished files are kept, an unfinished one continues from
its `.incomplete` bytes). `<dest>` appears, by rename, only once every file arrived and the folder
holds a config, a tokenizer and safetensors weights: an existing `<dest>` is a complete model.

The token of a gated or private model is huggingface_hub's own: `HF_TOKEN` in the environment (or
`hf auth login`). It is never passed on, printed or written here.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

from ..files import read_json, write_json
from .model_names import SOURCE_FILE

# What transformers needs to load the model and its tokenizer, and nothing else: the weights as
# safetensors only (pickled .bin weights can run code; l3prune loads safetensors), no duplicate
# consolidated checkpoints, no `original/` .pth files.
MODEL_FILES = ["*.json", "model*.safetensors", "*.model", "*.tiktoken", "*.txt", "*.py"]
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "tokenizer_config.json")


def download_model(repo_id: str, dest: str | os.PathLike, revision: str | None = None) -> Path:
    """Download hub model `repo_id` (at `revision`: a branch, tag or commit; default main) into
    the folder `dest` and return it. An existing `dest` is returned as it is, unless it records
    another revision."""
    dest = Path(dest)
    if dest.is_dir():
        _check_same_revision(dest, repo_id, revision or "main")
        return dest
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        raise ValueError(
            f"cannot download {repo_id}: HF_HUB_OFFLINE is set; the model download job needs the hub (unset it there)"
        )
    for client in ("httpx2", "httpx"):  # a log line per request otherwise, at the CLI's INFO level
        logging.getLogger(client).setLevel(logging.WARNING)
    partial = dest.with_name(dest.name + ".partial")
    commit = _resolve_commit(repo_id, revision)
    _fetch(repo_id, commit, partial)
    _check_model_folder(partial, repo_id, commit)
    shutil.rmtree(partial / ".cache", ignore_errors=True)  # snapshot_download's resume bookkeeping
    write_json(partial / SOURCE_FILE, {"repo_id": repo_id, "revision": revision or "main", "commit": commit})
    os.replace(partial, dest)
    print(f"{repo_id}@{commit} -> {dest}")
    return dest


def _check_same_revision(folder: Path, repo_id: str, revision: str) -> None:
    source = read_json(folder / SOURCE_FILE, if_missing={})  # none: a folder put there by hand
    had = (source.get("repo_id"), source.get("revision"))
    if source and had != (repo_id, revision):
        raise ValueError(
            f"{folder} holds {had[0]} at revision {had[1]!r}, not {repo_id} at {revision!r}; "
            "remove it to download again"
        )


def _resolve_commit(repo_id: str, revision: str | None) -> str:
    """The commit `revision` names now, so that every file comes from that one commit."""
    from huggingface_hub import HfApi

    with _hub_errors(repo_id, revision):
        return HfApi().model_info(repo_id, revision=revision).sha


def _fetch(repo_id: str, commit: str, folder: Path) -> None:
    from huggingface_hub import snapshot_download

    with _hub_errors(repo_id, commit, resume_from=folder):
        snapshot_download(repo_id, revision=commit, local_dir=folder, allow_patterns=MODEL_FILES)


def _check_model_folder(folder: Path, repo_id: str, commit: str) -> None:
    """What every job will load is there: config, tokenizer and safetensors weights."""
    names = {p.name for p in folder.iterdir()}
    missing = []
    if "config.json" not in names:
        missing.append("config.json")
    if not any(name.endswith(".safetensors") for name in names):
        missing.append("safetensors weights (l3prune loads safetensors only)")
    if not names & set(TOKENIZER_FILES):
        missing.append(f"a tokenizer ({', '.join(TOKENIZER_FILES)})")
    if missing:
        raise ValueError(f"{repo_id}@{commit} has no {'; no '.join(missing)} (files matching {MODEL_FILES})")


class _hub_errors:
    """Turn huggingface_hub's errors into one line saying what to do (never showing the token)."""

    def __init__(self, repo_id: str, revision: str | None, resume_from: Path | None = None):
        self.repo_id, self.revision, self.resume_from = repo_id, revision, resume_from

    def __enter__(self):
        return self

    def __exit__(self, kind, error, traceback):
        if error is None:
            return False
        from huggingface_hub import constants, errors, get_token

        page = f"{constants.ENDPOINT}/{self.repo_id}"
        token = "HF_TOKEN is set but its account has no access" if get_token() else "HF_TOKEN is not set"
        if isinstance(error, errors.GatedRepoError):
            raise ValueError(
                f"{self.repo_id} is a gated model ({token}): accept its terms on {page} and set HF_TOKEN "
                "to an access token of that account in the download job's environment"
            ) from None
        if isinstance(error, errors.RepositoryNotFoundError):
            raise ValueError(
                f"{self.repo_id} not found on the hub ({page}); check model_name_or_path, or for a private "
                f"model set HF_TOKEN ({token})"
            ) from None
        if isinstance(error, errors.RevisionNotFoundError):
            raise ValueError(f"{self.repo_id} has no revision {self.revision!r} ({page})") from None
        status = getattr(getattr(error, "response", None), "status_code", None)
        if isinstance(error, errors.HfHubHTTPError) and status in (401, 403):
            raise ValueError(
                f"the hub refused the token for {self.repo_id} (HTTP {status}); set HF_TOKEN to a valid "
                "access token with read access"
            ) from None
        if isinstance(error, (OSError, *_transport_errors())):
            where = f"; rerun to resume from {self.resume_from}" if self.resume_from else ""
            raise OSError(
                f"download of {self.repo_id} from {constants.ENDPOINT} failed ({_first_line(error)}){where}"
            ) from None
        return False


def _transport_errors() -> tuple[type[BaseException], ...]:
    """The HTTP client's connection errors (huggingface_hub 2 uses httpx2, 1.x httpx)."""
    for name in ("httpx2", "httpx"):
        try:
            return (__import__(name).HTTPError,)
        except ImportError:
            continue
    return ()


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
