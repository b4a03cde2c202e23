"""Each stand-in with the real client library, showing it does what the real service does, unpleasant parts
included: Spark's marker files, queued runs and 2.2 statuses (databricks-sdk); COPY reading every object, load
metadata, asynchronous statements, aborts and timeouts (snowflake-connector-python); Slack's limits, response
URLs, rate limits and envelopes spread over connections (slack_sdk, slack-bolt)."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import snowflake.connector
from databricks.sdk import WorkspaceClient
from databricks.sdk.errors import InvalidParameterValue
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from emulators import LocalStack
from emulators.slack import DEMO_CHANNEL_ID, OTHER_CHANNEL_ID, PRIVATE_CHANNEL_ID

from .conftest import eventually, table_name

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parent.parent


def workspace(stack: LocalStack) -> WorkspaceClient:
    return WorkspaceClient(host=stack.databricks.base_url, token=stack.databricks.token)


def wait_terminated(jobs, run_id: int, timeout: float = 30):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while (run := jobs.get_run(run_id)).status.state.value != "TERMINATED":
        assert time.monotonic() < deadline, run.status
        time.sleep(0.05)
    return run


def export(stack: LocalStack, run_id: str) -> list[str]:
    """A real-shaped export of job 101 under runs/<run_id>/ (part files and Spark's markers)."""
    return stack.databricks.export(stack.databricks.jobs[101].sql, {"run_id": run_id})


def body(stack: LocalStack, key: str) -> bytes:
    return stack.s3.client().get_object(Bucket=stack.s3.bucket, Key=key)["Body"].read()


# ---- Databricks ---------------------------------------------------------------------------------------------------

def test_a_job_writes_what_spark_writes_part_files_and_markers(stack: LocalStack):
    jobs = workspace(stack).jobs
    run_id = jobs.run_now(job_id=101, job_parameters={"run_id": "emu-0001"}, idempotency_token="emu-0001").run_id
    assert jobs.run_now(job_id=101, job_parameters={"run_id": "emu-0001"},
                        idempotency_token="emu-0001").run_id == run_id  # same idempotency token, same run
    run = wait_terminated(jobs, run_id)
    assert run.status.termination_details.code.value == "SUCCESS" and run.state.result_state.value == "SUCCESS"
    keys = {key.rsplit("/", 1)[-1]: key for key in stack.s3.keys("runs/emu-0001/")}
    parts = sorted(name for name in keys if name.startswith("part-"))
    assert len(parts) >= 2 and all(name.endswith("-c000.snappy.parquet") for name in parts)
    (committed,) = [name for name in keys if name.startswith("_committed_")]
    (started,) = [name for name in keys if name.startswith("_started_")]
    assert committed.removeprefix("_committed_") == started.removeprefix("_started_")
    assert json.loads(body(stack, keys[committed]))["added"] == parts
    assert body(stack, keys["_SUCCESS"]) == b"" and body(stack, keys[started]) == b""
    tables = [pq.read_table(io.BytesIO(body(stack, keys[name]))) for name in parts]
    assert sum(table.num_rows for table in tables) == 1000
    assert tables[0].column_names == ["city_name", "country_code", "date", "latitude", "longitude",
                                      "temperature_max", "temperature_min", "temperature_avg", "humidity_relative_avg",
                                      "precipitation_probability", "rain_probability", "cloud_cover_perc_avg"]


def test_a_second_run_of_a_busy_job_is_queued_and_without_a_queue_skipped(stack: LocalStack):
    stack.databricks.set_outcome(101, "success", duration_seconds=1.0)
    jobs = workspace(stack).jobs
    first = jobs.run_now(job_id=101, job_parameters={"run_id": "emu-q1"}).run_id
    second = jobs.run_now(job_id=101, job_parameters={"run_id": "emu-q2"}).run_id
    queued = jobs.get_run(second)
    assert queued.status.state.value == "QUEUED" and queued.state.life_cycle_state.value == "QUEUED"
    assert queued.status.queue_details.code.value == "MAX_CONCURRENT_RUNS_REACHED"
    assert wait_terminated(jobs, second).status.termination_details.code.value == "SUCCESS"
    assert jobs.get_run(first).end_time <= jobs.get_run(second).start_time + 10_000
    stack.databricks.jobs[101].queue = False
    busy = jobs.run_now(job_id=101, job_parameters={"run_id": "emu-q3"}).run_id
    skipped = wait_terminated(jobs, jobs.run_now(job_id=101, job_parameters={"run_id": "emu-q4"}).run_id)
    assert skipped.state.life_cycle_state.value == "SKIPPED"
    assert skipped.status.termination_details.code.value == "MAX_CONCURRENT_RUNS_EXCEEDED"
    wait_terminated(jobs, busy)


@pytest.mark.parametrize(("outcome", "code", "legacy"), [
    ("fail", "RUN_EXECUTION_ERROR", "FAILED"), ("canceled", "USER_CANCELED", "CANCELED"),
    ("internal_error", "INTERNAL_ERROR", "FAILED"),
])
def test_runs_get_answers_the_2_2_status_with_real_termination_codes(stack: LocalStack, outcome, code, legacy):
    stack.databricks.set_outcome(101, outcome, duration_seconds=0.1)
    jobs = workspace(stack).jobs
    run = wait_terminated(jobs, jobs.run_now(job_id=101, job_parameters={"run_id": f"emu-{outcome[:4]}"}).run_id)
    assert run.status.termination_details.code.value == code
    assert run.state.result_state.value == legacy
    assert run.status.termination_details.message == run.state.state_message != ""


def test_a_state_the_sdk_does_not_know_reaches_it_as_none(stack: LocalStack):
    stack.databricks.set_outcome(101, "unknown_state")
    client = workspace(stack)
    run_id = client.jobs.run_now(job_id=101, job_parameters={"run_id": "emu-new"}).run_id
    deadline = time.monotonic() + 10
    while client.api_client.do("GET", "/api/2.2/jobs/runs/get", query={"run_id": run_id})[
            "status"]["state"] != "WAITING_FOR_APPROVAL":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert client.jobs.get_run(run_id).status.state is None  # why syncbot reads runs/get's JSON itself
    client.jobs.cancel_run(run_id)
    assert wait_terminated(client.jobs, run_id).status.termination_details.code.value == "USER_CANCELED"


def test_databricks_sdk_cancels_a_run_and_sees_real_errors(stack: LocalStack):
    stack.databricks.set_outcome(101, "hang")
    jobs = workspace(stack).jobs
    run_id = jobs.run_now(job_id=101, job_parameters={"run_id": "emu-0002"}).run_id
    jobs.cancel_run(run_id)
    assert wait_terminated(jobs, run_id, 10).state.result_state.value == "CANCELED"
    assert stack.s3.keys("runs/emu-0002/") == []
    with pytest.raises(InvalidParameterValue, match="Job 999 does not exist"):
        jobs.run_now(job_id=999)
    with pytest.raises(InvalidParameterValue, match="region are not defined"):
        jobs.run_now(job_id=101, job_parameters={"run_id": "x", "region": "US"})


# ---- Snowflake ----------------------------------------------------------------------------------------------------

def connect(stack: LocalStack, **session: object) -> snowflake.connector.SnowflakeConnection:
    return stack.snowflake.connect(database="ANALYTICS", schema="WEATHER", session_parameters=session or None)


COPY = "COPY INTO {table} FROM @DATABRICKS_SHARE/runs/{run}/ FILE_FORMAT=(TYPE=PARQUET) " \
       "MATCH_BY_COLUMN_NAME=CASE_INSENSITIVE"


def test_copy_reads_every_object_so_a_marker_file_fails_it_unless_a_pattern_selects_the_data(stack, table):
    export(stack, "emu-0003")
    with connect(stack) as connection, connection.cursor() as cursor:
        with pytest.raises(snowflake.connector.errors.ProgrammingError, match="Error parsing the parquet file") as err:
            cursor.execute(COPY.format(table=table, run="emu-0003"))  # _committed_<txn> is JSON
        assert err.value.errno == 100109
        cursor.execute(f"SELECT COUNT(*) FROM {table}")
        assert cursor.fetchone()[0] == 0  # the whole statement failed: nothing loaded
        cursor.execute(COPY.format(table=table, run="emu-0003") + " PATTERN='.*[.]parquet'")
        columns = [column.name for column in cursor.description]
        rows = cursor.fetchall()
        assert columns[:4] == ["file", "status", "rows_parsed", "rows_loaded"] and "first_error" in columns
        assert sorted(row[0].rsplit("/", 1)[-1][:10] for row in rows) == ["part-00000", "part-00001"]
        assert sum(row[3] for row in rows) == 1000
        cursor.execute(COPY.format(table=table, run="emu-0003") + " PATTERN='.*[.]parquet'")
        assert cursor.fetchall() == [("Copy executed with 0 files processed.",)]  # loaded before: left out
        cursor.execute("SELECT FILE_NAME, ROW_COUNT, STATUS FROM TABLE(INFORMATION_SCHEMA.COPY_HISTORY("
                       f"TABLE_NAME => 'ANALYTICS.WEATHER.{table}', START_TIME => DATEADD(DAYS, -1, "
                       "CURRENT_TIMESTAMP())))")
        history = cursor.fetchall()
    assert sorted(name.split("/")[-1][:10] for name, _, _ in history) == ["part-00000", "part-00001"]
    assert all(name.startswith("runs/emu-0003/") and status == "Loaded" for name, _, status in history)


def test_empty_files_are_skipped_and_files_selects_by_name(stack, table):
    parts = [url.rsplit("/", 1)[-1] for url in export(stack, "emu-0004")]
    for key in stack.s3.keys("runs/emu-0004/_committed_"):
        stack.s3.client().delete_object(Bucket=stack.s3.bucket, Key=key)  # left: parts, _SUCCESS, _started_ (empty)
    with connect(stack) as connection, connection.cursor() as cursor:
        cursor.execute(COPY.format(table=table, run="emu-0004") + f" FILES=('{parts[0]}')")
        assert [row[0].rsplit("/", 1)[-1] for row in cursor.fetchall()] == [parts[0]]
        cursor.execute(COPY.format(table=table, run="emu-0004"))
        assert [row[0].rsplit("/", 1)[-1] for row in cursor.fetchall()] == parts[1:]  # the empty markers skipped


def test_execute_async_returns_at_once_runs_on_without_its_client_and_is_seen_from_a_new_session(stack, table):
    export(stack, "emu-0005")
    stack.snowflake.copy_seconds = 2.0
    statement = COPY.format(table=table, run="emu-0005") + " PATTERN='.*[.]parquet'"
    started = time.monotonic()
    connection = connect(stack, QUERY_TAG="syncbot run emu-0005")
    cursor = connection.cursor()
    cursor.execute_async(statement)
    query_id = cursor.sfqid
    connection.close()  # the client goes away at once
    assert time.monotonic() - started < 1.5
    with connect(stack) as other, other.cursor() as reader:
        assert other.get_query_status(query_id).name == "RUNNING"
        reader.execute("SELECT QUERY_ID, EXECUTION_STATUS FROM TABLE(INFORMATION_SCHEMA.QUERY_HISTORY_BY_USER("
                       "USER_NAME => CURRENT_USER())) WHERE QUERY_TAG = 'syncbot run emu-0005'")
        assert reader.fetchall() == [(query_id, "RUNNING")]
        reader.get_results_from_sfqid(query_id)  # waits until it is done, then RESULT_SCAN
        assert sum(row[3] for row in reader.fetchall()) == 1000
        assert other.get_query_status(query_id).name == "SUCCESS"
    assert stack.snowflake.count_rows(table_name(table)) == 1000  # committed without its client


def test_an_abort_before_the_commit_leaves_nothing_and_a_statement_timeout_is_honoured(stack, table):
    export(stack, "emu-0006")
    stack.snowflake.copy_seconds = 3.0
    statement = COPY.format(table=table, run="emu-0006") + " PATTERN='.*[.]parquet'"
    with connect(stack) as connection, connection.cursor() as cursor:
        cursor.execute_async(statement)
        query_id = cursor.sfqid
        time.sleep(0.5)
        with connect(stack) as other, other.cursor() as canceller:
            canceller.execute(f"SELECT SYSTEM$CANCEL_QUERY('{query_id}')")
            assert canceller.fetchone()[0] == f"query [{query_id}] terminated."
            deadline = time.monotonic() + 10
            while other.is_still_running(status := other.get_query_status(query_id)) or status.name == "ABORTING":
                assert time.monotonic() < deadline
                time.sleep(0.05)
            assert status.name == "ABORTED"
    assert stack.snowflake.count_rows(table_name(table)) == 0
    with connect(stack, STATEMENT_TIMEOUT_IN_SECONDS=1) as connection, connection.cursor() as cursor:
        with pytest.raises(snowflake.connector.errors.ProgrammingError,
                           match="reached its statement or warehouse timeout of 1 second") as error:
            cursor.execute(statement)
        assert error.value.errno == 630
    assert stack.snowflake.count_rows(table_name(table)) == 0


def test_infer_schema_using_template_list_swap_and_merge_work_as_in_snowflake(stack, table):
    parts = [url.rsplit("/", 1)[-1] for url in export(stack, "emu-0007")]
    created = f"C_{table}"
    with connect(stack) as connection, connection.cursor() as cursor:
        cursor.execute("LIST @DATABRICKS_SHARE/runs/emu-0007/ PATTERN='.*[.]parquet'")
        assert sorted(row[0].rsplit("/", 1)[-1] for row in cursor.fetchall()) == parts
        infer = (f"TABLE(INFER_SCHEMA(LOCATION => '@DATABRICKS_SHARE/runs/emu-0007/', FILE_FORMAT => "
                 f"'SYNCBOT_PARQUET', FILES => ('{parts[0]}'), IGNORE_CASE => TRUE))")
        cursor.execute(f"SELECT COLUMN_NAME, TYPE FROM {infer} ORDER BY ORDER_ID")
        inferred = cursor.fetchall()
        assert inferred[:3] == [("CITY_NAME", "TEXT"), ("COUNTRY_CODE", "TEXT"), ("DATE", "DATE")]
        assert ("TEMPERATURE_MAX", "REAL") in inferred
        cursor.execute(f"CREATE TABLE {created} USING TEMPLATE (SELECT ARRAY_AGG(OBJECT_CONSTRUCT(*)) WITHIN GROUP "
                       f"(ORDER BY ORDER_ID) FROM {infer})")
        cursor.execute(COPY.format(table=created, run="emu-0007") + " PATTERN='.*[.]parquet'")
        cursor.execute(f"ALTER TABLE {table} SWAP WITH {created}")
        cursor.execute(f"SELECT COUNT(*) FROM {table}")
        assert cursor.fetchone()[0] == 1000
        cursor.execute(f"SELECT COUNT(*) FROM {created}")
        assert cursor.fetchone()[0] == 0
        cursor.execute(f"MERGE INTO {created} t USING {table} s ON t.CITY_NAME = s.CITY_NAME AND t.DATE = s.DATE "
                       "WHEN MATCHED THEN UPDATE SET t.TEMPERATURE_MAX = s.TEMPERATURE_MAX WHEN NOT MATCHED THEN "
                       "INSERT (CITY_NAME, DATE) VALUES (s.CITY_NAME, s.DATE)")
        assert cursor.fetchone() == (1000, 0)
        with pytest.raises(snowflake.connector.errors.ProgrammingError, match=r"File format .* does not exist"):
            cursor.execute(infer.replace("SYNCBOT_PARQUET", "NO_FORMAT").join(["SELECT * FROM ", ""]))


def test_a_revoked_privilege_refuses_the_statement_and_show_grants_says_what_the_role_has(stack, table):
    export(stack, "emu-0008")
    qualified = f"ANALYTICS.WEATHER.{table}"
    stack.snowflake.engine.table_privileges[qualified] = {"SELECT"}
    with connect(stack) as connection, connection.cursor() as cursor:
        with pytest.raises(snowflake.connector.errors.ProgrammingError, match="Insufficient privileges") as error:
            cursor.execute(COPY.format(table=table, run="emu-0008") + " PATTERN='.*[.]parquet'")
        assert error.value.errno == 3001
        cursor.execute("SHOW GRANTS TO ROLE SYNCBOT")
        grants = {(row[1], row[2], row[3]) for row in cursor.fetchall()}
        cursor.execute("SELECT CURRENT_ROLE(), CURRENT_WAREHOUSE()")
        assert cursor.fetchone() == ("SYNCBOT", "SYNCBOT_WH")
    assert ("SELECT", "TABLE", qualified) in grants and ("INSERT", "TABLE", qualified) not in grants
    assert ("USAGE", "STAGE", "ANALYTICS.WEATHER.DATABRICKS_SHARE") in grants


def test_a_wrong_password_and_an_unknown_role_are_refused_at_login(stack):
    with pytest.raises(snowflake.connector.errors.DatabaseError, match="Incorrect username or password"):
        stack.snowflake.connect(password="wrong").close()
    with pytest.raises(snowflake.connector.errors.DatabaseError, match="Role 'NOBODY' specified"):
        stack.snowflake.connect(role="NOBODY").close()


# ---- Slack ----------------------------------------------------------------------------------------------------------

def web_client(stack: LocalStack) -> AsyncWebClient:
    return AsyncWebClient(token=stack.slack.bot_token, base_url=f"{stack.slack.base_url}/api/")


@pytest.mark.parametrize(("arguments", "error"), [
    ({"text": "x", "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "y" * 3001}}]}, "invalid_blocks"),
    ({"text": "x", "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "y"}}] * 51}, "invalid_blocks"),
    ({"text": "z" * 40_001}, "msg_too_long"),
    ({"text": "hi", "channel": PRIVATE_CHANNEL_ID}, "channel_not_found"),
    ({"text": "hi", "channel": OTHER_CHANNEL_ID}, "not_in_channel"),
], ids=["section-too-long", "too-many-blocks", "text-too-long", "private-not-member", "public-not-member"])
async def test_slack_refuses_what_slack_refuses(stack: LocalStack, arguments, error):
    with pytest.raises(SlackApiError) as refused:
        await web_client(stack).chat_postMessage(**{"channel": DEMO_CHANNEL_ID, **arguments})
    assert refused.value.response["error"] == error


async def test_a_response_url_works_five_times_and_for_thirty_minutes(stack: LocalStack):
    payload = stack.slack.slash_command_payload("")
    hook = AsyncWebhookClient(payload["response_url"])
    statuses = [(await hook.send(text=f"note {n}")).status_code for n in range(6)]
    assert statuses == [200] * 5 + [404]
    late = AsyncWebhookClient(stack.slack.slash_command_payload("")["response_url"])
    for target in stack.slack._response_urls.values():
        target.created -= 31 * 60
    assert (await late.send(text="too late")).status_code == 404


async def test_published_rate_limits_answer_429_with_retry_after(stack: LocalStack):
    stack.slack.rate_limits = True
    client = AsyncWebClient(token=stack.slack.bot_token, base_url=f"{stack.slack.base_url}/api/")  # no retries
    statuses = []
    for n in range(5):
        try:
            await client.chat_postMessage(channel=DEMO_CHANNEL_ID, text=f"burst {n}")
            statuses.append(200)
        except SlackApiError as exc:
            statuses.append(exc.response.status_code)
            assert int(exc.response.headers["Retry-After"]) >= 1
    assert statuses[:3] == [200, 200, 200] and 429 in statuses[3:]  # a short burst, then about 1 per second
    await client.chat_postMessage(channel="C0ELSEWHERE".replace("C0ELSEWHERE", "G0SECRET"), text="other channel")


async def test_envelopes_are_spread_across_all_open_connections_with_metadata_kept(stack: LocalStack):
    received: dict[str, int] = {"a": 0, "b": 0}
    handlers = []

    def app_named(name: str) -> AsyncApp:
        app = AsyncApp(client=web_client(stack))

        @app.command("/sync")
        async def sync(ack, say):  # type: ignore[no-untyped-def]
            received[name] += 1
            await ack(text=f"from {name}")
            await say(text="parent", metadata={"event_type": "sync_run", "event_payload": {"run_id": "x-1"}})

        return app

    for name in received:
        app = app_named(name)
        handler = AsyncSocketModeHandler(app, stack.slack.app_token)
        await handler.connect_async()
        handlers.append(handler)
    try:
        await eventually(lambda: len(stack.slack.connections) >= 2)
        acks = [await stack.acall(stack.slack.send_command("status")) for _ in range(6)]
        assert received["a"] >= 1 and received["b"] >= 1 and sum(received.values()) == 6
        assert all(ack["latency_ms"] < 3000 for ack in acks)
        await eventually(lambda: stack.slack.find_parent("x-1"))
        assert stack.slack.find_parent("x-1").run == {"run_id": "x-1"}
    finally:
        for handler in handlers:
            await handler.close_async()


def test_boto3_reads_and_writes_the_share_bucket(stack: LocalStack):
    s3 = stack.s3.client()
    s3.put_object(Bucket=stack.s3.bucket, Key="scratch/hello.txt", Body=b"hi")
    assert s3.get_object(Bucket=stack.s3.bucket, Key="scratch/hello.txt")["Body"].read() == b"hi"


# ---- the commands ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("only", "expected", "absent"), [
    (None, ("SLACK_BOT_TOKEN", "SLACK_APP_TOKEN", "SLACK_API_URL", "DATABRICKS_HOST", "DATABRICKS_TOKEN",
            "DATABRICKS_JOB_ID", "SNOWFLAKE_HOST", "SNOWFLAKE_PORT", "SNOWFLAKE_PROTOCOL", "SNOWFLAKE_STAGE"), ()),
    ("slack", ("SLACK_BOT_TOKEN", "SLACK_API_URL"), ("DATABRICKS_HOST", "SNOWFLAKE_HOST", "AWS_ENDPOINT_URL_S3")),
], ids=["all", "slack-alone"])
def test_python_m_emulators_prints_the_environment_and_stops_on_ctrl_c(only, expected, absent):
    command = [sys.executable, "-m", "emulators"] + (["--only", only] if only else [])
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "PYTHONUNBUFFERED": "1"})
    lines = []
    try:
        for line in process.stdout:  # type: ignore[union-attr]
            lines.append(line)
            if "Ctrl-C" in line:
                break
        process.send_signal(signal.SIGINT)
        assert process.wait(30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
    block = "".join(lines)
    for name in expected:
        assert f"export {name}=" in block
    for name in absent:
        assert f"export {name}=" not in block


def test_the_demo_shows_the_picker_two_syncs_a_real_shaped_export_and_the_receipt():
    script = "/sync\n/sync forecast\n/sync forecast_us\n/sync list\n"
    result = subprocess.run([sys.executable, "-m", "emulators", "demo"], cwd=ROOT, input=script,
                            capture_output=True, text=True, timeout=240)
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert "Which sync?" in out and "[ Run forecast ]" in out and "[ Run forecast_us ]" in out
    assert "✅ SUCCESS: sync" in out and "FORECAST_DAILY — 1,000 rows from 2 file(s) loaded (replace)" in out
    assert "part-00000" in out and "part-00001" in out and "_committed_" not in out
    assert "Receipt" in out and "Parsed 1,000" in out and "FORECAST_HISTORY now has" in out
    assert "last run: ✅ SUCCESS" in out


def test_python_m_bot_names_every_missing_setting_and_exits():
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("SLACK_", "DATABRICKS_", "SNOWFLAKE_", "SYNC_"))}
    result = subprocess.run([sys.executable, "-m", "bot"], cwd=ROOT / "tests", env={**env, "PYTHONPATH": str(ROOT)},
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    for name in ("SLACK_BOT_TOKEN", "SLACK_APP_TOKEN", "DATABRICKS_JOB_ID", "SNOWFLAKE_TABLE"):
        assert name in result.stderr
