"""The model card (README.md) of a hub folder: YAML metadata (base model, library, tags and a
model-index with the variant's MTEB scores) and a body with usage, the pooling recipe for plain
transformers, and the prune and training settings. Written offline from local files only.
"""

from __future__ import annotations

import json

from ..encoder import LLMEncoder

MTEB_SOURCE = ("MTEB", "https://github.com/embeddings-benchmark/mteb")
EXAMPLE_QUERY = "how much protein should a female eat"
EXAMPLE_DOCUMENT = "As a general guideline, the average protein requirement for women is 46 grams per day."
EXAMPLE_INSTRUCTION = "Given a web search query, retrieve relevant passages that answer the query"


def eval_results(mteb_summary: dict) -> list:
    """huggingface_hub EvalResults (the card's model-index): every task's main score, per split and subset."""
    from huggingface_hub import EvalResult

    results = []
    for task, entry in mteb_summary["tasks"].items():
        for split, subsets in entry["scores"].items():
            for subset in subsets:
                name = subset.get("hf_subset", "default")
                results.append(
                    EvalResult(
                        task_type=entry["type"],
                        dataset_type=f"mteb/{task}",
                        dataset_name=f"MTEB {task} ({name})",
                        dataset_config=name,
                        dataset_split=split,
                        metric_type=entry["main_metric"],
                        metric_value=subset["main_score"],
                        source_name=MTEB_SOURCE[0],
                        source_url=MTEB_SOURCE[1],
                    )
                )
    return results


def card_metadata(
    encoder: LLMEncoder, model_name: str, base_model: str, mteb_summary: dict | None, license: str | None
):
    from huggingface_hub import ModelCardData

    return ModelCardData(
        model_name=model_name,
        base_model=base_model,
        library_name="sentence-transformers",
        pipeline_tag="sentence-similarity",
        license=license,
        tags=[
            "sentence-transformers",
            "feature-extraction",
            "sentence-similarity",
            "mteb",
            "l3prune",
            "pruned",
        ],
        eval_results=eval_results(mteb_summary) if mteb_summary and mteb_summary.get("tasks") else None,
    )


def model_card(
    encoder: LLMEncoder,
    model_name: str,
    base_model: str,
    *,
    mteb_summary: dict | None = None,
    model_info: dict | None = None,
    training: dict | None = None,
    license: str | None = None,
) -> str:
    """The README.md text; `model_name` is the hub repo id the folder is meant for."""
    data = card_metadata(encoder, model_name, base_model, mteb_summary, license)
    sections = [
        _intro(encoder, model_name, base_model, model_info),
        _usage(model_name),
        "## Plain transformers\n\nThe same embedding from `AutoModel` alone, one text at a time "
        f"(texts under {encoder.inputs.doc_max_length} tokens; longer ones l3prune cuts):\n\n"
        f"```python\n{plain_transformers_recipe(encoder, model_name)}```\n",
        _settings(encoder, model_info, training),
        _scores(mteb_summary),
    ]
    return f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(s for s in sections if s)


def _intro(encoder: LLMEncoder, model_name: str, base_model: str, info: dict | None) -> str:
    cut = ""
    if info and info.get("layers_before"):
        cut = f", pruned from {info['layers_before']} to {info['layers_after']} layers with L3Prune"
    return (
        f"# {model_name}\n\nA text encoder made from [{base_model}](https://huggingface.co/{base_model}){cut}, "
        f"{encoder.num_layers} layers, embeddings of {encoder.model.config.hidden_size} dimensions "
        f"({encoder.pooling_mode} pooling, cosine similarity). Queries take an instruction; documents none.\n"
    )


def _usage(model_name: str) -> str:
    return f"""## Usage

sentence-transformers (with `l3prune` installed: the flag lets it import l3prune's module class; the
folder holds no code):

```python
from sentence_transformers import SentenceTransformer

model = SentenceTransformer("{model_name}", trust_remote_code=True)
queries = model.encode(["{EXAMPLE_QUERY}"], prompt="{EXAMPLE_INSTRUCTION}")
documents = model.encode(["{EXAMPLE_DOCUMENT}"])
print(model.similarity(queries, documents))
# a saved task instruction by name: model.encode(texts, prompt_name="STSBenchmark")
```

l3prune:

```python
from l3prune import LLMEncoder

encoder = LLMEncoder.from_pretrained("{model_name}")
queries = encoder.encode([["{EXAMPLE_INSTRUCTION}", "{EXAMPLE_QUERY}"]], normalize_embeddings=True)
documents = encoder.encode(["{EXAMPLE_DOCUMENT}"], normalize_embeddings=True)
print(queries @ documents.T)
```
"""


def plain_transformers_recipe(encoder: LLMEncoder, model_name: str) -> str:
    """Python that computes the encoder's embedding of one text with transformers only (the rules of
    l3prune.encoder.inputs and pooling, with this encoder's settings written in)."""
    head, tail = encoder.inputs.wrap
    return f'''import torch
from transformers import AutoModel, AutoTokenizer

model_id = "{model_name}"
tokenizer = AutoTokenizer.from_pretrained(model_id)
model = AutoModel.from_pretrained(model_id).eval()
HEAD, TAIL = {head!r}, {tail!r}  # the user turn around every input ("" when not wrapped)
POOLING, SKIP_INSTRUCTION, APPEND_EOS = {encoder.pooling_mode!r}, {encoder.skip_instruction!r}, {encoder.inputs.append_eos!r}


def embed(text, instruction=""):
    instruction = instruction.strip()
    prefix = instruction + (" " if instruction[-1] in ":;.?!" else ": ") if instruction else ""
    encoded = tokenizer(HEAD + prefix + text + TAIL, return_offsets_mapping=True)
    ids, offsets = encoded["input_ids"], encoded["offset_mapping"]
    text_start = len(HEAD) + len(prefix)  # pooled: the first token ending inside the text, and all after
    start = next(i for i, (a, b) in enumerate(offsets) if a != b and b > text_start) if SKIP_INSTRUCTION else 0
    if APPEND_EOS and ids[-1] != tokenizer.eos_token_id:
        ids = ids + [tokenizer.eos_token_id]
    with torch.no_grad():
        hidden = model(input_ids=torch.tensor([ids])).last_hidden_state[0].float()
    if POOLING in ("eos_token", "last_token"):
        return hidden[-1]
    if POOLING == "bos_token":
        return hidden[0]
    pooled = hidden[start:]
    weights = torch.arange(1, len(pooled) + 1.0) if POOLING == "weighted_mean" else torch.ones(len(pooled))
    return (pooled * weights[:, None]).sum(0) / weights.sum()


query = embed("{EXAMPLE_QUERY}", "{EXAMPLE_INSTRUCTION}")
document = embed("{EXAMPLE_DOCUMENT}")
print(torch.cosine_similarity(query, document, dim=0))
'''


def _settings(encoder: LLMEncoder, info: dict | None, training: dict | None) -> str:
    lines = [
        "## Settings",
        "",
        "Encoder (`l3prune_encoder.json`):",
        "",
        "```json",
        json.dumps(encoder.settings(), indent=2),
        "```",
    ]
    if info:
        pruning = {
            k: info[k]
            for k in (
                "variant",
                "prune",
                "layers_before",
                "layers_after",
                "params_before",
                "params_after",
                "prune_points",
            )
            if k in info
        }
        lines += ["", "Pruning (`model_info.json`):", "", "```json", json.dumps(pruning, indent=2), "```"]
    if training:
        lines += [
            "",
            "Training (the config's values that change the trained model):",
            "",
            "```json",
            json.dumps(training, indent=2, default=str),
            "```",
        ]
    return "\n".join(lines) + "\n"


def _scores(summary: dict | None) -> str:
    if not summary or not summary.get("tasks"):
        return ""
    rows = [
        f"| {task} | {entry['type']} | {entry['main_metric']} | {entry['main_score']:.4f} |"
        for task, entry in summary["tasks"].items()
    ]
    average = (
        ""
        if summary.get("average") is None
        else f"\nAverage main score: {summary['average']:.4f} (mteb {summary.get('mteb_version', '?')}).\n"
    )
    return (
        "\n".join(["## MTEB", "", "| task | type | metric | score |", "|---|---|---|---|", *rows])
        + "\n"
        + average
    )
