"""The records of a sync run: statuses, the allowed transitions, what a run targets, and the run itself."""

from __future__ import annotations

import dataclasses
import re
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum
from typing import Any

RUN_ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]{2,62}$")
_RUN_ID_ALPHABET = "abcdefghijkmnpqrstuvwxyz23456789"  # no 0/o/1/l: ids are read aloud and retyped


class RunStatus(str, Enum):
    PENDING = "PENDING"  # recorded; the Databricks job is not triggered yet
    EXPORTING = "EXPORTING"  # the Databricks job is writing Parquet to S3
    LOADING = "LOADING"  # Snowflake is loading the run's files
    SUCCESS = "SUCCESS"  # rows are in the table
    FAILED = "FAILED"  # ended with a reason; nothing more happens
    CANCELLED = "CANCELLED"  # stopped on request

    @property
    def is_final(self) -> bool:
        return self in FINAL_STATUSES


FINAL_STATUSES = frozenset({RunStatus.SUCCESS, RunStatus.FAILED, RunStatus.CANCELLED})
ACTIVE_STATUSES = frozenset(set(RunStatus) - FINAL_STATUSES)

# The one place that says how a run may move.
ALLOWED_TRANSITIONS: dict[RunStatus, frozenset[RunStatus]] = {
    RunStatus.PENDING: frozenset({RunStatus.EXPORTING, RunStatus.FAILED, RunStatus.CANCELLED}),
    RunStatus.EXPORTING: frozenset({RunStatus.LOADING, RunStatus.FAILED, RunStatus.CANCELLED}),
    RunStatus.LOADING: frozenset({RunStatus.SUCCESS, RunStatus.FAILED, RunStatus.CANCELLED}),
    RunStatus.SUCCESS: frozenset(),
    RunStatus.FAILED: frozenset(),
    RunStatus.CANCELLED: frozenset(),
}


class LoadMode(str, Enum):
    APPEND = "append"  # COPY INTO the table: every run adds its rows
    REPLACE = "replace"  # COPY INTO a staging table, then swap it with the table: the table equals the export
    MERGE = "merge"  # COPY INTO a staging table, then MERGE on the keys: changed rows updated, new rows inserted


class ColumnMismatch(str, Enum):
    FAIL = "fail"  # the run fails, naming the columns, before any row is loaded
    WARN = "warn"  # the thread says so, and the run loads


class InvalidTransition(Exception):
    """A status change the state machine does not allow."""


class InvalidRunId(ValueError):
    """Text that cannot be a run id (and so must never reach SQL, a path or an API)."""


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_run_id() -> str:
    """Short, unique, lower-case: safe as an S3 path segment and as a Databricks idempotency token."""
    stamp = utcnow().strftime("%m%d")
    return f"{stamp}-{''.join(secrets.choice(_RUN_ID_ALPHABET) for _ in range(6))}"


def validate_run_id(text: str) -> str:
    if not isinstance(text, str) or not RUN_ID_PATTERN.fullmatch(text):
        raise InvalidRunId(f"{text!r:.80} is not a run id (run ids look like 1127-k3x9qa)")
    return text


@dataclass(frozen=True)
class SyncTarget:
    """Where a run reads from (the Databricks job) and writes to (a Snowflake table through a stage), and how."""

    job_id: int
    database: str
    schema: str
    table: str
    stage: str
    job_parameters: tuple[tuple[str, str], ...] = ()  # fixed job parameters, passed besides run_id
    mode: LoadMode = LoadMode.APPEND
    merge_keys: tuple[str, ...] = ()
    create_table: bool = False
    on_column_mismatch: ColumnMismatch = ColumnMismatch.FAIL
    file_format: str = "SYNCBOT_PARQUET"  # a named Parquet file format (INFER_SCHEMA needs one)

    @property
    def table_name(self) -> str:
        return f"{self.database}.{self.schema}.{self.table}"

    @property
    def table_key(self) -> str:
        """The table as Snowflake resolves unquoted identifiers: one active run per key."""
        return self.table_name.upper()

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["job_parameters"] = dict(self.job_parameters)
        data["merge_keys"] = list(self.merge_keys)
        data["mode"] = self.mode.value
        data["on_column_mismatch"] = self.on_column_mismatch.value
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SyncTarget:
        known = {f.name for f in dataclasses.fields(cls)}
        values = {key: value for key, value in data.items() if key in known}  # a newer release's keys are ignored
        values["job_parameters"] = tuple(sorted((str(k), str(v)) for k, v in
                                                (values.get("job_parameters") or {}).items()))
        values["merge_keys"] = tuple(values.get("merge_keys") or ())
        values["mode"] = LoadMode(values.get("mode", LoadMode.APPEND.value))
        values["on_column_mismatch"] = ColumnMismatch(values.get("on_column_mismatch", ColumnMismatch.FAIL.value))
        return cls(**values)


@dataclass
class StepLog:
    at: datetime
    message: str  # the orchestrator's words: plain text, never markup
    url: str | None = None
    actor: str | None = None  # who caused the step (a requester id), rendered by the caller after the message


@dataclass
class FileLoad:
    file: str
    status: str  # LOADED, LOAD_FAILED, PARTIALLY_LOADED
    rows_parsed: int
    rows_loaded: int
    first_error: str | None = None


_TIMES = ("created_at", "started_at", "finished_at", "exported_at", "load_started_at")


@dataclass
class SyncRun:
    run_id: str
    target: SyncTarget
    sync_name: str = ""
    status: RunStatus = RunStatus.PENDING
    requested_by: str = ""  # opaque to the orchestrator: the bot puts the Slack user id here
    private: bool = False  # only its requester may see it (started in a DM or a private channel)
    context: dict[str, Any] = field(default_factory=dict)  # opaque: the bot keeps the thread's channel and ts here
    run_timeout_seconds: float | None = None  # the sync's time limit when the run started (None: the default)
    created_at: datetime = field(default_factory=utcnow)
    started_at: datetime | None = None
    exported_at: datetime | None = None  # when the Databricks export ended successfully
    load_started_at: datetime | None = None
    finished_at: datetime | None = None
    databricks_run_id: int | None = None
    run_page_url: str | None = None
    databricks_state: str | None = None
    stage_path: str = ""
    # Snowflake statements this run submitted, by step ("copy", "swap", "merge", …) → query id: stored the moment
    # Snowflake accepts each one, so that a restarted process asks about it instead of running it again.
    statements: dict[str, str] = field(default_factory=dict)
    columns: list[str] = field(default_factory=list)  # the files' columns the table has: what the load writes
    files: list[FileLoad] = field(default_factory=list)  # COPY's per-file result (data files only)
    files_loaded: int | None = None
    rows_parsed: int | None = None
    rows_loaded: int | None = None
    rows_inserted: int | None = None  # merge
    rows_updated: int | None = None  # merge
    table_rows: int | None = None  # the table's row count after the load
    warnings: list[str] = field(default_factory=list)
    cancelled_by: str | None = None
    error: str | None = None
    steps: list[StepLog] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)  # fields written by a newer release: kept as they were

    def __post_init__(self) -> None:
        validate_run_id(self.run_id)
        if not self.sync_name:
            self.sync_name = self.target.table.lower()

    def move_to(self, status: RunStatus) -> None:
        if status not in ALLOWED_TRANSITIONS[self.status]:
            raise InvalidTransition(f"run {self.run_id}: {self.status.value} → {status.value} is not allowed")
        self.status = status
        if status.is_final:
            self.finished_at = utcnow()

    @property
    def snowflake_query_id(self) -> str | None:
        """The COPY's query id (the statement a person looks up first)."""
        return self.statements.get("copy")

    @property
    def export_seconds(self) -> float | None:
        if self.started_at is None or self.exported_at is None:
            return None
        return (self.exported_at - self.started_at).total_seconds()

    @property
    def load_seconds(self) -> float | None:
        if self.load_started_at is None or self.finished_at is None or self.status is not RunStatus.SUCCESS:
            return None
        return (self.finished_at - self.load_started_at).total_seconds()

    def elapsed_seconds(self, now: datetime | None = None) -> float:
        end = self.finished_at or now or utcnow()
        return max(0.0, (end - self.created_at).total_seconds())

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {**self.extra}
        for item in dataclasses.fields(self):
            if item.name != "extra":
                data[item.name] = getattr(self, item.name)
        data["target"] = self.target.to_dict()
        data["status"] = self.status.value
        for key in _TIMES:
            data[key] = data[key].isoformat() if data[key] else None
        data["steps"] = [{**dataclasses.asdict(step), "at": step.at.isoformat()} for step in self.steps]
        data["files"] = [dataclasses.asdict(file) for file in self.files]
        data["statements"] = dict(self.statements)
        data["warnings"] = list(self.warnings)
        data["columns"] = list(self.columns)
        data["context"] = dict(self.context)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SyncRun:
        known = {item.name for item in dataclasses.fields(cls)} - {"extra"}
        values = {key: value for key, value in data.items() if key in known}
        extra = {key: value for key, value in data.items() if key not in known and key != "extra"}
        values["target"] = SyncTarget.from_dict(data["target"])
        values["status"] = RunStatus(data["status"])
        for key in _TIMES:
            values[key] = datetime.fromisoformat(data[key]) if data.get(key) else None
        values["steps"] = [_step_from_dict(step) for step in data.get("steps") or []]
        values["files"] = [_file_from_dict(file) for file in data.get("files") or []]
        if "snowflake_query_id" in extra:  # 0.1.0 kept only the COPY's id
            query_id = extra.pop("snowflake_query_id")
            if query_id:
                values.setdefault("statements", {"copy": query_id})
        return cls(**values, extra=extra)


def _step_from_dict(data: dict[str, Any]) -> StepLog:
    return StepLog(at=datetime.fromisoformat(data["at"]), message=str(data.get("message", "")),
                   url=data.get("url"), actor=data.get("actor"))


def _file_from_dict(data: dict[str, Any]) -> FileLoad:
    return FileLoad(file=str(data.get("file", "")), status=str(data.get("status", "")),
                    rows_parsed=int(data.get("rows_parsed") or 0), rows_loaded=int(data.get("rows_loaded") or 0),
                    first_error=data.get("first_error"))


@dataclass(frozen=True)
class RunSummary:
    """The few columns a list of runs needs, read without decoding each run's whole record."""

    run_id: str
    sync_name: str
    status: RunStatus
    target_table: str
    requested_by: str
    private: bool
    created_at: datetime
    finished_at: datetime | None
    rows_loaded: int | None
    summary: str  # the error of a failed or cancelled run, else ""

    def elapsed_seconds(self, now: datetime | None = None) -> float:
        end = self.finished_at or now or utcnow()
        return max(0.0, (end - self.created_at).total_seconds())


def summarize(run: SyncRun) -> RunSummary:
    return RunSummary(run_id=run.run_id, sync_name=run.sync_name, status=run.status,
                      target_table=run.target.table_key, requested_by=run.requested_by, private=run.private,
                      created_at=run.created_at, finished_at=run.finished_at, rows_loaded=run.rows_loaded,
                      summary=(run.error or "")[:500])
