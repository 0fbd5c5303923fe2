"""HTTP(S) downloads that are sha256-checked, resumable and atomic (urllib only).

Bytes go to `<dest>.part`. An interrupted transfer is continued from the partial file with an HTTP
Range request; a server that ignores Range makes it start over. `<dest>` appears (by rename) only
after the whole file arrived, is not an HTML page (what a sign-in, quota or virus-scan page of a file
host such as Google Drive sends instead of the file) and its sha256 matched, so an existing `<dest>`
is a finished download.

download_archive() also unpacks a zip or tar archive, and can check the unpacked files' layout
(data_layout) before the folder appears.
"""

from __future__ import annotations

import html
import http.client
import os
import re
import shutil
import sys
import tarfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path

from tqdm.auto import tqdm

from ..files import check_sha256, extract_archive, normalize_sha256, sha256_file
from .data_layout import check_layout

_CONTENT_RANGE_START = re.compile(r"bytes (\d+)-")
_HTML_START = re.compile(
    rb"(\xef\xbb\xbf)?\s*(<!--.*?-->\s*)*<(!doctype\s+html|html|head|body)\b", re.IGNORECASE | re.DOTALL
)
_HTML_TITLE = re.compile(rb"<title[^>]*>(.*?)</title", re.IGNORECASE | re.DOTALL)


class _Interrupted(Exception):
    """The connection ended before the whole body arrived; the partial file is kept for a resume."""


def download(
    url: str,
    dest: str | os.PathLike,
    sha256: str | None = None,
    *,
    attempts: int = 5,
    timeout: float = 60.0,
    retry_wait: float = 2.0,
    expected: str = "the file",
    check=None,
) -> Path:
    """Download `url` to `dest` and return `dest`.

    sha256: the expected hex digest. A finished file with another hash is removed from `.part` and
        reported as a one-line ValueError; a rerun then downloads from scratch. Without it, the file
        is kept as it came and its hash is printed, so that it can be pinned.
    attempts: transfers tried in this call; each one continues from what the previous ones got.
    expected: what the file should be, for the error when an HTML page came instead ("a tar archive").
    check: called with the finished file's path before it is renamed to `dest`; a ValueError it
        raises removes the file (a rerun downloads it again) and is reported with the URL.
    """
    sha256 = normalize_sha256(sha256)
    scheme = urllib.parse.urlsplit(url).scheme
    if scheme not in ("http", "https"):
        raise ValueError(f"unsupported URL scheme {scheme!r} in {url} (accepted: http, https)")
    dest = Path(dest)
    if dest.exists():
        return _existing(dest, url, sha256, expected)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    _transfer_with_retries(url, part, attempts, timeout, retry_wait)
    _verify(part, dest, url, sha256, expected, check)
    os.replace(part, dest)
    return dest


def download_archive(
    url: str,
    archive: str | os.PathLike,
    sha256: str | None,
    dest: str | os.PathLike,
    subdir: str | None = None,
    layout: str | None = None,
) -> Path:
    """Download the zip or tar archive `url` to `archive` (as download() does) and unpack it into
    `dest` (its folder `subdir` only, when given); with `layout`, `dest` appears only once its files
    are checked (data_layout.check_layout). Returns `dest`."""
    archive = download(url, archive, sha256, expected="a zip or tar archive", check=_check_archive)
    dest = Path(dest)
    if not layout or dest.exists():
        extract_archive(archive, dest, subdir)
        return dest
    unchecked = dest.with_name(dest.name + ".unchecked")
    shutil.rmtree(unchecked, ignore_errors=True)  # what a failed check left
    extract_archive(archive, unchecked, subdir)
    try:
        check_layout(unchecked, layout)
    except ValueError as err:
        raise ValueError(f"{err}; unpacked from {archive}, left in {unchecked} to look at") from None
    os.replace(unchecked, dest)
    return dest


def _check_archive(path: Path) -> None:
    if not (zipfile.is_zipfile(path) or tarfile.is_tarfile(path)):
        with open(path, "rb") as file:
            head = file.read(16)
        raise ValueError(f"got {head!r}... instead of a zip or tar archive")


def _existing(dest: Path, url: str, sha256: str | None, expected: str) -> Path:
    """An earlier download at `dest`, checked as a new one would be."""
    _reject_html(dest, url, expected, f"{dest} holds it; delete it to download it again")
    if sha256 is not None:
        actual = sha256_file(dest)
        if actual != sha256:
            raise ValueError(
                f"{dest} exists with sha256 {actual}, expected {sha256}; delete it to download it again"
            )
    return dest


_TRANSIENT = (_Interrupted, urllib.error.URLError, http.client.HTTPException, TimeoutError, ConnectionError)


def _transfer_with_retries(url: str, part: Path, attempts: int, timeout: float, retry_wait: float) -> None:
    """Fill `part` from `url`; each attempt continues from what the previous ones got. A client
    error (HTTP 4xx) fails at once."""
    for attempt in range(1, attempts + 1):
        try:
            return _transfer(url, part, timeout)
        except _TRANSIENT as err:
            if isinstance(err, urllib.error.HTTPError) and err.code < 500:
                raise OSError(f"download of {url} failed: HTTP {err.code} {err.reason}") from None
            if attempt == attempts:
                raise OSError(
                    f"download of {url} failed after {attempts} attempts ({err}); rerun to resume from {part}"
                ) from None
            time.sleep(retry_wait)


def _verify(part: Path, dest: Path, url: str, sha256: str | None, expected: str, check) -> None:
    """Refuse a finished download that is an HTML page, fails `check` or has another sha256 (each
    removes it, so a rerun downloads it again); without a sha256, print the file's to pin it."""
    _reject_html(
        part, url, expected, "removed it; check the URL (a file host's sign-in or confirmation page?)"
    )
    if check is not None:
        try:
            check(part)
        except ValueError as err:
            part.unlink()
            raise ValueError(f"download of {url}: {err} (removed, a rerun downloads it again)") from None
    if sha256 is not None:
        try:
            check_sha256(part, sha256, name=dest)
        except ValueError as err:
            part.unlink()
            raise ValueError(f"{err} (downloaded from {url}; removed, a rerun downloads it again)") from None
    else:
        print(f"{dest}: sha256 {sha256_file(part)} (no checksum given to compare with)", file=sys.stderr)


def _reject_html(path: Path, url: str, expected: str, what_now: str) -> None:
    """A one-line ValueError naming the page's title when `path` is an HTML page (`path` is
    removed when it is the partial download)."""
    with open(path, "rb") as file:
        head = file.read(1 << 16)
    if not _HTML_START.match(head):
        return
    match = _HTML_TITLE.search(head)
    title = " ".join(html.unescape(match.group(1).decode("utf-8", "replace")).split()) if match else ""
    if path.name.endswith(".part"):
        path.unlink()
    raise ValueError(
        f"download of {url}: got an HTML page ({f'title {title[:120]!r}' if title else 'untitled'}) "
        f"instead of {expected}; {what_now}"
    )


def _transfer(url: str, part: Path, timeout: float) -> None:
    """One HTTP request: append to `part` from its current size, or rewrite it when Range is not honoured."""
    offset = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={offset}-"} if offset else {})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as err:
        if err.code == 416 and offset:
            # nothing left after `offset`: the partial is complete (a run killed while checking it)
            # when the server confirms the size, otherwise it is stale
            if err.headers.get("Content-Range", "") == f"bytes */{offset}":
                return
            part.unlink()
            raise _Interrupted(f"HTTP 416 for a resume at byte {offset}") from None
        raise
    with response:
        resumed = response.status == 206
        if resumed and _range_start(response) != offset:
            part.unlink()
            raise _Interrupted(f"asked for bytes from {offset}, got {response.headers.get('Content-Range')}")
        if not resumed:
            offset = 0  # the server ignored Range and sends the whole file: start over
        length = response.headers.get("Content-Length")
        expected_end = offset + int(length) if length is not None else None
        with (
            open(part, "ab" if resumed else "wb") as out,
            tqdm(
                total=expected_end,
                initial=offset,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=part.name[: -len(".part")],
                mininterval=1.0,
            ) as progress,
        ):
            while chunk := response.read(1 << 20):
                out.write(chunk)
                progress.update(len(chunk))
            received = out.tell()
    if expected_end is not None and received < expected_end:
        raise _Interrupted(f"connection closed at byte {received} of {expected_end}")


def _range_start(response) -> int | None:
    match = _CONTENT_RANGE_START.match(response.headers.get("Content-Range", ""))
    return int(match.group(1)) if match else None
