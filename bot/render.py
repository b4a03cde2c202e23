"""How a run looks in Slack: the one place that renders runs, steps, status answers and help."""

from __future__ import annotations

import re
from typing import Any

from orchestrator.models import RunStatus, StepLog, SyncRun
from orchestrator.service import format_duration

STATUS_EMOJI = {
    RunStatus.PENDING: "⏳",
    RunStatus.EXPORTING: "📤",
    RunStatus.LOADING: "📥",
    RunStatus.SUCCESS: "✅",
    RunStatus.FAILED: "❌",
    RunStatus.CANCELLED: "🚫",
}
CANCEL_ACTION = "sync_cancel"
OPEN_DATABRICKS_ACTION = "open_databricks"

HELP_TEXT = "\n".join([
    "*syncbot* moves the configured table from Databricks to Snowflake and reports each run in a thread.",
    "• `/sync` — start a sync now",
    "• `/sync status` — the 10 most recent runs",
    "• `/sync status <run-id>` — one run: status, steps and timings",
    "• `/sync cancel <run-id>` — cancel a run that is still going",
    "• `/sync help` — this text",
])

Message = dict[str, Any]


_USER_MENTION = re.compile(r"&lt;@([UW][A-Z0-9]{2,20})&gt;")


def escape(text: str) -> str:
    """Slack's three control characters, so API text can't form links or broadcasts; user mentions stay."""
    escaped = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _USER_MENTION.sub(r"<@\1>", escaped)


def _mention(user_id: str) -> str:
    return f"<@{user_id}>" if user_id else "someone"


def outcome_line(run: SyncRun) -> str:
    if run.status is RunStatus.SUCCESS:
        return f"{run.rows_loaded or 0:,} rows from {run.files_loaded or 0} file(s) loaded"
    if run.status in (RunStatus.FAILED, RunStatus.CANCELLED):
        return escape(run.error or "")
    if run.status is RunStatus.EXPORTING:
        if run.databricks_state is None:
            return f"Databricks run {run.databricks_run_id} triggered"
        return f"Databricks run {run.databricks_run_id} is {run.databricks_state}"
    if run.status is RunStatus.LOADING:
        return "COPY INTO is loading the exported files"
    return "waiting to start the Databricks job"


def summary_text(run: SyncRun) -> str:
    """The plain `text` of the parent (notifications, screen readers): status word and run id first."""
    line = f"{STATUS_EMOJI[run.status]} {run.status.value}: sync {run.run_id} to {run.target.table_name}"
    detail = outcome_line(run)
    return f"{line} — {detail}" if detail else line


def parent_message(run: SyncRun) -> Message:
    fields = [
        f"*Run:* `{run.run_id}`",
        f"*Started by:* {_mention(run.requested_by)}",
        f"*Target:* `{run.target.table_name}`",
        f"*Elapsed:* {format_duration(run.elapsed_seconds())}",
    ]
    if run.run_page_url:
        fields.append(f"*Databricks:* <{run.run_page_url}|run {run.databricks_run_id}>")
    if run.status is RunStatus.SUCCESS:
        fields.append(f"*Loaded:* {run.rows_loaded or 0:,} rows · {run.files_loaded or 0} file(s)")
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": (
            f"{STATUS_EMOJI[run.status]} *{run.status.value}* · Databricks → Snowflake sync")}},
        {"type": "section", "fields": [{"type": "mrkdwn", "text": field} for field in fields]},
    ]
    if run.status in (RunStatus.FAILED, RunStatus.CANCELLED) and run.error:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": f"*Reason:* {escape(run.error)}"}})
    buttons: list[dict[str, Any]] = []
    if not run.status.is_final:
        buttons.append({
            "type": "button", "action_id": CANCEL_ACTION, "value": run.run_id, "style": "danger",
            "text": {"type": "plain_text", "text": "Cancel"},
            "confirm": {"title": {"type": "plain_text", "text": "Cancel this sync?"},
                        "text": {"type": "mrkdwn", "text": f"Run `{run.run_id}` will be stopped."},
                        "confirm": {"type": "plain_text", "text": "Cancel it"},
                        "deny": {"type": "plain_text", "text": "Keep going"}},
        })
    if run.run_page_url:
        buttons.append({"type": "button", "action_id": OPEN_DATABRICKS_ACTION, "url": run.run_page_url,
                        "text": {"type": "plain_text", "text": "Open in Databricks"}})
    if buttons:
        blocks.append({"type": "actions", "block_id": "actions", "elements": buttons})
    return {"text": summary_text(run), "blocks": blocks}


def step_text(step: StepLog) -> str:
    text = escape(step.message)
    if step.url:
        text += f" · <{step.url}|open>"
    return text


def status_message(run: SyncRun) -> Message:
    lines = [summary_text(run), f"Started by {_mention(run.requested_by)} at {run.created_at:%Y-%m-%d %H:%M:%S} UTC, "
             f"elapsed {format_duration(run.elapsed_seconds())}"]
    if run.run_page_url:
        lines.append(f"Databricks run: <{run.run_page_url}|{run.databricks_run_id}>")
    if run.snowflake_query_id:
        lines.append(f"Snowflake query: `{run.snowflake_query_id}`")
    lines.append("*Steps:*")
    start = run.created_at
    for step in run.steps[-15:]:
        offset = format_duration((step.at - start).total_seconds())
        lines.append(f"`+{offset}` {step_text(step)}")
    return {"text": "\n".join(lines)}


def recent_message(runs: list[SyncRun]) -> Message:
    if not runs:
        return {"text": "No syncs yet. Start one with `/sync`."}
    lines = ["*Recent syncs* (newest first):"]
    for run in runs:
        lines.append(f"{STATUS_EMOJI[run.status]} `{run.run_id}` {run.status.value} · {run.target.table_name} · "
                     f"{_mention(run.requested_by)} · {run.created_at:%m-%d %H:%M} UTC · "
                     f"{format_duration(run.elapsed_seconds())} · {outcome_line(run)}")
    return {"text": "\n".join(lines)}


def not_found_message(run_id: str) -> Message:
    return {"text": f"No sync run `{run_id}` was found. Run ids look like `1127-k3x9qa`; "
                    "`/sync status` lists the recent ones."}


def help_message(problem: str | None = None) -> Message:
    return {"text": f"{problem}\n{HELP_TEXT}" if problem else HELP_TEXT}
