"""What each Slack request does. Bolt's wiring lives in app.py; the run's life lives in the orchestrator."""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from typing import Any

from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.respond.async_respond import AsyncRespond
from slack_sdk.web.async_client import AsyncWebClient

from orchestrator.logs import log_event
from orchestrator.service import CancelOutcome, RunEvent, SyncService

from .commands import Action, parse_command
from .render import help_message, not_found_message, recent_message, status_message
from .settings import AccessPolicy
from .thread import RunThread

log = logging.getLogger("syncbot.bot")

_SEEN_LIMIT = 1000  # Slack redelivers an envelope it thinks was not acked: answer it again, never act twice


class SyncBot:
    def __init__(self, service: SyncService, client: AsyncWebClient, access: AccessPolicy) -> None:
        self.service = service
        self.client = client
        self.access = access
        self.threads: dict[str, RunThread] = {}
        self._answered: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._background: set[asyncio.Task[None]] = set()
        service.subscribe(self.on_run_event)

    # ---- orchestrator → Slack ----------------------------------------------------------------------------------

    def on_run_event(self, event: RunEvent) -> None:
        run = event.run
        if "channel" not in run.context:  # not started from Slack
            return
        thread = self.threads.get(run.run_id)
        if thread is None or thread.task.done():
            thread = self.threads[run.run_id] = RunThread(self.client, self.service, run.run_id)
            thread.task.add_done_callback(lambda _: self._forget_thread(run.run_id, thread))
        thread.notify(event)

    def _forget_thread(self, run_id: str, thread: RunThread) -> None:
        if self.threads.get(run_id) is thread:
            del self.threads[run_id]

    async def drain(self, timeout: float) -> None:
        """Let the threads post what they have (at shutdown), bounded."""
        tasks = [thread.task for thread in self.threads.values() if not thread.task.done()]
        if tasks:
            await asyncio.wait(tasks, timeout=timeout)

    # ---- Slack → orchestrator ----------------------------------------------------------------------------------

    async def on_command(self, ack: AsyncAck, command: dict[str, Any]) -> None:
        trigger_id = command.get("trigger_id", "")
        if trigger_id and trigger_id in self._answered:
            await ack(**self._answered[trigger_id])
            return
        try:
            answer = await self._answer(command)
        except Exception as exc:
            log_event(log, "command.failed", level=logging.ERROR, exc_info=True, text=command.get("text"))
            answer = {"text": f"Sorry, syncbot hit an internal error ({type(exc).__name__}); nothing was started. "
                              "The details are in the bot's log."}
        if trigger_id:
            self._answered[trigger_id] = answer
            while len(self._answered) > _SEEN_LIMIT:
                self._answered.popitem(last=False)
        await ack(**answer)

    async def _answer(self, command: dict[str, Any]) -> dict[str, Any]:
        parsed = parse_command(command.get("text", ""))
        user_id, channel_id = command.get("user_id", ""), command.get("channel_id", "")
        log_event(log, "command.received", action=parsed.action, run_id=parsed.run_id, user=user_id,
                  channel=channel_id)
        if parsed.action is Action.HELP:
            return help_message(parsed.problem)
        if parsed.action is Action.RECENT:
            return recent_message(self.service.recent(10))
        if parsed.run_id is None and parsed.action in (Action.STATUS, Action.CANCEL):
            return not_found_message(parsed.raw_run_id or "")
        if parsed.action is Action.STATUS:
            run = self.service.get(parsed.run_id or "")
            return status_message(run) if run else not_found_message(parsed.run_id or "")
        if refusal := self.access.refusal(user_id, channel_id):
            log_event(log, "command.refused", action=parsed.action, user=user_id, channel=channel_id)
            return {"text": refusal}
        if parsed.action is Action.CANCEL:
            return await self.cancel(parsed.run_id or "", user_id)
        result = await self.service.start_sync(
            requested_by=user_id,
            context={"channel": channel_id, "response_url": command.get("response_url", "")})
        run = result.run
        if not result.created:
            where = _thread_link(run.context)
            return {"text": f"A sync to `{run.target.table_name}` is already running: `{run.run_id}` "
                            f"({run.status.value}){where}. I did not start another one."}
        return {"text": f"Starting sync `{run.run_id}` → `{run.target.table_name}`. "
                        "Follow it in the thread I'm posting in this channel."}

    async def cancel(self, run_id: str, user_id: str) -> dict[str, Any]:
        outcome, run = await self.service.cancel(run_id, requested_by=f"<@{user_id}>")
        if outcome is CancelOutcome.NOT_FOUND or run is None:
            return not_found_message(run_id)
        if outcome is CancelOutcome.ALREADY_FINAL:
            return {"text": f"Sync `{run_id}` already finished ({run.status.value}); there is nothing to cancel."}
        return {"text": f"Cancelling sync `{run_id}`… its thread will say when it has stopped."}

    async def on_cancel_button(self, ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond) -> None:
        await ack()
        task = asyncio.create_task(self._cancel_from_button(body, respond))  # the ack must not wait for this
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _cancel_from_button(self, body: dict[str, Any], respond: AsyncRespond) -> None:
        run_id = str(body["actions"][0].get("value", ""))
        user_id = body.get("user", {}).get("id", "")
        channel_id = (body.get("channel") or {}).get("id") or body.get("container", {}).get("channel_id", "")
        answer: dict[str, Any]
        if refusal := self.access.refusal(user_id, channel_id):
            log_event(log, "button.refused", run_id=run_id, user=user_id, channel=channel_id)
            answer = {"text": refusal}
        else:
            try:
                answer = await self.cancel(run_id, user_id)
            except ValueError:
                answer = not_found_message("?")
        try:
            await respond(response_type="ephemeral", replace_original=False, **answer)
        except Exception as exc:
            log_event(log, "button.reply_failed", level=logging.WARNING, run_id=run_id, error=type(exc).__name__)


def _thread_link(context: dict[str, Any]) -> str:
    channel, ts = context.get("thread_channel"), context.get("thread_ts")
    if channel and ts:
        return f", see its thread in <#{channel}>" if channel.startswith("C") else ", see its thread in our DMs"
    return ""
