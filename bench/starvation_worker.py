"""The process of one design in bench/starvation.py: the orchestrator (no Slack) with RUNS runs started at once.
Prints one JSON line: poll lateness percentiles, final statuses."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import os
import sys
import time
from collections import Counter
from typing import Any

from orchestrator import build_service, load_settings
from orchestrator.executors import BlockingPool
from orchestrator.service import SyncService
from orchestrator.snowflake import QueryState, SnowflakeClient

from ._common import percentile

_late: list[float] = []
_waiting: dict[int, float] = {}
_tokens = itertools.count()


def measure_polls() -> None:
    """Record each poll's wait for a worker thread (SyncService._timed), and the polls still waiting."""
    def timed(self: SyncService, call: Any) -> Any:
        due = time.monotonic()
        token = next(_tokens)
        _waiting[token] = due

        def started(*args: Any) -> Any:
            _late.append(time.monotonic() - _waiting.pop(token))
            return call(*args)
        return started
    SyncService._timed = timed  # type: ignore[method-assign]


def as_in_0_1_0(service: SyncService) -> None:
    """One shared pool of asyncio's default size, in which a COPY is waited for until it ends."""
    shared = BlockingPool("shared", min(32, (os.cpu_count() or 1) + 4))
    service._databricks_pool = service._snowflake_pool = shared
    original = SnowflakeClient.status

    def status_until_done(self: SnowflakeClient, query_id: str) -> QueryState:
        while (state := original(self, query_id)).running:
            time.sleep(0.5)
        return state
    SnowflakeClient.status = status_until_done  # type: ignore[method-assign]


async def main(variant: str, window: float) -> dict[str, object]:
    measure_polls()
    settings = load_settings(os.environ)
    service = await build_service(settings)
    if variant == "0.1.0":
        as_in_0_1_0(service)
    await service.start()
    started = time.monotonic()
    run_ids = [(await service.start_sync(name)).run.run_id for name in settings.syncs]
    done, _ = await asyncio.wait([asyncio.ensure_future(service.wait(run_id)) for run_id in run_ids],
                                 timeout=window)  # the window may close with runs still going
    finals = [task.result() for task in done]
    elapsed = time.monotonic() - started
    now = time.monotonic()
    waiting = [now - due for due in _waiting.values()]
    samples = _late + waiting
    statuses = Counter(run.status.value for run in finals)
    if len(finals) < len(run_ids):
        statuses["unfinished"] = len(run_ids) - len(finals)
    result = {"p50": percentile(samples, 0.5), "p99": percentile(samples, 0.99), "max": max(samples),
              "errors": sorted({run.error[:300] for run in finals if run.error})[:3],
              "polls": len(_late), "waiting": len(waiting), "statuses": dict(statuses), "seconds": elapsed}
    print(json.dumps(result), flush=True)
    os._exit(0)  # worker threads of the 0.1.0 design may still be waiting on COPYs


if __name__ == "__main__":
    logging.disable(logging.WARNING)
    asyncio.run(main(sys.argv[1], float(sys.argv[2])))
