"""L3Prune on a training config's base model, set up once for `l3prune train` (autoprune) and
`l3prune layerwise-loss`, so that both compute the same curve and pick the same points."""

from __future__ import annotations

import gc
import logging
import os
from dataclasses import dataclass
from typing import Any

import torch

from ..config import TrainConfig
from ..dataset.utils import load_dataset
from ..encoder import LLMEncoder
from ..loss.utils import load_loss
from ..precision import encoder_kwargs, resolve_precision
from ..variants import check_prune_points
from .core import layerwise_loss, select_prune_points

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LayerwiseRun:
    """What the layerwise loss of a config is computed on, and with which batches."""

    encoder: LLMEncoder
    dataset: Any
    loss_fn: torch.nn.Module
    batch_size: int
    num_batches: int
    seed: int

    def losses(self, show_progress_bar: bool = False) -> list[float]:
        return layerwise_loss(
            self.encoder, self.dataset, self.loss_fn, self.batch_size, self.num_batches, show_progress_bar
        )


def layerwise_run(
    config: TrainConfig,
    device: str,
    batch_size: int | None = None,
    num_batches: int | None = None,
    seed: int | None = None,
) -> LayerwiseRun:
    """The config's training data (batches of `batch_size` from one sub-dataset each, sampled with
    `seed`), its loss, and its base model on `device` with the weights dtype training uses there.
    None: the config's l3prune_batch_size, l3prune_num_batches, seed."""
    batch_size = config.l3prune_batch_size if batch_size is None else batch_size
    num_batches = config.l3prune_num_batches if num_batches is None else num_batches
    seed = config.seed if seed is None else seed
    dataset = load_dataset(
        config.dataset_name, file_path=config.dataset_file_path, effective_batch_size=batch_size, seed=seed
    )
    loss_fn = load_loss(config.loss_class, scale=config.loss_scale)
    dtype, _, _ = resolve_precision(config)
    encoder = LLMEncoder.from_pretrained(
        config.model_name_or_path, device_map=device, **encoder_kwargs(config, dtype)
    )
    return LayerwiseRun(encoder, dataset, loss_fn, batch_size, num_batches, seed)


def find_prune_points(config: TrainConfig) -> dict:
    """Run L3Prune on the base model: {"small": n, "large": n, "num_layers": N}.

    Under torchrun every process computes it before the process group exists (the loss would
    otherwise gather across processes), then all take process 0's result.
    """
    import torch.distributed as dist
    from accelerate import PartialState
    from accelerate.utils import broadcast_object_list

    if dist.is_available() and dist.is_initialized():
        raise ValueError(
            "cannot run L3Prune inside a started multi-process job; compute the prune points first "
            "(l3prune layerwise-loss, then l3prune prune-points) and pass --prune-points"
        )
    device = f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}" if torch.cuda.is_available() else "cpu"
    run = layerwise_run(config, device)
    losses = run.losses()
    small, large = select_prune_points(losses)
    found = [{"small": small, "large": large, "num_layers": len(losses)}]
    del run
    gc.collect()
    torch.cuda.empty_cache()
    if PartialState().num_processes > 1:
        broadcast_object_list(found, from_process=0)
    logger.info("L3Prune: small = %d, large = %d of %d layers", *found[0].values())
    return dict(check_prune_points(found[0]))
