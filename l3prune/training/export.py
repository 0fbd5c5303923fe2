"""Exports of a trained variant that load without l3prune: a merged HF model, a sentence-transformers folder."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch

from ..encoder import LLMEncoder
from ..files import atomic_output

# our pooling mode -> sentence-transformers' Pooling mode that computes the same vector
ST_POOLING = {
    "mean": "mean",
    "weighted_mean": "weightedmean",  # ST weighs the k-th real token by k, as we do, with right padding or left
    "eos_token": "lasttoken",
    "last_token": "lasttoken",
    "bos_token": "cls",  # ST's cls takes the first real token
}
_PROBE = "The quick brown fox jumps over the lazy dog."


def _check_new_output(out: Path) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ValueError(f"{out} exists; remove it or choose another output folder")


def export_merged(variant_dir: str | os.PathLike, out: str | os.PathLike) -> Path:
    """The variant with its adapter folded into the weights: a folder `AutoModel.from_pretrained`
    loads as is (and `LLMEncoder.from_pretrained` with the variant's pooling settings)."""
    out = Path(out)
    _check_new_output(out)
    LLMEncoder.from_pretrained(variant_dir, merge_adapter=True).save(out)
    return out


def sentence_transformers_pooling(encoder: LLMEncoder) -> str:
    """The sentence-transformers Pooling mode that reproduces `encoder` on plain texts, or a ValueError
    saying why none does."""
    features = encoder.tokenize([_PROBE])
    plain = encoder.tokenizer([_PROBE], return_tensors="pt")["input_ids"]
    if not torch.equal(features["input_ids"], plain):
        raise ValueError(
            "cannot export to sentence-transformers: this encoder feeds the model other tokens than its tokenizer "
            "alone produces (chat template on?), which sentence-transformers cannot reproduce"
        )
    if encoder.pooling_mode in ("mean", "weighted_mean") and not torch.equal(
        features["pool_mask"], features["attention_mask"]
    ):
        left_out = int((features["attention_mask"] - features["pool_mask"]).sum())
        raise ValueError(
            f"cannot export {encoder.pooling_mode} pooling to sentence-transformers exactly: this encoder leaves the "
            f"{left_out} special token(s) its tokenizer puts before every text out of the pool (skip_instruction), "
            "sentence-transformers' Pooling pools every token; eos_token, last_token and bos_token pooling export exactly"
        )
    return ST_POOLING[encoder.pooling_mode]


def export_sentence_transformers(variant_dir: str | os.PathLike, out: str | os.PathLike) -> Path:
    """A sentence-transformers folder (merged Transformer + Pooling) whose `encode` gives the variant's
    embeddings for plain texts (not [instruction, text] pairs, which need l3prune's pooling mask)."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer

    out = Path(out)
    _check_new_output(out)
    encoder = LLMEncoder.from_pretrained(variant_dir, merge_adapter=True)
    mode = sentence_transformers_pooling(encoder)
    settings = encoder.settings()
    # our tokenize cuts a text to doc_max_length tokens and the whole input to max_length
    max_seq_length = min(
        settings["max_length"], settings["doc_max_length"] + encoder.tokenizer.num_special_tokens_to_add()
    )
    # right padding: positions count real tokens from 0 as in our encoder, and ST's pooling needs no offsets
    encoder.tokenizer.padding_side = "right"
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{out.name}.merged-") as merged:
        encoder.save(merged)
        # text modality only: with a chat template, sentence-transformers 6 would wrap every text in it
        transformer = Transformer(
            merged,
            max_seq_length=max_seq_length,
            modality_config={"text": {"method": "forward", "method_output_name": "last_hidden_state"}},
            module_output_name="token_embeddings",
        )
        pooling = Pooling(transformer.get_embedding_dimension(), pooling_mode=mode)
        with atomic_output(out) as tmp:
            SentenceTransformer(modules=[transformer, pooling]).save(str(tmp))
    return out
