"""Driving the bot in-process through the Slack emulator, as the end-to-end and fault tests do."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from bot.runtime import BotRuntime
from bot.runtime import running_bot as bot_runtime
from bot.settings import load_bot_settings
from emulators import LocalStack
from emulators.botprocess import final_parent as shown_final
from emulators.botprocess import run_id_of
from emulators.slack import Message

from .conftest import eventually

ROOT = Path(__file__).resolve().parent.parent


@asynccontextmanager
async def running_bot(stack: LocalStack, env: dict[str, str]) -> AsyncIterator[BotRuntime]:
    """`python -m bot` in-process: the same settings, the same wiring, the real Socket Mode handler."""
    async with bot_runtime(load_bot_settings(env)) as runtime:
        yield runtime


async def command(stack: LocalStack, text: str, **kwargs: Any) -> dict[str, Any]:
    return await stack.acall(stack.slack.send_command(text, **kwargs))


def run_id_in(ack: dict[str, Any]) -> str:
    run_id = run_id_of(ack)
    assert run_id, ack
    return run_id


async def final_parent(stack: LocalStack, run_id: str, status: str, timeout: float = 30) -> Message:
    """The run's parent once its metadata shows a final status (the thread is complete by then: the parent goes
    last); asserts it is `status`."""
    parent = await eventually(lambda: shown_final(stack, run_id), timeout)
    assert parent.run["status"] == status, (parent.text, stack.slack.thread_text(run_id))
    return parent


def stored(db_path: str, run_id: str) -> dict[str, Any]:
    """A run as the SQLite store holds it (what another process would read)."""
    with sqlite3.connect(db_path) as db:
        row = db.execute("SELECT body FROM runs WHERE run_id = ?", (run_id,)).fetchone()
    return json.loads(row[0]) if row else {}


def stored_status(db_path: str, run_id: str) -> str | None:
    return stored(db_path, run_id).get("status") if Path(db_path).exists() else None
