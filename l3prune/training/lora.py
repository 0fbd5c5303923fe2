"""LoRA on every linear projection of the decoder layers (peft), named per model family.

Phi-3 fuses q/k/v into `qkv_proj` and gate/up into `gate_up_proj`; a target list written for
Llama misses them without a word, so each family has its own list.
"""

from __future__ import annotations

_LLAMA_STYLE = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")

LORA_TARGET_MODULES: dict[str, tuple[str, ...]] = {
    "llama": _LLAMA_STYLE,
    "mistral": _LLAMA_STYLE,
    "qwen2": _LLAMA_STYLE,
    "qwen3": _LLAMA_STYLE,
    "gemma": _LLAMA_STYLE,
    "gemma2": _LLAMA_STYLE,
    "gemma3_text": _LLAMA_STYLE,
    "phi3": ("qkv_proj", "o_proj", "gate_up_proj", "down_proj"),
}


def add_lora(encoder, r: int, alpha: float, dropout: float) -> int:
    """Wrap `encoder.model` in a fresh peft LoRA adapter (no bias); returns its trainable parameter count."""
    from peft import LoraConfig, get_peft_model

    family = encoder.model.config.model_type
    if family not in LORA_TARGET_MODULES:
        raise ValueError(
            f"no LoRA target modules known for model type {family!r}; supported: {', '.join(LORA_TARGET_MODULES)}"
        )
    config = LoraConfig(
        r=r,
        lora_alpha=alpha,
        lora_dropout=dropout,
        bias="none",
        target_modules=list(LORA_TARGET_MODULES[family]),
    )
    encoder.model = get_peft_model(encoder.model, config)
    return sum(p.numel() for p in encoder.model.parameters() if p.requires_grad)
