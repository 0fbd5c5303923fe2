"""summary.csv: one row per variant of a model (results.py reads what the rows come from).

Columns: variant, layers, parameters, percent_removed (of the base model's parameters),
train_steps and train_seconds (the steps and wall-clock seconds of the training run that produced
the row: one elastic run produces every elastic@<depth> row, so they all show its cost; empty for
a baseline alone or a model_info.json without them), the main score of every task, average,
encode_seconds. When any variant has an untrained baseline, also (before encode_seconds):
untrained_average, points_lost_by_cutting (untrained `full` average minus this variant's untrained
average) and points_recovered_by_training (trained average minus untrained average), in points:
100 x the difference of main scores. A cell whose inputs were not evaluated stays empty. The
`full` row comes first, then the variants from the most parameters to the fewest.
"""

from __future__ import annotations

import csv
import os

from ..files import atomic_output
from .results import Evaluation, VariantResult

REFERENCE_VARIANT = "full"  # the unpruned variant, listed first; its untrained scores are the reference


def check_one_model(results: list[VariantResult]) -> None:
    """Every variant comes from one base model and every evaluation scores the same tasks."""
    sized = [r for r in results if r.base_parameters is not None]
    for result in sized[1:]:
        if result.base_parameters != sized[0].base_parameters:
            raise ValueError(
                f"{result.folder} was pruned from a model of {result.base_parameters:,} parameters, "
                f"{sized[0].folder} from one of {sized[0].base_parameters:,}: report one base model's variants"
            )
    evaluations = [e for r in results for e in (r.trained, r.untrained) if e is not None]
    for evaluation in evaluations[1:]:
        if set(evaluation.scores) != set(evaluations[0].scores):
            raise ValueError(
                f"{evaluation.source} scores tasks {', '.join(sorted(evaluation.scores))} but "
                f"{evaluations[0].source} scores {', '.join(sorted(evaluations[0].scores))}: evaluate "
                "every variant and its untrained baseline with the same tasks file"
            )


def base_parameters(results: list[VariantResult]) -> int | None:
    """The unpruned base model's parameters: as training recorded them, else the untrained
    `full` model's own count."""
    for result in results:
        if result.base_parameters is not None:
            return result.base_parameters
    full = [r for r in results if r.variant == REFERENCE_VARIANT]
    return full[0].num_parameters if full else None


def points(higher: Evaluation | None, lower: Evaluation | None) -> float | None:
    """How many points (100 x main score) `higher`'s average is above `lower`'s."""
    if higher is None or lower is None:
        return None
    return round(100 * (higher.average - lower.average), 2)


def summary_rows(results: list[VariantResult]) -> list[dict]:
    """The rows of summary.csv (checked first: one base model, the same tasks everywhere)."""
    check_one_model(results)
    tasks = next(e for r in results for e in (r.trained, r.untrained) if e is not None).scores
    base = base_parameters(results)
    reference = next((r.untrained for r in results if r.variant == REFERENCE_VARIANT), None)
    with_baselines = any(r.untrained is not None for r in results)
    ordered = sorted(results, key=lambda r: (r.variant != REFERENCE_VARIANT, -r.num_parameters, r.variant))
    rows = []
    for r in ordered:
        trained, untrained = r.trained, r.untrained
        row = {
            "variant": r.variant,
            "layers": r.num_layers,
            "parameters": r.num_parameters,
            "percent_removed": None if base is None else round(100 * (1 - r.num_parameters / base), 2),
            "train_steps": r.train_steps,
            "train_seconds": None if r.train_seconds is None else round(r.train_seconds, 1),
            **{task: trained and round(trained.scores[task], 4) for task in tasks},
            "average": trained and round(trained.average, 4),
        }
        if with_baselines:
            row["untrained_average"] = untrained and round(untrained.average, 4)
            row["points_lost_by_cutting"] = points(reference, untrained)
            row["points_recovered_by_training"] = points(trained, untrained)
        row["encode_seconds"] = trained and round(trained.encode_seconds, 1)
        rows.append(row)
    return rows


def write_summary(rows: list[dict], path: str | os.PathLike) -> None:
    with atomic_output(path) as tmp, open(tmp, "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)  # None is written as an empty cell
