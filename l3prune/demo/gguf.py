"""A GGUF checkpoint turned into a normal Hugging Face folder (fp32 safetensors + tokenizer).

transformers reads GGUF natively and dequantizes the weights; the result is saved like any
pretrained model, so everything downstream loads it with plain `from_pretrained(folder)`.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..files import atomic_output


def gguf_to_hf_folder(gguf_path: str | os.PathLike, out_dir: str | os.PathLike) -> Path:
    """Save the base model (AutoModel, no LM head) and tokenizer of `gguf_path` to `out_dir`, atomically.

    The base model is what the encoder loads; saving it rather than the causal LM keeps the folder
    free of an lm_head that loading would report as unused (the head is tied to the embeddings).
    """
    import torch
    from transformers import AutoModel, AutoTokenizer

    gguf_path, out_dir = Path(gguf_path), Path(out_dir)
    if not gguf_path.is_file():
        raise FileNotFoundError(f"GGUF file {gguf_path} does not exist")
    tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
    model = AutoModel.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name, dtype=torch.float32)
    # the weights are dequantized already; without these marks save_pretrained refuses a "gguf-quantized" model
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    # GGUF carries no length limit for the tokenizer; the model's own is the meaningful one
    tokenizer.model_max_length = model.config.max_position_embeddings
    with atomic_output(out_dir) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    return out_dir
