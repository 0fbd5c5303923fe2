"""code_version: a step's code version follows what its command can import, and nothing else."""

import shutil
from pathlib import Path

from l3prune.code_version import code_version

PACKAGE = Path(__file__).resolve().parents[1] / "l3prune"


def copy_of_package(tmp_path: Path) -> Path:
    root = tmp_path / "l3prune"
    shutil.copytree(PACKAGE, root, ignore=shutil.ignore_patterns("__pycache__"))
    return root


def versions(root: Path) -> dict[str, str]:
    code_version.cache_clear()
    return {step: code_version(f"l3prune.commands.{step}", root) for step in ("layerwise", "report")}


def test_a_change_to_code_a_command_imports_changes_its_version_only(tmp_path):
    root = copy_of_package(tmp_path)
    before = versions(root)
    pooling = root / "encoder" / "pooling.py"  # reached through the encoder's lazy exports
    pooling.write_text(pooling.read_text().replace("clamp(min=1e-9)", "clamp(min=1e-8)"))
    after = versions(root)
    assert after["layerwise"] != before["layerwise"]
    assert after["report"] == before["report"]  # the report never imports the encoder


def test_the_demo_assets_version_follows_the_demo_builders_only(tmp_path):
    """The demo_assets rule reruns when the pairs it builds change, not when the hub download does."""
    root = copy_of_package(tmp_path)

    def demo_version():
        code_version.cache_clear()
        return code_version("l3prune.demo.assets", root)

    before = demo_version()
    download = root / "assets" / "hub_model.py"
    download.write_text(download.read_text().replace('"*.tiktoken", ', ""))
    assert demo_version() == before
    pairs = root / "demo" / "wiki_pairs.py"
    pairs.write_text(pairs.read_text().replace("max_words: int = 80", "max_words: int = 90"))
    assert demo_version() != before


def test_comments_docstrings_and_formatting_change_no_version(tmp_path):
    root = copy_of_package(tmp_path)
    before = versions(root)
    core = root / "layerwise" / "core.py"
    source = core.read_text()
    source = source.replace(
        '"""Mean contrastive loss of the encoder', '"""The mean contrastive loss of the encoder'
    )
    source = source.replace(
        "    totals = None\n", "    # summed over batches\n    totals = None  # none yet\n\n"
    )
    core.write_text(source)
    assert versions(root) == before
    code_version.cache_clear()


def test_the_version_is_the_same_in_every_process():
    """Snakemake compares it with the one recorded by an earlier run, in another process."""
    import os
    import subprocess
    import sys

    code = "from l3prune.code_version import code_version; print(code_version('l3prune.commands.training'))"
    runs = [
        subprocess.run(
            [sys.executable, "-c", code],
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
        )
        for seed in ("1", "2", "3")
    ]
    assert len({run.stdout for run in runs}) == 1 and runs[0].stdout.strip()
