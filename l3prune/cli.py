"""The `l3prune` command line: wiring only. Each area registers its subcommands from a light
module (argparse only), so `l3prune --help` starts fast; the work imports torch when it runs.

Failures: a user's mistake (ValueError, OSError such as FileNotFoundError, ReportedFailure) is one
line, `l3prune: error: ...`, exit status 2. Anything else (out of memory, a failure between
processes, a bug) prints its traceback to stderr, the job log, then one last line naming the
command, what it ran on and what to do; exit status 1.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
import traceback

from .errors import ReportedFailure

COMMAND_MODULES = [
    "l3prune.commands.layerwise",
    "l3prune.commands.assets",
    "l3prune.commands.evaluation",
    "l3prune.commands.training",
    "l3prune.commands.export",
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
    except USER_ERRORS as error:
        if args.verbose:  # the whole traceback, for a bug report
            raise
        print(f"l3prune: error: {error}", file=sys.stderr)
        return 2
    except Exception as error:
        traceback.print_exc()
        print(f"l3prune: error: {failure_line(args, error)}", file=sys.stderr)
        return 1
    return 0


# what the user got wrong and can fix from the message alone (OSError: a missing file, a failed
# download, a full disk); every other exception is unexpected and keeps its traceback
USER_ERRORS = (ValueError, OSError, ReportedFailure)

# what to lower when a command runs out of memory
MEMORY_SETTINGS = {
    "train": "per_device_train_batch_size, set loss_mini_batch_size, turn on gradient_checkpointing or lower "
    "max_seq_length in the training config (l3prune_batch_size, when train runs L3Prune itself)",
    "evaluate": "--batch-size (or the tasks file's batch_size)",
    "layerwise-loss": "--batch-size",
}


def failure_line(args: argparse.Namespace, error: BaseException) -> str:
    """The last line of an unexpected failure: the command, what it ran on, the error, what to do."""
    what = f"l3prune {args.command}"
    on = failure_subject(args)
    message = str(error).strip().splitlines()
    summary = f"{type(error).__name__}: {message[0]}" if message else type(error).__name__
    if is_out_of_memory(error):
        hint = (
            f"out of memory: lower {MEMORY_SETTINGS[args.command]}"
            if args.command in MEMORY_SETTINGS
            else "out of memory"
        )
    elif is_distributed(error):
        hint = (
            "a failure between processes (torch.distributed / NCCL): the earliest traceback in the job log "
            "is the process that failed first; check that every process started and can reach the others"
        )
    else:
        hint = "unexpected, likely a bug in l3prune: please report it with the traceback above"
    return f"{what}{f' on {on}' if on else ''} failed ({summary}); {hint}"


def failure_subject(args: argparse.Namespace) -> str | None:
    if args.command == "train":
        variant = f"variant {args.variant}" if args.variant else "the variants"
        return f"{variant} of {args.config}" + (f" (into {args.output_dir})" if args.output_dir else "")
    if args.command == "evaluate":
        return f"variant {args.variant}"
    return getattr(args, "config", None)


def is_out_of_memory(error: BaseException) -> bool:
    """torch.OutOfMemoryError (CUDA, MPS), a CPU allocation failure or Python's MemoryError."""
    text = str(error).lower()
    return (
        isinstance(error, MemoryError)
        or any(cls.__name__ == "OutOfMemoryError" for cls in type(error).__mro__)
        or "out of memory" in text
        or "can't allocate memory" in text
    )


def is_distributed(error: BaseException) -> bool:
    """torch.distributed's errors (DistError: backend, network, store) or an NCCL failure."""
    return any(cls.__name__ == "DistError" for cls in type(error).__mro__) or "nccl" in str(error).lower()


if __name__ == "__main__":
    sys.exit(main())
