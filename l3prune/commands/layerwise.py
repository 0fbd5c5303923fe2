"""`l3prune layerwise-loss` and `l3prune prune-points`. Light to import: the work imports torch."""

from __future__ import annotations

import argparse

from .options import add_device_option, add_model_option, at_least_one, torch_device, with_local_model


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "layerwise-loss",
        help="the base model's contrastive loss at every layer count (one forward pass per batch)",
        description="Compute the layerwise loss curve of a training config's base model on its training data.",
    )
    p.add_argument(
        "config", help="training config JSON (the seed's keys: model_name_or_path, dataset_name, ...)"
    )
    p.add_argument("--out", required=True, help="JSON file to write")
    p.add_argument(
        "--batch-size", type=int, help="triples per batch (default: the config's l3prune_batch_size, 64)"
    )
    p.add_argument(
        "--num-batches", type=int, help="batches to average (default: the config's l3prune_num_batches, 100)"
    )
    p.add_argument("--seed", type=int, help="data sampling seed (default: the config's seed)")
    add_device_option(p)
    add_model_option(p)
    p.set_defaults(func=run_layerwise_loss)

    p = subparsers.add_parser(
        "prune-points",
        help="pick L3Prune's small and large layer counts from a layerwise loss curve",
        description="Apply the original rule (lowest loss in each half, ties to the shallower count).",
    )
    p.add_argument("loss", help="JSON written by `l3prune layerwise-loss`")
    p.add_argument("--out", required=True, help="JSON file to write (small, large, num_layers, the curve)")
    p.add_argument("--plot", help="PNG of the curve with both picks marked")
    p.set_defaults(func=run_prune_points)


def run_layerwise_loss(args: argparse.Namespace) -> None:
    import time

    from ..config import load_config
    from ..files import write_json
    from ..layerwise.run import layerwise_run

    batch_size = at_least_one("--batch-size", args.batch_size)
    num_batches = at_least_one("--num-batches", args.num_batches)
    device = torch_device(args.device)
    config = load_config(args.config)
    model_name = config.model_name_or_path  # the curve is the config's model, wherever it loads from
    config = with_local_model(config, args.model)
    run = layerwise_run(config, device, batch_size=batch_size, num_batches=num_batches, seed=args.seed)
    start = time.perf_counter()
    losses = run.losses(show_progress_bar=True)
    write_json(
        args.out,
        {
            "model": model_name,
            "num_layers": len(losses),
            "losses": losses,
            "data": {
                "dataset_name": config.dataset_name,
                "dataset_file_path": config.dataset_file_path,
                "batch_size": run.batch_size,
                "num_batches": min(run.num_batches, len(run.dataset) // run.batch_size),
                "seed": run.seed,
            },
            "settings": {
                "pooling_mode": run.encoder.pooling_mode,
                "max_length": run.encoder.inputs.max_length,
                "dtype": str(run.encoder.model.dtype),
                "device": device,
                "loss": config.loss_class,
                "loss_scale": config.loss_scale,
                "config": str(args.config),
            },
            "seconds": round(time.perf_counter() - start, 3),
        },
    )


def run_prune_points(args: argparse.Namespace) -> None:
    from pathlib import Path

    from ..files import read_json, write_json
    from ..layerwise import select_prune_points
    from ..layerwise.plot import plot_prune_points

    path = Path(args.loss)
    if not path.is_file():
        raise FileNotFoundError(
            f"layerwise loss file {path} does not exist (write it with `l3prune layerwise-loss`)"
        )
    curve = read_json(path)
    losses = curve.get("losses") if isinstance(curve, dict) else None
    if not isinstance(losses, list) or not all(isinstance(x, (int, float)) for x in losses):
        raise ValueError(
            f"{path}: no 'losses' list of numbers (one per layer count); is it `l3prune layerwise-loss` output?"
        )
    try:
        small, large = select_prune_points(losses)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None
    if args.plot:
        from ..files import atomic_output

        with atomic_output(args.plot) as tmp:
            plot_prune_points(losses, small, large, tmp, model=curve.get("model"))
    write_json(
        args.out,
        {
            "model": curve.get("model"),
            "num_layers": len(losses),
            "small": small,
            "large": large,
            "losses": losses,
            "source": str(path),
        },
    )
