"""Score against parameters across a model's variants: what each pruning level costs."""

from __future__ import annotations

import os

from .summary import VariantResult


def plot_score_vs_parameters(results: list[VariantResult], path: str | os.PathLike, title: str = "") -> None:
    """The average score drawn bold, each task's main score as a faint line, every point named."""
    import matplotlib

    matplotlib.use("Agg")  # files only; no display on cluster nodes
    import matplotlib.pyplot as plt

    results = sorted(results, key=lambda r: r.num_parameters)
    scale, unit = (1e9, "billions") if results[-1].num_parameters >= 1e9 else (1e6, "millions")
    x = [r.num_parameters / scale for r in results]
    fig, ax = plt.subplots(figsize=(6, 3.6), dpi=120)
    for task in results[0].scores:
        ax.plot(x, [r.scores[task] for r in results], color="0.75", linewidth=0.8)
    ax.plot([], [], color="0.75", linewidth=0.8, label="each task")
    ax.plot(x, [r.average for r in results], marker="o", color="tab:blue", linewidth=2, label="average")
    for x_value, r in zip(x, results, strict=True):
        ax.annotate(r.variant, (x_value, r.average), textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.margins(x=0.12)  # room for the names of the outermost points
    ax.set_xlabel(f"parameters ({unit})")
    ax.set_ylabel("main score")
    ax.set_title(title or "score against parameters")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, format="png")
    plt.close(fig)
