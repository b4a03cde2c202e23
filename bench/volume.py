"""The data never passes through the bot: the bot's peak memory during a 1 000-row and a 5 000 000-row sync
through the local stack (the same export job, only its LIMIT changed), and end-to-end rows/s next to DuckDB's own
export + load of the same rows on this machine."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import duckdb

from emulators import LocalStack
from emulators.databricks import JobSpec, create_workspace
from emulators.stack import DEMO_DATABASE, DEMO_SCHEMA

from ._common import peak_rss_mb, scratch_dir

ROOT = Path(__file__).resolve().parent.parent
SIZES = (1_000, 5_000_000)
SOURCE = "samples.accuweather.forecast_daily_calendar_imperial_xl"
EXPORT_SQL = ("INSERT OVERWRITE DIRECTORY 's3://databricks-snowflake-share/runs/{{{{job.parameters.run_id}}}}/' "
              "USING PARQUET SELECT * FROM " + SOURCE + " LIMIT {rows}")


def sync_with_a_bot_process(stack: LocalStack, rows: int) -> dict[str, float]:
    job_id, table = 3000 + len(str(rows)), f"BENCH_VOLUME_{rows}"
    stack.databricks.jobs[job_id] = JobSpec(job_id=job_id, name=f"export {rows}", sql=EXPORT_SQL.format(rows=rows),
                                            duration_seconds=0.5)
    stack.snowflake.create_table(f"{DEMO_DATABASE}.{DEMO_SCHEMA}.{table}")
    workdir = scratch_dir("volume")
    env = {**os.environ, **stack.env(), "DATABRICKS_JOB_ID": str(job_id), "SNOWFLAKE_TABLE": table,
           "SYNC_DB_PATH": str(workdir / "syncbot.db"), "SYNC_RUN_TIMEOUT_SECONDS": "900"}
    sockets_before = stack.slack.connections
    with (workdir / "bot.log").open("w") as log:
        bot = subprocess.Popen([sys.executable, "-m", "bot"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while not [s for s in stack.slack.connections if s not in sockets_before]:
            if bot.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError((workdir / "bot.log").read_text()[-2000:])
            time.sleep(0.05)
        idle_mb = peak_rss_mb(bot.pid)
        started = time.perf_counter()
        ack = stack.call(stack.slack.send_command(""))
        run_id = re.search(r"`(\d{4}-[a-z0-9]{6})`", ack["text"]).group(1)  # type: ignore[union-attr]
        while not ((parent := stack.slack.find_parent(run_id)) and parent.shows_final_run):
            time.sleep(0.05)
        elapsed = time.perf_counter() - started
        if "SUCCESS" not in parent.text.split(":", 1)[0]:
            raise RuntimeError(parent.text)
        return {"rows": stack.snowflake.count_rows(f"{DEMO_DATABASE}.{DEMO_SCHEMA}.{table}"), "seconds": elapsed,
                "bot_idle_mb": idle_mb, "bot_peak_mb": peak_rss_mb(bot.pid)}
    finally:
        bot.terminate()
        bot.wait(30)


def duckdb_alone(rows: int) -> float:
    """DuckDB exporting the same rows to a local Parquet file and loading them into a table."""
    path = scratch_dir("duckdb") / "export.parquet"
    workspace = create_workspace()
    started = time.perf_counter()
    workspace.execute(f"COPY (SELECT * FROM {SOURCE} LIMIT {rows}) TO '{path}' (FORMAT PARQUET, COMPRESSION SNAPPY)")
    duckdb.connect().execute(f"CREATE TABLE loaded AS SELECT * FROM read_parquet('{path}')")
    return time.perf_counter() - started


def run() -> list[dict[str, float]]:
    logging.disable(logging.WARNING)
    results = []
    with LocalStack(poll_interval_seconds=0.5, poll_max_interval_seconds=1.0, run_timeout_seconds=900) as stack:
        for rows in SIZES:
            result = sync_with_a_bot_process(stack, rows)
            result["duckdb_seconds"] = duckdb_alone(rows)
            results.append(result)
    return results


def main() -> None:
    print("Data volume: the bot's memory does not depend on the rows moved")
    print(f"{'rows':>10} {'bot idle':>9} {'bot peak':>9} {'end to end':>11} {'rows/s':>10} {'DuckDB alone':>13} "
          f"{'rows/s':>10}")
    for r in run():
        stack_rate, duckdb_rate = r["rows"] / r["seconds"], r["rows"] / r["duckdb_seconds"]
        print(f"{r['rows']:>10,.0f} {r['bot_idle_mb']:>7.0f}MB {r['bot_peak_mb']:>7.0f}MB {r['seconds']:>10.1f}s "
              f"{stack_rate:>10,.0f} {r['duckdb_seconds']:>12.2f}s {duckdb_rate:>10,.0f}")


if __name__ == "__main__":
    main()
