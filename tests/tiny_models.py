"""Tiny random decoder LLMs of every supported family, built offline in well under a second.

The tokenizer is a byte-level BPE trained on a small generated corpus, so token counts are real
(multi-token words, special tokens added by a template) without any download.
"""

from __future__ import annotations

from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import AutoConfig, AutoModel, PreTrainedTokenizerFast

FAMILIES = ("llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2", "gemma3_text", "phi3")

_COMMON = dict(
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=4,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=256,
    vocab_size=512,
    pad_token_id=0,
    bos_token_id=1,
    eos_token_id=2,
)
_HEAD_DIM = {"gemma": 16, "gemma2": 16, "gemma3_text": 16, "qwen3": 16}

_WORDS = (
    "the a model layer text query document passage retrieve question answer encoder "
    "prune small large loss train data search web wikipedia protein summit mountain leader "
    "meeting chart marathon guideline requirement average women grams day english language"
).split()


def build_tokenizer() -> PreTrainedTokenizerFast:
    corpus = [" ".join(_WORDS[(i * 7 + j) % len(_WORDS)] for j in range(12)) for i in range(200)]
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=_COMMON["vocab_size"],
        special_tokens=["<pad>", "<s>", "</s>", "<unk>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(corpus, trainer)
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> $B </s>", special_tokens=[("<s>", 1), ("</s>", 2)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>", unk_token="<unk>"
    )


def build_config(family: str, num_layers: int = 4):
    kwargs = dict(_COMMON, num_hidden_layers=num_layers)
    if family in _HEAD_DIM:
        kwargs["head_dim"] = _HEAD_DIM[family]
    return AutoConfig.for_model(family, **kwargs)


def save_tiny_model(family: str, path: Path, num_layers: int = 4, seed: int = 0) -> Path:
    """Write a tiny random `family` model plus tokenizer to `path` (an HF folder) and return it."""
    torch.manual_seed(seed)
    model = AutoModel.from_config(build_config(family, num_layers), dtype=torch.float32)
    model.save_pretrained(path)
    build_tokenizer().save_pretrained(path)
    return Path(path)
