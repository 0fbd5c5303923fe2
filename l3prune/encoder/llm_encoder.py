"""LLMEncoder: a decoder LLM used as a text encoder (load, pool, encode, prune, save, adapters)."""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from huggingface_hub import is_offline_mode
from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError
from tqdm.auto import tqdm
from transformers import AutoConfig, AutoModel, AutoTokenizer

from ..files import atomic_output, read_json
from .inputs import Input, InputBuilder
from .layers import decoder_layers, final_norm, keep_first_layers, layers_to_keep, truncate_config
from .pooling import pool
from .settings import DEFAULTS, ELASTIC_DEPTHS, SETTINGS_FILE, check_pooling_mode

logger = logging.getLogger(__name__)

_WARNED_DEPTHS: set[tuple[str, int]] = set()  # (model, layers) already warned about: once each

# from_pretrained keywords that also apply to the config and the tokenizer
_SHARED_HF_KWARGS = (
    "revision",
    "trust_remote_code",
    "gguf_file",
    "token",
    "cache_dir",
    "local_files_only",
    "subfolder",
)


@dataclass(frozen=True)
class PruneReport:
    layers_before: int
    layers_after: int
    params_before: int
    params_after: int

    def __str__(self) -> str:
        removed = 1 - self.params_after / self.params_before
        return (
            f"pruned {self.layers_before} -> {self.layers_after} layers, "
            f"{self.params_before:,} -> {self.params_after:,} parameters ({removed:.1%} removed)"
        )


def load_model_config(name_or_path: str | os.PathLike, **hf_kwargs):
    """transformers' config of a model folder or hub name. A model that is neither is a one-line
    FileNotFoundError naming it (transformers' own message spans lines and leaves the name out)."""
    try:
        return AutoConfig.from_pretrained(name_or_path, **hf_kwargs)
    except OSError as error:
        if Path(name_or_path).is_dir():
            raise  # the folder is there: transformers says what is wrong with it
        raise FileNotFoundError(_model_not_found(str(name_or_path), error)) from None


def _model_not_found(name: str, error: OSError) -> str:
    if isinstance(error.__cause__, HFValidationError):
        return (
            f"model {name!r} not found: no such folder, and not a model hub name ('name' or 'namespace/name')"
        )
    if isinstance(error.__cause__, LocalEntryNotFoundError) and is_offline_mode():
        return (
            f"model {name!r} not found locally (no such folder, not in the hub cache) and the hub is offline "
            "(HF_HUB_OFFLINE=1); give a model folder, or download it with the hub online"
        )
    return f"model {name!r} not found locally (no such folder) nor on the hub: {str(error).splitlines()[0]}"


@contextlib.contextmanager
def _quiet_unexpected_keys_report():
    """Loading n of L layers leaves the dropped layers' weights 'unexpected' by design; that
    report would only alarm users, so it is held back (the caller reports missing, mismatched and
    really unexpected weights itself)."""
    hf_logger = logging.getLogger("transformers.modeling_utils")
    drop_warnings = lambda record: record.levelno > logging.WARNING  # noqa: E731
    hf_logger.addFilter(drop_warnings)
    try:
        yield
    finally:
        hf_logger.removeFilter(drop_warnings)


class LLMEncoder(torch.nn.Module):
    def __init__(
        self,
        model,
        tokenizer,
        pooling_mode: str = DEFAULTS["pooling_mode"],
        max_length: int = DEFAULTS["max_length"],
        doc_max_length: int = DEFAULTS["doc_max_length"],
        skip_instruction: bool = DEFAULTS["skip_instruction"],
        use_chat_template: bool = DEFAULTS["use_chat_template"],
        base_model_name_or_path: str | None = None,
    ):
        super().__init__()
        self.model = model
        self.tokenizer = tokenizer
        if tokenizer.pad_token is None:  # decoder tokenizers often have none; EOS is the usual stand-in
            tokenizer.pad_token = tokenizer.eos_token
        self.pooling_mode = check_pooling_mode(pooling_mode)
        self.skip_instruction = skip_instruction
        self.base_model_name_or_path = base_model_name_or_path or getattr(model.config, "_name_or_path", None)
        # elastic training's depths ({"name", "layers", "weight"} each), saved as elastic_depths
        self.trained_depths: list[dict] | None = None
        self.source = "this encoder"  # the folder or name it was loaded from, for messages
        self.inputs = InputBuilder(
            tokenizer,
            max_length,
            doc_max_length,
            skip_instruction,
            use_chat_template,
            append_eos=self.pooling_mode == "eos_token",
        )

    # ---------------------------------------------------------------- loading
    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | os.PathLike,
        pooling_mode: str | None = None,
        max_length: int | None = None,
        doc_max_length: int | None = None,
        skip_instruction: bool | None = None,
        use_chat_template: bool | None = None,
        num_layers: int | None = None,
        prune: float | None = None,
        adapter: str | os.PathLike | None = None,
        merge_adapter: bool = False,
        **hf_kwargs,
    ) -> LLMEncoder:
        """Load a decoder LLM (hub id or folder), a saved LLMEncoder, or a saved adapter folder.

        Settings saved with an encoder are restored; arguments given here override them.
        `num_layers` (or `prune`, with `prune()`'s semantics) builds only the first layers.
        `adapter` attaches a peft LoRA adapter folder; `merge_adapter` folds it into the weights.
        Every other keyword goes to transformers' from_pretrained (dtype, device_map,
        attn_implementation, revision, gguf_file, trust_remote_code, ...).
        """
        if num_layers is not None and prune is not None:
            raise ValueError("give num_layers or prune, not both")
        hf_kwargs = _safe_loading(hf_kwargs)
        source = _Source.read(name_or_path, adapter)
        explicit = dict(
            pooling_mode=pooling_mode,
            max_length=max_length,
            doc_max_length=doc_max_length,
            skip_instruction=skip_instruction,
            use_chat_template=use_chat_template,
        )
        settings = source.settings(explicit)
        if source.adapter is not None and num_layers is None and prune is None:
            num_layers = source.saved.get("num_layers")  # the adapter was trained on that many layers
        shared = {k: hf_kwargs[k] for k in _SHARED_HF_KWARGS if k in hf_kwargs}
        config = load_model_config(source.base, **shared)
        keep = _layers_kept(config.num_hidden_layers, num_layers, prune, source.base)
        model = _load_model(source.base, config, keep, hf_kwargs)
        tokenizer = source.tokenizer(shared)
        if source.adapter is not None:
            model = cls._attach_adapter(model, source.adapter, merge_adapter)
        encoder = cls(model, tokenizer, base_model_name_or_path=source.base, **settings)
        encoder.trained_depths = source.saved.get(ELASTIC_DEPTHS)
        encoder.source = str(name_or_path)
        encoder._check_trained_depth()
        return encoder

    @staticmethod
    def _attach_adapter(model, adapter, merge: bool):
        from peft import PeftModel  # peft only when adapters are used

        model = PeftModel.from_pretrained(model, str(adapter))
        return model.merge_and_unload() if merge else model

    # ---------------------------------------------------------------- structure
    @property
    def num_layers(self) -> int:
        return len(decoder_layers(self.model))

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    @property
    def has_adapter(self) -> bool:
        return hasattr(self.model, "peft_config")

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def max_length(self) -> int:
        """The most tokens one input is cut to (instruction, text and special tokens together)."""
        return self.inputs.max_length

    @max_length.setter
    def max_length(self, value: int) -> None:
        self.inputs.set_max_length(value)

    def final_norm(self, hidden: torch.Tensor) -> torch.Tensor:
        return final_norm(self.model)(hidden)

    def prune(self, p: float | int) -> PruneReport:
        """Drop the last layers: 0 < p < 1 drops that fraction, an integer p >= 1 keeps p layers."""
        before, params_before = self.num_layers, self.num_parameters()
        keep = layers_to_keep(p, before)
        keep_first_layers(self.model, keep)
        self._check_trained_depth()
        report = PruneReport(before, keep, params_before, self.num_parameters())
        logger.info("%s", report)
        return report

    def _check_trained_depth(self) -> None:
        """An elastic model used at a depth it was not trained for works, but says so, once."""
        if not self.trained_depths:
            return
        trained = sorted({d["layers"] for d in self.trained_depths})
        where = self.source
        key = (where, self.num_layers)
        if self.num_layers not in trained and key not in _WARNED_DEPTHS:
            _WARNED_DEPTHS.add(key)
            logger.warning(
                "%s was trained for %s layers (elastic depths %s), not for %d: its embeddings there were never trained",
                where,
                ", ".join(map(str, trained)),
                ", ".join(d["name"] for d in self.trained_depths),
                self.num_layers,
            )

    # ---------------------------------------------------------------- embedding
    def tokenize(self, inputs: Sequence[Input], max_length: int | None = None) -> dict[str, torch.Tensor]:
        """Padded input_ids, attention_mask, position_ids and pool_mask; inputs cut to `max_length`
        tokens (default: the encoder's)."""
        return self.inputs(inputs, max_length)

    def pool(self, hidden: torch.Tensor, features: dict[str, torch.Tensor]) -> torch.Tensor:
        return pool(hidden, features["attention_mask"], features["pool_mask"], self.pooling_mode)

    def forward(self, features: dict[str, torch.Tensor]) -> torch.Tensor:
        out = self.model(
            input_ids=features["input_ids"],
            attention_mask=features["attention_mask"],
            position_ids=features["position_ids"],
            use_cache=False,  # an encoder never generates: a KV cache would only hold memory
        )
        return self.pool(out.last_hidden_state, features)

    def pooled_at_depths(self, features: dict[str, torch.Tensor], depths: Sequence[int]) -> torch.Tensor:
        """[B, K, D]: column i is the embedding the model cut to depths[i] layers gives each row, from
        one forward pass (hidden state k through the final norm; transformers' last one is normed)."""
        out = self.model(
            input_ids=features["input_ids"],
            attention_mask=features["attention_mask"],
            position_ids=features["position_ids"],
            output_hidden_states=True,
            use_cache=False,
        )
        states = out.hidden_states  # embeddings, layer 1 .. layer L-1 outputs, norm(layer L output)
        deepest = len(states) - 1
        bad = [k for k in depths if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= deepest]
        if bad:
            raise ValueError(f"depth {bad[0]!r} is not a layer count from 1 to {deepest}")
        return torch.stack(
            [self.pool(states[k] if k == deepest else self.final_norm(states[k]), features) for k in depths],
            dim=1,
        )

    def encode(
        self,
        inputs: Sequence[Input] | Input,
        batch_size: int = 32,
        show_progress_bar: bool | None = None,
        convert_to_numpy: bool = False,
        convert_to_tensor: bool = False,
        device: str | torch.device | None = None,
        normalize_embeddings: bool = False,
    ) -> torch.Tensor | np.ndarray:
        """Embed texts or [instruction, text] pairs; float32 rows in input order.

        Inputs are sorted by token count so batches hold similar lengths (little padding),
        then the order is restored. Returns a tensor unless convert_to_numpy is set
        (convert_to_tensor is accepted for sentence-transformers' signature: tensors are the default).
        """
        single = isinstance(inputs, str)
        if single:
            inputs = [inputs]
        if len(inputs) == 0:  # as sentence-transformers: no rows
            empty = torch.empty((0, self.model.config.hidden_size), dtype=torch.float32)
            return empty.numpy() if convert_to_numpy else empty
        if device is not None:
            self.model.to(device)
        ids, pool_starts = self.inputs.token_ids(inputs)
        order = sorted(range(len(ids)), key=lambda i: -len(ids[i]))
        chunks = []
        was_training = self.training
        self.eval()
        with torch.inference_mode():
            for start in tqdm(range(0, len(order), batch_size), desc="encode", disable=not show_progress_bar):
                batch = order[start : start + batch_size]
                features = self.inputs.pad([ids[i] for i in batch], [pool_starts[i] for i in batch])
                features = {k: v.to(self.device) for k, v in features.items()}
                chunks.append(self(features).float().cpu())
        self.train(was_training)
        embeddings = torch.empty((len(ids), chunks[0].shape[1]), dtype=torch.float32)
        embeddings[torch.tensor(order)] = torch.cat(chunks)
        if normalize_embeddings:
            embeddings = torch.nn.functional.normalize(embeddings, p=2, dim=1)
        if single:
            embeddings = embeddings[0]
        return embeddings.numpy() if convert_to_numpy else embeddings

    # ---------------------------------------------------------------- saving
    def settings(self) -> dict:
        return (
            dict(
                pooling_mode=self.pooling_mode,
                max_length=self.inputs.max_length,
                doc_max_length=self.inputs.doc_max_length,
                skip_instruction=self.skip_instruction,
                use_chat_template=self.inputs.use_chat_template,
                num_layers=self.num_layers,
            )
            | self._trained_depths_setting()
        )

    def _trained_depths_setting(self) -> dict:
        """The elastic depths this encoder still has (a pruned copy keeps the shallower ones)."""
        if not self.trained_depths:
            return {}
        kept = [d for d in self.trained_depths if d["layers"] <= self.num_layers]
        return {ELASTIC_DEPTHS: kept} if kept else {}

    def merge_adapter(self) -> None:
        """Fold a LoRA adapter into the weights (in place)."""
        if self.has_adapter:
            self.model = self.model.merge_and_unload()

    def save(self, path: str | os.PathLike, merge_adapter: bool = False) -> None:
        """Write the encoder to `path` atomically: weights (or, with an unmerged adapter, only the
        adapter plus the base model's name), tokenizer and encoder settings.

        `merge_adapter=True` first folds the adapter into this encoder's own weights (in place, as
        `merge_adapter()`), so that the saved folder is a plain model.
        """
        if merge_adapter:
            self.merge_adapter()
        with atomic_output(path) as staging:
            self.model.save_pretrained(staging)
            self.tokenizer.save_pretrained(staging)
            settings = self.settings()
            if self.has_adapter:
                settings["base_model"] = self.base_model_name_or_path
            (staging / SETTINGS_FILE).write_text(json.dumps(settings, indent=2) + "\n")


def _safe_loading(hf_kwargs: dict) -> dict:
    """transformers' loading keywords with the safe defaults: no remote code, safetensors only
    (pickled .bin weights can run code when loaded), and the seed's `torch_dtype` spelling read."""
    hf_kwargs = dict(hf_kwargs)
    if "torch_dtype" in hf_kwargs:  # the seed's (transformers 4) spelling
        hf_kwargs["dtype"] = hf_kwargs.pop("torch_dtype")
    hf_kwargs.setdefault("trust_remote_code", False)
    if "gguf_file" not in hf_kwargs:
        hf_kwargs.setdefault("use_safetensors", True)
    return hf_kwargs


@dataclass(frozen=True)
class _Source:
    """What `from_pretrained` was given: a model (hub name or folder), a saved encoder, or an
    adapter folder, whose weights live in its base model."""

    folder: Path
    adapter: Path | None
    saved: dict  # settings saved with the model, then with the adapter (layer count, pooling, lengths)
    base: str  # the base model's name or folder

    @classmethod
    def read(cls, name_or_path, adapter) -> _Source:
        folder = Path(name_or_path)
        adapter_config = read_json(folder / "adapter_config.json", if_missing={})
        if adapter_config:
            adapter = adapter or folder
        saved = read_json(folder / SETTINGS_FILE, if_missing={})
        if adapter is not None and Path(adapter) != folder:
            saved |= read_json(Path(adapter) / SETTINGS_FILE, if_missing={})
        base = str(name_or_path)
        if adapter_config:
            base = saved.get("base_model") or adapter_config.get("base_model_name_or_path")
            if not base:
                raise ValueError(f"{folder / 'adapter_config.json'} names no base_model_name_or_path")
        return cls(folder, None if adapter is None else Path(adapter), saved, base)

    def settings(self, explicit: dict) -> dict:
        """The encoder settings: the defaults, then the saved ones, then those given explicitly."""
        saved = {k: v for k, v in self.saved.items() if k in DEFAULTS}
        return DEFAULTS | saved | {k: v for k, v in explicit.items() if v is not None}

    def tokenizer(self, shared_kwargs: dict):
        """The folder's own tokenizer when it has one (a saved encoder), else the base model's."""
        if (self.folder / "tokenizer_config.json").is_file():
            return AutoTokenizer.from_pretrained(self.folder)
        return AutoTokenizer.from_pretrained(self.base, **shared_kwargs)


def _layers_kept(total: int, num_layers: int | None, prune: float | None, base: str) -> int | None:
    """How many layers to build: `prune` with prune()'s semantics, or `num_layers`; None: all."""
    if prune is not None:
        return layers_to_keep(prune, total)
    if num_layers is None:
        return None
    if isinstance(num_layers, bool) or not isinstance(num_layers, int) or not 1 <= num_layers <= total:
        raise ValueError(f"num_layers={num_layers!r} is not a layer count from 1 to {total} for {base}")
    return num_layers


def _load_model(base: str, config, keep: int | None, hf_kwargs: dict):
    """The base model with only its first `keep` layers built; missing, misshapen and really
    unexpected weights are reported."""
    total = config.num_hidden_layers
    if keep is not None:
        truncate_config(config, keep)
    try:
        with _quiet_unexpected_keys_report():
            model, info = AutoModel.from_pretrained(
                base, config=config, output_loading_info=True, **hf_kwargs
            )
    except OSError as error:
        if hf_kwargs.get("use_safetensors") and "safetensors" in str(error):
            raise ValueError(
                f"{base} has no safetensors weights; l3prune loads safetensors only, since pickled .bin "
                "weights can run code when loaded (pass use_safetensors=False to accept that risk)"
            ) from None
        raise
    unexpected = [k for k in info.get("unexpected_keys", ()) if not _is_dropped_layer_key(k, keep, total)]
    if unexpected:
        logger.warning("weights in %s not used by the model: %s", base, ", ".join(sorted(unexpected)[:10]))
    missing = sorted(info.get("missing_keys", ())) + sorted(
        str(m[0]) for m in info.get("mismatched_keys", ())
    )
    if missing:
        logger.warning(
            "weights missing from %s or of the wrong shape, so randomly initialised: %s",
            base,
            ", ".join(missing[:10]),
        )
    if "gguf_file" in hf_kwargs:  # weights come out dequantised: a plain model from here on
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
    return model


def _is_dropped_layer_key(key: str, keep: int | None, total: int) -> bool:
    if keep is None:
        return False
    parts = key.split(".")
    for i, part in enumerate(parts[:-1]):
        if part == "layers" and parts[i + 1].isdigit():
            return keep <= int(parts[i + 1]) < total
    return False
