"""One run's Slack thread: the parent message kept current, and each step as a reply, in order.

Slack failures (429s, 5xx, a dropped connection) are retried here and by slack_sdk's retry handlers; they are
logged, and never reach the run: the orchestrator only ever calls `notify`, which does not wait.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from orchestrator.logs import log_event
from orchestrator.models import StepLog
from orchestrator.service import RunEvent, SyncService

from .render import parent_message, step_text

log = logging.getLogger("syncbot.bot")

MIN_UPDATE_INTERVAL_SECONDS = 1.0  # chat.update is Tier 3 (~50/min): coalesce, the latest state wins
MAX_ATTEMPTS = 6  # per message, on top of slack_sdk's own retries
_UNREACHABLE = ("not_in_channel", "channel_not_found", "is_archived", "restricted_action")


class RunThread:
    def __init__(self, client: AsyncWebClient, service: SyncService, run_id: str) -> None:
        self.run_id = run_id
        self._client = client
        self._service = service
        self._steps: deque[StepLog] = deque()
        self._parent_dirty = True
        self._wake = asyncio.Event()
        self._last_update = 0.0
        self._failures = 0
        self.task = asyncio.create_task(self._work(), name=f"slack-thread-{run_id}")

    def notify(self, event: RunEvent) -> None:
        if event.step is not None:
            self._steps.append(event.step)
        self._parent_dirty = True
        self._wake.set()

    async def _work(self) -> None:
        self._wake.set()
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                await self._flush()
                self._failures = 0
            except Exception as exc:
                self._failures += 1
                log_event(log, "slack.thread_failed", level=logging.WARNING, run_id=self.run_id,
                          error=_describe(exc), attempt=self._failures)
                if self._failures >= MAX_ATTEMPTS:
                    self._give_up_on_head(exc)
                await asyncio.sleep(min(30.0, 2.0 ** self._failures))
                self._wake.set()
                continue
            run = self._service.get(self.run_id)
            if run is None or (run.status.is_final and not self._steps and not self._parent_dirty):
                return

    def _give_up_on_head(self, exc: Exception) -> None:
        """After many tries, skip one message (logged with its text) rather than stall every later one."""
        self._failures = 0
        if self._steps:
            step = self._steps.popleft()
            log_event(log, "slack.reply_dropped", level=logging.ERROR, run_id=self.run_id, step=step.message,
                      error=_describe(exc))

    async def _flush(self) -> None:
        run = self._service.get(self.run_id)
        if run is None:
            return
        if "thread_ts" not in run.context:
            await self._post_parent()
            run = self._service.get(self.run_id) or run
        channel, thread_ts = run.context["thread_channel"], run.context["thread_ts"]
        while self._steps:
            await self._client.chat_postMessage(channel=channel, thread_ts=thread_ts, text=step_text(self._steps[0]),
                                                unfurl_links=False, unfurl_media=False)
            self._steps.popleft()
        if self._parent_dirty:
            wait = MIN_UPDATE_INTERVAL_SECONDS - (time.monotonic() - self._last_update)
            if wait > 0 and not run.status.is_final:
                await asyncio.sleep(wait)
            self._parent_dirty = False
            self._last_update = time.monotonic()
            latest = self._service.get(self.run_id) or run  # rendered as it is now: the latest state wins
            try:
                await self._client.chat_update(channel=channel, ts=thread_ts, **parent_message(latest))
            except Exception:
                self._parent_dirty = True
                raise

    async def _post_parent(self) -> None:
        run = self._service.get(self.run_id)
        assert run is not None
        channel = run.context.get("channel", "")
        try:
            response = await self._client.chat_postMessage(channel=channel, **parent_message(run))
        except SlackApiError as exc:
            if exc.response.get("error") not in _UNREACHABLE:
                raise
            # The bot cannot post in that channel: follow the run in a DM with whoever started it.
            response = await self._client.chat_postMessage(channel=run.requested_by, **parent_message(run))
            await self._tell_requester(
                f"I can't post in <#{channel}> ({exc.response.get('error')}): invite me with `/invite @syncbot`. "
                f"Sync `{run.run_id}` is running anyway; I'm posting its thread in our direct messages.")
        self._service.update_context(self.run_id, thread_channel=response["channel"], thread_ts=response["ts"])
        self._last_update = time.monotonic()
        log_event(log, "slack.parent_posted", run_id=self.run_id, channel=response["channel"], ts=response["ts"])

    async def _tell_requester(self, text: str) -> None:
        run = self._service.get(self.run_id)
        response_url = run.context.get("response_url") if run else None
        if not response_url:
            return
        try:
            await AsyncWebhookClient(response_url).send(text=text, response_type="ephemeral")
        except Exception as exc:
            log_event(log, "slack.notice_failed", level=logging.WARNING, run_id=self.run_id, error=_describe(exc))


def _describe(exc: Exception) -> str:
    if isinstance(exc, SlackApiError):
        return f"Slack API error: {exc.response.get('error')} (HTTP {exc.response.status_code})"
    return f"{type(exc).__name__}: {exc}"
