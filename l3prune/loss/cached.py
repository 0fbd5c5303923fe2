"""GradCache (Gao et al. 2021, https://arxiv.org/abs/2101.06983): a contrastive loss over a batch
whose activations do not fit in memory at once, as in sentence-transformers'
CachedMultipleNegativesRankingLoss, with the same gradients as one backward through the batch.

    (1) embed each column in mini-batches without gradients, only one mini-batch's activations
        alive at a time, keeping each mini-batch's RNG state;
    (2) compute the loss over the whole batch from those embeddings (leaves that require grad; a
        loss that gathers across processes gathers them as usual) and backprop it to them;
    (3) re-embed each mini-batch with gradients, replaying its RNG state so that dropout draws the
        masks of (1), and backprop embeddings . cached gradient.

(3) gives d loss / d weights = sum over rows of (d loss / d embedding) . (d embedding / d weights),
exactly the full-batch gradient, for about one extra forward. Nothing here knows what an
embedding is: `embed(column, features)` returns any tensor whose dim 0 is the batch ([B, D], or a
[B, K, D] stack of several depths), and `loss_fn` takes the columns' tensors in column order.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
from torch.utils.checkpoint import get_device_states, set_device_states

Features = Mapping[str, torch.Tensor]
Embed = Callable[[str, Features], torch.Tensor]


class RngState:
    """The CPU and accelerator RNG states at creation, replayed inside `with state:`; the states
    from before the block come back after it (so replaying never shifts later random draws)."""

    def __init__(self, tensors):
        self.cpu = torch.get_rng_state()
        self.devices, self.device_states = get_device_states(*tensors)

    @contextlib.contextmanager
    def replay(self):
        with torch.random.fork_rng(devices=self.devices):
            torch.set_rng_state(self.cpu)
            set_device_states(self.devices, self.device_states)
            yield


def split_rows(features: Features, size: int) -> list[dict[str, torch.Tensor]]:
    """`features` ([B, T] tensors) cut into mini-batches of `size` rows (the last one smaller when
    `size` does not divide B), each narrowed to the token columns that one of its rows attends to.

    Dropping the columns that are padding in every row keeps a mini-batch of short texts as
    cheap as its texts; it leaves each embedding as it was because the encoder's position_ids
    count real tokens only, whichever side the padding is on.
    """
    rows = len(features["attention_mask"])
    batches = []
    for start in range(0, rows, size):
        part = {key: value[start : start + size] for key, value in features.items()}
        attended = part["attention_mask"].bool().any(dim=0).nonzero()
        first, last = int(attended.min()), int(attended.max()) + 1
        batches.append({key: value[:, first:last] for key, value in part.items()})
    return batches


@dataclass
class CachedGradients:
    """Passes (1) and (2) of one batch: its loss, and what pass (3) needs."""

    loss: torch.Tensor  # detached, unscaled
    mini_batches: list[tuple[str, dict[str, torch.Tensor], RngState]]  # in embedding order
    grads: list[torch.Tensor]  # d (loss_scale x loss) / d embeddings, one per mini-batch

    def backward(
        self,
        embed: Embed,
        backward: Callable[[torch.Tensor], None] = torch.Tensor.backward,
        no_sync: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
    ) -> None:
        """Pass (3): accumulate the batch's weight gradients, one mini-batch at a time.

        `no_sync` is entered around the forward and backward of every mini-batch but the last
        (DDP's `no_sync`: gradients then accumulate locally and the last backward reduces them
        all, one synchronisation per step; inside an outer no_sync none synchronises).
        """
        last = len(self.mini_batches) - 1
        for index, ((column, features, rng), grad) in enumerate(
            zip(self.mini_batches, self.grads, strict=True)
        ):
            with contextlib.nullcontext() if index == last else no_sync(), rng.replay():
                embeddings = embed(column, features)
                dtype = torch.promote_types(embeddings.dtype, torch.float32)
                backward((embeddings.to(dtype) * grad.to(dtype)).sum())


def cache_gradients(
    embed: Embed,
    columns: Mapping[str, Features],
    loss_fn: Callable[..., torch.Tensor],
    mini_batch_size: int,
    loss_scale: float = 1.0,
) -> CachedGradients:
    """Passes (1) and (2): embed `columns` ({name: features}, in the order `loss_fn` takes them)
    in mini-batches of `mini_batch_size` rows without gradients, then the loss over the whole
    batch and its gradient, times `loss_scale`, with respect to every mini-batch's embeddings."""
    if mini_batch_size < 1:
        raise ValueError(f"loss_mini_batch_size={mini_batch_size}: must be a whole number of at least 1")
    mini_batches, leaves = [], []
    with torch.no_grad():
        for column, features in columns.items():
            for part in split_rows(features, mini_batch_size):
                rng = RngState(part.values())
                leaves.append(embed(column, part).detach().requires_grad_())
                mini_batches.append((column, part, rng))
    per_column = [
        torch.cat([leaf for leaf, (name, _, _) in zip(leaves, mini_batches, strict=True) if name == column])
        for column in columns
    ]
    loss = loss_fn(*per_column)
    grads = torch.autograd.grad(loss * loss_scale, leaves, allow_unused=True)
    unused = sorted({name for (name, _, _), grad in zip(mini_batches, grads, strict=True) if grad is None})
    if unused:
        raise ValueError(
            f"the loss does not use column(s) {', '.join(unused)}; give it only the columns it reads"
        )
    return CachedGradients(loss.detach(), mini_batches, list(grads))
