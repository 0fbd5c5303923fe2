"""summary.csv: one row per variant of a model, read from the variants' mteb.json files.

Columns: variant, layers, parameters, percent_removed (of the `full` variant's parameters), the
main score of every task, average, encode_seconds. The `full` row comes first, then the variants
from the most parameters to the fewest.
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass
from pathlib import Path

from ..files import atomic_output

MTEB_FILE = "mteb.json"
BASELINE = "full"  # the unpruned variant: its parameter count is the base model's


@dataclass(frozen=True)
class VariantResult:
    variant: str
    num_layers: int
    num_parameters: int
    scores: dict[str, float]  # task name -> main score
    average: float
    encode_seconds: float
    source: Path


def read_variant_result(path: str | os.PathLike, variant: str) -> VariantResult:
    """One variant's evaluation summary (the mteb.json written by `l3prune evaluate`)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist; evaluate the variant with `l3prune evaluate`")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}:{e.lineno}:{e.colno}: not valid JSON ({e.msg})") from None
    needed = ("num_layers", "num_parameters", "average", "encode_seconds", "tasks")
    missing = [key for key in needed if key not in data]
    if missing:
        raise ValueError(
            f"{path} lacks {', '.join(missing)}; is it the summary written by `l3prune evaluate`?"
        )
    return VariantResult(
        variant=variant,
        num_layers=data["num_layers"],
        num_parameters=data["num_parameters"],
        scores={task: result["main_score"] for task, result in data["tasks"].items()},
        average=data["average"],
        encode_seconds=data["encode_seconds"],
        source=path,
    )


def read_results(results_dir: str | os.PathLike, variants: list[str] | None = None) -> list[VariantResult]:
    """The evaluated variants under `results_dir` (results/<model>): the named ones, or every
    subfolder holding an mteb.json."""
    results_dir = Path(results_dir)
    if not results_dir.is_dir():
        raise FileNotFoundError(f"results folder {results_dir} does not exist")
    if variants is None:
        variants = sorted(path.parent.name for path in results_dir.glob(f"*/{MTEB_FILE}"))
        if not variants:
            raise FileNotFoundError(
                f"no evaluated variant in {results_dir} (no {results_dir}/<variant>/{MTEB_FILE})"
            )
    return [read_variant_result(results_dir / variant / MTEB_FILE, variant) for variant in variants]


def summary_rows(results: list[VariantResult]) -> list[dict]:
    """The rows of summary.csv, `full` first; every variant must have been run on the same tasks."""
    by_name = {result.variant: result for result in results}
    if BASELINE not in by_name:
        raise ValueError(
            f"no '{BASELINE}' variant among {', '.join(by_name)}: the share of parameters removed "
            f"is relative to the unpruned '{BASELINE}' model, so evaluate it too"
        )
    baseline = by_name[BASELINE]
    tasks = list(baseline.scores)
    for result in results:
        if set(result.scores) != set(tasks):
            raise ValueError(
                f"{result.source} scores tasks {', '.join(sorted(result.scores))} but {baseline.source} "
                f"scores {', '.join(sorted(tasks))}: evaluate every variant with the same tasks file"
            )
    ordered = sorted(results, key=lambda r: (r.variant != BASELINE, -r.num_parameters, r.variant))
    return [
        {
            "variant": r.variant,
            "layers": r.num_layers,
            "parameters": r.num_parameters,
            "percent_removed": round(100 * (1 - r.num_parameters / baseline.num_parameters), 2),
            **{task: round(r.scores[task], 4) for task in tasks},
            "average": round(r.average, 4),
            "encode_seconds": round(r.encode_seconds, 1),
        }
        for r in ordered
    ]


def write_summary(rows: list[dict], path: str | os.PathLike) -> None:
    with atomic_output(path) as tmp, open(tmp, "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
