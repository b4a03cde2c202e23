"""The records of a sync run: statuses, the allowed transitions, and the run itself."""

from __future__ import annotations

import re
import secrets
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from enum import Enum
from typing import Any

RUN_ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]{2,62}$")
_RUN_ID_ALPHABET = "abcdefghijkmnpqrstuvwxyz23456789"  # no 0/o/1/l: ids are read aloud and retyped


class RunStatus(str, Enum):
    PENDING = "PENDING"  # recorded; the Databricks job is not triggered yet
    EXPORTING = "EXPORTING"  # the Databricks job is writing Parquet to S3
    LOADING = "LOADING"  # Snowflake COPY INTO is reading the run's files
    SUCCESS = "SUCCESS"  # rows are in the table
    FAILED = "FAILED"  # ended with a reason; nothing more happens
    CANCELLED = "CANCELLED"  # stopped on request

    @property
    def is_final(self) -> bool:
        return self in FINAL_STATUSES


FINAL_STATUSES = frozenset({RunStatus.SUCCESS, RunStatus.FAILED, RunStatus.CANCELLED})

# The one place that says how a run may move.
ALLOWED_TRANSITIONS: dict[RunStatus, frozenset[RunStatus]] = {
    RunStatus.PENDING: frozenset({RunStatus.EXPORTING, RunStatus.FAILED, RunStatus.CANCELLED}),
    RunStatus.EXPORTING: frozenset({RunStatus.LOADING, RunStatus.FAILED, RunStatus.CANCELLED}),
    RunStatus.LOADING: frozenset({RunStatus.SUCCESS, RunStatus.FAILED, RunStatus.CANCELLED}),
    RunStatus.SUCCESS: frozenset(),
    RunStatus.FAILED: frozenset(),
    RunStatus.CANCELLED: frozenset(),
}


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
    """Where a run reads from (the Databricks job) and writes to (a Snowflake table through a stage)."""

    job_id: int
    database: str
    schema: str
    table: str
    stage: str

    @property
    def table_name(self) -> str:
        return f"{self.database}.{self.schema}.{self.table}"


_TIMES = ("created_at", "started_at", "finished_at", "exported_at")


@dataclass
class StepLog:
    at: datetime
    message: str
    url: str | None = None


@dataclass
class SyncRun:
    run_id: str
    target: SyncTarget
    status: RunStatus = RunStatus.PENDING
    requested_by: str = ""  # opaque to the orchestrator: the bot puts the Slack user id here
    context: dict[str, Any] = field(default_factory=dict)  # opaque: the bot keeps the thread's channel and ts here
    created_at: datetime = field(default_factory=utcnow)
    started_at: datetime | None = None
    finished_at: datetime | None = None
    exported_at: datetime | None = None  # when the Databricks export ended successfully
    databricks_run_id: int | None = None
    run_page_url: str | None = None
    databricks_state: str | None = None
    stage_path: str = ""
    files_loaded: int | None = None
    rows_loaded: int | None = None
    snowflake_query_id: str | None = None
    error: str | None = None
    steps: list[StepLog] = field(default_factory=list)

    def __post_init__(self) -> None:
        validate_run_id(self.run_id)

    def move_to(self, status: RunStatus) -> None:
        if status not in ALLOWED_TRANSITIONS[self.status]:
            raise InvalidTransition(f"run {self.run_id}: {self.status.value} → {status.value} is not allowed")
        self.status = status
        if status.is_final:
            self.finished_at = utcnow()

    @property
    def export_seconds(self) -> float | None:
        if self.started_at is None or self.exported_at is None:
            return None
        return (self.exported_at - self.started_at).total_seconds()

    def elapsed_seconds(self, now: datetime | None = None) -> float:
        end = self.finished_at or now or utcnow()
        return max(0.0, (end - self.created_at).total_seconds())

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["status"] = self.status.value
        for key in _TIMES:
            data[key] = data[key].isoformat() if data[key] else None
        data["steps"] = [{**step, "at": step["at"].isoformat()} for step in data["steps"]]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SyncRun:
        data = dict(data)
        data["target"] = SyncTarget(**data["target"])
        data["status"] = RunStatus(data["status"])
        for key in _TIMES:
            data[key] = datetime.fromisoformat(data[key]) if data.get(key) else None
        data["steps"] = [StepLog(**{**step, "at": datetime.fromisoformat(step["at"])}) for step in data["steps"]]
        return cls(**data)
