"""bench/gpu.py, the one-run GPU check, run on the CPU with its tiny shape (--smoke): every part is
reported with figures that agree with each other, a failing part fails the run without hiding the
others, and an out-of-memory error is a result only where it is one (the uncached training step)."""

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "bench" / "gpu.py"
ROW = re.compile(
    r"^(?P<part>\S.*?)\s+(?P<time>\d[\d.e+-]*) (?P<unit>s/batch|s/step|s)\s+(?P<rate>\d+\.\d+) (?P<rate_unit>\S+)"
    r"\s+(?P<peak>\d+\.\d+) GiB \(from (?P<start>\d+\.\d+)\)\s+(?P<note>.*)$"
)
SMOKE_BATCH, SMOKE_TEXTS, SMOKE_TOKENS = 4, 16, 32


def load_bench():
    spec = importlib.util.spec_from_file_location("bench_gpu", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_gpu"] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


def run_bench(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )


def table(stdout: str) -> dict[str, dict]:
    rows = {}
    for line in stdout.splitlines():
        match = ROW.match(line)
        if match:
            row = match.groupdict()
            part = row.pop("part")
            rows[part] = {k: v if k in ("unit", "rate_unit", "note") else float(v) for k, v in row.items()}
    return rows


def close(a: float, b: float, rel: float = 0.01) -> bool:
    return abs(a - b) <= rel * max(abs(a), abs(b))


def test_smoke_run_reports_every_part_with_figures_that_agree():
    result = run_bench("--smoke")
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    assert f"tokens per text [{SMOKE_TOKENS}]" in out  # every synthetic text is cut to exactly the limit
    rows = table(out)
    cached_part = "train, cached loss (mini 2)"
    expected = ["layerwise loss, 4 layers", "encode, 4 layers", "encode, 2 layers", "train, uncached loss"]
    if load_bench().cached_loss_missing() is None:
        expected.append(cached_part)
    else:
        assert re.search(r"^train, cached loss \(mini 2\)\s+skipped: .*loss_mini_batch_size", out, re.M)
    assert sorted(rows) == sorted(expected), out
    for name, row in rows.items():
        assert row["time"] > 0 and row["rate"] > 0 and row["peak"] >= row["start"] > 0, (name, row)
        assert "FAILED" not in row["note"]
    # rate x time: the triples of one batch, the texts encoded, the triples of one step
    layerwise = rows["layerwise loss, 4 layers"]
    assert (layerwise["unit"], layerwise["rate_unit"]) == ("s/batch", "triples/s")
    assert close(layerwise["rate"] * layerwise["time"], SMOKE_BATCH)
    for name in ("encode, 4 layers", "encode, 2 layers"):
        assert rows[name]["rate_unit"] == "texts/s" and close(
            rows[name]["rate"] * rows[name]["time"], SMOKE_TEXTS
        )
    for name in {"train, uncached loss", cached_part} & rows.keys():
        row = rows[name]
        assert row["unit"] == "s/step" and close(row["rate"] * row["time"], SMOKE_BATCH)
        losses = re.search(r"step 2 of 2 timed; losses (\S+) (\S+);", row["note"])
        assert losses and all(float(x) > 0 for x in losses.groups()), row["note"]
    # the ratios are those of the table's own figures
    speedup = float(
        re.search(r"^encode, 2 layers against 4 layers: (\d+\.\d+)x the texts/s", out, re.M).group(1)
    )
    assert close(speedup, rows["encode, 2 layers"]["rate"] / rows["encode, 4 layers"]["rate"], 0.02)
    if cached_part in rows:
        times, peaks = re.search(
            r"cached against uncached loss: (\d+\.\d+)x the time, (\d+\.\d+)x the peak", out
        ).groups()
        cached, uncached = rows[cached_part], rows["train, uncached loss"]
        assert close(float(times), cached["time"] / uncached["time"], 0.02)
        assert close(float(peaks), cached["peak"] / uncached["peak"], 0.02)


def test_a_failing_part_fails_the_run_and_the_others_still_report():
    # 9 of 4 layers: LLMEncoder.prune refuses it, so only the pruned encode fails
    result = run_bench("--smoke", "--parts", "encode", "--pruned-layers", "9")
    assert result.returncode == 1
    rows = table(result.stdout)
    assert list(rows) == ["encode, 4 layers"] and rows["encode, 4 layers"]["rate"] > 0
    failed = re.search(r"^encode, 9 layers .*FAILED: (.*)$", result.stdout, re.M)
    assert failed and "invalid prune value 9 for a model with 4 layers" in failed.group(1)
    assert "FAILED parts: encode, 9 layers" in result.stdout
    assert "Traceback" in result.stderr and "layerwise" not in result.stdout  # --parts left it out


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without a GPU")
def test_the_real_run_without_a_gpu_is_one_line_pointing_to_smoke():
    result = run_bench()
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "--device cuda needs exactly one visible GPU, torch sees 0" in lines[0]
    assert "--smoke" in lines[0]


@pytest.mark.parametrize(
    ("error", "oom_is_result", "status"),
    [
        (torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"), True, "out of memory"),
        (torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"), False, "failed"),
        # as a wrapper that is no OutOfMemoryError words it
        (RuntimeError("CUDA error: out of memory"), True, "out of memory"),
        (ValueError("bad value"), True, "failed"),
    ],
)
def test_out_of_memory_is_a_result_only_where_the_part_says_so(
    error, oom_is_result, status, tmp_path, capsys
):
    bench_module = load_bench()
    bench = bench_module.Bench(
        bench_module.parse_args(["--smoke"]), bench_module.SMOKE, tmp_path, bench_module.PeakMemory("cpu")
    )

    def fail():
        raise error

    row = bench_module.run_part(
        bench, bench_module.Row("train, uncached loss"), fail, oom_is_result=oom_is_result
    )
    assert row.status == status
    assert row.note == str(error)
    assert row.peak_gib > 0  # the memory reached before the failure is still reported
    assert ("Traceback" in capsys.readouterr().err) == (status == "failed")
