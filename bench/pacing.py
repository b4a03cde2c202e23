"""Slack pacing: 50 runs at once in one channel, with the Slack stand-in enforcing Slack's published limits
(chat.postMessage ~1/s per channel with a burst of 3, chat.update 50/min). syncbot paces itself; the baseline is the
same bot without its pace (429s left to slack_sdk's retry handler). Figures: 429s, how long after a run's end its
parent showed the final status, and how many thread replies carried several steps."""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import time
from datetime import datetime

from emulators import LocalStack
from emulators.botprocess import BotProcess, run_id_of

from ._common import add_syncs, bot_env, percentile, scratch_dir

RUNS = 50
DURATIONS = [20.0 + index * 120.0 / (RUNS - 1) for index in range(RUNS)]  # exports of 20 s – 2 min 20 s


def finished_at(db_path: str, run_ids: list[str]) -> dict[str, float]:
    with sqlite3.connect(db_path) as db:
        rows = db.execute(f"SELECT run_id, body FROM runs WHERE run_id IN ({','.join('?' * len(run_ids))})",
                          run_ids).fetchall()
    return {run_id: datetime.fromisoformat(json.loads(body)["finished_at"]).timestamp() for run_id, body in rows
            if json.loads(body).get("finished_at")}


def run_variant(stack: LocalStack, variant: str, first_job: int) -> dict[str, object]:
    config = add_syncs(stack, RUNS, first_job=first_job, durations=DURATIONS, prefix=f"PACE{first_job}")
    env = bot_env(stack, SYNC_CONFIG=config, SYNC_RUN_TIMEOUT_SECONDS="900")
    rate_limited_before = len(stack.slack.rate_limited)
    names = [f"pace{first_job}{index:04d}" for index in range(RUNS)]
    command = ("-m", "bench.unpaced_bot") if variant == "unpaced" else ()
    bot = BotProcess(stack, env, scratch_dir("pacing") / "bot.log", module_args=command)
    with bot:
        bot.wait_connected()

        async def start_all() -> list[dict]:  # type: ignore[type-arg]
            return list(await asyncio.gather(*(stack.slack.send_command(name) for name in names)))
        run_ids = [run_id for ack in stack.call(start_all()) if (run_id := run_id_of(ack))]
        deadline = time.monotonic() + 900
        while True:
            parents = {run_id: stack.slack.find_parent(run_id) for run_id in run_ids}
            if all(parent is not None and parent.final_at for parent in parents.values()):
                break
            if time.monotonic() > deadline:
                raise RuntimeError("the runs did not all show their final status")
            time.sleep(0.5)
    ended = finished_at(env["SYNC_DB_PATH"], run_ids)
    delays = [parents[run_id].final_at - ended[run_id] for run_id in run_ids]  # type: ignore[operator]
    replies = [reply for parent in parents.values() if parent for reply in stack.slack.replies(parent)]
    batched = sum(1 for reply in replies if len(reply.text.splitlines()) > 1 and not reply.text.startswith("COPY"))
    statuses = {parent.run["status"] for parent in parents.values() if parent}
    return {"429s": len(stack.slack.rate_limited) - rate_limited_before, "p50": percentile(delays, 0.5),
            "p95": percentile(delays, 0.95), "max": max(delays), "replies": len(replies), "batched": batched,
            "statuses": sorted(statuses), "runs": len(run_ids)}


def run() -> dict[str, dict[str, object]]:
    logging.disable(logging.WARNING)
    with LocalStack(poll_interval_seconds=2.0, poll_max_interval_seconds=4.0, run_timeout_seconds=900) as stack:
        stack.slack.rate_limits = True
        return {"syncbot": run_variant(stack, "syncbot", 30_000), "unpaced": run_variant(stack, "unpaced", 31_000)}


def main() -> None:
    results = run()
    print(f"Slack pacing: {RUNS} runs at once in one channel, Slack's limits enforced")
    for variant, result in results.items():
        print(f"  {variant:8} 429s {result['429s']:>4}  final parent after the run's end: p50 {result['p50']:.1f} s, "
              f"p95 {result['p95']:.1f} s, max {result['max']:.1f} s  ({result['replies']} replies, "
              f"{result['batched']} carrying several steps; {result['statuses']})")


if __name__ == "__main__":
    main()
