"""The training config: the seed's JSON keys and any TrainingArguments field, checked.

A config holds the seed's own keys (model, encoder settings, data, LoRA, loss, pruning; the
fields of `TrainConfig`) and any `transformers.TrainingArguments` field (learning_rate,
warmup_steps, per_device_train_batch_size, save_steps, output_dir, seed, bf16, ...), which go to
the Trainer. Which variants a config asks for is `l3prune.variants`; which of its keys change
each step's result is `step_settings`.

Light to import (no torch, no transformers): the workflow reads configs while it plans.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib.metadata
import json
import logging
import os
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .dataset.utils import DATASETS
from .elastic import DEPTHS_SCHEMA, parse_depths
from .encoder.settings import DEFAULTS, POOLING_MODES
from .files import read_json, write_json
from .loss.utils import LOSSES
from .schema import schema_violation
from .variants import variant_name

logger = logging.getLogger(__name__)

AUTOPRUNE_MODES = ("small", "large", "small+large", "all")
# seed keys that transformers 5 dropped from TrainingArguments; accepted so old configs run unchanged
IGNORED_SEED_KEYS = {
    "overwrite_output_dir": "a finished variant is skipped and an unfinished one resumes from its last checkpoint",
}


def _key(schema: dict, default=dataclasses.MISSING):
    """A config key: its JSON schema and default live together, so the two cannot drift apart."""
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata={"schema": schema})
    return field(default=default, metadata={"schema": schema})


_POSITIVE_INT = {"type": "integer", "minimum": 1}
_OPTIONAL_STRING = {"type": ["string", "null"]}


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    # model
    model_name_or_path: str = _key({"type": "string", "minLength": 1})
    pooling_mode: str = _key({"enum": list(POOLING_MODES)}, DEFAULTS["pooling_mode"])
    # training and layerwise inputs are cut to max_seq_length tokens; a trained model is saved with
    # the encoder's inference length (max(512, max_seq_length)), which evaluation uses
    max_seq_length: int = _key(_POSITIVE_INT, 512)
    doc_max_length: int = _key(_POSITIVE_INT, DEFAULTS["doc_max_length"])
    skip_instruction: bool = _key({"type": "boolean"}, DEFAULTS["skip_instruction"])
    # wrap every input in the model's user turn, as the original did for its instruct models
    use_chat_template: bool = _key({"type": "boolean"}, DEFAULTS["use_chat_template"])
    torch_dtype: str | None = _key({"enum": ["auto", "bfloat16", "float16", "float32", None]}, None)
    attn_implementation: str | None = _key(_OPTIONAL_STRING, None)
    # a model's own Python code from the hub runs only when a config asks for it
    trust_remote_code: bool = _key({"type": "boolean"}, False)
    # data
    dataset_name: str = _key({"enum": list(DATASETS)}, "E5")
    dataset_file_path: str = _key({"type": "string", "minLength": 1})
    # LoRA and loss
    use_adapter: bool = _key({"type": "boolean"}, True)
    lora_r: int = _key(_POSITIVE_INT, 8)
    lora_alpha: float | None = _key(
        {"type": ["number", "null"], "exclusiveMinimum": 0}, None
    )  # None: 2 x lora_r
    lora_dropout: float = _key({"type": "number", "minimum": 0, "exclusiveMaximum": 1}, 0.05)
    loss_class: str = _key({"enum": list(LOSSES)}, "HardNegativeNLLLoss")
    loss_scale: float = _key({"type": "number", "exclusiveMinimum": 0}, 50.0)
    # GradCache: embed the batch in mini-batches of this many samples, keeping every in-batch and
    # hard negative of the whole (global) batch; null embeds the batch at once
    loss_mini_batch_size: int | None = _key({"type": ["integer", "null"], "minimum": 1}, None)
    stop_after_n_steps: int | None = _key({"type": ["integer", "null"], "minimum": 1}, None)
    # pruning
    percent_prune: list = _key({"type": "array", "items": {"type": "number", "exclusiveMinimum": 0}}, [])
    autoprune: str | None = _key({"enum": [*AUTOPRUNE_MODES, None]}, None)
    # one `elastic` variant trained at all these depths at once (l3prune.elastic); [] trains none.
    # It changes what that variant learns, so it is a training key (not in NOT_TRAINING_KEYS)
    elastic_depths: list = _key(DEPTHS_SCHEMA, [])
    # weight of the elastic loss's distillation term (l3prune.training.elastic); 0 trains without it
    elastic_distillation: float = _key({"type": "number", "minimum": 0}, 0.0)
    l3prune_batch_size: int = _key(_POSITIVE_INT, 64)  # L3Prune's layerwise loss when autoprune runs it
    l3prune_num_batches: int = _key(_POSITIVE_INT, 100)
    # every TrainingArguments field the config gives (output_dir, learning_rate, seed, ...)
    training_args: dict = field(default_factory=dict)
    source: str = "<config>"  # where the config came from, for error messages

    @property
    def lora_scaling_alpha(self) -> float:
        return self.lora_alpha if self.lora_alpha is not None else 2 * self.lora_r

    @property
    def inference_max_length(self) -> int:
        """The max_length a trained model is saved with: the encoder's default, or longer when trained longer."""
        return max(DEFAULTS["max_length"], self.max_seq_length)

    def encoder_kwargs(self) -> dict:
        """LLMEncoder.from_pretrained keywords from the model keys; inputs cut to max_seq_length."""
        kwargs = {
            "pooling_mode": self.pooling_mode,
            "max_length": self.max_seq_length,
            "doc_max_length": self.doc_max_length,
            "skip_instruction": self.skip_instruction,
            "use_chat_template": self.use_chat_template,
        }
        if self.torch_dtype is not None:
            kwargs["dtype"] = self.torch_dtype
        if self.attn_implementation is not None:
            kwargs["attn_implementation"] = self.attn_implementation
        if self.trust_remote_code:
            kwargs["trust_remote_code"] = True
        return kwargs

    @property
    def output_dir(self) -> str | None:
        return self.training_args.get("output_dir")

    @property
    def seed(self) -> int:
        return self.training_args.get("seed", 42)


def seed_keys() -> list[str]:
    return [f.name for f in dataclasses.fields(TrainConfig) if "schema" in f.metadata]


_JSON_TYPES = {bool: "boolean", int: "integer", float: "number", str: "string", type(None): "null"}


def training_argument_schemas() -> dict[str, dict]:
    """TrainingArguments field -> JSON schema of its type. Fields of plain types (bool, int, float, str,
    None) are checked with the seed's keys: TrainingArguments itself takes learning_rate="fast" and
    fails only mid-training; other fields ({}) are left to TrainingArguments.

    transformers.training_args imports torch, accelerate and peft (seconds), so the schemas are kept
    in a file per transformers version (under $XDG_CACHE_HOME/l3prune): the workflow reads configs
    at every planning and in every cluster job, and pays that import only once.
    """
    cache = _training_arguments_cache()
    try:
        return json.loads(cache.read_text())
    except (OSError, ValueError):
        schemas = _schemas_of_training_arguments()
        try:
            write_json(cache, schemas)
        except OSError:  # a read-only home: the schemas are still right, only not kept
            pass
        return schemas


def _training_arguments_cache() -> Path:
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    version = importlib.metadata.version("transformers")
    return root / "l3prune" / f"training-arguments-{version}.json"


def _schemas_of_training_arguments() -> dict[str, dict]:
    from transformers import TrainingArguments

    schemas = {}
    for f in dataclasses.fields(TrainingArguments):
        if f.init:
            types = typing.get_args(f.type) or (f.type,)
            plain = all(isinstance(t, type) and t in _JSON_TYPES for t in types)
            schemas[f.name] = {"type": [_JSON_TYPES[t] for t in types]} if plain else {}
    return schemas


def load_config(path: str | os.PathLike) -> TrainConfig:
    """Read and check a JSON training config; errors name the file, the key and what is accepted."""
    return parse_config(read_json(path, what="training config"), source=str(path))


def parse_config(raw: Mapping, source: str = "<config>") -> TrainConfig:
    """A TrainConfig from a config dict (the parsed JSON)."""
    if not isinstance(raw, Mapping):
        raise ValueError(f"{source}: a training config is a JSON object of keys, not a {type(raw).__name__}")
    own = set(seed_keys())
    trainer_schemas = training_argument_schemas()
    trainer_keys = trainer_schemas.keys()
    for key in raw:
        if key not in own and key not in trainer_keys and key not in IGNORED_SEED_KEYS:
            close = difflib.get_close_matches(key, own, n=1) or difflib.get_close_matches(
                key, trainer_keys, n=1
            )
            hint = f"; did you mean '{close[0]}'?" if close else ""
            raise ValueError(
                f"{source}: unknown key '{key}'{hint} (accepted: the seed's keys {', '.join(sorted(own))} "
                "and any transformers TrainingArguments field)"
            )
    for key in IGNORED_SEED_KEYS.keys() & raw.keys():
        logger.info("%s: '%s' has no effect here: %s", source, key, IGNORED_SEED_KEYS[key])

    values = {k: v for k, v in raw.items() if k in own}
    schema = {
        "type": "object",
        "properties": trainer_schemas
        | {f.name: f.metadata["schema"] for f in dataclasses.fields(TrainConfig) if "schema" in f.metadata},
        "required": [
            f.name
            for f in dataclasses.fields(TrainConfig)
            if "schema" in f.metadata
            and f.default is dataclasses.MISSING
            and f.default_factory is dataclasses.MISSING
        ],
    }
    checked = {k: v for k, v in raw.items() if k in own or k in trainer_keys}
    violation = schema_violation(checked, schema)
    if violation is not None:
        where, message = violation
        if where == "top level":  # the only check of the object itself: a required key
            raise ValueError(
                f"{source}: {message.replace(' is a required property', '')} is missing (a required key)"
            )
        raise ValueError(f"{source}: key '{where}': {message}")
    values["percent_prune"] = [_prune_value(v, source) for v in values.get("percent_prune", [])]
    names = [variant_name(v) for v in values["percent_prune"]]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"{source}: key 'percent_prune' asks for {', '.join(repeated)} more than once")
    values["elastic_depths"] = parse_depths(values.get("elastic_depths", []), source)
    if values.get("elastic_distillation") and len(values["elastic_depths"]) < 2:
        raise ValueError(
            f"{source}: key 'elastic_distillation' needs 'elastic_depths' to list 2 or more depths, "
            f"it lists {len(values['elastic_depths'])}"
        )
    training_args = {k: v for k, v in raw.items() if k in trainer_keys}
    return TrainConfig(**values, training_args=training_args, source=source)


def _prune_value(value: float, source: str) -> float | int:
    """A fraction to drop (0 < p < 1) or a whole number of layers to keep (p >= 1)."""
    if 0 < value < 1:
        return value
    if float(value).is_integer():
        return int(value)
    raise ValueError(
        f"{source}: key 'percent_prune': {value} is neither a fraction in (0, 1) to drop nor a whole layer count to keep"
    )


# Which keys change which step's result, written down once: the workflow reruns a step only when
# one of its keys changed, and a training run resumes only checkpoints made with the same values.
ENCODER_KEYS = (  # what the base model is and how it reads its inputs
    "model_name_or_path",
    "pooling_mode",
    "max_seq_length",
    "doc_max_length",
    "skip_instruction",
    "use_chat_template",
    "torch_dtype",
    "attn_implementation",
)
LAYERWISE_KEYS = (
    *ENCODER_KEYS,
    "dataset_name",
    "dataset_file_path",
    "loss_class",
    "loss_scale",
    "l3prune_batch_size",
    "l3prune_num_batches",
    "seed",
)
# Keys that leave a trained model as it is: which variants to build (each variant is its own run),
# the layerwise loss's sampling (its result, the prune points, reaches training by itself), how
# often a run logs and saves and where, how it shows progress, how it feeds its data loader, and
# how it saves memory (activation checkpointing and the cached loss compute the same gradients).
# Every other key counts.
NOT_TRAINING_KEYS = frozenset(
    {
        "percent_prune",
        "autoprune",
        "l3prune_batch_size",
        "l3prune_num_batches",
        "trust_remote_code",
        "loss_mini_batch_size",
        "gradient_checkpointing",
        "gradient_checkpointing_kwargs",
        "activation_checkpointing",
        "activation_checkpointing_kwargs",
        "output_dir",
        "overwrite_output_dir",
        "logging_dir",
        "logging_steps",
        "logging_strategy",
        "logging_first_step",
        "logging_nan_inf_filter",
        "save_steps",
        "save_strategy",
        "save_total_limit",
        "save_only_model",
        "disable_tqdm",
        "report_to",
        "run_name",
        "remove_unused_columns",
        "do_train",
        "do_eval",
        "do_predict",
        "eval_strategy",
        "eval_steps",
        "per_device_eval_batch_size",
        "dataloader_num_workers",
        "dataloader_pin_memory",
        "dataloader_persistent_workers",
        "dataloader_prefetch_factor",
    }
)
STEPS = ("layerwise", "train", "untrained")


def step_settings(config: TrainConfig, step: str) -> dict:
    """The config's values that change `step`'s result, defaults filled in, as a JSON-able dict with
    sorted keys: equal dicts mean an equal result. Steps: "layerwise" (the loss curve), "train" (a
    trained variant), "untrained" (the evaluation of a variant's cut, untrained base model)."""
    own = {f.name: getattr(config, f.name) for f in dataclasses.fields(TrainConfig) if "schema" in f.metadata}
    if step == "layerwise":
        chosen = {key: own[key] for key in LAYERWISE_KEYS if key != "seed"} | {"seed": config.seed}
    elif step == "untrained":
        chosen = {key: own[key] for key in ENCODER_KEYS}
    elif step == "train":
        chosen = {k: v for k, v in (own | config.training_args).items() if k not in NOT_TRAINING_KEYS}
        chosen["seed"] = config.seed
    else:
        raise ValueError(f"unknown step {step!r}; steps with settings: {', '.join(STEPS)}")
    return dict(sorted(chosen.items()))
