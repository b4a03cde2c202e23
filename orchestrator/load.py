"""LOADING: from the run's Parquet files on the stage into the Snowflake table, in the sync's load mode.

append   COPY INTO the table.
replace  COPY INTO a transient staging table with the table's columns, then ALTER TABLE … SWAP WITH it: readers
         see the old rows or the new ones, never an empty or half-loaded table; a failed COPY leaves the table as it
         was. The old rows leave with the staging table, which is dropped.
merge    COPY INTO a staging table, refuse duplicate or NULL keys, then one MERGE on the keys.

Before any row is loaded the files' columns are compared with the table's (or the table is created from the
files). Each statement that changes a table goes through `_statement`: submitted once, its query id stored at
once, watched with short status calls, aborted on cancel or at the deadline, and found again after a restart.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Protocol

from .errors import RunCancelled, RunFailed
from .executors import BlockingPool
from .logs import log_event
from .metrics import Metrics
from .models import ColumnMismatch, LoadMode, SyncRun, utcnow
from .snowflake import (
    CopyResult,
    QueryState,
    SnowflakeClient,
    SnowflakeLoadError,
    SnowflakeSession,
    copy_history_statement,
    copy_statement,
    count_statement,
    create_staging_statement,
    create_table_statement,
    drop_staging_statement,
    duplicate_keys_statement,
    infer_columns_statement,
    list_statement,
    merge_statement,
    null_keys_statement,
    parse_copy_rows,
    parse_history_rows,
    query_history_statement,
    staging_table,
    swap_statement,
    table_columns_statement,
)
from .timefmt import format_duration

log = logging.getLogger("syncbot.load")

WATCH_FIRST_SECONDS = 0.25  # a COPY's status is asked after this long, then less and less often…
WATCH_MAX_SECONDS = 5.0  # …up to this: 100 loads in flight cost ~20 short calls a second
FILES_SHOWN = 20


class RunControl(Protocol):
    """What the load needs from the service for one run (orchestrator.service._ActiveRun)."""

    run: SyncRun
    resumed: bool
    statement: str | None  # the Snowflake query in flight: what a cancel aborts

    @property
    def cancel_requested_by(self) -> str | None: ...
    async def save(self) -> None: ...
    async def step(self, message: str, url: str | None = None) -> None: ...
    async def sleep(self, seconds: float) -> None: ...


@dataclass(frozen=True)
class LoadLimits:
    load_timeout_seconds: float
    resume_grace_seconds: float


class LoadPhase:
    def __init__(self, control: RunControl, *, snowflake: SnowflakeClient, pool: BlockingPool, export_prefix: str,
                 limits: LoadLimits, metrics: Metrics) -> None:
        self.control = control
        self.run = control.run
        self.target = control.run.target
        self.snowflake = snowflake
        self.pool = pool
        self.export_prefix = export_prefix
        self.limits = limits
        self.metrics = metrics
        self.path_part = f"{export_prefix}{self.run.run_id}/"
        self._deadline = utcnow()

    # ---- the phase ----------------------------------------------------------------------------------------------

    async def load(self) -> None:
        run = self.run
        if run.load_started_at is None:
            run.load_started_at = utcnow()
            await self.control.save()
        self._deadline = run.load_started_at + timedelta(seconds=self.limits.load_timeout_seconds)
        if self.control.resumed and self._deadline < utcnow():  # ask Snowflake before timing anything out
            self._deadline = utcnow() + timedelta(seconds=self.limits.resume_grace_seconds)
        self._raise_if_cancelled("before the load started")
        session = await self._call("login", self.snowflake.open_session, self.target, run.run_id)
        try:
            await self._load(session)
        except (RunFailed, RunCancelled):
            if self.target.mode is not LoadMode.APPEND:
                await self._drop_staging(session)
            raise
        finally:
            await self.pool.run(session.close)

    async def _load(self, session: SnowflakeSession) -> None:
        run, target = self.run, self.target
        table = target.table if target.mode is LoadMode.APPEND else staging_table(run.run_id)
        if "copy" not in run.statements and not await self._found_after_restart(session, "copy",
                                                                                  self._copy_sql(table)):
            await self._prepare(session)
        copy = await self._copy(session, table)
        self._record_copy(copy)
        await self.control.step(self._copy_lines(copy))
        if target.mode is LoadMode.REPLACE:
            await self._statement(session, "swap", swap_statement(target, run.run_id))
            await self.control.step(f"Swapped the new rows into {target.table_name} in one statement (query "
                                    f"{run.statements['swap']}); its previous rows leave with the staging table")
        elif target.mode is LoadMode.MERGE:
            await self._merge(session)
        if target.mode is not LoadMode.APPEND:
            await self._drop_staging(session)
        _, rows = await self._query(session, count_statement(target.table), "count the table's rows")
        run.table_rows = int(rows[0][0]) if rows else None
        self._check_receipt()

    def _copy_sql(self, table: str) -> str:
        return copy_statement(table, self.target.stage, self.export_prefix, self.run.run_id)

    # ---- before the first row: files, table, columns --------------------------------------------------------------

    async def _prepare(self, session: SnowflakeSession) -> None:
        run, target = self.run, self.target
        _, listed = await self._query(session, list_statement(target.stage, self.export_prefix, run.run_id),
                                      "list the run's files on the stage")
        files = [str(row[0]).rsplit("/", 1)[-1] for row in listed if int(row[1] or 0) > 0]
        if not files:
            raise RunFailed(f"the export wrote no data files under {run.stage_path}: nothing to load. Check that the "
                            "Databricks job writes Parquet to the bucket and prefix the stage points at")
        _, inferred = await self._query(session, infer_columns_statement(target, self.export_prefix, run.run_id,
                                                                           files), "read the files' columns")
        file_columns = [str(name).upper() for name, _ in inferred]
        _, existing = await self._query(session, table_columns_statement(target), "read the table's columns")
        table_columns = [str(name).upper() for (name,) in existing]
        if not table_columns:
            if not target.create_table:
                raise RunFailed(f"the table {target.table_name} does not exist: create it, or set create_table = "
                                "true for this sync to create it from the files")
            await self._statement(session, "create",
                                  create_table_statement(target, self.export_prefix, run.run_id, files))
            await self.control.step(f"Created {target.table_name} from the files' columns "
                                    f"({', '.join(file_columns)})")
            table_columns = file_columns
        self._compare_columns(file_columns, table_columns)
        run.columns = [column for column in table_columns if column in set(file_columns)]
        await self.control.save()
        if target.mode is not LoadMode.APPEND:
            await self._query(session, create_staging_statement(target, run.run_id), "create the staging table")

    def _compare_columns(self, file_columns: list[str], table_columns: list[str]) -> None:
        target = self.target
        only_table = [column for column in table_columns if column not in set(file_columns)]
        only_files = [column for column in file_columns if column not in set(table_columns)]
        missing_keys = [key for key in target.merge_keys if key.upper() not in set(file_columns)]
        if missing_keys:
            raise RunFailed(f"the merge key(s) {', '.join(missing_keys)} are not columns of the exported files "
                            f"({', '.join(file_columns)}): fix merge_keys or the export")
        if not only_table and not only_files:
            return
        parts = []
        if only_table:
            parts.append(f"the table's column(s) {', '.join(only_table)} are not in the files (they would load "
                         "as NULL)")
        if only_files:
            parts.append(f"the files' column(s) {', '.join(only_files)} are not in the table (they would be "
                         "dropped)")
        text = f"the files' columns do not match {target.table_name}: " + "; ".join(parts)
        if target.on_column_mismatch is ColumnMismatch.FAIL:
            raise RunFailed(text + ". Nothing was loaded: align the export and the table, or set "
                            "on_column_mismatch = \"warn\" to load anyway")
        self.run.warnings.append(text)

    # ---- COPY ------------------------------------------------------------------------------------------------------

    async def _copy(self, session: SnowflakeSession, table: str) -> CopyResult:
        for warning in self.run.warnings:
            await self.control.step(f"Warning: {warning}; loading anyway (on_column_mismatch = \"warn\")")
        await self.control.step(f"COPY INTO {table} FROM {self.run.stage_path} (PATTERN='.*[.]parquet') started")
        columns, rows = await self._statement(session, "copy", self._copy_sql(table))
        copy = parse_copy_rows(columns, rows)
        if not copy.files:
            # "0 files processed": either the files were loaded before (by this run's first COPY, whose answer was
            # lost), or there are none. The load history of the run's path tells which.
            _, history = await self._query(session, copy_history_statement(self.target, table), "read the load history")
            copy = parse_history_rows(history, self.path_part)
            if copy.files:
                await self.control.step(f"Snowflake had already loaded this run's files into {table} (its load "
                                        "history shows them); nothing was loaded twice")
        if not copy.files:
            raise RunFailed(f"COPY found no data files under {self.run.stage_path} and the load history shows none "
                            "loaded: check that the Databricks job writes to the prefix the stage points at")
        if copy.failed_files:
            first = copy.failed_files[0]
            raise RunFailed(f"COPY INTO {table} rejected {len(copy.failed_files)} file(s); first error in "
                            f"{first.file.rsplit('/', 1)[-1]}: {first.first_error}")
        return copy

    def _record_copy(self, copy: CopyResult) -> None:
        run = self.run
        run.files = list(copy.files)
        run.files_loaded = len(copy.files)
        run.rows_parsed = copy.rows_parsed
        run.rows_loaded = copy.rows_loaded

    def _copy_lines(self, copy: CopyResult) -> str:
        lines = [f"{file.file.rsplit('/', 1)[-1]}: {file.status}, {file.rows_loaded:,} of {file.rows_parsed:,} rows"
                 for file in copy.files[:FILES_SHOWN]]
        if len(copy.files) > FILES_SHOWN:
            lines.append(f"… and {len(copy.files) - FILES_SHOWN} more files")
        return f"COPY results (Snowflake query {self.run.statements.get('copy', '?')}):\n" + "\n".join(lines)

    # ---- merge ------------------------------------------------------------------------------------------------------

    async def _merge(self, session: SnowflakeSession) -> None:
        run, target = self.run, self.target
        if "merge" not in run.statements:
            _, duplicates = await self._query(session, duplicate_keys_statement(target, run.run_id),
                                              "check the merge keys")
            if duplicates:
                shown = "; ".join(
                    ", ".join(f"{key}={value!r}" for key, value in zip(target.merge_keys, row, strict=False))
                    + f" ({row[-1]} rows)" for row in duplicates)
                keys = ", ".join(target.merge_keys)
                raise RunFailed(f"the export has more than one row for the same merge key ({keys}): {shown}. "
                                "Nothing was merged: make the key unique in the export, or fix merge_keys")
            _, nulls = await self._query(session, null_keys_statement(target, run.run_id), "check the merge keys")
            if nulls and int(nulls[0][0]):
                raise RunFailed(f"{nulls[0][0]} exported row(s) have a NULL merge key ({', '.join(target.merge_keys)})"
                                ": such a row can never match, so a merge would add it again every run. Nothing was "
                                "merged")
        columns, rows = await self._statement(session, "merge", merge_statement(target, run.run_id, run.columns))
        values = dict(zip([column.lower() for column in columns], rows[0], strict=False)) if rows else {}
        run.rows_inserted = int(values.get("number of rows inserted") or 0)
        run.rows_updated = int(values.get("number of rows updated") or 0)
        await self.control.step(f"MERGE INTO {target.table_name} on {', '.join(target.merge_keys)} (query "
                                f"{run.statements['merge']}): {run.rows_inserted:,} inserted, "
                                f"{run.rows_updated:,} updated")

    async def _drop_staging(self, session: SnowflakeSession) -> None:
        try:
            await self._query(session, drop_staging_statement(self.run.run_id), "drop the staging table")
        except (RunFailed, SnowflakeLoadError) as exc:
            await self.control.step(f"Could not drop the staging table {staging_table(self.run.run_id)} ({exc}); "
                                    "drop it by hand")

    def _check_receipt(self) -> None:
        run = self.run
        if run.rows_parsed is not None and run.rows_parsed != run.rows_loaded:
            run.warnings.append(f"Snowflake parsed {run.rows_parsed:,} rows but loaded {run.rows_loaded:,}")
        if self.target.mode is LoadMode.REPLACE and run.table_rows is not None and run.table_rows != run.rows_loaded:
            run.warnings.append(f"after the replace {self.target.table_name} has {run.table_rows:,} rows, but "
                                f"{run.rows_loaded:,} were loaded")

    # ---- statements ------------------------------------------------------------------------------------------------

    async def _found_after_restart(self, session: SnowflakeSession, step: str, sql: str) -> bool:
        """After a restart, a statement this run submitted (but whose id was never stored) is found by the run's
        QUERY_TAG in Snowflake's query history."""
        if not self.control.resumed:
            return False
        _, history = await self._query(session, query_history_statement(self.run.run_id), "read the query history")
        query_id = next((str(query_id) for query_id, text, _ in history if str(text).strip() == sql), None)
        if query_id is None:
            return False
        self.run.statements[step] = query_id
        await self.control.save()
        await self.control.step(f"Found the {step} statement this run had submitted before the restart "
                                f"(Snowflake query {query_id}); following it instead of running it again")
        return True

    async def _statement(self, session: SnowflakeSession, step: str, sql: str) -> tuple[list[str], list[Any]]:
        run = self.run
        if step not in run.statements and not await self._found_after_restart(session, step, sql):
            self._raise_if_cancelled(f"before the {step} statement")
            await self.control.save()  # fenced: a process that has lost the run stops here, before Snowflake
            run.statements[step] = await self._call(step, session.submit, sql)
            await self.control.save()
            log_event(log, "snowflake.submitted", run_id=run.run_id, step=step, query_id=run.statements[step])
        query_id = run.statements[step]
        state = await self._watch(step, query_id)
        if state.status != "SUCCESS":
            if self.control.cancel_requested_by is not None and state.status in ("ABORTED", "FAILED_WITH_ERROR"):
                raise RunCancelled(f"the {step} statement was aborted in Snowflake (query {query_id}); "
                                   "nothing was loaded")
            raise RunFailed(f"{self._what(step)} failed: {state.error or state.status}")
        return await self._call(f"{step} results", self.snowflake.results, query_id)

    async def _watch(self, step: str, query_id: str) -> QueryState:
        """Until the statement ends; a cancel or the deadline aborts it (and then waits for Snowflake to say so)."""
        self.control.statement = query_id
        delay, aborted, timed_out = WATCH_FIRST_SECONDS, False, False
        try:
            while True:
                if not aborted and (self.control.cancel_requested_by is not None or utcnow() > self._deadline):
                    timed_out = self.control.cancel_requested_by is None
                    await self._call("cancel", self.snowflake.cancel, query_id)
                    aborted = True
                    await self.control.step(f"Asked Snowflake to cancel the {step} statement (query {query_id})")
                try:
                    state = await self._call("status", self.snowflake.status, query_id)
                except RunFailed:
                    if utcnow() > self._deadline + timedelta(seconds=60):
                        raise
                    state = QueryState("UNKNOWN", True)  # a transient monitoring failure: ask again
                if not state.running:
                    break
                await self.control.sleep(delay)
                delay = min(delay * 1.5, WATCH_MAX_SECONDS)
        finally:
            self.control.statement = None
        if aborted and state.status == "SUCCESS" and self.control.cancel_requested_by is not None:
            await self.control.step(f"The cancel came too late: the {step} statement had already committed")
        if timed_out and state.status != "SUCCESS":
            raise RunFailed(f"{self._what(step)} did not finish within SYNC_LOAD_TIMEOUT_SECONDS "
                            f"({format_duration(self.limits.load_timeout_seconds)}): it was cancelled in Snowflake "
                            f"(query {query_id}) and the table is unchanged. Check the warehouse (suspended, queued "
                            "or too small), or raise SYNC_LOAD_TIMEOUT_SECONDS")
        return state

    def _what(self, step: str) -> str:
        names = {"copy": "COPY INTO", "swap": "ALTER TABLE … SWAP WITH", "merge": "MERGE INTO",
                 "create": "CREATE TABLE … USING TEMPLATE"}
        return f"{names.get(step, step)} {self.target.table_name}"

    async def _query(self, session: SnowflakeSession, sql: str, doing: str) -> tuple[list[str], list[Any]]:
        return await self._call("query", session.query, sql, doing=doing)

    async def _call(self, what: str, call: Callable[..., Any], *args: Any, doing: str | None = None) -> Any:
        try:
            result = await self.pool.run(call, *args)
        except SnowflakeLoadError as exc:
            self.metrics.call("snowflake", what, failed=True)
            raise RunFailed(f"Snowflake could not {doing or self._doing(what)}: {exc}") from None
        self.metrics.call("snowflake", what)
        return result

    def _doing(self, what: str) -> str:
        if what in ("copy", "swap", "merge", "create"):
            return f"run {self._what(what)}"
        return {"login": "open a session", "status": "say how the statement is going",
                "cancel": "cancel the statement"}.get(what, what)

    def _raise_if_cancelled(self, when: str) -> None:
        if self.control.cancel_requested_by is not None:
            raise RunCancelled(f"cancelled {when}; nothing was loaded")


