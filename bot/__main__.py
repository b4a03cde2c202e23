"""`python -m bot`: load .env, validate every setting, connect to Slack in Socket Mode, take over orphaned runs.
`python -m bot doctor`: check the configured setup against the live services (no data moves); exit 0 when all
checks pass."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys

from dotenv import load_dotenv

from orchestrator import SettingsError, StoreError, configure_logging, log_event

from .doctor import run_doctor
from .runtime import StartupError, running_bot
from .settings import BotSettings, load_bot_settings

log = logging.getLogger("syncbot.bot")


async def serve(settings: BotSettings) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with running_bot(settings) as runtime:
        log_event(log, "bot.ready", syncs=",".join(settings.orchestrator.syncs),
                  active_runs=runtime.service.active_count, store=settings.orchestrator.sync.store_description,
                  owner=runtime.service.store.owner)
        await stop.wait()
        log_event(log, "bot.stopping", active_runs=runtime.service.active_count)
    log_event(log, "bot.stopped")


def doctor(settings: BotSettings) -> int:
    lines: list[str] = []
    ok = asyncio.run(run_doctor(settings, lines))
    print("\n".join(lines))
    print("All checks passed." if ok else "Some checks failed: fix each ✗ above, then run doctor again.")
    return 0 if ok else 1


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bot", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", nargs="?", choices=["serve", "doctor"], default="serve")
    args = parser.parse_args()
    load_dotenv()  # a real environment variable wins over .env
    try:
        settings = load_bot_settings(os.environ)
    except SettingsError as exc:
        print(exc, file=sys.stderr)
        return 2
    level = logging.WARNING if args.command == "doctor" else logging.INFO
    configure_logging(settings.orchestrator.secrets, level=level)
    if args.command == "doctor":
        return doctor(settings)
    try:
        asyncio.run(serve(settings))
    except (StoreError, StartupError) as exc:
        print(f"syncbot cannot start: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
