"""Ack latency: syncbot against a bare Bolt app, in the same run. Each is its own process, connected alone to the
Slack stand-in; a burst is 50 commands at once (49 × `/sync status`, one `/sync`), timed by the stand-in from
sending the envelope to receiving the ack. Rounds alternate between the two so that both see the same machine;
each process gets a warm-up burst first (not counted), as a bot that has been up for a while would have had."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
import time

from emulators import LocalStack
from emulators.botprocess import BotProcess

from ._common import ROOT, bot_env, scratch_dir, summary

ROUNDS = 3
BURSTS_PER_ROUND = 4
BURST = ["status"] * 49 + [""]


def burst(stack: LocalStack) -> list[float]:
    async def all_at_once() -> list[dict]:  # type: ignore[type-arg]
        return list(await asyncio.gather(*(stack.slack.send_command(text) for text in BURST)))
    return [ack["latency_ms"] for ack in stack.call(all_at_once())]


def start(stack: LocalStack, name: str, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], BotProcess | None]:
    if name == "syncbot":
        bot = BotProcess(stack, env, scratch_dir("ack") / "bot.log")
        bot.wait_connected()
        return bot.process, bot
    before = stack.slack.connections
    process = subprocess.Popen([sys.executable, "-m", "bench.bare_bolt"], cwd=ROOT, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not [s for s in stack.slack.connections if s not in before]:
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("the bare Bolt app did not connect")
        time.sleep(0.05)
    return process, None


def measure(stack: LocalStack) -> dict[str, list[float]]:
    results: dict[str, list[float]] = {"bare": [], "syncbot": []}
    env = bot_env(stack)
    stack.databricks.set_outcome(101, "success", duration_seconds=3600)  # a run in flight throughout
    for _ in range(ROUNDS):
        for name in ("bare", "syncbot"):
            before = stack.slack.connections
            process, bot = start(stack, name, env)
            try:
                burst(stack)  # warm-up, not counted
                for _ in range(BURSTS_PER_ROUND):
                    time.sleep(0.3)
                    results[name] += burst(stack)
            finally:
                if bot is not None:
                    bot.stop()
                else:
                    process.terminate()
                    process.wait(20)
            while [s for s in stack.slack.connections if s not in before]:
                time.sleep(0.05)
    return results


def run() -> dict[str, list[float]]:
    logging.disable(logging.WARNING)
    with LocalStack(poll_interval_seconds=5, poll_max_interval_seconds=10) as stack:
        return measure(stack)


def main() -> None:
    results = run()
    print(f"Ack latency, 50 commands at once, {ROUNDS * BURSTS_PER_ROUND} bursts each, envelope sent → ack (ms)")
    print(f"  bare Bolt app   {summary(results['bare'])}")
    print(f"  syncbot         {summary(results['syncbot'])}")


if __name__ == "__main__":
    main()
