"""Memory at rest: `python -m bot` from a production install (`pip install .` in a fresh venv, no dev dependencies)
next to the development install (.venv with `[dev]`), each connected to the local stack, idle, then after one sync
has run (so the Databricks and Snowflake clients are loaded)."""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

from emulators import LocalStack
from emulators.botprocess import BotProcess, follow, run_id_of

from ._common import ROOT, bot_env, production_python, rss_mb, scratch_dir


def measure(stack: LocalStack, python: Path, cwd: Path) -> dict[str, float]:
    env = bot_env(stack, SYNC_POLL_INTERVAL_SECONDS="0.5", SYNC_POLL_MAX_INTERVAL_SECONDS="1")
    with BotProcess(stack, env, scratch_dir("memory") / "bot.log", python=python, cwd=cwd) as bot:
        bot.wait_connected(90)
        time.sleep(3)
        idle = rss_mb(bot.pid, "VmRSS")
        run_id = run_id_of(stack.call(stack.slack.send_command("")))
        assert run_id, "no run started"
        follow(stack, run_id, timeout=120, bot=bot)
        time.sleep(3)
        return {"idle_mb": idle, "after_run_mb": rss_mb(bot.pid, "VmRSS"), "peak_mb": rss_mb(bot.pid)}


def run() -> dict[str, dict[str, float]]:
    logging.disable(logging.WARNING)
    production = production_python()
    with LocalStack(poll_interval_seconds=0.5, poll_max_interval_seconds=1.0, job_seconds=1.0) as stack:
        elsewhere = scratch_dir("cwd")  # so that `bot` is imported from the installed wheel, not the source tree
        return {"production": measure(stack, production, elsewhere),
                "development": measure(stack, Path(sys.executable), ROOT)}


def main() -> None:
    results = run()
    print("Memory at rest of `python -m bot` (RSS, MB)")
    for name, result in results.items():
        print(f"  {name:12} idle {result['idle_mb']:.0f}  after one sync {result['after_run_mb']:.0f}  "
              f"peak {result['peak_mb']:.0f}")


if __name__ == "__main__":
    main()
