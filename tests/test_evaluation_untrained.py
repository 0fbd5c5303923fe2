"""`l3prune evaluate-untrained`: a variant's base model, cut and read as training reads it, untrained."""

import json

import pytest
import yaml

from l3prune import LLMEncoder
from l3prune.cli import main
from l3prune.evaluation.run import evaluate
from l3prune.evaluation.tasks_file import load_tasks_file

WORDS = "the model layer text query document passage retrieve question answer encoder prune".split()


def sentence(i: int) -> str:
    return " ".join(WORDS[(i * 5 + j * 3) % len(WORDS)] for j in range(7))


@pytest.fixture
def setup(tmp_path, tiny_llama):
    rows = [
        {"sentence1": sentence(i), "sentence2": sentence(i + 3), "score": float(i % 4)} for i in range(10)
    ]
    (tmp_path / "sts.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    tasks = tmp_path / "tasks.yaml"
    tasks.write_text(
        yaml.safe_dump(
            {"local_tasks": [{"name": "TinySTS", "type": "STS", "path": str(tmp_path / "sts.jsonl")}]}
        )
    )
    config = tmp_path / "train.json"
    settings = dict(pooling_mode="mean", doc_max_length=300, skip_instruction=False)
    config.write_text(
        json.dumps(
            dict(model_name_or_path=str(tiny_llama), dataset_name="jsonl", dataset_file_path="unused.jsonl",
                 percent_prune=[2], torch_dtype="float32", max_seq_length=8, **settings)
        )
    )  # fmt: skip
    return tmp_path, tasks, config, settings


def test_the_cut_base_model_is_read_with_the_configs_settings_at_the_inference_length(setup, tiny_llama):
    folder, tasks, config, settings = setup
    out = folder / "l2" / "untrained" / "mteb.json"
    assert (
        main(["evaluate-untrained", str(config), "--variant", "l2", "--tasks", str(tasks), "--out", str(out)])
        == 0
    )
    summary = json.loads(out.read_text())
    assert summary["num_layers"] == 2 and summary["max_length"] == 512  # not max_seq_length's 8
    by_hand = LLMEncoder.from_pretrained(tiny_llama, num_layers=2, max_length=512, **settings)
    expected = evaluate(by_hand, load_tasks_file(tasks), folder / "by_hand" / "mteb.json", name="by-hand")
    assert summary["tasks"]["TinySTS"]["main_score"] == pytest.approx(
        expected["tasks"]["TinySTS"]["main_score"], abs=1e-6
    )
    default = evaluate(
        LLMEncoder.from_pretrained(tiny_llama, num_layers=2),
        load_tasks_file(tasks),
        folder / "d" / "mteb.json",
        name="d",
    )
    assert default["tasks"]["TinySTS"]["main_score"] != pytest.approx(
        summary["tasks"]["TinySTS"]["main_score"]
    )


def test_a_variant_the_config_lacks_fails_before_the_model_loads(setup, capsys):
    folder, tasks, config, _ = setup
    argv = [
        "evaluate-untrained",
        str(config),
        "--variant",
        "small",
        "--tasks",
        str(tasks),
        "--out",
        str(folder / "o.json"),
    ]
    assert main(argv) == 2
    assert "no variant 'small'; this config has: full, l2" in capsys.readouterr().err
