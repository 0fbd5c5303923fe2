"""The `l3prune` command line: wiring only. Each area registers its subcommands from a light
module (argparse only), so `l3prune --help` starts fast; the work imports torch when it runs."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

COMMAND_MODULES = [
    "l3prune.commands.layerwise",
    "l3prune.commands.assets",
    "l3prune.commands.evaluation",
    "l3prune.commands.training",
    "l3prune.commands.report",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="l3prune", description="L3Prune: prune LLM-based text encoders by their layerwise loss."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    try:
        args.func(args)
    except (ValueError, OSError, KeyError, RuntimeError) as error:  # OSError: failed downloads, full disks
        if args.verbose:  # the whole traceback, for a bug report
            raise
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        print(f"l3prune: error: {message}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
