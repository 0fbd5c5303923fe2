"""The tasks file, local task files and the instruction table: what is accepted, and the one-line errors."""

import json
import logging
import re

import pytest

from l3prune.evaluation.instructions import DEFAULT_INSTRUCTIONS_FILE, load_instruction_table
from l3prune.evaluation.tasks_file import LOCAL_TASK_FILES, load_tasks_file, local_task_paths


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


@pytest.fixture
def sts_file(tmp_path):
    return write_jsonl(tmp_path / "sts.jsonl", [{"sentence1": "a", "sentence2": "b", "score": 1.0}])


def tasks_file(tmp_path, text):
    path = tmp_path / "tasks.yaml"
    path.write_text(text)
    return path


def test_full_tasks_file_is_read(tmp_path, sts_file):
    for name in ("corpus.jsonl", "queries.jsonl", "qrels.tsv"):
        (tmp_path / name).write_text("x")
    path = tasks_file(
        tmp_path,
        f"""
tasks: [STS12, SciFact]
benchmark: "MTEB(eng, v2)"
local_tasks:
  - {{name: Lee, type: STS, path: {sts_file}, instruction: "Retrieve similar documents:", main_score: cosine_pearson}}
  - {{name: Mine, type: Retrieval, corpus: {tmp_path}/corpus.jsonl, queries: {tmp_path}/queries.jsonl, qrels: {tmp_path}/qrels.tsv}}
instructions: {{SciFact: "Check this claim:", Mine: "Find my documents:"}}
batch_size: 8
cache: false
""",
    )
    config = load_tasks_file(path)
    assert config.tasks == ["STS12", "SciFact"]
    assert config.benchmark == "MTEB(eng, v2)"
    assert [(s.name, s.type, s.main_score) for s in config.local_tasks] == [
        ("Lee", "STS", "cosine_pearson"),
        ("Mine", "Retrieval", None),
    ]
    assert config.local_tasks[1].files == {
        "corpus": tmp_path / "corpus.jsonl",
        "queries": tmp_path / "queries.jsonl",
        "qrels": tmp_path / "qrels.tsv",
    }
    assert (config.batch_size, config.cache) == (8, False)
    assert config.instruction_overrides() == {
        "Lee": "Retrieve similar documents:",
        "SciFact": "Check this claim:",
        "Mine": "Find my documents:",
    }


def test_defaults(tmp_path):
    config = load_tasks_file(tasks_file(tmp_path, "tasks: [STS12]\n"))
    assert (config.benchmark, config.local_tasks, config.instructions, config.batch_size, config.cache) == (
        None,
        [],
        {},
        32,
        True,
    )


@pytest.mark.parametrize(
    "text, message",
    [
        (
            "taks: [STS12]\n",
            "top level: Additional properties are not allowed ('taks' was unexpected); allowed keys: tasks, benchmark",
        ),
        ("tasks: STS12\n", "tasks: 'STS12' is not of type 'array'"),
        ("tasks: [STS12]\nbatch_size: 0\n", "batch_size: 0 is less than the minimum of 1"),
        ("tasks: [STS12]\ncache: yes please\n", "cache: 'yes please' is not of type 'boolean'"),
        (
            "local_tasks:\n  - {name: X, type: sts, path: x.jsonl}\n",
            "local_tasks[0].type: 'sts' is not one of ['STS', 'Retrieval', 'Classification', 'Clustering', 'PairClassification']",
        ),
        ("local_tasks:\n  - {type: STS, path: x.jsonl}\n", "local_tasks[0]: 'name' is a required property"),
        (
            "local_tasks:\n  - {name: X, type: STS, file: x.jsonl}\n",
            "local_tasks[0]: Additional properties are not allowed ('file' was unexpected); allowed keys: name, type, path",
        ),
        (
            "local_tasks:\n  - {name: X, type: STS}\n",
            "local_tasks[0] (X): type STS needs key(s) path (it reads path)",
        ),
        (
            "local_tasks:\n  - {name: X, type: Retrieval, path: x}\n",
            "local_tasks[0] (X): type Retrieval needs key(s) corpus, queries, qrels",
        ),
        (
            "local_tasks:\n  - {name: X, type: STS, path: missing.jsonl}\n",
            "local_tasks[0] (X): path file missing.jsonl not found",
        ),
        ("tasks: [STS12, STS12]\n", "task name(s) STS12 given more than once"),
        ("benchmark: null\n", "nothing to evaluate; give `tasks`, `benchmark` or `local_tasks`"),
        ("", "nothing to evaluate"),
        ("tasks: [STS12\n", ": not valid YAML"),
        ("instructions: {STS12: 3}\ntasks: [STS12]\n", "instructions.STS12: 3 is not of type 'string'"),
    ],
)
def test_bad_tasks_file_is_a_one_line_error(tmp_path, text, message):
    path = tasks_file(tmp_path, text)
    with pytest.raises((ValueError, FileNotFoundError)) as error:
        load_tasks_file(path)
    assert str(error.value).startswith(str(path))
    assert message in str(error.value)
    assert "\n" not in str(error.value)


def test_local_file_key_not_used_by_the_type(tmp_path, sts_file):
    path = tasks_file(
        tmp_path, f"local_tasks:\n  - {{name: X, type: STS, path: {sts_file}, qrels: {sts_file}}}\n"
    )
    with pytest.raises(
        ValueError, match=r"local_tasks\[0\] \(X\): key\(s\) qrels not used by type STS \(it reads path\)"
    ):
        load_tasks_file(path)


def test_local_name_may_not_repeat_an_mteb_task(tmp_path, sts_file):
    path = tasks_file(
        tmp_path, f"tasks: [Lee]\nlocal_tasks:\n  - {{name: Lee, type: STS, path: {sts_file}}}\n"
    )
    with pytest.raises(ValueError, match="task name\\(s\\) Lee given more than once"):
        load_tasks_file(path)


@pytest.mark.parametrize(
    "text, message",
    [
        (  # a local task would replace the benchmark's task of that name
            'benchmark: "MTEB(eng, v2)"\nlocal_tasks:\n'
            "  - {{name: STSBenchmark, type: STS, path: {sts}}}\n  - {{name: Lee, type: STS, path: {sts}}}\n",
            "local task name(s) STSBenchmark also name task(s) of benchmark 'MTEB(eng, v2)'; "
            "give the local task(s) another name",
        ),
        (
            "local_tasks:\n  - {{name: Lee, type: STS, path: {sts}, main_score: manhatan_pearson}}\n",
            "local_tasks[0] (Lee): main_score 'manhatan_pearson' is not a STS metric; choose from "
            "pearson, spearman, cosine_pearson, cosine_spearman, manhattan_pearson, manhattan_spearman, "
            "euclidean_pearson, euclidean_spearman",
        ),
    ],
)
def test_local_task_checks_before_the_model_loads(tmp_path, sts_file, text, message):
    path = tasks_file(tmp_path, text.format(sts=sts_file))
    with pytest.raises(ValueError) as error:
        load_tasks_file(path)
    assert str(error.value) == f"{path}: {message}"


def test_unknown_benchmark_fails_with_the_tasks_file(tmp_path):
    path = tasks_file(tmp_path, 'benchmark: "MTEB(nope)"\n')
    with pytest.raises(ValueError, match=rf"^{path}: unknown MTEB benchmark 'MTEB\(nope\)': .*not found"):
        load_tasks_file(path)


def test_missing_tasks_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=f"tasks file {tmp_path}/nope.yaml not found"):
        load_tasks_file(tmp_path / "nope.yaml")


def test_local_task_types_all_have_a_class_and_a_main_score():
    from l3prune.evaluation.local_tasks import TASK_CLASSES
    from l3prune.evaluation.tasks_file import DEFAULT_MAIN_SCORE, LOCAL_TASK_METRICS

    assert set(TASK_CLASSES) == set(LOCAL_TASK_FILES) == set(DEFAULT_MAIN_SCORE) == set(LOCAL_TASK_METRICS)
    assert all(DEFAULT_MAIN_SCORE[type_] in metrics for type_, metrics in LOCAL_TASK_METRICS.items())


# ---------------------------------------------------------------- local task files


def read_local(tmp_path, type_, **files):
    from l3prune.evaluation.local_tasks import build_local_task
    from l3prune.evaluation.tasks_file import LocalTaskSpec

    task = build_local_task(LocalTaskSpec("T", type_, files))
    task.load_data()
    return task


@pytest.mark.parametrize(
    "type_, rows, message",
    [
        (
            "STS",
            [{"sentence1": "a", "sentence2": "b"}],
            ":1: missing key 'score' (each line needs sentence1, sentence2, score)",
        ),
        (
            "STS",
            [{"sentence1": "a", "sentence2": "b", "score": "high"}],
            ":1: score='high' has the wrong type",
        ),
        (
            "Classification",
            [{"text": "a", "label": 1, "split": "train"}, {"text": "b", "label": 1, "split": "dev"}],
            ":2: split='dev'; allowed values: train, test",
        ),
        (
            "Classification",
            [{"text": "a", "label": 1, "split": "test"}],
            ": no examples with split='train'; classification needs train and test examples",
        ),
        ("Clustering", [{"text": "a"}], ":1: missing key 'label' (each line needs text, label)"),
        (
            "PairClassification",
            [{"sentence1": "a", "sentence2": "b", "label": 2}],
            ":1: label=2; allowed values: 0, 1",
        ),
        ("STS", [], ": no examples (each line is an object with sentence1, sentence2, score)"),
    ],
)
def test_bad_local_jsonl_names_file_and_line(tmp_path, type_, rows, message):
    path = write_jsonl(tmp_path / "data.jsonl", rows)
    with pytest.raises(ValueError) as error:
        read_local(tmp_path, type_, path=path)
    assert str(error.value).startswith(f"{path}{message}")


def test_invalid_json_line(tmp_path):
    path = tmp_path / "data.jsonl"
    path.write_text('{"sentence1": "a", "sentence2": "b", "score": 1}\n\n{"sentence1": \n')
    with pytest.raises(
        ValueError,
        match=rf"^{path}:3: not valid JSON \(.*\); each line is an object with sentence1, sentence2, score$",
    ):
        read_local(tmp_path, "STS", path=path)


def retrieval_files(tmp_path, qrels):
    corpus = write_jsonl(
        tmp_path / "corpus.jsonl", [{"_id": "d1", "text": "x", "title": "T"}, {"_id": "d2", "text": "y"}]
    )
    queries = write_jsonl(tmp_path / "queries.jsonl", [{"_id": "q1", "text": "z"}])
    (tmp_path / "qrels.tsv").write_text(qrels)
    return dict(corpus=corpus, queries=queries, qrels=tmp_path / "qrels.tsv")


def test_retrieval_files_are_read(tmp_path):
    task = read_local(
        tmp_path, "Retrieval", **retrieval_files(tmp_path, "query-id\tcorpus-id\tscore\nq1\td2\t1\n")
    )
    split = task.dataset["default"]["test"]
    assert split["relevant_docs"] == {"q1": {"d2": 1}}
    assert split["corpus"]["title"] == ["T", ""]
    assert split["queries"]["text"] == ["z"]


@pytest.mark.parametrize(
    "qrels, message",
    [
        ("q1\td9\t1\n", ":1: corpus-id 'd9' is not in the corpus file"),
        ("q1\td1\t1\nq7\td1\t1\n", ":2: query-id 'q7' is not in the queries file"),
        ("q1 d1 1\n", ":1: expected query-id<TAB>corpus-id<TAB>integer score, got 'q1 d1 1'"),
        ("query-id\tcorpus-id\tscore\n", ": no relevance judgements"),
    ],
)
def test_bad_qrels(tmp_path, qrels, message):
    files = retrieval_files(tmp_path, qrels)
    with pytest.raises(ValueError) as error:
        read_local(tmp_path, "Retrieval", **files)
    assert str(error.value).startswith(f"{files['qrels']}{message}")


def test_classification_labels_become_ids(tmp_path):
    rows = [
        {"text": t, "label": label, "split": split}
        for t, label, split in [("a", "sport", "train"), ("b", "tech", "train"), ("c", "tech", "test")]
    ]
    task = read_local(tmp_path, "Classification", path=write_jsonl(tmp_path / "c.jsonl", rows))
    data = task.dataset["default"]
    assert data["train"]["label"] == [0, 1] and data["test"]["label"] == [1]


def test_local_task_revision_follows_file_content(tmp_path, sts_file):
    from l3prune.evaluation.local_tasks import local_metadata
    from l3prune.evaluation.tasks_file import LocalTaskSpec

    spec = LocalTaskSpec("T", "STS", {"path": sts_file})
    before = local_metadata(spec).dataset["revision"]
    assert local_metadata(spec).dataset["revision"] == before
    write_jsonl(sts_file, [{"sentence1": "a", "sentence2": "b", "score": 2.0}])
    assert local_metadata(spec).dataset["revision"] != before


# ---------------------------------------------------------------- instruction table


def test_instruction_table_covers_mteb_english_benchmarks():
    import mteb

    table = load_instruction_table()
    missing = set()
    for benchmark in ("MTEB(eng, v1)", "MTEB(eng, v2)"):
        for task in mteb.get_benchmark(benchmark).tasks:
            parts = [task, *getattr(task.metadata, "tasks", [])]
            missing |= {part.metadata.name for part in parts if part.metadata.name not in table.tasks}
    assert not missing
    assert (
        table.tasks["MSMARCO"]
        == "Given a web search query, retrieve relevant passages that answer the query:"
    )
    assert table.tasks["STS12"] == "Retrieve semantically similar text:"
    assert all(text.endswith(":") for text in [*table.tasks.values(), *table.task_types.values()])


def test_unlisted_task_falls_back_to_its_type_with_one_warning(caplog):
    table = load_instruction_table()
    with caplog.at_level(logging.WARNING):
        first = table.instruction("MyNewSTS", "STS")
        second = table.instruction("MyNewSTS", "STS")
    assert first == second == table.task_types["STS"]
    assert [r.getMessage() for r in caplog.records] == [
        "no instruction listed for task MyNewSTS; using the STS default 'Retrieve semantically similar text:'"
    ]


def test_overrides_win_and_unknown_types_are_an_error():
    table = load_instruction_table().with_overrides({"STS12": "Compare:"})
    assert table.instruction("STS12", "STS") == "Compare:"
    assert load_instruction_table().instruction("STS12", "STS") == "Retrieve semantically similar text:"
    with pytest.raises(
        ValueError,
        match="no instruction for task 'Pics' of type 'ImageClustering': add one under `instructions:`",
    ):
        table.instruction("Pics", "ImageClustering")


def test_bad_instruction_table(tmp_path):
    path = tmp_path / "i.yaml"
    path.write_text("tasks: {A: x}\ntypes: {}\n")
    with pytest.raises(ValueError, match=f"{path}: unknown key\\(s\\) types; allowed: tasks, task_types"):
        load_instruction_table(path)
    with pytest.raises(FileNotFoundError, match="instruction table .* not found"):
        load_instruction_table(tmp_path / "none.yaml")
    assert DEFAULT_INSTRUCTIONS_FILE.is_file()


def test_local_task_paths_are_the_files_the_local_tasks_read(tmp_path):
    path = tmp_path / "tasks.yaml"
    path.write_text(
        "tasks: [STS12]\n"
        "local_tasks:\n"
        "  - {name: A, type: STS, path: data/a.jsonl}\n"
        "  - {name: B, type: Retrieval, corpus: c.jsonl, queries: q.jsonl, qrels: r.jsonl}\n"
    )
    # the files need not exist yet: the workflow builds them before evaluating
    assert local_task_paths(path) == ["data/a.jsonl", "c.jsonl", "q.jsonl", "r.jsonl"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("local_tasks: [\n", r"tasks\.yaml:2: not valid YAML"),
        ("local_tasks: [LeeSTS]\n", r"tasks\.yaml: local_tasks\[0\]: 'LeeSTS' is not of type 'object'"),
    ],
)
def test_local_task_paths_of_a_malformed_tasks_file_is_one_line_naming_it(tmp_path, content, message):
    path = tmp_path / "tasks.yaml"
    path.write_text(content)
    with pytest.raises(ValueError, match=f"^{re.escape(str(tmp_path))}/{message}"):
        local_task_paths(path)


# ---------------------------------------------------------------- shipped tasks files


def test_shipped_benchmark_tasks_files_are_the_english_benchmarks():
    from pathlib import Path

    import yaml

    from l3prune.evaluation.run import resolve_tasks

    repo = Path(__file__).resolve().parents[1]
    sizes = {}
    for name in ("mteb_eng_v1", "mteb_eng_v2"):
        config = load_tasks_file(repo / "config/eval" / f"{name}.yaml")
        sizes[name] = len(resolve_tasks(config))
    assert sizes == {"mteb_eng_v1": 56, "mteb_eng_v2": 41}
    # the paper models are evaluated on the paper era's benchmark
    models = yaml.safe_load((repo / "config/config.yaml").read_text())["models"]
    assert {m: models[m]["tasks"] for m in ("llama3", "mistral", "qwen2", "phi3")} == dict.fromkeys(
        ("llama3", "mistral", "qwen2", "phi3"), "config/eval/mteb_eng_v1.yaml"
    )


def test_fast_subset_is_about_ten_english_tasks_of_every_type_each_with_its_own_instruction():
    from pathlib import Path

    import mteb

    from l3prune.evaluation.run import resolve_tasks

    repo = Path(__file__).resolve().parents[1]
    tasks = resolve_tasks(load_tasks_file(repo / "config/eval/mteb_fast.yaml"))
    assert 8 <= len(tasks) <= 12
    v2_types = {task.metadata.type for task in mteb.get_benchmark("MTEB(eng, v2)").tasks}
    assert {task.metadata.type for task in tasks} == v2_types
    assert all(task.metadata.eval_langs == ["eng-Latn"] for task in tasks)
    # none falls back to its type's default instruction
    table = load_instruction_table()
    assert [task.metadata.name for task in tasks if task.metadata.name not in table.tasks] == []
