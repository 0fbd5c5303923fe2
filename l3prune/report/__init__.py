"""A model's results in one place: summary.csv and the score-against-parameters plot, e.g.
`write_report("results/demo", "results/demo")` (what `l3prune report` runs)."""

from __future__ import annotations

import os
from pathlib import Path

from ..files import atomic_output
from .summary import read_results, summary_rows, write_summary

SUMMARY_FILE = "summary.csv"
PLOT_FILE = "score_vs_parameters.png"

__all__ = ["PLOT_FILE", "SUMMARY_FILE", "write_report"]


def write_report(
    results_dir: str | os.PathLike, out_dir: str | os.PathLike, variants: list[str] | None = None
) -> list[dict]:
    """Write `out_dir`/summary.csv and `out_dir`/score_vs_parameters.png; return the summary's rows."""
    from .plot import plot_score_vs_parameters

    results = read_results(results_dir, variants)
    rows = summary_rows(results)  # checks the results before anything is written
    out_dir = Path(out_dir)
    with atomic_output(out_dir / PLOT_FILE) as tmp:
        plot_score_vs_parameters(results, tmp, title=f"L3Prune variants of {Path(results_dir).name}")
    write_summary(rows, out_dir / SUMMARY_FILE)
    return rows
