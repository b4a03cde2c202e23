"""Shared fixtures: one local stack per test session (real servers on loopback), a fresh table per test."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import pytest

from emulators import LocalStack
from emulators.stack import DEMO_DATABASE, DEMO_SCHEMA


@pytest.fixture(scope="session")
def stack() -> Iterator[LocalStack]:
    with LocalStack(poll_interval_seconds=0.2, poll_max_interval_seconds=0.4, run_timeout_seconds=60) as local:
        yield local


@pytest.fixture(autouse=True)
def _reset_switches(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "stack" in request.fixturenames:
        local: LocalStack = request.getfixturevalue("stack")
        local.databricks.reset()
        local.slack.reset()
        local.snowflake.copy_delay_seconds = 0.0


@pytest.fixture
def table(stack: LocalStack) -> str:
    """A new, empty target table for this test, so row counts are this test's alone."""
    name = f"T_{uuid.uuid4().hex[:10].upper()}"
    stack.snowflake.create_table(f"{DEMO_DATABASE}.{DEMO_SCHEMA}.{name}")
    return name


@pytest.fixture
def env(stack: LocalStack, table: str, tmp_path) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """The environment production would have, pointed at the local stack."""
    return {**stack.env(), "SNOWFLAKE_TABLE": table, "SYNC_DB_PATH": str(tmp_path / "syncbot.db")}


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
