"""The Slack app: one Bolt app, listeners declared with decorators, ack first. Wiring, not logic."""

from __future__ import annotations

from typing import Any

import aiohttp
from slack_bolt.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.respond.async_respond import AsyncRespond
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient

from orchestrator import SyncService

from .handlers import SyncBot
from .pacing import SlackPacer
from .render import CANCEL_ACTION, OPEN_DATABRICKS_ACTION, START_ACTION
from .settings import BotSettings
from .thread import Reporter


def build_client(settings: BotSettings, session: aiohttp.ClientSession | None = None) -> AsyncWebClient:
    # One shared HTTP session (slack_sdk opens a new one per call without it: slower, and ~1 MB per call in flight)
    client = AsyncWebClient(token=settings.bot_token, base_url=settings.api_url or AsyncWebClient.BASE_URL,
                            session=session)
    # 429s honour Retry-After; 5xx and dropped connections are retried too, before the thread's own retries.
    client.retry_handlers.extend([AsyncRateLimitErrorRetryHandler(max_retry_count=5),
                                  AsyncServerErrorRetryHandler(max_retry_count=2),
                                  AsyncConnectionErrorRetryHandler(max_retry_count=2)])
    return client


def create_app(settings: BotSettings, service: SyncService,
               session: aiohttp.ClientSession | None = None) -> tuple[AsyncApp, SyncBot]:
    client = build_client(settings, session)
    # Listeners answer at once and return (slow work runs in tasks), so the ack goes back as soon as a listener
    # returns: no 10 ms ack polling loop per request.
    app = AsyncApp(client=client, process_before_response=True)
    bot = SyncBot(service, Reporter(client, service, SlackPacer(), service.metrics), settings.access)

    @app.command("/sync")
    async def sync_command(ack: AsyncAck, command: dict[str, Any]) -> None:
        await bot.on_command(ack, command)

    @app.action(START_ACTION)
    async def start_button(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond) -> None:
        await bot.on_start_button(ack, body, respond)

    @app.action(CANCEL_ACTION)
    async def cancel_button(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond) -> None:
        await bot.on_cancel_button(ack, body, respond)

    @app.action(OPEN_DATABRICKS_ACTION)
    async def open_databricks(ack: AsyncAck) -> None:
        await ack()  # a link button: Slack opens the URL; the click still needs an ack

    return app, bot
