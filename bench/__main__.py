"""`make bench`: every benchmark, each next to its baseline from the same run, then one summary table."""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path

from . import ack_latency, memory, pacing, polling, scale, starvation, volume
from ._common import percentile


def machine() -> str:
    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    cpu = next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), "?")
    memory_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{os.cpu_count()} cores ({cpu}), {memory_gb:.0f} GiB, Python {platform.python_version()}"


def main() -> None:
    started = time.monotonic()
    print(f"Machine: {machine()}\n", flush=True)
    rows: list[tuple[str, str, str, str]] = []

    acks = ack_latency.run()
    bare, ours = percentile(acks["bare"], 0.99), percentile(acks["syncbot"], 0.99)
    rows.append(("Ack p99, burst of 50 (49 status + 1 sync)", f"{ours:.1f} ms", f"bare Bolt {bare:.1f} ms "
                 f"(×{ours / bare:.2f}; p50 ×{percentile(acks['syncbot'], .5) / percentile(acks['bare'], .5):.2f})",
                 "≤ ×1.1"))
    print("ack latency done", flush=True)

    starve = starvation.run()
    rows.append(("Poll lateness p99, 100 runs with 60 s COPYs", f"{starve['syncbot']['p99']:.2f} s "
                 f"({starve['syncbot']['statuses']})", f"0.1.0 design {starve['0.1.0']['p99']:.1f} s", "≤ 1 s"))
    print("starvation done", flush=True)

    paced = pacing.run()
    rows.append(("50 runs in one channel, Slack limits on: 429s", str(paced["syncbot"]["429s"]),
                 f"unpaced {paced['unpaced']['429s']}", "0"))
    rows.append(("  final parent after the run's end, p95", f"{paced['syncbot']['p95']:.1f} s",
                 f"unpaced {paced['unpaced']['p95']:.1f} s", "≤ 10 s"))
    rows.append(("  replies carrying several steps", f"{paced['syncbot']['batched']} of {paced['syncbot']['replies']}",
                 f"unpaced {paced['unpaced']['batched']} of {paced['unpaced']['replies']}", ""))
    print("pacing done", flush=True)

    big = scale.run()
    rows.append((f"{big['runs']} concurrent runs: statuses", str(big["statuses"]), "", "all SUCCESS"))
    rows.append(("  bot peak RSS", f"{big['peak_mb']:.0f} MB", f"idle {big['idle_mb']:.0f} MB", "≤ 250 MB"))
    rows.append(("  event-loop lag p99", f"≤ {big['lag_p99_ms']:.0f} ms", "", "≤ 100 ms"))
    rows.append(("  poll lateness p99", f"≤ {big['poll_p99_s']:.2f} s", f"{big['polls']} polls", "on schedule"))
    print("scale done", flush=True)

    at_rest = memory.run()
    rows.append(("RSS at rest after one sync, production install", f"{at_rest['production']['after_run_mb']:.0f} MB",
                 f"development {at_rest['development']['after_run_mb']:.0f} MB", ""))
    print("memory done", flush=True)

    for result in polling.run():
        rows.append((f"Polling: {result.name}", f"{result.calls_mean:.1f} calls",
                     f"delay {result.delay_mean:.1f} s (p95 {result.delay_p95:.1f} s)", ""))
    for result in volume.run():
        rows.append((f"{result['rows']:,.0f} rows: bot peak RSS", f"{result['bot_peak_mb']:.0f} MB",
                     f"idle {result['bot_idle_mb']:.0f} MB", "same for both sizes"))
        rows.append((f"{result['rows']:,.0f} rows/s end to end", f"{result['rows'] / result['seconds']:,.0f}",
                     f"DuckDB alone {result['rows'] / result['duckdb_seconds']:,.0f}", ""))

    width = max(len(row[0]) for row in rows)
    print(f"\n{'measure':{width}}  {'syncbot':34}  {'baseline (same run)':44}  target")
    for name, value, baseline, target in rows:
        print(f"{name:{width}}  {value:34}  {baseline:44}  {target}")
    print(f"\n(all in {time.monotonic() - started:.0f} s)")


if __name__ == "__main__":
    main()
