import json
import os
import pickle
import re
from collections import Counter

import pytest
import torch

from l3prune.dataset import TrainSample
from l3prune.dataset.lines import LineFile
from l3prune.dataset.utils import load_dataset

# The original's query instructions, written out here independently of the package.
INSTRUCTIONS = {
    "allnli": [
        "Given a premise, retrieve a hypothesis that is entailed by the premise",
        "Retrieve semantically similar text",
    ],
    "dureader": ["Given a Chinese search query, retrieve web passages that answer the question"],
    "eli5_question_answer": [
        "Provided a user question, retrieve the highest voted answers on Reddit ELI5 forum"
    ],
    "fever": ["Given a claim, retrieve documents that support or refute the claim"],
    "hotpot_qa": ["Given a multi-hop question, retrieve documents that can help answer the question"],
    "miracl": ["Given a question, retrieve Wikipedia passages that answer the question"],
    "mrtydi": ["Given a question, retrieve Wikipedia passages that answer the question"],
    "msmarco_passage": ["Given a web search query, retrieve relevant passages that answer the query"],
    "msmarco_document": ["Given a web search query, retrieve relevant documents that answer the query"],
    "nq": ["Given a question, retrieve Wikipedia passages that answer the question"],
    "quora_duplicates": [
        "Given a question, retrieve questions that are semantically equivalent to the given question",
        "Find questions that have the same meaning as the input question",
    ],
    "squad": ["Retrieve Wikipedia passages that answer the question"],
    "t2ranking": ["Given a Chinese search query, retrieve web passages that answer the question"],
    "trivia_qa": ["Retrieve Wikipedia passages that answer the question"],
}
SIZES = {name: 5 + 3 * k for k, name in enumerate(INSTRUCTIONS)}  # 5, 8, 11, ...: tails for most batch sizes


@pytest.fixture
def echo_dir(tmp_path):
    """Fake echo-data: the 14 files (plus a split file the original does not read), texts naming file and row."""
    root = tmp_path / "echo-data"
    root.mkdir()
    for name, size in SIZES.items():
        rows = [
            {"query": f"{name} q{r}", "positive": f"{name} p{r}", "negative": f"{name} n{r}"}
            for r in range(size)
        ]
        (root / f"{name}.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    (root / "allnli_split1.jsonl").write_text(
        json.dumps({"query": "x", "positive": "y", "negative": "z"}) + "\n"
    )
    return root


def origin(sample: TrainSample) -> tuple[str, int]:
    name, row = re.fullmatch(r"(\w+) p(\d+)", sample.positive).groups()
    return name, int(row)


def test_e5_queries_carry_their_files_instruction_taken_in_turn(echo_dir):
    ds = load_dataset("E5", split="train", file_path=echo_dir, effective_batch_size=1)
    loader = torch.utils.data.DataLoader(ds, batch_size=2, collate_fn=list)  # as the Trainer reads it
    assert next(iter(loader)) == [ds[0], ds[1]]
    assert len(ds) == sum(SIZES.values())
    seen = set()
    for i in range(len(ds)):
        sample = ds[i]
        name, row = origin(sample)
        seen.add((name, row))
        assert sample == TrainSample(
            [INSTRUCTIONS[name][row % len(INSTRUCTIONS[name])], f"{name} q{row}"],
            f"{name} p{row}",
            f"{name} n{row}",
        )
        assert ds.subset_of(i) == name
    assert seen == {(name, row) for name, size in SIZES.items() for row in range(size)}


def test_e5_blocks_come_from_one_file_and_incomplete_tails_are_dropped(echo_dir):
    batch = 4
    ds = load_dataset("E5", file_path=echo_dir, effective_batch_size=batch)
    assert len(ds) == sum(size // batch * batch for size in SIZES.values())
    rows_used = Counter()
    block_names = []
    for start in range(0, len(ds), batch):
        names = {origin(ds[i])[0] for i in range(start, start + batch)} | {
            ds.subset_of(i) for i in range(start, start + batch)
        }
        assert len(names) == 1
        block_names.append(names.pop())
        rows_used.update(origin(ds[i]) for i in range(start, start + batch))
    assert max(rows_used.values()) == 1  # no sample twice
    assert Counter(name for name, _ in rows_used) == {
        name: size // batch * batch for name, size in SIZES.items()
    }
    assert block_names != sorted(block_names, key=list(SIZES).index)  # blocks of different files are shuffled


def test_e5_order_is_fixed_by_the_seed(echo_dir):
    def order(**kwargs):
        ds = load_dataset("E5", file_path=echo_dir, effective_batch_size=4, **kwargs)
        return [origin(ds[i]) for i in range(len(ds))]

    assert order() == order(seed=42) == order(seed=42)
    assert order(seed=1) != order(seed=42)
    assert Counter(name for name, _ in order(seed=1)) == Counter(name for name, _ in order(seed=42))


def test_samples_are_read_from_disk_when_indexed(echo_dir):
    ds = load_dataset("E5", file_path=echo_dir, effective_batch_size=1)
    assert b"fever q" not in pickle.dumps(ds)  # the dataset holds offsets, not text
    fever = echo_dir / "fever.jsonl"
    stat = fever.stat()
    fever.write_text(fever.read_text().replace("fever q3", "FEVER Q3"))  # same size
    os.utime(fever, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    queries = [ds[i].query[1] for i in range(len(ds)) if ds.subset_of(i) == "fever"]
    assert "FEVER Q3" in queries and "fever q3" not in queries


def test_a_file_changed_after_indexing_is_an_error(echo_dir):
    ds = load_dataset("E5", file_path=echo_dir, effective_batch_size=1)
    with open(echo_dir / "nq.jsonl", "a") as f:
        f.write(json.dumps({"query": "q", "positive": "p"}) + "\n")
    index = next(i for i in range(len(ds)) if ds.subset_of(i) == "nq")
    with pytest.raises(
        ValueError,
        match=f"^{re.escape(str(echo_dir / 'nq.jsonl'))} changed on disk after it was indexed; load the dataset again$",
    ):
        ds[index]


def test_missing_e5_directory_lists_the_expected_files(tmp_path):
    expected = ", ".join(f"{name}.jsonl" for name in INSTRUCTIONS)
    with pytest.raises(FileNotFoundError) as e:
        load_dataset("E5", file_path=tmp_path / "nowhere", effective_batch_size=4)
    assert (
        str(e.value) == f"E5 data directory {tmp_path / 'nowhere'} does not exist; it should hold {expected}"
    )


def test_missing_e5_files_are_named_with_the_directory(echo_dir):
    (echo_dir / "fever.jsonl").unlink()
    (echo_dir / "trivia_qa.jsonl").unlink()
    expected = ", ".join(f"{name}.jsonl" for name in INSTRUCTIONS)
    with pytest.raises(FileNotFoundError) as e:
        load_dataset("E5", file_path=echo_dir, effective_batch_size=4)
    assert (
        str(e.value)
        == f"E5 data in {echo_dir} is missing fever.jsonl, trivia_qa.jsonl (of the 14 echo-data files {expected})"
    )


EXPECTED_FIELDS = (
    "expected a JSON object with string 'query' and 'positive' and optional 'negative', 'instruction'"
)


@pytest.mark.parametrize(
    "line, problem",
    [
        ('{"query": "q", "positive": "p"', "Expecting ',' delimiter, column 31"),
        ('{"positive": "p", "negative": "n"}', "'query' is missing"),
        ('{"query": "q", "positive": 3}', "'positive' is not a string"),
        ('{"query": "q", "positive": "p", "negative": ["n"]}', "'negative' is not a string"),
        ('["q", "p", "n"]', "a JSON list, not an object"),
    ],
)
def test_a_malformed_line_is_named_by_file_and_line(echo_dir, line, problem):
    squad = echo_dir / "squad.jsonl"
    lines = squad.read_text().splitlines()
    lines[2] = line
    squad.write_text("\n".join(lines) + "\n")
    ds = load_dataset("E5", file_path=echo_dir, effective_batch_size=1)
    errors = set()
    for i in range(len(ds)):
        try:
            ds[i]
        except ValueError as e:
            errors.add(str(e))
    assert errors == {f"{squad}:3: malformed line ({problem}); {EXPECTED_FIELDS}"}


def test_a_malformed_first_line_fails_at_load(echo_dir):
    (echo_dir / "nq.jsonl").write_bytes(b"\xff\xfe not utf-8\n")
    with pytest.raises(ValueError, match=f"^{re.escape(str(echo_dir / 'nq.jsonl'))}:1: not UTF-8 text"):
        load_dataset("E5", file_path=echo_dir, effective_batch_size=1)


def test_unknown_dataset_bad_split_and_bad_batch_size_are_errors(echo_dir):
    with pytest.raises(ValueError, match=r"^unknown dataset 'e5'; available: E5, Wiki1M, jsonl$"):
        load_dataset("e5", file_path=echo_dir)
    with pytest.raises(
        ValueError,
        match=r"^split 'validation' is not available; the training datasets have only split 'train'$",
    ):
        load_dataset("E5", split="validation", file_path=echo_dir)
    for bad in (0, "4", 2.0, True):
        with pytest.raises(
            ValueError, match=f"^effective_batch_size must be a positive integer, got {re.escape(repr(bad))}$"
        ):
            load_dataset("E5", file_path=echo_dir, effective_batch_size=bad)


def test_too_little_data_for_one_batch_is_an_error(tmp_path):
    (tmp_path / "a.jsonl").write_text('{"query": "q", "positive": "p"}\n' * 3)
    (tmp_path / "b.jsonl").write_text('{"query": "q", "positive": "p"}\n' * 2)
    with pytest.raises(ValueError, match=r"^no sub-dataset has a full batch of 4 samples \(a: 3, b: 2\)$"):
        load_dataset("jsonl", file_path=tmp_path, effective_batch_size=4)


def test_jsonl_file_with_optional_negative_and_instruction(tmp_path):
    path = tmp_path / "mine.jsonl"
    path.write_bytes(
        b'{"query": "q0", "positive": "p0", "negative": "n0", "instruction": "Find it"}\r\n'
        b"\n"
        b'{"query": "q1", "positive": "p1"}\n'
        b"\r\n"
        b'{"query": "q2", "positive": "p2", "negative": null, "instruction": ""}\n'
        b'{"query": "q3", "positive": "p3", "extra": 1}'  # no final newline
    )
    ds = load_dataset("jsonl", file_path=path, effective_batch_size=1, seed=0)
    assert sorted((ds[i] for i in range(len(ds))), key=lambda sample: sample.positive) == [
        TrainSample(["Find it", "q0"], "p0", "n0"),
        TrainSample("q1", "p1", None),
        TrainSample("q2", "p2", None),
        TrainSample("q3", "p3", None),
    ]
    assert {ds.subset_of(i) for i in range(len(ds))} == {"mine"}


def test_jsonl_directory_gives_one_subset_per_file_and_counts_lines_past_blanks(tmp_path):
    (tmp_path / "a.jsonl").write_text('{"query": "a", "positive": "a"}\n' * 4)
    (tmp_path / "b.jsonl").write_text(
        '{"query": "b", "positive": "b"}\n\n\n{"query": "b"}\n' + '{"query": "b", "positive": "b"}\n' * 2
    )
    (tmp_path / "notes.txt").write_text("not data\n")
    ds = load_dataset("jsonl", file_path=tmp_path, effective_batch_size=2)
    assert ds.subset_names == ["a", "b"]
    assert len(ds) == 4 + 4
    errors = set()
    for i in range(len(ds)):
        try:
            assert ds[i].query == ds.subset_of(i)
        except ValueError as e:
            errors.add(str(e))
    assert errors == {f"{tmp_path / 'b.jsonl'}:4: malformed line ('positive' is missing); {EXPECTED_FIELDS}"}


def test_jsonl_missing_path_and_empty_directory_are_errors(tmp_path):
    with pytest.raises(
        FileNotFoundError,
        match=f"^jsonl data {re.escape(str(tmp_path / 'x.jsonl'))} does not exist; give a .jsonl file or a directory of them$",
    ):
        load_dataset("jsonl", file_path=tmp_path / "x.jsonl")
    with pytest.raises(
        FileNotFoundError, match=f"^no \\*.jsonl files in directory {re.escape(str(tmp_path))}$"
    ):
        load_dataset("jsonl", file_path=tmp_path)


def test_wiki1m_sentence_is_its_own_positive(tmp_path):
    path = tmp_path / "wiki1m_for_simcse.txt"
    path.write_text("First sentence .\n\n  Second one with spaces  \nThird.\n")
    ds = load_dataset("Wiki1M", file_path=path, effective_batch_size=1)
    assert sorted(ds[i] for i in range(len(ds))) == [
        TrainSample("First sentence .", "First sentence .", None),
        TrainSample("Second one with spaces", "Second one with spaces", None),
        TrainSample("Third.", "Third.", None),
    ]
    assert len(load_dataset("Wiki1M", file_path=path, effective_batch_size=2)) == 2
    with pytest.raises(FileNotFoundError, match=r"; expected wiki1m_for_simcse.txt \(one sentence a line\)$"):
        load_dataset("Wiki1M", file_path=tmp_path)


@pytest.mark.parametrize("read_size", [1, 2, 3, 7, 1 << 20])
def test_line_index_matches_a_plain_reading_for_any_read_size(tmp_path, read_size):
    text = "alpha\n\nbeta γ\r\n\r\n  \n\ndelta\r\nomega"
    path = tmp_path / "lines.txt"
    path.write_bytes(text.encode())
    lines = LineFile(path, read_size=read_size)
    expected = [(n + 1, line.rstrip("\r")) for n, line in enumerate(text.split("\n")) if line.rstrip("\r")]
    assert [(int(lines.location(r).rsplit(":", 1)[1]), lines[r]) for r in range(len(lines))] == expected
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    assert len(LineFile(empty, read_size=read_size)) == 0
