"""What the bench scripts measure the same way: the best of several timed calls, a process's peak RSS.

The scripts run as `python bench/<name>.py`, so this folder is on sys.path and they import it as `timing`.
"""

from __future__ import annotations

import time
from pathlib import Path


def best_time(fn, repeats: int):
    """(the fastest of `repeats` timed calls of `fn`, in seconds, the last call's result), after one
    untimed warm-up call that pays for first-call allocations and kernel selection."""
    fn()
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def peak_rss_mb() -> float:
    """This process's peak resident memory so far (MB), from VmHWM in /proc/self/status.

    Not ru_maxrss: it survives fork + exec, so a child process would report its parent's peak.
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise OSError("/proc/self/status has no VmHWM line (peak RSS is read on Linux only)")
