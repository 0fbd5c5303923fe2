"""From a training config to the Trainer's TrainingArguments, for this machine."""

from __future__ import annotations

import logging
import os

import torch

from ..config import TrainConfig

logger = logging.getLogger(__name__)


def check_sequential_sampling(strategy: str, where: str) -> None:
    """Contrastive training reads the data in order: a training config's key and the Trainer's
    arguments are both checked by this."""
    if strategy != "sequential":
        raise ValueError(
            f"{where} must be 'sequential' (each global batch is one block of one sub-dataset), got {strategy!r}"
        )


def training_arguments(config: TrainConfig, checkpoint_dir: str | os.PathLike, bf16: bool, fp16: bool):
    """The config's TrainingArguments fields, plus what contrastive training fixes: checkpoints in
    `checkpoint_dir`, data read in order, the precision this machine has."""
    from transformers import TrainingArguments

    kwargs = dict(config.training_args)
    check_sequential_sampling(
        kwargs.get("train_sampling_strategy", "sequential"), f"{config.source}: key 'train_sampling_strategy'"
    )
    if "resume_from_checkpoint" in kwargs:
        raise ValueError(
            f"{config.source}: remove key 'resume_from_checkpoint': a run resumes by itself from its last checkpoint"
        )
    # the seed's (transformers 4) names for activation checkpointing
    for old, new in (
        ("gradient_checkpointing", "activation_checkpointing"),
        ("gradient_checkpointing_kwargs", "activation_checkpointing_kwargs"),
    ):
        if old in kwargs:
            kwargs.setdefault(new, kwargs.pop(old))
    kwargs.update(
        output_dir=str(checkpoint_dir),
        bf16=bf16,
        fp16=fp16,
        remove_unused_columns=False,
        train_sampling_strategy="sequential",
    )
    if not torch.cuda.is_available() and launched_processes() > 1:
        # without it accelerate finds no device backend and each process trains alone as process 0 of 1,
        # all writing the same checkpoints: gloo on CPUs
        kwargs.setdefault("use_cpu", True)
    # the trainer deletes old checkpoints itself, once a new one is complete (checkpoints_to_keep);
    # the HF Trainer would count a half-written one and could delete the last complete one for it
    kwargs["save_total_limit"] = None
    kwargs.setdefault("report_to", "none")
    kwargs.setdefault("dataloader_pin_memory", torch.cuda.is_available())
    kwargs.setdefault("ddp_find_unused_parameters", False)  # every adapter weight is used at every step
    try:
        return TrainingArguments(**kwargs)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{config.source}: invalid training arguments: {e}") from None


def checkpoints_to_keep(config: TrainConfig) -> int | None:
    """How many complete checkpoints a run keeps (None: all). Each holds the optimizer state too
    (twice the trainable weights): by default the newest, to resume from, and the one before it, a
    spare should the newest be damaged after its save."""
    return config.training_args.get("save_total_limit", 2)


def launched_processes() -> int:
    """How many processes the launcher (torchrun, accelerate launch) started for this job; 1 when run directly."""
    return int(os.environ.get("WORLD_SIZE", "1"))
