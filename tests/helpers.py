"""Driving the bot in-process through the Slack emulator, as the end-to-end and fault tests do."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from bot.handlers import SyncBot
from bot.runtime import running_bot as bot_runtime
from bot.settings import load_bot_settings
from emulators import LocalStack
from emulators.slack import Message

from .conftest import eventually

ROOT = Path(__file__).resolve().parent.parent


@asynccontextmanager
async def running_bot(stack: LocalStack, env: dict[str, str]) -> AsyncIterator[SyncBot]:
    """`python -m bot` in-process: the same settings, the same wiring, the real Socket Mode handler."""
    async with bot_runtime(load_bot_settings(env)) as bot:
        yield bot


async def command(stack: LocalStack, text: str, **kwargs: str) -> dict:
    return await stack.acall(stack.slack.send_command(text, **kwargs))


def run_id_in(ack: dict) -> str:
    match = re.search(r"`(\d{4}-[a-z0-9]{6})`", ack["text"])
    assert match, ack
    return match.group(1)


async def final_parent(stack: LocalStack, run_id: str, status: str, timeout: float = 30) -> Message:
    def parent_is_final() -> Message | None:
        parent = stack.slack.find_parent(run_id)
        return parent if parent and parent.shows_final_run and status in parent.text else None
    parent = await eventually(parent_is_final, timeout)
    # the thread catches up right after the parent
    await eventually(lambda: any(status in reply.text for reply in stack.slack.replies(parent)), 10)
    return parent


class BotProcess:
    """`python -m bot` as a real subprocess (for SIGKILL, SIGTERM and what its log lines contain)."""

    def __init__(self, stack: LocalStack, env: dict[str, str], log_path: Path) -> None:
        self.stack = stack
        self.log_path = log_path
        self._connections_before = stack.slack.connections
        self._log = log_path.open("ab")
        self.process = subprocess.Popen([sys.executable, "-m", "bot"], cwd=ROOT, env={**os.environ, **env},
                                        stdout=self._log, stderr=subprocess.STDOUT)

    async def connected(self, timeout: float = 30) -> None:
        def new_socket() -> bool:
            assert self.process.poll() is None, self.log()
            return any(socket not in self._connections_before for socket in self.stack.slack.connections)
        await eventually(new_socket, timeout)

    def stop(self, signum: int = signal.SIGTERM, timeout: float = 20) -> int:
        self.process.send_signal(signum)
        try:
            return self.process.wait(timeout)
        finally:
            if self.process.poll() is None:
                self.process.kill()
            self._log.close()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")
