"""One run's Slack thread: the parent message kept current, and the run's steps as replies, in order.

Replies go first and the parent last, so the parent's final update is the last call of a finished run: whoever
sees the final parent sees the whole thread. Calls wait for their turn (bot/pacing.py); steps that pile up while
the channel is busy go out as one reply. Transient failures (429s, 5xx, a dropped connection) are retried here and
by slack_sdk's retry handlers; a message Slack refuses for good (invalid_blocks, msg_too_long, channel_not_found)
is logged and skipped, and the parent falls back to a minimal form so that it always shows the final state.
Only the process driving a run posts to its thread.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections import deque
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from orchestrator import Metrics, RunEvent, RunStatus, StepLog, SyncRun, SyncService, log_event

from .pacing import NEW_RUN, OUTCOME, PROGRESS, SlackPacer
from .render import parent_message, steps_reply, summary_text

log = logging.getLogger("syncbot.bot")

MIN_UPDATE_INTERVAL_SECONDS = 1.0  # progress updates of one parent are coalesced: the latest state wins
MAX_ATTEMPTS = 6  # transient failures of one message, on top of slack_sdk's own retries
RESPONSE_URL_USES = 5  # Slack: a response_url works 5 times, for 30 minutes
RESPONSE_URL_SECONDS = 30 * 60
PERMANENT = frozenset({"invalid_blocks", "msg_too_long", "channel_not_found", "not_in_channel", "is_archived",
                       "message_not_found", "cant_update_message", "invalid_arguments", "no_text",
                       "restricted_action", "invalid_metadata_format", "invalid_metadata_schema",
                       "metadata_too_large", "invalid_blocks_format", "user_not_found"})
UNREACHABLE = frozenset({"not_in_channel", "channel_not_found", "is_archived", "restricted_action"})


def slack_error(exc: BaseException) -> str | None:
    return exc.response.get("error") if isinstance(exc, SlackApiError) else None


def describe(exc: BaseException) -> str:
    if isinstance(exc, SlackApiError):
        return f"Slack API error: {exc.response.get('error')} (HTTP {exc.response.status_code})"
    return f"{type(exc).__name__}: {exc}"


class Reporter:
    """What every thread shares: the Slack client, the pace, the service, metrics."""

    def __init__(self, client: AsyncWebClient, service: SyncService, pacer: SlackPacer, metrics: Metrics) -> None:
        self.client = client
        self.service = service
        self.pacer = pacer
        self.metrics = metrics


class RunThread:
    def __init__(self, reporter: Reporter, run_id: str) -> None:
        self.run_id = run_id
        self._reporter = reporter
        self._service = reporter.service
        self._steps: deque[StepLog] = deque()
        self._parent_dirty = True
        self._wake = asyncio.Event()
        self._last_update = 0.0
        self._unreachable = False
        self._where: tuple[str, str] | None = None  # (channel, ts) of the parent, once posted or known
        self.task = asyncio.create_task(self._work(), name=f"slack-thread-{run_id}")

    def _ended(self) -> bool:
        run = self._service.live(self.run_id)
        return run is None or run.status.is_final  # no longer driven here: it has ended (or moved away)

    def _priority(self) -> int:
        """Asked by the pacer at each turn: a run that ended while it waited goes first."""
        return OUTCOME if self._ended() else PROGRESS

    def notify(self, event: RunEvent) -> None:
        if event.step is not None:
            self._steps.append(event.step)
        self._parent_dirty = True
        self._wake.set()

    async def _run(self) -> SyncRun | None:
        return self._service.live(self.run_id) or await self._service.get(self.run_id)

    async def _work(self) -> None:
        self._wake.set()
        failures = 0
        while True:
            await self._wake.wait()
            self._wake.clear()
            if not self._service.holds(self.run_id):
                log_event(log, "slack.thread_handed_over", run_id=self.run_id, dropped_steps=len(self._steps))
                return  # another process drives this run now, and reports it
            try:
                await self._flush()
                failures = 0
            except Exception as exc:
                failures += 1
                log_event(log, "slack.thread_failed", level=logging.WARNING, run_id=self.run_id,
                          error=describe(exc), attempt=failures)
                if failures >= MAX_ATTEMPTS:
                    self._give_up(exc)
                    failures = 0
                await asyncio.sleep(min(30.0, 2.0 ** failures))
                self._wake.set()
                continue
            run = await self._run()
            if run is None or (run.status.is_final and not self._steps and not self._parent_dirty):
                return

    def _give_up(self, exc: Exception) -> None:
        """After many tries, skip what is pending (logged with its text) rather than stall everything after it."""
        while self._steps:
            step = self._steps.popleft()
            log_event(log, "slack.reply_dropped", level=logging.ERROR, run_id=self.run_id, step=step.message,
                      error=describe(exc))

    async def _flush(self) -> None:
        run = await self._run()
        if run is None:
            return
        if self._where is None and run.context.get("thread_ts"):  # a thread an earlier process started
            self._where = (str(run.context["thread_channel"]), str(run.context["thread_ts"]))
        if self._where is None and not self._unreachable:
            await self._post_parent(run)
        if self._where is None:
            self._steps.clear()
            self._parent_dirty = False
            if run.status.is_final:
                await self._tell_requester(f"Sync `{run.run_id}` ended: {summary_text(run)}")
            return
        channel, thread_ts = self._where
        while self._steps or self._parent_dirty:
            if self._steps:
                await self._post_steps(channel, thread_ts)
                continue
            await self._update_parent(channel, thread_ts)

    async def _post_steps(self, channel: str, thread_ts: str) -> None:
        await self._reporter.pacer.turn("chat.postMessage", channel, priority=self._priority)
        batch = list(self._steps)  # everything pending at our turn goes out as one reply
        try:
            await self._reporter.client.chat_postMessage(channel=channel, thread_ts=thread_ts,
                                                         text=steps_reply(batch), unfurl_links=False,
                                                         unfurl_media=False)
            self._reporter.metrics.call("slack", "chat.postMessage")
        except SlackApiError as exc:
            self._reporter.metrics.call("slack", "chat.postMessage", failed=True)
            if slack_error(exc) not in PERMANENT:
                raise
            log_event(log, "slack.reply_refused", level=logging.ERROR, run_id=self.run_id, error=describe(exc),
                      steps=" | ".join(step.message[:200] for step in batch))
        for _ in batch:
            self._steps.popleft()

    async def _update_parent(self, channel: str, thread_ts: str) -> None:
        run = await self._run()
        if run is None:
            self._parent_dirty = False
            return
        if not run.status.is_final:
            wait = MIN_UPDATE_INTERVAL_SECONDS - (time.monotonic() - self._last_update)
            if wait > 0:
                await asyncio.sleep(wait)
        await self._reporter.pacer.turn("chat.update", "*", priority=self._priority)
        if self._steps:  # steps arrived while we waited: they go first
            return
        self._parent_dirty = False
        self._last_update = time.monotonic()
        latest = await self._run() or run  # rendered as it is now: the latest state wins
        try:
            await self._update(channel, thread_ts, parent_message(latest))
        except SlackApiError as exc:
            if slack_error(exc) not in PERMANENT:
                self._parent_dirty = True
                raise
            log_event(log, "slack.parent_refused", level=logging.ERROR, run_id=self.run_id, error=describe(exc))
            if slack_error(exc) in ("invalid_blocks", "msg_too_long", "invalid_blocks_format"):
                try:  # the final state must reach the parent: say it in the fewest words Slack accepts
                    await self._update(channel, thread_ts, parent_message(latest, minimal=True))
                except SlackApiError as again:
                    log_event(log, "slack.parent_refused", level=logging.ERROR, run_id=self.run_id,
                              error=describe(again), form="minimal")

    async def _update(self, channel: str, thread_ts: str, message: dict[str, Any]) -> None:
        try:
            await self._reporter.client.chat_update(channel=channel, ts=thread_ts, **message)
        except Exception:
            self._reporter.metrics.call("slack", "chat.update", failed=True)
            raise
        self._reporter.metrics.call("slack", "chat.update")

    async def _post_parent(self, run: SyncRun) -> None:
        channel = str(run.context.get("channel", ""))
        client = self._reporter.client
        await self._reporter.pacer.turn("chat.postMessage", channel,
                                        priority=lambda: OUTCOME if self._ended() else NEW_RUN)
        if run.status.is_final:
            # Ended before its thread began (a quick failure or cancel): the parent starts as the run did and shows
            # the outcome after the replies, so that whoever sees the final parent sees the whole thread.
            run = dataclasses.replace(run, status=RunStatus.PENDING, error=None)
            self._parent_dirty = True
        try:
            response = await client.chat_postMessage(channel=channel, **parent_message(run))
            self._reporter.metrics.call("slack", "chat.postMessage")
        except SlackApiError as exc:
            self._reporter.metrics.call("slack", "chat.postMessage", failed=True)
            if slack_error(exc) not in UNREACHABLE:
                raise
            response = await self._post_in_dm(run, channel, exc)
            if response is None:
                return
        self._where = (str(response["channel"]), str(response["ts"]))
        await self._service.update_context(self.run_id, thread_channel=response["channel"], thread_ts=response["ts"])
        self._last_update = time.monotonic()
        log_event(log, "slack.parent_posted", run_id=self.run_id, channel=response["channel"], ts=response["ts"])

    async def _post_in_dm(self, run: SyncRun, channel: str, exc: SlackApiError) -> Any:
        """The bot cannot post in that channel: follow the run in a DM with whoever started it."""
        if not run.requested_by.startswith(("U", "W")):
            self._unreachable = True
            log_event(log, "slack.unreachable", level=logging.ERROR, run_id=self.run_id, channel=channel,
                      error=describe(exc))
            return None
        try:
            response = await self._reporter.client.chat_postMessage(channel=run.requested_by, **parent_message(run))
        except SlackApiError as again:
            if slack_error(again) not in PERMANENT:
                raise
            self._unreachable = True
            log_event(log, "slack.unreachable", level=logging.ERROR, run_id=self.run_id, channel=channel,
                      error=describe(again))
            await self._tell_requester(f"I can't post in <#{channel}> ({slack_error(exc)}) nor in our DMs "
                                       f"({slack_error(again)}). Sync `{run.run_id}` is running anyway; "
                                       f"`/sync status {run.run_id}` follows it.")
            return None
        await self._tell_requester(
            f"I can't post in <#{channel}> ({slack_error(exc)}): invite me with `/invite @syncbot`. "
            f"Sync `{run.run_id}` is running anyway; I'm posting its thread in our direct messages.")
        return response

    async def _tell_requester(self, text: str) -> None:
        """A private note through the command's response_url, within Slack's limits (5 uses, 30 minutes)."""
        run = await self._run()
        if run is None or not run.context.get("response_url"):
            return
        uses = int(run.context.get("response_url_uses", 0))
        if uses >= RESPONSE_URL_USES or time.time() - run.created_at.timestamp() > RESPONSE_URL_SECONDS:
            log_event(log, "slack.notice_skipped", run_id=self.run_id, reason="response_url used up or expired")
            return
        await self._service.update_context(self.run_id, response_url_uses=uses + 1)
        try:
            await AsyncWebhookClient(str(run.context["response_url"])).send(text=text, response_type="ephemeral",
                                                                            replace_original=False)
        except Exception as exc:
            log_event(log, "slack.notice_failed", level=logging.WARNING, run_id=self.run_id, error=describe(exc))


