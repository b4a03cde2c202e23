"""syncbot's orchestrator: the life of a sync run from Databricks to Snowflake. Knows nothing of Slack."""

from .models import RunStatus, StepLog, SyncRun, SyncTarget
from .service import CancelOutcome, RunEvent, StartResult, SyncService
from .settings import Settings, SettingsError, load_settings

__all__ = ["CancelOutcome", "RunEvent", "RunStatus", "Settings", "SettingsError", "StartResult", "StepLog",
           "SyncRun", "SyncService", "SyncTarget", "build_service", "load_settings"]


def build_service(settings: Settings) -> SyncService:
    """Wire the real clients from settings (the store is opened here: a bad SYNC_DB_PATH fails start-up)."""
    from .databricks import DatabricksJobs
    from .schedule import PollSchedule
    from .snowflake import SnowflakeLoader
    from .store import SqliteRunStore

    sync = settings.sync
    # The SDK retries 429/503 and refused connections by itself for this long per call; past it the service
    # keeps retrying with its own backoff until the run's deadline.
    retry_seconds = int(max(5, min(120, sync.run_timeout_seconds / 10)))
    return SyncService(
        store=SqliteRunStore(sync.db_path),
        databricks=DatabricksJobs.connect(host=settings.databricks.host, token=settings.databricks.token,
                                          retry_timeout_seconds=retry_seconds),
        loader=SnowflakeLoader(settings.snowflake, sync.export_prefix),
        default_target=settings.default_target,
        schedule=PollSchedule(sync.poll_interval_seconds, sync.poll_max_interval_seconds),
        run_timeout_seconds=sync.run_timeout_seconds,
    )
