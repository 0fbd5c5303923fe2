"""L3Prune's core: the base model's contrastive loss at every depth, and where to cut.

One forward pass with all hidden states gives, for every k, what a model cut to k layers would
output: hidden state k put through the final norm. (transformers returns the last entry already
normed, so that one is used as is.) Pooling each with the encoder's own pooling and instruction
mask and scoring it with the training loss gives the whole loss-vs-depth curve for the price of
one forward pass per text column.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

import torch
from tqdm.auto import tqdm

from ..dataset import batch_negatives
from ..encoder import LLMEncoder

logger = logging.getLogger(__name__)


def pooled_at_every_depth(encoder: LLMEncoder, texts) -> torch.Tensor:
    """[L, B, D]: row k-1 is the embedding a model cut to k layers gives each text."""
    features = {k: v.to(encoder.device) for k, v in encoder.tokenize(texts).items()}
    depths = range(1, encoder.num_layers + 1)
    return encoder.pooled_at_depths(features, list(depths)).float().transpose(0, 1)


def layerwise_loss(
    encoder: LLMEncoder,
    dataset,
    loss_fn,
    batch_size: int = 64,
    num_batches: int = 100,
    show_progress_bar: bool = False,
) -> list[float]:
    """Mean contrastive loss of the encoder cut to k layers, for k = 1..L (list index k-1).

    Batches are the dataset's first `num_batches` runs of `batch_size` samples. The dataset
    orders its samples in seeded, shuffled blocks from one sub-dataset each, so every batch is
    drawn at random from one sub-dataset, as in training (in-batch negatives of the same kind).
    """
    block = getattr(dataset, "effective_batch_size", batch_size)
    if batch_size < 1 or block % batch_size:
        raise ValueError(
            f"batch_size={batch_size} does not divide the dataset's blocks of {block} samples from one sub-dataset; "
            f"use a divisor of {block} or load the dataset with effective_batch_size={batch_size}"
        )
    available = len(dataset) // batch_size
    if available < num_batches:
        logger.warning(
            "the dataset holds %d batches of %d; using all of them, not %d",
            available,
            batch_size,
            num_batches,
        )
        num_batches = available
    if num_batches < 1:
        raise ValueError(f"the dataset has {len(dataset)} samples, fewer than one batch of {batch_size}")
    totals = None
    was_training = encoder.training
    encoder.eval()
    with torch.inference_mode():
        for b in tqdm(range(num_batches), desc="layerwise loss", disable=not show_progress_bar):
            samples = [dataset[i] for i in range(b * batch_size, (b + 1) * batch_size)]
            queries = pooled_at_every_depth(encoder, [s.query for s in samples])
            positives = pooled_at_every_depth(encoder, [s.positive for s in samples])
            negative_texts = batch_negatives(samples)
            negatives = None if negative_texts is None else pooled_at_every_depth(encoder, negative_texts)
            losses = torch.stack(
                [
                    loss_fn(queries[k], positives[k], None if negatives is None else negatives[k])
                    for k in range(len(queries))
                ]
            )
            totals = losses if totals is None else totals + losses
    encoder.train(was_training)
    curve = (totals / num_batches).tolist()
    for k, value in enumerate(curve, start=1):
        if not math.isfinite(value):
            raise ValueError(
                f"the layerwise loss at {k} layers is {value}: the model or data gives non-finite embeddings"
            )
    return curve


def select_prune_points(losses: list[float]) -> tuple[int, int]:
    """The original rule: with N layers and m = N // 2, `small` is the layer count in 1..m with the
    lowest loss and `large` the one in m+1..N; ties go to the shallower count."""
    n = len(losses)
    if n < 2:
        raise ValueError(
            f"a loss curve over {n} layer(s) has no halves to choose from; it needs at least 2 layers"
        )
    half = n // 2
    small = min(range(1, half + 1), key=lambda k: (losses[k - 1], k))
    large = min(range(half + 1, n + 1), key=lambda k: (losses[k - 1], k))
    return small, large


@dataclass(frozen=True)
class PrunePoints:
    """`small, large = l3prune(...)`; the whole curve stays in `.losses` (index k-1 = k layers)."""

    small: int
    large: int
    losses: list[float] = field(repr=False)

    @property
    def num_layers(self) -> int:
        return len(self.losses)

    def __iter__(self):
        return iter((self.small, self.large))


def l3prune(
    encoder: LLMEncoder,
    dataset,
    loss_fn,
    batch_size: int = 64,
    num_batches: int = 100,
    show_progress_bar: bool = False,
) -> PrunePoints:
    """Apply L3Prune: the layer counts of the `small` and `large` configurations."""
    losses = layerwise_loss(encoder, dataset, loss_fn, batch_size, num_batches, show_progress_bar)
    small, large = select_prune_points(losses)
    points = PrunePoints(small, large, losses)
    logger.info("L3Prune on %d layers: small = %d, large = %d", points.num_layers, small, large)
    return points
