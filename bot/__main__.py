"""`python -m bot`: load .env, validate every setting, connect to Slack in Socket Mode, resume unfinished runs."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys

from dotenv import load_dotenv
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_sdk.errors import SlackApiError

from orchestrator import build_service
from orchestrator.logs import configure_logging, log_event
from orchestrator.settings import SettingsError
from orchestrator.store import StoreError

from .app import create_app
from .settings import BotSettings, load_bot_settings

log = logging.getLogger("syncbot.bot")


class StartupError(Exception):
    pass


async def check_slack(settings: BotSettings, app_client: object) -> None:
    """Fail at start-up, with the fix, when a Slack token is wrong, rather than at the first /sync."""
    from slack_sdk.web.async_client import AsyncWebClient

    assert isinstance(app_client, AsyncWebClient)
    try:
        await app_client.auth_test()
    except SlackApiError as exc:
        raise StartupError(f"Slack rejected SLACK_BOT_TOKEN ({exc.response.get('error')}): copy the Bot User OAuth "
                           "Token from the app's OAuth & Permissions page") from None
    try:
        await app_client.apps_connections_open(app_token=settings.app_token)
    except SlackApiError as exc:
        raise StartupError(f"Slack rejected SLACK_APP_TOKEN ({exc.response.get('error')}): create an app-level "
                           "token with connections:write, and turn Socket Mode on") from None


async def serve(settings: BotSettings) -> None:
    service = build_service(settings.orchestrator)
    app, bot = create_app(settings, service)
    await check_slack(settings, app.client)
    handler = AsyncSocketModeHandler(app, settings.app_token)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await handler.connect_async()
    resumed = await service.resume()
    log_event(log, "bot.ready", resumed_runs=len(resumed), target=settings.orchestrator.default_target.table_name)
    await stop.wait()
    log_event(log, "bot.stopping", active_runs=len(bot.threads))
    await service.shutdown()  # runs stay in their current status: the next start resumes them
    await bot.drain(timeout=3)
    await handler.close_async()
    log_event(log, "bot.stopped")


def main() -> int:
    load_dotenv()  # a real environment variable wins over .env
    try:
        settings = load_bot_settings(os.environ)
    except SettingsError as exc:
        print(exc, file=sys.stderr)
        return 2
    configure_logging(settings.orchestrator.secrets)
    try:
        asyncio.run(serve(settings))
    except (StoreError, StartupError) as exc:
        print(f"syncbot cannot start: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
