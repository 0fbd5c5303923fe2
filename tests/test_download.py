"""Downloads against a local HTTP server: resume, restart, checksums, atomic outputs; archive extraction."""

from __future__ import annotations

import hashlib
import io
import random
import tarfile
import threading
import zipfile
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from l3prune.assets.data_layout import check_layout, expected_files
from l3prune.assets.download import download
from l3prune.cli import main
from l3prune.dataset.e5 import E5_INSTRUCTIONS
from l3prune.files import atomic_output, extract_archive

PAYLOAD = random.Random(0).randbytes(300_000)
PAYLOAD_SHA256 = hashlib.sha256(PAYLOAD).hexdigest()
WRONG_SHA256 = "0" * 64


class FileServer(ThreadingHTTPServer):
    """Serves `payload` at /data.bin. `honour_range`: answer Range with 206; `cut_after`: for the next
    `cuts` requests, close the connection after that many body bytes. Every request's Range header
    is recorded in `ranges` (None when absent)."""

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.payload = PAYLOAD
        self.honour_range = True
        self.cut_after = 0
        self.cuts = 0
        self.ranges: list[str | None] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/data.bin"


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        server: FileServer = self.server
        server.ranges.append(self.headers.get("Range"))
        if self.path != "/data.bin":
            self.send_error(404)
            return
        start = 0
        if self.headers.get("Range") and server.honour_range:
            start = int(self.headers["Range"].removeprefix("bytes=").rstrip("-"))
            if start >= len(server.payload):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(server.payload)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header(
                "Content-Range", f"bytes {start}-{len(server.payload) - 1}/{len(server.payload)}"
            )
        else:
            self.send_response(200)
        body = server.payload[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if server.cuts:
            server.cuts -= 1
            self.wfile.write(body[: server.cut_after])
            self.close_connection = True
            return
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@contextmanager
def serving(httpd: ThreadingHTTPServer):
    """`httpd` answering on its own thread until the block ends."""
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield httpd
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def server():
    with serving(FileServer()) as httpd:
        yield httpd


def test_download_writes_checked_file_and_no_partial(server, tmp_path):
    dest = tmp_path / "sub" / "data.bin"
    assert download(server.url, dest, PAYLOAD_SHA256.upper()) == dest
    assert dest.read_bytes() == PAYLOAD
    assert sorted(p.name for p in dest.parent.iterdir()) == ["data.bin"]
    assert server.ranges == [None]


def test_interrupted_download_resumes_with_range(server, tmp_path):
    server.cut_after, server.cuts = 100_000, 1
    dest = tmp_path / "data.bin"
    download(server.url, dest, PAYLOAD_SHA256, retry_wait=0)
    assert dest.read_bytes() == PAYLOAD
    assert server.ranges == [None, "bytes=100000-"]


def test_failed_run_keeps_partial_and_next_run_resumes(server, tmp_path):
    server.cut_after, server.cuts = 70_000, 2
    dest = tmp_path / "data.bin"
    with pytest.raises(OSError, match=r"failed after 2 attempts .*; rerun to resume from .*data\.bin\.part$"):
        download(server.url, dest, PAYLOAD_SHA256, attempts=2, retry_wait=0)
    assert not dest.exists()
    assert (tmp_path / "data.bin.part").read_bytes() == PAYLOAD[:140_000]
    download(server.url, dest, PAYLOAD_SHA256)
    assert dest.read_bytes() == PAYLOAD
    assert server.ranges == [None, "bytes=70000-", "bytes=140000-"]


def test_server_ignoring_range_restarts_from_scratch(server, tmp_path):
    server.honour_range = False
    dest = tmp_path / "data.bin"
    (tmp_path / "data.bin.part").write_bytes(b"stale bytes that must not stay in front")
    download(server.url, dest, PAYLOAD_SHA256)
    assert dest.read_bytes() == PAYLOAD
    assert server.ranges == ["bytes=39-"]


def test_complete_partial_is_finished_without_transfer(server, tmp_path):
    # a run killed after the last byte arrived but before the rename
    dest = tmp_path / "data.bin"
    (tmp_path / "data.bin.part").write_bytes(PAYLOAD)
    download(server.url, dest, PAYLOAD_SHA256)
    assert dest.read_bytes() == PAYLOAD
    assert server.ranges == [f"bytes={len(PAYLOAD)}-"]


def test_checksum_mismatch_is_one_line_and_leaves_nothing(server, tmp_path):
    dest = tmp_path / "data.bin"
    with pytest.raises(ValueError) as error:
        download(server.url, dest, WRONG_SHA256)
    assert str(error.value) == (
        f"sha256 mismatch for {dest}: expected {WRONG_SHA256}, got {PAYLOAD_SHA256} "
        f"(downloaded from {server.url}; removed, a rerun downloads it again)"
    )
    assert list(tmp_path.iterdir()) == []


def test_present_file_with_right_hash_is_not_downloaded_again(server, tmp_path):
    dest = tmp_path / "data.bin"
    dest.write_bytes(PAYLOAD)
    download(server.url, dest, PAYLOAD_SHA256)
    assert server.ranges == []


def test_present_file_with_other_hash_is_an_error_and_kept(server, tmp_path):
    dest = tmp_path / "data.bin"
    dest.write_bytes(b"corrupt")
    corrupt_sha256 = hashlib.sha256(b"corrupt").hexdigest()
    with pytest.raises(ValueError) as error:
        download(server.url, dest, PAYLOAD_SHA256)
    assert str(error.value) == (
        f"{dest} exists with sha256 {corrupt_sha256}, expected {PAYLOAD_SHA256}; delete it to download it again"
    )
    assert dest.read_bytes() == b"corrupt"
    assert server.ranges == []


def test_without_checksum_the_digest_is_printed(server, tmp_path, capsys):
    dest = tmp_path / "data.bin"
    download(server.url, dest)
    assert dest.read_bytes() == PAYLOAD
    assert f"{dest}: sha256 {PAYLOAD_SHA256}" in capsys.readouterr().err


def test_http_error_fails_at_once(server, tmp_path):
    with pytest.raises(
        OSError, match=r"^download of http://127\.0\.0\.1:\d+/missing failed: HTTP 404 Not Found$"
    ):
        download(server.url.replace("data.bin", "missing"), tmp_path / "x")
    assert len(server.ranges) == 1
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("url", "sha256", "message"),
    [
        ("ftp://host/file", None, "unsupported URL scheme 'ftp' in ftp://host/file (accepted: http, https)"),
        ("http://127.0.0.1:9/file", "abc", "sha256 must be 64 hexadecimal digits, got 'abc'"),
    ],
)
def test_bad_arguments(tmp_path, url, sha256, message):
    with pytest.raises(ValueError) as error:
        download(url, tmp_path / "file", sha256)
    assert str(error.value) == message


def test_atomic_output_renames_on_success_and_cleans_up_on_failure(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("valid")
    with pytest.raises(RuntimeError):
        with atomic_output(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert target.read_text() == "valid"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]
    with atomic_output(target) as tmp:
        assert not tmp.exists()
        tmp.write_text("new")
    assert target.read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]


def test_atomic_output_replaces_a_folder_and_keeps_it_on_failure(tmp_path):
    target = tmp_path / "model"
    target.mkdir()
    (target / "weights").write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_output(target) as tmp:
            tmp.mkdir()
            raise RuntimeError("killed")
    assert [p.name for p in target.iterdir()] == ["weights"]
    with atomic_output(target) as tmp:
        tmp.mkdir()
        (tmp / "config").write_text("new")
    assert [p.name for p in target.iterdir()] == ["config"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def _tar_gz(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def test_extract_tar_subdir_atomically(tmp_path):
    archive = tmp_path / "echo-data.tar.gz"
    archive.write_bytes(_tar_gz({"echo-data/a.jsonl": b"A", "echo-data/b/c.jsonl": b"C", "README": b"r"}))
    dest = tmp_path / "cache" / "echo-data"
    dest.parent.mkdir()
    assert extract_archive(archive, dest, subdir="echo-data") == dest
    assert (dest / "a.jsonl").read_bytes() == b"A" and (dest / "b" / "c.jsonl").read_bytes() == b"C"
    assert sorted(p.name for p in dest.parent.iterdir()) == ["echo-data"]


def test_extract_zip_whole(tmp_path):
    archive = tmp_path / "a.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("x/y.txt", "Y")
    extract_archive(archive, tmp_path / "out")
    assert (tmp_path / "out" / "x" / "y.txt").read_text() == "Y"


def test_extract_missing_subdir_or_non_archive_or_unsafe_is_an_error_leaving_nothing(tmp_path):
    archive = tmp_path / "a.tar.gz"
    archive.write_bytes(_tar_gz({"top/a": b"A", "other.txt": b"o"}))
    with pytest.raises(ValueError) as error:
        extract_archive(archive, tmp_path / "out", subdir="echo-data")
    assert (
        str(error.value) == f"{archive} has no folder 'echo-data'; its top level holds ['other.txt', 'top']"
    )
    text = tmp_path / "plain.txt"
    text.write_text("not an archive")
    with pytest.raises(ValueError, match=r"plain\.txt is not a zip or tar archive \(accepted: .zip, .tar"):
        extract_archive(text, tmp_path / "out")
    evil = tmp_path / "evil.tar.gz"
    evil.write_bytes(_tar_gz({"../escaped.txt": b"x"}))
    with pytest.raises(ValueError, match=r"^cannot unpack .*evil\.tar\.gz: "):
        extract_archive(evil, tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.tar.gz", "evil.tar.gz", "plain.txt"]


def test_cli_download_and_extract(server, tmp_path):
    server.payload = _tar_gz({"echo-data/a.jsonl": b"A"})
    sha256 = hashlib.sha256(server.payload).hexdigest()
    out = tmp_path / "echo-data.tar.gz"
    args = ["download", server.url, "--sha256", sha256, "--out", str(out)]
    assert main(args + ["--extract", str(tmp_path / "echo-data"), "--subdir", "echo-data"]) == 0
    assert out.read_bytes() == server.payload
    assert (tmp_path / "echo-data" / "a.jsonl").read_bytes() == b"A"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            ["--sha256", WRONG_SHA256],
            f"sha256 mismatch for {{out}}: expected {WRONG_SHA256}, got {PAYLOAD_SHA256} ",
        ),
        (["--subdir", "x"], "--subdir needs --extract DIR"),
    ],
)
def test_cli_download_errors_are_one_line_with_exit_2(server, tmp_path, capsys, extra, message):
    out = tmp_path / "data.bin"
    assert main(["download", server.url, "--out", str(out), *extra]) == 2
    err = capsys.readouterr().err  # tqdm's progress lines come first
    assert err.splitlines()[-1].startswith("l3prune: error: " + message.format(out=out))
    assert "Traceback" not in err
    assert not out.exists()


def test_cli_download_network_failure_is_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("time.sleep", lambda seconds: None)  # the waits between attempts
    # nothing listens on port 9 (discard) of 127.0.0.1 here: the connection is refused
    assert main(["download", "http://127.0.0.1:9/x", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("l3prune: error: download of http://127.0.0.1:9/x failed after 5 attempts")
    assert err.count("\n") == 1


# What Google Drive sends for a large file when its confirmation step is missed: a 200 HTML page.
DRIVE_WARNING = (
    b'<!DOCTYPE html><html><head><meta charset="utf-8"><title>Google Drive - Virus scan warning</title>'
    b'</head><body><form id="download-form">Google Drive can&#39;t scan this file for viruses.</form>'
    b"</body></html>"
)


def test_an_html_page_instead_of_the_archive_is_one_line_naming_url_and_title(server, tmp_path, capsys):
    server.payload = DRIVE_WARNING
    out = tmp_path / "echo-data.tar"
    args = ["download", server.url, "--out", str(out), "--extract", str(tmp_path / "echo-data")]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.splitlines()[-1] == (
        f"l3prune: error: download of {server.url}: got an HTML page (title 'Google Drive - Virus scan warning') "
        "instead of a zip or tar archive; removed it; check the URL (a file host's sign-in or confirmation page?)"
    )
    assert "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no archive, no partial, no folder
    # without a title, and for a plain file (a sign-in page instead of Wiki1M's text)
    server.payload = b"\xef\xbb\xbf\n  <!-- sign in --><HTML><body>Sign in</body></HTML>"
    with pytest.raises(ValueError) as error:
        download(server.url, tmp_path / "wiki1m.txt")
    assert str(error.value).startswith(
        f"download of {server.url}: got an HTML page (untitled) instead of the file; removed it"
    )
    assert not (tmp_path / "wiki1m.txt").exists() and not (tmp_path / "wiki1m.txt.part").exists()


def test_text_mentioning_html_is_not_taken_for_a_page(server, tmp_path):
    server.payload = b"a sentence about <html> tags\n<html> starts a page\n"
    assert download(server.url, tmp_path / "wiki1m.txt").read_bytes() == server.payload


def test_an_html_page_left_by_an_older_download_is_reported_and_kept(server, tmp_path):
    out = tmp_path / "echo-data.tar"
    out.write_bytes(DRIVE_WARNING)
    with pytest.raises(ValueError) as error:
        download(server.url, out)
    assert str(error.value) == (
        f"download of {server.url}: got an HTML page (title 'Google Drive - Virus scan warning') instead of the file;"
        f" {out} holds it; delete it to download it again"
    )
    assert out.read_bytes() == DRIVE_WARNING and server.ranges == []


def test_a_download_that_is_no_archive_is_removed_before_it_is_kept(server, tmp_path, capsys):
    server.payload = b"PK\x03\x04 truncated, or some other binary file"
    out = tmp_path / "echo-data.tar"
    assert main(["download", server.url, "--out", str(out), "--extract", str(tmp_path / "echo-data")]) == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"l3prune: error: download of {server.url}: got b'PK\\x03\\x04 truncated, '... instead of a zip or tar "
        "archive (removed, a rerun downloads it again)"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == []


E5_FILES = [f"{name}.jsonl" for name in E5_INSTRUCTIONS]


def test_the_e5_layout_is_the_14_instruction_files():
    assert expected_files("E5") == E5_FILES
    assert len(E5_FILES) == 14 and "msmarco_document.jsonl" in E5_FILES and "allnli.jsonl" in E5_FILES


def test_an_e5_archive_with_all_14_files_appears_whole(server, tmp_path):
    members = {f"echo-data/{name}": b'["q", "p", "n"]\n' for name in E5_FILES}
    server.payload = _tar_gz({**members, "echo-data/README": b"r"})
    out, dest = tmp_path / "echo-data.tar", tmp_path / "echo-data"
    args = ["download", server.url, "--out", str(out), "--extract", str(dest), "--subdir", "echo-data"]
    assert main([*args, "--layout", "E5"]) == 0
    assert sorted(p.name for p in dest.iterdir()) == sorted([*E5_FILES, "README"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["echo-data", "echo-data.tar"]


def test_an_e5_archive_missing_files_fails_in_the_download_and_leaves_no_data_folder(
    server, tmp_path, capsys
):
    members = {f"echo-data/{name}": b'["q", "p", "n"]\n' for name in E5_FILES if name != "fever.jsonl"}
    members["echo-data/nq.jsonl"] = b""
    server.payload = _tar_gz(members)
    out, dest = tmp_path / "echo-data.tar", tmp_path / "echo-data"
    args = ["download", server.url, "--out", str(out), "--extract", str(dest), "--subdir", "echo-data"]
    assert main([*args, "--layout", "E5"]) == 2
    line = capsys.readouterr().err.splitlines()[-1]
    unchecked = tmp_path / "echo-data.unchecked"
    assert line.startswith(
        f"l3prune: error: {unchecked} is not the E5 training data: missing fever.jsonl; empty nq.jsonl (of the 14 files "
        f"{', '.join(E5_FILES)}; found: allnli.jsonl, dureader.jsonl, "
    )
    assert line.endswith(f"; unpacked from {out}, left in {unchecked} to look at")
    assert not dest.exists()
    # a rerun with the archive fixed unpacks it afresh
    out.write_bytes(_tar_gz({f"echo-data/{name}": b"[]\n" for name in E5_FILES}))
    assert main([*args, "--layout", "E5"]) == 0
    assert sorted(p.name for p in dest.iterdir()) == sorted(E5_FILES)
    assert not unchecked.exists()


def test_layout_needs_extract_and_unknown_layouts_are_refused(server, tmp_path, capsys):
    assert main(["download", server.url, "--out", str(tmp_path / "x"), "--layout", "E5"]) == 2
    assert capsys.readouterr().err == "l3prune: error: --layout needs --extract DIR\n"
    with pytest.raises(ValueError, match=r"^unknown data layout 'Wiki1M' \(accepted: E5\)$"):
        check_layout(tmp_path, "Wiki1M")
