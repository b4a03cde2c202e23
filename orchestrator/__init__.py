"""syncbot's orchestrator: the life of a sync run from Databricks to Snowflake. Knows nothing of Slack.

These names are the orchestrator's public surface (pinned by tests/test_units.py); the bot imports only them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .errors import RunCancelled, RunFailed
from .logs import configure_logging, log_event
from .metrics import Metrics
from .models import (
    RUN_ID_PATTERN,
    ColumnMismatch,
    InvalidRunId,
    LoadMode,
    RunStatus,
    RunSummary,
    StepLog,
    SyncRun,
    SyncTarget,
    validate_run_id,
)
from .service import CancelOutcome, RunEvent, StartResult, SyncService, UnknownSync
from .settings import EnvReader, Settings, SettingsError, load_settings, read_settings, redact_url
from .store import StoreError
from .syncs import SYNC_NAME, SyncDefinition
from .timefmt import format_duration

__all__ = [
    "RUN_ID_PATTERN",
    "SYNC_NAME",
    "CancelOutcome",
    "ColumnMismatch",
    "EnvReader",
    "InvalidRunId",
    "LoadMode",
    "Metrics",
    "RunCancelled",
    "RunEvent",
    "RunFailed",
    "RunStatus",
    "RunSummary",
    "Settings",
    "SettingsError",
    "StartResult",
    "StepLog",
    "StoreError",
    "SyncDefinition",
    "SyncRun",
    "SyncService",
    "SyncTarget",
    "UnknownSync",
    "build_doctor",
    "build_service",
    "configure_logging",
    "format_duration",
    "load_settings",
    "log_event",
    "read_settings",
    "redact_url",
    "validate_run_id",
]

if TYPE_CHECKING:
    from .doctor import Doctor

DATABRICKS_WORKERS = 8  # threads for databricks-sdk calls (each call is one short HTTP request)
SNOWFLAKE_WORKERS = 8  # threads for Snowflake calls (logins, short queries, status checks: never a whole COPY)


async def build_service(settings: Settings, *, metrics: Metrics | None = None) -> SyncService:
    """Wire the real clients from settings (the store is opened here: a bad SYNC_DB_PATH fails start-up)."""
    from .databricks import DatabricksJobs
    from .executors import BlockingPool
    from .schedule import PollSchedule
    from .snowflake import SnowflakeClient
    from .store import open_store

    sync = settings.sync
    # The SDK retries 429/503 and refused connections by itself for this long per call; past it the service
    # keeps retrying with its own backoff until the run's deadline.
    retry_seconds = int(max(5, min(120, sync.run_timeout_seconds / 10)))
    store = await open_store(db_url=sync.db_url, db_path=sync.db_path, lease_seconds=sync.lease_seconds)
    return SyncService(
        store=store,
        databricks=DatabricksJobs.connect(host=settings.databricks.host, token=settings.databricks.token,
                                          retry_timeout_seconds=retry_seconds),
        snowflake=SnowflakeClient(settings.snowflake, sync.load_timeout_seconds),
        syncs=settings.syncs,
        schedule=PollSchedule(sync.poll_interval_seconds, sync.poll_max_interval_seconds),
        settings=sync,
        databricks_pool=BlockingPool("databricks", DATABRICKS_WORKERS),
        snowflake_pool=BlockingPool("snowflake", SNOWFLAKE_WORKERS),
        metrics=metrics,
    )


def build_doctor(settings: Settings) -> Doctor:
    """The setup checks (Databricks and Snowflake) with the same clients a run uses."""
    from .databricks import DatabricksJobs
    from .doctor import Doctor
    from .snowflake import SnowflakeClient

    databricks = DatabricksJobs.connect(host=settings.databricks.host, token=settings.databricks.token,
                                        retry_timeout_seconds=15)
    return Doctor(settings, databricks, SnowflakeClient(settings.snowflake, 120))
