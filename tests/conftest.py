"""Shared fixtures: one local stack per test session (real servers on loopback), a PostgreSQL server when a test
needs one, a fresh table per test, and bot processes that are stopped whatever the test's outcome."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from emulators import LocalStack
from emulators.botprocess import BotProcess
from emulators.stack import DEMO_DATABASE, DEMO_SCHEMA

from .postgres import PostgresServer

LEASE_SECONDS = "3"  # short leases, so that take-overs happen within a test's patience


@pytest.fixture(scope="session")
def stack() -> Iterator[LocalStack]:
    with LocalStack(poll_interval_seconds=0.2, poll_max_interval_seconds=0.4, run_timeout_seconds=60,
                    job_seconds=0.6) as local:
        yield local


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    server = PostgresServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(autouse=True)
def _reset_switches(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "stack" in request.fixturenames:
        local: LocalStack = request.getfixturevalue("stack")
        local.databricks.reset()
        local.slack.reset()
        local.snowflake.reset()


@pytest.fixture
def table(stack: LocalStack) -> str:
    """A new, empty target table for this test, so row counts are this test's alone."""
    name = f"T_{uuid.uuid4().hex[:10].upper()}"
    stack.snowflake.create_table(f"{DEMO_DATABASE}.{DEMO_SCHEMA}.{name}")
    return name


@pytest.fixture
def env(stack: LocalStack, table: str, tmp_path: Path) -> dict[str, str]:
    """The environment production would have, pointed at the local stack: one sync, named after its table."""
    return {**stack.env(), "SNOWFLAKE_TABLE": table, "SYNC_DB_PATH": str(tmp_path / "syncbot.db"),
            "SYNC_CONFIG": "", "SYNC_LEASE_SECONDS": LEASE_SECONDS}


@pytest.fixture
def bot_processes(stack: LocalStack, tmp_path: Path) -> Iterator[Callable[..., BotProcess]]:
    """Start `python -m bot` processes; every one is stopped (and reaped) when the test ends, pass or fail."""
    started: list[BotProcess] = []

    def start(env: dict[str, str], name: str = "bot") -> BotProcess:
        process = BotProcess(stack, env, tmp_path / f"{name}-{len(started)}.log")
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()


def table_name(table: str) -> str:
    return f"{DEMO_DATABASE}.{DEMO_SCHEMA}.{table}"


async def eventually(predicate, timeout: float = 20.0, interval: float = 0.05):  # type: ignore[no-untyped-def]
    """Wait until predicate() is truthy; return its value."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {getattr(predicate, '__name__', predicate)}")
        await asyncio.sleep(interval)
