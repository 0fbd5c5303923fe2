"""File integrity and atomic outputs: sha256 checks, write-then-rename, archive extraction.

Every output of l3prune appears under its final name only once it is complete, so the
existence of a file or folder is the proof that it is whole, and a killed run leaves nothing that
looks finished.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tarfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

_SHA256_RE = re.compile(r"[0-9a-f]{64}")


def normalize_sha256(sha256: str | None) -> str | None:
    """Lower-case a sha256 hex digest; a malformed one is a one-line ValueError."""
    if sha256 is None:
        return None
    digest = sha256.strip().lower()
    if not _SHA256_RE.fullmatch(digest):
        raise ValueError(f"sha256 must be 64 hexadecimal digits, got {sha256!r}")
    return digest


def sha256_file(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def check_sha256(path: str | os.PathLike, expected: str, name: str | os.PathLike | None = None) -> None:
    """Raise a one-line ValueError when `path`'s sha256 is not `expected` (`name`: what to call it)."""
    actual = sha256_file(path)
    if actual != expected:
        raise ValueError(f"sha256 mismatch for {name or path}: expected {expected}, got {actual}")


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


@contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary sibling of `path` to write (a file or a folder); rename it to `path` on success.

    On an exception the temporary is removed and `path` is left as it was. An existing folder at
    `path` is replaced too, and removed only once the new one is in place.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    _remove(tmp)
    try:
        yield tmp
        if path.is_dir() and not path.is_symlink():  # os.replace cannot replace a non-empty folder
            old = path.with_name(f"{path.name}.old-{os.getpid()}")
            _remove(old)
            os.replace(path, old)
            os.replace(tmp, path)
            _remove(old)
        else:
            os.replace(tmp, path)
    finally:
        _remove(tmp)


def extract_archive(archive: str | os.PathLike, dest: str | os.PathLike, subdir: str | None = None) -> Path:
    """Unpack a zip or tar (.tar, .tar.gz, .tar.bz2, .tar.xz) archive into the folder `dest`, atomically.

    `subdir` names a folder inside the archive that becomes `dest` (e.g. "echo-data" for an archive
    whose members all live under echo-data/); without it, the archive's top level becomes `dest`.
    An existing `dest` is taken as complete and left alone.
    """
    archive, dest = Path(archive), Path(dest)
    if dest.exists():
        return dest
    if not archive.is_file():
        raise FileNotFoundError(f"archive {archive} does not exist")
    # a fixed scratch name (not per process), so a killed extraction's leftovers are cleared by the next run
    scratch = dest.with_name(f"{dest.name}.extracting")
    _remove(scratch)
    try:
        try:
            if zipfile.is_zipfile(archive):
                with zipfile.ZipFile(archive) as zf:
                    zf.extractall(scratch)  # zipfile drops absolute paths and ".." from member names
            elif tarfile.is_tarfile(archive):
                with tarfile.open(archive) as tf:
                    tf.extractall(scratch, filter="data")  # refuses links and paths that leave the folder
            else:
                raise ValueError(
                    f"{archive} is not a zip or tar archive (accepted: .zip, .tar, .tar.gz, .tar.bz2, .tar.xz)"
                )
        except (tarfile.TarError, zipfile.BadZipFile, EOFError) as err:
            raise ValueError(f"cannot unpack {archive}: {err}") from None
        source = scratch / subdir if subdir else scratch
        if not source.is_dir():
            top = sorted(p.name for p in scratch.iterdir())
            raise ValueError(f"{archive} has no folder {subdir!r}; its top level holds {top}")
        os.replace(source, dest)
    finally:
        _remove(scratch)
    return dest


_REQUIRED = object()


def read_json(path: str | os.PathLike, if_missing=_REQUIRED, what: str = "file"):
    """The parsed JSON file `path` (`if_missing` when given and there is no such file, else a
    FileNotFoundError naming it as `what`); malformed JSON is a one-line ValueError naming
    path:line:column."""
    path = Path(path)
    if not path.is_file():
        if if_missing is not _REQUIRED:
            return if_missing
        raise FileNotFoundError(f"{what} {path} does not exist")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}:{e.lineno}:{e.colno}: not valid JSON ({e.msg})") from None


def write_json(path: str | os.PathLike, data) -> None:
    """Write `data` as indented JSON, atomically."""
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2) + "\n")
