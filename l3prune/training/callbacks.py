"""Trainer callbacks: the step limit, a progress bar that knows it, and the CSV training log."""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

from tqdm.auto import tqdm
from transformers import ProgressCallback, TrainerCallback
from transformers.trainer_utils import SaveStrategy

from ..files import atomic_output

LOG_COLUMNS = ("step", "epoch", "loss", "learning_rate", "grad_norm", "samples_per_second")


class StopAfterSteps(TrainerCallback):
    """The seed's `stop_after_n_steps`: end training after n optimizer steps while the learning
    rate schedule keeps the length `num_train_epochs` gives it (warm-up, then a slow linear decay).

    The stop step is checkpointed whatever save_steps is (unless saving is off), so a run killed
    after it, while the final folder is written, finishes from it without training it again.
    """

    def __init__(self, num_steps: int):
        self.num_steps = num_steps

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step >= self.num_steps:
            control.should_training_stop = True
            if args.save_strategy != SaveStrategy.NO:
                control.should_save = True


class StepLimitProgress(ProgressCallback):
    """transformers' progress bar, counting to `stop_after_n_steps` (when it comes before the
    schedule's end) rather than to the step num_train_epochs gives: its total and ETA are those of
    the run, while the learning-rate schedule still spans num_train_epochs (see StopAfterSteps)."""

    def __init__(self, num_steps: int):
        super().__init__()
        self.num_steps = num_steps

    def on_train_begin(self, args, state, control, **kwargs):
        # ProgressCallback's own, with the run's total (set later, the bar would show the schedule's first)
        if state.is_world_process_zero:
            self.training_bar = tqdm(total=min(state.max_steps, self.num_steps), dynamic_ncols=True)
        self.current_step = 0


class TrainingLogCSV(TrainerCallback):
    """One row per logging step (LOG_COLUMNS) in a CSV file, rewritten atomically at each log.

    On resume, rows after the checkpoint's step are dropped: those steps are trained, and
    logged, again.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.rows: list[dict] = []

    def on_train_begin(self, args, state, control, **kwargs):
        if not state.is_world_process_zero:
            return
        self.rows = []
        if self.path.is_file():
            with self.path.open(newline="") as f:
                self.rows = [row for row in csv.DictReader(f) if int(row["step"]) <= state.global_step]
        self._write()

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs or "loss" not in logs:
            return
        self.rows.append({"step": state.global_step, **{k: logs.get(k, "") for k in LOG_COLUMNS[1:]}})
        self._write()

    def _write(self) -> None:
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=LOG_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(self.rows)
        with atomic_output(self.path) as tmp:
            tmp.write_text(text.getvalue())
