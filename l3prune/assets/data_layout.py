"""The files a downloaded training data set must hold, checked in the download job, before any model
loads: a wrong or partial archive fails there, in one line, not hours later in a GPU job.

    check_layout("cache/echo-data", "E5")   # the 14 <name>.jsonl files of E5_INSTRUCTIONS, non-empty
"""

from __future__ import annotations

import os
from pathlib import Path

LAYOUTS = ("E5",)  # the data sets whose folder layout is known


def expected_files(layout: str) -> list[str]:
    """The file names the data set `layout` (a dataset_name) reads from its folder."""
    if layout == "E5":
        from ..dataset.e5 import E5_INSTRUCTIONS

        return [f"{name}.jsonl" for name in E5_INSTRUCTIONS]
    raise ValueError(f"unknown data layout {layout!r} (accepted: {', '.join(LAYOUTS)})")


def check_layout(folder: str | os.PathLike, layout: str) -> None:
    """A one-line ValueError naming what is missing or empty in `folder` and what is there instead."""
    folder = Path(folder)
    wanted = expected_files(layout)
    present = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []
    missing = [name for name in wanted if name not in present]
    empty = [name for name in wanted if name in present and (folder / name).stat().st_size == 0]
    if missing or empty:
        problems = []
        if missing:
            problems.append(f"missing {', '.join(missing)}")
        if empty:
            problems.append(f"empty {', '.join(empty)}")
        found = ", ".join(present[:20]) + (f" and {len(present) - 20} more" if len(present) > 20 else "")
        raise ValueError(
            f"{folder} is not the {layout} training data: {'; '.join(problems)} "
            f"(of the {len(wanted)} files {', '.join(wanted)}; found: {found or 'nothing'})"
        )
