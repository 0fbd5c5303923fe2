"""summary.csv: one row per variant of a model, from what training and evaluation recorded.

Per variant folder (results/<model>/<variant>/): mteb.json (`l3prune evaluate`: task scores,
average, encode time) and model/model_info.json (`l3prune train`: layers and parameters before
and after pruning). Parameters are the base model's, as deployed with the adapter merged.

Columns: variant, layers, parameters, percent_removed (of the base model's parameters), the main
score of every task, average, encode_seconds. The `full` row comes first, then the variants from
the most parameters to the fewest.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

from ..files import atomic_output, read_json

MTEB_FILE = "mteb.json"
MODEL_INFO_FILE = "model/model_info.json"
BASELINE = "full"  # the unpruned variant, listed first


@dataclass(frozen=True)
class VariantResult:
    variant: str
    num_layers: int
    num_parameters: int  # after pruning, without the adapter (merged into the weights when deployed)
    base_parameters: int  # of the unpruned base model
    scores: dict[str, float]  # task name -> main score
    average: float
    encode_seconds: float
    source: Path  # the mteb.json


def _read_record(path: Path, needed: tuple[str, ...], written_by: str) -> dict:
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist; it is written by `{written_by}`")
    data = read_json(path)
    missing = [key for key in needed if key not in data]
    if missing:
        raise ValueError(f"{path} lacks {', '.join(missing)}; is it the file written by `{written_by}`?")
    return data


def read_variant_result(variant_dir: str | os.PathLike) -> VariantResult:
    """One trained and evaluated variant (its folder's mteb.json and model/model_info.json)."""
    variant_dir = Path(variant_dir)
    scores = _read_record(variant_dir / MTEB_FILE, ("average", "encode_seconds", "tasks"), "l3prune evaluate")
    size = _read_record(
        variant_dir / MODEL_INFO_FILE, ("layers_after", "params_after", "params_before"), "l3prune train"
    )
    return VariantResult(
        variant=variant_dir.name,
        num_layers=size["layers_after"],
        num_parameters=size["params_after"],
        base_parameters=size["params_before"],
        scores={task: result["main_score"] for task, result in scores["tasks"].items()},
        average=scores["average"],
        encode_seconds=scores["encode_seconds"],
        source=variant_dir / MTEB_FILE,
    )


def read_results(results_dir: str | os.PathLike, variants: list[str] | None = None) -> list[VariantResult]:
    """The variants under `results_dir` (results/<model>): the named ones, or every subfolder
    holding an mteb.json."""
    results_dir = Path(results_dir)
    if not results_dir.is_dir():
        raise FileNotFoundError(f"results folder {results_dir} does not exist")
    if variants is None:
        variants = sorted(path.parent.name for path in results_dir.glob(f"*/{MTEB_FILE}"))
        if not variants:
            raise FileNotFoundError(
                f"no evaluated variant in {results_dir} (no {results_dir}/<variant>/{MTEB_FILE})"
            )
    return [read_variant_result(results_dir / variant) for variant in variants]


def summary_rows(results: list[VariantResult]) -> list[dict]:
    """The rows of summary.csv; every variant must come from one base model and be scored on the same tasks."""
    first = results[0]
    for result in results[1:]:
        if result.base_parameters != first.base_parameters:
            raise ValueError(
                f"{result.source.parent} was pruned from a model of {result.base_parameters:,} parameters, "
                f"{first.source.parent} from one of {first.base_parameters:,}: report one base model's variants"
            )
        if set(result.scores) != set(first.scores):
            raise ValueError(
                f"{result.source} scores tasks {', '.join(sorted(result.scores))} but {first.source} "
                f"scores {', '.join(sorted(first.scores))}: evaluate every variant with the same tasks file"
            )
    ordered = sorted(results, key=lambda r: (r.variant != BASELINE, -r.num_parameters, r.variant))
    return [
        {
            "variant": r.variant,
            "layers": r.num_layers,
            "parameters": r.num_parameters,
            "percent_removed": round(100 * (1 - r.num_parameters / r.base_parameters), 2),
            **{task: round(r.scores[task], 4) for task in first.scores},
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
