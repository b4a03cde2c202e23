"""`python -m bot`: load .env, validate every setting, connect to Slack in Socket Mode, resume unfinished runs."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys

from dotenv import load_dotenv

from orchestrator.logs import configure_logging, log_event
from orchestrator.settings import SettingsError
from orchestrator.store import StoreError

from .runtime import StartupError, running_bot
from .settings import BotSettings, load_bot_settings

log = logging.getLogger("syncbot.bot")


async def serve(settings: BotSettings) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with running_bot(settings) as bot:
        log_event(log, "bot.ready", target=settings.orchestrator.default_target.table_name,
                  resumed_runs=len(bot.threads))
        await stop.wait()
        log_event(log, "bot.stopping", active_runs=len(bot.threads))
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
