"""`l3prune export merged|sentence-transformers|hub`. Light to import: the work imports torch."""

from __future__ import annotations

import argparse

FORMATS = {
    "merged": "a model folder that transformers' AutoModel loads (the adapter folded into the weights)",
    "sentence-transformers": "a SentenceTransformer folder whose encode (prompt= the instruction) matches the variant",
    "hub": "a hub folder: the merged model, the sentence-transformers files and a model card (README.md)",
}


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "export",
        help="export a trained variant: merged HF model, sentence-transformers folder, hub folder",
        description="Fold the variant's adapter into its weights and write a folder that loads without l3prune's "
        "training code.",
    )
    formats = p.add_subparsers(dest="format", required=True, metavar="FORMAT")
    for name, what in FORMATS.items():
        q = formats.add_parser(name, help=what, description=f"Write {what}.")
        q.add_argument("variant_dir", help="a trained variant folder (from `l3prune train`)")
        q.add_argument("out", help="output folder (must not exist yet, or be empty)")
        if name == "hub":
            q.add_argument("--repo-id", help="the hub name the card gives the model (default: its mteb name)")
            q.add_argument(
                "--mteb",
                help="the variant's mteb.json (default: <variant>/mteb.json or <variant>/../mteb.json)",
            )
            q.add_argument(
                "--training-config",
                metavar="CONFIG.json",
                help="the training config, for the card's settings",
            )
            q.add_argument(
                "--license", help="the license the card states (e.g. the base model's: llama3, apache-2.0)"
            )
        q.set_defaults(func=run_export)


def run_export(args: argparse.Namespace) -> None:
    if args.format == "hub":
        from ..export.hub import export_hub

        print(export_hub(args.variant_dir, args.out, repo_id=args.repo_id, mteb_json=args.mteb,
                         training_config=args.training_config, license=args.license))  # fmt: skip
        return
    from ..export.merged import export_merged
    from ..export.sentence_transformers import export_sentence_transformers

    export = export_merged if args.format == "merged" else export_sentence_transformers
    print(export(args.variant_dir, args.out))
