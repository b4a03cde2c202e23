"""What each Slack request does. Bolt's wiring lives in app.py; the run's life lives in the orchestrator."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from typing import Any

from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.respond.async_respond import AsyncRespond

from orchestrator import CancelOutcome, InvalidRunId, RunEvent, SyncDefinition, SyncService, log_event

from .commands import Action, Command, parse_command
from .render import help_message, list_message, not_found_message, picker_message, recent_message, status_message
from .settings import Access
from .thread import Reporter, RunThread

log = logging.getLogger("syncbot.bot")

RECENT_ANSWER_SECONDS = 1.0
_SEEN_LIMIT = 1000  # Slack redelivers an envelope it thinks was not acked: answer it again, never act twice
PRIVATE_CHANNEL_NAMES = ("directmessage", "privategroup")  # the payload's channel_name for a DM, a private channel


def is_private(channel_name: str) -> bool:
    """A run started here is shown only to its requester (a DM, a group DM or a private channel)."""
    return channel_name in PRIVATE_CHANNEL_NAMES or channel_name.startswith("mpdm-")


class SyncBot:
    def __init__(self, service: SyncService, reporter: Reporter, access: Access) -> None:
        self.service = service
        self.reporter = reporter
        self.client = reporter.client
        self.access = access
        self.threads: dict[str, RunThread] = {}
        self._answered: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._background: set[asyncio.Task[None]] = set()
        self._recent_answers: dict[str, tuple[float, dict[str, Any]]] = {}  # user → (when, `/sync status` answer)
        service.subscribe(self.on_run_event)

    # ---- orchestrator → Slack ----------------------------------------------------------------------------------

    def on_run_event(self, event: RunEvent) -> None:
        self._recent_answers.clear()
        run = event.run
        if "channel" not in run.context:  # not started from Slack, and no report channel
            return
        thread = self.threads.get(run.run_id)
        if thread is None or thread.task.done():
            thread = self.threads[run.run_id] = RunThread(self.reporter, run.run_id)
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

    def _runnable(self, user_id: str, channel_id: str) -> list[SyncDefinition]:
        return [sync for sync in self.service.syncs.values() if self.access.may_run(sync, user_id, channel_id)]

    async def _answer(self, command: dict[str, Any]) -> dict[str, Any]:
        parsed = parse_command(command.get("text", ""), self.service.syncs)
        user_id, channel_id = command.get("user_id", ""), command.get("channel_id", "")
        log_event(log, "command.received", action=parsed.action, run_id=parsed.run_id, sync=parsed.sync_name,
                  user=user_id, channel=channel_id)
        if parsed.action is Action.HELP:
            return help_message(list(self.service.syncs.values()), parsed.problem)
        if parsed.action is Action.LIST:
            syncs = self._runnable(user_id, channel_id)
            return list_message(syncs, await self.service.latest_by_sync(user=user_id))
        if parsed.action is Action.RECENT:
            return await self._recent(user_id)
        if parsed.action in (Action.STATUS, Action.CANCEL):
            return await self._about_run(parsed, user_id)
        return await self._start(parsed.sync_name, user_id, channel_id, command)

    async def _recent(self, user_id: str) -> dict[str, Any]:
        """`/sync status`, rendered at most once a second per person (a burst of them costs one query and one
        rendering; any change to a run this process drives renders it anew)."""
        now = time.monotonic()
        cached = self._recent_answers.get(user_id)
        if cached is None or now - cached[0] >= RECENT_ANSWER_SECONDS:
            cached = self._recent_answers[user_id] = (now, recent_message(await self.service.recent(10, user=user_id)))
        return cached[1]

    async def _about_run(self, parsed: Command, user_id: str) -> dict[str, Any]:
        run_id = parsed.run_id
        if run_id is None:
            return not_found_message(parsed.raw_run_id or "")
        run = await self.service.get(run_id)
        if run is None or not self.access.may_see(run, user_id):
            return not_found_message(run_id)  # a private run of someone else does not exist, as far as we say
        if parsed.action is Action.STATUS:
            return status_message(run)
        return await self.cancel(run_id, user_id)

    async def _start(self, sync_name: str | None, user_id: str, channel_id: str,
                     payload: dict[str, Any]) -> dict[str, Any]:
        if sync_name is None:
            runnable = self._runnable(user_id, channel_id)
            if len(self.service.syncs) > 1:
                return picker_message(runnable)
            sync_name = next(iter(self.service.syncs))
        sync = self.service.syncs[sync_name]
        if refusal := self.access.refusal(sync, user_id, channel_id):
            log_event(log, "command.refused", sync=sync_name, user=user_id, channel=channel_id)
            return {"text": refusal}
        channel_name = str(payload.get("channel_name") or (payload.get("channel") or {}).get("name") or "")
        result = await self.service.start_sync(
            sync_name, requested_by=user_id, private=is_private(channel_name),
            context={"channel": channel_id, "response_url": payload.get("response_url", "")})
        run = result.run
        if not result.created:
            where = _thread_link(run.context) if self.access.may_see(run, user_id) else ""
            shown = f"`{run.run_id}` ({run.status.value}){where}" if self.access.may_see(run, user_id) else \
                "a private one"
            return {"text": f"A sync to `{run.target.table_name}` is already running: {shown}. One run at a time "
                            f"per table, so I did not start `{sync_name}`."}
        return {"text": f"Starting sync `{run.run_id}` (`{sync_name}`) → `{run.target.table_name}`. "
                        "Follow it in the thread I'm posting in this channel."}

    async def cancel(self, run_id: str, user_id: str) -> dict[str, Any]:
        run = await self.service.get(run_id)
        if run is None or not self.access.may_see(run, user_id):
            return not_found_message(run_id)
        sync = self.service.syncs.get(run.sync_name)
        if not run.status.is_final and (refusal := self.access.cancel_refusal(run, sync, user_id)):
            log_event(log, "cancel.refused", run_id=run_id, user=user_id)
            return {"text": refusal}
        outcome, run = await self.service.cancel(run_id, requested_by=user_id)
        if outcome is CancelOutcome.NOT_FOUND or run is None:
            return not_found_message(run_id)
        if outcome is CancelOutcome.ALREADY_FINAL:
            return {"text": f"Sync `{run_id}` already finished ({run.status.value}); there is nothing to cancel."}
        return {"text": f"Cancelling sync `{run_id}`… its thread will say when it has stopped."}

    async def on_cancel_button(self, ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond) -> None:
        await ack()
        self._in_background(self._cancel_from_button(body, respond))  # the ack must not wait for this

    async def on_start_button(self, ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond) -> None:
        await ack()
        self._in_background(self._start_from_button(body, respond))

    def _in_background(self, work: Any) -> None:
        task = asyncio.create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _cancel_from_button(self, body: dict[str, Any], respond: AsyncRespond) -> None:
        run_id = str(body["actions"][0].get("value", ""))
        user_id = body.get("user", {}).get("id", "")
        try:
            answer = await self.cancel(run_id, user_id)  # judged in the run's own channel, wherever the button is
        except InvalidRunId:
            answer = not_found_message("?")
        await self._reply(respond, answer, run_id=run_id)

    async def _start_from_button(self, body: dict[str, Any], respond: AsyncRespond) -> None:
        sync_name = str(body["actions"][0].get("value", ""))
        user_id = body.get("user", {}).get("id", "")
        channel = body.get("channel") or {}
        channel_id = channel.get("id") or body.get("container", {}).get("channel_id", "")
        if sync_name not in self.service.syncs:
            answer = help_message(list(self.service.syncs.values()), f"There is no sync named `{sync_name[:40]}`.")
        else:
            payload = {"channel_name": channel.get("name", ""), "response_url": body.get("response_url", "")}
            try:
                answer = await self._start(sync_name, user_id, channel_id, payload)
            except Exception as exc:
                log_event(log, "button.failed", level=logging.ERROR, exc_info=True, sync=sync_name)
                answer = {"text": f"Sorry, syncbot hit an internal error ({type(exc).__name__}); nothing was started."}
        await self._reply(respond, answer, replace=True)

    @staticmethod
    async def _reply(respond: AsyncRespond, answer: dict[str, Any], *, replace: bool = False,
                     run_id: str = "") -> None:
        try:
            await respond(response_type="ephemeral", replace_original=replace, **answer)
        except Exception as exc:
            log_event(log, "button.reply_failed", level=logging.WARNING, run_id=run_id, error=type(exc).__name__)


def _thread_link(context: dict[str, Any]) -> str:
    channel, ts = context.get("thread_channel"), context.get("thread_ts")
    if channel and ts:
        return f", see its thread in <#{channel}>" if channel.startswith(("C", "G")) else ", see its thread in our DMs"
    return ""
