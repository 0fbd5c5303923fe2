"""Score against parameters across a model's variants: what each pruning level costs, untrained
and after training, readable without the table (every line and point carries its name)."""

from __future__ import annotations

import os

from .results import VariantResult

TASK_COLOR = "0.72"
TRAINED_COLOR, UNTRAINED_COLOR, ELASTIC_COLOR = "tab:blue", "tab:orange", "tab:green"
WIDTH_INCHES = 7.5
LINE_SPACING = 1.3  # between stacked task names, in font heights


def plot_score_vs_parameters(results: list[VariantResult], path: str | os.PathLike, title: str = "") -> None:
    """The trained and the untrained average drawn bold (the elastic run's depths as a line of
    their own), each separately trained variant's task scores as faint lines named at their end,
    every variant's point named."""
    import matplotlib

    matplotlib.use("Agg")  # files only; no display on cluster nodes
    import matplotlib.pyplot as plt

    trained = _by_size(r for r in results if r.trained is not None and not r.elastic)
    tasks = list(next(e for r in results for e in (r.trained, r.untrained) if e is not None).scores)
    scale, unit = (1e9, "billions") if max(r.num_parameters for r in results) >= 1e9 else (1e6, "millions")
    font = 7 if len(tasks) <= 12 else 6
    # tall enough for every task's name in a column beside the axes
    height = max(3.6, 1.6 + len(tasks) * font * LINE_SPACING / 72) if trained else 3.6
    fig, ax = plt.subplots(figsize=(WIDTH_INCHES, height), dpi=120)
    task_lines, legend = _draw_curves(ax, results, tasks if trained else [], scale)
    for r in _by_size(results):  # the name above the trained point, else above the untrained one
        y = (r.trained or r.untrained).average
        below = r.elastic  # an elastic depth often sits on its separate variant's point: name it below
        ax.annotate(r.variant, (r.num_parameters / scale, y), textcoords="offset points",
                    xytext=(0, -12 if below else 7), ha="center", fontsize=8)  # fmt: skip
    ax.margins(x=0.06, y=0.08)  # room for the names above the outermost points
    ax.set_xlabel(f"parameters ({unit})")
    ax.set_ylabel("main score")
    ax.set_title(title or "score against parameters")
    ax.legend(handles=legend, fontsize=8, loc="best")
    fig.tight_layout()
    if task_lines:
        _room_right_of(ax, max(len(task) for task in tasks) * font * 0.6 / 72 + 0.1)
        ax.set_ylim(ax.get_ylim())  # fixed now: the names are placed in this frame
        _name_line_ends(ax, task_lines, font)
    fig.savefig(path, format="png")
    plt.close(fig)


def _by_size(results) -> list[VariantResult]:
    return sorted(results, key=lambda r: r.num_parameters)


def _draw_curves(ax, results: list[VariantResult], tasks: list[str], scale: float) -> tuple[list, list]:
    """Each task's trained line (labelled with the task), then the untrained and the trained
    average; returns the task lines and the legend's entries."""
    from matplotlib.lines import Line2D

    trained = _by_size(r for r in results if r.trained is not None and not r.elastic)
    elastic = _by_size(r for r in results if r.trained is not None and r.elastic)
    untrained = _by_size(r for r in results if r.untrained is not None)

    def x(rows):
        return [r.num_parameters / scale for r in rows]

    task_lines = [
        ax.plot(x(trained), [r.trained.scores[task] for r in trained], color=TASK_COLOR, linewidth=0.8,
                label=task)[0]
        for task in tasks
    ]  # fmt: skip
    legend = [Line2D([], [], color=TASK_COLOR, linewidth=0.8, label="each task, trained")] if tasks else []
    if untrained:
        legend += ax.plot(x(untrained), [r.untrained.average for r in untrained], marker="s", linestyle="--",
                          color=UNTRAINED_COLOR, linewidth=1.5, label="untrained (average)")  # fmt: skip
    if trained:
        legend += ax.plot(x(trained), [r.trained.average for r in trained], marker="o", color=TRAINED_COLOR,
                          linewidth=2, label="trained (average)")  # fmt: skip
    if elastic:
        legend += ax.plot(x(elastic), [r.trained.average for r in elastic], marker="D", color=ELASTIC_COLOR,
                          linewidth=2, linestyle=":", label="elastic, one run (average)")  # fmt: skip
    return task_lines, legend


def _room_right_of(ax, inches: float) -> None:
    """Narrow the axes so that `inches` of the figure are free right of them (for the task names)."""
    figure = ax.figure
    figure.subplots_adjust(right=ax.get_position().x1 - inches / figure.get_figwidth())


def _name_line_ends(ax, lines, font: int) -> None:
    """Write each line's label just right of the axes, level with its last point, moved up or
    down only as far as needed for the names not to overlap."""
    ends = sorted(((line.get_xdata()[-1], line.get_ydata()[-1], line.get_label()) for line in lines),
                  key=lambda end: end[1])  # fmt: skip
    to_points = 72 / ax.figure.dpi
    gap = font * LINE_SPACING / to_points  # pixels between stacked names
    frame = ax.get_window_extent()
    points = [ax.transData.transform((end_x, end_y)) for end_x, end_y, _ in ends]
    placed = []
    for _, height in points:
        placed.append(height if not placed else max(height, placed[-1] + gap))
    overflow = placed[-1] - (frame.y1 - gap / 2)
    if overflow > 0:
        placed = [height - overflow for height in placed]
    for (end_x, end_y, name), (x_pixels, y_pixels), height in zip(ends, points, placed, strict=True):
        offset = ((frame.x1 - x_pixels) * to_points + 3, (height - y_pixels) * to_points)
        ax.annotate(name, (end_x, end_y), textcoords="offset points", xytext=offset, va="center",
                    fontsize=font, color="0.4")  # fmt: skip
