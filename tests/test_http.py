"""The operator's side: `doctor` against the stand-ins (all ✓, then each broken piece with its ✗ and fix),
/healthz as the Socket Mode connection drops and comes back, /metrics parsed by prometheus-client, and the HTTP
API with a real HTTP client, bad requests included."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bot.doctor import run_doctor
from bot.settings import load_bot_settings
from emulators import LocalStack
from emulators._net import free_port
from emulators.slack import DEMO_CHANNEL_ID

from .conftest import table_name
from .helpers import ROOT, command, final_parent, run_id_in, running_bot

pytestmark = pytest.mark.e2e
TOKEN = "test-api-token-" + "x" * 24


# ---- doctor ---------------------------------------------------------------------------------------------------------

def doctor_lines(env: dict[str, str]) -> tuple[bool, list[str]]:
    lines: list[str] = []
    ok = asyncio.run(run_doctor(load_bot_settings(env), lines))
    return ok, lines


def test_doctor_against_a_correct_setup_prints_only_ticks_and_exits_0(stack, env, table, tmp_path):
    config = tmp_path / "syncs.toml"
    config.write_text(f'[syncs.plain]\nsnowflake_table = "{table}"\n[syncs.swap]\nsnowflake_table = "{table}"\n'
                      'mode = "replace"\n[syncs.upsert]\nsnowflake_table = "{table}"\nmode = "merge"\n'
                      'merge_keys = ["city_name", "date"]\n'.replace("{table}", table))
    result = subprocess.run([sys.executable, "-m", "bot", "doctor"], cwd=ROOT, capture_output=True, text=True,
                            env={**os.environ, **env, "SYNC_CONFIG": str(config)}, timeout=120)
    lines = result.stdout.strip().splitlines()
    assert result.returncode == 0, result.stdout + result.stderr
    assert lines[-1] == "All checks passed."
    checks = lines[:-1]
    assert checks and all(line.startswith("✓ ") for line in checks)
    text = "\n".join(checks)
    for expected in ("Slack: bot token works", "Socket Mode is on", "Snowflake: signed in as syncbot (password)",
                     "warehouse SYNCBOT_WH usable", "stage ANALYTICS.WEATHER.DATABRICKS_SHARE exists",
                     "file format ANALYTICS.WEATHER.SYNCBOT_PARQUET exists", "LIST @DATABRICKS_SHARE/runs/ works",
                     f"table {table_name(table)} exists", "OWNERSHIP on table", "CREATE TABLE, USAGE on schema",
                     "Databricks job 101 (sync plain) exists", "declares the job parameter(s) run_id",
                     "may run it (CAN_MANAGE_RUN)", "queues runs",
                     "writes under s3://databricks-snowflake-share/runs/<run_id>/"):
        assert expected in text, expected


BreakIt = Callable[[LocalStack, dict[str, str]], dict[str, str]]


def _revoke_insert(stack: LocalStack, env: dict[str, str]) -> dict[str, str]:
    stack.snowflake.engine.table_privileges[table_name(env["SNOWFLAKE_TABLE"])] = {"SELECT"}
    return {}


def _no_run_id(stack: LocalStack, env: dict[str, str]) -> dict[str, str]:
    stack.databricks.jobs[101].parameters = ("region",)
    return {}


def _no_permission(stack: LocalStack, env: dict[str, str]) -> dict[str, str]:
    stack.databricks.jobs[101].permission = "CAN_VIEW"
    return {}


def _no_queue(stack: LocalStack, env: dict[str, str]) -> dict[str, str]:
    stack.databricks.jobs[101].queue = False
    return {}


def _elsewhere(stack: LocalStack, env: dict[str, str]) -> dict[str, str]:
    stack.databricks.jobs[101].sql = stack.databricks.jobs[103].sql
    return {}


def _no_warehouse(stack: LocalStack, env: dict[str, str]) -> dict[str, str]:
    return {"SNOWFLAKE_WAREHOUSE": "NO_SUCH_WH"}


@pytest.mark.parametrize(("break_it", "failed", "fix"), [
    (lambda stack, env: {"SLACK_BOT_TOKEN": "xoxb-wrong"}, "Slack: bot token", "invalid_auth"),
    (lambda stack, env: {"SLACK_APP_TOKEN": "xapp-wrong"}, "Slack: app token and Socket Mode", "connections:write"),
    (_no_run_id, "declares the job parameter(s) run_id", "add the job parameter(s) run_id"),
    (_no_permission, "may run it (CAN_VIEW)", "CAN MANAGE RUN"),
    (_no_queue, "queues runs", "enable the job's queue"),
    (_elsewhere, "writes under s3://databricks-snowflake-share/runs/<run_id>/", "make the job write to"),
    (lambda stack, env: {"SNOWFLAKE_PASSWORD": "wrong"}, "Snowflake: sign in as syncbot", "SNOWFLAKE_PASSWORD"),
    (_no_warehouse, "warehouse", "GRANT USAGE ON WAREHOUSE"),
    (lambda stack, env: {"SNOWFLAKE_STAGE": "NO_STAGE"}, "stage ANALYTICS.WEATHER.NO_STAGE exists",
     "storage integration"),
    (lambda stack, env: {"SNOWFLAKE_FILE_FORMAT": "NO_FORMAT"}, "file format ANALYTICS.WEATHER.NO_FORMAT exists",
     "CREATE FILE FORMAT ANALYTICS.WEATHER.NO_FORMAT TYPE = PARQUET"),
    (lambda stack, env: {"SNOWFLAKE_TABLE": "NO_TABLE"}, "table ANALYTICS.WEATHER.NO_TABLE exists",
     "set create_table = true"),
    (_revoke_insert, "has INSERT, SELECT on table", "GRANT INSERT ON TABLE"),
], ids=["slack-bot-token", "slack-app-token", "no-run-id-parameter", "no-run-permission", "no-queue",
        "export-path-elsewhere", "snowflake-password", "no-warehouse", "no-stage", "no-file-format", "no-table",
        "no-insert-grant"])
def test_doctor_names_each_broken_piece_with_its_fix(stack, env, table, break_it, failed, fix):
    overrides = break_it(stack, env)
    ok, lines = doctor_lines({**env, **overrides})
    assert not ok
    crosses = [line for line in lines if line.startswith("✗")]
    assert any(failed in line and fix in line for line in crosses), "\n".join(lines)


# ---- health and metrics ---------------------------------------------------------------------------------------------

def http_env(env: dict[str, str], **extra: str) -> dict[str, str]:
    return {**env, "SYNC_HTTP_PORT": str(free_port()), **extra}


async def test_healthz_follows_the_socket_mode_connection_and_metrics_count_the_runs(stack, env, table):
    env = http_env(env)
    stack.databricks.set_outcome(101, "success", duration_seconds=0.2)
    async with running_bot(stack, env) as runtime, aiohttp.ClientSession(base_url=runtime.http.url) as http:
        async def health() -> tuple[int, dict]:
            async with http.get("/healthz") as response:
                return response.status, await response.json()

        assert await health() == (200, {"status": "ok", "socket_mode": "connected", "store": "writable",
                                        "active_runs": 0})
        stack.slack.socket_mode_up = False
        await stack.acall(stack.slack.drop_sockets())
        _, body = await eventually_async(health, lambda answer: answer[0] == 503)
        assert "Socket Mode connection is down" in body["reason"]
        stack.slack.socket_mode_up = True
        await eventually_async(health, lambda answer: answer[0] == 200, timeout=60)

        good = run_id_in(await command(stack, "", timeout=30))
        await final_parent(stack, good, "SUCCESS")
        stack.databricks.set_outcome(101, "fail", duration_seconds=0.2)
        bad = run_id_in(await command(stack, ""))
        await final_parent(stack, bad, "FAILED")
        async with http.get("/metrics") as response:
            assert response.status == 200 and response.headers["Content-Type"].startswith("text/plain")
            families = {family.name: family for family in text_string_to_metric_families(await response.text())}
    sync = table.lower()
    runs = {(s.labels.get("sync"), s.labels.get("status")): s.value for s in families["syncbot_runs"].samples
            if s.name == "syncbot_runs_total"}
    assert runs == {(sync, "SUCCESS"): 1.0, (sync, "FAILED"): 1.0}
    started = {s.labels["sync"]: s.value for s in families["syncbot_runs_started"].samples
               if s.name == "syncbot_runs_started_total"}
    assert started == {sync: 2.0}
    calls = {(s.labels["service"], s.labels["call"]): s.value for s in families["syncbot_external_calls"].samples
             if s.name == "syncbot_external_calls_total"}
    assert calls[("databricks", "run-now")] == 2.0 and calls[("snowflake", "copy")] == 1.0
    assert calls[("slack", "chat.update")] >= 2
    durations = [s for s in families["syncbot_run_duration_seconds"].samples
                 if s.name == "syncbot_run_duration_seconds_count"]
    assert sum(s.value for s in durations) == 2.0
    assert "syncbot_lease_takeovers" in families and "syncbot_active_runs" in families


async def eventually_async(probe, accept, timeout: float = 30):  # type: ignore[no-untyped-def]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        answer = await probe()
        if accept(answer):
            return answer
        assert loop.time() < deadline, answer
        await asyncio.sleep(0.1)


async def test_healthz_says_when_the_store_is_not_writable(stack, env, table, monkeypatch):
    from orchestrator import StoreError

    async with running_bot(stack, http_env(env)) as runtime, aiohttp.ClientSession() as http:
        async def broken() -> None:
            raise StoreError("SYNC_DB_PATH=/x: disk I/O error")

        monkeypatch.setattr(runtime.service.store, "check_writable", broken)
        async with http.get(f"{runtime.http.url}/healthz") as response:
            assert response.status == 503
            assert "run store is not writable: SYNC_DB_PATH=/x: disk I/O error" in (await response.json())["reason"]


# ---- the HTTP API ---------------------------------------------------------------------------------------------------

async def test_the_api_starts_a_run_that_reports_in_slack_and_answers_bad_requests_in_json(stack, env, table,
                                                                                          tmp_path: Path):
    other = f"A_{table}"
    stack.snowflake.create_table(table_name(other))
    config = tmp_path / "syncs.toml"
    config.write_text(f'[syncs.main]\nsnowflake_table = "{table}"\nreport_channel = "{DEMO_CHANNEL_ID}"\n'
                      f'[syncs.quiet]\nsnowflake_table = "{other}"\n')
    env = http_env(env, SYNC_API_TOKEN=TOKEN, SYNC_CONFIG=str(config))
    stack.databricks.set_outcome(101, "success", duration_seconds=1.0)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    async with running_bot(stack, env) as runtime, aiohttp.ClientSession(base_url=runtime.http.url) as http:
        async def call(method: str, path: str, **kwargs) -> tuple[int, dict]:  # type: ignore[no-untyped-def]
            async with http.request(method, path, **kwargs) as response:
                return response.status, await response.json()

        assert (await call("POST", "/api/sync", json={"sync": "main"}))[0] == 401
        status, body = await call("POST", "/api/sync", json={"sync": "main"}, headers={"Authorization": "Bearer no"})
        assert (status, body["error"]) == (403, "the API token is not valid")
        status, body = await call("POST", "/api/sync", data=b"{not json", headers=auth)
        assert status == 422 and "not JSON" in body["error"]
        status, body = await call("POST", "/api/sync", json={}, headers=auth)
        assert status == 422 and "main, quiet" in body["error"]
        status, body = await call("POST", "/api/sync", json={"sync": "nope"}, headers=auth)
        assert status == 404 and body["syncs"] == ["main", "quiet"]
        status, body = await call("POST", "/api/sync", data=b'{"sync": "' + b"x" * 70_000 + b'"}', headers=auth)
        assert status == 413 and "64 KiB" in body["error"]
        assert (await call("GET", "/api/sync/not-a-run", headers=auth))[0] == 404

        status, started = await call("POST", "/api/sync", json={"sync": "main"}, headers=auth)
        assert status == 202 and started["status"] == "PENDING" and started["sync"] == "main"
        status, busy = await call("POST", "/api/sync", json={"sync": "main"}, headers=auth)
        assert status == 409 and busy["active_run"]["run_id"] == started["run_id"]
        quiet = (await call("POST", "/api/sync", json={"sync": "quiet"}, headers=auth))[1]["run_id"]

        parent = await final_parent(stack, started["run_id"], "SUCCESS")
        await runtime.service.wait(quiet, 30)
        status, run = await call("GET", f"/api/sync/{started['run_id']}", headers=auth)
        status_list, recent = await call("GET", "/api/sync?limit=2", headers=auth)
        bad_limit = await call("GET", "/api/sync?limit=lots", headers=auth)
    assert parent.channel == DEMO_CHANNEL_ID and "Started by:* api" in str(parent.blocks)  # reports in Slack
    assert stack.slack.find_parent(quiet) is None  # no report_channel: an API-started run has no thread
    assert status == 200 and run["status"] == "SUCCESS" and run["rows_loaded"] == 1000
    assert run["databricks"]["run_id"] and run["snowflake"]["query_ids"]["copy"] and run["steps"]
    assert "context" not in run
    assert status_list == 200 and [r["run_id"] for r in recent["runs"]] == [quiet, started["run_id"]]
    assert bad_limit[0] == 422
    assert stack.snowflake.count_rows(table_name(table)) == 1000
