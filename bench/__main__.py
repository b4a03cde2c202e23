"""`make bench`: all four benchmarks, one after another, then one summary table."""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path

from . import ack_latency, concurrent, polling, volume
from ._common import percentile


def machine() -> str:
    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    cpu = next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), "?")
    memory_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{os.cpu_count()} cores ({cpu}), {memory_gb:.0f} GiB, Python {platform.python_version()}"


def main() -> None:
    started = time.monotonic()
    print(f"Machine: {machine()}\n")
    acks = ack_latency.run()
    many = concurrent.run()
    policies = polling.run()
    volumes = volume.run()

    rows = [
        ("Ack p99, 50 commands at once", f"{percentile(acks['burst'], 0.99):.1f} ms", "≤ 50 ms"),
        ("Ack p99, steady 20/s", f"{percentile(acks['steady'], 0.99):.1f} ms", "≤ 50 ms"),
        ("Ack max (both)", f"{max(acks['burst'] + acks['steady']):.1f} ms", "Slack: 3 s"),
        (f"{many['runs']} concurrent runs: final statuses", str(many["statuses"]), "all SUCCESS"),
        ("  bot peak RSS", f"{many['peak_rss_mb']:.0f} MB", "≤ 200 MB"),
        ("  event-loop lag p99", f"{many['lag_p99_ms']:.1f} ms", "≤ 100 ms"),
        ("  Databricks calls (runs/get)", f"{many['databricks_calls']} ({many['databricks_runs_get']})", ""),
        ("  Slack calls", str(many["slack_calls"]), ""),
    ]
    for result in policies:
        rows.append((f"Polling: {result.name}",
                     f"{result.calls_mean:.1f} calls, delay {result.delay_mean:.1f} s (p95 {result.delay_p95:.1f} s)",
                     ""))
    for result in volumes:
        rows.append((f"{result['rows']:,.0f} rows: bot peak RSS", f"{result['bot_peak_mb']:.0f} MB "
                     f"(idle {result['bot_idle_mb']:.0f} MB)", "same for both"))
        rows.append((f"{result['rows']:,.0f} rows: end to end / DuckDB alone",
                     f"{result['rows'] / result['seconds']:,.0f} / {result['rows'] / result['duckdb_seconds']:,.0f}"
                     " rows/s", ""))
    width = max(len(name) for name, _, _ in rows)
    print(f"{'measure':{width}}  {'result':58}  target")
    for name, value, target in rows:
        print(f"{name:{width}}  {value:58}  {target}")
    print(f"\n(all four in {time.monotonic() - started:.0f} s)")


if __name__ == "__main__":
    main()
