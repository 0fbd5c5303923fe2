"""The HF Trainer taught contrastive training of an LLMEncoder, with checkpoints that count only
when complete.

Each checkpoint is a loadable encoder (`LLMEncoder.from_pretrained(checkpoint)`: the adapter, or
the weights, plus l3prune_encoder.json) next to the Trainer's optimizer, scheduler and RNG
states. Once every process has written its part, the Trainer's public `on_save` event marks it
complete (COMPLETE_MARK); a run killed mid-save leaves a `checkpoint-N` without the mark, which is
never resumed from and is removed before training goes on.

Private Trainer methods overridden, as sentence-transformers' own trainer does: `_save` (a
checkpoint's weights are the encoder's own save) and `_load_from_checkpoint` (they load back the
same way); tests/test_trainer_hooks.py fails on a transformers release that changes them.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from pathlib import Path

import torch
from accelerate import PartialState
from accelerate.utils import send_to_device
from transformers import Trainer, TrainerCallback
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from ..loss.cached import cache_gradients
from .arguments import check_sequential_sampling
from .collator import ContrastiveCollator

COMPLETE_MARK = "l3prune_complete"  # in a checkpoint-N folder: every process finished writing it
_CHECKPOINT = re.compile(rf"{PREFIX_CHECKPOINT_DIR}-(\d+)")


class ContrastiveModel(torch.nn.Module):
    """The encoder applied to each text column of a batch in ONE forward call: DDP allows one
    forward per backward, and the loss needs the query, positive and negative embeddings together."""

    def __init__(self, encoder, depths: list[int] | None = None):
        super().__init__()
        self.encoder = encoder
        self.depths = depths  # elastic training: each column at each of these depths, [B, K, D]

    def forward(self, **columns: dict) -> tuple[torch.Tensor, ...]:
        """The embeddings of each column given (query, positive[, negative]), in the order given:
        [B, D] each, or [B, K, D] with `depths` (one forward pass to the deepest for all K)."""
        if self.depths is not None:
            return tuple(self.encoder.pooled_at_depths(f, self.depths) for f in columns.values())
        return tuple(self.encoder(features) for features in columns.values())

    def activation_checkpointing_enable(
        self, activation_checkpointing_kwargs=None, every_n_layers=1, offload=False
    ):
        # called by the Trainer when TrainingArguments.activation_checkpointing (the seed's gradient_checkpointing) is set
        self.encoder.model.activation_checkpointing_enable(
            activation_checkpointing_kwargs=activation_checkpointing_kwargs,
            every_n_layers=every_n_layers,
            offload=offload,
        )


def checkpoints(checkpoint_dir: str | os.PathLike) -> list[Path]:
    """The checkpoint-N folders in `checkpoint_dir`, complete or not, oldest step first."""
    folder = Path(checkpoint_dir)
    found = (
        [p for p in folder.iterdir() if p.is_dir() and _CHECKPOINT.fullmatch(p.name)]
        if folder.is_dir()
        else []
    )
    return sorted(found, key=lambda p: int(_CHECKPOINT.fullmatch(p.name).group(1)))


def last_checkpoint(checkpoint_dir: str | os.PathLike) -> str | None:
    """The newest complete checkpoint-N in `checkpoint_dir`, or None (also when the folder does not exist)."""
    complete = [p for p in checkpoints(checkpoint_dir) if (p / COMPLETE_MARK).is_file()]
    return str(complete[-1]) if complete else None


def remove_incomplete_checkpoints(checkpoint_dir: str | os.PathLike) -> None:
    """Remove what a killed run left half-written, before a new save of the same step could mix with it."""
    for checkpoint in checkpoints(checkpoint_dir):
        if not (checkpoint / COMPLETE_MARK).is_file():
            shutil.rmtree(checkpoint)


class MarkCompleteCheckpoints(TrainerCallback):
    """Marks each checkpoint complete once every process has written its part (the Trainer calls
    `on_save` on every process after writing a checkpoint), then deletes the oldest complete ones
    beyond `keep` (None: keeps all). Deleting only after marking means a run killed mid-save still
    has its previous checkpoint, whatever `keep` is."""

    def __init__(self, keep: int | None = None):
        self.keep = keep

    def on_save(self, args, state, control, **kwargs):
        PartialState().wait_for_everyone()
        if not state.is_world_process_zero:
            return
        folder = Path(args.output_dir) / f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}"
        (folder / COMPLETE_MARK).write_text("")
        complete = [p for p in checkpoints(args.output_dir) if (p / COMPLETE_MARK).is_file()]
        for old in complete[: -self.keep] if self.keep else []:
            shutil.rmtree(old)


def load_checkpoint_weights(model: torch.nn.Module, checkpoint: str | os.PathLike) -> None:
    """Put a checkpoint's trained weights (a peft adapter, or a whole model's safetensors) into `model`."""
    checkpoint = Path(checkpoint)
    if hasattr(model, "peft_config"):
        from peft import set_peft_model_state_dict
        from peft.utils import load_peft_weights

        result = set_peft_model_state_dict(model, load_peft_weights(str(checkpoint)))
        if result.unexpected_keys:
            raise ValueError(
                f"checkpoint {checkpoint} holds adapter weights this model lacks, e.g. {result.unexpected_keys[0]}"
            )
        return
    from safetensors.torch import load_file

    state = {}
    for part in sorted(checkpoint.glob("*.safetensors")):
        state.update(load_file(part))
    if not state:
        raise FileNotFoundError(f"checkpoint {checkpoint} holds no *.safetensors weights")
    model.load_state_dict(state)


class ContrastiveTrainer(Trainer):
    """Trains `encoder` (LoRA or all weights) with a contrastive `loss_fn` over (query, positive[,
    negative]) batches read in dataset order, so each global batch is one block of one sub-dataset.

    With `loss_mini_batch_size` m, each step is GradCache's (l3prune.loss.cached): the columns are
    embedded m rows at a time, twice, and the gradients are those of the whole batch at once.
    With `depths` (elastic training) each column is embedded at every one of those layer counts and
    `loss_fn` (an ElasticLoss) takes the [B, K, D] stacks.
    """

    loss_is_scaled_for_ga = False  # a per-batch mean: the Trainer divides it by the accumulation steps

    def __init__(
        self,
        encoder,
        loss_fn,
        args,
        train_dataset,
        callbacks=None,
        loss_mini_batch_size=None,
        depths=None,
        keep_checkpoints: int | None = 2,
    ):
        check_sequential_sampling(args.train_sampling_strategy, "TrainingArguments' train_sampling_strategy")
        if loss_mini_batch_size is not None and loss_mini_batch_size < 1:
            raise ValueError(
                f"loss_mini_batch_size={loss_mini_batch_size}: must be a whole number of at least 1, or null"
            )
        if loss_mini_batch_size is not None and args.ddp_static_graph:
            # a static-graph reducer must synchronise its first backward, which no_sync would skip
            raise ValueError(
                "loss_mini_batch_size does not work with ddp_static_graph=true; leave ddp_static_graph unset"
            )
        super().__init__(
            model=ContrastiveModel(encoder, depths),
            args=args,
            train_dataset=train_dataset,
            data_collator=ContrastiveCollator(encoder.tokenize),
            callbacks=[*(callbacks or []), MarkCompleteCheckpoints(keep_checkpoints)],
        )
        self.encoder = encoder
        self.loss_fn = loss_fn
        self.loss_mini_batch_size = loss_mini_batch_size
        self._last_log: tuple[float, int] | None = None

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        embeddings = model(**inputs)
        loss = self.loss_fn(*embeddings)
        self._check_finite(loss)
        return (loss, embeddings) if return_outputs else loss

    def training_step(self, model, inputs, num_items_in_batch=None):
        """The Trainer's step (train mode, device, autocast, loss / accumulation steps, accelerator
        backward); with loss_mini_batch_size, GradCache's three passes in place of one forward and backward."""
        if self.loss_mini_batch_size is None:
            return super().training_step(model, inputs, num_items_in_batch)
        model.train()
        if callable(getattr(self.optimizer, "train", None)):  # schedule-free optimizers
            self.optimizer.train()
        inputs = send_to_device(inputs, self.args.device)

        def embed(column, features):
            # through the wrapped model: DDP's reducer and accelerate's autocast see every forward
            with self.compute_loss_context_manager():
                return model(**{column: features})[0]

        cache = cache_gradients(
            embed,
            inputs,
            self.loss_fn,
            self.loss_mini_batch_size,
            1 / self.current_gradient_accumulation_steps,
        )
        self._check_finite(cache.loss)  # before pass (3): the failing step leaves no gradient behind
        cache.backward(embed, self.accelerator.backward, lambda: self.accelerator.no_sync(model))
        return cache.loss / self.current_gradient_accumulation_steps

    def _check_finite(self, loss: torch.Tensor) -> None:
        if not torch.isfinite(loss):
            last = last_checkpoint(self.args.output_dir)
            raise ValueError(
                f"training loss is {loss.item()} at step {self.state.global_step + 1}; stopped before applying it. "
                f"Last good checkpoint: {last or 'none yet'}. Lower learning_rate, or train in bfloat16/float32 rather than float16"
            )

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if "loss" in logs:  # a training step's log (not the end-of-training summary): add step and throughput
            now = time.time()
            since, since_step = self._last_log or (start_time or now, self._initial_global_step)
            global_batch = (
                self.args.train_batch_size * self.args.gradient_accumulation_steps * self.args.world_size
            )
            samples = (self.state.global_step - since_step) * global_batch
            logs["samples_per_second"] = round(samples / max(now - since, 1e-9), 3)
            logs["step"] = self.state.global_step
            self._last_log = (now, self.state.global_step)
        super().log(logs, start_time)

    # ------------------------------------------------------------------ checkpoints
    def _save(self, output_dir: str | None = None, state_dict=None) -> None:
        if self.args.should_save:
            self.encoder.save(output_dir or self.args.output_dir)
        # the other processes write their RNG states into this folder next: not before it exists in full
        self.accelerator.wait_for_everyone()

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model=None) -> None:
        load_checkpoint_weights(self.encoder.model, resume_from_checkpoint)
