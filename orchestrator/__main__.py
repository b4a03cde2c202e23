"""`python -m orchestrator`: drive syncs without Slack (operations, scripts, and the crash tests).

  python -m orchestrator start     start a sync of the configured target and follow it to its end
  python -m orchestrator resume    continue every unfinished run in SYNC_DB_PATH, then exit
  python -m orchestrator status    the recent runs
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

from dotenv import load_dotenv

from . import build_service
from .logs import configure_logging
from .service import RunEvent
from .settings import SettingsError, load_settings
from .store import StoreError


def _print_event(event: RunEvent) -> None:
    if event.step is not None:
        print(f"{event.run.run_id} {event.run.status.value}: {event.step.message}", flush=True)


async def _run(command: str) -> int:
    settings = load_settings(os.environ)
    configure_logging(settings.secrets)
    service = build_service(settings)
    service.subscribe(_print_event)
    if command == "status":
        for run in service.recent(10):
            print(f"{run.run_id} {run.status.value} {run.target.table_name} rows={run.rows_loaded} {run.error or ''}")
        return 0
    if command == "start":
        run_ids = [(await service.start_sync(requested_by="cli")).run.run_id]
    else:
        run_ids = [run.run_id for run in await service.resume()]
    finals = [await service.wait(run_id) for run_id in run_ids]
    return 0 if all(run.status.value == "SUCCESS" for run in finals) else 1


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m orchestrator", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["start", "resume", "status"])
    args = parser.parse_args()
    load_dotenv()
    try:
        return asyncio.run(_run(args.command))
    except (SettingsError, StoreError) as exc:
        print(exc, file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
