"""What a variant's work folder (`<variant>.partial/`) was trained for, so that a rerun resumes
only checkpoints made for the same model and settings.

`run.json` in the work folder records the variant, its prune value and layer count, the number of
processes and the global batch, and `step_settings(config, "train")`: the config's values that change
a trained model. A rerun whose record differs, or a work folder without one (its settings unknown),
moves that folder aside as `<variant>.partial.stale-<time>/` and starts afresh: its
checkpoints are never continued. Keys outside step_settings (logging_steps, save_steps,
gradient_checkpointing, loss_mini_batch_size, ...) leave the record as it is, so a rerun after
changing them resumes.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from pathlib import Path

from ..config import TrainConfig, step_settings
from ..files import read_json, write_json

logger = logging.getLogger(__name__)

RECORD_FILE = "run.json"


def run_record(
    config: TrainConfig,
    variant: str,
    prune,
    layers: int,
    world_size: int,
    global_batch: int,
    depths: list[dict] | None = None,
) -> dict:
    """The record of a run of `variant` (prune value `prune`, `layers` kept; an elastic run's
    `depths` with their layer counts) of `config`, as JSON reads it back."""
    depths_record = {} if depths is None else {"depths": depths}
    record = dict(
        variant=variant,
        prune=prune,
        layers=layers,
        world_size=world_size,
        global_batch=global_batch,
        settings=step_settings(config, "train"),
        **depths_record,
    )
    return json.loads(json.dumps(record))  # tuples as lists, as a record read back has them


def differences(old: dict, new: dict) -> list[str]:
    """'key: old -> new' for each value that differs (settings by their own keys), in key order."""
    changed = []
    old_settings, new_settings = old.get("settings", {}), new.get("settings", {})
    flat_old = {k: v for k, v in old.items() if k != "settings"} | old_settings
    flat_new = {k: v for k, v in new.items() if k != "settings"} | new_settings
    for key in sorted(flat_old.keys() | flat_new.keys()):
        before, after = flat_old.get(key, "unset"), flat_new.get(key, "unset")
        if before != after:
            changed.append(f"{key}: {json.dumps(before)} -> {json.dumps(after)}")
    return changed


def claim_work_folder(work: Path, record: dict) -> None:
    """Make `work` safe to resume for a run of `record`: keep it when its record matches, else move it
    aside (or remove it, when it holds no checkpoint: nothing a run could continue) and log why."""
    if not work.exists():
        return
    recorded = read_json(work / RECORD_FILE, if_missing=None)
    if recorded == record:
        return
    if recorded is None:
        why = f"it has no {RECORD_FILE}, so its settings are unknown"
    else:
        why = "it was trained with other settings (" + ", ".join(differences(recorded, record)) + ")"
    if not any(work.glob("checkpoints/checkpoint-*")):
        shutil.rmtree(work)
        logger.info("variant %s: removed %s, which holds no checkpoint: %s", record["variant"], work, why)
        return
    stale = stale_name(work)
    os.replace(work, stale)
    logger.warning(
        "variant %s: not resuming %s: %s; moved it to %s and training afresh",
        record["variant"],
        work,
        why,
        stale,
    )


def stale_name(work: Path) -> Path:
    """`<work>.stale-<local time>`, numbered when that name is taken."""
    base = work.with_name(f"{work.name}.stale-{time.strftime('%Y%m%d-%H%M%S')}")
    candidate, n = base, 1
    while candidate.exists():
        n += 1
        candidate = base.with_name(f"{base.name}-{n}")
    return candidate


def write_record(work: Path, record: dict) -> None:
    write_json(work / RECORD_FILE, record)
