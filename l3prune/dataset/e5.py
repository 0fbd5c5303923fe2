"""The E5 / echo-embeddings training data (about 1.5M examples in 14 jsonl files, 3.6 GB).

Layout and query instructions as the original reads them; the files come from the link in the
echo-embeddings repository's README. Positives and negatives carry no instruction.
"""

from __future__ import annotations

import os
from pathlib import Path

from .blocks import BlockedDataset
from .jsonl import JsonlFile

# file stem -> query instructions, taken in turn by line where there are two
E5_INSTRUCTIONS: dict[str, tuple[str, ...]] = {
    "allnli": (
        "Given a premise, retrieve a hypothesis that is entailed by the premise",
        "Retrieve semantically similar text",
    ),
    "dureader": ("Given a Chinese search query, retrieve web passages that answer the question",),
    "eli5_question_answer": (
        "Provided a user question, retrieve the highest voted answers on Reddit ELI5 forum",
    ),
    "fever": ("Given a claim, retrieve documents that support or refute the claim",),
    "hotpot_qa": ("Given a multi-hop question, retrieve documents that can help answer the question",),
    "miracl": ("Given a question, retrieve Wikipedia passages that answer the question",),
    "mrtydi": ("Given a question, retrieve Wikipedia passages that answer the question",),
    "msmarco_passage": ("Given a web search query, retrieve relevant passages that answer the query",),
    "msmarco_document": ("Given a web search query, retrieve relevant documents that answer the query",),
    "nq": ("Given a question, retrieve Wikipedia passages that answer the question",),
    "quora_duplicates": (
        "Given a question, retrieve questions that are semantically equivalent to the given question",
        "Find questions that have the same meaning as the input question",
    ),
    "squad": ("Retrieve Wikipedia passages that answer the question",),
    "t2ranking": ("Given a Chinese search query, retrieve web passages that answer the question",),
    "trivia_qa": ("Retrieve Wikipedia passages that answer the question",),
}


class E5Data(BlockedDataset):
    """`file_path`: the echo-data directory holding the 14 `<name>.jsonl` files of E5_INSTRUCTIONS."""

    def __init__(self, file_path: str | os.PathLike, effective_batch_size: int = 1, seed: int = 42):
        directory = Path(file_path)
        expected = [f"{name}.jsonl" for name in E5_INSTRUCTIONS]
        if not directory.is_dir():
            raise FileNotFoundError(
                f"E5 data directory {directory} does not exist; it should hold {', '.join(expected)}"
            )
        missing = [name for name in expected if not (directory / name).is_file()]
        if missing:
            raise FileNotFoundError(
                f"E5 data in {directory} is missing {', '.join(missing)} (of the 14 echo-data files {', '.join(expected)})"
            )
        subsets = {
            name: JsonlFile(directory / f"{name}.jsonl", instructions)
            for name, instructions in E5_INSTRUCTIONS.items()
        }
        super().__init__(subsets, effective_batch_size, seed)
