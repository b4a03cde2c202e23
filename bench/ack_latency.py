"""Ack latency under load: envelope sent by the Slack emulator → ack received, through slack-bolt's real Socket
Mode handler and the real bot, with a run in flight. 50 commands at once, then 50 in a steady stream (20/s)."""

from __future__ import annotations

import asyncio
import logging

from bot.runtime import running_bot
from bot.settings import load_bot_settings
from emulators import LocalStack

from ._common import scratch_dir, summary

COMMANDS = ["", "status"] * 25  # /sync (one starts a run, the rest answer "already running") and /sync status


async def measure(stack: LocalStack) -> dict[str, list[float]]:
    env = {**stack.env(), "SYNC_DB_PATH": str(scratch_dir("ack") / "syncbot.db")}
    stack.databricks.set_outcome(101, "success", duration_seconds=20)
    async with running_bot(load_bot_settings(env)):
        await stack.acall(stack.slack.send_command("help"))  # warm up: Bolt's first request runs auth.test
        burst = await asyncio.gather(*(stack.acall(stack.slack.send_command(text)) for text in COMMANDS))
        stream = []
        for text in COMMANDS:
            stream.append(asyncio.ensure_future(stack.acall(stack.slack.send_command(text))))
            await asyncio.sleep(0.05)
        steady = await asyncio.gather(*stream)
    return {"burst": [ack["latency_ms"] for ack in burst], "steady": [ack["latency_ms"] for ack in steady]}


def run() -> dict[str, list[float]]:
    logging.disable(logging.WARNING)
    with LocalStack(poll_interval_seconds=0.5, poll_max_interval_seconds=1.0) as stack:
        return asyncio.run(measure(stack))


def main() -> None:
    results = run()
    print("Ack latency, envelope sent → ack received (ms)")
    print(f"  50 at once       {summary(results['burst'])}")
    print(f"  steady, 20/s     {summary(results['steady'])}")


if __name__ == "__main__":
    main()
