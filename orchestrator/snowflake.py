"""The Snowflake side of a run: the statements a load needs, and a synchronous client that runs them.

Every statement that changes a table (COPY, SWAP, MERGE, CREATE … USING TEMPLATE) is submitted with execute_async
and watched from the event loop with short status calls (see orchestrator/load.py): Snowflake runs it, and commits
it, whether or not this process is still there to hear the answer. Its query id is stored the moment Snowflake
accepts it; a restarted process asks about that query (or finds it by the run's QUERY_TAG) instead of running
it again.
"""

from __future__ import annotations

import logging
import re
import threading
from dataclasses import dataclass
from typing import Any

import snowflake.connector
from snowflake.connector import errors as sf_errors
from snowflake.connector.constants import QueryStatus

from .models import FileLoad, SyncTarget, validate_run_id
from .settings import SnowflakeSettings

log = logging.getLogger("syncbot.snowflake")

DATA_FILES = ".*[.]parquet"  # COPY's PATTERN: the part files, not Spark's _SUCCESS/_started_*/_committed_* markers
_QUERY_ID = re.compile(r"^[0-9a-fA-F-]{8,64}$")
INFER_SCHEMA_FILES = 100  # part files whose footers INFER_SCHEMA reads (Spark writes one schema to all of them)
RUNNING = frozenset({QueryStatus.RUNNING, QueryStatus.QUEUED, QueryStatus.RESUMING_WAREHOUSE,
                     QueryStatus.QUEUED_REPARING_WAREHOUSE, QueryStatus.BLOCKED, QueryStatus.NO_DATA})


class SnowflakeLoadError(Exception):
    """A statement could not run or did not load; the message is for a person."""

    def __init__(self, message: str, errno: int = 0) -> None:
        super().__init__(message)
        self.errno = errno


# ---- statements ---------------------------------------------------------------------------------------------------

def query_tag(run_id: str) -> str:
    return f"syncbot run {validate_run_id(run_id)}"


def run_path(stage: str, export_prefix: str, run_id: str) -> str:
    """The one place that builds a run's stage path."""
    return f"@{stage}/{export_prefix}{validate_run_id(run_id)}/"


def staging_table(run_id: str) -> str:
    """The transient table a replace or merge loads first, named after the run (so a resume finds it)."""
    return "SYNCBOT_STAGING_" + validate_run_id(run_id).upper().replace("-", "_")


def copy_statement(table: str, stage: str, export_prefix: str, run_id: str) -> str:
    return (f"COPY INTO {table} FROM {run_path(stage, export_prefix, run_id)} FILE_FORMAT=(TYPE=PARQUET) "
            f"MATCH_BY_COLUMN_NAME=CASE_INSENSITIVE PATTERN='{DATA_FILES}'")


def list_statement(stage: str, export_prefix: str, run_id: str) -> str:
    return f"LIST {run_path(stage, export_prefix, run_id)} PATTERN='{DATA_FILES}'"


def _infer_schema(target: SyncTarget, export_prefix: str, run_id: str, files: list[str]) -> str:
    names = ", ".join(f"'{_quote(name)}'" for name in files[:INFER_SCHEMA_FILES])
    return (f"TABLE(INFER_SCHEMA(LOCATION => '{run_path(target.stage, export_prefix, run_id)}', "
            f"FILE_FORMAT => '{target.file_format}', FILES => ({names}), IGNORE_CASE => TRUE))")


def infer_columns_statement(target: SyncTarget, export_prefix: str, run_id: str, files: list[str]) -> str:
    return (f"SELECT COLUMN_NAME, TYPE FROM {_infer_schema(target, export_prefix, run_id, files)} "
            "ORDER BY ORDER_ID")


def create_table_statement(target: SyncTarget, export_prefix: str, run_id: str, files: list[str]) -> str:
    return (f"CREATE TABLE IF NOT EXISTS {target.table} USING TEMPLATE (SELECT ARRAY_AGG(OBJECT_CONSTRUCT(*)) "
            f"WITHIN GROUP (ORDER BY ORDER_ID) FROM {_infer_schema(target, export_prefix, run_id, files)})")


def table_columns_statement(target: SyncTarget) -> str:
    return (f"SELECT COLUMN_NAME FROM {target.database}.INFORMATION_SCHEMA.COLUMNS WHERE TABLE_SCHEMA = "
            f"'{target.schema.upper()}' AND TABLE_NAME = '{target.table.upper()}' ORDER BY ORDINAL_POSITION")


def create_staging_statement(target: SyncTarget, run_id: str) -> str:
    # COPY GRANTS: a replace swaps this table in, and the readers' grants must come with it.
    grants = " COPY GRANTS" if target.mode.value == "replace" else ""
    return f"CREATE TRANSIENT TABLE IF NOT EXISTS {staging_table(run_id)} LIKE {target.table}{grants}"


def swap_statement(target: SyncTarget, run_id: str) -> str:
    return f"ALTER TABLE {target.table} SWAP WITH {staging_table(run_id)}"


def drop_staging_statement(run_id: str) -> str:
    return f"DROP TABLE IF EXISTS {staging_table(run_id)}"


def duplicate_keys_statement(target: SyncTarget, run_id: str) -> str:
    keys = ", ".join(target.merge_keys)
    return (f"SELECT {keys}, COUNT(*) AS ROWS_WITH_KEY FROM {staging_table(run_id)} GROUP BY {keys} "
            "HAVING COUNT(*) > 1 ORDER BY ROWS_WITH_KEY DESC LIMIT 3")


def null_keys_statement(target: SyncTarget, run_id: str) -> str:
    condition = " OR ".join(f"{key} IS NULL" for key in target.merge_keys)
    return f"SELECT COUNT(*) FROM {staging_table(run_id)} WHERE {condition}"


def merge_statement(target: SyncTarget, run_id: str, columns: list[str]) -> str:
    """One MERGE on the keys: matched rows take the export's values, new rows are inserted. Only the columns the
    files have are written (a column the export lacks keeps its value)."""
    keys = {key.upper() for key in target.merge_keys}
    on = " AND ".join(f"t.{key} = s.{key}" for key in target.merge_keys)
    updates = ", ".join(f"t.{column} = s.{column}" for column in columns if column.upper() not in keys)
    names = ", ".join(columns)
    values = ", ".join(f"s.{column}" for column in columns)
    matched = f" WHEN MATCHED THEN UPDATE SET {updates}" if updates else ""
    return (f"MERGE INTO {target.table} t USING {staging_table(run_id)} s ON {on}{matched} "
            f"WHEN NOT MATCHED THEN INSERT ({names}) VALUES ({values})")


def count_statement(table: str) -> str:
    return f"SELECT COUNT(*) FROM {table}"


def copy_history_statement(target: SyncTarget, table: str) -> str:
    return (f"SELECT FILE_NAME, STATUS, ROW_PARSED, ROW_COUNT, FIRST_ERROR_MESSAGE FROM TABLE("
            f"{target.database}.INFORMATION_SCHEMA.COPY_HISTORY(TABLE_NAME => '{target.database}.{target.schema}."
            f"{table}', START_TIME => DATEADD(DAYS, -14, CURRENT_TIMESTAMP())))")


def query_history_statement(run_id: str) -> str:
    return ("SELECT QUERY_ID, QUERY_TEXT, EXECUTION_STATUS FROM TABLE(INFORMATION_SCHEMA.QUERY_HISTORY_BY_USER("
            "USER_NAME => CURRENT_USER(), END_TIME_RANGE_START => DATEADD(DAYS, -7, CURRENT_TIMESTAMP()), "
            f"RESULT_LIMIT => 10000)) WHERE QUERY_TAG = '{query_tag(run_id)}' ORDER BY START_TIME DESC")


def _quote(text: str) -> str:
    return text.replace("\\", "\\\\").replace("'", "\\'")


# ---- results ------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class CopyResult:
    files: tuple[FileLoad, ...]  # empty: "Copy executed with 0 files processed."

    @property
    def rows_loaded(self) -> int:
        return sum(file.rows_loaded for file in self.files)

    @property
    def rows_parsed(self) -> int:
        return sum(file.rows_parsed for file in self.files)

    @property
    def failed_files(self) -> tuple[FileLoad, ...]:
        return tuple(file for file in self.files if file.status not in ("LOADED", "LOAD_SKIPPED"))


def parse_copy_rows(columns: list[str], rows: list[tuple[Any, ...]]) -> CopyResult:
    """Read COPY's per-file result rows; 'Copy executed with 0 files processed.' becomes an empty result."""
    if len(columns) == 1 or not rows:
        return CopyResult(())
    index = {name.lower(): position for position, name in enumerate(columns)}

    def value(row: tuple[Any, ...], name: str) -> Any:
        return row[index[name]] if name in index else None

    return CopyResult(tuple(
        FileLoad(file=str(value(row, "file")), status=str(value(row, "status")),
                 rows_parsed=int(value(row, "rows_parsed") or 0), rows_loaded=int(value(row, "rows_loaded") or 0),
                 first_error=(str(value(row, "first_error")) if value(row, "first_error") else None))
        for row in rows))


def parse_history_rows(rows: list[tuple[Any, ...]], path_part: str) -> CopyResult:
    """COPY_HISTORY rows of one run's path, as a COPY result (what the first COPY loaded)."""
    status = {"loaded": "LOADED", "load failed": "LOAD_FAILED", "partially loaded": "PARTIALLY_LOADED"}
    return CopyResult(tuple(
        FileLoad(file=str(name), status=status.get(str(state).lower(), str(state).upper()),
                 rows_parsed=int(parsed or 0), rows_loaded=int(loaded or 0), first_error=error)
        for name, state, parsed, loaded, error in rows if path_part in str(name)))


@dataclass(frozen=True)
class QueryState:
    status: str  # QueryStatus name: RUNNING, SUCCESS, FAILED_WITH_ERROR, ABORTED, …
    running: bool
    error: str | None = None
    errno: int = 0


# ---- the client ---------------------------------------------------------------------------------------------------

class SnowflakeSession:
    """One connection for one run's load, tagged with the run (QUERY_TAG) and bounded (statement timeouts)."""

    def __init__(self, connection: snowflake.connector.SnowflakeConnection, settings: SnowflakeSettings) -> None:
        self._connection = connection
        self._settings = settings

    def submit(self, sql: str) -> str:
        """Hand a statement to Snowflake and return its query id at once; it runs on without us."""
        with self._connection.cursor() as cursor, _described(self._settings):
            cursor.execute_async(sql)
            return str(cursor.sfqid)

    def query(self, sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
        with self._connection.cursor() as cursor, _described(self._settings):
            cursor.execute(sql)
            return [column.name for column in cursor.description or []], list(cursor.fetchall())

    def close(self) -> None:
        try:
            self._connection.close()
        except Exception as exc:  # closing is best effort: the statements run on regardless
            log.debug("closing a Snowflake session failed: %s", exc)


class SnowflakeClient:
    """Opens a session per run's load; asks about statements (status, results, cancel) on one shared session."""

    def __init__(self, settings: SnowflakeSettings, load_timeout_seconds: float) -> None:
        self.settings = settings
        self.load_timeout_seconds = load_timeout_seconds
        self._monitor: snowflake.connector.SnowflakeConnection | None = None
        self._monitor_lock = threading.Lock()

    def _connect(self, **extra: Any) -> snowflake.connector.SnowflakeConnection:
        kwargs = self.settings.connect_kwargs()
        kwargs.update(login_timeout=60, **extra)
        with _described(self.settings):
            return snowflake.connector.connect(**kwargs)

    def open_session(self, target: SyncTarget, run_id: str) -> SnowflakeSession:
        timeout = max(1, int(self.load_timeout_seconds))
        connection = self._connect(database=target.database, schema=target.schema, session_parameters={
            "QUERY_TAG": query_tag(run_id),
            "STATEMENT_TIMEOUT_IN_SECONDS": timeout,
            "STATEMENT_QUEUED_TIMEOUT_IN_SECONDS": timeout,  # a suspended or busy warehouse counts too
        })
        return SnowflakeSession(connection, self.settings)

    def _monitor_connection(self) -> snowflake.connector.SnowflakeConnection:
        with self._monitor_lock:
            if self._monitor is None or self._monitor.is_closed():
                self._monitor = self._connect()
            return self._monitor

    def _forget_monitor(self) -> None:
        with self._monitor_lock:
            self._monitor = None

    def status(self, query_id: str) -> QueryState:
        connection = self._monitor_connection()
        try:
            status = connection.get_query_status(query_id)
            if status is QueryStatus.ABORTING:  # on its way to ABORTED: not an outcome yet
                return QueryState(status.name, True)
            if not connection.is_an_error(status):
                return QueryState(status.name, status in RUNNING)
            connection.get_query_status_throw_if_error(query_id)  # raises with the statement's own error
        except sf_errors.ProgrammingError as exc:
            return QueryState(status.name, False, describe_error(exc, self.settings), exc.errno or 0)
        except sf_errors.Error as exc:
            self._forget_monitor()
            raise SnowflakeLoadError(describe_error(exc, self.settings), exc.errno or 0) from None
        return QueryState(status.name, False, f"Snowflake reports the statement {status.name}")

    def results(self, query_id: str) -> tuple[list[str], list[tuple[Any, ...]]]:
        connection = self._monitor_connection()
        with connection.cursor() as cursor, _described(self.settings):
            cursor.get_results_from_sfqid(query_id)
            rows = list(cursor.fetchall())
            return [column.name for column in cursor.description or []], rows  # type: ignore[misc]

    def cancel(self, query_id: str) -> None:
        if not _QUERY_ID.fullmatch(query_id):
            return
        connection = self._monitor_connection()
        with connection.cursor() as cursor, _described(self.settings):
            cursor.execute(f"SELECT SYSTEM$CANCEL_QUERY('{query_id}')")

    def close(self) -> None:
        with self._monitor_lock:
            if self._monitor is not None:
                try:
                    self._monitor.close()
                except Exception as exc:
                    log.debug("closing the Snowflake monitor session failed: %s", exc)
                self._monitor = None


class _described:
    """Turn the connector's and the OS's errors into SnowflakeLoadError with a sentence naming the fix."""

    def __init__(self, settings: SnowflakeSettings) -> None:
        self.settings = settings

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, _: object) -> None:
        if exc is None or isinstance(exc, SnowflakeLoadError):
            return
        if isinstance(exc, sf_errors.Error):
            raise SnowflakeLoadError(describe_error(exc, self.settings), exc.errno or 0) from None
        if isinstance(exc, OSError):
            if self.settings.private_key_file and getattr(exc, "filename", None):
                raise SnowflakeLoadError(f"cannot read SNOWFLAKE_PRIVATE_KEY_FILE ({exc.strerror}): give the path "
                                         "of the bot user's private key") from None
            raise SnowflakeLoadError(f"cannot reach Snowflake ({exc.strerror or exc})") from None
        if isinstance(exc, ValueError) and self.settings.private_key_file:  # not a key, or a wrong passphrase
            raise SnowflakeLoadError(f"cannot use SNOWFLAKE_PRIVATE_KEY_FILE ({exc}): check the key and "
                                     "SNOWFLAKE_PRIVATE_KEY_PASSPHRASE") from None


def describe_error(exc: sf_errors.Error, settings: SnowflakeSettings) -> str:
    message = (exc.msg or str(exc)).strip()
    errno = exc.errno or 0
    how = "SNOWFLAKE_PRIVATE_KEY_FILE" if settings.private_key_file else "SNOWFLAKE_PASSWORD"
    if errno in (390100, 390144) or "Incorrect username or password" in message or "JWT token is invalid" in message:
        return (f"Snowflake refused the login for user {settings.user}: {message} "
                f"(check SNOWFLAKE_USER and {how})")
    if errno == 250001:
        return (f"could not sign in to Snowflake: {message} (this can be a wrong SNOWFLAKE_ACCOUNT or "
                f"SNOWFLAKE_HOST, a host that cannot be reached, an HTTP 403 from a network policy or proxy, or "
                f"refused credentials: check SNOWFLAKE_ACCOUNT, the network, SNOWFLAKE_USER and {how})")
    if errno == 630:
        return (f"{message} (the statement ran, or waited for the warehouse, longer than SYNC_LOAD_TIMEOUT_SECONDS; "
                "nothing was loaded. Check the warehouse, or raise SYNC_LOAD_TIMEOUT_SECONDS)")
    if errno == 604:
        return f"{message} (the statement was cancelled; nothing was loaded)"
    if errno == 2003 and "Stage" in message:
        return (f"{message} (create the stage, or fix snowflake_stage / SNOWFLAKE_STAGE; see the README's Snowflake "
                "setup)")
    if errno == 2003 and "ile format" in message:
        return (f"{message} (create it: CREATE FILE FORMAT <db>.<schema>.SYNCBOT_PARQUET TYPE = PARQUET, or set "
                "snowflake_file_format / SNOWFLAKE_FILE_FORMAT)")
    if errno == 2003:
        return (f"{message} (create the table or set create_table = true, or fix the sync's snowflake_database / "
                "snowflake_schema / snowflake_table)")
    if errno in (3001, 3041):
        return f"{message} (grant the bot's role the privileges its load mode needs; `python -m bot doctor` lists them)"
    if errno in (100038, 100071, 100072) or "Conversion" in message or "is not recognized" in message:
        return f"the Parquet files do not fit the table's column types: {message}"
    if errno == 250003 or "Failed to connect" in message:
        return f"cannot reach Snowflake: {message} (check SNOWFLAKE_ACCOUNT, or SNOWFLAKE_HOST for a local stack)"
    return f"Snowflake error {errno}: {message}"
