"""Query/positive[/negative] pairs from local jsonl files: users' own data and the offline demo.

One JSON object a line: {"query": str, "positive": str, "negative": str | null, "instruction": str}
with "negative" and "instruction" optional. A file is one sub-dataset; a directory gives one
sub-dataset per `*.jsonl` file in it, named by the file's stem.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

from .blocks import BlockedDataset
from .lines import LineFile
from .sample import TrainSample

_EXPECTED = "expected a JSON object with string 'query' and 'positive' and optional 'negative', 'instruction'"


class JsonlFile:
    """The samples of one jsonl file, parsed when read.

    A query gets its line's "instruction" or else the file's `instructions`, taken in turn by
    row (row 0 the first, row 1 the second, ...), as the original does for allnli and quora.
    """

    def __init__(self, path: str | os.PathLike, instructions: Sequence[str] = ()):
        self.lines = LineFile(path)
        self.instructions = tuple(instructions)

    def __len__(self) -> int:
        return len(self.lines)

    def __getitem__(self, row: int) -> TrainSample:
        try:
            record = json.loads(self.lines[row])
        except json.JSONDecodeError as e:
            raise ValueError(
                f"{self.lines.location(row)}: malformed line ({e.msg}, column {e.colno}); {_EXPECTED}"
            ) from None
        problem = _record_problem(record)
        if problem:
            raise ValueError(f"{self.lines.location(row)}: malformed line ({problem}); {_EXPECTED}")
        instruction = record.get("instruction") or (
            self.instructions[row % len(self.instructions)] if self.instructions else ""
        )
        query = [instruction, record["query"]] if instruction else record["query"]
        return TrainSample(query, record["positive"], record.get("negative"))


def _record_problem(record) -> str | None:
    if not isinstance(record, dict):
        return f"a JSON {type(record).__name__}, not an object"
    for key in ("query", "positive"):
        if not isinstance(record.get(key), str):
            return f"'{key}' is missing" if key not in record else f"'{key}' is not a string"
    for key in ("negative", "instruction"):
        if record.get(key) is not None and not isinstance(record[key], str):
            return f"'{key}' is not a string"
    return None


class JsonlData(BlockedDataset):
    """`file_path`: a .jsonl file, or a directory whose `*.jsonl` files are the sub-datasets."""

    def __init__(self, file_path: str | os.PathLike, effective_batch_size: int = 1, seed: int = 42):
        path = Path(file_path)
        if path.is_dir():
            files = sorted(path.glob("*.jsonl"))
            if not files:
                raise FileNotFoundError(f"no *.jsonl files in directory {path}")
        elif path.is_file():
            files = [path]
        else:
            raise FileNotFoundError(
                f"jsonl data {path} does not exist; give a .jsonl file or a directory of them"
            )
        super().__init__({f.stem: JsonlFile(f) for f in files}, effective_batch_size, seed)
