"""evaluate() end to end on a tiny random model: every local task type, instruction placement,
the embedding cache, mteb.json, resume after a failure, model identity, the CLI."""

import json
import re
from statistics import mean

import numpy as np
import pytest
import torch
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import average_precision_score

from l3prune import LLMEncoder
from l3prune.errors import ReportedFailure
from l3prune.evaluation.run import evaluate
from l3prune.evaluation.tasks_file import load_tasks_file

STS = "Retrieve semantically similar text:"
WORDS = "the model layer text query document passage retrieve question answer encoder prune small large loss train".split()


def sentence(i: int) -> str:
    return " ".join(WORDS[(i * 5 + j) % len(WORDS)] for j in range(3 + i % 4))


@pytest.fixture
def encoder(tiny_llama):
    return LLMEncoder.from_pretrained(tiny_llama)


class EncodeSpy:
    """Stands in for encoder.encode and records every input that reached it, as (instruction, text)."""

    def __init__(self, encode, fail_on: str | None = None):
        self.encode = encode
        self.fail_on = fail_on
        self.inputs: list[tuple[str, str]] = []

    def __call__(self, inputs, **kwargs):
        pairs = [(x[0], x[1]) if isinstance(x, list) else ("", x) for x in inputs]
        if self.fail_on is not None and any(text == self.fail_on for _, text in pairs):
            raise RuntimeError("encoder broke")
        self.inputs += pairs
        return self.encode(inputs, **kwargs)


@pytest.fixture
def spy(encoder, monkeypatch):
    spy = EncodeSpy(encoder.encode)
    monkeypatch.setattr(encoder, "encode", spy)
    return spy


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def write_tasks(tmp_path, entries: list[str], extra: str = ""):
    path = tmp_path / "tasks.yaml"
    path.write_text("local_tasks:\n" + "".join(f"  - {{{entry}}}\n" for entry in entries) + extra)
    return load_tasks_file(path)


def sts_file(tmp_path, name="sts.jsonl", n=6):
    """n pairs over 4 distinct sentences."""
    rows = [
        {"sentence1": sentence(i % 4), "sentence2": sentence((i + 1) % 4), "score": float(i % 3)}
        for i in range(n)
    ]
    return write_jsonl(tmp_path / name, rows)


def retrieval_entry(tmp_path):
    write_jsonl(
        tmp_path / "corpus.jsonl", [{"_id": f"d{i}", "text": sentence(i), "title": f"T{i}"} for i in range(5)]
    )
    write_jsonl(tmp_path / "queries.jsonl", [{"_id": f"q{i}", "text": sentence(i + 7)} for i in range(3)])
    (tmp_path / "qrels.tsv").write_text("".join(f"q{i}\td{i}\t1\n" for i in range(3)))
    return (
        f"name: R, type: Retrieval, corpus: {tmp_path}/corpus.jsonl, queries: {tmp_path}/queries.jsonl, "
        f"qrels: {tmp_path}/qrels.tsv, instruction: 'Find it:'"
    )


def run(encoder, config, tmp_path, **kwargs):
    return evaluate(encoder, config, tmp_path / "out" / "mteb.json", name="l3prune/tiny-full", **kwargs)


def test_every_local_task_type_scores_the_metrics_the_tasks_file_accepts(encoder, tmp_path):
    from l3prune.evaluation.tasks_file import LOCAL_TASK_METRICS

    cls = [
        {"text": sentence(i), "label": ["x", "y"][i % 2], "split": "train" if i < 12 else "test"}
        for i in range(18)
    ]
    clu = [{"text": sentence(i), "label": i % 3} for i in range(12)]
    pair = [{"sentence1": sentence(i), "sentence2": sentence(i + 2), "label": i % 2} for i in range(8)]
    config = write_tasks(
        tmp_path,
        [
            f"name: S, type: STS, path: {sts_file(tmp_path)}",
            retrieval_entry(tmp_path),
            f"name: C, type: Classification, path: {write_jsonl(tmp_path / 'c.jsonl', cls)}",
            f"name: K, type: Clustering, path: {write_jsonl(tmp_path / 'k.jsonl', clu)}",
            f"name: P, type: PairClassification, path: {write_jsonl(tmp_path / 'p.jsonl', pair)}",
        ],
    )
    summary = run(encoder, config, tmp_path)
    metrics = {name: (task["main_metric"], task["type"]) for name, task in summary["tasks"].items()}
    assert metrics == {
        "S": ("cosine_spearman", "STS"),
        "R": ("ndcg_at_10", "Retrieval"),
        "C": ("accuracy", "Classification"),
        "K": ("v_measure", "Clustering"),
        "P": ("max_ap", "PairClassification"),
    }
    for task in summary["tasks"].values():
        assert isinstance(task["main_score"], float) and not np.isnan(task["main_score"])
        assert task["scores"]["test"][0][task["main_metric"]] == task["main_score"]
        # load_tasks_file checks main_score against LOCAL_TASK_METRICS: it must be what mteb reports
        reported = {key for key, value in task["scores"]["test"][0].items() if isinstance(value, float)}
        assert reported - {"main_score"} == set(LOCAL_TASK_METRICS[task["type"]])


def test_sts_score_matches_an_independent_computation(encoder, tmp_path):
    path = sts_file(tmp_path)
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    summary = run(encoder, write_tasks(tmp_path, [f"name: S, type: STS, path: {path}"]), tmp_path)
    a = encoder.encode([[STS, r["sentence1"]] for r in rows])
    b = encoder.encode([[STS, r["sentence2"]] for r in rows])
    cosine = torch.nn.functional.cosine_similarity(a, b).numpy()
    expected = spearmanr([r["score"] for r in rows], cosine).statistic
    assert summary["tasks"]["S"]["main_score"] == pytest.approx(expected, abs=1e-6)


def test_retrieval_score_ranks_documents_by_cosine(encoder, tmp_path):
    summary = run(encoder, write_tasks(tmp_path, [retrieval_entry(tmp_path)]), tmp_path)
    queries = encoder.encode([["Find it:", sentence(i + 7)] for i in range(3)])
    documents = encoder.encode([f"T{i} {sentence(i)}" for i in range(5)])  # mteb joins title and text
    similarity = (
        torch.nn.functional.normalize(queries, dim=1) @ torch.nn.functional.normalize(documents, dim=1).T
    )
    # query i's one relevant document is d{i}; its 1-based rank among the 5 by cosine
    ranks = [int((row > row[i]).sum()) + 1 for i, row in enumerate(similarity)]
    # the tiny random model must not rank every relevant document first, or any ranking would score 1
    assert ranks != [1, 1, 1]
    task = summary["tasks"]["R"]
    # nDCG with one relevant document of gain 1: 1 / log2(rank + 1); mteb rounds retrieval scores to 5 decimals
    assert task["main_score"] == pytest.approx(mean(1 / np.log2(rank + 1) for rank in ranks), abs=5e-6)
    assert task["scores"]["test"][0]["mrr_at_10"] == pytest.approx(mean(1 / rank for rank in ranks), abs=5e-6)


def test_pair_classification_score_is_the_average_precision_of_cosine(encoder, tmp_path):
    pair = [{"sentence1": sentence(i), "sentence2": sentence(i + 2), "label": i % 2} for i in range(8)]
    path = write_jsonl(tmp_path / "p.jsonl", pair)
    entry = f"name: P, type: PairClassification, path: {path}, instruction: 'Same?'"
    summary = run(encoder, write_tasks(tmp_path, [entry]), tmp_path)
    a = encoder.encode([["Same?", r["sentence1"]] for r in pair])
    b = encoder.encode([["Same?", r["sentence2"]] for r in pair])
    cosine = torch.nn.functional.cosine_similarity(a, b).numpy()
    expected = average_precision_score([r["label"] for r in pair], cosine)
    scores = summary["tasks"]["P"]["scores"]["test"][0]
    # similarity_ap scores with the model's own similarity function, which must be cosine
    assert scores["similarity_ap"] == pytest.approx(expected, abs=1e-6)
    assert scores["cosine_ap"] == pytest.approx(expected, abs=1e-6)


def test_retrieval_queries_get_the_instruction_documents_none(encoder, spy, tmp_path):
    run(encoder, write_tasks(tmp_path, [retrieval_entry(tmp_path)]), tmp_path)
    queries = [("Find it:", sentence(i + 7)) for i in range(3)]
    documents = [("", f"T{i} {sentence(i)}") for i in range(5)]  # mteb joins title and text
    assert sorted(spy.inputs) == sorted(queries + documents)


def test_symmetric_task_gets_the_instruction_on_both_sides(encoder, spy, tmp_path):
    pair = [{"sentence1": sentence(i), "sentence2": sentence(i + 10), "label": i % 2} for i in range(4)]
    path = write_jsonl(tmp_path / "p.jsonl", pair)
    run(
        encoder,
        write_tasks(tmp_path, [f"name: P, type: PairClassification, path: {path}, instruction: 'Same?'"]),
        tmp_path,
    )
    expected = [("Same?", sentence(i)) for i in range(4)] + [("Same?", sentence(i + 10)) for i in range(4)]
    assert sorted(spy.inputs) == sorted(expected)


def test_instructions_for_absent_tasks_are_reported(encoder, tmp_path, caplog):
    config = write_tasks(
        tmp_path, [f"name: S, type: STS, path: {sts_file(tmp_path)}"], "instructions: {STS12: 'x', S: 'y'}\n"
    )
    summary = run(encoder, config, tmp_path)
    assert summary["tasks"]["S"]["instruction"] == "y"
    assert "instructions given for tasks this run does not have: STS12" in caplog.messages


def test_cache_encodes_each_distinct_input_once(encoder, spy, tmp_path):
    path = sts_file(tmp_path, n=6)  # 12 texts requested, 4 distinct
    with_cache = run(encoder, write_tasks(tmp_path, [f"name: S, type: STS, path: {path}"]), tmp_path)
    assert len(spy.inputs) == 4 and len(set(spy.inputs)) == 4
    task = with_cache["tasks"]["S"]
    assert (task["texts_requested"], task["texts_encoded"]) == (12, 4)

    spy.inputs.clear()
    config = write_tasks(tmp_path, [f"name: S, type: STS, path: {path}"], "cache: false\n")
    without = evaluate(encoder, config, tmp_path / "nocache" / "mteb.json", name="l3prune/tiny-full")
    assert len(spy.inputs) == 12
    assert (without["tasks"]["S"]["texts_requested"], without["tasks"]["S"]["texts_encoded"]) == (12, 12)
    assert without["tasks"]["S"]["scores"] == with_cache["tasks"]["S"]["scores"]


def test_cache_lives_for_the_run(encoder, spy, tmp_path):
    path = sts_file(tmp_path)  # the same 4 distinct (instruction, text) inputs in both tasks
    summary = run(
        encoder,
        write_tasks(tmp_path, [f"name: S1, type: STS, path: {path}", f"name: S2, type: STS, path: {path}"]),
        tmp_path,
    )
    assert [summary["tasks"][name]["texts_encoded"] for name in ("S1", "S2")] == [4, 0]
    assert len(spy.inputs) == 4


def test_cache_memory_is_bounded():
    from l3prune.evaluation.mteb_model import EmbeddingCache

    cache = EmbeddingCache(max_bytes=2 * 2 * 4)  # two rows of two float32
    for i in range(3):
        key = [("", str(i))]
        cache.missing(key)
        cache.add(key, np.full((1, 2), i, dtype=np.float32))
        np.testing.assert_array_equal(cache.get(key), [[i, i]])
    assert len(cache) == 2 and cache.nbytes == 16
    assert cache.missing([("", "0"), ("", "2")]) == [("", "0")]  # the oldest row was dropped


def test_cache_counts_hits_and_misses():
    from l3prune.evaluation.mteb_model import EmbeddingCache

    cache = EmbeddingCache()
    keys = [("i", "a"), ("i", "b"), ("i", "a"), ("", "a")]
    missing = cache.missing(keys)
    assert missing == [("i", "a"), ("i", "b"), ("", "a")] and (cache.hits, cache.misses) == (1, 3)
    cache.add(missing, np.arange(6, dtype=np.float32).reshape(3, 2))
    assert cache.missing([("i", "b"), ("", "a")]) == [] and (cache.hits, cache.misses) == (3, 3)
    np.testing.assert_array_equal(cache.get(keys), [[0, 1], [2, 3], [0, 1], [4, 5]])


def test_summary_schema(encoder, tmp_path):
    config = write_tasks(
        tmp_path,
        [
            f"name: S1, type: STS, path: {sts_file(tmp_path)}",
            f"name: S2, type: STS, path: {sts_file(tmp_path, 'b.jsonl', 5)}",
        ],
    )
    summary = run(encoder, config, tmp_path)
    assert json.loads((tmp_path / "out" / "mteb.json").read_text()) == summary
    types = {
        "model": str, "revision": str, "source": str, "base_model": str, "num_layers": int, "num_parameters": int,
        "embedding_dim": int, "average": float, "encode_seconds": float, "texts_requested": int, "texts_encoded": int,
        "texts_loaded": int, "cache": bool, "batch_size": int, "max_length": int, "mteb_version": str, "mteb_results": str,
        "tasks": dict,
    }  # fmt: skip
    assert {key: type(value) for key, value in summary.items()} == types
    task_types = {
        "type": str, "main_metric": str, "main_score": float, "instruction": str, "scores": dict,
        "evaluation_seconds": float, "encode_seconds": float, "texts_requested": int, "texts_encoded": int,
        "texts_loaded": int,
    }  # fmt: skip
    for task in summary["tasks"].values():
        assert {key: type(value) for key, value in task.items()} == task_types
    assert summary["average"] == mean(task["main_score"] for task in summary["tasks"].values())
    assert summary["texts_encoded"] == sum(task["texts_encoded"] for task in summary["tasks"].values())
    assert (summary["num_layers"], summary["num_parameters"]) == (4, encoder.num_parameters())
    # mteb's own files sit beside mteb.json and carry the same model record
    results = tmp_path / "out" / summary["mteb_results"]
    assert sorted(p.name for p in results.glob("*.json")) == ["S1.json", "S2.json", "model_meta.json"]
    meta = json.loads((results / "model_meta.json").read_text())
    assert (meta["name"], meta["revision"], meta["n_parameters"]) == (
        "l3prune/tiny-full",
        summary["revision"],
        summary["num_parameters"],
    )
    assert meta["loader_kwargs"]["num_layers"] == 4


def test_failed_run_resumes_without_redoing_finished_tasks(encoder, tmp_path, monkeypatch):
    first = sts_file(tmp_path, "a.jsonl")
    b_pairs = [("broken text", sentence(9)), (sentence(10), sentence(11)), (sentence(12), sentence(13))]
    second = write_jsonl(
        tmp_path / "b.jsonl",
        [{"sentence1": x, "sentence2": y, "score": float(i)} for i, (x, y) in enumerate(b_pairs)],
    )
    config = write_tasks(
        tmp_path, [f"name: A, type: STS, path: {first}", f"name: B, type: STS, path: {second}"]
    )
    out = tmp_path / "out" / "mteb.json"
    failing = EncodeSpy(encoder.encode, fail_on="broken text")
    monkeypatch.setattr(encoder, "encode", failing)
    with pytest.raises(ReportedFailure, match=r"^1 of 2 tasks failed: B \(RuntimeError: encoder broke\)"):
        evaluate(encoder, config, out, name="l3prune/tiny-full")
    assert not out.exists()
    assert len(failing.inputs) == 4  # task A's distinct texts

    rerun = EncodeSpy(failing.encode)
    monkeypatch.setattr(encoder, "encode", rerun)
    summary = evaluate(encoder, config, out, name="l3prune/tiny-full")
    assert sorted(rerun.inputs) == sorted((STS, text) for pair in b_pairs for text in pair)  # only task B's
    assert summary["tasks"]["A"]["texts_encoded"] == 4  # A's counts come back from its run record
    assert set(summary["tasks"]) == {"A", "B"}

    # a changed instruction reruns that task alone
    rerun.inputs.clear()
    config = write_tasks(
        tmp_path,
        [
            f"name: A, type: STS, path: {first}, instruction: 'Compare:'",
            f"name: B, type: STS, path: {second}",
        ],
    )
    summary = evaluate(encoder, config, out, name="l3prune/tiny-full")
    assert {instruction for instruction, _ in rerun.inputs} == {"Compare:"}
    assert summary["tasks"]["A"]["instruction"] == "Compare:"


def test_a_changed_data_file_reruns_the_task(encoder, spy, tmp_path):
    path = sts_file(tmp_path)
    config = write_tasks(tmp_path, [f"name: S, type: STS, path: {path}"])
    before = run(encoder, config, tmp_path)["tasks"]["S"]["main_score"]
    assert before != 0
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    write_jsonl(path, [{**row, "score": 2.0 - row["score"]} for row in rows])  # reversed ranks
    spy.inputs.clear()
    summary = run(encoder, write_tasks(tmp_path, [f"name: S, type: STS, path: {path}"]), tmp_path)
    assert summary["tasks"]["S"]["main_score"] == pytest.approx(-before, abs=1e-12)
    assert summary["average"] == summary["tasks"]["S"]["main_score"]
    assert len(spy.inputs) == 4  # encoded again, not taken from mteb's cached result

    spy.inputs.clear()  # unchanged again: mteb's saved result (rounded to 6 decimals), nothing encoded
    again = run(encoder, config, tmp_path)["tasks"]["S"]["main_score"]
    assert again == pytest.approx(summary["tasks"]["S"]["main_score"], abs=1e-6)
    assert spy.inputs == []


def test_a_changed_main_score_reports_that_metric(encoder, tmp_path):
    path = sts_file(tmp_path)
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    run(encoder, write_tasks(tmp_path, [f"name: S, type: STS, path: {path}"]), tmp_path)
    config = write_tasks(tmp_path, [f"name: S, type: STS, path: {path}, main_score: manhattan_pearson"])
    summary = run(encoder, config, tmp_path)
    a = encoder.encode([[STS, r["sentence1"]] for r in rows])
    b = encoder.encode([[STS, r["sentence2"]] for r in rows])
    manhattan = -(a - b).abs().sum(dim=1).numpy()  # mteb scores the negated distance
    expected = pearsonr([r["score"] for r in rows], manhattan).statistic
    task = summary["tasks"]["S"]
    assert task["main_metric"] == "manhattan_pearson"
    assert task["main_score"] == pytest.approx(expected, abs=1e-6)
    assert task["scores"]["test"][0]["main_score"] == task["main_score"]  # mteb's own file agrees
    assert summary["average"] == task["main_score"]


def test_pruned_model_records_its_layers_and_gets_its_own_results(tiny_llama, tmp_path):
    config = write_tasks(tmp_path, [f"name: S, type: STS, path: {sts_file(tmp_path)}"])
    full = run(LLMEncoder.from_pretrained(tiny_llama), config, tmp_path, source=tiny_llama)
    pruned_encoder = LLMEncoder.from_pretrained(tiny_llama, num_layers=2)
    pruned = run(pruned_encoder, config, tmp_path, source=tiny_llama)
    assert (pruned["num_layers"], pruned["num_parameters"]) == (2, pruned_encoder.num_parameters())
    assert pruned["num_parameters"] < full["num_parameters"]
    assert pruned["revision"] != full["revision"]  # a different model never reuses the full model's results
    assert pruned["tasks"]["S"]["texts_encoded"] == 4


def test_model_revision_follows_the_variant_files(encoder, tiny_llama, tmp_path):
    from l3prune.evaluation.mteb_model import model_revision

    variant = tmp_path / "variant"
    encoder.save(variant)
    before = model_revision(variant, encoder)
    assert model_revision(variant, encoder) == before
    (variant / "l3prune_encoder.json").write_text((variant / "l3prune_encoder.json").read_text() + " ")
    assert model_revision(variant, encoder) != before


def test_cli_evaluates_a_saved_variant(tiny_llama, tmp_path):
    from l3prune.cli import main

    variant = tmp_path / "output" / "tiny" / "l2"
    LLMEncoder.from_pretrained(tiny_llama, num_layers=2).save(variant)
    (variant / "model_info.json").write_text(json.dumps({"variant": "small", "base_model": "org/Tiny-LM"}))
    tasks = tmp_path / "tasks.yaml"
    tasks.write_text(f"local_tasks:\n  - {{name: S, type: STS, path: {sts_file(tmp_path)}}}\n")
    out = tmp_path / "results" / "tiny" / "l2" / "mteb.json"
    assert (
        main(["evaluate", str(variant), "--tasks", str(tasks), "--out", str(out), "--batch-size", "2"]) == 0
    )
    summary = json.loads(out.read_text())
    assert (summary["model"], summary["num_layers"], summary["batch_size"]) == ("l3prune/Tiny-LM-small", 2, 2)
    assert summary["source"] == str(variant)


def test_default_names(tiny_llama, tmp_path):
    from l3prune.commands.evaluation import default_name

    encoder = LLMEncoder.from_pretrained(tiny_llama)
    assert default_name(str(tiny_llama), encoder, None) == f"l3prune/{tiny_llama.name}-full"
    assert default_name(str(tiny_llama), encoder, 3) == f"l3prune/{tiny_llama.name}-l3"
    encoder.save(tmp_path / "p25")
    assert default_name(str(tmp_path / "p25"), encoder, None) == f"l3prune/{tiny_llama.name}-p25"


def test_cli_bad_tasks_file_is_a_one_line_error(tiny_llama, tmp_path, capsys):
    from l3prune.cli import main

    tasks = tmp_path / "tasks.yaml"
    tasks.write_text("tasks: [STS12]\nbenchmark: 3\n")
    assert main(["evaluate", str(tiny_llama), "--tasks", str(tasks), "--out", str(tmp_path / "m.json")]) == 2
    assert (
        capsys.readouterr().err == f"l3prune: error: {tasks}: benchmark: 3 is not of type 'string', 'null'\n"
    )


def test_unknown_mteb_task_is_a_one_line_error_before_the_model_loads(tmp_path):
    path = tmp_path / "tasks.yaml"
    path.write_text("tasks: [STS99]\n")
    with pytest.raises(ValueError, match=rf"^{re.escape(str(path))}: unknown MTEB task 'STS99': .*not found"):
        load_tasks_file(path)
