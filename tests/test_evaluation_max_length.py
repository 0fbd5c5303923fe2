"""Evaluation's own max_length: the tasks file's or --max-length, not the length a variant was saved with."""

import json

import pytest
import torch
from scipy.stats import spearmanr

from l3prune import LLMEncoder
from l3prune.evaluation.run import evaluate
from l3prune.evaluation.tasks_file import load_tasks_file

STS = "Retrieve semantically similar text:"
WORDS = "the model layer text query document passage retrieve question answer encoder prune small large".split()


def long_sentence(i: int) -> str:
    """80 words: well over 64 tokens of the tiny byte-level tokenizer, under 200."""
    return " ".join(WORDS[(i * 3 + j * (i + 1)) % len(WORDS)] for j in range(80))


@pytest.fixture
def variant(tiny_llama, tmp_path):
    """A saved variant whose l3prune_encoder.json says max_length 64 (a short training length)."""
    folder = tmp_path / "variant"
    LLMEncoder.from_pretrained(tiny_llama, max_length=64).save(folder)
    assert json.loads((folder / "l3prune_encoder.json").read_text())["max_length"] == 64
    return folder


@pytest.fixture
def sts_rows(tmp_path):
    rows = [
        {"sentence1": long_sentence(i), "sentence2": long_sentence(i + 5), "score": float(i % 4)}
        for i in range(8)
    ]
    path = tmp_path / "sts.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return rows, path


def tasks_file(tmp_path, sts_path, extra=""):
    path = tmp_path / "tasks.yaml"
    path.write_text(f"local_tasks:\n  - {{name: S, type: STS, path: {sts_path}}}\n{extra}")
    return path


def token_counts(encoder, monkeypatch) -> list[int]:
    """Records the length of every token sequence the encoder builds for encode()."""
    counts: list[int] = []
    token_ids = encoder.inputs.token_ids

    def spy(inputs):
        ids, starts = token_ids(inputs)
        counts.extend(len(x) for x in ids)
        return ids, starts

    monkeypatch.setattr(encoder.inputs, "token_ids", spy)
    return counts


def expected_score(encoder, rows) -> float:
    a = encoder.encode([[STS, row["sentence1"]] for row in rows])
    b = encoder.encode([[STS, row["sentence2"]] for row in rows])
    cosine = torch.nn.functional.cosine_similarity(a, b).numpy()
    return spearmanr([row["score"] for row in rows], cosine).statistic


def test_a_variant_saved_at_64_tokens_is_evaluated_at_the_tasks_files_length(variant, sts_rows, tmp_path, monkeypatch):
    rows, path = sts_rows
    encoder = LLMEncoder.from_pretrained(variant)
    assert encoder.max_length == 64
    counts = token_counts(encoder, monkeypatch)
    config = load_tasks_file(tasks_file(tmp_path, path, "max_length: 200\n"))
    summary = evaluate(encoder, config, tmp_path / "out" / "mteb.json", name="l3prune/tiny-v", source=variant)

    # every input is read whole: longer than 64 tokens, as long as an encoder built at 200 makes it
    at_200 = LLMEncoder.from_pretrained(variant, max_length=200)
    texts = [[STS, text] for text in dict.fromkeys(row[key] for row in rows for key in ("sentence1", "sentence2"))]
    full_lengths = sorted(len(ids) for ids in at_200.inputs.token_ids(texts)[0])
    assert min(full_lengths) > 64 and max(full_lengths) < 200
    assert sorted(counts) == full_lengths
    assert summary["max_length"] == 200
    assert summary["tasks"]["S"]["main_score"] == pytest.approx(expected_score(at_200, rows), abs=1e-6)
    # the score at the saved length differs: the test tells the two apart
    at_64 = LLMEncoder.from_pretrained(variant)
    assert expected_score(at_64, rows) != pytest.approx(summary["tasks"]["S"]["main_score"], abs=1e-6)


def test_without_a_length_the_encoder_keeps_its_saved_one(variant, sts_rows, tmp_path, monkeypatch):
    _, path = sts_rows
    encoder = LLMEncoder.from_pretrained(variant)
    counts = token_counts(encoder, monkeypatch)
    summary = evaluate(
        encoder, load_tasks_file(tasks_file(tmp_path, path)), tmp_path / "out" / "mteb.json", name="l3prune/tiny-v"
    )
    assert summary["max_length"] == 64 and max(counts) == 64


def test_the_length_is_part_of_the_revision_so_results_at_another_length_are_not_reused(
    variant, sts_rows, tmp_path, monkeypatch
):
    _, path = sts_rows
    out = tmp_path / "out" / "mteb.json"
    encoder = LLMEncoder.from_pretrained(variant)
    counts = token_counts(encoder, monkeypatch)
    short = evaluate(encoder, load_tasks_file(tasks_file(tmp_path, path)), out, name="l3prune/tiny-v", source=variant)
    encoded = len(counts)
    long = evaluate(
        encoder, load_tasks_file(tasks_file(tmp_path, path)), out, name="l3prune/tiny-v", source=variant, max_length=150
    )
    assert short["revision"] != long["revision"]
    assert len(counts) == 2 * encoded  # encoded again, not taken from the results at 64
    meta = json.loads((out.parent / long["mteb_results"] / "model_meta.json").read_text())
    assert meta["max_tokens"] == 150


def test_cli_max_length_wins_over_the_tasks_file(variant, sts_rows, tmp_path):
    from l3prune.cli import main

    _, path = sts_rows
    out = tmp_path / "out" / "mteb.json"
    tasks = tasks_file(tmp_path, path, "max_length: 200\n")
    assert main(["evaluate", str(variant), "--tasks", str(tasks), "--out", str(out), "--max-length", "100"]) == 0
    assert json.loads(out.read_text())["max_length"] == 100


@pytest.mark.parametrize(
    ("args", "extra", "message"),
    [
        (["--max-length", "0"], "", "l3prune: error: --max-length must be at least 1, got 0\n"),
        ([], "max_length: 0\n", "tasks.yaml: max_length: 0 is less than the minimum of 1\n"),
    ],
)
def test_a_bad_length_is_a_one_line_error(variant, sts_rows, tmp_path, capsys, args, extra, message):
    from l3prune.cli import main

    tasks = tasks_file(tmp_path, sts_rows[1], extra)
    assert main(["evaluate", str(variant), "--tasks", str(tasks), "--out", str(tmp_path / "m.json"), *args]) == 2
    assert capsys.readouterr().err.endswith(message)
