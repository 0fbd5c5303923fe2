"""`l3prune evaluate`, `l3prune evaluate-untrained` and `l3prune evaluate-merge`. Light to import: mteb and torch load only when
the command runs."""

from __future__ import annotations

import argparse
from pathlib import Path

from .options import add_device_option, add_model_option, at_least_one, torch_device

DTYPES = ("float32", "bfloat16", "float16")


def register(subparsers) -> None:
    _register_evaluate(subparsers)
    _register_evaluate_untrained(subparsers)
    _register_evaluate_merge(subparsers)


def _register_evaluate(subparsers) -> None:
    p = subparsers.add_parser(
        "evaluate",
        help="score an encoder (a trained variant or a base model) on MTEB and local tasks",
        description="Run a tasks file's MTEB tasks, benchmark and local tasks; write mteb.json beside mteb's own results.",
    )
    p.add_argument(
        "variant",
        help="a trained variant folder (adapter + l3prune_encoder.json), or a model folder / hub name",
    )
    p.add_argument(
        "--tasks",
        required=True,
        help="tasks file (YAML: tasks, benchmark, local_tasks, instructions, batch_size, max_length, cache)",
    )
    p.add_argument(
        "--out", required=True, help="summary JSON to write, e.g. results/<model>/<variant>/mteb.json"
    )
    p.add_argument("--name", help="mteb model name (default: l3prune/<base model>-<variant>)")
    p.add_argument("--batch-size", type=int, help="encode batch size (default: the tasks file's, else 32)")
    p.add_argument(
        "--max-length",
        type=int,
        help="tokens each input is cut to (default: the tasks file's, else the encoder's saved length)",
    )
    p.add_argument(
        "--num-layers", type=int, help="keep only the first K layers (default: the variant's own count)"
    )
    p.add_argument(
        "--elastic-depth",
        metavar="NAME",
        help="an elastic variant at its trained depth NAME (small, large, full, pNN, lNN): as many "
        "layers as its l3prune_encoder.json records for it",
    )
    p.add_argument("--dtype", choices=DTYPES, help="weights dtype (default: the checkpoint's)")
    p.add_argument(
        "--task-group",
        type=int,
        metavar="K",
        help="evaluate only the K-th (1 to N) of --task-groups N groups of the tasks, balanced by size; "
        "--out is then a part for evaluate-merge",
    )
    p.add_argument("--task-groups", type=int, metavar="N", help="how many groups the tasks are split into")
    p.add_argument(
        "--training-config",
        metavar="CONFIG.json",
        help="the variant's training config: its dataset's mteb tasks go into mteb's model record (training_datasets)",
    )
    add_device_option(p)
    p.add_argument(
        "--trust-remote-code",
        action="store_true",
        help="run the model's own Python code from the hub (off unless given; the workflow passes it "
        "when the training config sets trust_remote_code)",
    )
    p.set_defaults(func=run_evaluate)


def _register_evaluate_untrained(subparsers) -> None:
    untrained = subparsers.add_parser(
        "evaluate-untrained",
        help="score a variant's base model cut to its layers, untrained: what training is measured against",
        description="Load the training config's base model as training loads it (pooling, input wrap, lengths, "
        "dtype), cut it to the variant's layers, and evaluate it untrained at the inference length.",
    )
    untrained.add_argument("config", help="the training config JSON")
    untrained.add_argument(
        "--variant", required=True, help="full, small, large, or a pNN / lNN the config lists"
    )
    untrained.add_argument(
        "--prune-points", help="points.json of `l3prune prune-points` (for small and large)"
    )
    add_model_option(untrained)
    untrained.add_argument("--tasks", required=True, help="tasks file (YAML), as for evaluate")
    untrained.add_argument(
        "--name", help="mteb model name (default: l3prune/<base model>-<variant>-untrained)"
    )
    untrained.add_argument(
        "--out", required=True, help="summary JSON, e.g. results/<model>/<variant>/untrained/mteb.json"
    )
    untrained.add_argument(
        "--batch-size", type=int, help="encode batch size (default: the tasks file's, else 32)"
    )
    add_device_option(untrained)
    untrained.set_defaults(func=run_evaluate_untrained)


def _register_evaluate_merge(subparsers) -> None:
    merge = subparsers.add_parser(
        "evaluate-merge",
        help="assemble a variant's mteb.json from the parts of a split evaluation",
        description="Merge the N parts written by `l3prune evaluate --task-group K --task-groups N` "
        "into the mteb.json an unsplit evaluation writes.",
    )
    merge.add_argument("parts", nargs="+", help="the part files, one per group")
    merge.add_argument(
        "--out", required=True, help="summary JSON to write, e.g. results/<model>/<variant>/mteb.json"
    )
    merge.set_defaults(func=run_merge)


def task_group_option(index: int | None, count: int | None) -> tuple[int, int] | None:
    """(K, N) from --task-group K --task-groups N, checked; None when neither is given."""
    if index is None and count is None:
        return None
    if index is None or count is None:
        raise ValueError(
            "--task-group and --task-groups go together: give both (e.g. --task-group 1 --task-groups 4)"
        )
    at_least_one("--task-groups", count)
    if not 1 <= index <= count:
        raise ValueError(f"--task-group must be from 1 to --task-groups {count}, got {index}")
    return index, count


def default_name(source: str, encoder, num_layers: int | None) -> str:
    """l3prune/<base model>-<variant>. A trained variant folder says both in its model_info.json;
    another saved encoder folder is named after itself; a plain model is `full`, or `lK` when cut
    to K layers (the project's variant names)."""
    from ..encoder.llm_encoder import SETTINGS_FILE
    from ..evaluation.mteb_model import mteb_name
    from ..files import read_json

    folder = Path(source)
    info = read_json(folder / "model_info.json", if_missing={})
    base = info.get("base_model") or encoder.base_model_name_or_path
    if "variant" in info:
        variant = info["variant"]
    elif (folder / SETTINGS_FILE).is_file():
        variant = folder.resolve().name
    else:
        variant = "full" if num_layers is None else f"l{num_layers}"
    return mteb_name(base, variant)


def run_evaluate(args: argparse.Namespace) -> None:
    import torch

    from ..encoder import LLMEncoder
    from ..evaluation.run import evaluate
    from ..evaluation.tasks_file import load_tasks_file

    at_least_one("--batch-size", args.batch_size)
    at_least_one("--max-length", args.max_length)
    group = task_group_option(args.task_group, args.task_groups)
    device = torch_device(args.device)
    config = load_tasks_file(args.tasks)  # a bad tasks file fails before the model loads
    trained_on = training_datasets_option(args.training_config)
    num_layers, name = elastic_depth_option(args)
    hf_kwargs = {"dtype": getattr(torch, args.dtype)} if args.dtype else {}
    if args.trust_remote_code:
        hf_kwargs["trust_remote_code"] = True
    encoder = LLMEncoder.from_pretrained(args.variant, num_layers=num_layers, **hf_kwargs)
    encoder.model.to(device)
    summary = evaluate(
        encoder,
        config,
        args.out,
        name=name or default_name(args.variant, encoder, num_layers),
        source=args.variant,
        batch_size=args.batch_size,
        max_length=args.max_length,
        task_group=group,
        training_datasets=trained_on,
    )
    print_summary_line(summary, args.out)


def elastic_depth_option(args: argparse.Namespace) -> tuple[int | None, str | None]:
    """(layers, mteb name) that --elastic-depth and --num-layers ask for (None: the defaults); an
    elastic depth is named l3prune/<base model>-elastic@<depth> unless --name is given."""
    if args.elastic_depth is None:
        return args.num_layers, args.name
    from ..elastic import row_name, trained_depth_layers
    from ..evaluation.mteb_model import mteb_name
    from ..files import read_json

    if args.num_layers is not None:
        raise ValueError("give --num-layers or --elastic-depth, not both")
    layers = trained_depth_layers(args.variant, args.elastic_depth)
    base = read_json(Path(args.variant) / "model_info.json", if_missing={}).get("base_model", "model")
    return layers, args.name or mteb_name(base, row_name(args.elastic_depth))


def run_evaluate_untrained(args: argparse.Namespace) -> None:
    from ..config import load_config
    from ..encoder import LLMEncoder
    from ..evaluation.mteb_model import mteb_name
    from ..evaluation.run import evaluate
    from ..evaluation.tasks_file import load_tasks_file
    from ..precision import encoder_kwargs, resolve_precision
    from ..variants import load_prune_points, variant_value
    from .options import with_local_model

    at_least_one("--batch-size", args.batch_size)
    device = torch_device(args.device)
    tasks = load_tasks_file(args.tasks)
    config = load_config(args.config)
    points = load_prune_points(args.prune_points) if args.prune_points else None
    prune = variant_value(config, args.variant, points)  # before the model loads
    local = with_local_model(config, args.model)
    dtype, _, _ = resolve_precision(config)
    encoder = LLMEncoder.from_pretrained(
        local.model_name_or_path, prune=prune, **encoder_kwargs(config, dtype)
    )
    encoder.max_length = config.inference_max_length  # as a trained variant is evaluated
    encoder.model.to(device)
    summary = evaluate(
        encoder,
        tasks,
        args.out,
        name=args.name or mteb_name(config.model_name_or_path, f"{args.variant}-untrained"),
        source=local.model_name_or_path,
        batch_size=args.batch_size,
    )
    print_summary_line(summary, args.out)


def training_datasets_option(path: str | None) -> set[str] | None:
    from ..config import load_config
    from ..evaluation.training_datasets import training_datasets

    return training_datasets(load_config(path).dataset_name) if path else None


def print_summary_line(summary: dict, out: str) -> None:
    group = summary.get("task_group")
    where = f" (group {group['index']} of {group['count']})" if group else ""
    average = "none" if summary["average"] is None else f"{summary['average']:.4f}"
    print(f"{summary['model']}: average {average} over {len(summary['tasks'])} tasks{where} -> {out}")


def run_merge(args: argparse.Namespace) -> None:
    from ..evaluation.summary import merge_parts
    from ..files import write_json

    summary = merge_parts(args.parts)
    write_json(args.out, summary)
    print_summary_line(summary, args.out)
