"""The orchestrator through the stand-ins with the real clients (databricks-sdk, the Snowflake connector): the
run's statuses, the load modes, tables created from the files, column checks, the receipt, and Databricks' and
Snowflake's unpleasant parts (queues, unknown states, aborts, timeouts, a busy warehouse, a restart late)."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from databricks.sdk import WorkspaceClient

from emulators import LocalStack
from emulators.stack import DEMO_DATABASE, DEMO_SCHEMA
from orchestrator import RunStatus, SyncService, build_service, load_settings
from orchestrator.models import StepLog
from orchestrator.service import RunEvent
from orchestrator.snowflake import staging_table
from orchestrator.store import StoreError

from .conftest import eventually, table_name

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parent.parent
FIXTURE = Path(__file__).with_name("fixtures") / "syncbot-0.1.0.db"
COLUMNS = ("city_name, country_code, date, latitude, longitude, temperature_max, temperature_min, temperature_avg, "
           "humidity_relative_avg, precipitation_probability, rain_probability, cloud_cover_perc_avg")


@asynccontextmanager
async def service_for(env: dict[str, str], **overrides: str) -> AsyncIterator[SyncService]:
    service = await build_service(load_settings({**env, **overrides}))
    await service.start()
    try:
        yield service
    finally:
        await service.shutdown()
        await service.store.close()


def syncs_file(tmp_path: Path, text: str) -> str:
    path = tmp_path / "syncs.toml"
    path.write_text(text)
    return str(path)


def export_sql(select: str) -> str:
    return ("INSERT OVERWRITE DIRECTORY 's3://databricks-snowflake-share/runs/{{job.parameters.run_id}}/' "
            f"USING PARQUET {select}")


def staging_exists(stack: LocalStack, run_id: str) -> bool:
    return bool(stack.snowflake.engine.table_columns(f"{DEMO_DATABASE}.{DEMO_SCHEMA}.{staging_table(run_id)}"))


async def test_a_real_shaped_export_loads_exactly_its_part_files_and_the_receipt_says_so(stack, env, table):
    async with service_for(env) as service:
        statuses: list[RunStatus] = []
        service.subscribe(lambda event: statuses.append(event.run.status) if event.kind == "status" else None)
        run = (await service.start_sync(requested_by="U1")).run
        assert run.status is RunStatus.PENDING  # returned at once, before any work
        final = await service.wait(run.run_id, timeout=60)

    assert final.status is RunStatus.SUCCESS, final.error
    assert statuses == [RunStatus.EXPORTING, RunStatus.LOADING, RunStatus.SUCCESS]
    keys = [key.rsplit("/", 1)[-1] for key in stack.s3.keys(f"runs/{run.run_id}/")]
    assert {"_SUCCESS"} < set(keys) and any(k.startswith("_committed_") for k in keys)  # Spark's markers are there…
    assert [file.file.rsplit("/", 1)[-1] for file in final.files] == sorted(k for k in keys if k.startswith("part-"))
    assert len(final.files) >= 2  # …and only the part files were loaded
    assert (final.rows_parsed, final.rows_loaded, final.files_loaded, final.table_rows) == (1000, 1000, 2, 1000)
    assert stack.snowflake.count_rows(table_name(table)) == 1000
    copy = next(q for q in stack.snowflake.queries if q["query_id"] == final.snowflake_query_id)
    assert copy["sql"] == (f"COPY INTO {table} FROM @DATABRICKS_SHARE/runs/{run.run_id}/ FILE_FORMAT=(TYPE=PARQUET) "
                           "MATCH_BY_COLUMN_NAME=CASE_INSENSITIVE PATTERN='.*[.]parquet'")
    assert copy["query_tag"] == f"syncbot run {run.run_id}"
    assert final.export_seconds and final.load_seconds is not None
    rows = stack.snowflake.rows(f"SELECT COUNT(*) FROM {table_name(table)} WHERE CITY_NAME IS NULL OR "
                                "TEMPERATURE_MAX IS NULL OR CLOUD_COVER_PERC_AVG IS NULL")
    assert rows == [(0,)]  # every column matched by name: nothing loaded as NULL


async def test_append_twice_doubles_and_replace_twice_keeps_one_copy(stack, env, table, tmp_path):
    replace_table = f"R_{table}"
    stack.snowflake.create_table(table_name(replace_table))
    config = syncs_file(tmp_path, f"""
[syncs.grow]
snowflake_table = "{table}"
[syncs.mirror]
snowflake_table = "{replace_table}"
mode = "replace"
""")
    async with service_for(env, SYNC_CONFIG=config) as service:
        for _ in range(2):
            for name in ("grow", "mirror"):
                run = (await service.start_sync(name)).run
                final = await service.wait(run.run_id, 60)
                assert final.status is RunStatus.SUCCESS, final.error
                assert not staging_exists(stack, run.run_id)
    assert stack.snowflake.count_rows(table_name(table)) == 2000
    assert stack.snowflake.count_rows(table_name(replace_table)) == 1000
    assert final.table_rows == 1000 and final.statements.keys() == {"copy", "swap"}


async def test_a_replace_whose_copy_fails_leaves_the_previous_rows(stack, env, table, tmp_path):
    config = syncs_file(tmp_path, f'[syncs.mirror]\nsnowflake_table = "{table}"\nmode = "replace"\n')
    async with service_for(env, SYNC_CONFIG=config) as service:
        first = await service.wait((await service.start_sync()).run.run_id, 60)
        assert first.status is RunStatus.SUCCESS
        stack.databricks.set_outcome(101, "corrupt", duration_seconds=0.3)
        second = await service.wait((await service.start_sync()).run.run_id, 60)
    assert second.status is RunStatus.FAILED and "Error parsing the parquet file" in second.error
    assert stack.snowflake.count_rows(table_name(table)) == 1000  # the first run's rows, untouched
    assert not staging_exists(stack, second.run_id)


async def test_merge_updates_changed_rows_inserts_new_ones_and_refuses_duplicate_keys(stack, env, table, tmp_path):
    config = syncs_file(tmp_path, f'[syncs.upsert]\nsnowflake_table = "{table}"\nmode = "merge"\n'
                                  'merge_keys = ["city_name", "date"]\n')
    source = "FROM samples.accuweather.forecast_daily_calendar_imperial WHERE date >= '2024-01-01'"
    job = stack.databricks.jobs[101]
    async with service_for(env, SYNC_CONFIG=config) as service:
        job.sql = export_sql(f"SELECT {COLUMNS} {source} ORDER BY date, city_name LIMIT 1000")
        first = await service.wait((await service.start_sync()).run.run_id, 60)
        assert (first.status, first.rows_inserted, first.rows_updated) == (RunStatus.SUCCESS, 1000, 0), first.error
        warmer = COLUMNS.replace("temperature_max,", "temperature_max + 1 AS temperature_max,")
        job.sql = export_sql(f"SELECT {warmer} {source} ORDER BY date, city_name LIMIT 1200")
        second = await service.wait((await service.start_sync()).run.run_id, 60)
        assert (second.status, second.rows_inserted, second.rows_updated) == (RunStatus.SUCCESS, 200, 1000)
        assert second.table_rows == 1200
        job.sql = export_sql(f"(SELECT {COLUMNS} {source} ORDER BY date LIMIT 5) UNION ALL "
                             f"(SELECT {COLUMNS} {source} ORDER BY date LIMIT 1)")
        duplicate = await service.wait((await service.start_sync()).run.run_id, 60)
    assert stack.snowflake.count_rows(table_name(table)) == 1200
    original = stack.snowflake.rows(f"SELECT MIN(TEMPERATURE_MAX) FROM {table_name(table)} WHERE DATE = '2024-01-01'")
    assert original[0][0] > 0
    assert duplicate.status is RunStatus.FAILED
    assert "more than one row for the same merge key (city_name, date)" in duplicate.error
    assert "city_name=" in duplicate.error and "date=" in duplicate.error and "Nothing was merged" in duplicate.error
    assert not any(staging_exists(stack, run.run_id) for run in (first, second, duplicate))


async def test_a_missing_table_is_created_from_the_files_when_the_sync_says_so(stack, env, tmp_path):
    created, missing = "NEW_FROM_FILES_" + os.urandom(3).hex().upper(), "NEVER_" + os.urandom(3).hex().upper()
    config = syncs_file(tmp_path, f'[syncs.fresh]\nsnowflake_table = "{created}"\ncreate_table = true\n'
                                  f'[syncs.strict]\nsnowflake_table = "{missing}"\n')
    async with service_for(env, SYNC_CONFIG=config) as service:
        made = await service.wait((await service.start_sync("fresh")).run.run_id, 60)
        refused = await service.wait((await service.start_sync("strict")).run.run_id, 60)
    assert made.status is RunStatus.SUCCESS, made.error
    columns = [name for name, _ in stack.snowflake.engine.table_columns(table_name(created))]
    assert columns == [column.strip().upper() for column in COLUMNS.split(",")]
    assert stack.snowflake.count_rows(table_name(created)) == 1000
    assert any(f"Created {table_name(created)} from the files' columns" in step.message for step in made.steps)
    assert refused.status is RunStatus.FAILED
    assert f"the table {table_name(missing)} does not exist: create it, or set create_table = true" in refused.error


@pytest.mark.parametrize("setting", ["fail", "warn"])
async def test_columns_the_files_lack_or_the_table_lacks_fail_or_warn_as_set(stack, env, tmp_path, setting):
    odd = "ODD_" + os.urandom(4).hex().upper()
    stack.snowflake.create_table(table_name(odd), "CITY_NAME VARCHAR, DATE DATE, TEMPERATURE_MAX FLOAT, "
                                 "FORECAST_NOTE VARCHAR")
    config = syncs_file(tmp_path, f'[syncs.odd]\nsnowflake_table = "{odd}"\non_column_mismatch = "{setting}"\n')
    async with service_for(env, SYNC_CONFIG=config) as service:
        final = await service.wait((await service.start_sync()).run.run_id, 60)
    text = final.error if setting == "fail" else " ".join(final.warnings)
    assert "FORECAST_NOTE are not in the files (they would load as NULL)" in text
    assert "LATITUDE" in text and "(they would be dropped)" in text
    if setting == "fail":
        assert final.status is RunStatus.FAILED and "Nothing was loaded" in final.error
        assert stack.snowflake.count_rows(table_name(odd)) == 0
    else:
        assert final.status is RunStatus.SUCCESS
        assert stack.snowflake.count_rows(table_name(odd)) == 1000
        assert any(step.message.startswith("Warning: the files' columns") for step in final.steps)


async def test_two_syncs_run_at_the_same_time_and_two_syncs_of_one_table_form_one_queue(stack, env, table, tmp_path):
    other = f"O_{table}"
    stack.snowflake.create_table(table_name(other))
    stack.databricks.jobs[104].duration_seconds = 2.0
    config = syncs_file(tmp_path, f"""
[syncs.one]
snowflake_table = "{table}"
[syncs.two]
databricks_job_id = 104
job_parameters = {{ region = "CA" }}
snowflake_table = "{other}"
[syncs.same_table]
databricks_job_id = 104
job_parameters = {{ region = "US" }}
snowflake_table = "{table}"
""")
    async with service_for(env, SYNC_CONFIG=config) as service:
        one, two = (await service.start_sync("one")).run, (await service.start_sync("two")).run
        queued = await service.start_sync("same_table")
        assert not queued.created and queued.run.run_id == one.run_id  # the answer names the active run
        finals = await asyncio.gather(service.wait(one.run_id, 60), service.wait(two.run_id, 60))
    assert [final.status for final in finals] == [RunStatus.SUCCESS, RunStatus.SUCCESS]
    assert finals[0].started_at < finals[1].exported_at and finals[1].started_at < finals[0].exported_at  # overlap
    assert stack.snowflake.count_rows(table_name(other)) == finals[1].rows_loaded > 0
    exported = stack.databricks.runs_for(two.run_id)[0].parameters
    assert exported == {"region": "CA", "run_id": two.run_id}  # fixed job parameters besides run_id


async def test_a_queued_databricks_run_says_so_and_counts_against_the_time_limit(stack, env, table):
    stack.databricks.set_outcome(101, "success", duration_seconds=2.0)
    jobs = WorkspaceClient(host=stack.databricks.base_url, token=stack.databricks.token).jobs
    jobs.run_now(job_id=101, job_parameters={"run_id": "someone-else"})  # another run of the job is active
    async with service_for(env) as service:
        final = await service.wait((await service.start_sync()).run.run_id, 60)
    assert final.status is RunStatus.SUCCESS, final.error
    assert any("is QUEUED: queued behind another run of job 101" in step.message for step in final.steps)
    queued_at = next(step.at for step in final.steps if "QUEUED" in step.message)
    running_at = next(step.at for step in final.steps if "is RUNNING" in step.message)
    assert queued_at < running_at


async def test_an_unknown_databricks_state_is_shown_by_its_name_and_the_run_times_out(stack, env, table):
    stack.databricks.set_outcome(101, "unknown_state")
    async with service_for(env, SYNC_RUN_TIMEOUT_SECONDS="3") as service:
        final = await service.wait((await service.start_sync()).run.run_id, 60)
    assert final.status is RunStatus.FAILED
    assert "last state WAITING_FOR_APPROVAL" in final.error
    names = [step.message for step in final.steps if step.message.startswith("Databricks run ")]
    assert any(message.endswith("is WAITING_FOR_APPROVAL") for message in names)
    assert not any("is PENDING" in message for message in names[names.index(next(
        m for m in names if "WAITING_FOR_APPROVAL" in m)):])


async def test_a_restart_long_after_the_time_limit_asks_databricks_first_and_loads(stack, env, table):
    stack.databricks.set_outcome(101, "success", duration_seconds=1.5)
    timeout = {"SYNC_RUN_TIMEOUT_SECONDS": "2"}
    async with service_for(env, **timeout) as service:
        run_id = (await service.start_sync()).run.run_id
        await eventually(lambda: stack.databricks.runs_for(run_id))
    # The process is gone for twice the run's time limit; meanwhile the export succeeds.
    await asyncio.sleep(4.2)
    assert stack.databricks.runs_for(run_id)[0].result_state == "SUCCESS"
    async with service_for(env, **timeout) as service:
        final = await service.wait(run_id, 60)
    assert final.status is RunStatus.SUCCESS, final.error
    assert stack.snowflake.count_rows(table_name(table)) == 1000
    assert len(stack.databricks.runs_for(run_id)) == 1


async def test_a_restart_after_the_time_limit_gives_a_running_export_a_grace_period(stack, env, table):
    stack.databricks.set_outcome(101, "success", duration_seconds=6)
    timeout = {"SYNC_RUN_TIMEOUT_SECONDS": "2", "SYNC_RESUME_GRACE_SECONDS": "20"}
    async with service_for(env, **timeout) as service:
        run_id = (await service.start_sync()).run.run_id
        await eventually(lambda: stack.databricks.runs_for(run_id))
    await asyncio.sleep(2.5)
    async with service_for(env, **timeout) as service:
        final = await service.wait(run_id, 60)
    assert final.status is RunStatus.SUCCESS, final.error


async def test_cancel_during_loading_aborts_the_copy_and_loads_nothing(stack, env, table):
    stack.snowflake.copy_seconds = 5.0
    async with service_for(env) as service:
        run_id = (await service.start_sync(requested_by="U1")).run.run_id
        copy = await eventually(lambda: next(iter(stack.snowflake.statements(f"syncbot run {run_id}", "COPY")), None),
                                timeout=30)
        await eventually(lambda: copy.status == "RUNNING")
        await service.cancel(run_id, requested_by="U2")
        final = await service.wait(run_id, 30)
    assert final.status is RunStatus.CANCELLED and final.cancelled_by == "U2"
    assert "aborted in Snowflake" in final.error and "nothing was loaded" in final.error
    assert copy.status == "ABORTED"
    assert stack.snowflake.count_rows(table_name(table)) == 0


@pytest.mark.parametrize("stuck", ["slow-copy", "queued-warehouse"])
async def test_loading_past_its_deadline_fails_with_that_reason_and_the_table_unchanged(stack, env, table, stuck):
    if stuck == "slow-copy":
        stack.snowflake.copy_seconds = 20.0
    else:
        stack.snowflake.engine.warehouse_queue_seconds = 20.0
    async with service_for(env, SYNC_LOAD_TIMEOUT_SECONDS="2") as service:
        final = await service.wait((await service.start_sync()).run.run_id, 60)
    assert final.status is RunStatus.FAILED
    assert "SYNC_LOAD_TIMEOUT_SECONDS" in final.error
    assert stack.snowflake.count_rows(table_name(table)) == 0


async def test_a_store_error_while_finishing_is_retried_until_the_run_is_recorded(stack, env, table, monkeypatch):
    async with service_for(env) as service:
        save = service.store.save
        failures = []

        async def flaky_save(run, *, release=False):  # type: ignore[no-untyped-def]
            if release and len(failures) < 3:
                failures.append(run.status)
                raise StoreError("SYNC_DB_PATH=…: database is locked")
            await save(run, release=release)

        monkeypatch.setattr(service.store, "save", flaky_save)
        run_id = (await service.start_sync()).run.run_id
        final = await service.wait(run_id, 60)
    assert failures == [RunStatus.SUCCESS] * 3
    assert final.status is RunStatus.SUCCESS and stack.snowflake.count_rows(table_name(table)) == 1000


async def test_events_are_written_before_they_are_told(stack, env, table):
    """An observer never hears of a step the store does not have (another process could not see it)."""
    seen: list[tuple[str, int]] = []
    async with service_for(env) as service:
        async def check(event: RunEvent) -> None:
            stored = await service.store.get(event.run.run_id)
            seen.append((event.kind, len(stored.steps) - len(event.run.steps)))

        tasks: list[asyncio.Task[None]] = []
        service.subscribe(lambda event: tasks.append(asyncio.ensure_future(check(event))) if isinstance(
            event.step, StepLog) else None)
        await service.wait((await service.start_sync()).run.run_id, 60)
        await asyncio.gather(*tasks)
    assert seen and all(difference >= 0 for _, difference in seen)


def test_the_0_1_0_store_opens_in_this_release_and_its_unfinished_run_resumes(stack, tmp_path):
    path = tmp_path / "syncbot.db"
    shutil.copy(FIXTURE, path)
    env = {**os.environ, **stack.env(), "SYNC_DB_PATH": str(path), "SYNC_CONFIG": ""}
    before = stack.snowflake.count_rows(table_name("FORECAST_DAILY"))
    resumed = subprocess.run([sys.executable, "-m", "orchestrator", "resume"], cwd=ROOT, env=env,
                             capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "1127-pend4c PENDING: Resumed after a restart (was PENDING)" in resumed.stdout
    assert "1127-pend4c SUCCESS" in resumed.stdout
    assert stack.snowflake.count_rows(table_name("FORECAST_DAILY")) == before + 1000
    status = subprocess.run([sys.executable, "-m", "orchestrator", "status"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=60)
    assert "1126-done2a SUCCESS" in status.stdout and "1126-fail3b FAILED" in status.stdout
