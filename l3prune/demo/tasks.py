"""Offline evaluation tasks from data shipped on PyPI: Lee document similarity (STS) and BBC News.

Rows are plain dicts, written as jsonl by the demo builder:
    STS             {sentence1, sentence2, score}
    classification  {text, label, split}      split: "train" or "test"
    clustering      {text, label}
"""

from __future__ import annotations

import random
from pathlib import Path

from .wiki_pairs import truncate_words


def read_lee_documents(path: str | Path) -> list[str]:
    """lee.cor: one news document per line, latin-1."""
    return [line.strip() for line in Path(path).read_text(encoding="latin-1").splitlines() if line.strip()]


def read_similarity_matrix(path: str | Path) -> list[list[float]]:
    """A whitespace-separated square matrix of human ratings, one row per line."""
    return [
        [float(value) for value in line.split()]
        for line in Path(path).read_text().splitlines()
        if line.strip()
    ]


def lee_sts_pairs(documents: list[str], matrix: list[list[float]]) -> list[dict]:
    """Every pair i < j with its human similarity.

    The rating of a pair is the mean of its two cells; gensim ships the ratings as an upper
    triangle (zeros below the diagonal), where the rating is the upper cell alone.
    """
    n = len(documents)
    if len(matrix) != n or any(len(row) != n for row in matrix):
        shape = f"{len(matrix)}x{sorted({len(row) for row in matrix})}"
        raise ValueError(f"similarity matrix must be {n}x{n} for {n} documents, got {shape}")
    upper_only = all(matrix[j][i] == 0 for i in range(n) for j in range(i + 1, n))
    return [
        {
            "sentence1": documents[i],
            "sentence2": documents[j],
            "score": matrix[i][j] if upper_only else (matrix[i][j] + matrix[j][i]) / 2,
        }
        for i in range(n)
        for j in range(i + 1, n)
    ]


def read_class_folders(data_dir: str | Path) -> dict[str, list[str]]:
    """{label: texts} of a tree `<label>/*.txt`, files in name order, whitespace collapsed.

    A file's first line is its title; it becomes the text's first sentence. Files are UTF-8; the
    odd one in cp1252 (a bare pound sign) is read as such.
    """
    data_dir = Path(data_dir)
    classes = {}
    for folder in sorted(p for p in data_dir.iterdir() if p.is_dir()):
        texts = []
        for file in sorted(folder.glob("*.txt")):
            raw = file.read_bytes()
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                text = raw.decode("cp1252")
            title, _, body = text.strip().partition("\n")
            title = title.strip()
            if title and title[-1] not in ".?!":
                title += "."
            texts.append(" ".join(f"{title} {body}".split()))
        if texts:
            classes[folder.name] = texts
    if len(classes) < 2:
        raise ValueError(
            f"{data_dir} must hold at least 2 class folders with .txt files, found {sorted(classes)}"
        )
    return classes


def bbc_tasks(
    classes: dict[str, list[str]], n_train: int, n_test: int, n_clustering: int, max_words: int, seed: int = 0
) -> tuple[list[dict], list[dict]]:
    """(classification rows, clustering rows): a seeded shuffle of each class, cut into disjoint parts.

    Per class: the first `n_train` documents are the training split, the next `n_test` the test
    split, the next `n_clustering` the clustering set. Texts keep their first `max_words` words.
    """
    needed = n_train + n_test + n_clustering
    rng = random.Random(seed)
    classification, clustering = [], []
    for label, texts in classes.items():
        if len(texts) < needed:
            raise ValueError(f"class {label!r} has {len(texts)} documents, {needed} needed")
        order = rng.sample(range(len(texts)), needed)
        cut = [truncate_words(texts[i], max_words) for i in order]
        classification += [{"text": t, "label": label, "split": "train"} for t in cut[:n_train]]
        classification += [
            {"text": t, "label": label, "split": "test"} for t in cut[n_train : n_train + n_test]
        ]
        clustering += [{"text": t, "label": label} for t in cut[n_train + n_test :]]
    return classification, clustering
