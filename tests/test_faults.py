"""Faults and bad input. Each case checks what the user sees in Slack, the run's final state in the store, and the
rows in Snowflake (none lost, none twice). The sections follow the README's failure table. Run alone with
`make test-faults`."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from emulators import LocalStack
from emulators._net import free_port
from emulators.slack import DEMO_CHANNEL_ID, OTHER_CHANNEL_ID
from orchestrator import RunStatus

from .conftest import eventually, table_name
from .helpers import ROOT, command, final_parent, run_id_in, running_bot, stored, stored_status

pytestmark = [pytest.mark.faults, pytest.mark.e2e]


async def sync_ends(stack: LocalStack, env: dict[str, str], status: str, timeout: float = 40):  # type: ignore[no-untyped-def]
    """/sync through the bot; return (final parent, thread text, stored run)."""
    async with running_bot(stack, env) as runtime:
        run_id = run_id_in(await command(stack, ""))
        parent = await final_parent(stack, run_id, status, timeout)
        run = await runtime.service.get(run_id)
    return parent, stack.slack.thread_text(run_id), run


# ---- Databricks ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("setup", "expected"), [
    ({"DATABRICKS_JOB_ID": "999"}, ("INVALID_PARAMETER_VALUE: Job 999 does not exist", "DATABRICKS_JOB_ID")),
    ({"inject": (403, "PERMISSION_DENIED", "User does not have CAN MANAGE RUN on job 101")},
     ("PERMISSION_DENIED", "check DATABRICKS_TOKEN")),
    ({"inject": (400, "INVALID_PARAMETER_VALUE", "Job parameter 'run_id' is not defined")},
     ("INVALID_PARAMETER_VALUE: Job parameter 'run_id' is not defined", "`run_id` job parameter")),
    ({"DATABRICKS_TOKEN": "dapi-revoked"}, ("UNAUTHENTICATED: Invalid access token", "check DATABRICKS_TOKEN")),
], ids=["unknown-job", "permission-denied", "invalid-parameter", "bad-token"])
async def test_run_now_rejected_fails_at_once_naming_the_cause_and_the_fix(stack, env, table, setup, expected):
    if "inject" in setup:
        status, code, message = setup.pop("inject")
        stack.databricks.inject("run-now", status=status, error_code=code, message=message)
    parent, thread, run = await sync_ends(stack, {**env, **setup}, "FAILED")
    for text in expected:
        assert text in run.error
    assert expected[0] in parent.text and "Databricks run-now failed" in thread
    assert run.status is RunStatus.FAILED and run.databricks_run_id is None
    assert stack.snowflake.count_rows(table_name(table)) == 0


async def test_a_short_429_storm_is_ridden_out(stack, env, table):
    stack.databricks.throttle("runs/get", times=3, retry_after=1)
    _, _, run = await sync_ends(stack, env, "SUCCESS")
    assert run.rows_loaded == 1000 and stack.snowflake.count_rows(table_name(table)) == 1000


async def test_a_long_429_storm_fails_within_the_deadline_with_a_clear_reason(stack, env, table):
    stack.databricks.throttle("runs/get", times=10_000, retry_after=1)
    started = asyncio.get_running_loop().time()
    parent, _, run = await sync_ends(stack, {**env, "SYNC_RUN_TIMEOUT_SECONDS": "4"}, "FAILED", timeout=60)
    assert asyncio.get_running_loop().time() - started < 30
    assert "after 4s" in parent.text and "TOO_MANY_REQUESTS" in run.error
    assert stack.snowflake.count_rows(table_name(table)) == 0


async def test_http_500_on_runs_get_is_retried_and_the_run_succeeds(stack, env, table):
    stack.databricks.inject("runs/get", status=500, error_code="INTERNAL_ERROR", message="Internal error", times=3)
    _, thread, _ = await sync_ends(stack, env, "SUCCESS")
    assert "runs/get failed (INTERNAL_ERROR: Internal error); retrying" in thread
    assert stack.snowflake.count_rows(table_name(table)) == 1000


async def test_a_workspace_that_refuses_connections_fails_the_run_within_its_deadline(stack, env, table):
    unreachable = {"DATABRICKS_HOST": f"http://127.0.0.1:{free_port()}", "SYNC_RUN_TIMEOUT_SECONDS": "3"}
    _, _, run = await sync_ends(stack, {**env, **unreachable}, "FAILED", timeout=60)
    assert "cannot connect to the Databricks workspace (check DATABRICKS_HOST" in run.error
    assert stack.snowflake.count_rows(table_name(table)) == 0


@pytest.mark.parametrize(("outcome", "words"), [
    ("fail", "ended TERMINATED (RUN_EXECUTION_ERROR): Task export failed"),
    ("timedout", "ended TERMINATED (CANCELED): Run timed out"),
    ("canceled", "ended TERMINATED (USER_CANCELED): Run cancelled by a workspace admin"),
    ("internal_error", "ended TERMINATED (INTERNAL_ERROR)"),
    ("skipped", "ended TERMINATED (MAX_CONCURRENT_RUNS_EXCEEDED): Skipping this run"),
])
async def test_a_job_that_ends_badly_on_the_databricks_side_shows_failed_with_databricks_words(
        stack, env, table, outcome, words):
    if outcome == "skipped":  # a job without a queue, busy with another run
        from databricks.sdk import WorkspaceClient

        stack.databricks.jobs[101].queue = False
        stack.databricks.set_outcome(101, "success", duration_seconds=3)
        WorkspaceClient(host=stack.databricks.base_url, token=stack.databricks.token).jobs.run_now(
            job_id=101, job_parameters={"run_id": "someone-else"})
    else:
        stack.databricks.set_outcome(101, outcome, duration_seconds=0.2)
    parent, _, run = await sync_ends(stack, env, "FAILED")
    assert words in parent.text and "(see http" in run.error
    assert stack.snowflake.count_rows(table_name(table)) == 0


async def test_a_job_that_never_ends_is_cancelled_at_the_timeout(stack, env, table):
    stack.databricks.set_outcome(101, "hang")
    parent, _, run = await sync_ends(stack, {**env, "SYNC_RUN_TIMEOUT_SECONDS": "2"}, "FAILED")
    assert "timed out after 2s" in parent.text and "the Databricks run was cancelled" in parent.text
    assert stack.databricks.runs_for(run.run_id)[0].result_state == "CANCELED"


# ---- Snowflake ----------------------------------------------------------------------------------------------------

async def test_a_wrong_snowflake_password_fails_naming_the_setting(stack, env, table):
    parent, _, run = await sync_ends(stack, {**env, "SNOWFLAKE_PASSWORD": "not-the-password"}, "FAILED")
    assert "Snowflake refused the login for user syncbot" in parent.text and "SNOWFLAKE_PASSWORD" in run.error
    assert "not-the-password" not in parent.text + run.error
    assert stack.snowflake.count_rows(table_name(table)) == 0


async def test_a_private_key_file_that_disappeared_fails_naming_the_setting(stack, env, table, tmp_path):
    key = tmp_path / "bot.p8"
    key.write_text("placeholder")  # present at start-up (validated), gone by the time of the load
    async with running_bot(stack, {**env, "SNOWFLAKE_PASSWORD": "", "SNOWFLAKE_PRIVATE_KEY_FILE": str(key)}):
        key.unlink()
        run_id = run_id_in(await command(stack, ""))
        parent = await final_parent(stack, run_id, "FAILED")
    assert "cannot read SNOWFLAKE_PRIVATE_KEY_FILE" in parent.text


@pytest.mark.parametrize(("setting", "expected"), [
    ({"SNOWFLAKE_TABLE": "NO_SUCH_TABLE"}, "does not exist: create it, or set create_table = true"),
    ({"SNOWFLAKE_STAGE": "NO_SUCH_STAGE"}, "Stage 'ANALYTICS.WEATHER.NO_SUCH_STAGE' does not exist"),
    ({"SNOWFLAKE_FILE_FORMAT": "NO_SUCH_FORMAT"}, "File format 'ANALYTICS.WEATHER.NO_SUCH_FORMAT' does not exist"),
], ids=["table-missing", "stage-missing", "file-format-missing"])
async def test_a_missing_table_stage_or_file_format_fails_with_what_to_create(stack, env, table, setting, expected):
    parent, _, run = await sync_ends(stack, {**env, **setting}, "FAILED")
    assert expected in run.error and expected[:20] in parent.text
    assert stack.snowflake.count_rows(table_name(table)) == 0


@pytest.mark.parametrize(("job", "expected"), [
    ("103", "the export wrote no data files under"), ("102", "do not fit the table's column types"),
], ids=["no-files", "type-mismatch"])
async def test_a_bad_export_fails_with_a_sentence_a_person_understands(stack, env, table, job, expected):
    parent, _, _ = await sync_ends(stack, {**env, "DATABRICKS_JOB_ID": job}, "FAILED")
    assert expected in parent.text
    assert stack.snowflake.count_rows(table_name(table)) == 0


async def test_a_corrupt_parquet_file_fails_the_copy_and_loads_nothing(stack, env, table):
    stack.databricks.set_outcome(101, "corrupt", duration_seconds=0.3)
    parent, _, _ = await sync_ends(stack, env, "FAILED")
    assert "Error parsing the parquet file" in parent.text
    assert stack.snowflake.count_rows(table_name(table)) == 0  # all files or none, as ON_ERROR=ABORT_STATEMENT


async def test_a_missing_privilege_fails_with_the_grant_to_add(stack, env, table):
    stack.snowflake.engine.table_privileges[table_name(table)] = {"SELECT"}
    _, _, run = await sync_ends(stack, env, "FAILED")
    assert "Insufficient privileges to operate on table" in run.error and "doctor" in run.error
    assert stack.snowflake.count_rows(table_name(table)) == 0


# ---- Slack --------------------------------------------------------------------------------------------------------

async def test_a_dropped_socket_mid_run_reconnects_and_the_run_is_unaffected(stack, env, table):
    stack.databricks.set_outcome(101, "success", duration_seconds=3)
    async with running_bot(stack, env) as runtime:
        run_id = run_id_in(await command(stack, ""))
        await eventually(lambda: (run := runtime.service.live(run_id)) and run.status is RunStatus.EXPORTING)
        await stack.acall(stack.slack.drop_sockets())
        await final_parent(stack, run_id, "SUCCESS")
        status = await command(stack, f"status {run_id}", timeout=30)  # Bolt reconnected
    assert "SUCCESS" in status["text"]
    assert stack.snowflake.count_rows(table_name(table)) == 1000


async def test_slack_429s_and_500s_delay_the_thread_but_never_the_run(stack, env, table):
    stack.slack.inject("chat.update", status=429, times=3, retry_after=1)
    stack.slack.inject("chat.postMessage", status=500, times=2)
    async with running_bot(stack, env) as runtime:
        run_id = run_id_in(await command(stack, ""))
        final = await runtime.service.wait(run_id, 30)
        assert final.status is RunStatus.SUCCESS
        await final_parent(stack, run_id, "SUCCESS")
    assert "Loaded 1,000 rows" in stack.slack.thread_text(run_id)
    assert len(stack.slack.parents_of(run_id)) == 1  # a retried post did not make a second parent


async def test_a_redelivered_envelope_starts_one_run_not_two(stack, env, table):
    calls_before = stack.databricks.calls_to("run-now")
    async with running_bot(stack, env):
        payload = stack.slack.slash_command_payload("")
        first = await stack.acall(stack.slack.send_envelope("slash_commands", payload, envelope_id="env-1"))
        again = await stack.acall(stack.slack.send_envelope("slash_commands", payload, envelope_id="env-1"))
        run_id = run_id_in(first)
        await final_parent(stack, run_id, "SUCCESS")
    assert run_id_in(again) == run_id
    assert len(stack.slack.parents_of(run_id)) == 1
    assert stack.databricks.calls_to("run-now") == calls_before + 1
    assert stack.snowflake.count_rows(table_name(table)) == 1000


# ---- Process ------------------------------------------------------------------------------------------------------

def copy_of(stack: LocalStack, run_id: str):  # type: ignore[no-untyped-def]
    return next(iter(stack.snowflake.statements(f"syncbot run {run_id}", "COPY INTO")), None)


@pytest.mark.parametrize("status", ["PENDING", "EXPORTING"])
async def test_sigkill_before_loading_then_restart_completes_the_run_once(stack, env, table, bot_processes, status):
    if status == "PENDING":
        stack.databricks.run_now_delay_seconds = 4.0
    else:
        stack.databricks.set_outcome(101, "success", duration_seconds=3)
    bot = bot_processes(env)
    await bot.connected()
    run_id = run_id_in(await command(stack, ""))
    await eventually(lambda: stored_status(env["SYNC_DB_PATH"], run_id) == status, 30)
    # Killed once its thread is recorded: a kill between Slack's answer to the parent's postMessage and the store's
    # write of its ts leaves a second parent (README, "Known limits").
    await eventually(lambda: stored(env["SYNC_DB_PATH"], run_id).get("context", {}).get("thread_ts"), 30)
    assert bot.stop(signal.SIGKILL) == -signal.SIGKILL
    restarted = bot_processes(env)
    await restarted.connected()
    parent = await final_parent(stack, run_id, "SUCCESS", timeout=60)
    assert f"Resumed after a restart (was {status})" in stack.slack.thread_text(run_id)
    assert stack.slack.parents_of(run_id) == [parent]
    assert len(stack.databricks.runs_for(run_id)) == 1
    assert stack.snowflake.count_rows(table_name(table)) == 1000
    assert stored(env["SYNC_DB_PATH"], run_id)["rows_loaded"] == 1000


@pytest.mark.parametrize("moment", ["submitted", "committed", "before-the-id-was-stored"])
async def test_sigkill_during_loading_then_restart_follows_the_first_copy(stack, env, table, bot_processes, moment):
    """The restarted process asks Snowflake about the COPY the first one started (by its stored query id, or by
    the run's QUERY_TAG when the id was never stored) instead of running it again, and reports its rows."""
    stack.snowflake.copy_seconds = 4.0 if moment == "submitted" else 3.0
    if moment == "before-the-id-was-stored":
        stack.snowflake.engine.submit_answer_delay_seconds = 10.0
    bot = bot_processes(env)
    await bot.connected()
    run_id = run_id_in(await command(stack, ""))
    copy = await eventually(lambda: copy_of(stack, run_id), 30)
    await eventually(lambda: copy.status == "RUNNING")
    if moment != "before-the-id-was-stored":  # the engine runs the COPY before the bot has heard its id
        await eventually(lambda: stored(env["SYNC_DB_PATH"], run_id).get("statements", {}).get("copy"))
    if moment == "committed":
        bot.signal(signal.SIGSTOP)  # it cannot hear the answer…
        await eventually(lambda: copy.status == "SUCCESS", 20)  # …while the COPY commits
    assert bot.stop(signal.SIGKILL) == -signal.SIGKILL
    stored_copy = stored(env["SYNC_DB_PATH"], run_id).get("statements", {}).get("copy")
    assert (stored_copy is None) == (moment == "before-the-id-was-stored")
    stack.snowflake.copy_seconds = 0.0
    stack.snowflake.engine.submit_answer_delay_seconds = 0.0
    restarted = bot_processes(env)
    await restarted.connected()
    parent = await final_parent(stack, run_id, "SUCCESS", timeout=60)
    assert "Resumed after a restart (was LOADING)" in stack.slack.thread_text(run_id)
    assert [query.query_id for query in stack.snowflake.statements(f"syncbot run {run_id}", "COPY INTO")] == [
        copy.query_id]  # one COPY, never re-issued
    assert stack.snowflake.count_rows(table_name(table)) == 1000
    assert parent.run["rows_loaded"] == 1000 and "1,000 rows" in parent.text  # the rows the first COPY loaded
    assert stored(env["SYNC_DB_PATH"], run_id)["statements"]["copy"] == copy.query_id


async def test_sigterm_during_a_copy_stops_cleanly_and_the_restart_finishes_the_run(stack, env, table,
                                                                                   bot_processes):
    stack.snowflake.copy_seconds = 4.0
    bot = bot_processes(env)
    await bot.connected()
    run_id = run_id_in(await command(stack, ""))
    copy = await eventually(lambda: copy_of(stack, run_id), 30)
    await eventually(lambda: copy.status == "RUNNING")
    assert bot.stop(signal.SIGTERM) == 0
    assert "bot.stopped" in bot.log() and "Traceback" not in bot.log()
    assert stored_status(env["SYNC_DB_PATH"], run_id) == "LOADING"
    restarted = bot_processes(env)
    await restarted.connected()
    await final_parent(stack, run_id, "SUCCESS", timeout=60)
    assert stack.snowflake.count_rows(table_name(table)) == 1000
    assert len(stack.snowflake.statements(f"syncbot run {run_id}", "COPY INTO")) == 1


@pytest.mark.parametrize("kind", ["corrupt", "unwritable"])
def test_a_corrupt_or_unwritable_run_store_stops_start_up_with_a_clear_message(stack, env, tmp_path, kind):
    if kind == "corrupt":
        path = tmp_path / "syncbot.db"
        path.write_bytes(b"not a database " * 200)
    else:
        # As root (CI) chmod cannot make a file read-only, so use a place no one can write: /proc.
        path = Path("/proc/syncbot-cannot-write-here/syncbot.db")
    result = subprocess.run([sys.executable, "-m", "bot"], cwd=ROOT, env={**env, "SYNC_DB_PATH": str(path)},
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert f"SYNC_DB_PATH={path}" in result.stderr and "Traceback" not in result.stderr


# ---- Input and access ---------------------------------------------------------------------------------------------

async def test_crafted_run_ids_in_commands_and_button_payloads_get_not_found(stack, env, table):
    calls_before = stack.databricks.calls_to("run-now")
    async with running_bot(stack, env):
        for text in ["status ../../etc/passwd", "cancel 1127-abcdef'; DROP TABLE runs; --", "status " + "x" * 10_000,
                     "cancel <!channel>", "status 🙂"]:
            answer = await command(stack, text)
            assert "was found" in answer["text"] or "takes one run id" in answer["text"], answer
    assert stack.databricks.calls_to("run-now") == calls_before  # nothing was started
    assert not any("<!channel>" in e.text for e in stack.slack.ephemerals)


async def test_outside_the_allowlist_nobody_starts_or_cancels_by_command_or_button(stack, env, table):
    stack.databricks.set_outcome(101, "hang")
    env = {**env, "SYNC_ALLOWED_USERS": "U0ADMIN", "SYNC_ALLOWED_CHANNELS": DEMO_CHANNEL_ID}
    calls_before = stack.databricks.calls_to("run-now")
    async with running_bot(stack, env) as runtime:
        for channel in (DEMO_CHANNEL_ID, OTHER_CHANNEL_ID):
            refused = await command(stack, "", user="U0INTRUDER", channel=channel)
            assert "not allowed" in refused["text"]
        elsewhere = await command(stack, "", user="U0ADMIN", channel=OTHER_CHANNEL_ID)
        assert "SYNC_ALLOWED_CHANNELS" in elsewhere["text"]
        assert stack.databricks.calls_to("run-now") == calls_before
        run_id = run_id_in(await command(stack, "", user="U0ADMIN"))
        await eventually(lambda: (parent := stack.slack.find_parent(run_id)) and "sync_cancel" in str(parent.blocks))
        await stack.acall(stack.slack.click(stack.slack.find_parent(run_id), "sync_cancel", user="U0INTRUDER"))
        await eventually(lambda: any("You may not cancel" in e.text and e.via == "response_url"
                                     for e in stack.slack.ephemerals))
        refused_cancel = await command(stack, f"cancel {run_id}", user="U0INTRUDER")
        assert "You may not cancel" in refused_cancel["text"]
        await asyncio.sleep(0.5)
        assert not (await runtime.service.get(run_id)).status.is_final
        await command(stack, f"cancel {run_id}", user="U0ADMIN")
        await final_parent(stack, run_id, "CANCELLED")
    assert len(stack.databricks.runs_for(run_id)) == 1


# ---- Secrets ------------------------------------------------------------------------------------------------------

async def test_no_secret_reaches_a_log_line_a_slack_message_or_the_store(stack, env, table, tmp_path, bot_processes):
    # Real-looking values, built at run time so no token-shaped string is committed.
    secrets = {
        "SLACK_BOT_TOKEN": "xoxb-" + "-".join(["2345678901", "3456789012", "AbCdEfGhIjKlMnOpQrStUvWx"]),
        "SLACK_APP_TOKEN": "xapp-1-" + "A0SYNCBOT-4567890123-" + "f" * 64,
        "DATABRICKS_TOKEN": "dapi" + "0123456789abcdef" * 2,
        "SNOWFLAKE_PASSWORD": "Sn0wfl@ke-" + "S3cret-Passw0rd",
        "SYNC_API_TOKEN": "api-" + "9" * 32,
    }
    saved = (stack.slack.bot_token, stack.slack.app_token, stack.databricks.token)
    stack.slack.bot_token, stack.slack.app_token = secrets["SLACK_BOT_TOKEN"], secrets["SLACK_APP_TOKEN"]
    stack.databricks.token = secrets["DATABRICKS_TOKEN"]
    try:
        stack.slack.inject("chat.postMessage", status=500, times=2)
        bot = bot_processes({**env, **secrets, "SYNC_HTTP_PORT": str(free_port())})
        await bot.connected()
        # Snowflake: the emulator's password differs, so the login fails with the configured password in hand.
        snowflake_fails = run_id_in(await command(stack, ""))
        await final_parent(stack, snowflake_fails, "FAILED")
        stack.databricks.inject("run-now", status=403, error_code="PERMISSION_DENIED", message="no access")
        databricks_fails = run_id_in(await command(stack, ""))
        await final_parent(stack, databricks_fails, "FAILED")
        bot.stop()
    finally:
        stack.slack.bot_token, stack.slack.app_token, stack.databricks.token = saved
    seen = {
        "log": bot.log(),
        "slack": json.dumps([m.__dict__ for m in stack.slack.messages] + [e.__dict__ for e in stack.slack.ephemerals]),
        "store": Path(env["SYNC_DB_PATH"]).read_bytes().decode("utf-8", "replace"),
    }
    assert "run.status" in seen["log"] and "Snowflake refused the login" in seen["slack"]
    for where, text in seen.items():
        for name, secret in secrets.items():
            assert secret not in text, f"{name} leaked into the {where}"
