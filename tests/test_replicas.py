"""Two real `python -m bot` processes on one store (SQLite on one machine, or a real PostgreSQL server), with the
Slack stand-in spreading envelopes across both connections: a run orphaned by a dead process is taken over without
a restart, a cancel that reaches the other process stops the Databricks run, every run is driven exactly once, and a
paused process that wakes up after losing its lease writes nothing."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import pytest

from emulators import LocalStack
from emulators.slack import DEMO_CHANNEL_ID, MORE_CHANNEL_IDS
from orchestrator.models import SyncRun, utcnow
from orchestrator.store import open_store

from .conftest import LEASE_SECONDS, eventually, table_name
from .helpers import command, final_parent, run_id_in

pytestmark = [pytest.mark.e2e, pytest.mark.replicas]


@pytest.fixture(params=["sqlite", "postgresql"])
def shared(request: pytest.FixtureRequest, env: dict[str, str]) -> dict[str, str]:
    """The environment of both processes: one store they share."""
    if request.param == "postgresql":
        return {**env, "SYNC_DB_URL": request.getfixturevalue("postgres").new_database()}
    return env


async def wait_final(env: dict[str, str], run_id: str, timeout: float = 90) -> SyncRun:
    deadline = time.monotonic() + timeout
    while not (run := await stored_run(env, run_id)).status.is_final:
        assert time.monotonic() < deadline, run.status
        await asyncio.sleep(0.25)
    return run


async def two_bots(bot_processes, env):  # type: ignore[no-untyped-def]
    first = bot_processes(env, "first")
    await first.connected()
    second = bot_processes(env, "second")
    await second.connected()
    return first, second


async def a_run_and_its_owner(stack: LocalStack, env: dict[str, str], bot_processes):  # type: ignore[no-untyped-def]
    """Two bots, a run started through Slack: (run id, the process driving it, the other one)."""
    first, second = await two_bots(bot_processes, env)
    run_id = run_id_in(await command(stack, ""))
    deadline = time.monotonic() + 20
    while (owner := await holder(stack, env, run_id)) is None:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    await eventually(lambda: stack.databricks.runs_for(run_id))
    return (run_id, first, second) if f":{first.pid}:" in owner else (run_id, second, first)


async def holder(stack: LocalStack, env: dict[str, str], run_id: str) -> str | None:
    store = await open_store(db_url=env.get("SYNC_DB_URL"), db_path=env["SYNC_DB_PATH"], lease_seconds=30, owner="t")
    try:
        return await store.holder(run_id)
    finally:
        await store.close()


async def stored_run(env: dict[str, str], run_id: str) -> SyncRun:
    store = await open_store(db_url=env.get("SYNC_DB_URL"), db_path=env["SYNC_DB_PATH"], lease_seconds=30, owner="t")
    try:
        run = await store.get(run_id)
    finally:
        await store.close()
    assert run is not None
    return run


async def test_a_run_orphaned_by_a_killed_process_is_finished_by_the_other_without_a_restart(
        stack, shared, table, bot_processes):
    stack.databricks.set_outcome(101, "success", duration_seconds=4)
    run_id, victim, survivor = await a_run_and_its_owner(stack, shared, bot_processes)
    killed_at = utcnow()
    assert victim.stop(signal.SIGKILL) == -signal.SIGKILL
    parent = await final_parent(stack, run_id, "SUCCESS", timeout=60)
    assert survivor.process.poll() is None  # no restart: the live process took it over
    run = await stored_run(shared, run_id)
    resumed_at = next(step.at for step in run.steps if step.message.startswith("Resumed after a restart"))
    # Claimed once the dead process's lease ran out (plus the claim loop's tick): generous bounds, not a benchmark.
    assert (resumed_at - killed_at).total_seconds() < 3 * float(LEASE_SECONDS)
    assert "Resumed after a restart (was EXPORTING)" in stack.slack.thread_text(run_id)
    assert stack.slack.parents_of(run_id) == [parent]  # one thread
    assert len(stack.databricks.runs_for(run_id)) == 1  # one Databricks run
    assert stack.snowflake.count_rows(table_name(table)) == 1000  # the rows once


async def test_a_cancel_that_reaches_the_process_not_driving_the_run_stops_the_databricks_run(
        stack, shared, table, bot_processes):
    stack.databricks.set_outcome(101, "hang")
    await two_bots(bot_processes, shared)
    run_id = run_id_in(await command(stack, ""))
    await eventually(lambda: stack.databricks.runs_for(run_id), 20)
    answers = [await command(stack, f"status {run_id}") for _ in range(2)]  # envelopes alternate between the two
    assert all("EXPORTING" in answer["text"] or "PENDING" in answer["text"] for answer in answers)
    await command(stack, f"cancel {run_id}")
    await command(stack, f"cancel {run_id}")  # one of the two cancels reached the process that does not drive it
    await final_parent(stack, run_id, "CANCELLED", timeout=30)
    assert stack.databricks.runs_for(run_id)[0].result_state == "CANCELED"


async def test_twenty_runs_on_twenty_tables_across_both_processes_are_each_driven_once(
        stack, shared, table, bot_processes, tmp_path: Path):
    tables = [f"R{n:02d}_{table}" for n in range(20)]
    for name in tables:
        stack.snowflake.create_table(table_name(name))
    for job_id in range(5001, 5021):
        template = stack.databricks.jobs[101]
        from emulators.databricks import JobSpec

        stack.databricks.jobs[job_id] = JobSpec(job_id=job_id, name=f"job {job_id}", sql=template.sql,
                                                duration_seconds=1.0)
    config = tmp_path / "twenty.toml"
    config.write_text("".join(f'[syncs.r{n:02d}]\ndatabricks_job_id = {5001 + n}\nsnowflake_table = "{name}"\n'
                              for n, name in enumerate(tables)))
    env = {**shared, "SYNC_CONFIG": str(config)}
    first, second = await two_bots(bot_processes, env)
    channels = [DEMO_CHANNEL_ID, *MORE_CHANNEL_IDS]  # Slack paces each channel: spread them, as teams do
    run_ids = [run_id_in(await command(stack, f"r{n:02d}", channel=channels[n % len(channels)])) for n in range(20)]
    # Done when the store says so (Slack's ~50 updates a minute would make every parent's last update the wait).
    finals = await asyncio.gather(*(wait_final(shared, run_id) for run_id in run_ids))
    assert {run.status.value for run in finals} == {"SUCCESS"}
    await eventually(lambda: all(stack.slack.find_parent(run_id) for run_id in run_ids), 60)
    for run_id, name in zip(run_ids, tables, strict=True):
        assert len(stack.databricks.runs_for(run_id)) == 1
        assert len(stack.slack.parents_of(run_id)) == 1
        assert len(stack.snowflake.statements(f"syncbot run {run_id}", "COPY INTO")) == 1
        assert stack.snowflake.count_rows(table_name(name)) == 1000
    drivers = {process.pid: process.log().count("run.created") for process in (first, second)}
    assert all(count >= 1 for count in drivers.values())  # both processes started runs


async def test_a_paused_process_that_lost_its_lease_writes_nothing_when_it_wakes(stack, shared, table,
                                                                               bot_processes):
    stack.databricks.set_outcome(101, "success", duration_seconds=6)
    run_id, paused, _ = await a_run_and_its_owner(stack, shared, bot_processes)
    paused.signal(signal.SIGSTOP)
    await final_parent(stack, run_id, "SUCCESS", timeout=60)  # the other process took over and finished
    paused.signal(signal.SIGCONT)
    await eventually(lambda: "run.lease_lost" in paused.log() or "run.dropped" in paused.log(), 20)
    await asyncio.sleep(1.0)
    run = await stored_run(shared, run_id)
    assert run.status.value == "SUCCESS"
    messages = [step.message for step in run.steps]
    assert sum(message.startswith("Export finished") for message in messages) == 1  # nothing written twice
    assert messages[-1].startswith("SUCCESS:")  # the last word is the new owner's
    assert stack.snowflake.count_rows(table_name(table)) == 1000
    assert len(stack.slack.parents_of(run_id)) == 1
