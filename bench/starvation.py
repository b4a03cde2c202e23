"""Thread starvation: 100 concurrent runs whose COPY takes 60 s, and how late the other runs' Databricks polls
start. Two designs in the same run, each in its own process against the same stand-ins:

  syncbot   each blocking client has its own bounded pool; a COPY is submitted with execute_async and watched from
            the event loop with short status calls, so no worker thread is held for a whole COPY;
  0.1.0     one shared pool of min(32, cores + 4) threads (asyncio's default) in which each COPY was waited for
            (the design before this change, reproduced by the worker: a status call that returns only when the
            statement is done, and one shared pool).

Lateness is measured from the moment a poll is due (its sleep ended) to the moment a worker thread starts it;
polls still waiting when the window closes count with the time they have waited so far.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys

from emulators import LocalStack

from ._common import ROOT, add_syncs, bot_env

RUNS = 100
COPY_SECONDS = 60.0
WINDOWS = {"syncbot": 600.0, "0.1.0": 150.0}  # syncbot: until every run ends; 0.1.0 would need ~17 min


def run_variant(stack: LocalStack, variant: str, config: str) -> dict[str, object]:
    env = bot_env(stack, SYNC_CONFIG=config, SYNC_RUN_TIMEOUT_SECONDS="900", SYNC_LOAD_TIMEOUT_SECONDS="900")
    worker = subprocess.run([sys.executable, "-m", "bench.starvation_worker", variant, str(WINDOWS[variant])],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800)
    if worker.returncode != 0:
        raise RuntimeError(worker.stderr[-3000:])
    return dict(json.loads(worker.stdout.strip().splitlines()[-1]))


def run() -> dict[str, dict[str, object]]:
    logging.disable(logging.WARNING)
    results = {}
    with LocalStack(poll_interval_seconds=1.0, poll_max_interval_seconds=2.0, run_timeout_seconds=900) as stack:
        stack.snowflake.copy_seconds = COPY_SECONDS
        durations = [1.0 + (index * 59.0 / (RUNS - 1)) for index in range(RUNS)]  # exports of 1–60 s
        for variant, first_job in (("syncbot", 20_000), ("0.1.0", 21_000)):
            config = add_syncs(stack, RUNS, first_job=first_job, durations=durations, prefix=f"STARVE{first_job}")
            results[variant] = run_variant(stack, variant, config)
    return results


def main() -> None:
    results = run()
    print(f"Thread starvation: {RUNS} runs, COPY {COPY_SECONDS:.0f} s each; Databricks poll lateness (s)")
    for variant, result in results.items():
        print(f"  {variant:8} p50 {result['p50']:.3f}  p99 {result['p99']:.3f}  max {result['max']:.3f}  "
              f"(polls {result['polls']}, still waiting {result['waiting']}; runs {result['statuses']} in "
              f"{result['seconds']:.0f} s)")
        for error in result.get("errors", []):  # type: ignore[attr-defined]
            print(f"           failed: {error}")


if __name__ == "__main__":
    main()
