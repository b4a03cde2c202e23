"""The Databricks side of a run: trigger the export job, read its state, cancel it (databricks-sdk)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import requests
from databricks.sdk import WorkspaceClient
from databricks.sdk import errors as dbx_errors
from databricks.sdk.core import Config

TERMINAL_LIFE_CYCLE_STATES = frozenset({"TERMINATED", "SKIPPED", "INTERNAL_ERROR"})

class RetriesExhausted(Exception):
    """The SDK retried a 429/503 or a refused connection for its whole budget. (Not a TimeoutError: asyncio
    replaces a TimeoutError crossing `to_thread` with a fresh one, losing the API error that caused it.)"""


_TRANSIENT_ERRORS = (
    RetriesExhausted,
    dbx_errors.TooManyRequests,
    dbx_errors.TemporarilyUnavailable,
    dbx_errors.InternalError,
    dbx_errors.DeadlineExceeded,
    dbx_errors.RequestLimitExceeded,
    dbx_errors.Unknown,
    requests.ConnectionError,
    requests.Timeout,
    ConnectionError,
    TimeoutError,  # the SDK's own retry budget ran out on a 429/503 or a refused connection
)


@dataclass(frozen=True)
class JobRunState:
    life_cycle_state: str
    result_state: str | None
    state_message: str
    run_page_url: str | None

    @property
    def is_terminal(self) -> bool:
        return self.life_cycle_state in TERMINAL_LIFE_CYCLE_STATES

    @property
    def succeeded(self) -> bool:
        return self.life_cycle_state == "TERMINATED" and self.result_state == "SUCCESS"

    @property
    def label(self) -> str:
        return f"{self.life_cycle_state} ({self.result_state})" if self.result_state else self.life_cycle_state


class DatabricksJobs:
    """Thin, synchronous wrapper over `WorkspaceClient().jobs`; the service runs it off the event loop."""

    def __init__(self, client: WorkspaceClient) -> None:
        self._jobs = client.jobs

    @classmethod
    def connect(cls, *, host: str | None, token: str | None, retry_timeout_seconds: int) -> DatabricksJobs:
        # Unified auth: with no token given, the SDK finds OAuth service principal or profile credentials itself.
        config = Config(host=host, token=token, retry_timeout_seconds=retry_timeout_seconds)
        return cls(WorkspaceClient(config=config))

    def run_now(self, job_id: int, run_id: str) -> int:
        """Start the export; the same run_id (idempotency token) always gives back the same Databricks run."""
        with _retries_exhausted():
            waiter = self._jobs.run_now(job_id=job_id, job_parameters={"run_id": run_id}, idempotency_token=run_id)
        return int(waiter.response.run_id)  # type: ignore[attr-defined]

    def get_run(self, databricks_run_id: int) -> JobRunState:
        with _retries_exhausted():
            run = self._jobs.get_run(run_id=databricks_run_id)
        state = run.state
        life_cycle = state.life_cycle_state.value if state and state.life_cycle_state else "PENDING"
        result = state.result_state.value if state and state.result_state else None
        message = (state.state_message if state else "") or ""
        details = run.status.termination_details if run.status else None
        if details and details.message and details.message not in message:
            message = f"{message} {details.message}".strip()
        return JobRunState(life_cycle, result, message, run.run_page_url)

    def cancel_run(self, databricks_run_id: int) -> None:
        # Asynchronous on Databricks' side: the caller polls until the run is terminal.
        with _retries_exhausted():
            self._jobs.cancel_run(run_id=databricks_run_id)


@contextmanager
def _retries_exhausted() -> Iterator[None]:
    try:
        yield
    except TimeoutError as exc:
        raise RetriesExhausted(describe_error(exc)) from exc.__cause__


def is_transient(exc: BaseException) -> bool:
    return isinstance(exc, _TRANSIENT_ERRORS)


def describe_error(exc: BaseException) -> str:
    """A sentence for a person: the API's error code and message, never a traceback or a credential."""
    if isinstance(exc, RetriesExhausted):
        return str(exc)
    if isinstance(exc, TimeoutError) and exc.__cause__ is not None:
        return f"{describe_error(exc.__cause__)} (still failing after the SDK's retries)"
    if isinstance(exc, dbx_errors.DatabricksError):
        code = exc.error_code or type(exc).__name__
        return f"{code}: {exc}"
    if isinstance(exc, requests.ConnectionError | ConnectionError):
        return "cannot connect to the Databricks workspace (check DATABRICKS_HOST and the network)"
    return f"{type(exc).__name__}: {exc}"
