"""The encoder's settings: what each one may be, its default, and the file it is saved in.

Light to import (no torch), so that training configs and the workflow can check them.
"""

from __future__ import annotations

SETTINGS_FILE = "l3prune_encoder.json"
ELASTIC_DEPTHS = "elastic_depths"  # the settings file's record of the depths an elastic run trained
POOLING_MODES = ("mean", "weighted_mean", "eos_token", "last_token", "bos_token")
DEFAULTS = dict(
    pooling_mode="weighted_mean",
    max_length=512,
    doc_max_length=400,
    skip_instruction=True,
    use_chat_template=False,
)


def check_pooling_mode(mode: str) -> str:
    if mode not in POOLING_MODES:
        raise ValueError(f"unknown pooling_mode {mode!r}; choose one of: {', '.join(POOLING_MODES)}")
    return mode
