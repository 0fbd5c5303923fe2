"""The training config: the seed's JSON keys, checked, and the variants (pruned models) they ask for.

A config holds the seed's own keys (model, data, LoRA, loss, pruning; the fields of
`TrainConfig`) and any `transformers.TrainingArguments` field (learning_rate, warmup_steps,
per_device_train_batch_size, save_steps, output_dir, seed, bf16, ...), which go to the Trainer.

Each config asks for several variants, trained one model each:
  full     the unpruned model, trained the same way (the baseline every pruned model is compared to)
  pNN      `percent_prune` value 0 < p < 1: drop that fraction of the layers (0.25 -> p25)
  lNN      `percent_prune` value n >= 1: keep n layers (8 -> l8)
  small    L3Prune's small configuration } when `autoprune` asks for them; `small`/`large`/`small+large`
  large    L3Prune's large configuration } replace `percent_prune`, `all` adds them to it
"""

from __future__ import annotations

import dataclasses
import difflib
import logging
import numbers
import os
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .dataset.utils import DATASETS
from .encoder.pooling import POOLING_MODES
from .files import read_json
from .loss.utils import LOSSES
from .schema import schema_violation

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
    pooling_mode: str = _key({"enum": list(POOLING_MODES)}, "weighted_mean")
    max_seq_length: int = _key(_POSITIVE_INT, 512)
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
    stop_after_n_steps: int | None = _key({"type": ["integer", "null"], "minimum": 1}, None)
    # pruning
    percent_prune: list = _key({"type": "array", "items": {"type": "number", "exclusiveMinimum": 0}}, [])
    autoprune: str | None = _key({"enum": [*AUTOPRUNE_MODES, None]}, None)
    l3prune_batch_size: int = _key(_POSITIVE_INT, 64)  # L3Prune's layerwise loss when autoprune runs it
    l3prune_num_batches: int = _key(_POSITIVE_INT, 100)
    # every TrainingArguments field the config gives (output_dir, learning_rate, seed, ...)
    training_args: dict = field(default_factory=dict)
    source: str = "<config>"  # where the config came from, for error messages

    @property
    def lora_scaling_alpha(self) -> float:
        return self.lora_alpha if self.lora_alpha is not None else 2 * self.lora_r

    def encoder_kwargs(self) -> dict:
        """LLMEncoder.from_pretrained keywords from the model keys."""
        kwargs = {"pooling_mode": self.pooling_mode, "max_length": self.max_seq_length}
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
    fails only mid-training; other fields ({}) are left to TrainingArguments."""
    # transformers.training_args imports torch, accelerate and peft: seconds, so only when a config is read
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
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"training config {path} does not exist")
    raw = read_json(path)
    return parse_config(raw, source=str(path))


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


def variant_name(value: float | int) -> str:
    """0.25 -> 'p25' (drop 25% of the layers); 8 -> 'l8' (keep 8 layers)."""
    if isinstance(value, numbers.Integral):
        return f"l{value}"
    return f"p{value * 100:g}"


def variant_names(config: TrainConfig) -> list[str]:
    """The names of the config's variants, known before L3Prune runs (`full` always comes first)."""
    names = ["full"]
    if config.autoprune in (None, "all"):
        names += [variant_name(v) for v in config.percent_prune]
    if config.autoprune in ("small", "small+large", "all"):
        names.append("small")
    if config.autoprune in ("large", "small+large", "all"):
        names.append("large")
    return names


def variants(config: TrainConfig, prune_points: Mapping | None = None) -> dict[str, float | int | None]:
    """Variant name -> what to prune: None (full), a fraction to drop, or a layer count to keep.

    `prune_points` ({"small": n, "large": n, "num_layers": N}, from `l3prune prune-points` or
    `l3prune()`) is needed when `autoprune` is set.
    """
    return {name: variant_value(config, name, prune_points) for name in variant_names(config)}


def variant_value(config: TrainConfig, name: str, prune_points: Mapping | None = None) -> float | int | None:
    """What variant `name` of `config` prunes; prune points are needed only for `small` and `large`."""
    check_variant_name(config, name)
    if name == "full":
        return None
    if name in ("small", "large"):
        if prune_points is None:
            raise ValueError(
                f"{config.source}: variant '{name}' (autoprune '{config.autoprune}') needs L3Prune's prune points: "
                "pass --prune-points points.json or let train run L3Prune"
            )
        return check_prune_points(prune_points)[name]
    return next(v for v in config.percent_prune if variant_name(v) == name)


def check_variant_name(config: TrainConfig, name: str) -> str:
    names = variant_names(config)
    if name not in names:
        raise ValueError(f"{config.source}: no variant {name!r}; this config has: {', '.join(names)}")
    return name


def check_prune_points(points: Mapping, source: str = "prune points") -> Mapping:
    for key in ("num_layers", "small", "large"):
        value = points.get(key) if isinstance(points, Mapping) else None
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{source}: '{key}' must be a positive layer count, got {value!r}")
    if not points["small"] <= points["large"] <= points["num_layers"]:
        raise ValueError(
            f"{source}: need small <= large <= num_layers, got small={points['small']}, "
            f"large={points['large']}, num_layers={points['num_layers']}"
        )
    return points


def load_prune_points(path: str | os.PathLike) -> dict:
    """Read points.json ({"small": n, "large": n, "num_layers": N, ...}) as written by `l3prune prune-points`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"prune points file {path} does not exist")
    points = read_json(path)
    return dict(check_prune_points(points, source=str(path)))
