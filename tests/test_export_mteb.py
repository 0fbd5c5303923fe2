"""mteb's record of an evaluated variant: model_meta.json and the per-task results that mteb's own
results reader loads, with the leaderboard's fields filled (merged parameter count, training data)."""

import json

import pytest

from l3prune import LLMEncoder
from l3prune.dataset.e5 import E5_INSTRUCTIONS
from l3prune.evaluation.run import evaluate
from l3prune.evaluation.tasks_file import load_tasks_file
from l3prune.evaluation.training_datasets import BY_DATASET, E5_SOURCES, training_datasets
from l3prune.training.lora import add_lora


def test_every_e5_file_is_mapped_and_every_name_is_an_mteb_task():
    import mteb

    assert set(E5_SOURCES) == set(E5_INSTRUCTIONS)
    for name in BY_DATASET["E5"]:
        assert mteb.get_task(name).metadata.name == name
    assert {"MSMARCO", "NQ", "HotpotQA", "FEVER", "MIRACLRetrieval"} <= training_datasets("E5")
    assert training_datasets("Wiki1M") == set() and training_datasets("jsonl") is None


@pytest.fixture
def variant(tiny_llama, tmp_path):
    encoder = LLMEncoder.from_pretrained(tiny_llama, num_layers=3)
    base_parameters = encoder.num_parameters()
    add_lora(encoder, r=4, alpha=8, dropout=0.0)
    assert encoder.num_parameters() > base_parameters
    encoder.save(tmp_path / "variant")
    return tmp_path / "variant", base_parameters


def test_mteb_reads_back_the_results_and_model_meta(variant, tmp_path):
    import mteb
    from mteb.models.model_meta import ModelMeta

    folder, base_parameters = variant
    rows = [
        {"sentence1": f"the summit {i}", "sentence2": f"a mountain leader {i % 3}", "score": float(i % 3)}
        for i in range(6)
    ]
    (tmp_path / "sts.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    tasks = tmp_path / "tasks.yaml"
    tasks.write_text(f"local_tasks:\n  - {{name: S1, type: STS, path: {tmp_path}/sts.jsonl}}\n")
    out = tmp_path / "results" / "tiny" / "l3" / "mteb.json"
    encoder = LLMEncoder.from_pretrained(folder)
    summary = evaluate(encoder, load_tasks_file(tasks), out, name="l3prune/tiny-l3", source=folder,
                       training_datasets=training_datasets("E5"))  # fmt: skip
    assert summary["num_parameters"] == base_parameters  # the merged model's, without the LoRA weights

    results = mteb.ResultCache(cache_path=out.parent).load_results(
        include_remote=False, require_model_meta=True
    )
    [model] = results.model_results
    assert (model.model_name, model.model_revision) == ("l3prune/tiny-l3", summary["revision"])
    [task] = model.task_results
    assert task.task_name == "S1" and task.get_score() == pytest.approx(
        summary["tasks"]["S1"]["main_score"], abs=1e-6
    )  # mteb rounds

    meta = ModelMeta.model_validate(
        json.loads((out.parent / summary["mteb_results"] / "model_meta.json").read_text())
    )
    assert (meta.n_parameters, meta.embed_dim, meta.max_tokens) == (base_parameters, 64, encoder.max_length)
    assert meta.similarity_fn_name.value == "cosine" and meta.use_instructions
    assert meta.adapted_from == str(encoder.base_model_name_or_path) and "PyTorch" in meta.framework
    assert set(meta.training_datasets) == training_datasets("E5")


def test_cli_records_the_training_configs_datasets(variant, tmp_path):
    from l3prune.cli import main

    folder, _ = variant
    rows = [
        {"sentence1": f"the summit {i}", "sentence2": f"a leader {i}", "score": float(i % 3)}
        for i in range(4)
    ]
    (tmp_path / "sts.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    (tmp_path / "tasks.yaml").write_text(
        f"local_tasks:\n  - {{name: S1, type: STS, path: {tmp_path}/sts.jsonl}}\n"
    )
    config = tmp_path / "train.json"
    config.write_text(
        json.dumps(
            {"model_name_or_path": "x", "dataset_name": "E5", "dataset_file_path": "d", "output_dir": "o"}
        )
    )
    out = tmp_path / "eval" / "mteb.json"
    assert (
        main(
            [
                "evaluate",
                str(folder),
                "--tasks",
                str(tmp_path / "tasks.yaml"),
                "--out",
                str(out),
                "--training-config",
                str(config),
            ]
        )
        == 0
    )
    summary = json.loads(out.read_text())
    meta = json.loads((out.parent / summary["mteb_results"] / "model_meta.json").read_text())
    assert set(meta["training_datasets"]) == training_datasets("E5")
