"""Scale in one process: 1,000 concurrent runs over 1,000 tables (a generated syncs.toml) in one `python -m bot`,
started over the HTTP API. Figures: the bot's peak memory, event-loop lag and poll lateness (from its own /metrics),
and the runs' final statuses.

The bot is the production install (`pip install .` in a fresh venv, see _common.production_python): the development
venv also holds pyarrow and numpy (fakesnow's), which the Snowflake connector imports whenever it finds them.

The runs report in no Slack thread: Slack allows about 50 chat.update calls a minute per workspace, so 1,000 threads
would spend over 20 minutes on their parents' updates alone (bench/pacing.py measures Slack)."""

from __future__ import annotations

import logging
import secrets
import sqlite3
import time
from collections import Counter

from emulators import LocalStack
from emulators._net import free_port
from emulators.botprocess import BotProcess

from ._common import add_syncs, api_call, bot_env, histogram_quantile, metrics, production_python, rss_mb, scratch_dir

RUNS = 1000
EXPORT_SQL = ("INSERT OVERWRITE DIRECTORY 's3://databricks-snowflake-share/runs/{{job.parameters.run_id}}/' "
              "USING PARQUET SELECT city_name, country_code, date, latitude, longitude, temperature_max, "
              "temperature_min, temperature_avg, humidity_relative_avg, precipitation_probability, rain_probability, "
              "cloud_cover_perc_avg FROM samples.accuweather.forecast_daily_calendar_imperial LIMIT 100")


def statuses(db_path: str) -> Counter[str]:
    with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True) as db:
        return Counter(status for (status,) in db.execute("SELECT status FROM runs"))


def run() -> dict[str, object]:
    logging.disable(logging.WARNING)
    with LocalStack(poll_interval_seconds=5.0, poll_max_interval_seconds=10.0, run_timeout_seconds=1800) as stack:
        durations = [30.0 + (index % 91) for index in range(RUNS)]  # exports of 30 s – 2 min
        config = add_syncs(stack, RUNS, first_job=40_000, durations=durations, prefix="SCALE")
        for job_id in range(40_000, 40_000 + RUNS):
            stack.databricks.jobs[job_id].sql = EXPORT_SQL
        port, token = free_port(), secrets.token_urlsafe(24)
        env = bot_env(stack, SYNC_CONFIG=config, SYNC_HTTP_PORT=str(port), SYNC_API_TOKEN=token,
                      SYNC_RUN_TIMEOUT_SECONDS="1800", SYNC_LOAD_TIMEOUT_SECONDS="1800")
        url = f"http://127.0.0.1:{port}"
        with BotProcess(stack, env, scratch_dir("scale") / "bot.log", python=production_python(),
                        cwd=scratch_dir("cwd")) as bot:
            bot.wait_connected()
            idle_mb = rss_mb(bot.pid, "VmRSS")
            started = time.monotonic()
            for index in range(RUNS):
                api_call(f"{url}/api/sync", token, "POST", {"sync": f"scale{index:04d}"})
            start_seconds = time.monotonic() - started
            deadline = time.monotonic() + 1800
            while (counts := statuses(env["SYNC_DB_PATH"])) and sum(
                    counts[status] for status in ("SUCCESS", "FAILED", "CANCELLED")) < RUNS:
                if time.monotonic() > deadline or bot.process.poll() is not None:
                    break
                time.sleep(2)
            elapsed = time.monotonic() - started
            families = metrics(url)
            peak_mb = rss_mb(bot.pid)
    return {"runs": RUNS, "statuses": dict(counts), "seconds": elapsed, "start_seconds": start_seconds,
            "idle_mb": idle_mb, "peak_mb": peak_mb,
            "lag_p50_ms": histogram_quantile(families["syncbot_event_loop_lag_seconds"], 0.5) * 1000,
            "lag_p99_ms": histogram_quantile(families["syncbot_event_loop_lag_seconds"], 0.99) * 1000,
            "poll_p99_s": histogram_quantile(families["syncbot_poll_lateness_seconds"], 0.99),
            "polls": int(sum(s.value for s in families["syncbot_poll_lateness_seconds"].samples
                             if s.name.endswith("_count")))}


def main() -> None:
    result = run()
    print(f"Scale: {result['runs']} concurrent runs in one bot process (started in {result['start_seconds']:.0f} s "
          f"over the HTTP API)")
    print(f"  final statuses       {result['statuses']} after {result['seconds']:.0f} s")
    print(f"  bot memory           idle {result['idle_mb']:.0f} MB, peak {result['peak_mb']:.0f} MB")
    print(f"  event-loop lag       p50 ≤ {result['lag_p50_ms']:.0f} ms, p99 ≤ {result['lag_p99_ms']:.0f} ms "
          "(histogram bucket bounds)")
    print(f"  poll lateness        p99 ≤ {result['poll_p99_s']:.3f} s over {result['polls']} polls")


if __name__ == "__main__":
    main()
