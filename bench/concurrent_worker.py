"""The bot process of the concurrency benchmark: the real bot (Socket Mode, orchestrator, Slack threads) with
100 runs started at once on 100 targets. Prints one JSON line: peak RSS, event-loop lag, final statuses."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
from collections import Counter

from bot.runtime import running_bot
from bot.settings import load_bot_settings
from orchestrator.models import SyncTarget

from ._common import peak_rss_mb, percentile

PROBE_SECONDS = 0.01
CHANNEL_ID = "C0DATAENG"  # the local Slack's #data-eng (not imported: this process must not load the emulators)


async def main(runs: int, first_job_id: int) -> dict[str, object]:
    settings = load_bot_settings(os.environ)
    base = settings.orchestrator.default_target
    lags: list[float] = []
    async with running_bot(settings) as bot:
        loop = asyncio.get_running_loop()
        done = asyncio.Event()

        async def probe() -> None:  # how late does a 10 ms sleep wake up?
            while not done.is_set():
                started = loop.time()
                await asyncio.sleep(PROBE_SECONDS)
                lags.append((loop.time() - started - PROBE_SECONDS) * 1000)

        probe_task = asyncio.create_task(probe())
        started = loop.time()
        run_ids = []
        for index in range(runs):
            target = SyncTarget(job_id=first_job_id + index, database=base.database, schema=base.schema,
                                table=f"BENCH_{index:03d}", stage=base.stage)
            result = await bot.service.start_sync(target=target, requested_by="U0BENCH",
                                                  context={"channel": CHANNEL_ID})
            run_ids.append(result.run.run_id)
        finals = [await bot.service.wait(run_id, timeout=900) for run_id in run_ids]
        elapsed = loop.time() - started
        await bot.drain(timeout=120)  # every thread has posted its last reply
        done.set()
        await probe_task
    return {
        "statuses": dict(Counter(run.status.value for run in finals)),
        "rows": sum(run.rows_loaded or 0 for run in finals),
        "elapsed_seconds": elapsed,
        # VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the parent across fork+exec.
        "peak_rss_mb": peak_rss_mb(os.getpid()),
        "lag_p50_ms": percentile(lags, 0.50),
        "lag_p99_ms": percentile(lags, 0.99),
        "lag_max_ms": max(lags),
    }


if __name__ == "__main__":
    logging.disable(logging.WARNING)
    print(json.dumps(asyncio.run(main(int(sys.argv[1]), int(sys.argv[2])))))
