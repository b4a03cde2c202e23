"""The Slack bot end to end: slack-bolt's real Socket Mode handler, connected to the Slack stand-in, driving the
orchestrator against the Databricks and Snowflake stand-ins. What a person in the channel sees."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from emulators import LocalStack
from emulators.slack import DEMO_USER_ID, OTHER_CHANNEL_ID, PRIVATE_CHANNEL_ID, PRIVATE_MEMBER_CHANNEL_ID
from orchestrator import RunStatus

from .conftest import eventually, table_name
from .helpers import command, final_parent, run_id_in, running_bot

pytestmark = pytest.mark.e2e
DM = f"D{DEMO_USER_ID[1:]}"


def two_syncs(tmp_path: Path, table: str, stack: LocalStack) -> str:
    other = f"O_{table}"
    stack.snowflake.create_table(table_name(other))
    path = tmp_path / "syncs.toml"
    path.write_text(f"""
[syncs.daily]
description = "Daily forecasts"
snowflake_table = "{table}"
mode = "replace"
[syncs.history]
description = "Forecast history"
snowflake_table = "{other}"
allowed_users = ["U0ADMIN"]
""")
    return str(path)


async def test_sync_acks_at_once_then_shows_the_run_live_in_a_thread_with_its_receipt(stack: LocalStack, env, table):
    async with running_bot(stack, env):
        ack = await command(stack, "")
        assert ack["latency_ms"] < 3000
        run_id = run_id_in(ack)
        assert run_id in stack.slack.ephemeral_texts(DEMO_USER_ID)[-1]
        parent = await final_parent(stack, run_id, "SUCCESS")

    assert parent.text.startswith(f"✅ SUCCESS: sync {run_id} to {table_name(table)}")
    assert "1,000 rows from 2 file(s) loaded (append)" in parent.text
    assert parent.run == {"run_id": run_id, "status": "SUCCESS", "sync": table.lower(), "rows_loaded": 1000}
    assert any("EXPORTING" in text for text in parent.history) and any("LOADING" in text for text in parent.history)
    replies = stack.slack.replies(parent)
    texts = "\n".join(reply.text for reply in replies)
    assert "triggered: run" in replies[0].text and "RUNNING" in texts
    assert "part-00000" in texts and "part-00001" in texts and "LOADED, 500 of 500 rows" in texts
    assert f"Loaded 1,000 rows from 2 file(s) into {table_name(table)}" in texts
    assert parent.seq > max(reply.seq for reply in replies)  # the parent's final update is the last call
    receipt = str(parent.blocks)
    assert "Parsed 1,000 · loaded 1,000 rows from 2 file(s)" in receipt and "now has 1,000 rows" in receipt
    assert "copy `" in receipt and "export " in receipt and "load " in receipt
    assert "Open in Databricks" in receipt and "sync_cancel" not in receipt  # no Cancel button once final
    assert stack.snowflake.count_rows(table_name(table)) == 1000


async def test_several_syncs_give_a_picker_of_what_this_person_may_run_and_list_shows_them(stack, env, table,
                                                                                           tmp_path):
    env = {**env, "SYNC_CONFIG": two_syncs(tmp_path, table, stack)}
    async with running_bot(stack, env):
        picker = await command(stack, "")
        names = [block["accessory"]["value"] for block in picker["blocks"] if "accessory" in block]
        assert names == ["daily"]  # history is for U0ADMIN only: not offered to this user
        admin_picker = await command(stack, "", user="U0ADMIN")
        assert [b["accessory"]["value"] for b in admin_picker["blocks"] if "accessory" in b] == ["daily", "history"]
        refused = await command(stack, "history")
        assert "not allowed to run the sync `history`" in refused["text"]
        unknown = await command(stack, "hstory")
        assert "There is no sync named `hstory`" in unknown["text"] and "`daily`" in unknown["text"]
        shown = next(e for e in stack.slack.ephemerals if e.blocks and e.user == DEMO_USER_ID)
        await stack.acall(stack.slack.click(shown, "sync_start", value="daily"))
        started = await eventually(lambda: next((e for e in stack.slack.ephemerals if e.via == "response_url"
                                                 and "Starting sync" in e.text), None))
        run_id = run_id_in({"text": started.text})
        await final_parent(stack, run_id, "SUCCESS")
        listing = await command(stack, "list", user="U0ADMIN")
        usage = await command(stack, "help")
    assert "`daily` → `ANALYTICS.WEATHER." in listing["text"] and "(replace)" in listing["text"]
    assert f"last run: ✅ SUCCESS `{run_id}`" in listing["text"] and "1,000 rows" in listing["text"]
    assert "`history`" in listing["text"] and "never run" in listing["text"]
    assert "/sync <name>" in usage["text"] and "/sync list" in usage["text"]


async def test_status_shows_a_run_from_a_dm_or_private_channel_only_to_its_requester(stack, env, table):
    async with running_bot(stack, env):
        private = run_id_in(await command(stack, "", channel=DM))
        await final_parent(stack, private, "SUCCESS")
        secret = run_id_in(await command(stack, "", channel=PRIVATE_MEMBER_CHANNEL_ID))
        await final_parent(stack, secret, "SUCCESS")
        public = run_id_in(await command(stack, ""))
        await final_parent(stack, public, "SUCCESS")
        mine = await command(stack, "status")
        theirs = await command(stack, "status", user="U0OTHER")
        one_theirs = await command(stack, f"status {private}", user="U0OTHER")
        one_mine = await command(stack, f"status {private}")
    assert private in mine["text"] and secret in mine["text"] and public in mine["text"]
    assert public in theirs["text"] and private not in theirs["text"] and secret not in theirs["text"]
    assert f"No sync run `{private}` was found" in one_theirs["text"]
    assert one_mine["text"].startswith(f"✅ SUCCESS: sync {private}") and "Steps:" in one_mine["text"]


async def test_cancel_by_the_requester_an_allowed_user_or_an_admin_and_nobody_else(stack, env, table):
    stack.databricks.set_outcome(101, "hang")
    env = {**env, "SYNC_ALLOWED_USERS": "U0DEMO,U0TEAMMATE", "SYNC_ADMINS": "U0BOSS"}
    async with running_bot(stack, env):
        for canceller in ("U0DEMO", "U0TEAMMATE", "U0BOSS"):
            run_id = run_id_in(await command(stack, ""))
            refused = await command(stack, f"cancel {run_id}", user="U0STRANGER")
            assert "You may not cancel" in refused["text"] and "SYNC_ADMINS" in refused["text"]
            answer = await command(stack, f"cancel {run_id}", user=canceller)
            assert f"Cancelling sync `{run_id}`" in answer["text"]
            parent = await final_parent(stack, run_id, "CANCELLED")
            assert f"Cancelled by* <@{canceller}>" in str(parent.blocks)
            assert f"Cancel requested (by <@{canceller}>)" in stack.slack.thread_text(run_id)
            assert stack.databricks.runs_for(run_id)[0].result_state == "CANCELED"
            again = await command(stack, f"cancel {run_id}")
            assert "already finished (CANCELLED)" in again["text"]


async def test_the_cancel_button_judges_the_run_s_own_channel_even_when_its_thread_moved_to_dms(stack, env, table):
    stack.databricks.set_outcome(101, "hang")
    env = {**env, "SYNC_ALLOWED_USERS": "*", "SYNC_ALLOWED_CHANNELS": OTHER_CHANNEL_ID}
    async with running_bot(stack, env):
        run_id = run_id_in(await command(stack, "", channel=OTHER_CHANNEL_ID))  # the bot is not in that channel
        parent = await eventually(lambda: (p := stack.slack.find_parent(run_id)) and "sync_cancel" in str(p.blocks)
                                  and p)
        assert parent.channel == DM  # followed in the requester's DMs
        await stack.acall(stack.slack.click(parent, "sync_cancel", user="U0TEAMMATE"))
        await final_parent(stack, run_id, "CANCELLED")
    notes = [e.text for e in stack.slack.ephemerals if e.via == "response_url"]
    assert any(f"Cancelling sync `{run_id}`" in text for text in notes)
    assert any("invite me" in text and "direct messages" in text for text in notes)


async def test_a_private_channel_the_bot_is_not_in_gets_the_thread_in_dms(stack, env, table):
    async with running_bot(stack, env):
        run_id = run_id_in(await command(stack, "", channel=PRIVATE_CHANNEL_ID))
        parent = await final_parent(stack, run_id, "SUCCESS")
    assert parent.channel == DM
    assert ("chat.postMessage", "channel_not_found") in stack.slack.refused
    assert any("channel_not_found" in e.text and "invite me" in e.text for e in stack.slack.ephemerals)


async def test_a_10000_character_error_is_cut_in_slack_and_kept_whole_in_status(stack, env, table):
    message = "Task export failed: " + "<!channel> <@U0DEMO> " + "x" * 10_000
    stack.databricks.set_outcome(101, "fail", message, duration_seconds=0.2)
    refused_before = len(stack.slack.refused)
    async with running_bot(stack, env) as runtime:
        run_id = run_id_in(await command(stack, ""))
        parent = await final_parent(stack, run_id, "FAILED")
        status = await command(stack, f"status {run_id}")
        stored = await runtime.service.get(run_id)
    assert stack.slack.refused[refused_before:] == []  # nothing the bot sent exceeded Slack's limits
    assert "…" in parent.text and len(parent.text) <= 3000
    assert all(len(block.get("text", {}).get("text", "")) <= 3000 for block in parent.blocks)
    everything = parent.text + str(parent.blocks) + stack.slack.thread_text(run_id) + status["text"]
    assert "<!channel>" not in everything and "&lt;!channel&gt;" in everything  # it can notify nobody
    assert "&lt;@U0DEMO&gt;" in everything
    assert "x" * 10_000 in status["text"] and "x" * 10_000 in stored.error  # whole in status and the store


async def test_a_message_slack_refuses_for_good_is_skipped_and_the_parent_still_ends_final(stack, env, table):
    stack.databricks.set_outcome(101, "success", duration_seconds=1.0)
    async with running_bot(stack, env):
        run_id = run_id_in(await command(stack, ""))
        await eventually(lambda: stack.slack.find_parent(run_id))
        stack.slack.inject("chat.postMessage", error="msg_too_long", times=2)  # two replies refused for good
        stack.slack.inject("chat.update", error="invalid_blocks", times=1)
        parent = await final_parent(stack, run_id, "SUCCESS")
    assert ("chat.postMessage", "msg_too_long") in stack.slack.refused
    assert parent.run["status"] == "SUCCESS"


async def test_with_slack_s_rate_limits_on_a_busy_channel_gets_no_429_and_batched_replies(stack, env, table,
                                                                                          tmp_path):
    tables = [f"P{n}_{table}" for n in range(6)]
    for name in tables:
        stack.snowflake.create_table(table_name(name))
    (tmp_path / "busy.toml").write_text("".join(f'[syncs.busy{n}]\nsnowflake_table = "{name}"\n'
                                                for n, name in enumerate(tables)))
    stack.slack.rate_limits = True
    async with running_bot(stack, {**env, "SYNC_CONFIG": str(tmp_path / "busy.toml")}):
        run_ids = [run_id_in(await command(stack, f"busy{n}")) for n in range(len(tables))]
        parents = await asyncio.gather(*(final_parent(stack, run_id, "SUCCESS", timeout=90) for run_id in run_ids))
    assert stack.slack.rate_limited == []  # the bot paced itself instead of running into the limits
    replies = [reply for parent in parents for reply in stack.slack.replies(parent)]
    batched = [reply for reply in replies if "is RUNNING" in reply.text and "Export finished" in reply.text]
    assert batched  # a busy channel: consecutive steps of a run went out as one reply


async def test_a_second_sync_while_one_is_active_answers_with_the_active_run(stack: LocalStack, env, table):
    stack.databricks.set_outcome(101, "success", duration_seconds=2)
    async with running_bot(stack, env):
        first = run_id_in(await command(stack, ""))
        second = await command(stack, "")
        await final_parent(stack, first, "SUCCESS")
    assert f"already running: `{first}`" in second["text"]
    assert stack.snowflake.count_rows(table_name(table)) == 1000


async def test_after_a_bot_restart_the_run_finishes_in_its_original_thread(stack: LocalStack, env, table):
    stack.databricks.set_outcome(101, "success", duration_seconds=3)
    async with running_bot(stack, env) as runtime:
        run_id = run_id_in(await command(stack, ""))
        await eventually(lambda: (run := runtime.service.live(run_id)) and run.status is RunStatus.EXPORTING)
        await eventually(lambda: stack.slack.find_parent(run_id))
    assert stack.slack.find_parent(run_id).run["status"] == "EXPORTING"

    async with running_bot(stack, env):
        parent = await final_parent(stack, run_id, "SUCCESS")

    assert stack.slack.parents_of(run_id) == [parent]  # one parent, updated
    assert "Resumed after a restart (was EXPORTING)" in stack.slack.thread_text(run_id)
    assert len(stack.databricks.runs_for(run_id)) == 1
    assert stack.snowflake.count_rows(table_name(table)) == 1000
