"""The run store on PostgreSQL (SYNC_DB_URL=postgresql://…), for bot processes on several machines.

psycopg 3 with its async connection pool; the rules (leases, fencing, one active run per table, cancel requests)
are RunStore's, in the same SQL.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .settings import redact_url
from .store import SCHEMA_VERSION, RunStore, StoreError

try:
    import psycopg
    from psycopg_pool import AsyncConnectionPool
except ImportError as exc:  # pragma: no cover - depends on the install
    raise StoreError("SYNC_DB_URL names PostgreSQL, but psycopg is not installed: pip install 'syncbot[postgres]'") \
        from exc

_MIGRATION_LOCK = 7_405_512_301  # pg_advisory_xact_lock key: one process migrates at a time


class PostgresRunStore(RunStore):
    now_sql = "extract(epoch from clock_timestamp())"
    same_sql = "IS NOT DISTINCT FROM"

    def __init__(self, url: str, *, owner: str | None = None, lease_seconds: float = 30.0,
                 connect_seconds: float = 15.0) -> None:
        super().__init__(owner=owner, lease_seconds=lease_seconds)
        self.connect_seconds = connect_seconds
        self.description = f"SYNC_DB_URL={redact_url(url)}"
        self._pool = AsyncConnectionPool(url, min_size=1, max_size=4, open=False, timeout=10,
                                         kwargs={"autocommit": True, "connect_timeout": 10})

    async def open(self) -> PostgresRunStore:
        try:
            await self._pool.open(wait=True, timeout=self.connect_seconds)
            async with self._pool.connection() as conn, conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
                exists = await (await conn.execute("SELECT to_regclass('syncbot_schema')")).fetchone()
                if exists and exists[0]:
                    versions = await conn.execute("SELECT version, min_reader_version FROM syncbot_schema")
                    row = await versions.fetchone()
                    if row and row[1] > SCHEMA_VERSION:
                        raise StoreError(f"{self.description}: written by a newer syncbot (schema {row[0]}); "
                                         "upgrade syncbot, or point SYNC_DB_URL at another database")
                else:
                    for statement in self._schema_statements():
                        await conn.execute(_postgres(statement).replace("ADD COLUMN", "ADD COLUMN IF NOT EXISTS"))
        except StoreError:
            await self._pool.close()
            raise
        except (psycopg.Error, OSError, TimeoutError) as exc:
            await self._pool.close()
            raise StoreError(f"{self.description}: cannot use the run store ({_first_line(exc)}); check that the "
                             "server is up, the URL's user, password and database, and that the user may create "
                             "tables in it") from None
        return self

    async def close(self) -> None:
        await self._pool.close()

    async def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        try:
            async with self._pool.connection() as conn:
                cursor = await conn.execute(_postgres(sql), tuple(params))
                return list(await cursor.fetchall())
        except (psycopg.Error, OSError) as exc:
            raise StoreError(f"{self.description}: {_first_line(exc)}") from None

    async def _write(self, sql: str, params: Sequence[Any] = ()) -> int:
        try:
            async with self._pool.connection() as conn:
                cursor = await conn.execute(_postgres(sql), tuple(params))
                return cursor.rowcount
        except (psycopg.Error, OSError) as exc:
            raise StoreError(f"{self.description}: {_first_line(exc)}") from None

    async def _insert_active(self, sql: str, params: Sequence[Any]) -> bool:
        try:
            async with self._pool.connection() as conn:
                await conn.execute(_postgres(sql), tuple(params))
                return True
        except psycopg.errors.UniqueViolation:
            return False
        except (psycopg.Error, OSError) as exc:
            raise StoreError(f"{self.description}: {_first_line(exc)}") from None


def _postgres(sql: str) -> str:
    return sql.replace("%", "%%").replace("?", "%s")


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
