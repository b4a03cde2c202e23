"""`python -m orchestrator`: drive syncs without Slack (operations, scripts, and the crash tests).

  python -m orchestrator start [SYNC]   start a sync (the only one, or SYNC) and follow it to its end
  python -m orchestrator resume         take over every run no live process holds, follow them, then exit
  python -m orchestrator status         the recent runs
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

from dotenv import load_dotenv

from . import build_service
from .logs import configure_logging
from .service import RunEvent, UnknownSync
from .settings import SettingsError, load_settings
from .store import StoreError


def _print_event(event: RunEvent) -> None:
    if event.step is not None:
        print(f"{event.run.run_id} {event.run.status.value}: {event.step.message}", flush=True)


async def _run(command: str, sync_name: str | None) -> int:
    settings = load_settings(os.environ)
    configure_logging(settings.secrets)
    service = await build_service(settings)
    service.subscribe(_print_event)
    try:
        if command == "status":
            for run in await service.recent(10):
                print(f"{run.run_id} {run.status.value} {run.sync_name} {run.target_table} rows={run.rows_loaded} "
                      f"{run.summary}")
            return 0
        if command == "start":
            try:
                result = await service.start_sync(sync_name, requested_by="cli")
            except UnknownSync:
                print(f"Name a sync: {', '.join(settings.syncs)}", file=sys.stderr)
                return 2
            run_ids = [result.run.run_id]
            await service.start()
        else:
            run_ids = [run.run_id for run in await service.start()]
        finals = [await service.wait(run_id) for run_id in run_ids]
        return 0 if all(run.status.value == "SUCCESS" for run in finals) else 1
    finally:
        await service.shutdown()
        await service.store.close()


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m orchestrator", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["start", "resume", "status"])
    parser.add_argument("sync", nargs="?", help="the sync to start (when there are several)")
    args = parser.parse_args()
    load_dotenv()
    try:
        return asyncio.run(_run(args.command, args.sync))
    except (SettingsError, StoreError) as exc:
        print(exc, file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
