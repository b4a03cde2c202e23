"""Each stand-in with the real client library, as production talks to the real service."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from databricks.sdk import WorkspaceClient
from databricks.sdk.errors import InvalidParameterValue
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from emulators import LocalStack

from .conftest import eventually

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parent.parent


def workspace(stack: LocalStack) -> WorkspaceClient:
    return WorkspaceClient(host=stack.databricks.base_url, token=stack.databricks.token)


def test_databricks_sdk_runs_a_job_whose_parquet_lands_in_s3(stack: LocalStack):
    jobs = workspace(stack).jobs
    params = {"run_id": "emu-0001"}
    run_id = jobs.run_now(job_id=101, job_parameters=params, idempotency_token="emu-0001").response.run_id
    again = jobs.run_now(job_id=101, job_parameters=params, idempotency_token="emu-0001")
    assert again.response.run_id == run_id  # same idempotency token, same run
    seen = set()
    deadline = time.monotonic() + 30
    while True:
        keys_before = stack.s3.keys("runs/emu-0001/")
        run = jobs.get_run(run_id)
        if run.state.life_cycle_state.value == "TERMINATED":
            break
        assert time.monotonic() < deadline
        seen.add(run.state.life_cycle_state.value)
        if run.state.life_cycle_state.value == "PENDING":
            assert keys_before == []  # nothing is written before the job runs
        time.sleep(0.1)
    assert {"PENDING", "RUNNING"} <= seen
    assert run.state.result_state.value == "SUCCESS" and run.run_page_url.endswith(f"/runs/{run_id}")
    (key,) = stack.s3.keys("runs/emu-0001/")
    body = stack.s3.client().get_object(Bucket=stack.s3.bucket, Key=key)["Body"].read()
    table = pq.read_table(io.BytesIO(body))
    assert table.num_rows == 1000
    assert {"city_name", "date", "temperature_max_f", "conditions", "forecast_issued_at"} <= set(table.column_names)


def test_databricks_sdk_cancels_a_run_and_sees_real_errors(stack: LocalStack):
    stack.databricks.set_outcome(101, "hang")
    jobs = workspace(stack).jobs
    run_id = jobs.run_now(job_id=101, job_parameters={"run_id": "emu-0002"}).response.run_id
    jobs.cancel_run(run_id)
    deadline = time.monotonic() + 10
    while (run := jobs.get_run(run_id)).state.life_cycle_state.value != "TERMINATED":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert run.state.result_state.value == "CANCELED"
    assert stack.s3.keys("runs/emu-0002/") == []
    with pytest.raises(InvalidParameterValue, match="Job 999 does not exist"):
        jobs.run_now(job_id=999)


def test_snowflake_connector_copies_from_the_stage_and_skips_files_already_loaded(stack: LocalStack, table):
    stack.databricks.export(stack.databricks.jobs[101].sql, {"run_id": "emu-0003"})
    with stack.snowflake.connect(database="ANALYTICS", schema="WEATHER") as connection:
        cursor = connection.cursor()
        statement = (f"COPY INTO {table} FROM @DATABRICKS_SHARE/runs/emu-0003/ FILE_FORMAT=(TYPE=PARQUET) "
                     "MATCH_BY_COLUMN_NAME=CASE_INSENSITIVE")
        cursor.execute(statement)
        columns = [column.name for column in cursor.description]
        (first,) = cursor.fetchall()
        cursor.execute(statement)
        (second,) = cursor.fetchall()
        cursor.execute(f"SELECT COUNT(*) FROM {table}")
        count = cursor.fetchone()[0]
    assert columns[:4] == ["file", "status", "rows_parsed", "rows_loaded"] and "first_error" in columns
    assert first[1:4] == ("LOADED", 1000, 1000)
    assert second[1] == "LOAD_SKIPPED"
    assert count == 1000


def test_boto3_reads_and_writes_the_share_bucket(stack: LocalStack):
    s3 = stack.s3.client()
    s3.put_object(Bucket=stack.s3.bucket, Key="scratch/hello.txt", Body=b"hi")
    assert s3.get_object(Bucket=stack.s3.bucket, Key="scratch/hello.txt")["Body"].read() == b"hi"


async def test_slack_bolt_socket_mode_receives_a_command_acks_and_its_posts_are_recorded(stack: LocalStack):
    client = AsyncWebClient(token=stack.slack.bot_token, base_url=f"{stack.slack.base_url}/api/")
    app = AsyncApp(client=client)

    @app.command("/sync")
    async def sync(ack, command, say):  # type: ignore[no-untyped-def]
        await ack(text="got it")
        await say(f"hello from {command['user_id']}")

    handler = AsyncSocketModeHandler(app, stack.slack.app_token)
    await handler.connect_async()
    try:
        ack = await stack.acall(stack.slack.send_command("hi"))
        assert ack["text"] == "got it" and ack["latency_ms"] < 3000
        await eventually(lambda: any(m.text == "hello from U0DEMO" for m in stack.slack.messages))
    finally:
        await handler.close_async()


@pytest.mark.parametrize(("only", "expected", "absent"), [
    (None, ("SLACK_BOT_TOKEN", "SLACK_APP_TOKEN", "SLACK_API_URL", "DATABRICKS_HOST", "DATABRICKS_TOKEN",
            "DATABRICKS_JOB_ID", "SNOWFLAKE_HOST", "SNOWFLAKE_PORT", "SNOWFLAKE_PROTOCOL", "SNOWFLAKE_STAGE"), ()),
    ("slack", ("SLACK_BOT_TOKEN", "SLACK_API_URL"), ("DATABRICKS_HOST", "SNOWFLAKE_HOST", "AWS_ENDPOINT_URL_S3")),
    ("s3", ("AWS_ENDPOINT_URL_S3",), ("SLACK_BOT_TOKEN", "DATABRICKS_HOST", "SNOWFLAKE_HOST")),
], ids=["all", "slack-alone", "s3-alone"])
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
    block = "".join(lines)
    for name in expected:
        assert f"export {name}=" in block
    for name in absent:
        assert f"export {name}=" not in block


def test_the_demo_runs_a_piped_session_to_success_and_lists_it():
    result = subprocess.run([sys.executable, "-m", "emulators", "demo"], cwd=ROOT, input="/sync\n/sync status\n",
                            capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "✅ SUCCESS: sync" in result.stdout and "1,000 rows" in result.stdout
    assert "Recent syncs" in result.stdout
    assert result.stdout.index("✅ SUCCESS") < result.stdout.index("Recent syncs")  # status after the run ended


def test_python_m_bot_names_every_missing_setting_and_exits():
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("SLACK_", "DATABRICKS_", "SNOWFLAKE_", "SYNC_"))}
    result = subprocess.run([sys.executable, "-m", "bot"], cwd=ROOT / "tests", env={**env, "PYTHONPATH": str(ROOT)},
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    for name in ("SLACK_BOT_TOKEN", "SLACK_APP_TOKEN", "DATABRICKS_JOB_ID", "SNOWFLAKE_TABLE"):
        assert name in result.stderr
