"""`python -m bot` as a real process against the local stack, and following a run to its end in Slack.

One helper for the tests, the demo and the benchmarks. A BotProcess is a context manager: whatever happens in the
block, the process is stopped (SIGTERM, then SIGKILL) when the block ends.
"""

from __future__ import annotations

import asyncio
import os
import signal as signals
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from .slack import Message
from .stack import LocalStack

ROOT = Path(__file__).resolve().parent.parent


class BotNotReady(RuntimeError):
    """The bot process exited or did not connect; the message carries the end of its log."""


class BotProcess:
    def __init__(self, stack: LocalStack, env: dict[str, str], log_path: Path, *, command: tuple[str, ...] = (),
                 module_args: tuple[str, ...] = (), python: str | Path = sys.executable, cwd: Path = ROOT) -> None:
        self.stack = stack
        self.log_path = log_path
        self._connections_before = stack.slack.connections
        self._log = log_path.open("ab")
        self.process = subprocess.Popen([str(python), *(module_args or ("-m", "bot")), *command], cwd=cwd,
                                        env={**os.environ, "PYTHONUNBUFFERED": "1", **env},
                                        stdout=self._log, stderr=subprocess.STDOUT)

    def __enter__(self) -> BotProcess:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    @property
    def pid(self) -> int:
        return self.process.pid

    def _has_connected(self) -> bool:
        if self.process.poll() is not None:
            raise BotNotReady(f"the bot exited ({self.process.returncode}); its log ends:\n{self.log()[-3000:]}")
        return any(socket not in self._connections_before for socket in self.stack.slack.connections)

    def wait_connected(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not self._has_connected():
            if time.monotonic() > deadline:
                raise BotNotReady(f"the bot did not connect within {timeout:g}s; its log ends:\n{self.log()[-3000:]}")
            time.sleep(0.05)

    async def connected(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not self._has_connected():
            if time.monotonic() > deadline:
                raise BotNotReady(f"the bot did not connect within {timeout:g}s; its log ends:\n{self.log()[-3000:]}")
            await asyncio.sleep(0.05)

    def signal(self, signum: int) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signum)

    def stop(self, signum: int = signals.SIGTERM, timeout: float = 20) -> int:
        """Stop the process (and always reap it); its exit status (negative: the signal that ended it)."""
        try:
            if self.process.poll() is None:
                self.process.send_signal(signals.SIGCONT)  # a stopped process cannot act on SIGTERM
                self.process.send_signal(signum)
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait(10)
        finally:
            if not self._log.closed:
                self._log.close()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def final_parent(stack: LocalStack, run_id: str) -> Message | None:
    """The run's parent message once it shows a final status (read from its metadata), else None."""
    parent = stack.slack.find_parent(run_id)
    return parent if parent is not None and parent.shows_final_run else None


def follow(stack: LocalStack, run_id: str, timeout: float = 120, bot: BotProcess | None = None) -> Message:
    """Until the run's parent shows its final status: then its thread is complete (the parent goes last)."""
    deadline = time.monotonic() + timeout
    while (parent := final_parent(stack, run_id)) is None:
        if bot is not None and bot.process.poll() is not None:
            raise BotNotReady(f"the bot exited ({bot.process.returncode}); its log ends:\n{bot.log()[-3000:]}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"run {run_id} did not finish within {timeout:g}s")
        time.sleep(0.05)
    return parent


def run_id_of(ack: dict[str, Any]) -> str | None:
    import re

    match = re.search(r"`(\d{4}-[a-z0-9]{6})`", ack.get("text", ""))
    return match.group(1) if match and "Starting sync" in ack.get("text", "") else None
