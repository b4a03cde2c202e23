"""The Snowflake side of a run: COPY INTO the target table from the run's files on the stage."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from dataclasses import dataclass

import snowflake.connector
from snowflake.connector import errors as sf_errors

from .models import SyncTarget, validate_run_id
from .settings import SnowflakeSettings

_QUERY_ID = re.compile(r"^[0-9a-fA-F-]{8,64}$")
_STATUS_POLL_SECONDS = 0.5


class SnowflakeLoadError(Exception):
    """COPY INTO could not run or did not load; the message is for a person."""


class LoadCancelled(Exception):
    """The COPY was aborted on request before it committed."""


@dataclass(frozen=True)
class FileLoad:
    file: str
    status: str  # LOADED, LOAD_SKIPPED, LOAD_FAILED, PARTIALLY_LOADED
    rows_parsed: int
    rows_loaded: int
    errors_seen: int
    first_error: str | None


@dataclass(frozen=True)
class CopyResult:
    query_id: str
    files: tuple[FileLoad, ...]

    @property
    def rows_loaded(self) -> int:
        return sum(file.rows_loaded for file in self.files)

    @property
    def files_loaded(self) -> int:
        return sum(1 for file in self.files if file.status == "LOADED")

    @property
    def files_skipped(self) -> int:
        return sum(1 for file in self.files if file.status == "LOAD_SKIPPED")

    @property
    def failed_files(self) -> tuple[FileLoad, ...]:
        return tuple(file for file in self.files if file.status not in ("LOADED", "LOAD_SKIPPED"))


def copy_statement(target: SyncTarget, export_prefix: str, run_id: str) -> str:
    validate_run_id(run_id)  # the only user-influenced part of the statement
    return (f"COPY INTO {target.table} FROM @{target.stage}/{export_prefix}{run_id}/ "
            "FILE_FORMAT=(TYPE=PARQUET) MATCH_BY_COLUMN_NAME=CASE_INSENSITIVE")


def parse_copy_rows(query_id: str, columns: list[str], rows: list[tuple]) -> CopyResult:
    """Read COPY's per-file result rows; 'Copy executed with 0 files processed.' becomes an empty result."""
    if len(columns) == 1 or not rows:
        return CopyResult(query_id, ())
    index = {name.lower(): position for position, name in enumerate(columns)}

    def value(row: tuple, name: str) -> object:
        return row[index[name]] if name in index else None

    files = tuple(
        FileLoad(
            file=str(value(row, "file")),
            status=str(value(row, "status")),
            rows_parsed=int(value(row, "rows_parsed") or 0),  # type: ignore[call-overload]
            rows_loaded=int(value(row, "rows_loaded") or 0),  # type: ignore[call-overload]
            errors_seen=int(value(row, "errors_seen") or 0),  # type: ignore[call-overload]
            first_error=(str(value(row, "first_error")) if value(row, "first_error") else None),
        )
        for row in rows
    )
    return CopyResult(query_id, files)


class SnowflakeLoader:
    """Runs COPY INTO with snowflake-connector-python (synchronous: the service calls it in a worker thread)."""

    def __init__(self, settings: SnowflakeSettings, export_prefix: str) -> None:
        self._settings = settings
        self.export_prefix = export_prefix

    def copy_into(self, target: SyncTarget, run_id: str, *, on_query_id: Callable[[str], None],
                  cancel: threading.Event) -> CopyResult:
        sql = copy_statement(target, self.export_prefix, run_id)
        kwargs = self._settings.connect_kwargs()
        kwargs.update(database=target.database, schema=target.schema, login_timeout=60,
                      session_parameters={"QUERY_TAG": f"syncbot run {run_id}"})
        try:
            with snowflake.connector.connect(**kwargs) as connection, connection.cursor() as cursor:
                cursor.execute_async(sql)
                query_id = str(cursor.sfqid)
                on_query_id(query_id)
                while connection.is_still_running(connection.get_query_status(query_id)):
                    if cancel.wait(_STATUS_POLL_SECONDS):
                        _abort(cursor, query_id)
                        cancel.clear()
                if cancel.is_set() and connection.is_an_error(connection.get_query_status(query_id)):
                    raise LoadCancelled(query_id)
                connection.get_query_status_throw_if_error(query_id)
                cursor.get_results_from_sfqid(query_id)
                rows = cursor.fetchall()
                columns = [column.name for column in cursor.description or []]
                return parse_copy_rows(query_id, columns, rows)  # type: ignore[arg-type]
        except sf_errors.Error as exc:
            raise SnowflakeLoadError(describe_error(exc, self._settings)) from None
        except OSError as exc:
            if self._settings.private_key_file and getattr(exc, "filename", None):
                raise SnowflakeLoadError(
                    f"cannot read SNOWFLAKE_PRIVATE_KEY_FILE ({exc.strerror}): give the path of the bot "
                    "user's private key") from None
            raise SnowflakeLoadError(f"cannot reach Snowflake ({exc.strerror or exc})") from None
        except ValueError as exc:  # a key file that is not a key, or a wrong passphrase
            raise SnowflakeLoadError(
                f"cannot use SNOWFLAKE_PRIVATE_KEY_FILE ({exc}): check the key and "
                "SNOWFLAKE_PRIVATE_KEY_PASSPHRASE") from None


def _abort(cursor: snowflake.connector.cursor.SnowflakeCursor, query_id: str) -> None:
    if _QUERY_ID.fullmatch(query_id):
        try:
            cursor.abort_query(query_id)
        except sf_errors.Error:
            pass  # it may have finished already; the status read next tells


def describe_error(exc: sf_errors.Error, settings: SnowflakeSettings) -> str:
    message = (exc.msg or str(exc)).strip()
    errno = exc.errno or 0
    if errno in (250001, 390100, 390144) or "Incorrect username or password" in message:
        how = "SNOWFLAKE_PRIVATE_KEY_FILE" if settings.private_key_file else "SNOWFLAKE_PASSWORD"
        return (f"Snowflake refused the login for user {settings.user}: {message} "
                f"(check SNOWFLAKE_USER and {how})")
    if errno == 2003 and "Stage" in message:
        return f"{message} (create the stage, or fix SNOWFLAKE_STAGE; see the README's Snowflake setup)"
    if errno == 2003:
        return f"{message} (create the table, or fix SNOWFLAKE_DATABASE/SNOWFLAKE_SCHEMA/SNOWFLAKE_TABLE)"
    if errno in (100038, 100071, 100072) or "Conversion" in message:
        return f"the Parquet files do not fit the table's column types: {message}"
    if errno == 250003 or "Failed to connect" in message:
        return f"cannot reach Snowflake: {message} (check SNOWFLAKE_ACCOUNT, or SNOWFLAKE_HOST for a local stack)"
    return f"Snowflake error {errno}: {message}"
