"""How a run looks in Slack: the one place that renders runs, steps, receipts, lists, the picker and help.

Everything rendered here fits Slack's limits (a section's text ≤ 3,000 characters, ≤ 50 blocks, a message's text
≤ 40,000): long errors and steps are cut with "…" (the full text stays in the store and the log). Text that comes
from Databricks or Snowflake is escaped, so it can never form a link or mention anyone.
"""

from __future__ import annotations

import re
from typing import Any

from orchestrator import RunStatus, RunSummary, StepLog, SyncDefinition, SyncRun, format_duration

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
START_ACTION = "sync_start"  # a picker button: its value is the sync's name
METADATA_EVENT = "sync_run"  # the parent message's metadata: run_id, status, sync (for machines, not people)

SECTION_LIMIT = 3000
FIELD_LIMIT = 2000
TEXT_LIMIT = 40_000
BLOCKS_LIMIT = 50
REPLY_LIMIT = 3000  # a thread reply: readable in a thread; the whole text stays in the store and the log
ERROR_LIMIT = 1500  # an error in a parent message or a list line

Message = dict[str, Any]
_SLACK_USER = re.compile(r"^[UW][A-Z0-9]{2,20}$")


def clip(text: str, limit: int) -> str:
    """At most `limit` characters, ending in "…" when cut."""
    return text if len(text) <= limit else text[:limit - 1].rstrip() + "…"


def escape(text: str) -> str:
    """Slack's three control characters, so API text can't form links, mentions or broadcasts."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def who(actor: str | None) -> str:
    """A requester as Slack shows them: a mention for a Slack user id, the name otherwise (e.g. api, cli)."""
    if not actor:
        return "someone"
    return f"<@{actor}>" if _SLACK_USER.fullmatch(actor) else escape(actor)


def _mode(run: SyncRun) -> str:
    return run.target.mode.value


def outcome_line(run: SyncRun) -> str:
    if run.status is RunStatus.SUCCESS:
        line = f"{run.rows_loaded or 0:,} rows from {run.files_loaded or 0} file(s) loaded ({_mode(run)})"
        if run.rows_inserted is not None:
            line += f": {run.rows_inserted:,} inserted, {run.rows_updated or 0:,} updated"
        return line
    if run.status is RunStatus.CANCELLED:
        return f"cancelled by {who(run.cancelled_by)}: {clip(escape(run.error or ''), ERROR_LIMIT)}"
    if run.status is RunStatus.FAILED:
        return clip(escape(run.error or ""), ERROR_LIMIT)
    if run.status is RunStatus.EXPORTING:
        if run.databricks_state is None:
            return f"Databricks run {run.databricks_run_id} triggered"
        return f"Databricks run {run.databricks_run_id} is {escape(run.databricks_state)}"
    if run.status is RunStatus.LOADING:
        return f"Snowflake is loading the exported files ({_mode(run)})"
    return "waiting to start the Databricks job"


def summary_text(run: SyncRun) -> str:
    """The plain `text` of the parent (notifications, screen readers): status word and run id first."""
    line = f"{STATUS_EMOJI[run.status]} {run.status.value}: sync {run.run_id} to {run.target.table_name}"
    return clip(f"{line} — {outcome_line(run)}", SECTION_LIMIT)


def receipt_lines(run: SyncRun) -> list[str]:
    """The load's evidence: what Snowflake parsed and loaded, the table afterwards, the time, the queries."""
    if run.status is not RunStatus.SUCCESS:
        return []
    lines = [f"Parsed {run.rows_parsed or 0:,} · loaded {run.rows_loaded or 0:,} rows from {run.files_loaded or 0} "
             f"file(s)"]
    if run.rows_inserted is not None:
        lines.append(f"Merge: {run.rows_inserted:,} inserted · {run.rows_updated or 0:,} updated")
    if run.table_rows is not None:
        lines.append(f"`{run.target.table_name}` now has {run.table_rows:,} rows")
    times = []
    if run.export_seconds is not None:
        times.append(f"export {format_duration(run.export_seconds)}")
    if run.load_seconds is not None:
        times.append(f"load {format_duration(run.load_seconds)}")
    if times:
        lines.append(" · ".join(times))
    if run.statements:
        lines.append("Snowflake queries: " + ", ".join(f"{step} `{query_id}`" for step, query_id in
                                                      run.statements.items()))
    lines += [f"⚠️ {clip(escape(warning), ERROR_LIMIT)}" for warning in run.warnings]
    return lines


def metadata(run: SyncRun) -> dict[str, Any]:
    return {"event_type": METADATA_EVENT,
            "event_payload": {"run_id": run.run_id, "status": run.status.value, "sync": run.sync_name,
                              "rows_loaded": run.rows_loaded}}


def parent_message(run: SyncRun, *, minimal: bool = False) -> Message:
    """The run's parent message. `minimal`: text and status only, for when Slack refused the full one."""
    if minimal:
        return {"text": summary_text(run), "blocks": [_section(summary_text(run))], "metadata": metadata(run)}
    fields = [
        f"*Run:* `{run.run_id}`",
        f"*Sync:* `{run.sync_name}` ({_mode(run)})",
        f"*Started by:* {who(run.requested_by)}",
        f"*Target:* `{run.target.table_name}`",
        f"*Elapsed:* {format_duration(run.elapsed_seconds())}",
    ]
    if run.run_page_url:
        fields.append(f"*Databricks:* <{run.run_page_url}|run {run.databricks_run_id}>")
    if run.status is RunStatus.SUCCESS:
        fields.append(f"*Loaded:* {run.rows_loaded or 0:,} rows · {run.files_loaded or 0} file(s)")
    blocks: list[dict[str, Any]] = [
        _section(f"{STATUS_EMOJI[run.status]} *{run.status.value}* · Databricks → Snowflake sync"),
        {"type": "section", "fields": [{"type": "mrkdwn", "text": clip(field, FIELD_LIMIT)} for field in fields]},
    ]
    if run.status is RunStatus.FAILED and run.error:
        blocks.append(_section(f"*Reason:* {clip(escape(run.error), ERROR_LIMIT)}"))
    if run.status is RunStatus.CANCELLED:
        blocks.append(_section(f"*Cancelled by* {who(run.cancelled_by)}: {clip(escape(run.error or ''), ERROR_LIMIT)}"))
    if receipt := receipt_lines(run):
        blocks.append(_section("*Receipt*\n" + "\n".join(receipt)))
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
        buttons.append({"type": "button", "action_id": OPEN_DATABRICKS_ACTION, "url": run.run_page_url[:3000],
                        "text": {"type": "plain_text", "text": "Open in Databricks"}})
    if buttons:
        blocks.append({"type": "actions", "block_id": "actions", "elements": buttons})
    return {"text": summary_text(run), "blocks": blocks[:BLOCKS_LIMIT], "metadata": metadata(run)}


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": clip(text, SECTION_LIMIT)}}


def step_text(step: StepLog) -> str:
    text = escape(step.message)
    if step.actor:
        text += f" (by {who(step.actor)})"
    if step.url:
        text += f" · <{step.url}|open>"
    return clip(text, REPLY_LIMIT)


def steps_reply(steps: list[StepLog]) -> str:
    """Consecutive steps of one run as one reply (when the channel is busy), within one message's limits."""
    texts = [step_text(step) for step in steps]
    reply, shown = "", 0
    for text in texts:
        candidate = f"{reply}\n{text}" if reply else text
        if len(candidate) > REPLY_LIMIT and reply:
            break
        reply, shown = candidate, shown + 1
    if shown < len(texts):
        reply += f"\n… and {len(texts) - shown} more step(s): `/sync status` shows them all"
    return clip(reply, REPLY_LIMIT)


def status_message(run: SyncRun) -> Message:
    """One run, whole: the steps' full text (not cut to a reply's size), within a message's limit."""
    lines = [summary_text(run), f"Sync `{run.sync_name}` ({_mode(run)}), started by {who(run.requested_by)} at "
             f"{run.created_at:%Y-%m-%d %H:%M:%S} UTC, elapsed {format_duration(run.elapsed_seconds())}"]
    if run.error:
        lines.append(f"*Reason:* {escape(run.error)}")
    if run.run_page_url:
        lines.append(f"Databricks run: <{run.run_page_url}|{run.databricks_run_id}>")
    lines += receipt_lines(run)
    lines.append("*Steps:*")
    start = run.created_at
    for step in run.steps[-30:]:
        offset = format_duration((step.at - start).total_seconds())
        text = escape(step.message) + (f" (by {who(step.actor)})" if step.actor else "")
        lines.append(f"`+{offset}` {text}")
    return {"text": clip("\n".join(lines), TEXT_LIMIT - 1000)}


def summary_line(run: RunSummary) -> str:
    outcome = (f"{run.rows_loaded:,} rows" if run.status is RunStatus.SUCCESS and run.rows_loaded is not None
               else clip(escape(run.summary), 200))
    return (f"{STATUS_EMOJI[run.status]} `{run.run_id}` {run.status.value} · `{run.sync_name}` · "
            f"{who(run.requested_by)} · {run.created_at:%m-%d %H:%M} UTC · {format_duration(run.elapsed_seconds())}"
            + (f" · {outcome}" if outcome else ""))


def recent_message(runs: list[RunSummary]) -> Message:
    if not runs:
        return {"text": "No syncs yet. Start one with `/sync`."}
    return {"text": clip("\n".join(["*Recent syncs* (newest first):", *(summary_line(run) for run in runs)]),
                         TEXT_LIMIT - 1000)}


def list_message(syncs: list[SyncDefinition], latest: dict[str, RunSummary]) -> Message:
    if not syncs:
        return {"text": "There are no syncs you may run. An admin lists who may run each sync in syncs.toml "
                        "(allowed_users, allowed_channels)."}
    lines = ["*Syncs*:"]
    for sync in syncs:
        line = f"• `{sync.name}` → `{sync.target.table_name}` ({sync.target.mode.value})"
        if sync.description:
            line += f" — {escape(sync.description)}"
        last = latest.get(sync.name)
        line += (f"\n    last run: {STATUS_EMOJI[last.status]} {last.status.value} `{last.run_id}` "
                 f"{last.created_at:%Y-%m-%d %H:%M} UTC" + (f", {last.rows_loaded:,} rows"
                                                             if last.rows_loaded is not None else "")
                 if last else "\n    never run")
        lines.append(line)
    return {"text": clip("\n".join(lines), TEXT_LIMIT - 1000)}


def picker_message(syncs: list[SyncDefinition]) -> Message:
    """`/sync` when there are several syncs: one button per sync this person may run."""
    if not syncs:
        return list_message([], {})
    intro = "Which sync? (or type `/sync <name>`)"
    blocks: list[dict[str, Any]] = [_section(intro)]
    for sync in syncs[:40]:
        description = f" — {escape(sync.description)}" if sync.description else ""
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": clip(
            f"*{sync.name}* → `{sync.target.table_name}` ({sync.target.mode.value}){description}", SECTION_LIMIT)},
            "accessory": {"type": "button", "action_id": START_ACTION, "value": sync.name,
                          "text": {"type": "plain_text", "text": clip(f"Run {sync.name}", 75)}}})
    if len(syncs) > 40:
        blocks.append(_section(f"… and {len(syncs) - 40} more: `/sync list` shows them all"))
    return {"text": intro, "blocks": blocks[:BLOCKS_LIMIT]}


def not_found_message(run_id: str) -> Message:
    return {"text": f"No sync run `{run_id}` was found. Run ids look like `1127-k3x9qa`; "
                    "`/sync status` lists the recent ones."}


def help_message(syncs: list[SyncDefinition], problem: str | None = None) -> Message:
    names = ", ".join(f"`{sync.name}`" for sync in syncs[:20]) or "none"
    text = "\n".join([
        "*syncbot* moves tables from Databricks to Snowflake and reports each run in a thread.",
        "• `/sync` — start the sync (with several syncs: pick one)",
        "• `/sync <name>` — start that sync",
        "• `/sync list` — the syncs, their load mode and last run",
        "• `/sync status` — the 10 most recent runs",
        "• `/sync status <run-id>` — one run: status, steps, receipt and timings",
        "• `/sync cancel <run-id>` — cancel a run that is still going",
        "• `/sync help` — this text",
        f"Syncs: {names}",
    ])
    return {"text": f"{problem}\n{text}" if problem else text}
