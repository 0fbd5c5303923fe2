"""From a training config to the Trainer's TrainingArguments and the model's dtype, for this machine."""

from __future__ import annotations

import logging
import os

import torch

from ..config import TrainConfig

logger = logging.getLogger(__name__)


def resolve_precision(config: TrainConfig) -> tuple[str | None, bool, bool]:
    """(weights dtype, bf16, fp16) as the config asks, where the device has them: a GPU without
    bfloat16 gets float16 instead, a CPU trains in float32. dtype None: transformers' default."""
    dtype = config.torch_dtype
    bf16 = bool(config.training_args.get("bf16", False))
    fp16 = bool(config.training_args.get("fp16", False))
    if torch.cuda.is_available():
        if not torch.cuda.is_bf16_supported():
            if bf16:
                bf16, fp16 = False, True
            if dtype == "bfloat16":
                dtype = "float16"
        return dtype, bf16, fp16
    if bf16 or fp16 or dtype in ("bfloat16", "float16"):
        logger.warning("%s asks for half precision; no GPU here, so training runs in float32", config.source)
    return ("float32" if dtype in ("bfloat16", "float16") else dtype), False, False


def encoder_kwargs(config: TrainConfig, dtype: str | None) -> dict:
    """The config's encoder keywords with the weights dtype this device has (see resolve_precision)."""
    kwargs = config.encoder_kwargs()
    if dtype is not None:
        kwargs["dtype"] = dtype
    return kwargs


def training_arguments(config: TrainConfig, checkpoint_dir: str | os.PathLike, bf16: bool, fp16: bool):
    """The config's TrainingArguments fields, plus what contrastive training fixes: checkpoints in
    `checkpoint_dir`, data read in order, the precision this machine has."""
    from transformers import TrainingArguments

    kwargs = dict(config.training_args)
    if kwargs.get("train_sampling_strategy", "sequential") != "sequential":
        raise ValueError(
            f"{config.source}: key 'train_sampling_strategy' must be 'sequential' (each global batch is one block "
            f"of one sub-dataset), got {kwargs['train_sampling_strategy']!r}"
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
    # each checkpoint holds the optimizer state too (twice the trainable weights): keep the newest,
    # to resume from, and the one before it, a spare should the newest be damaged after its save
    kwargs.setdefault("save_total_limit", 2)
    kwargs.setdefault("report_to", "none")
    kwargs.setdefault("dataloader_pin_memory", torch.cuda.is_available())
    kwargs.setdefault("ddp_find_unused_parameters", False)  # every adapter weight is used at every step
    try:
        return TrainingArguments(**kwargs)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{config.source}: invalid training arguments: {e}") from None


def launched_processes() -> int:
    """How many processes the launcher (torchrun, accelerate launch) started for this job; 1 when run directly."""
    return int(os.environ.get("WORLD_SIZE", "1"))
