"""The run store's rules, the same on SQLite and on a real PostgreSQL server: one active run per table, leases,
fencing, claims that exactly one process wins, cancel requests, and migrations from earlier releases."""

from __future__ import annotations

import asyncio
import json
import shutil
import sqlite3
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path

import pytest

from orchestrator.models import RunStatus, SyncRun, SyncTarget, utcnow
from orchestrator.store import LeaseLost, RunStore, SqliteRunStore, StoreError, open_store

TARGET = SyncTarget(job_id=1, database="DB", schema="S", table="T", stage="STAGE")
OTHER = SyncTarget(job_id=2, database="DB", schema="S", table="OTHER", stage="STAGE")
FIXTURE = Path(__file__).with_name("fixtures") / "syncbot-0.1.0.db"

Opener = Callable[..., "asyncio.Future[RunStore]"]


@pytest.fixture(params=["sqlite", "postgresql"])
async def open_stores(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Callable[..., object]]:
    """Open stores on one database as separate processes would (each with its own owner token)."""
    location = str(tmp_path / "runs.db")
    url = request.getfixturevalue("postgres").new_database() if request.param == "postgresql" else None
    opened: list[RunStore] = []

    async def opener(owner: str, lease_seconds: float = 30.0) -> RunStore:
        store = await open_store(db_url=url, db_path=location, lease_seconds=lease_seconds, owner=owner)
        opened.append(store)
        return store

    yield opener
    for store in opened:
        await store.close()


def new_run(run_id: str, target: SyncTarget = TARGET, **fields: object) -> SyncRun:
    return SyncRun(run_id=run_id, target=target, **fields)  # type: ignore[arg-type]


async def test_one_active_run_per_table_holds_across_processes(open_stores):
    first, second = await open_stores("a"), await open_stores("b")
    assert await first.insert(new_run("1128-aaaaaa")) is None
    active = await second.insert(new_run("1128-bbbbbb"))
    assert active is not None and active.run_id == "1128-aaaaaa"  # the second process is told which run is active
    assert await second.insert(new_run("1128-cccccc", OTHER)) is None  # another table is free
    finished = await first.get("1128-aaaaaa")
    finished.move_to(RunStatus.EXPORTING)
    finished.move_to(RunStatus.FAILED)
    await first.save(finished, release=True)
    assert await second.insert(new_run("1128-dddddd")) is None  # a finished run frees its table


async def test_writes_are_fenced_by_the_lease_and_a_claim_has_one_winner(open_stores):
    owner, rival_a, rival_b = await open_stores("a", 1.0), await open_stores("b", 1.0), await open_stores("c", 1.0)
    run = new_run("1128-aaaaaa")
    await owner.insert(run)
    assert await rival_a.claimable() == []  # held and alive: nobody may take it
    await asyncio.sleep(1.2)  # the lease runs out (its process "died")
    ((run_id, previous),) = await rival_a.claimable()
    assert (run_id, previous) == ("1128-aaaaaa", "a")
    claims = await asyncio.gather(rival_a.claim(run_id, previous), rival_b.claim(run_id, previous))
    assert sum(claim is not None for claim in claims) == 1  # exactly one process wins
    run.move_to(RunStatus.EXPORTING)
    with pytest.raises(LeaseLost):
        await owner.save(run)  # the old owner woke up: its write does not land
    stored = await rival_a.get(run_id)
    assert stored.status is RunStatus.PENDING
    assert await owner.renew([run_id]) == set()  # and its renewal tells it so


async def test_renew_keeps_a_lease_and_release_hands_the_run_over_at_once(open_stores):
    owner, other = await open_stores("a", 1.0), await open_stores("b", 1.0)
    await owner.insert(new_run("1128-aaaaaa"))
    for _ in range(3):
        await asyncio.sleep(0.4)
        assert await owner.renew(["1128-aaaaaa"]) == {"1128-aaaaaa"}
    assert await other.claimable() == []
    await owner.release(["1128-aaaaaa"])
    assert [run_id for run_id, _ in await other.claimable()] == ["1128-aaaaaa"]
    assert await other.claim("1128-aaaaaa", None) is not None
    assert await other.holder("1128-aaaaaa") == "b"


async def test_a_cancel_request_reaches_the_owner_from_any_process(open_stores):
    owner, other = await open_stores("a"), await open_stores("b")
    await owner.insert(new_run("1128-aaaaaa"))
    await other.request_cancel("1128-aaaaaa", "U0OTHER")
    await other.request_cancel("1128-aaaaaa", "U0LATER")  # the first request stands
    assert await owner.cancel_requests() == {"1128-aaaaaa": "U0OTHER"}
    assert await other.cancel_requests() == {}  # only the owner acts on it


async def test_summaries_hide_private_runs_from_everyone_but_their_requester(open_stores):
    store = await open_stores("a")
    now = utcnow()
    await store.insert(new_run("1128-public", created_at=now, requested_by="U1"))
    await store.insert(new_run("1128-secret", OTHER, created_at=now + timedelta(seconds=1), requested_by="U1",
                               private=True))
    assert [run.run_id for run in await store.summaries(10, user="U2")] == ["1128-public"]
    assert [run.run_id for run in await store.summaries(10, user="U1")] == ["1128-secret", "1128-public"]
    latest = await store.latest_by_sync(["t", "other"], user="U2")
    assert set(latest) == {"t"}


async def test_a_field_written_by_a_newer_release_is_kept_through_this_release_s_writes(open_stores):
    store = await open_stores("a")
    await store.insert(new_run("1128-aaaaaa"))
    # A newer release added a field to the record and a column to the table.
    if isinstance(store, SqliteRunStore):
        db = store._db
        body = json.loads(db.execute("SELECT body FROM runs").fetchone()[0])
        body["approval"] = {"by": "U9"}
        db.execute("UPDATE runs SET body = ?", (json.dumps(body),))
    else:
        rows = await store._rows("SELECT body FROM runs")
        body = json.loads(rows[0][0])
        body["approval"] = {"by": "U9"}
        await store._write("UPDATE runs SET body = ?", (json.dumps(body),))
    run = await store.get("1128-aaaaaa")
    assert run.extra == {"approval": {"by": "U9"}}
    run.move_to(RunStatus.EXPORTING)
    await store.save(run)
    assert (await store.get("1128-aaaaaa")).extra == {"approval": {"by": "U9"}}


async def test_the_0_1_0_fixture_opens_and_keeps_its_runs(tmp_path):
    path = tmp_path / "old.db"
    shutil.copy(FIXTURE, path)
    store = await SqliteRunStore(str(path), owner="new").open()
    try:
        done = await store.get("1126-done2a")
        assert done.status is RunStatus.SUCCESS and done.rows_loaded == 1000
        assert done.snowflake_query_id == "8a1f1b9e-5d7c-4a51-9a6e-2f0c1d2e3f40"  # the old field, read as the COPY's
        assert done.sync_name == "forecast_daily" and done.target.mode.value == "append"
        assert [(run.run_id, run.status.value) for run in await store.summaries(10)] == [
            ("1127-pend4c", "PENDING"), ("1126-fail3b", "FAILED"), ("1126-done2a", "SUCCESS")]
        assert [run_id for run_id, owner in await store.claimable()] == ["1127-pend4c"]  # its unfinished run
    finally:
        await store.close()
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT version FROM syncbot_schema").fetchone() == (2,)


async def test_a_store_from_a_newer_incompatible_release_is_refused_with_the_fix(tmp_path):
    path = tmp_path / "new.db"
    store = await SqliteRunStore(str(path)).open()
    await store.close()
    with sqlite3.connect(path) as db:
        db.execute("UPDATE syncbot_schema SET version = 9, min_reader_version = 9")
    with pytest.raises(StoreError, match=r"written by a newer syncbot .*upgrade syncbot"):
        await SqliteRunStore(str(path)).open()


async def test_a_corrupt_or_missing_folder_database_is_a_clear_start_up_error(tmp_path):
    corrupt = tmp_path / "corrupt.db"
    corrupt.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match=r"SYNC_DB_PATH=.*not a syncbot database"):
        await SqliteRunStore(str(corrupt)).open()
    with pytest.raises(StoreError, match="SYNC_DB_PATH"):
        await SqliteRunStore(str(tmp_path / "missing-folder" / "runs.db")).open()


async def test_an_unreachable_postgresql_is_a_clear_start_up_error_without_the_password():
    with pytest.raises(StoreError) as error:
        await open_store(db_url="postgresql://syncbot:s3cret-pass@127.0.0.1:1/runs", db_path="", lease_seconds=30,
                         connect_seconds=1)
    assert "SYNC_DB_URL=postgresql://syncbot:***@127.0.0.1:1/runs" in str(error.value)
    assert "s3cret-pass" not in str(error.value) and "check that the server is up" in str(error.value)
