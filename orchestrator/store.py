"""Where runs live: SQLite by default (history survives a restart), in memory for tests."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Protocol

from .models import FINAL_STATUSES, RunStatus, SyncRun

_FINAL = tuple(status.value for status in FINAL_STATUSES)


class StoreError(Exception):
    """The run store cannot be opened or written; the message says which file and what to do."""


class RunStore(Protocol):
    def save(self, run: SyncRun) -> None: ...
    def get(self, run_id: str) -> SyncRun | None: ...
    def recent(self, limit: int = 10) -> list[SyncRun]: ...
    def unfinished(self) -> list[SyncRun]: ...
    def active_for(self, target_table: str) -> SyncRun | None: ...
    def recent_successes(self, target_table: str, limit: int = 5) -> list[SyncRun]: ...


class MemoryRunStore:
    """Keeps runs in this process only (the seed's PoC behaviour); history is gone on restart."""

    def __init__(self) -> None:
        self._runs: dict[str, dict] = {}

    def save(self, run: SyncRun) -> None:
        self._runs[run.run_id] = run.to_dict()

    def get(self, run_id: str) -> SyncRun | None:
        data = self._runs.get(run_id)
        return SyncRun.from_dict(data) if data else None

    def recent(self, limit: int = 10) -> list[SyncRun]:
        runs = sorted(self._runs.values(), key=lambda data: data["created_at"], reverse=True)
        return [SyncRun.from_dict(data) for data in runs[:limit]]

    def unfinished(self) -> list[SyncRun]:
        return [SyncRun.from_dict(data) for data in self._runs.values() if data["status"] not in _FINAL]

    def active_for(self, target_table: str) -> SyncRun | None:
        return next((run for run in self.unfinished() if run.target.table_name == target_table), None)

    def recent_successes(self, target_table: str, limit: int = 5) -> list[SyncRun]:
        runs = [run for run in self.recent(len(self._runs))
                if run.target.table_name == target_table and run.status is RunStatus.SUCCESS]
        return runs[:limit]


class SqliteRunStore:
    """One row per run: a few indexed columns plus the whole run as JSON."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        try:
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            # WAL + NORMAL: a commit survives a crash or SIGKILL of the bot (what resume needs) without an fsync
            # per step on the event loop; only a power cut can lose the last few steps.
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS runs (run_id TEXT PRIMARY KEY, status TEXT NOT NULL, "
                "target_table TEXT NOT NULL, created_at TEXT NOT NULL, body TEXT NOT NULL)"
            )
            self._db.execute("CREATE INDEX IF NOT EXISTS runs_by_created ON runs (created_at)")
            # Prove we can write now, not at the first run's first step.
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute("ROLLBACK")
        except sqlite3.DatabaseError as exc:
            raise StoreError(_explain(self.path, exc)) from None

    def save(self, run: SyncRun) -> None:
        try:
            self._db.execute(
                "INSERT INTO runs (run_id, status, target_table, created_at, body) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (run_id) DO UPDATE SET status = excluded.status, body = excluded.body",
                (run.run_id, run.status.value, run.target.table_name, run.created_at.isoformat(),
                 json.dumps(run.to_dict())),
            )
        except sqlite3.DatabaseError as exc:
            raise StoreError(_explain(self.path, exc)) from None

    def get(self, run_id: str) -> SyncRun | None:
        row = self._db.execute("SELECT body FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        return SyncRun.from_dict(json.loads(row[0])) if row else None

    def recent(self, limit: int = 10) -> list[SyncRun]:
        rows = self._db.execute("SELECT body FROM runs ORDER BY created_at DESC LIMIT ?", (limit,)).fetchall()
        return [SyncRun.from_dict(json.loads(body)) for (body,) in rows]

    def unfinished(self) -> list[SyncRun]:
        marks = ",".join("?" * len(_FINAL))
        rows = self._db.execute(
            f"SELECT body FROM runs WHERE status NOT IN ({marks}) ORDER BY created_at", _FINAL
        ).fetchall()
        return [SyncRun.from_dict(json.loads(body)) for (body,) in rows]

    def active_for(self, target_table: str) -> SyncRun | None:
        marks = ",".join("?" * len(_FINAL))
        row = self._db.execute(
            f"SELECT body FROM runs WHERE target_table = ? AND status NOT IN ({marks}) ORDER BY created_at LIMIT 1",
            (target_table, *_FINAL),
        ).fetchone()
        return SyncRun.from_dict(json.loads(row[0])) if row else None

    def recent_successes(self, target_table: str, limit: int = 5) -> list[SyncRun]:
        rows = self._db.execute(
            "SELECT body FROM runs WHERE target_table = ? AND status = 'SUCCESS' ORDER BY created_at DESC LIMIT ?",
            (target_table, limit),
        ).fetchall()
        return [SyncRun.from_dict(json.loads(body)) for (body,) in rows]

    def close(self) -> None:
        self._db.close()


def _explain(path: str, exc: sqlite3.DatabaseError) -> str:
    text = str(exc)
    if "readonly" in text or "read-only" in text:
        fix = "make the file and its folder writable by this user, or point SYNC_DB_PATH at a writable place"
    elif "not a database" in text or "malformed" in text:
        fix = "it is not a syncbot database: move it aside (the runs in it are lost) or point SYNC_DB_PATH elsewhere"
    elif "unable to open" in text:
        fix = "create its folder or point SYNC_DB_PATH at a writable place"
    else:
        fix = "check the file, or point SYNC_DB_PATH elsewhere"
    return f"SYNC_DB_PATH={path}: cannot use the run store ({text}); {fix}"
