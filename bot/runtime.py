"""The bot's life in a process: wire it, check Slack, connect in Socket Mode, take over runs; stop cleanly."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import aiohttp
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from orchestrator import SyncService, build_service

from .app import create_app
from .handlers import SyncBot
from .http import OperatorServer
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


@dataclass
class BotRuntime:
    service: SyncService
    bot: SyncBot
    socket: AsyncSocketModeHandler
    http: OperatorServer | None

    @property
    def threads(self) -> dict[str, object]:
        return dict(self.bot.threads)


@asynccontextmanager
async def running_bot(settings: BotSettings) -> AsyncIterator[BotRuntime]:
    """The bot connected and driving runs (orphaned ones taken over); on exit, runs keep their status and their
    leases are given up, so another process (or the next start) continues them at once."""
    service = await build_service(settings.orchestrator)
    try:
        async with aiohttp.ClientSession() as session:
            app, bot = create_app(settings, service, session)
            await check_slack(settings, bot.client)
            socket = AsyncSocketModeHandler(app, settings.app_token)
            await socket.connect_async()
            http: OperatorServer | None = None
            lag_probe = asyncio.create_task(_watch_event_loop_lag(service), name="syncbot-loop-lag")
            try:
                await service.start()
                if settings.http.port is not None:
                    http = await OperatorServer(settings.http, service, socket).start()
                # Start-up leaves ~1 M long-lived objects (the client libraries); without this the first full
                # garbage collection scans them all and stalls the event loop for ~200 ms, in the middle of acks.
                gc.freeze()
                yield BotRuntime(service, bot, socket, http)
            finally:
                lag_probe.cancel()
                if http is not None:
                    await http.stop()
                await service.shutdown()
                await bot.drain(timeout=3)
                await socket.close_async()
    finally:
        await service.store.close()


async def _watch_event_loop_lag(service: SyncService, every: float = 0.1) -> None:
    """How late the loop wakes a timer: what every ack, poll and Slack call waits on top of its own work."""
    loop = asyncio.get_running_loop()
    while True:
        started = loop.time()
        await asyncio.sleep(every)
        service.metrics.loop_lag.observe(max(0.0, loop.time() - started - every))
