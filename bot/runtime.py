"""The bot's life in a process: wire it, check Slack, connect in Socket Mode, resume runs; stop cleanly."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from orchestrator import build_service

from .app import create_app
from .handlers import SyncBot
from .settings import BotSettings


class StartupError(Exception):
    """Start-up cannot go on; the message names the cause and the fix."""


async def check_slack(settings: BotSettings, client: AsyncWebClient) -> None:
    """Fail at start-up, with the fix, when a Slack token is wrong, rather than at the first /sync."""
    try:
        await client.auth_test()
    except SlackApiError as exc:
        raise StartupError(f"Slack rejected SLACK_BOT_TOKEN ({exc.response.get('error')}): copy the Bot User OAuth "
                           "Token from the app's OAuth & Permissions page") from None
    try:
        await client.apps_connections_open(app_token=settings.app_token)
    except SlackApiError as exc:
        raise StartupError(f"Slack rejected SLACK_APP_TOKEN ({exc.response.get('error')}): create an app-level "
                           "token with connections:write, and turn Socket Mode on") from None


@asynccontextmanager
async def running_bot(settings: BotSettings) -> AsyncIterator[SyncBot]:
    """The bot connected and driving runs (unfinished ones resumed); on exit, runs keep their status."""
    service = build_service(settings.orchestrator)
    async with aiohttp.ClientSession() as session:
        app, bot = create_app(settings, service, session)
        await check_slack(settings, bot.client)
        handler = AsyncSocketModeHandler(app, settings.app_token)
        await handler.connect_async()
        await service.resume()
        # Start-up leaves ~1 M long-lived objects (the client libraries); without this the first full garbage
        # collection scans them all and stalls the event loop for ~200 ms, in the middle of some acks.
        gc.freeze()
        try:
            yield bot
        finally:
            await service.shutdown()  # runs stay in their current status: the next start resumes them
            await bot.drain(timeout=3)
            await handler.close_async()
