"""The Slack bot end to end: slack-bolt's real Socket Mode handler, connected to the Slack emulator, driving the
orchestrator against the Databricks and Snowflake emulators."""

from __future__ import annotations

import pytest

from emulators import LocalStack
from emulators.slack import DEMO_USER_ID
from orchestrator import RunStatus

from .conftest import eventually, table_name
from .helpers import command, final_parent, run_id_in, running_bot

pytestmark = pytest.mark.e2e


async def test_sync_acks_at_once_then_shows_the_run_live_in_a_thread_to_success(stack: LocalStack, env, table):
    async with running_bot(stack, env):
        ack = await command(stack, "")
        assert ack["latency_ms"] < 3000
        run_id = run_id_in(ack)
        assert run_id in stack.slack.ephemeral_texts(DEMO_USER_ID)[-1]

        parent = await final_parent(stack, run_id, "SUCCESS")

    assert parent.text.startswith(f"✅ SUCCESS: sync {run_id} to {table_name(table)}")
    assert "1,000 rows" in parent.text
    assert parent.edits >= 3  # kept current: PENDING → EXPORTING → LOADING → SUCCESS
    assert any("EXPORTING" in text for text in parent.history) and any("LOADING" in text for text in parent.history)
    replies = [reply.text for reply in stack.slack.replies(parent)]
    assert "triggered: run" in replies[0]
    assert any("RUNNING" in text for text in replies)
    assert any(text.startswith("COPY INTO") for text in replies)
    assert any("part-00000" in text and "LOADED, 1000 rows" in text for text in replies)
    assert any(f"Loaded 1,000 rows from 1 file(s) into {table_name(table)}" in text for text in replies)
    assert stack.snowflake.count_rows(table_name(table)) == 1000
    fields = str(parent.blocks)
    assert "Open in Databricks" in fields and "sync_cancel" not in fields  # the Cancel button goes at the end


async def test_a_failing_job_shows_failed_with_the_reason_in_the_thread(stack: LocalStack, env, table):
    stack.databricks.set_outcome(101, "fail", "Task export failed: [PERMISSION_DENIED] no SELECT on samples",
                                 duration_seconds=0.3)
    async with running_bot(stack, env):
        run_id = run_id_in(await command(stack, ""))
        parent = await final_parent(stack, run_id, "FAILED")
    assert "[PERMISSION_DENIED] no SELECT on samples" in parent.text
    assert "[PERMISSION_DENIED]" in stack.slack.thread_text(run_id)
    assert stack.snowflake.count_rows(table_name(table)) == 0


async def test_status_recent_help_and_unknown_ids_answer_the_requester_only(stack: LocalStack, env, table):
    async with running_bot(stack, env):
        run_id = run_id_in(await command(stack, ""))
        await final_parent(stack, run_id, "SUCCESS")

        one = await command(stack, f"status {run_id}")
        recent = await command(stack, "status")
        usage = await command(stack, "help")
        unknown = await command(stack, "status 0101-zzzzzz")
        garbage = await command(stack, "status '; DROP TABLE runs; --")
        typo = await command(stack, "stauts")
    assert one["text"].startswith(f"✅ SUCCESS: sync {run_id}") and "Steps:" in one["text"]
    assert "COPY INTO" in one["text"]
    assert recent["text"].startswith("*Recent syncs*") and run_id in recent["text"]
    assert "/sync cancel <run-id>" in usage["text"]
    assert "No sync run `0101-zzzzzz` was found" in unknown["text"]
    assert "takes one run id" in garbage["text"] and "/sync status" in garbage["text"]
    assert "I don't know `/sync stauts`" in typo["text"] and "/sync status" in typo["text"]
    # all of these were ephemeral: only the parent of the one run is in the channel
    assert len(stack.slack.parents()) == len({m.ts for m in stack.slack.parents()})
    assert not any("Recent syncs" in m.text for m in stack.slack.messages)


async def test_cancel_by_command_and_by_button_ends_the_run_cancelled(stack: LocalStack, env, table):
    stack.databricks.set_outcome(101, "hang")
    async with running_bot(stack, env) as bot:
        first = run_id_in(await command(stack, ""))
        await eventually(lambda: bot.service.get(first).status is RunStatus.EXPORTING)
        answer = await command(stack, f"cancel {first}")
        assert f"Cancelling sync `{first}`" in answer["text"]
        await final_parent(stack, first, "CANCELLED")
        again = await command(stack, f"cancel {first}")
        assert "already finished (CANCELLED)" in again["text"]

        second = run_id_in(await command(stack, ""))
        parent = await eventually(lambda: stack.slack.find_parent(second))
        await eventually(lambda: "sync_cancel" in str(stack.slack.find_parent(second).blocks))
        await stack.acall(stack.slack.click(stack.slack.find_parent(second), "sync_cancel"))
        parent = await final_parent(stack, second, "CANCELLED")
    assert f"Cancelled by <@{DEMO_USER_ID}>" in stack.slack.thread_text(second)
    assert any("Cancelling sync" in e.text and e.via == "response_url" for e in stack.slack.ephemerals)
    databricks_runs = stack.databricks.runs_for(first) + stack.databricks.runs_for(second)
    assert [run.result_state for run in databricks_runs] == ["CANCELED", "CANCELED"]
    assert "sync_cancel" not in str(parent.blocks)  # no Cancel button once final


async def test_a_user_outside_the_allowlist_cannot_start_or_cancel(stack: LocalStack, env, table):
    env = {**env, "SYNC_ALLOWED_USERS": "U0ADMIN", "SYNC_ALLOWED_CHANNELS": ""}
    calls_before = stack.databricks.calls_to("run-now")
    async with running_bot(stack, env):
        refused = await command(stack, "", user="U0INTRUDER")
        cancel = await command(stack, "cancel 0101-abcdef", user="U0INTRUDER")
        status = await command(stack, "status", user="U0INTRUDER")
        allowed = await command(stack, "", user="U0ADMIN")
        await final_parent(stack, run_id_in(allowed), "SUCCESS")
    assert "not allowed" in refused["text"] and "SYNC_ALLOWED_USERS" in refused["text"]
    assert "U0INTRUDER" in refused["text"]
    assert "not allowed" in cancel["text"]
    assert status["text"].startswith("*Recent syncs*") or status["text"].startswith("No syncs")
    assert stack.databricks.calls_to("run-now") == calls_before + 1  # only the admin's


async def test_with_no_allowlist_nobody_may_start_and_the_admin_is_told_what_to_set(stack: LocalStack, env, table):
    env = {**env, "SYNC_ALLOWED_USERS": "", "SYNC_ALLOWED_CHANNELS": ""}
    calls_before = len(stack.databricks.calls)
    async with running_bot(stack, env):
        refused = await command(stack, "")
    assert "SYNC_ALLOWED_USERS" in refused["text"] and "Nobody" in refused["text"]
    assert len(stack.databricks.calls) == calls_before


async def test_a_second_sync_while_one_is_active_answers_with_the_active_run(stack: LocalStack, env, table):
    stack.databricks.set_outcome(101, "success", duration_seconds=3)
    async with running_bot(stack, env):
        first = run_id_in(await command(stack, ""))
        second = await command(stack, "")
        await final_parent(stack, first, "SUCCESS")
    assert f"already running: `{first}`" in second["text"]
    assert stack.snowflake.count_rows(table_name(table)) == 1000


async def test_after_a_bot_restart_the_run_finishes_in_its_original_thread(stack: LocalStack, env, table):
    stack.databricks.set_outcome(101, "success", duration_seconds=4)
    async with running_bot(stack, env) as bot:
        run_id = run_id_in(await command(stack, ""))
        await eventually(lambda: bot.service.get(run_id).status is RunStatus.EXPORTING)
        await eventually(lambda: stack.slack.find_parent(run_id))
    assert stack.slack.find_parent(run_id).text.startswith("📤 EXPORTING")

    async with running_bot(stack, env):
        parent = await final_parent(stack, run_id, "SUCCESS")

    assert [m.ts for m in stack.slack.parents() if run_id in m.text] == [parent.ts]  # one parent, updated
    assert "Resumed after a restart (was EXPORTING)" in stack.slack.thread_text(run_id)
    assert len(stack.databricks.runs_for(run_id)) == 1
    assert stack.snowflake.count_rows(table_name(table)) == 1000


async def test_not_in_channel_tells_the_user_and_follows_the_run_in_a_dm(stack: LocalStack, env, table):
    async with running_bot(stack, env):
        run_id = run_id_in(await command(stack, "", channel="C0PRIVATE"))
        parent = await final_parent(stack, run_id, "SUCCESS")
    assert parent.channel == f"D{DEMO_USER_ID[1:]}"
    notice = [e for e in stack.slack.ephemerals if "invite me" in e.text]
    assert notice and notice[0].via == "response_url" and "direct messages" in notice[0].text
    assert stack.snowflake.count_rows(table_name(table)) == 1000
