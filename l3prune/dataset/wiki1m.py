"""Wiki1M (`wiki1m_for_simcse.txt`, one sentence a line): the unsupervised alternative to E5,
where a sentence is its own positive and there is no hard negative."""

from __future__ import annotations

import os
from pathlib import Path

from .blocks import BlockedDataset
from .lines import LineFile
from .sample import TrainSample


class SentenceFile:
    """The sentences of a text file, one a line, each as TrainSample(sentence, sentence, None)."""

    def __init__(self, path: str | os.PathLike):
        self.lines = LineFile(path)

    def __len__(self) -> int:
        return len(self.lines)

    def __getitem__(self, row: int) -> TrainSample:
        sentence = self.lines[row].strip()
        return TrainSample(sentence, sentence, None)


class Wiki1M(BlockedDataset):
    """`file_path`: the wiki1m_for_simcse.txt file."""

    def __init__(self, file_path: str | os.PathLike, effective_batch_size: int = 1, seed: int = 42):
        path = Path(file_path)
        if not path.is_file():
            raise FileNotFoundError(
                f"Wiki1M file {path} does not exist; expected wiki1m_for_simcse.txt (one sentence a line)"
            )
        super().__init__({path.stem: SentenceFile(path)}, effective_batch_size, seed)
