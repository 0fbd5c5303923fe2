"""LLMEncoder: pooling, instruction masking, order, prune, save/load, adapters, on tiny random models."""

import json
import math
import shutil

import numpy as np
import pytest
import torch
from safetensors import safe_open
from tiny_models import FAMILIES, build_tokenizer
from transformers import AutoModel

from l3prune import LLMEncoder
from l3prune.encoder import POOLING_MODES, join_instruction
from l3prune.encoder.layers import layers_to_keep
from l3prune.encoder.pooling import pool

TEXTS = [
    "the model retrieve passage",
    "a",
    "protein grams day women average requirement chart marathon guideline",
    "summit mountain",
]


def hidden_states_alone(encoder, instruction, text):
    """Final hidden states of one unpadded input, computed without the encoder's batching."""
    tok = encoder.tokenizer
    # the model reads "instruction: text" tokenised as one string; the tiny byte-level tokenizer
    # ends the instruction's part at ":" (the space goes with the text's first word, "Ġthe")
    joined = tok(join_instruction(instruction, text), add_special_tokens=False)["input_ids"]
    prefix = tok(instruction + ":", add_special_tokens=False)["input_ids"] if instruction else []
    assert joined[: len(prefix)] == prefix
    ids = [tok.bos_token_id, *joined, tok.eos_token_id]  # the tiny tokenizer's template: <s> $A </s>
    with torch.no_grad():
        out = encoder.model(input_ids=torch.tensor([ids])).last_hidden_state[0]
    return out, len(prefix)


@pytest.mark.parametrize("mode", POOLING_MODES)
def test_pooling_modes_match_hand_computation(tiny_llama, mode):
    encoder = LLMEncoder.from_pretrained(tiny_llama, pooling_mode=mode)
    instruction = "Retrieve semantically similar text"
    got = encoder.encode([[instruction, t] for t in TEXTS])
    for row, text in enumerate(TEXTS):
        h, n_prefix = hidden_states_alone(encoder, instruction, text)
        pooled_part = h[1 + n_prefix :]  # text tokens and the closing </s>; not <s>, not the instruction
        n = len(pooled_part)
        if mode == "mean":
            want = sum(pooled_part[i] for i in range(n)) / n
        elif mode == "weighted_mean":
            want = sum((i + 1) * pooled_part[i] for i in range(n)) / (n * (n + 1) / 2)
        elif mode in ("eos_token", "last_token"):
            want = h[-1]
        else:
            want = h[0]
        torch.testing.assert_close(got[row], want, atol=1e-5, rtol=1e-5)


def test_instruction_is_attended_but_not_pooled(tiny_llama):
    encoder = LLMEncoder.from_pretrained(tiny_llama, pooling_mode="mean")
    features = encoder.tokenize([["Given a question retrieve", "the summit"], "the summit"])
    text_len = len(encoder.tokenizer("the summit", add_special_tokens=False)["input_ids"]) + 1  # + </s>
    assert features["pool_mask"].sum(dim=1).tolist() == [text_len, text_len]
    assert features["attention_mask"][0].sum() > features["attention_mask"][1].sum()
    with_instruction, plain = encoder.encode([["Given a question retrieve", "the summit"], "the summit"])
    assert not torch.allclose(with_instruction, plain)  # the text tokens saw the instruction

    pooled_all = LLMEncoder.from_pretrained(tiny_llama, pooling_mode="mean", skip_instruction=False)
    features = pooled_all.tokenize([["Given a question retrieve", "the summit"]])
    assert torch.equal(features["pool_mask"], features["attention_mask"])


def test_the_model_reads_instruction_and_text_tokenised_as_one_string(tiny_llama, monkeypatch):
    encoder = LLMEncoder.from_pretrained(tiny_llama)
    tok = encoder.tokenizer
    joined = tok("Retrieve text: the summit", add_special_tokens=False)["input_ids"]
    features = encoder.tokenize([["Retrieve text", "the summit"]])
    assert features["input_ids"][0].tolist() == [tok.bos_token_id, *joined, tok.eos_token_id]
    text = tok(" the summit", add_special_tokens=False)[
        "input_ids"
    ]  # "Ġthe Ġsummit", as in the joined string
    assert joined[-len(text) :] == text
    assert features["pool_mask"][0].tolist() == [0] * (len(joined) - len(text) + 1) + [1] * (len(text) + 1)

    # a slow tokenizer has no character offsets: the two pieces are tokenised apart
    monkeypatch.setattr(type(tok), "is_fast", property(lambda self: False))
    apart = encoder.tokenize([["Retrieve text", "the summit"]])
    prefix = tok("Retrieve text: ", add_special_tokens=False)["input_ids"]
    alone = tok("the summit", add_special_tokens=False)["input_ids"]
    assert apart["input_ids"][0].tolist() == [tok.bos_token_id, *prefix, *alone, tok.eos_token_id]
    assert apart["pool_mask"][0].tolist() == [0] * (len(prefix) + 1) + [1] * (len(alone) + 1)


def test_join_instruction_rule():
    assert join_instruction("Retrieve similar text", "x") == "Retrieve similar text: x"
    assert (
        join_instruction("  Given a query, retrieve passages:  ", "x")
        == "Given a query, retrieve passages: x"
    )
    assert join_instruction("", "x") == "x"


def test_encode_restores_input_order_and_is_padding_independent(tiny_llama):
    encoder = LLMEncoder.from_pretrained(tiny_llama)
    batch = encoder.encode(TEXTS, batch_size=3)
    alone = torch.stack([encoder.encode([t])[0] for t in TEXTS])
    torch.testing.assert_close(batch, alone, atol=1e-5, rtol=1e-5)
    assert batch.dtype == torch.float32
    assert encoder.encode(TEXTS[0]).shape == (64,)
    as_numpy = encoder.encode(TEXTS, convert_to_numpy=True, normalize_embeddings=True)
    assert isinstance(as_numpy, np.ndarray) and as_numpy.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(as_numpy, axis=1), 1.0, rtol=1e-5)


def test_weighted_mean_of_a_long_bf16_text_is_exact():
    # 300 pooled tokens: bf16 cannot count past 256 (257 rounds to 256), so the weights are float32
    torch.manual_seed(0)
    hidden = torch.randn(1, 300, 8).to(torch.bfloat16)
    mask = torch.ones(1, 300, dtype=torch.long)
    got = pool(hidden, mask, mask, "weighted_mean")
    k = torch.arange(1, 301, dtype=torch.float64)
    want = (hidden[0].double() * (k / k.sum())[:, None]).sum(dim=0)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got[0].double(), want, atol=1e-6, rtol=1e-6)


def test_encoding_nothing_gives_no_rows(tiny_llama):
    encoder = LLMEncoder.from_pretrained(tiny_llama)
    assert encoder.encode([]).shape == (0, encoder.model.config.hidden_size)
    assert encoder.encode([], convert_to_numpy=True).shape == (0, encoder.model.config.hidden_size)


def test_bf16_model_gives_float32(tiny_llama):
    encoder = LLMEncoder.from_pretrained(tiny_llama, dtype=torch.bfloat16)
    assert encoder.model.dtype == torch.bfloat16
    assert encoder.encode(TEXTS).dtype == torch.float32
    legacy = LLMEncoder.from_pretrained(tiny_llama, torch_dtype=torch.bfloat16)  # the seed's keyword
    assert legacy.model.dtype == torch.bfloat16


def test_truncation_to_max_length_and_doc_max_length(tiny_llama):
    long_text = " ".join(["protein"] * 100)
    encoder = LLMEncoder.from_pretrained(tiny_llama, max_length=40, doc_max_length=8)
    features = encoder.tokenize([long_text, ["Given a web search query retrieve passages", long_text]])
    assert features["pool_mask"].sum(dim=1).tolist() == [9, 9]  # 8 text tokens + </s>
    tight = LLMEncoder.from_pretrained(tiny_llama, max_length=12, doc_max_length=400)
    features = tight.tokenize([long_text, ["Given a web search query retrieve passages", long_text]])
    assert features["attention_mask"].sum(dim=1).tolist() == [12, 12]
    # a long instruction never swallows the whole text: of the 10 tokens between <s> and </s>, the
    # instruction keeps 9 and the text its first token
    tok = tight.tokenizer
    joined = tok(
        join_instruction("Given a web search query retrieve passages", long_text), add_special_tokens=False
    )
    instruction = tok("Given a web search query retrieve passages:", add_special_tokens=False)["input_ids"]
    assert len(instruction) > 9 and joined["input_ids"][: len(instruction)] == instruction
    first_text_token = joined["input_ids"][len(instruction)]
    assert features["input_ids"][1].tolist() == [
        tok.bos_token_id, *instruction[:9], first_text_token, tok.eos_token_id
    ]  # fmt: skip
    assert features["pool_mask"][1].tolist() == [0] * 10 + [1, 1]


def test_chat_template_wraps_text_in_the_user_turn_read_as_one_string(tiny_llama):
    tokenizer = build_tokenizer()
    tokenizer.chat_template = "{% for m in messages %}<s>user {{ m['content'] }}</s>\n{% endfor %}"
    model = AutoModel.from_pretrained(tiny_llama)
    chat = LLMEncoder(model, tokenizer, use_chat_template=True)
    features = chat.tokenize(["the summit"])
    # the template's BOS is the tokenizer's own (added once), its closing newline goes
    expected = tokenizer("user the summit</s>")["input_ids"]
    assert features["input_ids"][0].tolist() == expected
    opening = 1 + len(tokenizer("user", add_special_tokens=False)["input_ids"])  # <s> user | the summit ...
    assert features["pool_mask"][0].tolist() == [0] * opening + [1] * (len(expected) - opening)
    with pytest.raises(ValueError, match="no chat template"):
        LLMEncoder(model, build_tokenizer(), use_chat_template=True)


def test_bad_inputs_are_clear_errors(tiny_llama):
    encoder = LLMEncoder.from_pretrained(tiny_llama)
    with pytest.raises(ValueError, match=r"bad encoder input \['a', 'b', 'c'\]"):
        encoder.encode([["a", "b", "c"]])
    with pytest.raises(ValueError, match="unknown pooling_mode 'max'; choose one of: mean, weighted_mean"):
        LLMEncoder.from_pretrained(tiny_llama, pooling_mode="max")


# ---------------------------------------------------------------- prune
@pytest.mark.parametrize(
    ("p", "kept"), [(0.25, 3), (0.5, 2), (0.3, 2), (0.74, 1), (1, 1), (3, 3), (4, 4), (2.0, 2)]
)
def test_prune_semantics(tiny_llama, p, kept):
    encoder = LLMEncoder.from_pretrained(tiny_llama)
    report = encoder.prune(p)
    assert (report.layers_before, report.layers_after) == (4, kept)
    assert encoder.num_layers == kept == encoder.model.config.num_hidden_layers
    # parameter counts from the checkpoint itself: every tensor, and those of the kept layers only
    with safe_open(tiny_llama / "model.safetensors", "pt") as weights:
        sizes = {key: weights.get_slice(key).get_shape() for key in weights.keys()}  # noqa: SIM118
    dropped = [key for key in sizes if key.startswith("layers.") and int(key.split(".")[1]) >= kept]
    assert report.params_before == sum(math.prod(shape) for shape in sizes.values())
    assert report.params_after == report.params_before - sum(math.prod(sizes[key]) for key in dropped)


@pytest.mark.parametrize(
    ("p", "layers", "kept"), [(0.9, 30, 3), (0.9, 40, 4), (0.7, 10, 3), (0.75, 4, 1), (0.26, 50, 37)]
)
def test_a_fraction_keeps_the_exact_count_despite_float_error(p, layers, kept):
    # int(30 * (1 - 0.9)) is 2 in floating point; L * (1 - p) in exact decimals is 3.0
    assert layers_to_keep(p, layers) == kept


@pytest.mark.parametrize("p", [0, -0.5, 5, 2.5, 0.8, True, "0.5", None])
def test_prune_errors_name_the_layer_count(tiny_llama, p):
    encoder = LLMEncoder.from_pretrained(tiny_llama)
    with pytest.raises(ValueError, match=r"4 layers|1\.\.4|at most 0\.75"):
        encoder.prune(p)
    assert encoder.num_layers == 4


def test_load_argument_errors(tiny_llama):
    with pytest.raises(ValueError, match="num_layers=7 is not a layer count from 1 to 4"):
        LLMEncoder.from_pretrained(tiny_llama, num_layers=7)
    with pytest.raises(ValueError, match="give num_layers or prune, not both"):
        LLMEncoder.from_pretrained(tiny_llama, num_layers=2, prune=0.5)


def test_unsupported_architecture_lists_supported(tmp_path):
    from transformers import GPT2Config, GPT2Model

    GPT2Model(GPT2Config(n_layer=2, n_embd=32, n_head=2, vocab_size=512)).save_pretrained(tmp_path)
    build_tokenizer().save_pretrained(tmp_path)
    encoder = LLMEncoder.from_pretrained(tmp_path)
    with pytest.raises(
        ValueError, match="unsupported architecture GPT2Model.*supported families: llama, mistral"
    ):
        encoder.prune(1)


# ---------------------------------------------------------------- every family
@pytest.mark.parametrize("family", FAMILIES)
def test_family_prune_save_reload_and_partial_load(tiny_model_dir, tmp_path, family):
    path = tiny_model_dir(family)
    encoder = LLMEncoder.from_pretrained(path, pooling_mode="mean", max_length=64)
    encoder.prune(2)
    want = encoder.encode(TEXTS)

    encoder.save(tmp_path / "saved")
    reloaded = LLMEncoder.from_pretrained(tmp_path / "saved")
    assert reloaded.num_layers == 2 and reloaded.pooling_mode == "mean" and reloaded.inputs.max_length == 64
    torch.testing.assert_close(reloaded.encode(TEXTS), want, atol=0, rtol=0)

    partial = LLMEncoder.from_pretrained(path, pooling_mode="mean", max_length=64, num_layers=2)
    assert len(partial.model.layers) == 2
    torch.testing.assert_close(partial.encode(TEXTS), want, atol=0, rtol=0)
    assert LLMEncoder.from_pretrained(path, prune=0.5).num_layers == 2


def test_partial_load_reports_nothing_unexpected(tiny_llama, caplog):
    import transformers

    transformers.logging.enable_propagation()
    try:
        with caplog.at_level("WARNING"):
            LLMEncoder.from_pretrained(tiny_llama, num_layers=1)
    finally:
        transformers.logging.disable_propagation()
    assert not [r for r in caplog.records if "UNEXPECTED" in r.getMessage() or "not used" in r.getMessage()]


def test_missing_or_misshapen_weights_are_reported(tiny_llama, tmp_path, caplog):
    from safetensors.torch import load_file, save_file

    broken = tmp_path / "broken"
    shutil.copytree(tiny_llama, broken)
    weights = load_file(broken / "model.safetensors")
    del weights["layers.0.self_attn.q_proj.weight"]
    save_file(weights, broken / "model.safetensors", metadata={"format": "pt"})
    with caplog.at_level("WARNING", logger="l3prune"):
        LLMEncoder.from_pretrained(broken)
    assert (
        f"weights missing from {broken} or of the wrong shape, so randomly initialised: "
        "layers.0.self_attn.q_proj.weight" in caplog.messages
    )


def test_settings_are_saved_and_overridable(tiny_llama, tmp_path):
    LLMEncoder.from_pretrained(tiny_llama, pooling_mode="eos_token", doc_max_length=33).save(tmp_path / "e")
    settings = json.loads((tmp_path / "e" / "l3prune_encoder.json").read_text())
    assert (
        settings["pooling_mode"] == "eos_token"
        and settings["doc_max_length"] == 33
        and settings["num_layers"] == 4
    )
    assert LLMEncoder.from_pretrained(tmp_path / "e", pooling_mode="mean").pooling_mode == "mean"


def test_save_replaces_existing_folder_atomically(tiny_llama, tmp_path):
    target = tmp_path / "enc"
    encoder = LLMEncoder.from_pretrained(tiny_llama)
    encoder.save(target)
    encoder.prune(1)
    encoder.save(target)
    assert LLMEncoder.from_pretrained(target).num_layers == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["enc"]  # no staging leftovers


# ---------------------------------------------------------------- adapters
@pytest.fixture
def lora_adapter(tiny_llama, tmp_path):
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(1)
    model = AutoModel.from_pretrained(tiny_llama, config=None)
    config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    peft_model = get_peft_model(model, config)
    peft_model.save_pretrained(tmp_path / "adapter")
    return tmp_path / "adapter"


def test_adapter_merged_and_unmerged_agree(tiny_llama, lora_adapter):
    base = LLMEncoder.from_pretrained(tiny_llama).encode(TEXTS)
    unmerged = LLMEncoder.from_pretrained(tiny_llama, adapter=lora_adapter)
    merged = LLMEncoder.from_pretrained(tiny_llama, adapter=lora_adapter, merge_adapter=True)
    assert unmerged.has_adapter and not merged.has_adapter
    torch.testing.assert_close(merged.encode(TEXTS), unmerged.encode(TEXTS), atol=1e-5, rtol=1e-5)
    assert not torch.allclose(base, unmerged.encode(TEXTS), atol=1e-3)


def test_adapter_folder_loads_its_base_and_pruned_encoder_roundtrips(tiny_llama, lora_adapter, tmp_path):
    from_folder = LLMEncoder.from_pretrained(lora_adapter)  # base found through adapter_config.json
    assert from_folder.has_adapter
    encoder = LLMEncoder.from_pretrained(tiny_llama, adapter=lora_adapter, num_layers=3, pooling_mode="mean")
    want = encoder.encode(TEXTS)
    encoder.save(tmp_path / "variant")  # adapter only, plus the base model's name and the layer count
    assert (tmp_path / "variant" / "adapter_config.json").is_file()
    assert not (tmp_path / "variant" / "model.safetensors").exists()
    again = LLMEncoder.from_pretrained(tmp_path / "variant")
    assert again.num_layers == 3 and again.has_adapter and again.pooling_mode == "mean"
    torch.testing.assert_close(again.encode(TEXTS), want, atol=0, rtol=0)

    # the base plus the variant as adapter= also takes the variant's layer count and settings
    explicit = LLMEncoder.from_pretrained(tiny_llama, adapter=tmp_path / "variant")
    assert explicit.num_layers == 3 and explicit.pooling_mode == "mean"
    torch.testing.assert_close(explicit.encode(TEXTS), want, atol=0, rtol=0)

    encoder.save(tmp_path / "merged", merge_adapter=True)
    merged = LLMEncoder.from_pretrained(tmp_path / "merged")
    assert not merged.has_adapter and merged.num_layers == 3
    torch.testing.assert_close(merged.encode(TEXTS), want, atol=1e-5, rtol=1e-5)


# ---------------------------------------------------------------- security
def test_only_safetensors_weights_are_loaded(tiny_llama, tmp_path):
    import shutil

    from safetensors.torch import load_file

    for f in tiny_llama.iterdir():
        if f.suffix != ".safetensors":
            shutil.copy(f, tmp_path / f.name)
    torch.save(load_file(tiny_llama / "model.safetensors"), tmp_path / "pytorch_model.bin")
    with pytest.raises(ValueError, match="has no safetensors weights; l3prune loads safetensors only"):
        LLMEncoder.from_pretrained(tmp_path)
    assert LLMEncoder.from_pretrained(tmp_path, use_safetensors=False).num_layers == 4  # an explicit opt-in


def test_remote_code_is_off_unless_asked(tiny_llama, monkeypatch):
    import transformers

    seen = []
    real = transformers.AutoModel.from_pretrained.__func__

    def spy(cls, *args, **kwargs):
        seen.append(kwargs.get("trust_remote_code"))
        return real(cls, *args, **kwargs)

    monkeypatch.setattr(transformers.AutoModel, "from_pretrained", classmethod(spy))
    LLMEncoder.from_pretrained(tiny_llama)
    LLMEncoder.from_pretrained(tiny_llama, trust_remote_code=True)
    assert seen == [False, True]


# ---------------------------------------------------------------- models that are not there
def test_a_missing_model_folder_is_one_line_naming_it(tmp_path):
    missing = tmp_path / "no-such-model"
    with pytest.raises(FileNotFoundError) as error:
        LLMEncoder.from_pretrained(missing)
    assert str(error.value) == (
        f"model '{missing}' not found: no such folder, and not a model hub name ('name' or 'namespace/name')"
    )


def test_a_hub_name_under_hf_hub_offline_is_one_line_naming_it(monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # read once, at import
    with pytest.raises(FileNotFoundError) as error:
        LLMEncoder.from_pretrained("meta-llama/not-a-model")
    assert str(error.value) == (
        "model 'meta-llama/not-a-model' not found locally (no such folder, not in the hub cache) and the hub is "
        "offline (HF_HUB_OFFLINE=1); give a model folder, or download it with the hub online"
    )


def test_a_folder_that_exists_is_never_called_missing(tmp_path):
    with pytest.raises(
        ValueError, match=f"^Unrecognized model in {tmp_path}. Should have a `model_type` key"
    ):
        LLMEncoder.from_pretrained(tmp_path)  # an empty folder: transformers' own one-line reason


def test_eos_token_pooling_appends_the_eos_a_tokenizer_does_not_add(tiny_llama):
    from tokenizers import processors

    tokenizer = build_tokenizer()
    tokenizer._tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A", special_tokens=[("<s>", tokenizer.bos_token_id)]
    )  # BOS only, as Llama and Mistral tokenizers
    model = AutoModel.from_pretrained(tiny_llama).eval()
    eos = LLMEncoder(model, tokenizer, pooling_mode="eos_token")
    last = LLMEncoder(model, tokenizer, pooling_mode="last_token")
    texts = ["the summit", ["Retrieve text", "the mountain leader"]]
    plain = [tokenizer(join_instruction(*t) if isinstance(t, list) else t)["input_ids"] for t in texts]
    assert last.inputs.token_ids(texts)[0] == plain
    assert eos.inputs.token_ids(texts)[0] == [ids + [tokenizer.eos_token_id] for ids in plain]
    with torch.no_grad():  # the pooled vector is the model's state at the appended EOS
        expected = [model(input_ids=torch.tensor([ids + [tokenizer.eos_token_id]])).last_hidden_state[0, -1] for ids in plain]
    torch.testing.assert_close(eos.encode(texts), torch.stack(expected), rtol=1e-5, atol=1e-5)
    assert not torch.allclose(last.encode(texts), eos.encode(texts))
    # a tokenizer that ends every text with EOS already gets no second one
    own = build_tokenizer()
    assert LLMEncoder(model, own, pooling_mode="eos_token").inputs.token_ids(texts)[0] == [
        own(join_instruction(*t) if isinstance(t, list) else t)["input_ids"] for t in texts
    ]
