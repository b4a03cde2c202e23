"""The Databricks side of a run: trigger the export job, read its state, cancel it (databricks-sdk).

`runs/get` is read from its JSON (through the SDK's own client, so auth and retries stay the SDK's): the SDK turns
a state it does not know into None, and a person must see that state's name, not a guess.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import requests
from databricks.sdk import WorkspaceClient
from databricks.sdk import errors as dbx_errors
from databricks.sdk.core import Config

LEGACY_TERMINAL = frozenset({"TERMINATED", "SKIPPED", "INTERNAL_ERROR"})  # state.life_cycle_state (deprecated)
_API = "/api/2.2/jobs"


class RetriesExhausted(Exception):
    """The SDK retried a 429/503 or a refused connection for its whole budget. (Not a TimeoutError: asyncio
    replaces a TimeoutError crossing a thread boundary with a fresh one, losing the API error that caused it.)"""


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
    """One answer of runs/get: `status` (API 2.2) read first, the deprecated `state` when it is absent."""

    state: str  # RUNNING, QUEUED, TERMINATED, … or any name Databricks adds later, as it came
    code: str | None  # why it ended: SUCCESS, RUN_EXECUTION_ERROR, USER_CANCELED, … (or the legacy result_state)
    message: str
    run_page_url: str | None
    terminal: bool

    @property
    def succeeded(self) -> bool:
        return self.terminal and self.code == "SUCCESS"

    @property
    def queued(self) -> bool:
        return self.state in ("QUEUED", "BLOCKED", "WAITING") and not self.terminal

    @property
    def label(self) -> str:
        return f"{self.state} ({self.code})" if self.code and self.terminal else self.state

    @classmethod
    def from_json(cls, run: dict[str, Any]) -> JobRunState:
        status = run.get("status") or {}
        legacy = run.get("state") or {}
        details = status.get("termination_details") or {}
        queue = status.get("queue_details") or {}
        url = run.get("run_page_url")
        if status.get("state"):
            state = str(status["state"])
            terminal = state == "TERMINATED"
            code = details.get("code") if terminal else None
            message = details.get("message") or queue.get("message") or legacy.get("state_message") or ""
        elif legacy.get("life_cycle_state"):
            state = str(legacy["life_cycle_state"])
            terminal = state in LEGACY_TERMINAL
            code = legacy.get("result_state") or (state if state != "TERMINATED" else None)
            message = legacy.get("state_message") or ""
        else:
            state, terminal, code, message = "UNKNOWN (no state in Databricks' answer)", False, None, ""
        return cls(state=state, code=str(code) if code else None, message=str(message), run_page_url=url,
                   terminal=terminal)


class DatabricksJobs:
    """Thin, synchronous wrapper over the workspace client; the service runs it in its own worker threads."""

    def __init__(self, client: WorkspaceClient) -> None:
        self._client = client
        self._jobs = client.jobs

    @classmethod
    def connect(cls, *, host: str | None, token: str | None, retry_timeout_seconds: int) -> DatabricksJobs:
        # Unified auth: with no token given, the SDK finds OAuth service principal or profile credentials itself.
        config = Config(host=host, token=token, retry_timeout_seconds=retry_timeout_seconds)
        return cls(WorkspaceClient(config=config))

    def run_now(self, job_id: int, run_id: str, parameters: dict[str, str] | None = None) -> int:
        """Start the export; the same run_id (idempotency token) always gives back the same Databricks run."""
        with _retries_exhausted():
            waiter = self._jobs.run_now(job_id=job_id, job_parameters={**(parameters or {}), "run_id": run_id},
                                        idempotency_token=run_id)
        return int(waiter.response.run_id)  # type: ignore[attr-defined]

    def get_run(self, databricks_run_id: int) -> JobRunState:
        with _retries_exhausted():
            answer = self._client.api_client.do("GET", f"{_API}/runs/get", query={"run_id": databricks_run_id},
                                                headers={"Accept": "application/json"})
        return JobRunState.from_json(answer if isinstance(answer, dict) else {})

    def cancel_run(self, databricks_run_id: int) -> None:
        # Asynchronous on Databricks' side: the caller polls until the run is terminal.
        with _retries_exhausted():
            self._jobs.cancel_run(run_id=databricks_run_id)

    def get_job(self, job_id: int) -> dict[str, Any]:
        """The job's settings as JSON (for doctor)."""
        with _retries_exhausted():
            answer = self._client.api_client.do("GET", f"{_API}/get", query={"job_id": job_id},
                                                headers={"Accept": "application/json"})
        return answer if isinstance(answer, dict) else {}

    def job_permissions(self, job_id: int) -> dict[str, Any]:
        with _retries_exhausted():
            answer = self._client.api_client.do("GET", f"/api/2.0/permissions/jobs/{job_id}",
                                                headers={"Accept": "application/json"})
        return answer if isinstance(answer, dict) else {}

    def current_user(self) -> dict[str, Any]:
        with _retries_exhausted():
            answer = self._client.api_client.do("GET", "/api/2.0/preview/scim/v2/Me",
                                                headers={"Accept": "application/json"})
        return answer if isinstance(answer, dict) else {}


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


def fix_hint(what: str, exc: BaseException, job_id: int) -> str:
    """What to change, for an error a person cannot retry their way out of."""
    if what == "run-now" and isinstance(exc, dbx_errors.NotFound | dbx_errors.InvalidParameterValue):
        return (f" (check the sync's Databricks job id ({job_id}: databricks_job_id or DATABRICKS_JOB_ID) and that "
                "the job has a `run_id` job parameter)")
    if isinstance(exc, dbx_errors.PermissionDenied | dbx_errors.Unauthenticated):
        return " (check DATABRICKS_TOKEN, and that its user may run the job: CAN MANAGE RUN)"
    return ""
