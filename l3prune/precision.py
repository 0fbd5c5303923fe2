"""The precision a training config's model runs in on this machine: the weights dtype it asks for
and bf16/fp16 mixed precision, where the device has them. Training, the layerwise loss and the
untrained baselines all load the base model this way. Light to import: torch loads when asked."""

from __future__ import annotations

import logging

from .config import TrainConfig

logger = logging.getLogger(__name__)


def resolve_precision(config: TrainConfig) -> tuple[str | None, bool, bool]:
    """(weights dtype, bf16, fp16) as the config asks, where the device has them: a GPU without
    bfloat16 gets float16 instead, a CPU trains in float32. dtype None: transformers' default."""
    import torch

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
