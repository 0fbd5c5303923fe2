"""Exception types with a meaning for the command line (light: no imports)."""

from __future__ import annotations


class ReportedFailure(RuntimeError):
    """A failure already reported in full (each cause logged with its traceback), summed up in one
    line that says what to do, e.g. "2 of 41 tasks failed: ...; rerun to run only the rest".
    `l3prune` prints that line alone, as it prints a user's mistake (ValueError, FileNotFoundError),
    where any other exception gets its traceback."""
