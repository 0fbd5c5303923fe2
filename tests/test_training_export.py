"""Exports of a trained variant: a merged model plain AutoModel loads, a sentence-transformers folder."""

import pytest
import torch
from transformers import AutoModel

from l3prune import LLMEncoder
from l3prune.training.export import export_merged, export_sentence_transformers
from l3prune.training.lora import add_lora

CHAT_TEMPLATE = "{% for m in messages %}<s>user: {{ m['content'] }}</s>{% endfor %}"
TEXTS = [
    "summit",
    "how much protein should a female eat per day",
    "the highest point of a mountain is its summit, where leaders meet",
    "a",
    "women training for a marathon need more protein than the average requirement",
]


def make_variant(model_dir, folder, family_seed=0, **settings):
    """A pruned encoder with a LoRA adapter whose weights are far from the identity, saved as `l3prune train` does.

    Its tokenizer has a chat template, as instruct models' have: exports must not apply it to plain texts."""
    encoder = LLMEncoder.from_pretrained(model_dir, num_layers=3, **settings)
    encoder.tokenizer.chat_template = CHAT_TEMPLATE
    add_lora(encoder, r=4, alpha=8, dropout=0.0)
    torch.manual_seed(family_seed)
    with torch.no_grad():
        for name, weight in encoder.model.named_parameters():
            if "lora_" in name:
                weight.normal_(0, 0.3)
    encoder.save(folder)
    return folder


@pytest.mark.parametrize("family", ["llama", "phi3"])
def test_merged_export_loads_with_plain_automodel(tiny_model_dir, tmp_path, family):
    variant = make_variant(tiny_model_dir(family), tmp_path / "variant", pooling_mode="mean")
    out = export_merged(variant, tmp_path / "merged")
    assert not (out / "adapter_config.json").exists()
    trained = LLMEncoder.from_pretrained(variant)
    assert trained.has_adapter
    features = trained.tokenize(TEXTS)
    plain = AutoModel.from_pretrained(out)
    assert plain.config.num_hidden_layers == 3
    with torch.no_grad():
        want = trained.model(**{k: features[k] for k in ("input_ids", "attention_mask", "position_ids")})
        got = plain(**{k: features[k] for k in ("input_ids", "attention_mask", "position_ids")})
    mask = features["attention_mask"].bool()
    torch.testing.assert_close(
        got.last_hidden_state[mask], want.last_hidden_state[mask], atol=1e-4, rtol=1e-4
    )
    merged = LLMEncoder.from_pretrained(out)
    assert merged.pooling_mode == "mean" and not merged.has_adapter
    torch.testing.assert_close(merged.encode(TEXTS), trained.encode(TEXTS), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize(
    "pooling_mode, skip_instruction",
    [
        ("weighted_mean", False),
        ("mean", False),
        ("eos_token", True),
        ("last_token", True),
        ("bos_token", True),
    ],
)
def test_sentence_transformers_export_encodes_as_the_encoder(
    tiny_llama, tmp_path, pooling_mode, skip_instruction
):
    from sentence_transformers import SentenceTransformer

    variant = make_variant(
        tiny_llama, tmp_path / "variant", pooling_mode=pooling_mode, skip_instruction=skip_instruction
    )
    out = export_sentence_transformers(variant, tmp_path / "st")
    st = SentenceTransformer(str(out), device="cpu")
    want = LLMEncoder.from_pretrained(variant).encode(TEXTS)
    got = torch.from_numpy(st.encode(TEXTS, batch_size=8))
    assert got.shape == want.shape
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)


def test_sentence_transformers_export_refuses_what_it_cannot_match(tiny_llama, tmp_path):
    variant = make_variant(tiny_llama, tmp_path / "variant", pooling_mode="weighted_mean")
    with pytest.raises(
        ValueError,
        match="^cannot export weighted_mean pooling to sentence-transformers exactly: this encoder leaves the 1 "
        "special token\\(s\\) its tokenizer puts before every text out of the pool",
    ):
        export_sentence_transformers(variant, tmp_path / "st")
    chat = make_variant(tiny_llama, tmp_path / "chat", pooling_mode="last_token")
    settings = chat / "l3prune_encoder.json"
    settings.write_text(
        settings.read_text().replace('"use_chat_template": false', '"use_chat_template": true')
    )
    with pytest.raises(ValueError, match="feeds the model other tokens than its tokenizer alone produces"):
        export_sentence_transformers(chat, tmp_path / "st")
    assert not (tmp_path / "st").exists()


def test_exports_refuse_an_existing_output(tiny_llama, tmp_path):
    variant = make_variant(tiny_llama, tmp_path / "variant")
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "x").write_text("keep me")
    for export in (export_merged, export_sentence_transformers):
        with pytest.raises(ValueError, match="taken exists; remove it or choose another output folder"):
            export(variant, tmp_path / "taken")
    assert (tmp_path / "taken" / "x").read_text() == "keep me"
