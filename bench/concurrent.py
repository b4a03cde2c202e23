"""Concurrent runs: 100 runs in flight in one bot process (different targets, emulated jobs of 2–12 s), through
the local stack. The bot runs as its own process so that its memory is measured alone."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

from emulators import LocalStack
from emulators.databricks import JobSpec
from emulators.stack import DEMO_DATABASE, DEMO_SCHEMA

from ._common import scratch_dir

RUNS = 100
FIRST_JOB_ID = 2000
ROOT = Path(__file__).resolve().parent.parent


def run(runs: int = RUNS) -> dict[str, object]:
    logging.disable(logging.WARNING)
    with LocalStack(poll_interval_seconds=0.5, poll_max_interval_seconds=1.0, run_timeout_seconds=600) as stack:
        template = stack.databricks.jobs[101]
        for index in range(runs):
            stack.snowflake.create_table(f"{DEMO_DATABASE}.{DEMO_SCHEMA}.BENCH_{index:03d}")
            stack.databricks.jobs[FIRST_JOB_ID + index] = JobSpec(
                job_id=FIRST_JOB_ID + index, name=f"bench {index}", sql=template.sql,
                duration_seconds=2.0 + index % 11)
        databricks_before, slack_before = len(stack.databricks.calls), len(stack.slack.calls)
        env = {**os.environ, **stack.env(), "SYNC_DB_PATH": str(scratch_dir("concurrent") / "syncbot.db")}
        worker = subprocess.run([sys.executable, "-m", "bench.concurrent_worker", str(runs), str(FIRST_JOB_ID)],
                                cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200)
        if worker.returncode != 0:
            raise RuntimeError(worker.stderr[-3000:])
        result: dict[str, object] = json.loads(worker.stdout.strip().splitlines()[-1])
        databricks_calls = stack.databricks.calls[databricks_before:]
        result["databricks_calls"] = len(databricks_calls)
        result["databricks_runs_get"] = sum(1 for _, path in databricks_calls if path.endswith("runs/get"))
        result["slack_calls"] = len(stack.slack.calls) - slack_before
        result["runs"] = runs
        return result


def main() -> None:
    result = run()
    print(f"Concurrent runs: {result['runs']} in one bot process")
    print(f"  final statuses      {result['statuses']}  ({result['rows']:,} rows in {result['elapsed_seconds']:.1f}s)")
    print(f"  bot peak RSS        {result['peak_rss_mb']:.0f} MB")
    print(f"  event-loop lag      p50 {result['lag_p50_ms']:.1f} ms, p99 {result['lag_p99_ms']:.1f} ms, "
          f"max {result['lag_max_ms']:.1f} ms")
    print(f"  Databricks calls    {result['databricks_calls']} ({result['databricks_runs_get']} runs/get)")
    print(f"  Slack calls         {result['slack_calls']}")


if __name__ == "__main__":
    main()
