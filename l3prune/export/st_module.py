"""An LLMEncoder as the one module of a sentence-transformers model, so that
`SentenceTransformer(folder).encode(texts, prompt=instruction)` is `LLMEncoder.encode([[instruction, t] ...])`.

sentence-transformers hands a prompt to its first module's `preprocess` apart from the texts; this
module gives the pair to the encoder's own tokenizer (`LLMEncoder.tokenize`: the joining rule, the
user-turn wrap, an appended EOS, the pooling mask, left padding with positions counting real tokens)
and pools with the encoder's own `pool`, so there is no second copy of those rules. Its built-in
Transformer + Pooling cannot match them: its Pooling has no pooling mask for the text alone on a
tokenizer that adds BOS, and weighs `weightedmean` by absolute position.

The folder is the merged model at its root (config.json, weights, tokenizer, l3prune_encoder.json),
so AutoModel and LLMEncoder.from_pretrained load it as they are.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import torch
from sentence_transformers.base.modules import InputModule

from ..encoder.llm_encoder import LLMEncoder


class LLMEncoderModule(InputModule):
    save_in_root = True

    def __init__(self, encoder: LLMEncoder):
        super().__init__()
        if encoder.has_adapter:
            raise ValueError("a sentence-transformers module needs a plain model: merge the adapter first")
        self.encoder = encoder
        self.tokenizer = encoder.tokenizer

    @property
    def max_seq_length(self) -> int:
        return self.encoder.max_length

    @max_seq_length.setter
    def max_seq_length(self, value: int) -> None:
        self.encoder.max_length = value

    def get_embedding_dimension(self) -> int:
        return self.encoder.model.config.hidden_size

    def preprocess(
        self, inputs: Sequence[str], prompt: str | None = None, **kwargs
    ) -> dict[str, torch.Tensor]:
        """Texts (with `prompt`: the instruction of every one) -> the encoder's padded features."""
        bad = next((item for item in inputs if not isinstance(item, str)), None)
        if bad is not None:
            raise ValueError(f"an l3prune encoder reads texts only, got {type(bad).__name__} {bad!r}")
        return self.encoder.tokenize([[prompt, text] for text in inputs] if prompt else list(inputs))

    def forward(self, features: dict[str, torch.Tensor], **kwargs) -> dict[str, torch.Tensor]:
        out = self.encoder.model(
            input_ids=features["input_ids"],
            attention_mask=features["attention_mask"],
            position_ids=features["position_ids"],
            use_cache=False,
        )
        features["token_embeddings"] = out.last_hidden_state
        features["sentence_embedding"] = self.encoder.pool(out.last_hidden_state, features)
        return features

    def save(self, output_path: str, *args, safe_serialization: bool = True, **kwargs) -> None:
        """The encoder's files into `output_path` (which holds sentence-transformers' own files too)."""
        with tempfile.TemporaryDirectory(dir=output_path, prefix=".encoder-") as staging:
            saved = Path(staging) / "encoder"
            self.encoder.save(saved)
            for file in saved.iterdir():
                os.replace(file, Path(output_path) / file.name)

    @classmethod
    def load(
        cls,
        model_name_or_path: str,
        subfolder: str = "",
        token: bool | str | None = None,
        cache_folder: str | None = None,
        revision: str | None = None,
        local_files_only: bool = False,
        model_kwargs: dict | None = None,
        **kwargs,
    ) -> LLMEncoderModule:
        folder = cls.load_dir_path(
            model_name_or_path,
            subfolder=subfolder,
            token=token,
            cache_folder=cache_folder,
            revision=revision,
            local_files_only=local_files_only,
        )
        return cls(LLMEncoder.from_pretrained(folder, **(model_kwargs or {})))
