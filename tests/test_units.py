"""Logic without servers: the poll schedule, the state machine, settings, parsing, rendering, the store."""

from __future__ import annotations

import itertools
import logging
from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.commands import Action, parse_command
from bot.render import parent_message, recent_message, status_message, summary_text
from bot.settings import AccessPolicy, load_bot_settings
from orchestrator.logs import KeyValueFormatter
from orchestrator.models import (
    ALLOWED_TRANSITIONS,
    InvalidRunId,
    InvalidTransition,
    RunStatus,
    StepLog,
    SyncRun,
    SyncTarget,
    new_run_id,
    utcnow,
    validate_run_id,
)
from orchestrator.schedule import PollSchedule
from orchestrator.settings import SettingsError, load_settings
from orchestrator.snowflake import copy_statement, parse_copy_rows
from orchestrator.store import MemoryRunStore, SqliteRunStore, StoreError

ROOT = Path(__file__).resolve().parent.parent
TARGET = SyncTarget(job_id=1, database="DB", schema="S", table="T", stage="STAGE")
VALID_ENV = {
    "SLACK_BOT_TOKEN": "xoxb-test", "SLACK_APP_TOKEN": "xapp-test",
    "DATABRICKS_HOST": "https://dbc.example.com", "DATABRICKS_TOKEN": "dapi-test", "DATABRICKS_JOB_ID": "42",
    "SNOWFLAKE_ACCOUNT": "acct", "SNOWFLAKE_USER": "bot", "SNOWFLAKE_PASSWORD": "pw", "SNOWFLAKE_DATABASE": "DB",
    "SNOWFLAKE_SCHEMA": "S", "SNOWFLAKE_TABLE": "T", "SNOWFLAKE_STAGE": "STAGE",
}


# ---- poll schedule (a fake clock: the schedule's waits added up) ----------------------------------------------

def test_the_default_poll_schedule_starts_at_30s_and_grows_to_60s():
    waits = list(itertools.islice(PollSchedule().intervals(), 6))
    assert waits == [30, 45, 60, 60, 60, 60]


def test_polls_in_a_30_minute_run_cost_about_one_call_a_minute():
    clock, polls = 0.0, 0
    for wait in PollSchedule().intervals():
        if clock + wait > 30 * 60:
            break
        clock += wait
        polls += 1
    assert polls == 30  # 30 + 45 + 28 × 60 = 1755 s; one more wait would pass 1800 s


def test_the_schedule_honours_custom_bounds():
    assert list(itertools.islice(PollSchedule(1, 2).intervals(), 4)) == [1, 1.5, 2, 2]


# ---- the state machine ------------------------------------------------------------------------------------------

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
    for run_id in ids:
        assert validate_run_id(run_id) == run_id and len(run_id) <= 64


@pytest.mark.parametrize("bad", ["", "A-UPPER", "../etc", "x'; DROP TABLE t;--", "a/b", "a" * 80, "ab"])
def test_text_that_is_not_a_run_id_is_refused_before_sql_or_paths(bad):
    with pytest.raises(InvalidRunId):
        validate_run_id(bad)
    with pytest.raises(InvalidRunId):
        copy_statement(TARGET, "runs/", bad)


def test_the_copy_statement_has_the_documented_shape():
    assert copy_statement(TARGET, "runs/", "1127-abcdef") == (
        "COPY INTO T FROM @STAGE/runs/1127-abcdef/ FILE_FORMAT=(TYPE=PARQUET) MATCH_BY_COLUMN_NAME=CASE_INSENSITIVE")


def test_copy_result_rows_are_read_per_file_and_zero_files_is_empty():
    columns = ["file", "status", "rows_parsed", "rows_loaded", "error_limit", "errors_seen", "first_error",
               "first_error_line", "first_error_character", "first_error_column_name"]
    result = parse_copy_rows("q1", columns, [("s3://b/runs/x/a.parquet", "LOADED", 10, 10, 1, 0, None, None,
                                               None, None),
                                              ("s3://b/runs/x/b.parquet", "LOAD_SKIPPED", 0, 0, None, 1,
                                               "File was loaded before.", None, None, None)])
    assert (result.rows_loaded, result.files_loaded, result.files_skipped, result.failed_files) == (10, 1, 1, ())
    assert parse_copy_rows("q2", ["status"], [("Copy executed with 0 files processed.",)]).files == ()


# ---- settings -----------------------------------------------------------------------------------------------------

def test_every_missing_setting_is_named_at_once():
    with pytest.raises(SettingsError) as error:
        load_bot_settings({})
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
    ("SNOWFLAKE_PORT", "http", "TCP port"),
    ("SLACK_BOT_TOKEN", "xapp-wrong", "should start with xoxb-"),
    ("SNOWFLAKE_PRIVATE_KEY_FILE", "/nonexistent/key.p8", "does not exist"),
])
def test_a_malformed_setting_is_named_with_what_it_should_hold(name, value, expected):
    with pytest.raises(SettingsError) as error:
        load_bot_settings({**VALID_ENV, name: value})
    assert name in str(error.value) and expected in str(error.value)


def test_defaults_apply_when_sync_settings_are_unset():
    sync = load_settings(VALID_ENV).sync
    assert (sync.export_prefix, sync.poll_interval_seconds, sync.poll_max_interval_seconds,
            sync.run_timeout_seconds, sync.db_path) == ("runs/", 30, 60, 1800, "./syncbot.db")


def test_secrets_never_show_in_the_settings_repr():
    settings = load_bot_settings({**VALID_ENV, "SLACK_BOT_TOKEN": "xoxb-supersecret-1"})
    assert "supersecret" not in repr(settings) and "dapi-test" not in repr(settings)


def test_log_lines_are_key_value_and_scrub_secrets():
    formatter = KeyValueFormatter(secrets=["hunter2-password"])
    record = logging.LogRecord("syncbot", logging.INFO, __file__, 1, "run.step", None, None)
    record.fields = {"run_id": "1127-abcdef", "message": "login failed for hunter2-password"}
    line = formatter.format(record)
    assert "run.step run_id=1127-abcdef" in line and "hunter2-password" not in line and "***" in line


# ---- access -------------------------------------------------------------------------------------------------------

def test_access_needs_both_lists_to_allow_and_nobody_when_both_are_empty():
    assert AccessPolicy().refusal("U1", "C1") is not None
    assert AccessPolicy(frozenset({"*"})).refusal("U1", "C1") is None
    assert AccessPolicy(frozenset({"U1"})).refusal("U1", "C9") is None
    assert "SYNC_ALLOWED_USERS" in AccessPolicy(frozenset({"U1"})).refusal("U2", "C1")
    assert "SYNC_ALLOWED_CHANNELS" in AccessPolicy(frozenset({"U1"}), frozenset({"C1"})).refusal("U1", "C2")
    assert AccessPolicy(frozenset(), frozenset({"C1"})).refusal("U7", "C1") is None


# ---- command parsing ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "action", "run_id"), [
    ("", Action.START, None), ("  ", Action.START, None), ("help", Action.HELP, None),
    ("status", Action.RECENT, None), ("STATUS 1127-ABCDEF", Action.STATUS, "1127-abcdef"),
    ("status `1127-abcdef`", Action.STATUS, "1127-abcdef"), ("cancel 1127-abcdef", Action.CANCEL, "1127-abcdef"),
    ("cancel", Action.HELP, None), ("stats", Action.HELP, None),
])
def test_commands_parse(text, action, run_id):
    command = parse_command(text)
    assert (command.action, command.run_id) == (action, run_id)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=5000))
def test_any_text_parses_to_an_answer_and_never_an_unvalidated_run_id(text):
    command = parse_command(text)
    assert command.action in Action
    if command.run_id is not None:
        assert validate_run_id(command.run_id)
    if command.raw_run_id is not None:
        assert "`" not in command.raw_run_id and "<" not in command.raw_run_id and len(command.raw_run_id) <= 41


# ---- rendering ------------------------------------------------------------------------------------------------------

def _run(status: RunStatus, **fields) -> SyncRun:
    run = SyncRun(run_id="1127-abcdef", target=TARGET, status=status, requested_by="U1", **fields)
    run.steps.append(StepLog(at=run.created_at + timedelta(seconds=3), message="Databricks run 7 is <RUNNING>"))
    return run


@pytest.mark.parametrize("status", list(RunStatus))
def test_every_parent_text_carries_the_status_word_and_run_id(status):
    message = parent_message(_run(status, error="boom" if status in (RunStatus.FAILED, RunStatus.CANCELLED) else None))
    assert status.value in message["text"] and "1127-abcdef" in message["text"]
    has_cancel = "sync_cancel" in str(message["blocks"])
    assert has_cancel == (not status.is_final)


def test_success_shows_rows_and_failure_shows_the_reason():
    assert "1,000 rows from 1 file(s)" in summary_text(_run(RunStatus.SUCCESS, rows_loaded=1000, files_loaded=1))
    failed = parent_message(_run(RunStatus.FAILED, error="COPY failed: <bad>"))
    assert "COPY failed: &lt;bad&gt;" in str(failed["blocks"])  # API text cannot form Slack links


def test_status_lists_steps_with_offsets_and_recent_is_newest_first():
    text = status_message(_run(RunStatus.EXPORTING))["text"]
    assert "`+3s` Databricks run 7 is &lt;RUNNING&gt;" in text
    assert recent_message([])["text"].startswith("No syncs yet")


# ---- the store ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["sqlite", "memory"])
def test_the_store_keeps_runs_and_finds_unfinished_and_active_ones(kind, tmp_path):
    store = SqliteRunStore(tmp_path / "runs.db") if kind == "sqlite" else MemoryRunStore()
    done = _run(RunStatus.SUCCESS, rows_loaded=5)
    active = SyncRun(run_id="1127-bbbbbb", target=TARGET, status=RunStatus.EXPORTING,
                     created_at=utcnow() + timedelta(seconds=1))
    store.save(done)
    store.save(active)
    assert store.get("1127-abcdef") == done
    assert [run.run_id for run in store.recent(10)] == ["1127-bbbbbb", "1127-abcdef"]
    assert [run.run_id for run in store.unfinished()] == ["1127-bbbbbb"]
    assert store.active_for("DB.S.T").run_id == "1127-bbbbbb"
    assert store.get("1127-zzzzzz") is None


def test_a_corrupt_or_read_only_database_is_a_clear_start_up_error(tmp_path):
    corrupt = tmp_path / "corrupt.db"
    corrupt.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match=r"SYNC_DB_PATH=.*not a syncbot database"):
        SqliteRunStore(corrupt)
    with pytest.raises(StoreError, match="SYNC_DB_PATH"):
        SqliteRunStore(tmp_path / "missing-folder" / "runs.db")


# ---- the manifest ---------------------------------------------------------------------------------------------------

def test_the_manifest_is_valid_yaml_with_every_field_the_app_needs():
    manifest = yaml.safe_load((ROOT / "manifest.yaml").read_text())
    assert manifest["features"]["bot_user"]["display_name"] == "syncbot"
    (command,) = manifest["features"]["slash_commands"]
    assert command["command"] == "/sync" and command["description"] and command["usage_hint"]
    assert manifest["settings"]["socket_mode_enabled"] is True
    assert manifest["settings"]["interactivity"]["is_enabled"] is True
    assert set(manifest["oauth_config"]["scopes"]["bot"]) == {"commands", "chat:write"}


def test_env_example_names_every_setting_the_code_reads():
    example = (ROOT / ".env.example").read_text()
    for name in ("SLACK_BOT_TOKEN", "SLACK_APP_TOKEN", "SLACK_API_URL", "SYNC_ALLOWED_USERS", "SYNC_ALLOWED_CHANNELS",
                 "DATABRICKS_HOST", "DATABRICKS_TOKEN", "DATABRICKS_JOB_ID", "SNOWFLAKE_ACCOUNT", "SNOWFLAKE_USER",
                 "SNOWFLAKE_PASSWORD", "SNOWFLAKE_PRIVATE_KEY_FILE", "SNOWFLAKE_PRIVATE_KEY_PASSPHRASE",
                 "SNOWFLAKE_DATABASE", "SNOWFLAKE_SCHEMA", "SNOWFLAKE_TABLE", "SNOWFLAKE_STAGE", "SNOWFLAKE_ROLE",
                 "SNOWFLAKE_WAREHOUSE", "SNOWFLAKE_HOST", "SNOWFLAKE_PORT", "SNOWFLAKE_PROTOCOL",
                 "SYNC_EXPORT_PREFIX", "SYNC_POLL_INTERVAL_SECONDS", "SYNC_POLL_MAX_INTERVAL_SECONDS",
                 "SYNC_RUN_TIMEOUT_SECONDS", "SYNC_DB_PATH"):
        assert f"\n{name}=" in example, name


def test_with_a_history_the_schedule_polls_once_early_stays_quiet_then_polls_densely_near_the_usual_end():
    waits = list(itertools.islice(PollSchedule().intervals([600, 620, 700]), 40))
    clock = list(itertools.accumulate(waits))
    assert waits[0] == 30  # RUNNING, or an early failure, is still seen after 30 s
    assert clock[1] == pytest.approx(540)  # then quiet until 90 % of the shortest export
    first_default = next(i for i, at in enumerate(clock) if at >= 770) + 1  # 110 % of the longest, 700 s
    assert set(waits[2:first_default]) == {20}  # every 20 s in between
    assert waits[first_default:first_default + 4] == [30, 45, 60, 60]  # then the default schedule


def test_a_short_history_does_not_skip_the_early_polls():
    assert list(itertools.islice(PollSchedule().intervals([40, 50, 45]), 3)) == [30, 20, 20]
