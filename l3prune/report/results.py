"""What training and evaluation recorded for each variant of a model, read back for the report.

Per variant folder (results/<model>/<variant>/):
    mteb.json                the trained variant's scores (`l3prune evaluate VARIANT_DIR`)
    model/model_info.json    its layers and parameters before and after pruning (`l3prune train`)
    untrained/mteb.json      the untrained baseline: the base model cut to the same layer count,
                             evaluated on the same tasks (`l3prune evaluate-untrained CONFIG --variant V`;
                             for `full` the base model as it is)

A row `elastic@<depth>` (results/<model>/elastic@small/mteb.json, `l3prune evaluate --elastic-depth`)
is one depth of the elastic variant: its sizes are that depth's in results/<model>/elastic/model/
model_info.json, its training cost that one run's, shared by every depth it trained.

A variant needs its trained scores or its baseline's (a baseline alone: `full` when only its
untrained reference is evaluated). Sizes come from model_info.json, which counts the parameters
as deployed, with the adapter merged; mteb.json's count includes unmerged LoRA weights, so it is
used only for a baseline without a trained variant beside it (an untrained model has no adapter).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..elastic import ROW_SEPARATOR
from ..files import read_json

MTEB_FILE = "mteb.json"
MODEL_INFO_FILE = "model/model_info.json"
UNTRAINED_FILE = "untrained/mteb.json"


@dataclass(frozen=True)
class Evaluation:
    """One mteb.json."""

    scores: dict[str, float]  # task name -> main score
    average: float
    encode_seconds: float | None
    num_layers: int
    num_parameters: int | None  # as evaluation counted them (LoRA weights included)
    max_length: int | None  # None when the file does not record it
    base_model: str | None
    source: Path


@dataclass(frozen=True)
class VariantResult:
    variant: str
    num_layers: int
    num_parameters: int  # after pruning, without the adapter (merged into the weights when deployed)
    base_parameters: int | None  # of the unpruned base model; None without model_info.json
    base_model: str | None  # the base model's name or path, as training or evaluation recorded it
    trained: Evaluation | None
    untrained: Evaluation | None
    folder: Path
    train_steps: int | None = None  # of the run that trained it (an elastic run trains several rows)
    train_seconds: float | None = None  # its wall-clock training time; None when the file does not record it

    @property
    def elastic(self) -> bool:
        return ROW_SEPARATOR in self.variant


def _read_record(path: Path, needed: tuple[str, ...], written_by: str) -> dict:
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist; it is written by `{written_by}`")
    data = read_json(path)
    missing = [key for key in needed if key not in data]
    if missing:
        raise ValueError(f"{path} lacks {', '.join(missing)}; is it the file written by `{written_by}`?")
    return data


def read_evaluation(path: Path, needed: tuple[str, ...], written_by: str) -> Evaluation:
    data = _read_record(path, ("average", "tasks", *needed), written_by)
    return Evaluation(
        scores={task: result["main_score"] for task, result in data["tasks"].items()},
        average=data["average"],
        encode_seconds=data.get("encode_seconds"),
        num_layers=data.get("num_layers"),
        num_parameters=data.get("num_parameters"),
        max_length=data.get("max_length"),
        base_model=data.get("base_model"),
        source=path,
    )


def read_variant_result(variant_dir: str | os.PathLike, untrained: bool = True) -> VariantResult:
    """One variant: its trained scores and sizes, and its untrained baseline when evaluated
    (ignored with `untrained=False`)."""
    folder = Path(variant_dir)
    baseline_path = folder / UNTRAINED_FILE
    baseline = None
    if untrained and baseline_path.is_file():
        baseline = read_evaluation(
            baseline_path, ("num_layers",), "l3prune evaluate-untrained CONFIG --variant V"
        )
    if baseline is not None and not (folder / MTEB_FILE).exists():
        return _baseline_only(folder, baseline)
    trained = read_evaluation(folder / MTEB_FILE, ("encode_seconds",), "l3prune evaluate")
    size = _size(folder, trained)
    if baseline is not None:
        check_same_settings(baseline, trained, size["layers_after"], folder.name)
    return VariantResult(
        variant=folder.name,
        num_layers=size["layers_after"],
        num_parameters=size["params_after"],
        base_parameters=size["params_before"],
        base_model=size.get("base_model") or trained.base_model,
        trained=trained,
        untrained=baseline,
        folder=folder,
        train_steps=size.get("steps"),
        train_seconds=size.get("train_seconds"),
    )


def _size(folder: Path, trained: Evaluation) -> dict:
    """model_info.json of the variant; for a row elastic@<depth>, the elastic run's, with that
    depth's layers and parameters, checked against the layers the row was evaluated at."""
    needed = ("layers_after", "params_after", "params_before")
    if ROW_SEPARATOR not in folder.name:
        return _read_record(folder / MODEL_INFO_FILE, needed, "l3prune train")
    run, depth = folder.name.split(ROW_SEPARATOR, 1)
    path = folder.parent / run / MODEL_INFO_FILE
    info = _read_record(path, (*needed, "elastic_depths"), "l3prune train")
    found = [d for d in info["elastic_depths"] or () if d["name"] == depth]
    if not found:
        trained_for = ", ".join(d["name"] for d in info["elastic_depths"] or ()) or "none"
        raise ValueError(f"{folder}: {path} records no elastic depth {depth!r} (trained: {trained_for})")
    layers = found[0]["layers"]
    if trained.num_layers is not None and trained.num_layers != layers:
        raise ValueError(
            f"{trained.source} evaluated {trained.num_layers} layers but depth {depth} of {path.parent} has "
            f"{layers}: evaluate it with --elastic-depth {depth}"
        )
    return info | {"layers_after": layers, "params_after": found[0]["params"]}


def _baseline_only(folder: Path, baseline: Evaluation) -> VariantResult:
    if baseline.num_parameters is None:
        raise ValueError(
            f"{baseline.source} lacks num_parameters, and {folder / MODEL_INFO_FILE} does not exist; "
            "is it the file written by `l3prune evaluate`?"
        )
    return VariantResult(
        variant=folder.name,
        num_layers=baseline.num_layers,
        num_parameters=baseline.num_parameters,
        base_parameters=None,
        base_model=baseline.base_model,
        trained=None,
        untrained=baseline,
        folder=folder,
    )


def check_same_settings(baseline: Evaluation, trained: Evaluation, layers: int, variant: str) -> None:
    """The baseline is the trained variant's model before training: as many layers, the same
    evaluation length, so that the difference is what training did."""
    if baseline.num_layers != layers:
        raise ValueError(
            f"{baseline.source} evaluated {baseline.num_layers} layers but the trained variant keeps "
            f"{layers}: evaluate the baseline with `l3prune evaluate-untrained CONFIG --variant {variant}`"
        )
    if None not in (baseline.max_length, trained.max_length) and baseline.max_length != trained.max_length:
        raise ValueError(
            f"{baseline.source} was evaluated at max_length {baseline.max_length} but {trained.source} at "
            f"{trained.max_length}: evaluate both with the same --max-length"
        )


def read_results(
    results_dir: str | os.PathLike, variants: list[str] | None = None, untrained: bool = True
) -> list[VariantResult]:
    """The variants under `results_dir` (results/<model>): the named ones, or every subfolder
    holding an mteb.json (or, unless `untrained` is False, an untrained/mteb.json)."""
    results_dir = Path(results_dir)
    if not results_dir.is_dir():
        raise FileNotFoundError(f"results folder {results_dir} does not exist")
    if variants is None:
        patterns = (MTEB_FILE, UNTRAINED_FILE) if untrained else (MTEB_FILE,)
        found = {path.parent for pattern in patterns for path in results_dir.glob(f"*/{pattern}")}
        variants = sorted({folder.relative_to(results_dir).parts[0] for folder in found})
        if not variants:
            raise FileNotFoundError(
                f"no evaluated variant in {results_dir} (no {results_dir}/<variant>/{MTEB_FILE})"
            )
    return [read_variant_result(results_dir / variant, untrained) for variant in variants]
