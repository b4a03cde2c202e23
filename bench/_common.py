"""Helpers shared by the benchmarks."""

from __future__ import annotations

import functools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from emulators import LocalStack
from emulators.databricks import JobSpec
from emulators.stack import DEMO_DATABASE, DEMO_SCHEMA

ROOT = Path(__file__).resolve().parent.parent


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))] if ordered else float("nan")


def summary(values: list[float]) -> str:
    return (f"p50 {percentile(values, 0.50):6.1f}  p99 {percentile(values, 0.99):6.1f}  max {max(values):6.1f}  "
            f"(n={len(values)}, mean {statistics.fmean(values):.1f})")


def scratch_dir(prefix: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=f"syncbot-bench-{prefix}-"))


@functools.cache
def production_python() -> Path:
    """A fresh venv with `pip install .` (the wheel the project builds, dependencies from PyPI, no dev extras), made
    once per benchmark run. Run it with a cwd outside the checkout so that `bot` comes from the installed wheel."""
    venv = scratch_dir("prod-venv")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    installed = subprocess.run([str(venv / "bin" / "pip"), "install", "--quiet", str(ROOT)], capture_output=True,
                               text=True, timeout=900)
    if installed.returncode:
        raise RuntimeError(f"pip install . failed:\n{installed.stderr[-3000:]}")
    return venv / "bin" / "python"


def rss_mb(pid: int, field: str = "VmHWM") -> float:
    """VmHWM (peak) or VmRSS (now) of a process, from /proc. (ru_maxrss is wrong for a child: Linux carries the
    parent's peak over across fork+exec.)"""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc")


def metrics(url: str) -> dict[str, Any]:
    """A bot's /metrics, parsed by prometheus-client: family name → family."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=30) as response:
        return {family.name: family for family in text_string_to_metric_families(response.read().decode())}


def histogram_quantile(family: Any, fraction: float) -> float:
    """The upper bound of the bucket holding the quantile (what Prometheus' histogram_quantile would bound)."""
    buckets = sorted((float(s.labels["le"]), s.value) for s in family.samples if s.name.endswith("_bucket"))
    total = buckets[-1][1] if buckets else 0
    if not total:
        return float("nan")
    return next(bound for bound, count in buckets if count >= fraction * total)


def add_syncs(stack: LocalStack, count: int, *, first_job: int, durations: list[float], prefix: str,
              extra: str = "") -> str:
    """`count` syncs, each with its own job (of the given duration) and its own new table; their syncs.toml."""
    template = stack.databricks.jobs[101]
    lines = []
    for index in range(count):
        job_id, table = first_job + index, f"{prefix}_{index:04d}"
        stack.databricks.jobs[job_id] = JobSpec(job_id=job_id, name=f"{prefix} {index}", sql=template.sql,
                                                duration_seconds=durations[index % len(durations)])
        stack.snowflake.create_table(f"{DEMO_DATABASE}.{DEMO_SCHEMA}.{table}")
        lines.append(f'[syncs.{prefix.lower()}{index:04d}]\ndatabricks_job_id = {job_id}\n'
                     f'snowflake_table = "{table}"\nallowed_users = ["*"]\nallowed_channels = ["*"]\n{extra}')
    path = scratch_dir(prefix.lower()) / "syncs.toml"
    path.write_text("".join(lines))
    return str(path)


def bot_env(stack: LocalStack, **extra: str) -> dict[str, str]:
    return {**os.environ, **stack.env(), "SYNC_DB_PATH": str(scratch_dir("store") / "syncbot.db"),
            "SYNC_CONFIG": "", **extra}


def api_call(url: str, token: str, method: str = "GET", body: dict[str, Any] | None = None) -> Any:
    request = urllib.request.Request(url, method=method, data=json.dumps(body).encode() if body else None,
                                     headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())
