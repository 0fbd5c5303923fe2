"""Where a decoder keeps its layers and final norm, and how to cut it to its first n layers.

Every supported family (Llama, Mistral, Qwen2/3, Gemma 1/2/3, Phi-3) is a base model with a
`layers` ModuleList and a final `norm`; we only rely on that public structure, never on a
family's private forward internals.
"""

from __future__ import annotations

import numbers

import torch
from transformers import PretrainedConfig

SUPPORTED_FAMILIES = ("llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2", "gemma3_text", "phi3")


def base_model(model: torch.nn.Module) -> torch.nn.Module:
    """The transformer body: unwraps a peft PeftModel and a *ForCausalLM head if present."""
    if hasattr(model, "get_base_model"):
        model = model.get_base_model()
    for attr in ("model", "language_model"):
        inner = getattr(model, attr, None)
        if isinstance(inner, torch.nn.Module) and hasattr(inner, "layers"):
            return inner
    return model


def _body_part(model: torch.nn.Module, name: str, kind: type) -> torch.nn.Module:
    body = base_model(model)
    part = getattr(body, name, None)
    if not isinstance(part, kind):
        raise ValueError(
            f"unsupported architecture {type(body).__name__}: no `{name}` {kind.__name__} found; "
            f"supported families: {', '.join(SUPPORTED_FAMILIES)}"
        )
    return part


def decoder_layers(model: torch.nn.Module) -> torch.nn.ModuleList:
    return _body_part(model, "layers", torch.nn.ModuleList)


def final_norm(model: torch.nn.Module) -> torch.nn.Module:
    return _body_part(model, "norm", torch.nn.Module)


def layers_to_keep(p: float | int, num_layers: int) -> int:
    """The seed's prune semantics: 0 < p < 1 drops that fraction, an integer p >= 1 keeps p layers."""
    if isinstance(p, bool) or not isinstance(p, numbers.Real):
        raise ValueError(
            f"prune value {p!r} is not a number; give a fraction in (0, 1) or a layer count 1..{num_layers}"
        )
    if 0 < p < 1:
        # the seed's int(L * (1 - p)), rounded first so that float error cannot cost a layer
        # (30 * (1 - 0.9) is 2.9999999999999996)
        keep = int(round(num_layers * (1 - p), 9))
        if keep < 1:
            raise ValueError(
                f"pruning a fraction {p} of {num_layers} layers keeps none; use a fraction of at most {1 - 1 / num_layers:.4g}"
            )
        return keep
    if p >= 1 and float(p).is_integer() and p <= num_layers:
        return int(p)
    raise ValueError(
        f"invalid prune value {p!r} for a model with {num_layers} layers: "
        f"give a fraction strictly between 0 and 1, or a whole layer count from 1 to {num_layers}"
    )


def truncate_config(config: PretrainedConfig, n: int) -> None:
    """Make every per-layer field describe the first n layers, so a cut model saves and reloads.

    Besides num_hidden_layers, some configs keep one entry per layer (`layer_types` on Qwen2/3,
    Gemma2/3); any top-level list as long as the layer count is such a field.
    """
    old = config.num_hidden_layers
    for key, value in list(vars(config).items()):
        if isinstance(value, (list, tuple)) and len(value) == old and key != "architectures":
            setattr(config, key, type(value)(value[:n]))
    config.num_hidden_layers = n


def keep_first_layers(model: torch.nn.Module, n: int) -> None:
    """Drop every decoder layer after the first n, in place. Embeddings and the final norm stay."""
    body = base_model(model)
    body.layers = torch.nn.ModuleList(list(decoder_layers(model))[:n])
    truncate_config(body.config, n)
    if body.config is not model.config and hasattr(model, "config"):
        truncate_config(model.config, n)
