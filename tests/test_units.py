"""Logic without servers: the poll schedule, the state machine, settings and syncs.toml, access, parsing, rendering
within Slack's limits, Databricks' answers, the statements' shapes, the pace, and the public surfaces."""

from __future__ import annotations

import ast
import asyncio
import itertools
import logging
import re
from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

import orchestrator
from bot.commands import Action, parse_command
from bot.pacing import NEW_RUN, OUTCOME, PROGRESS, SlackPacer
from bot.render import (
    BLOCKS_LIMIT,
    SECTION_LIMIT,
    parent_message,
    picker_message,
    status_message,
    step_text,
    steps_reply,
    summary_text,
)
from bot.settings import Access, load_bot_settings
from orchestrator.databricks import JobRunState
from orchestrator.logs import KeyValueFormatter
from orchestrator.models import (
    ALLOWED_TRANSITIONS,
    InvalidRunId,
    InvalidTransition,
    LoadMode,
    RunStatus,
    StepLog,
    SyncRun,
    SyncTarget,
    new_run_id,
    validate_run_id,
)
from orchestrator.schedule import PollSchedule
from orchestrator.settings import SettingsError, load_settings
from orchestrator.snowflake import (
    copy_statement,
    create_staging_statement,
    merge_statement,
    parse_copy_rows,
    staging_table,
    swap_statement,
)
from orchestrator.syncs import SyncDefinition

ROOT = Path(__file__).resolve().parent.parent
TARGET = SyncTarget(job_id=1, database="DB", schema="S", table="T", stage="STAGE")
VALID_ENV = {
    "SLACK_BOT_TOKEN": "xoxb-test", "SLACK_APP_TOKEN": "xapp-test",
    "DATABRICKS_HOST": "https://dbc.example.com", "DATABRICKS_TOKEN": "dapi-test", "DATABRICKS_JOB_ID": "42",
    "SNOWFLAKE_ACCOUNT": "acct", "SNOWFLAKE_USER": "bot", "SNOWFLAKE_PASSWORD": "pw", "SNOWFLAKE_DATABASE": "DB",
    "SNOWFLAKE_SCHEMA": "S", "SNOWFLAKE_TABLE": "T", "SNOWFLAKE_STAGE": "STAGE", "SYNC_CONFIG": "",
}


# ---- poll schedule (a fake clock: the schedule's waits added up) ----------------------------------------------

def test_the_default_poll_schedule_starts_at_30s_and_grows_to_60s():
    assert list(itertools.islice(PollSchedule().intervals(), 6)) == [30, 45, 60, 60, 60, 60]


def test_polls_in_a_30_minute_run_cost_about_one_call_a_minute():
    clock, polls = 0.0, 0
    for wait in PollSchedule().intervals():
        if clock + wait > 30 * 60:
            break
        clock += wait
        polls += 1
    assert polls == 30  # 30 + 45 + 28 × 60 = 1755 s; one more wait would pass 1800 s


def test_with_a_history_the_schedule_polls_once_early_stays_quiet_then_polls_densely_near_the_usual_end():
    waits = list(itertools.islice(PollSchedule().intervals([600, 620, 700]), 40))
    clock = list(itertools.accumulate(waits))
    assert waits[0] == 30 and clock[1] == pytest.approx(540)
    first_default = next(i for i, at in enumerate(clock) if at >= 770) + 1
    assert set(waits[2:first_default]) == {20}
    assert waits[first_default:first_default + 4] == [30, 45, 60, 60]


# ---- the state machine and run records -----------------------------------------------------------------------------

def test_only_the_documented_transitions_are_allowed():
    allowed = {(a, b) for a, targets in ALLOWED_TRANSITIONS.items() for b in targets}
    assert allowed == {
        (RunStatus.PENDING, RunStatus.EXPORTING), (RunStatus.PENDING, RunStatus.FAILED),
        (RunStatus.PENDING, RunStatus.CANCELLED), (RunStatus.EXPORTING, RunStatus.LOADING),
        (RunStatus.EXPORTING, RunStatus.FAILED), (RunStatus.EXPORTING, RunStatus.CANCELLED),
        (RunStatus.LOADING, RunStatus.SUCCESS), (RunStatus.LOADING, RunStatus.FAILED),
        (RunStatus.LOADING, RunStatus.CANCELLED),
    }
    for source, target in itertools.product(RunStatus, RunStatus):
        run = SyncRun(run_id="1127-abcdef", target=TARGET, status=source)
        if (source, target) in allowed:
            run.move_to(target)
            assert run.status is target and (run.finished_at is not None) == target.is_final
        else:
            with pytest.raises(InvalidTransition):
                run.move_to(target)


def test_run_ids_are_short_lowercase_and_safe_as_paths_and_tokens():
    ids = {new_run_id() for _ in range(500)}
    assert len(ids) == 500
    assert all(validate_run_id(run_id) == run_id and len(run_id) <= 64 for run_id in ids)


@pytest.mark.parametrize("bad", ["", "A-UPPER", "../etc", "x'; DROP TABLE t;--", "a/b", "a" * 80, "ab"])
def test_text_that_is_not_a_run_id_is_refused_before_sql_or_paths(bad):
    with pytest.raises(InvalidRunId):
        validate_run_id(bad)
    with pytest.raises(InvalidRunId):
        copy_statement("T", "STAGE", "runs/", bad)


def test_a_run_record_survives_a_round_trip_and_keeps_what_a_newer_release_added():
    run = SyncRun(run_id="1127-abcdef", target=TARGET, statements={"copy": "q1"}, warnings=["w"])
    data = run.to_dict() | {"approved_by": "U9"}
    again = SyncRun.from_dict(data)
    assert again.to_dict() == data and again.extra == {"approved_by": "U9"}
    assert again.sync_name == "t" and again.snowflake_query_id == "q1"


# ---- statements ----------------------------------------------------------------------------------------------------

def test_the_statements_have_the_documented_shapes():
    assert copy_statement("T", "STAGE", "runs/", "1127-abcdef") == (
        "COPY INTO T FROM @STAGE/runs/1127-abcdef/ FILE_FORMAT=(TYPE=PARQUET) MATCH_BY_COLUMN_NAME=CASE_INSENSITIVE "
        "PATTERN='.*[.]parquet'")
    assert staging_table("1127-abcdef") == "SYNCBOT_STAGING_1127_ABCDEF"
    replace = SyncTarget(**{**TARGET.__dict__, "mode": LoadMode.REPLACE})
    assert create_staging_statement(replace, "1127-abcdef") == (
        "CREATE TRANSIENT TABLE IF NOT EXISTS SYNCBOT_STAGING_1127_ABCDEF LIKE T COPY GRANTS")
    assert swap_statement(replace, "1127-abcdef") == "ALTER TABLE T SWAP WITH SYNCBOT_STAGING_1127_ABCDEF"
    merge = SyncTarget(**{**TARGET.__dict__, "mode": LoadMode.MERGE, "merge_keys": ("CITY", "DAY")})
    assert merge_statement(merge, "1127-abcdef", ["CITY", "DAY", "TEMP"]) == (
        "MERGE INTO T t USING SYNCBOT_STAGING_1127_ABCDEF s ON t.CITY = s.CITY AND t.DAY = s.DAY "
        "WHEN MATCHED THEN UPDATE SET t.TEMP = s.TEMP WHEN NOT MATCHED THEN INSERT (CITY, DAY, TEMP) "
        "VALUES (s.CITY, s.DAY, s.TEMP)")


def test_copy_result_rows_are_read_per_file_and_zero_files_is_empty():
    columns = ["file", "status", "rows_parsed", "rows_loaded", "error_limit", "errors_seen", "first_error",
               "first_error_line", "first_error_character", "first_error_column_name"]
    result = parse_copy_rows(columns, [("s3://b/runs/x/part-0.parquet", "LOADED", 10, 9, 1, 0, None, None, None,
                                        None)])
    assert (result.rows_parsed, result.rows_loaded, result.failed_files) == (10, 9, ())
    assert parse_copy_rows(["status"], [("Copy executed with 0 files processed.",)]).files == ()


# ---- Databricks' answers -------------------------------------------------------------------------------------------

def test_runs_get_is_read_status_first_then_state_and_an_unknown_state_keeps_its_name():
    both = JobRunState.from_json({"status": {"state": "TERMINATED", "termination_details": {
        "code": "RUN_EXECUTION_ERROR", "message": "boom"}}, "state": {"life_cycle_state": "TERMINATED",
                                                                       "result_state": "FAILED"}})
    assert (both.terminal, both.succeeded, both.label, both.message) == (True, False,
                                                                        "TERMINATED (RUN_EXECUTION_ERROR)", "boom")
    legacy = JobRunState.from_json({"state": {"life_cycle_state": "SKIPPED", "state_message": "busy"}})
    assert (legacy.terminal, legacy.label) == (True, "SKIPPED (SKIPPED)")
    new = JobRunState.from_json({"status": {"state": "WAITING_FOR_APPROVAL"}, "state": {"life_cycle_state": "X"}})
    assert (new.terminal, new.label) == (False, "WAITING_FOR_APPROVAL")
    queued = JobRunState.from_json({"status": {"state": "QUEUED", "queue_details": {"message": "limit"}}})
    assert queued.queued and queued.message == "limit"
    assert "PENDING" not in JobRunState.from_json({}).label


# ---- settings and syncs.toml --------------------------------------------------------------------------------------

def test_every_missing_setting_is_named_at_once():
    with pytest.raises(SettingsError) as error:
        load_bot_settings({"SYNC_CONFIG": ""})
    message = str(error.value)
    for name in ("SLACK_BOT_TOKEN", "SLACK_APP_TOKEN", "DATABRICKS_HOST", "DATABRICKS_TOKEN", "DATABRICKS_JOB_ID",
                 "SNOWFLAKE_ACCOUNT", "SNOWFLAKE_USER", "SNOWFLAKE_PRIVATE_KEY_FILE", "SNOWFLAKE_DATABASE",
                 "SNOWFLAKE_SCHEMA", "SNOWFLAKE_TABLE", "SNOWFLAKE_STAGE"):
        assert name in message
    assert "see .env.example" in message


@pytest.mark.parametrize(("name", "value", "expected"), [
    ("DATABRICKS_JOB_ID", "abc", "positive whole number"),
    ("SNOWFLAKE_TABLE", "T; DROP", "plain Snowflake identifier"),
    ("SYNC_POLL_INTERVAL_SECONDS", "soon", "number of seconds"),
    ("SYNC_LEASE_SECONDS", "0", "number of seconds"),
    ("SNOWFLAKE_PORT", "http", "TCP port"),
    ("SLACK_BOT_TOKEN", "xapp-wrong", "should start with xoxb-"),
    ("SNOWFLAKE_PRIVATE_KEY_FILE", "/nonexistent/key.p8", "does not exist"),
    ("SYNC_DB_URL", "mysql://x", "postgresql://"),
    ("SYNC_HTTP_PORT", "eighty", "TCP port"),
    ("SYNC_API_TOKEN", "short", "shorter than 16"),
    ("SYNC_CONFIG", "/nonexistent/syncs.toml", "no such file"),
])
def test_a_malformed_setting_is_named_with_what_it_should_hold(name, value, expected):
    with pytest.raises(SettingsError) as error:
        load_bot_settings({**VALID_ENV, "SYNC_HTTP_PORT": "8080", name: value})
    assert name in str(error.value) and expected in str(error.value)


def test_defaults_apply_when_sync_settings_are_unset():
    settings = load_settings(VALID_ENV)
    sync = settings.sync
    assert (sync.export_prefix, sync.poll_interval_seconds, sync.poll_max_interval_seconds, sync.run_timeout_seconds,
            sync.load_timeout_seconds, sync.resume_grace_seconds, sync.lease_seconds, sync.db_path, sync.db_url) == (
        "runs/", 30, 60, 1800, 1800, 300, 30, "./syncbot.db", None)
    (only,) = settings.syncs.values()  # no syncs.toml: one sync, named after its table
    assert only.name == "t" and only.target.mode is LoadMode.APPEND and only.target.file_format == "SYNCBOT_PARQUET"


def test_repr_of_every_settings_object_hides_every_secret():
    secrets = {"SLACK_BOT_TOKEN": "xoxb-supersecret-1", "SLACK_APP_TOKEN": "xapp-supersecret-2",
               "DATABRICKS_TOKEN": "dapi-supersecret-3", "SNOWFLAKE_PASSWORD": "supersecret-4",
               "SNOWFLAKE_PRIVATE_KEY_PASSPHRASE": "supersecret-5", "SYNC_API_TOKEN": "supersecret-6-longer-than-16",
               "SYNC_DB_URL": "postgresql://bot:supersecret-7@db.internal/syncbot", "SYNC_HTTP_PORT": "8080"}
    bot = load_bot_settings({**VALID_ENV, **secrets})
    objects = [bot, bot.http, bot.access, bot.orchestrator, bot.orchestrator.databricks, bot.orchestrator.snowflake,
               bot.orchestrator.sync, *bot.orchestrator.syncs.values()]
    for item in objects:
        assert "supersecret" not in repr(item), type(item).__name__
    assert bot.orchestrator.sync.store_description == "PostgreSQL at postgresql://bot:***@db.internal/syncbot"
    assert "supersecret-7" in bot.orchestrator.secrets  # …and the log scrubber knows it


def write(tmp_path: Path, text: str) -> dict[str, str]:
    path = tmp_path / "syncs.toml"
    path.write_text(text)
    return {**VALID_ENV, "SYNC_CONFIG": str(path)}


def test_syncs_toml_describes_several_syncs_and_keys_left_out_fall_back_to_the_environment(tmp_path):
    settings = load_settings(write(tmp_path, """
[syncs.forecast]
description = "Daily forecast"
databricks_job_id = 101
job_parameters = { region = "us", days = 7 }
snowflake_table = "FORECAST_DAILY"
mode = "merge"
merge_keys = ["city_name", "date"]
create_table = true
on_column_mismatch = "warn"
allowed_users = ["U0123ABC"]
allowed_channels = ["C0123ABC"]
run_timeout_seconds = 600
report_channel = "C0REPORTS"
[syncs.other]
"""))
    forecast, other = settings.syncs["forecast"], settings.syncs["other"]
    assert forecast.target.job_parameters == (("days", "7"), ("region", "us"))
    assert (forecast.target.mode, forecast.target.merge_keys, forecast.target.create_table) == (
        LoadMode.MERGE, ("city_name", "date"), True)
    assert (forecast.target.database, forecast.target.stage) == ("DB", "STAGE")  # from SNOWFLAKE_DATABASE/_STAGE
    assert (forecast.run_timeout_seconds, forecast.report_channel) == (600, "C0REPORTS")
    assert (other.target.job_id, other.target.table, other.target.mode) == (42, "T", LoadMode.APPEND)


@pytest.mark.parametrize(("text", "expected"), [
    ('[syncs.a]\nmode = "replcae"\n', "syncs.toml [syncs.a] mode: 'replcae' should be one of append, replace, merge"),
    ('[syncs.a]\nmode = "merge"\n', "[syncs.a] merge_keys: mode = \"merge\" needs the columns"),
    ('[syncs.a]\nmerge_keys = ["x"]\n', "[syncs.a] merge_keys: only used with mode = \"merge\""),
    ('[syncs.a]\nsnowflake_tabel = "T"\n', "[syncs.a] snowflake_tabel: unknown key"),
    ('[syncs.a]\njob_parameters = { run_id = "x" }\n', "[syncs.a] job_parameters: run_id is set by syncbot"),
    ('[syncs.a]\ndatabricks_job_id = "101"\n', "[syncs.a] databricks_job_id: '101' should be a positive whole number"),
    ('[syncs.a]\nsnowflake_table = "X-Y"\n', "[syncs.a] snowflake_table: 'X-Y' is not a plain Snowflake identifier"),
    ('[syncs.Bad_Name]\n', "[syncs.Bad_Name]: the name should be lower-case"),
    ('[syncs.status]\n', "[syncs.status]: the name should be"),
    ('[syncs.a\n', "not valid TOML"),
    ('[other]\n', "no syncs"),
])
def test_a_bad_syncs_toml_stops_start_up_naming_the_entry_and_the_key(tmp_path, text, expected):
    with pytest.raises(SettingsError) as error:
        load_settings(write(tmp_path, text))
    assert expected in str(error.value)


def test_log_lines_are_key_value_and_scrub_secrets():
    formatter = KeyValueFormatter(secrets=["hunter2-password"])
    record = logging.LogRecord("syncbot", logging.INFO, __file__, 1, "run.step", None, None)
    record.fields = {"run_id": "1127-abcdef", "message": "login failed for hunter2-password"}
    line = formatter.format(record)
    assert "run.step run_id=1127-abcdef" in line and "hunter2-password" not in line and "***" in line


# ---- access ---------------------------------------------------------------------------------------------------------

def sync(users: set[str] = frozenset(), channels: set[str] = frozenset()) -> SyncDefinition:  # type: ignore[assignment]
    return SyncDefinition("s", "", TARGET, frozenset(users), frozenset(channels), 1800)


def test_who_may_run_cancel_and_see_what():
    access = Access(admins=frozenset({"UBOSS"}))
    assert "Nobody may start the sync `s`" in access.refusal(sync(), "U1", "C1")
    assert access.refusal(sync({"*"}), "U1", "C1") is None
    assert "allowed_users" in access.refusal(sync({"U1"}), "U2", "C1")
    assert "allowed_channels" in access.refusal(sync({"U1"}, {"C1"}), "U1", "C2")
    run = SyncRun(run_id="1127-abcdef", target=TARGET, requested_by="U1", context={"channel": "C1"}, private=True)
    definition = sync({"U2"}, {"C1"})
    assert access.cancel_refusal(run, definition, "U1") is None  # the requester
    assert access.cancel_refusal(run, definition, "U2") is None  # allowed to run it in the run's own channel
    assert access.cancel_refusal(run, definition, "UBOSS") is None  # an admin
    assert "You may not cancel" in access.cancel_refusal(run, definition, "U3")
    assert access.may_see(run, "U1") and not access.may_see(run, "U2")


# ---- command parsing ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "action", "run_id", "name"), [
    ("", Action.START, None, None), ("  ", Action.START, None, None), ("help", Action.HELP, None, None),
    ("list", Action.LIST, None, None), ("forecast", Action.START, None, "forecast"),
    ("run forecast", Action.START, None, "forecast"), ("status", Action.RECENT, None, None),
    ("STATUS 1127-ABCDEF", Action.STATUS, "1127-abcdef", None),
    ("status `1127-abcdef`", Action.STATUS, "1127-abcdef", None),
    ("cancel 1127-abcdef", Action.CANCEL, "1127-abcdef", None), ("cancel", Action.HELP, None, None),
    ("stats", Action.HELP, None, None), ("forcast", Action.HELP, None, None),
])
def test_commands_parse(text, action, run_id, name):
    command = parse_command(text, {"forecast", "history"})
    assert (command.action, command.run_id, command.sync_name) == (action, run_id, name)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=5000))
def test_any_text_parses_to_an_answer_and_never_an_unvalidated_run_id(text):
    command = parse_command(text, {"forecast"})
    assert command.action in Action
    if command.run_id is not None:
        assert validate_run_id(command.run_id)
    if command.raw_run_id is not None:
        assert "`" not in command.raw_run_id and "<" not in command.raw_run_id and len(command.raw_run_id) <= 41
    assert command.sync_name in (None, "forecast")


# ---- rendering ------------------------------------------------------------------------------------------------------

def _run(status: RunStatus, **fields) -> SyncRun:
    run = SyncRun(run_id="1127-abcdef", target=TARGET, status=status, requested_by="U1", **fields)
    run.steps.append(StepLog(at=run.created_at + timedelta(seconds=3), message="Databricks run 7 is <RUNNING>"))
    return run


@pytest.mark.parametrize("status", list(RunStatus))
def test_every_parent_carries_the_status_word_run_id_and_metadata(status):
    message = parent_message(_run(status, error="boom" if status in (RunStatus.FAILED, RunStatus.CANCELLED) else None))
    assert status.value in message["text"] and "1127-abcdef" in message["text"]
    assert message["metadata"] == {"event_type": "sync_run", "event_payload": {
        "run_id": "1127-abcdef", "status": status.value, "sync": "t", "rows_loaded": None}}
    assert ("sync_cancel" in str(message["blocks"])) == (not status.is_final)


def test_whatever_the_error_the_parent_fits_slack_s_limits_and_mentions_nobody():
    message = parent_message(_run(RunStatus.FAILED, error="<!channel> <@U0X> " + "y" * 20_000))
    assert len(message["text"]) <= SECTION_LIMIT and len(message["blocks"]) <= BLOCKS_LIMIT
    assert all(len(block.get("text", {}).get("text", "")) <= SECTION_LIMIT for block in message["blocks"])
    assert "<!channel>" not in str(message) and "<@U0X>" not in str(message) and "…" in str(message)
    assert len(status_message(_run(RunStatus.FAILED, error="y" * 20_000))["text"]) > 20_000  # whole in status


def test_steps_render_escaped_with_their_actor_and_batch_into_one_reply_within_the_limit():
    step = StepLog(at=_run(RunStatus.PENDING).created_at, message="Cancel requested <now>", actor="U0ANA")
    assert step_text(step) == "Cancel requested &lt;now&gt; (by <@U0ANA>)"
    many = [StepLog(at=step.at, message=f"step {n} " + "z" * 500) for n in range(20)]
    reply = steps_reply(many)
    assert len(reply) <= 3000 and reply.startswith("step 0") and "more step(s)" in reply


def test_success_shows_rows_and_the_receipt():
    run = _run(RunStatus.SUCCESS, rows_loaded=1000, rows_parsed=1000, files_loaded=2, table_rows=1000,
               statements={"copy": "q1"})
    assert "1,000 rows from 2 file(s) loaded (append)" in summary_text(run)
    receipt = str(parent_message(run)["blocks"])
    assert "Parsed 1,000 · loaded 1,000 rows from 2 file(s)" in receipt and "copy `q1`" in receipt


def test_the_picker_fits_slack_s_limits_with_many_syncs():
    syncs = [SyncDefinition(f"sync{n}", "d" * 400, TARGET, frozenset({"*"}), frozenset(), 1800) for n in range(60)]
    message = picker_message(syncs)
    assert len(message["blocks"]) <= BLOCKS_LIMIT and "more: `/sync list`" in str(message["blocks"][-1])


# ---- the pace -------------------------------------------------------------------------------------------------------

async def test_the_pacer_serves_urgent_calls_first_when_a_channel_is_busy():
    pacer = SlackPacer(post_per_second=20, post_burst=1)
    await pacer.turn("chat.postMessage", "C1")  # the burst is spent
    order: list[str] = []

    async def call(name: str, priority: int) -> None:
        await pacer.turn("chat.postMessage", "C1", priority=priority)
        order.append(name)

    await asyncio.gather(call("progress-1", PROGRESS), call("new-run", NEW_RUN), call("progress-2", PROGRESS),
                         call("outcome", OUTCOME))
    assert order == ["outcome", "new-run", "progress-1", "progress-2"]
    await pacer.turn("chat.postMessage", "C2")  # another channel has its own lane: no wait for C1's queue


# ---- public surfaces and the manifest ----------------------------------------------------------------------------

def test_the_orchestrator_s_public_surface_is_pinned_and_the_bot_imports_only_it():
    assert set(orchestrator.__all__) == {
        "RUN_ID_PATTERN", "SYNC_NAME", "CancelOutcome", "ColumnMismatch", "EnvReader", "InvalidRunId", "LoadMode",
        "Metrics", "RunCancelled", "RunEvent", "RunFailed", "RunStatus", "RunSummary", "Settings", "SettingsError",
        "StartResult", "StepLog", "StoreError", "SyncDefinition", "SyncRun", "SyncService", "SyncTarget",
        "UnknownSync", "build_doctor", "build_service", "configure_logging", "format_duration", "load_settings",
        "log_event", "read_settings", "redact_url", "validate_run_id"}
    for path in (ROOT / "bot").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("orchestrator"):
                assert node.module == "orchestrator", f"{path.name} imports {node.module}"
                assert all(alias.name in orchestrator.__all__ for alias in node.names), path.name


def test_the_manifest_is_valid_yaml_with_every_field_the_app_needs():
    manifest = yaml.safe_load((ROOT / "manifest.yaml").read_text())
    assert manifest["features"]["bot_user"]["display_name"] == "syncbot"
    (command,) = manifest["features"]["slash_commands"]
    assert command["command"] == "/sync" and command["description"]
    for form in ("<name>", "list", "status", "cancel", "help"):
        assert form in command["usage_hint"]
    assert manifest["settings"]["socket_mode_enabled"] is True
    assert manifest["settings"]["interactivity"]["is_enabled"] is True
    assert set(manifest["oauth_config"]["scopes"]["bot"]) == {"commands", "chat:write"}


def test_env_example_names_every_setting_the_code_reads():
    example = (ROOT / ".env.example").read_text()
    names = set()
    for path in [*(ROOT / "orchestrator").glob("*.py"), *(ROOT / "bot").glob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and \
                    re.fullmatch(r"(SLACK|DATABRICKS|SNOWFLAKE|SYNC)_[A-Z0-9_]+", node.value):
                names.add(node.value)
    names -= {"SNOWFLAKE_JWT", "SYNC_NAME"}  # the connector's authenticator; a pattern's name: not settings
    missing = [name for name in sorted(names) if f"\n{name}=" not in example and f"\n# {name}=" not in example]
    assert not missing, missing
