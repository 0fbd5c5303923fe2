"""Options several commands share, checked before any model loads so that a mistake costs no loading
time and reads as one line. Light to import: torch loads only when a device is checked."""

from __future__ import annotations

import argparse


def add_device_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--device", help="torch device: cpu, cuda, cuda:N or mps (default: cuda when available, else cpu)"
    )


def torch_device(value: str | None) -> str:
    """The --device to run on: `value` if this machine has it, else a one-line ValueError naming the
    devices it has; None: cuda when available, else cpu."""
    import torch

    cuda = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if value is None:
        return "cuda" if cuda else "cpu"
    mps = torch.backends.mps.is_available()
    accepted = ", ".join(
        ["cpu"] + (["cuda"] + [f"cuda:{i}" for i in range(cuda)] if cuda else []) + (["mps"] if mps else [])
    )
    try:
        device = torch.device(value)
    except RuntimeError:  # torch's message lists every device type it knows, most of them unusable here
        raise ValueError(f"--device {value}: not a device name (accepted: {accepted})") from None
    if device.type == "cuda" and not cuda:
        problem = "CUDA is not available here"
    elif device.type == "cuda" and device.index is not None and device.index >= cuda:
        problem = f"this machine has {cuda} CUDA device(s)"
    elif device.type == "mps" and not mps:
        problem = "MPS is not available here"
    elif device.type not in ("cpu", "cuda", "mps"):
        problem = "l3prune runs on cpu, cuda or mps"
    else:
        return str(device)
    raise ValueError(f"--device {value}: {problem} (accepted: {accepted})")


def at_least_one(option: str, value: int | None) -> int | None:
    """A count option's value, None when not given; refused below 1 (0 must not mean the default)."""
    if value is not None and value < 1:
        raise ValueError(f"{option} must be at least 1, got {value}")
    return value


def add_model_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model",
        metavar="PATH",
        help="load the base model from this local folder instead of the config's model_name_or_path "
        "(the workflow passes its download of the hub model, so jobs run offline)",
    )


def with_local_model(config, path: str | None):
    """The training config `config` with its base model loaded from the folder `path` (None: as given)."""
    import dataclasses
    from pathlib import Path

    if path is None:
        return config
    if not Path(path).is_dir():
        raise FileNotFoundError(f"--model {path}: no such model folder")
    return dataclasses.replace(config, model_name_or_path=str(path))
