"""A GGUF checkpoint turned into a normal Hugging Face folder (fp32 safetensors + tokenizer).

transformers reads GGUF natively; the result is saved like any pretrained model, so everything
downstream loads it with plain `from_pretrained(folder)`.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..files import atomic_output, write_json


def gguf_to_hf_folder(
    gguf_path: str | os.PathLike, out_dir: str | os.PathLike, source: dict | None = None
) -> Path:
    """Save the base model (AutoModel, no LM head) and tokenizer of `gguf_path` to `out_dir`, atomically.

    The encoder's own loading dequantizes the weights (l3prune.encoder); saving the base model
    rather than the causal LM keeps the folder free of an lm_head that loading would report as
    unused (the head is tied to the embeddings). `source` (the hub model the GGUF was made from)
    is written as the folder's l3prune_source.json, so titles and model records name that model.
    """
    import torch

    from ..assets.model_names import SOURCE_FILE
    from ..encoder import LLMEncoder

    gguf_path, out_dir = Path(gguf_path), Path(out_dir)
    if not gguf_path.is_file():
        raise FileNotFoundError(f"GGUF file {gguf_path} does not exist")
    encoder = LLMEncoder.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name, dtype=torch.float32)
    # GGUF carries no length limit for the tokenizer; the model's own is the meaningful one
    encoder.tokenizer.model_max_length = encoder.model.config.max_position_embeddings
    with atomic_output(out_dir) as tmp:
        encoder.model.save_pretrained(tmp)
        encoder.tokenizer.save_pretrained(tmp)
        if source is not None:
            write_json(tmp / SOURCE_FILE, source)
    return out_dir
