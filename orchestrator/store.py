"""Where runs live, shared by every syncbot process: SQLite on one machine, PostgreSQL across machines.

One row per run: a few columns a list or a lease needs, plus the whole run as JSON. The same rules hold on both:

- **Leases.** Every unfinished run has an `owner` (a process token) and a `lease_expires_at` (the database's clock).
  Only the owner drives a run. A run whose lease has expired (its process died, or paused) is claimed by another
  process with one conditional UPDATE, so exactly one process wins it.
- **Fencing.** Every write of a run's progress carries the owner token and is refused (`LeaseLost`) once another
  process has claimed the run: a process that was paused can never overwrite the new owner's progress.
- **One active run per table**: a unique index over the active runs' table, checked by the database on insert.
- **Cancel from anywhere**: a request is a column any process may set; the owner reads it and acts.
- **Migrations** at open: the schema version is in `syncbot_schema`; a database from an older release is brought
  up to date in one transaction, and one from a newer release is used as long as it says we can read it.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import sqlite3
from abc import ABC, abstractmethod
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from .models import ACTIVE_STATUSES, RunStatus, RunSummary, SyncRun, summarize

SCHEMA_VERSION = 2  # what this release writes
MIN_READER_VERSION = 2  # the oldest release schema that can still read what this release writes
_ACTIVE = tuple(sorted(status.value for status in ACTIVE_STATUSES))
_ACTIVE_SQL = ", ".join(f"'{status}'" for status in _ACTIVE)
_SUMMARY_COLUMNS = ("run_id, sync_name, status, target_table, requested_by, private, created_at, finished_at, "
                    "rows_loaded, summary")


class StoreError(Exception):
    """The run store cannot be opened or written; the message says which store and what to do."""


class LeaseLost(Exception):
    """Another process has claimed this run: this process must stop driving it."""


def process_token() -> str:
    """Who drives a run: readable in the store (host and pid) and unique (random)."""
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{secrets.token_hex(4)}"


def stamp(moment: datetime | None) -> str | None:
    """A sortable UTC timestamp for the indexed columns (isoformat drops zero microseconds)."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ") if moment else None


def _summary_from_row(row: Sequence[Any]) -> RunSummary:
    run_id, sync_name, status, table, requested_by, private, created, finished, rows, summary = row
    return RunSummary(run_id=run_id, sync_name=sync_name, status=RunStatus(status), target_table=table,
                      requested_by=requested_by, private=bool(private),
                      created_at=datetime.fromisoformat(created.replace("Z", "+00:00")),
                      finished_at=datetime.fromisoformat(finished.replace("Z", "+00:00")) if finished else None,
                      rows_loaded=rows, summary=summary or "")


def _columns(run: SyncRun) -> dict[str, Any]:
    """The indexed columns, derived from the run (its JSON body stays the record)."""
    summary = summarize(run)
    return {"status": run.status.value, "target_table": summary.target_table, "sync_name": run.sync_name,
            "requested_by": run.requested_by, "private": int(run.private), "created_at": stamp(run.created_at),
            "finished_at": stamp(run.finished_at), "rows_loaded": run.rows_loaded, "summary": summary.summary,
            "body": json.dumps(run.to_dict(), separators=(",", ":"), default=str)}


class RunStore(ABC):
    """The store's rules in SQL both databases speak; a subclass runs statements (`?` placeholders)."""

    description: str  # for messages: which store, without secrets
    now_sql: str  # the database clock, in epoch seconds
    same_sql: str  # null-safe equality

    def __init__(self, *, owner: str | None = None, lease_seconds: float = 30.0) -> None:
        self.owner = owner or process_token()
        self.lease_seconds = lease_seconds

    # ---- what a subclass provides --------------------------------------------------------------------------------

    @abstractmethod
    async def open(self) -> RunStore: ...

    @abstractmethod
    async def close(self) -> None: ...

    @abstractmethod
    async def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]: ...

    @abstractmethod
    async def _write(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one statement in its own transaction; the number of rows it changed."""

    @abstractmethod
    async def _insert_active(self, sql: str, params: Sequence[Any]) -> bool:
        """Insert, or False when the one-active-run-per-table index refuses it."""

    # ---- runs -----------------------------------------------------------------------------------------------------

    async def insert(self, run: SyncRun) -> SyncRun | None:
        """Record a new run held by this process; when its table already has an active run, that run instead."""
        columns = _columns(run)
        names = ["run_id", *columns, "owner", "lease_expires_at"]
        marks = ", ".join(["?"] * (len(names) - 1) + [f"{self.now_sql} + ?"])
        sql = f"INSERT INTO runs ({', '.join(names)}) VALUES ({marks})"
        if await self._insert_active(sql, [run.run_id, *columns.values(), self.owner, self.lease_seconds]):
            return None
        active = await self.active_for(run.target.table_key)
        if active is None:  # it ended in between: the caller may simply try again
            raise StoreError(f"{self.description}: a run of {run.target.table_key} was active a moment ago; "
                             "try again")
        return active

    async def save(self, run: SyncRun, *, release: bool = False) -> None:
        """Write the run's progress, fenced: refused with LeaseLost when this process no longer owns it.
        `release` gives the lease up in the same write (a finished run, or a shutdown)."""
        columns = _columns(run)
        sets = ", ".join(f"{name} = ?" for name in columns)
        if release:
            sets += ", owner = NULL, lease_expires_at = NULL"
        changed = await self._write(f"UPDATE runs SET {sets} WHERE run_id = ? AND owner = ?",
                                    [*columns.values(), run.run_id, self.owner])
        if changed == 0:
            raise LeaseLost(run.run_id)

    async def update_final_context(self, run_id: str, values: dict[str, Any]) -> None:
        """Add to a finished run's context (where its Slack thread is): nobody drives it, so no lease is needed."""
        run = await self.get(run_id)
        if run is None or not run.status.is_final:
            return
        run.context.update(values)
        body = json.dumps(run.to_dict(), separators=(",", ":"), default=str)
        await self._write(f"UPDATE runs SET body = ? WHERE run_id = ? AND status NOT IN ({_ACTIVE_SQL})",
                          (body, run_id))

    async def get(self, run_id: str) -> SyncRun | None:
        rows = await self._rows("SELECT body FROM runs WHERE run_id = ?", (run_id,))
        return SyncRun.from_dict(json.loads(rows[0][0])) if rows else None

    async def summaries(self, limit: int = 10, *, user: str | None = None,
                        sync_name: str | None = None) -> list[RunSummary]:
        """The most recent runs, newest first, without decoding their records. With `user`, a private run
        (started in a DM or a private channel) is listed only for its requester."""
        where, params = ["1 = 1"], []
        if user is not None:
            where.append("(private = 0 OR requested_by = ?)")
            params.append(user)
        if sync_name is not None:
            where.append("sync_name = ?")
            params.append(sync_name)
        rows = await self._rows(f"SELECT {_SUMMARY_COLUMNS} FROM runs WHERE {' AND '.join(where)} "
                                "ORDER BY created_at DESC LIMIT ?", (*params, limit))
        return [_summary_from_row(row) for row in rows]

    async def latest_by_sync(self, sync_names: Sequence[str], *, user: str | None = None) -> dict[str, RunSummary]:
        latest = {}
        for name in sync_names:
            runs = await self.summaries(1, user=user, sync_name=name)
            if runs:
                latest[name] = runs[0]
        return latest

    async def active_for(self, table_key: str) -> SyncRun | None:
        rows = await self._rows(f"SELECT body FROM runs WHERE target_table = ? AND status IN ({_ACTIVE_SQL})",
                                (table_key,))
        return SyncRun.from_dict(json.loads(rows[0][0])) if rows else None

    async def export_durations(self, table_key: str, limit: int = 5) -> list[float]:
        """This table's recent export times (seconds), from its last successful runs."""
        rows = await self._rows("SELECT body FROM runs WHERE target_table = ? AND status = 'SUCCESS' "
                                "ORDER BY created_at DESC LIMIT ?", (table_key, limit))
        runs = [SyncRun.from_dict(json.loads(body)) for (body,) in rows]
        return [seconds for run in runs if (seconds := run.export_seconds) is not None]

    # ---- leases ---------------------------------------------------------------------------------------------------

    async def claimable(self) -> list[tuple[str, str | None]]:
        """Active runs nobody holds (released, or their lease expired): (run id, last owner), oldest first."""
        return [(run_id, owner) for run_id, owner in await self._rows(
            f"SELECT run_id, owner FROM runs WHERE status IN ({_ACTIVE_SQL}) "
            f"AND (owner IS NULL OR lease_expires_at < {self.now_sql}) ORDER BY created_at")]

    async def claim(self, run_id: str, previous_owner: str | None) -> SyncRun | None:
        """Take a run nobody holds; None when another process was faster (or it has ended)."""
        changed = await self._write(
            f"UPDATE runs SET owner = ?, lease_expires_at = {self.now_sql} + ? WHERE run_id = ? "
            f"AND status IN ({_ACTIVE_SQL}) AND owner {self.same_sql} ? "
            f"AND (owner IS NULL OR lease_expires_at < {self.now_sql})",
            (self.owner, self.lease_seconds, run_id, previous_owner))
        return await self.get(run_id) if changed else None

    async def renew(self, run_ids: Sequence[str]) -> set[str]:
        """Extend this process's leases; returns the runs it still holds."""
        if not run_ids:
            return set()
        marks = ", ".join("?" * len(run_ids))
        await self._write(f"UPDATE runs SET lease_expires_at = {self.now_sql} + ? "
                          f"WHERE owner = ? AND run_id IN ({marks})", (self.lease_seconds, self.owner, *run_ids))
        rows = await self._rows(f"SELECT run_id FROM runs WHERE owner = ? AND run_id IN ({marks})",
                                (self.owner, *run_ids))
        return {run_id for (run_id,) in rows}

    async def release(self, run_ids: Sequence[str]) -> None:
        """Give leases up (at shutdown), so another process takes the runs over at once."""
        if run_ids:
            marks = ", ".join("?" * len(run_ids))
            await self._write(f"UPDATE runs SET owner = NULL, lease_expires_at = NULL "
                              f"WHERE owner = ? AND run_id IN ({marks})", (self.owner, *run_ids))

    async def request_cancel(self, run_id: str, requested_by: str) -> None:
        await self._write(f"UPDATE runs SET cancel_requested_by = ? WHERE run_id = ? AND status IN ({_ACTIVE_SQL}) "
                          "AND cancel_requested_by IS NULL", (requested_by, run_id))

    async def cancel_requests(self) -> dict[str, str]:
        """Cancel requests for runs this process holds."""
        rows = await self._rows("SELECT run_id, cancel_requested_by FROM runs WHERE owner = ? "
                                "AND cancel_requested_by IS NOT NULL", (self.owner,))
        return {run_id: by for run_id, by in rows}

    async def cancel_request(self, run_id: str) -> str | None:
        rows = await self._rows("SELECT cancel_requested_by FROM runs WHERE run_id = ?", (run_id,))
        return rows[0][0] if rows else None

    async def holder(self, run_id: str) -> str | None:
        """The process holding a run's live lease, if any."""
        rows = await self._rows(f"SELECT owner FROM runs WHERE run_id = ? AND owner IS NOT NULL "
                                f"AND lease_expires_at >= {self.now_sql}", (run_id,))
        return rows[0][0] if rows else None

    async def check_writable(self) -> None:
        """A write that changes nothing, for health checks."""
        await self._write("UPDATE syncbot_schema SET version = version WHERE 1 = 0")

    # ---- schema ---------------------------------------------------------------------------------------------------

    def _schema_statements(self) -> list[str]:
        return [
            "CREATE TABLE IF NOT EXISTS runs (run_id TEXT PRIMARY KEY, status TEXT NOT NULL, "
            "target_table TEXT NOT NULL, created_at TEXT NOT NULL, body TEXT NOT NULL)",
            *self._v2_columns(),
            *self._v2_indexes(),
        ]

    def _v2_columns(self) -> list[str]:
        columns = {"sync_name": "TEXT NOT NULL DEFAULT ''", "requested_by": "TEXT NOT NULL DEFAULT ''",
                   "private": "INTEGER NOT NULL DEFAULT 0", "finished_at": "TEXT", "rows_loaded": "BIGINT",
                   "summary": "TEXT NOT NULL DEFAULT ''", "owner": "TEXT", "lease_expires_at": "DOUBLE PRECISION",
                   "cancel_requested_by": "TEXT"}
        return [f"ALTER TABLE runs ADD COLUMN {name} {kind}" for name, kind in columns.items()]

    @staticmethod
    def _v2_indexes() -> list[str]:
        return [
            "CREATE INDEX IF NOT EXISTS runs_by_created ON runs (created_at)",
            "CREATE INDEX IF NOT EXISTS runs_by_sync ON runs (sync_name, created_at)",
            "CREATE INDEX IF NOT EXISTS runs_by_owner ON runs (owner)",
            f"CREATE UNIQUE INDEX IF NOT EXISTS one_active_run_per_table ON runs (target_table) "
            f"WHERE status IN ({_ACTIVE_SQL})",
            "CREATE TABLE IF NOT EXISTS syncbot_schema (version INTEGER NOT NULL, min_reader_version INTEGER NOT NULL)",
            f"INSERT INTO syncbot_schema (version, min_reader_version) VALUES ({SCHEMA_VERSION}, {MIN_READER_VERSION})",
        ]

    @staticmethod
    def duplicate_active(rows: list[tuple[str, str, str]]) -> list[str]:
        """Runs that break "one active run per table" (an old release allowed it across processes): all but the
        newest of each table. They are ended FAILED by the migration, with the reason in their record."""
        newest: dict[str, tuple[str, str]] = {}
        stale = []
        for run_id, table, created in sorted(rows, key=lambda row: row[2], reverse=True):
            if table in newest:
                stale.append(run_id)
            else:
                newest[table] = (run_id, created)
        return stale


def fail_duplicate(body: str) -> str:
    run = SyncRun.from_dict(json.loads(body))
    run.status = RunStatus.FAILED
    run.error = ("stopped by the upgrade of the run store: another run of the same table was active at the same "
                 "time (an earlier release allowed that across processes); check the table and /sync again")
    return json.dumps(run.to_dict(), default=str)


class SqliteRunStore(RunStore):
    """One file on one machine (several processes may share it: WAL, and every write is one short transaction)."""

    now_sql = "((julianday('now') - 2440587.5) * 86400.0)"
    same_sql = "IS"

    def __init__(self, path: str, *, owner: str | None = None, lease_seconds: float = 30.0) -> None:
        super().__init__(owner=owner, lease_seconds=lease_seconds)
        self.path = str(path)
        self.description = f"SYNC_DB_PATH={self.path}"
        self._db: sqlite3.Connection | None = None

    async def open(self) -> SqliteRunStore:
        try:
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=5.0)
            self._db.execute("PRAGMA journal_mode=WAL")
            # WAL + NORMAL: a commit survives a crash or SIGKILL of the bot (what resume needs) without an fsync
            # per step on the event loop; only a power cut can lose the last few steps.
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._migrate()
        except sqlite3.DatabaseError as exc:
            raise StoreError(_explain(self.path, exc)) from None
        return self

    def _migrate(self) -> None:
        db = self._db
        assert db is not None
        db.execute("BEGIN IMMEDIATE")  # one process migrates; the others wait, then see the new version
        try:
            tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if "syncbot_schema" in tables:
                version, min_reader = db.execute("SELECT version, min_reader_version FROM syncbot_schema").fetchone()
                if min_reader > SCHEMA_VERSION:
                    raise StoreError(f"{self.description}: written by a newer syncbot (schema {version}, readable "
                                     f"from schema {min_reader}; this release has {SCHEMA_VERSION}): upgrade "
                                     "syncbot, or point SYNC_DB_PATH elsewhere")
            elif "runs" in tables:
                self._from_v1()
            else:
                for statement in self._schema_statements():
                    db.execute(statement)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def _from_v1(self) -> None:
        """0.1.0 had (run_id, status, target_table, created_at, body): add the columns, fill them from each
        run's JSON, settle duplicate active runs, then the indexes."""
        db = self._db
        assert db is not None
        for statement in self._v2_columns():
            db.execute(statement)
        for run_id, body in db.execute("SELECT run_id, body FROM runs").fetchall():
            # A 0.1.0 row's new columns, derived from its JSON (which this release reads, keeping unknown fields).
            columns = _columns(SyncRun.from_dict(json.loads(body)))
            db.execute(f"UPDATE runs SET {', '.join(f'{name} = ?' for name in columns)} WHERE run_id = ?",
                       (*columns.values(), run_id))
        active = db.execute(f"SELECT run_id, target_table, created_at FROM runs WHERE status IN ({_ACTIVE_SQL})")
        for run_id in self.duplicate_active(active.fetchall()):
            (body,) = db.execute("SELECT body FROM runs WHERE run_id = ?", (run_id,)).fetchone()
            db.execute("UPDATE runs SET status = 'FAILED', body = ? WHERE run_id = ?", (fail_duplicate(body), run_id))
        for statement in self._v2_indexes():
            db.execute(statement)

    async def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def _connection(self) -> sqlite3.Connection:
        if self._db is None:
            raise StoreError(f"{self.description}: the run store is closed")
        return self._db

    async def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        try:
            return self._connection().execute(sql, tuple(params)).fetchall()
        except sqlite3.DatabaseError as exc:
            raise StoreError(_explain(self.path, exc)) from None

    async def _write(self, sql: str, params: Sequence[Any] = ()) -> int:
        try:
            return self._connection().execute(sql, tuple(params)).rowcount
        except sqlite3.DatabaseError as exc:
            raise StoreError(_explain(self.path, exc)) from None

    async def _insert_active(self, sql: str, params: Sequence[Any]) -> bool:
        try:
            self._connection().execute(sql, tuple(params))
            return True
        except sqlite3.IntegrityError:
            return False
        except sqlite3.DatabaseError as exc:
            raise StoreError(_explain(self.path, exc)) from None


def _explain(path: str, exc: sqlite3.DatabaseError) -> str:
    text = str(exc)
    if "readonly" in text or "read-only" in text:
        fix = "make the file and its folder writable by this user, or point SYNC_DB_PATH at a writable place"
    elif "not a database" in text or "malformed" in text:
        fix = "it is not a syncbot database: move it aside (the runs in it are lost) or point SYNC_DB_PATH elsewhere"
    elif "unable to open" in text:
        fix = "create its folder or point SYNC_DB_PATH at a writable place"
    elif "locked" in text or "busy" in text:
        fix = "another process held the file for more than 5 s; it is retried"
    else:
        fix = "check the file, or point SYNC_DB_PATH elsewhere"
    return f"SYNC_DB_PATH={path}: cannot use the run store ({text}); {fix}"


async def open_store(*, db_url: str | None, db_path: str, lease_seconds: float, owner: str | None = None,
                     connect_seconds: float = 15.0) -> RunStore:
    """The store the settings name: PostgreSQL when SYNC_DB_URL is set, else the SQLite file."""
    if db_url:
        from .store_postgres import PostgresRunStore  # psycopg is needed only by PostgreSQL users

        return await PostgresRunStore(db_url, owner=owner, lease_seconds=lease_seconds,
                                      connect_seconds=connect_seconds).open()
    return await SqliteRunStore(db_path, owner=owner, lease_seconds=lease_seconds).open()
