"""A model's results in one place: summary.csv and the score-against-parameters plot, e.g.
`write_report("results/demo", "results/demo")` (what `l3prune report` runs). Each variant's
untrained baseline (results/<model>/<variant>/untrained/mteb.json) is read when it exists."""

from __future__ import annotations

import os
from pathlib import Path

from ..files import atomic_output
from .results import read_results
from .summary import summary_rows, write_summary

SUMMARY_FILE = "summary.csv"
PLOT_FILE = "score_vs_parameters.png"

__all__ = ["PLOT_FILE", "SUMMARY_FILE", "report_model_name", "write_report"]


def report_model_name(results) -> str | None:
    """The base model's short name (last part of its hub name or folder), as training or, for a
    baseline alone, evaluation recorded it; None when neither did."""
    from ..assets.model_names import display_name

    trained_first = sorted(results, key=lambda r: r.trained is None)  # training records the name it was given
    recorded = [r.base_model for r in trained_first if r.base_model]
    return display_name(recorded[0]) if recorded else None


def write_report(
    results_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    variants: list[str] | None = None,
    *,
    untrained: bool = True,
    model_name: str | None = None,
) -> list[dict]:
    """Write `out_dir`/summary.csv and `out_dir`/score_vs_parameters.png; return the summary's rows.
    `untrained=False` ignores the baselines; `model_name` (default: the base model's short name)
    titles the plot."""
    from .plot import plot_score_vs_parameters

    results = read_results(results_dir, variants, untrained=untrained)
    rows = summary_rows(results)  # checks the results before anything is written
    name = model_name or report_model_name(results) or Path(results_dir).name
    out_dir = Path(out_dir)
    with atomic_output(out_dir / PLOT_FILE) as tmp:
        plot_score_vs_parameters(results, tmp, title=f"L3Prune variants of {name}")
    write_summary(rows, out_dir / SUMMARY_FILE)
    return rows
