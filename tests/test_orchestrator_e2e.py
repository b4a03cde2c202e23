"""The orchestrator through the emulators with the real clients: databricks-sdk, the Snowflake connector."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from emulators import LocalStack
from orchestrator import RunStatus, build_service, load_settings
from orchestrator.service import RunEvent, SyncService

from .conftest import eventually, table_name

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parent.parent


def service_for(env: dict[str, str], **overrides: str) -> tuple[SyncService, list[RunStatus]]:
    service = build_service(load_settings({**env, **overrides}))
    statuses: list[RunStatus] = []

    def record(event: RunEvent) -> None:
        if event.kind in ("created", "status"):
            statuses.append(event.run.status)

    service.subscribe(record)
    return service, statuses


async def test_a_run_moves_through_every_status_and_loads_exactly_the_exported_rows(stack: LocalStack, env, table):
    service, statuses = service_for(env)
    run = (await service.start_sync(requested_by="U1")).run
    assert run.status is RunStatus.PENDING  # returned at once, before any work

    final = await service.wait(run.run_id, timeout=60)

    assert final.status is RunStatus.SUCCESS, final.error
    assert statuses == [RunStatus.PENDING, RunStatus.EXPORTING, RunStatus.LOADING, RunStatus.SUCCESS]
    assert stack.snowflake.count_rows(table_name(table)) == 1000
    assert (final.rows_loaded, final.files_loaded) == (1000, 1)
    assert final.snowflake_query_id and final.databricks_run_id and final.run_page_url
    assert len(stack.databricks.runs_for(run.run_id)) == 1
    copy = [q for q in stack.snowflake.queries if q["sql"].startswith(f"COPY INTO {table} ")][-1]
    assert copy["sql"] == (f"COPY INTO {table} FROM @DATABRICKS_SHARE/runs/{run.run_id}/ "
                           "FILE_FORMAT=(TYPE=PARQUET) MATCH_BY_COLUMN_NAME=CASE_INSENSITIVE")
    assert copy["query_tag"] == f"syncbot run {run.run_id}"
    assert any("RUNNING" in step.message for step in final.steps)
    # History survives: a new service on the same database sees the run as it ended.
    reopened = build_service(load_settings(env)).get(run.run_id)
    assert reopened is not None and reopened.status is RunStatus.SUCCESS and reopened.rows_loaded == 1000


@pytest.mark.parametrize(("outcome", "message", "expected"), [
    ("fail", "Task export failed: [TABLE_OR_VIEW_NOT_FOUND] samples.x", "[TABLE_OR_VIEW_NOT_FOUND] samples.x"),
    ("skipped", "", "max_concurrent_runs is 1"),
    ("internal_error", "", "driver became unresponsive"),
    ("timedout", "", "TIMEDOUT"),
    ("canceled", "", "cancelled by a workspace admin"),
])
async def test_a_databricks_run_that_does_not_succeed_fails_the_sync_with_its_message(
        stack: LocalStack, env, table, outcome, message, expected):
    stack.databricks.set_outcome(101, outcome, message, duration_seconds=0.3)
    service, _ = service_for(env)
    run = (await service.start_sync()).run
    final = await service.wait(run.run_id, timeout=30)
    assert final.status is RunStatus.FAILED
    assert expected in final.error
    assert "Databricks run" in final.error
    assert stack.snowflake.count_rows(table_name(table)) == 0
    assert stack.s3.keys(f"runs/{run.run_id}/") == []


async def test_a_hanging_job_times_out_and_its_databricks_run_is_cancelled(stack: LocalStack, env, table):
    stack.databricks.set_outcome(101, "hang")
    service, _ = service_for(env, SYNC_RUN_TIMEOUT_SECONDS="2")
    run = (await service.start_sync()).run
    final = await service.wait(run.run_id, timeout=30)
    assert final.status is RunStatus.FAILED
    assert "timed out after 2s" in final.error
    (databricks_run,) = stack.databricks.runs_for(run.run_id)
    assert (databricks_run.life_cycle_state, databricks_run.result_state) == ("TERMINATED", "CANCELED")


async def test_cancel_during_export_cancels_the_databricks_run(stack: LocalStack, env, table):
    stack.databricks.set_outcome(101, "hang")
    service, _ = service_for(env)
    run = (await service.start_sync()).run
    await eventually(lambda: service.get(run.run_id).status is RunStatus.EXPORTING)
    await service.cancel(run.run_id, requested_by="U2")
    final = await service.wait(run.run_id, timeout=30)
    assert final.status is RunStatus.CANCELLED
    assert "Cancelled by U2" in final.error
    assert stack.databricks.runs_for(run.run_id)[0].result_state == "CANCELED"
    assert stack.snowflake.count_rows(table_name(table)) == 0


async def test_databricks_rate_limiting_for_a_while_does_not_fail_the_run(stack: LocalStack, env, table):
    stack.databricks.throttle("runs/get", times=4, retry_after=1)
    stack.databricks.throttle("run-now", times=2, retry_after=1)
    service, _ = service_for(env)
    run = (await service.start_sync()).run
    final = await service.wait(run.run_id, timeout=60)
    assert final.status is RunStatus.SUCCESS, final.error
    assert stack.snowflake.count_rows(table_name(table)) == 1000
    assert len(stack.databricks.runs_for(run.run_id)) == 1


async def test_an_export_that_wrote_no_files_fails_instead_of_reporting_success(stack: LocalStack, env, table):
    service, _ = service_for(env, DATABRICKS_JOB_ID="103")
    run = (await service.start_sync()).run
    final = await service.wait(run.run_id, timeout=30)
    assert final.status is RunStatus.FAILED
    assert f"the export wrote no files under @DATABRICKS_SHARE/runs/{run.run_id}/" in final.error


async def test_a_parquet_type_mismatch_fails_with_a_readable_message(stack: LocalStack, env, table):
    service, _ = service_for(env, DATABRICKS_JOB_ID="102")
    run = (await service.start_sync()).run
    final = await service.wait(run.run_id, timeout=30)
    assert final.status is RunStatus.FAILED
    assert "do not fit the table's column types" in final.error
    assert stack.snowflake.count_rows(table_name(table)) == 0


async def test_a_second_request_for_the_same_target_returns_the_active_run(stack: LocalStack, env, table):
    service, _ = service_for(env)
    first = await service.start_sync()
    second = await service.start_sync()
    assert first.created and not second.created
    assert second.run.run_id == first.run.run_id
    await service.wait(first.run.run_id, timeout=60)
    assert stack.snowflake.count_rows(table_name(table)) == 1000


def _status_in_db(db_path: str, run_id: str | None = None) -> tuple[str, str] | None:
    if not Path(db_path).exists():
        return None
    with sqlite3.connect(db_path) as db:
        try:
            row = db.execute("SELECT run_id, status FROM runs ORDER BY created_at DESC LIMIT 1").fetchone()
        except sqlite3.OperationalError:
            return None
    return row


def _kill_when(env: dict[str, str], status: str) -> str:
    """Start `python -m orchestrator start` in a real subprocess, SIGKILL it once the run reaches `status`."""
    process = subprocess.Popen([sys.executable, "-m", "orchestrator", "start"], cwd=ROOT,
                               env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while (row := _status_in_db(env["SYNC_DB_PATH"])) is None or row[1] != status:
            assert process.poll() is None, process.stdout.read().decode() if process.stdout else ""
            assert time.monotonic() < deadline, f"never reached {status}: {row}"
            time.sleep(0.02)
        process.send_signal(signal.SIGKILL)
        process.wait(10)
    finally:
        if process.poll() is None:
            process.kill()
    return row[0]


def _resume(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "orchestrator", "resume"], cwd=ROOT, env={**os.environ, **env},
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("status", ["EXPORTING", "LOADING"])
def test_a_process_killed_mid_run_resumes_and_loads_once(stack: LocalStack, env, table, status):
    if status == "LOADING":
        stack.snowflake.copy_delay_seconds = 3.0  # COPY commits, then the process dies before hearing back
    else:
        stack.databricks.set_outcome(101, "success", duration_seconds=3.0)
    run_id = _kill_when(env, status)
    stack.snowflake.copy_delay_seconds = 0.0

    resumed = _resume(env)

    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert f"Resumed after a restart (was {status})" in resumed.stdout
    assert len(stack.databricks.runs_for(run_id)) == 1
    assert stack.snowflake.count_rows(table_name(table)) == 1000
    assert _status_in_db(env["SYNC_DB_PATH"]) == (run_id, "SUCCESS")
