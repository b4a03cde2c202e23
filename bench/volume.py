"""The data never passes through the bot: the bot's peak memory during a 1 000-row and a 5 000 000-row sync
through the local stack (the same export job, only its LIMIT changed), and end-to-end rows/s next to DuckDB's own
export + load of the same rows on this machine."""

from __future__ import annotations

import logging
import time

import duckdb

from emulators import LocalStack
from emulators.botprocess import BotProcess, follow, run_id_of
from emulators.databricks import JobSpec, create_workspace
from emulators.stack import DEMO_DATABASE, DEMO_SCHEMA

from ._common import bot_env, rss_mb, scratch_dir

SIZES = (1_000, 5_000_000)
SOURCE = "samples.accuweather.forecast_daily_calendar_imperial_xl"
COLUMNS = ("city_name, country_code, date, latitude, longitude, temperature_max, temperature_min, temperature_avg, "
           "humidity_relative_avg, precipitation_probability, rain_probability, cloud_cover_perc_avg")
EXPORT_SQL = ("INSERT OVERWRITE DIRECTORY 's3://databricks-snowflake-share/runs/{{{{job.parameters.run_id}}}}/' "
              f"USING PARQUET SELECT {COLUMNS} FROM {SOURCE} LIMIT {{rows}}")


def sync_with_a_bot_process(stack: LocalStack, rows: int) -> dict[str, float]:
    job_id, table = 3000 + len(str(rows)), f"BENCH_VOLUME_{rows}"
    stack.databricks.jobs[job_id] = JobSpec(job_id=job_id, name=f"export {rows}", sql=EXPORT_SQL.format(rows=rows),
                                            duration_seconds=0.5)
    stack.snowflake.create_table(f"{DEMO_DATABASE}.{DEMO_SCHEMA}.{table}")
    env = bot_env(stack, DATABRICKS_JOB_ID=str(job_id), SNOWFLAKE_TABLE=table, SYNC_RUN_TIMEOUT_SECONDS="900",
                  SYNC_LOAD_TIMEOUT_SECONDS="900")
    with BotProcess(stack, env, scratch_dir("volume") / "bot.log") as bot:
        bot.wait_connected()
        idle_mb = rss_mb(bot.pid, "VmRSS")
        started = time.perf_counter()
        run_id = run_id_of(stack.call(stack.slack.send_command("")))
        assert run_id, "no run started"
        parent = follow(stack, run_id, timeout=900, bot=bot)
        elapsed = time.perf_counter() - started
        if parent.run["status"] != "SUCCESS":
            raise RuntimeError(parent.text)
        return {"rows": stack.snowflake.count_rows(f"{DEMO_DATABASE}.{DEMO_SCHEMA}.{table}"), "seconds": elapsed,
                "bot_idle_mb": idle_mb, "bot_peak_mb": rss_mb(bot.pid)}


def duckdb_alone(rows: int) -> float:
    """DuckDB exporting the same rows to a local Parquet file and loading them into a table."""
    path = scratch_dir("duckdb") / "export.parquet"
    workspace = create_workspace()
    started = time.perf_counter()
    workspace.execute(f"COPY (SELECT {COLUMNS} FROM {SOURCE} LIMIT {rows}) TO '{path}' "
                      "(FORMAT PARQUET, COMPRESSION SNAPPY)")
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
