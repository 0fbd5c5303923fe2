"""A text file read lazily, one line at a time, through an index of line byte offsets.

The echo-data training set is 3.6 GB; holding its text would need that much RAM and more. The
index holds two int64 numbers per line instead (where the line starts, which line a sample is),
is built in one binary pass, and every read is one seek.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

_NEWLINE = 0x0A
_CARRIAGE_RETURN = 0x0D


class LineFile:
    """The non-blank lines of a UTF-8 text file; `lines[row]` reads one from disk.

    Blank lines (empty or only "\\r") are skipped; `location(row)` names the file and the 1-based
    line number, for error messages.
    """

    def __init__(self, path: str | os.PathLike, read_size: int = 1 << 20):
        self.path = Path(path)
        with open(self.path, "rb") as f:
            self._bounds, self._rows = _index_lines(f, read_size)
            self._stamp = _stamp(os.fstat(f.fileno()))

    def __len__(self) -> int:
        return len(self._rows)

    def __getitem__(self, row: int) -> str:
        line = self._rows[row]
        start, end = int(self._bounds[line]), int(self._bounds[line + 1])
        with open(self.path, "rb") as f:
            if _stamp(os.fstat(f.fileno())) != self._stamp:
                raise ValueError(f"{self.path} changed on disk after it was indexed; load the dataset again")
            f.seek(start)
            data = f.read(end - start)
        try:
            return data.decode("utf-8").rstrip("\r\n")
        except UnicodeDecodeError as e:
            raise ValueError(f"{self.location(row)}: not UTF-8 text ({e.reason} at byte {e.start})") from None

    def location(self, row: int) -> str:
        return f"{self.path}:{int(self._rows[row]) + 1}"


def _index_lines(f, read_size: int) -> tuple[np.ndarray, np.ndarray]:
    """(bounds, rows): line i spans bytes bounds[i]:bounds[i + 1]; rows lists the non-blank lines."""
    newlines, blank_ends = [], []
    offset, last_byte = 0, _NEWLINE
    while chunk := f.read(read_size):
        data = np.frombuffer(chunk, dtype=np.uint8)
        at = np.flatnonzero(data == _NEWLINE)
        before = data[at - 1]  # the byte before each newline (at 0: the previous chunk's last)
        if len(at) and at[0] == 0:
            before[0] = last_byte
        newlines.append(at + offset)
        blank_ends.append(before == _CARRIAGE_RETURN)  # "\r\n" counts as an empty line ending
        offset += len(chunk)
        last_byte = data[-1]
    newline_at = np.concatenate(newlines) if newlines else np.zeros(0, np.int64)
    starts = np.concatenate(([0], newline_at + 1)).astype(np.int64)
    ends = newline_at - (np.concatenate(blank_ends) if blank_ends else 0)
    blank = ends <= starts[:-1]
    if starts[-1] < offset:  # a last line without a newline
        bounds, blank = np.append(starts, offset), np.append(blank, False)
    else:
        bounds = starts
    return bounds, np.flatnonzero(~blank).astype(np.int64)


def _stamp(stat: os.stat_result) -> tuple[int, int]:
    return stat.st_size, stat.st_mtime_ns
