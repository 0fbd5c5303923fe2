"""`l3prune train`. Light to import: the work imports torch."""

from __future__ import annotations

import argparse

from .options import add_model_option, with_local_model


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "train",
        help="contrastive LoRA training of a config's variants (the full and the pruned models)",
        description="Train every variant of a training config (full, pNN, lNN, small, large, and elastic: one run "
        "at every depth of elastic_depths), or one with --variant. "
        "A finished variant is skipped; an interrupted one resumes from its last checkpoint. "
        "Several GPUs: torchrun --nproc_per_node N $(which l3prune) train CONFIG.json",
    )
    p.add_argument("config", help="training config JSON (the seed's keys plus any TrainingArguments field)")
    p.add_argument(
        "--variant",
        help="train only this variant (full, small, large, elastic, or a pNN / lNN the config lists)",
    )
    p.add_argument(
        "--prune-points",
        help="points.json from `l3prune prune-points` (small, large, num_layers); "
        "without it, an autoprune config runs L3Prune first",
    )
    p.add_argument(
        "--output-dir",
        help="with --variant: that variant's folder; without: the folder for all variants (instead of output_dir)",
    )
    add_model_option(p)
    p.set_defaults(func=run_train)


def run_train(args: argparse.Namespace) -> None:
    from ..config import load_config
    from ..training.run import train
    from ..variants import load_prune_points

    config = with_local_model(load_config(args.config), args.model)
    points = load_prune_points(args.prune_points) if args.prune_points else None
    for name, folder in train(
        config, variant=args.variant, prune_points=points, output_dir=args.output_dir
    ).items():
        print(f"{name}\t{folder}")
