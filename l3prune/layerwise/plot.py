"""The loss-vs-depth curve with L3Prune's two picks marked."""

from __future__ import annotations

from pathlib import Path


def plot_prune_points(
    losses: list[float], small: int, large: int, path: str | Path, model: str | None = None
) -> None:
    """`model` (a hub name or a folder, as the loss file records it) is named in the title by its
    short name, the one a downloaded folder records, not by a path."""
    import matplotlib

    from ..assets.model_names import display_name

    matplotlib.use("Agg")  # files only; no display on cluster nodes
    import matplotlib.pyplot as plt

    layers = range(1, len(losses) + 1)
    fig, ax = plt.subplots(figsize=(6, 3.6), dpi=120)
    ax.plot(layers, losses, marker="o", markersize=3, color="0.3", label="contrastive loss")
    ax.axvline(len(losses) // 2 + 0.5, color="0.8", linestyle=":", label="half")
    for name, k, color in (("small", small, "tab:orange"), ("large", large, "tab:blue")):
        ax.scatter([k], [losses[k - 1]], s=90, color=color, zorder=3, label=f"{name}: {k} layers")
    ax.set_xlabel("layers kept")
    ax.set_ylabel("layerwise loss")
    model_name = display_name(model) if model else "a model"
    ax.set_title(f"L3Prune on {model_name} ({len(losses)} layers)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, format="png")  # explicit: the path may be a temporary name without .png
    plt.close(fig)
