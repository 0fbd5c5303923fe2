"""Exports of a trained variant: a merged model plain AutoModel loads, a sentence-transformers folder
that encodes exactly as the encoder (instructions included), a hub folder with a model card."""

import json
import re
import shutil

import pytest
import torch
import yaml
from tokenizers import processors
from transformers import AutoModel, AutoTokenizer

from l3prune import LLMEncoder
from l3prune.cli import main
from l3prune.export.hub import export_hub
from l3prune.export.merged import export_merged
from l3prune.export.sentence_transformers import export_sentence_transformers
from l3prune.training.lora import add_lora

CHAT_TEMPLATE = "{% for m in messages %}<s>user {{ m['content'] }}</s>\n{% endfor %}"
INSTRUCTION = "Given a web search query, retrieve relevant passages that answer the query"
TEXTS = [
    "summit",
    "how much protein should a female eat per day",
    "the highest point of a mountain is its summit, where leaders meet",
    "a",
    "women training for a marathon need more protein than the average requirement " * 3,
]
# what the tokenizer adds around a text: tiny_models' own (BOS and EOS), BOS only (Llama,
# Mistral), nothing (Qwen)
SPECIALS = {"bos_eos": None, "bos": "<s> $A", "none": "$A"}
POOLING_MODES = ("mean", "weighted_mean", "eos_token", "last_token", "bos_token")


@pytest.fixture(scope="session")
def model_variant_dir(tiny_model_dir, tmp_path_factory):
    """(family, specials) -> a tiny model folder whose tokenizer adds `specials` and has a chat template."""
    made = {}

    def get(family="llama", specials="bos_eos"):
        if (family, specials) not in made:
            folder = tmp_path_factory.mktemp(f"{family}-{specials}")
            shutil.copytree(tiny_model_dir(family), folder, dirs_exist_ok=True)
            tokenizer = AutoTokenizer.from_pretrained(folder)
            if SPECIALS[specials] is not None:
                tokenizer._tokenizer.post_processor = processors.TemplateProcessing(
                    single=SPECIALS[specials], special_tokens=[("<s>", tokenizer.bos_token_id)]
                )
            tokenizer.chat_template = CHAT_TEMPLATE
            tokenizer.save_pretrained(folder)
            made[family, specials] = folder
        return made[family, specials]

    return get


def make_variant(model_dir, folder, seed=0, **settings):
    """A pruned encoder with a LoRA adapter whose weights are far from the identity, saved as `l3prune train` does."""
    encoder = LLMEncoder.from_pretrained(model_dir, num_layers=3, **settings)
    add_lora(encoder, r=4, alpha=8, dropout=0.0)
    torch.manual_seed(seed)
    with torch.no_grad():
        for name, weight in encoder.model.named_parameters():
            if "lora_" in name:
                weight.normal_(0, 0.3)
    encoder.save(folder)
    return folder


def assert_st_matches(folder, want_encoder, prompt_name=None, instruction=INSTRUCTION):
    from sentence_transformers import SentenceTransformer

    st = SentenceTransformer(str(folder), device="cpu", trust_remote_code=True)
    plain = torch.from_numpy(st.encode(TEXTS, batch_size=2))
    torch.testing.assert_close(plain, want_encoder.encode(TEXTS), atol=1e-4, rtol=1e-4)
    prompted = st.encode(TEXTS, batch_size=3, prompt=instruction)
    want = want_encoder.encode([[instruction, text] for text in TEXTS])
    torch.testing.assert_close(torch.from_numpy(prompted), want, atol=1e-4, rtol=1e-4)
    if want_encoder.pooling_mode != "bos_token":  # the first token sees nothing after it
        assert not torch.allclose(torch.from_numpy(prompted), plain, atol=1e-3)  # the instruction counts
    return st


@pytest.mark.parametrize("specials", list(SPECIALS))
@pytest.mark.parametrize("use_chat_template", [False, True])
@pytest.mark.parametrize("pooling_mode", POOLING_MODES)
def test_sentence_transformers_encodes_as_the_encoder_with_and_without_instructions(
    model_variant_dir, tmp_path, pooling_mode, use_chat_template, specials
):
    variant = make_variant(
        model_variant_dir("llama", specials),
        tmp_path / "variant",
        pooling_mode=pooling_mode,
        use_chat_template=use_chat_template,
        doc_max_length=24,  # the long text is cut, the same way in both
    )
    out = export_sentence_transformers(variant, tmp_path / "st")
    assert_st_matches(out, LLMEncoder.from_pretrained(variant))


@pytest.mark.parametrize("family", ["mistral", "qwen2", "gemma", "phi3"])
def test_sentence_transformers_export_is_exact_for_every_family(model_variant_dir, tmp_path, family):
    specials = "none" if family == "qwen2" else "bos"
    variant = make_variant(
        model_variant_dir(family, specials),
        tmp_path / "variant",
        pooling_mode="weighted_mean",
        use_chat_template=True,
    )
    assert_st_matches(
        export_sentence_transformers(variant, tmp_path / "st"), LLMEncoder.from_pretrained(variant)
    )


def test_instructions_pooled_when_skip_instruction_is_off(model_variant_dir, tmp_path):
    variant = make_variant(
        model_variant_dir("llama", "bos"), tmp_path / "v", pooling_mode="mean", skip_instruction=False
    )
    assert_st_matches(
        export_sentence_transformers(variant, tmp_path / "st"), LLMEncoder.from_pretrained(variant)
    )


def test_saved_task_prompts_by_name_and_documents_get_none(model_variant_dir, tmp_path):
    from mteb import get_task
    from mteb.models.abs_encoder import get_prompt_name
    from mteb.types import PromptType

    from l3prune.evaluation.instructions import load_instruction_table

    variant = make_variant(model_variant_dir("llama", "bos"), tmp_path / "variant")
    out = export_sentence_transformers(variant, tmp_path / "st")
    saved = json.loads((out / "config_sentence_transformers.json").read_text())
    table = load_instruction_table()
    assert saved["default_prompt_name"] is None and saved["similarity_fn_name"] == "cosine"
    assert saved["prompts"]["STSBenchmark"] == table.tasks["STSBenchmark"]
    assert saved["prompts"]["Retrieval"] == table.task_types["Retrieval"]
    st = assert_st_matches(
        out, encoder := LLMEncoder.from_pretrained(variant), instruction=table.tasks["STSBenchmark"]
    )
    by_name = st.encode(TEXTS, prompt_name="STSBenchmark")
    want = encoder.encode([[table.tasks["STSBenchmark"], text] for text in TEXTS])
    torch.testing.assert_close(torch.from_numpy(by_name), want, atol=1e-4, rtol=1e-4)
    # mteb's own prompt lookup: queries get the task's instruction, documents none
    metadata = get_task("ArguAna").metadata
    assert (
        saved["prompts"][get_prompt_name(saved["prompts"], metadata, PromptType.query)]
        == table.tasks["ArguAna"]
    )
    assert saved["prompts"][get_prompt_name(saved["prompts"], metadata, PromptType.document)] == ""
    # the folder is left padded and keeps its lengths and pad token
    tokenizer = json.loads((out / "tokenizer_config.json").read_text())
    settings = json.loads((out / "l3prune_encoder.json").read_text())
    assert st.max_seq_length == settings["max_length"] == encoder.max_length
    assert tokenizer["pad_token"] == "<pad>" and settings["doc_max_length"] == encoder.inputs.doc_max_length
    assert st.tokenize(["a", "the summit"])["attention_mask"][0].tolist()[0] == 0  # left padding


@pytest.mark.parametrize("family", ["llama", "phi3"])
def test_merged_export_loads_with_plain_automodel(tiny_model_dir, tmp_path, family):
    variant = make_variant(tiny_model_dir(family), tmp_path / "variant", pooling_mode="mean")
    out = export_merged(variant, tmp_path / "merged")
    assert not (out / "adapter_config.json").exists()
    trained = LLMEncoder.from_pretrained(variant)
    assert trained.has_adapter
    features = trained.tokenize(TEXTS[:4])  # token states: merging rounds differently over long inputs
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


def fixture_mteb_summary(path, name="l3prune/tiny-l3"):
    summary = {
        "model": name,
        "average": 0.6,
        "mteb_version": "2.26.24",
        "tasks": {
            "STSBenchmark": {"type": "STS", "main_metric": "cosine_spearman", "main_score": 0.7,
                             "scores": {"test": [{"hf_subset": "default", "main_score": 0.7, "languages": ["eng-Latn"]}]}},
            "Banking77Classification": {"type": "Classification", "main_metric": "accuracy", "main_score": 0.5,
                                        "scores": {"test": [{"hf_subset": "default", "main_score": 0.5}]}},
        },
    }  # fmt: skip
    path.write_text(json.dumps(summary))
    return summary


def front_matter(readme: str) -> dict:
    match = re.match(r"---\n(.*?)\n---\n", readme, re.S)
    assert match, "the card starts with YAML front matter"
    return yaml.safe_load(match.group(1))


def test_hub_card_yaml_parses_with_the_mteb_scores(model_variant_dir, tmp_path):
    from huggingface_hub import ModelCard

    root = tmp_path / "results" / "tiny" / "l3"
    variant = make_variant(model_variant_dir("llama", "bos"), root / "model")
    summary = fixture_mteb_summary(
        root / "mteb.json"
    )  # found beside the variant, as the workflow lays it out
    (root / "model" / "model_info.json").write_text(
        json.dumps({"variant": "l3", "layers_before": 4, "layers_after": 3})
    )
    out = export_hub(variant, tmp_path / "hub", license="apache-2.0")
    readme = (out / "README.md").read_text()
    meta = front_matter(readme)
    assert (meta["library_name"], meta["pipeline_tag"], meta["license"]) == (
        "sentence-transformers",
        "sentence-similarity",
        "apache-2.0",
    )
    assert (
        meta["base_model"] == str(model_variant_dir("llama", "bos"))
        and "sentence-transformers" in meta["tags"]
    )
    [index] = meta["model-index"]
    assert index["name"] == summary["model"]
    scores = {
        r["dataset"]["name"]: (r["task"]["type"], r["metrics"][0]["type"], r["metrics"][0]["value"])
        for r in index["results"]
    }
    assert scores == {
        "MTEB STSBenchmark (default)": ("STS", "cosine_spearman", 0.7),
        "MTEB Banking77Classification (default)": ("Classification", "accuracy", 0.5),
    }
    assert len(ModelCard(readme).data.eval_results) == 2  # huggingface_hub reads it back too
    assert (
        "pruned from 4 to 3 layers" in readme
        and "| STSBenchmark | STS | cosine_spearman | 0.7000 |" in readme
    )
    assert 'SentenceTransformer("l3prune/tiny-l3", trust_remote_code=True)' in readme
    assert_st_matches(
        out, LLMEncoder.from_pretrained(variant)
    )  # the hub folder is the sentence-transformers one


@pytest.mark.parametrize(
    "specials, pooling_mode, use_chat_template",
    [("bos", "weighted_mean", True), ("none", "mean", True), ("bos", "eos_token", False),
     ("bos_eos", "bos_token", False), ("none", "last_token", False)],
)  # fmt: skip
def test_the_cards_plain_transformers_recipe_gives_the_same_embedding(
    model_variant_dir, tmp_path, specials, pooling_mode, use_chat_template
):
    variant = make_variant(model_variant_dir("llama", specials), tmp_path / "v",
                           pooling_mode=pooling_mode, use_chat_template=use_chat_template)  # fmt: skip
    out = export_hub(variant, tmp_path / "hub", repo_id="someone/tiny")
    readme = (out / "README.md").read_text()
    recipe = re.search(r"## Plain transformers.*?```python\n(.*?)```", readme, re.S).group(1)
    namespace = {}
    exec(recipe.replace('model_id = "someone/tiny"', f"model_id = {str(out)!r}"), namespace)  # noqa: S102
    encoder = LLMEncoder.from_pretrained(variant)
    for text in TEXTS[:4]:
        torch.testing.assert_close(namespace["embed"](text), encoder.encode(text), atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(namespace["embed"](text, INSTRUCTION), encoder.encode([[INSTRUCTION, text]])[0],
                                   atol=1e-4, rtol=1e-4)  # fmt: skip


def test_hub_card_lists_the_training_settings(model_variant_dir, tmp_path):
    variant = make_variant(model_variant_dir("llama", "bos"), tmp_path / "v")
    config = tmp_path / "train.json"
    config.write_text(json.dumps({"model_name_or_path": "x", "dataset_name": "E5", "dataset_file_path": "d",
                                  "output_dir": "o", "learning_rate": 3e-5}))  # fmt: skip
    assert main(["export", "hub", str(variant), str(tmp_path / "hub"), "--training-config", str(config)]) == 0
    readme = (tmp_path / "hub" / "README.md").read_text()
    assert '"learning_rate": 3e-05' in readme and '"dataset_name": "E5"' in readme
    assert "model-index" not in front_matter(readme)  # no mteb.json: no scores


def test_a_module_over_an_unmerged_adapter_is_refused(tiny_llama, tmp_path):
    from l3prune.export.st_module import LLMEncoderModule

    trained = LLMEncoder.from_pretrained(make_variant(tiny_llama, tmp_path / "v"))
    with pytest.raises(
        ValueError, match="^a sentence-transformers module needs a plain model: merge the adapter first$"
    ):
        LLMEncoderModule(trained)


def test_exports_refuse_an_existing_output_and_a_missing_variant(tiny_llama, tmp_path, capsys):
    variant = make_variant(tiny_llama, tmp_path / "variant")
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "x").write_text("keep me")
    for export in (export_merged, export_sentence_transformers, export_hub):
        with pytest.raises(ValueError, match="taken exists; remove it or choose another output folder"):
            export(variant, tmp_path / "taken")
    assert (tmp_path / "taken" / "x").read_text() == "keep me"
    for fmt in ("merged", "sentence-transformers", "hub"):
        assert main(["export", fmt, str(tmp_path / "nope"), str(tmp_path / "out")]) == 2
        assert capsys.readouterr().err.strip().splitlines()[-1] == (
            f"l3prune: error: variant folder {tmp_path / 'nope'} not found (a folder from `l3prune train`)"
        )
