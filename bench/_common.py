"""Helpers shared by the benchmarks."""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def summary(values: list[float]) -> str:
    return (f"p50 {percentile(values, 0.50):6.1f}  p99 {percentile(values, 0.99):6.1f}  max {max(values):6.1f}  "
            f"(n={len(values)}, mean {statistics.fmean(values):.1f})")


def scratch_dir(prefix: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=f"syncbot-bench-{prefix}-"))


def peak_rss_mb(pid: int) -> float:
    """VmHWM: the process's peak resident memory so far, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc")
