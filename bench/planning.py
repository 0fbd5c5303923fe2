"""How long Snakemake takes to plan this workflow, against Snakemake's own start-up.

Every cluster job re-reads the Snakefile (the jobstep), and every `snakemake` call plans the DAG,
so the workflow's own parse time is paid over and over; the goal is at most 3 s on top of
Snakemake's start-up. Measured in one run, each a fresh process, best of `--repeat`:

    python bench/planning.py            # from the repository root

  start-up   `snakemake --version`
  plan       `snakemake -n` of the five configured models (demo and the paper's four), nothing built
  no-op      `snakemake -n` of the demo after `make demo` (skipped when results/demo/summary.csv is missing)
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MODELS = "run=[demo,llama3,mistral,qwen2,phi3]"


def seconds(args: list[str], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        result = subprocess.run(
            [sys.executable, "-m", "snakemake", *args], cwd=REPO, capture_output=True, text=True,
            env={**os.environ, "HF_HUB_OFFLINE": "1"},
        )  # fmt: skip
        if result.returncode != 0:
            raise SystemExit(f"snakemake {' '.join(args)} failed:\n{result.stderr[-2000:]}")
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=3, help="runs of each command; the fastest counts")
    args = parser.parse_args()
    startup = seconds(["--version"], args.repeat)
    rows = [("start-up: snakemake --version", startup, None)]
    plan = seconds(["-n", "--quiet", "rules", "--config", MODELS], args.repeat)
    rows.append(("plan: snakemake -n, five models", plan, plan - startup))
    if (REPO / "results/demo/summary.csv").is_file():
        noop = seconds(["-n", "--quiet", "rules"], args.repeat)
        rows.append(("no-op: snakemake -n, finished demo", noop, noop - startup))
    for name, value, extra in rows:
        more = "" if extra is None else f"  (+{extra:.2f} s over start-up; goal <= 3 s)"
        print(f"{name:<40} {value:6.2f} s{more}")


if __name__ == "__main__":
    main()
