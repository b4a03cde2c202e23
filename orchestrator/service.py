"""The sync service: owns each run from request to final state, durably (the state machine lives here)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from enum import Enum
from typing import Any, Literal

from databricks.sdk import errors as dbx_errors

from .databricks import DatabricksJobs, JobRunState, describe_error, is_transient
from .logs import log_event
from .models import RunStatus, StepLog, SyncRun, SyncTarget, new_run_id, utcnow, validate_run_id
from .schedule import PollSchedule
from .snowflake import CopyResult, LoadCancelled, SnowflakeLoader, SnowflakeLoadError
from .store import RunStore

log = logging.getLogger("syncbot.orchestrator")

CANCEL_CONFIRM_SECONDS = 60.0  # how long to wait for Databricks to confirm a cancelled run has ended


class RunFailed(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class RunCancelled(Exception):
    pass


@dataclass(frozen=True)
class RunEvent:
    run: SyncRun
    kind: Literal["created", "status", "step", "resumed"]
    step: StepLog | None = None


Observer = Callable[[RunEvent], None]


@dataclass(frozen=True)
class StartResult:
    run: SyncRun
    created: bool  # False: a run on the same target was already active and is returned instead


class CancelOutcome(str, Enum):
    REQUESTED = "REQUESTED"  # the run will end CANCELLED (or finish, if it was too late)
    ALREADY_FINAL = "ALREADY_FINAL"
    NOT_FOUND = "NOT_FOUND"


def format_duration(seconds: float) -> str:
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m {seconds:02d}s" if seconds else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


class SyncService:
    def __init__(self, *, store: RunStore, databricks: DatabricksJobs, loader: SnowflakeLoader,
                 default_target: SyncTarget, schedule: PollSchedule, run_timeout_seconds: float) -> None:
        self._store = store
        self._databricks = databricks
        self._loader = loader
        self.default_target = default_target
        self._schedule = schedule
        self._timeout = run_timeout_seconds
        self._live: dict[str, SyncRun] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._wakeups: dict[str, asyncio.Event] = {}
        self._cancel_requested: dict[str, str] = {}
        self._load_cancels: dict[str, threading.Event] = {}
        self._last_errors: dict[str, str] = {}  # the latest transient API error per run, for the timeout message
        self._resumed: set[str] = set()  # runs this process picked up from a previous one
        self._observers: list[Observer] = []
        self._start_lock = asyncio.Lock()

    # ---- public surface -------------------------------------------------------------------------------------

    def subscribe(self, observer: Observer) -> Callable[[], None]:
        """Call `observer` on every run's changes; it must be quick (enqueue, don't await)."""
        self._observers.append(observer)
        return lambda: self._observers.remove(observer)

    async def start_sync(self, *, requested_by: str = "", context: dict[str, Any] | None = None,
                         target: SyncTarget | None = None) -> StartResult:
        """Record a PENDING run and return it at once; the work goes on in a background task."""
        target = target or self.default_target
        async with self._start_lock:
            active = self._active_for(target)
            if active is not None:
                return StartResult(active, created=False)
            run_id = new_run_id()
            run = SyncRun(run_id=run_id, target=target, requested_by=requested_by, context=dict(context or {}),
                          stage_path=f"@{target.stage}/{self._loader.export_prefix}{run_id}/")
            self._store.save(run)
            log_event(log, "run.created", run_id=run_id, target=target.table_name, requested_by=requested_by)
            self._emit(RunEvent(run, "created"))
            self._spawn(run)
        return StartResult(run, created=True)

    def get(self, run_id: str) -> SyncRun | None:
        validate_run_id(run_id)
        return self._live.get(run_id) or self._store.get(run_id)

    def recent(self, limit: int = 10) -> list[SyncRun]:
        return [self._live.get(run.run_id, run) for run in self._store.recent(limit)]

    def update_context(self, run_id: str, **values: Any) -> None:
        """The caller's own bookkeeping (for the bot: where the run's thread is), stored with the run."""
        run = self.get(run_id)
        if run is not None:
            run.context.update(values)
            self._store.save(run)

    async def cancel(self, run_id: str, *, requested_by: str = "") -> tuple[CancelOutcome, SyncRun | None]:
        run = self.get(run_id)
        if run is None:
            return CancelOutcome.NOT_FOUND, None
        if run.status.is_final:
            return CancelOutcome.ALREADY_FINAL, run
        if run_id not in self._tasks:  # nobody drives it (not resumed in this process): end it here
            self._finish(run, RunStatus.CANCELLED, f"Cancelled by {requested_by}".strip())
            return CancelOutcome.REQUESTED, run
        if run_id not in self._cancel_requested:
            self._cancel_requested[run_id] = requested_by
            self._step(run, f"Cancel requested by {requested_by}".strip())
            self._wakeups[run_id].set()
            if load_cancel := self._load_cancels.get(run_id):
                load_cancel.set()
        return CancelOutcome.REQUESTED, run

    async def resume(self) -> list[SyncRun]:
        """Continue every run a previous process left unfinished (call once at start-up)."""
        resumed = []
        for run in self._store.unfinished():
            if run.run_id in self._tasks:
                continue
            self._resumed.add(run.run_id)
            self._step(run, f"Resumed after a restart (was {run.status.value})")
            log_event(log, "run.resumed", run_id=run.run_id, status=run.status)
            self._emit(RunEvent(run, "resumed"))
            self._spawn(run)
            resumed.append(run)
        return resumed

    async def wait(self, run_id: str, timeout: float | None = None) -> SyncRun:
        """Until the run is final (for tests, the demo and benchmarks)."""
        task = self._tasks.get(run_id)
        if task is not None:
            await asyncio.wait_for(asyncio.shield(task), timeout)
        run = self.get(run_id)
        assert run is not None
        return run

    async def shutdown(self) -> None:
        """Stop driving runs without changing their status: the next start-up resumes them."""
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # ---- the run's life ---------------------------------------------------------------------------------------

    def _active_for(self, target: SyncTarget) -> SyncRun | None:
        for run in self._live.values():
            if run.target.table_name == target.table_name and not run.status.is_final:
                return run
        return self._store.active_for(target.table_name)

    def _spawn(self, run: SyncRun) -> None:
        self._live[run.run_id] = run
        self._wakeups[run.run_id] = asyncio.Event()
        task = asyncio.create_task(self._drive(run), name=f"sync-{run.run_id}")
        self._tasks[run.run_id] = task
        task.add_done_callback(lambda _: self._forget(run.run_id))

    def _forget(self, run_id: str) -> None:
        self._tasks.pop(run_id, None)
        self._wakeups.pop(run_id, None)
        self._cancel_requested.pop(run_id, None)
        self._last_errors.pop(run_id, None)
        self._resumed.discard(run_id)
        self._live.pop(run_id, None)

    async def _drive(self, run: SyncRun) -> None:
        try:
            if run.status is RunStatus.PENDING:
                await self._trigger_export(run)
            if run.status is RunStatus.EXPORTING:
                await self._await_export(run)
            if run.status is RunStatus.LOADING:
                await self._load(run)
        except RunCancelled as exc:
            self._finish(run, RunStatus.CANCELLED, str(exc))
        except RunFailed as exc:
            self._finish(run, RunStatus.FAILED, exc.reason)
        except asyncio.CancelledError:
            log_event(log, "run.suspended", run_id=run.run_id, status=run.status)
            raise
        except Exception as exc:
            log_event(log, "run.crashed", level=logging.ERROR, exc_info=True, run_id=run.run_id)
            self._finish(run, RunStatus.FAILED, f"internal error in syncbot: {type(exc).__name__}: {exc}")

    def _deadline_passed(self, run: SyncRun) -> bool:
        return self._seconds_left(run) <= 0

    def _seconds_left(self, run: SyncRun) -> float:
        started = run.started_at or utcnow()
        return (started + timedelta(seconds=self._timeout) - utcnow()).total_seconds()

    def _raise_if_cancel_requested(self, run: SyncRun) -> None:
        if run.run_id in self._cancel_requested:
            raise RunCancelled(f"Cancelled by {self._cancel_requested[run.run_id]}".strip())

    async def _trigger_export(self, run: SyncRun) -> None:
        if run.started_at is None:
            run.started_at = utcnow()
            self._store.save(run)
        self._raise_if_cancel_requested(run)
        databricks_run_id = await self._databricks_call(
            run, "run-now", self._databricks.run_now, run.target.job_id, run.run_id)
        run.databricks_run_id = databricks_run_id
        self._move(run, RunStatus.EXPORTING)
        try:  # only for the link; the poll loop reads the state for real
            run.run_page_url = (await asyncio.to_thread(self._databricks.get_run, databricks_run_id)).run_page_url
        except Exception as exc:
            self._last_errors[run.run_id] = describe_error(exc)
        self._step(run, f"Databricks job {run.target.job_id} triggered: run {databricks_run_id}", url=run.run_page_url)

    async def _await_export(self, run: SyncRun) -> None:
        assert run.databricks_run_id is not None
        for interval in self._schedule.intervals(self._export_history(run)):
            await self._sleep(run, min(interval, max(self._seconds_left(run), 0.0)))
            if run.run_id in self._cancel_requested:
                await self._cancel_databricks_run(run)
                self._raise_if_cancel_requested(run)
            if self._deadline_passed(run):
                last_state = run.databricks_state or "unknown"
                confirmed = await self._cancel_databricks_run(run)
                last_error = self._last_errors.get(run.run_id)
                raise RunFailed(
                    f"timed out after {format_duration(self._timeout)} waiting for Databricks run "
                    f"{run.databricks_run_id} (last state {last_state}); "
                    + ("the Databricks run was cancelled" if confirmed else "syncbot asked Databricks to cancel it")
                    + (f". Databricks' last answer was an error: {last_error}" if last_error else ""))
            try:
                state = await self._databricks_call(run, "runs/get", self._databricks.get_run, run.databricks_run_id)
            except RunCancelled:
                await self._cancel_databricks_run(run)
                raise
            except RunFailed:
                # We can no longer follow the job: stop it rather than leave it writing files nobody loads.
                with contextlib.suppress(Exception):
                    await asyncio.to_thread(self._databricks.cancel_run, run.databricks_run_id)
                raise
            self._note_state(run, state)
            if state.is_terminal:
                if not state.succeeded:
                    link = f" (see {state.run_page_url})" if state.run_page_url else ""
                    raise RunFailed(f"Databricks run {run.databricks_run_id} ended {state.label}: "
                                    f"{state.state_message or 'no message from Databricks'}{link}")
                run.exported_at = utcnow()
                self._step(run, f"Export finished: Parquet files are under {run.stage_path}")
                self._move(run, RunStatus.LOADING)
                return

    def _export_history(self, run: SyncRun) -> list[float]:
        """This target's recent export times (its last 5 successes), once 3 are known. A resumed run polls on
        the default schedule: its time already spent is not counted in the schedule."""
        if run.run_id in self._resumed:
            return []
        durations = [seconds for earlier in self._store.recent_successes(run.target.table_name, 5)
                     if (seconds := earlier.export_seconds) is not None]
        return durations if len(durations) >= 3 else []

    def _note_state(self, run: SyncRun, state: JobRunState) -> None:
        if state.run_page_url and not run.run_page_url:
            run.run_page_url = state.run_page_url
        if state.label != run.databricks_state:
            run.databricks_state = state.label
            detail = f": {state.state_message}" if state.state_message and state.is_terminal else ""
            self._step(run, f"Databricks run {run.databricks_run_id} is {state.label}{detail}")

    async def _cancel_databricks_run(self, run: SyncRun) -> bool:
        """Ask Databricks to cancel, then wait (bounded) until it confirms the run has ended (True)."""
        assert run.databricks_run_id is not None
        try:
            await asyncio.to_thread(self._databricks.cancel_run, run.databricks_run_id)
        except Exception as exc:
            self._last_errors[run.run_id] = describe_error(exc)
            self._step(run, f"Could not cancel Databricks run {run.databricks_run_id}: {describe_error(exc)}")
            return False
        loop = asyncio.get_running_loop()
        give_up_at = loop.time() + CANCEL_CONFIRM_SECONDS
        while loop.time() < give_up_at:
            try:
                state = await asyncio.to_thread(self._databricks.get_run, run.databricks_run_id)
            except Exception as exc:
                self._last_errors[run.run_id] = describe_error(exc)
                self._step(run, f"Asked Databricks to cancel run {run.databricks_run_id}, but could not confirm "
                                f"it ended ({describe_error(exc)}); check it in Databricks")
                return False
            self._note_state(run, state)
            if state.is_terminal:
                return True
            await asyncio.sleep(min(2.0, self._schedule.initial_seconds))
        self._step(run, f"Databricks did not confirm the cancel of run {run.databricks_run_id} "
                        f"within {format_duration(CANCEL_CONFIRM_SECONDS)}; check it in Databricks")
        return False

    async def _databricks_call(self, run: SyncRun, what: str, call: Callable[..., Any], *args: Any) -> Any:
        """One API call, retried with backoff on transient failures (429, 5xx, dropped connections) until the
        run's deadline; anything else fails the run at once (fail fast, no re-run)."""
        delay = 1.0
        announced = False
        while True:
            try:
                result = await asyncio.to_thread(call, *args)
                self._last_errors.pop(run.run_id, None)
                return result
            except Exception as exc:
                reason = describe_error(exc)
                self._last_errors[run.run_id] = reason
                if not is_transient(exc):
                    raise RunFailed(f"Databricks {what} failed: {reason}{_hint(what, exc)}") from None
                log_event(log, "databricks.retry", level=logging.WARNING, run_id=run.run_id, call=what, error=reason)
                if self._deadline_passed(run):
                    raise RunFailed(f"Databricks {what} kept failing ({reason}); gave up after "
                                    f"{format_duration(self._timeout)}, the run's time limit") from None
                if not announced:
                    self._step(run, f"Databricks {what} failed ({reason}); retrying")
                    announced = True
                await self._sleep(run, min(delay, max(self._seconds_left(run), 0.0)))
                self._raise_if_cancel_requested(run)
                delay = min(delay * 2, 30.0)

    async def _sleep(self, run: SyncRun, seconds: float) -> None:
        """Sleep, but wake at once when a cancel is requested."""
        wakeup = self._wakeups[run.run_id]
        try:
            await asyncio.wait_for(wakeup.wait(), timeout=seconds)
        except TimeoutError:
            pass

    async def _load(self, run: SyncRun) -> None:
        self._raise_if_cancel_requested(run)
        self._step(run, f"COPY INTO {run.target.table_name} FROM {run.stage_path} started")
        loop = asyncio.get_running_loop()
        cancel = threading.Event()
        self._load_cancels[run.run_id] = cancel

        def remember_query_id(query_id: str) -> None:
            def save() -> None:
                run.snowflake_query_id = query_id
                self._store.save(run)
            loop.call_soon_threadsafe(save)

        try:
            result = await asyncio.to_thread(self._loader.copy_into, run.target, run.run_id,
                                             on_query_id=remember_query_id, cancel=cancel)
        except LoadCancelled:
            raise RunCancelled(
                f"Cancelled by {self._cancel_requested.get(run.run_id, '')}".strip() + " (COPY aborted)") from None
        except SnowflakeLoadError as exc:
            raise RunFailed(f"COPY INTO {run.target.table_name} failed: {exc}") from None
        finally:
            self._load_cancels.pop(run.run_id, None)
        self._record_load(run, result)

    def _record_load(self, run: SyncRun, result: CopyResult) -> None:
        run.snowflake_query_id = result.query_id
        if not result.files:
            raise RunFailed(f"the export wrote no files under {run.stage_path}: nothing to load. Check that the "
                            "Databricks job writes to the bucket and prefix the stage points at")
        lines = [f"{file.file.rsplit('/', 1)[-1]}: {file.status}, {file.rows_loaded} rows"
                 + (f" ({file.first_error})" if file.first_error and file.status != "LOAD_SKIPPED" else "")
                 for file in result.files[:20]]
        if len(result.files) > 20:
            lines.append(f"… and {len(result.files) - 20} more files")
        self._step(run, "COPY results (Snowflake query " + result.query_id + "):\n" + "\n".join(lines))
        if result.failed_files:
            first = result.failed_files[0]
            raise RunFailed(f"COPY INTO {run.target.table_name} rejected {len(result.failed_files)} file(s); "
                            f"first error in {first.file.rsplit('/', 1)[-1]}: {first.first_error}")
        run.files_loaded = result.files_loaded
        run.rows_loaded = result.rows_loaded
        if result.files_skipped:
            self._step(run, f"{result.files_skipped} file(s) had already been loaded before the restart "
                            "and were skipped (no row is loaded twice)")
        if run.run_id in self._cancel_requested:
            self._step(run, "The cancel came too late: COPY had already committed")
        self._move(run, RunStatus.SUCCESS)
        self._step(run, f"Loaded {run.rows_loaded:,} rows from {run.files_loaded} file(s) into "
                        f"{run.target.table_name} in {format_duration(run.elapsed_seconds())}")

    # ---- recording ---------------------------------------------------------------------------------------------

    def _move(self, run: SyncRun, status: RunStatus) -> None:
        run.move_to(status)
        self._store.save(run)
        log_event(log, "run.status", run_id=run.run_id, status=status, databricks_run_id=run.databricks_run_id,
                  rows_loaded=run.rows_loaded, error=run.error)
        self._emit(RunEvent(run, "status"))

    def _step(self, run: SyncRun, message: str, url: str | None = None) -> None:
        step = StepLog(at=utcnow(), message=message, url=url)
        run.steps.append(step)
        self._store.save(run)
        log_event(log, "run.step", run_id=run.run_id, message=message)
        self._emit(RunEvent(run, "step", step))

    def _finish(self, run: SyncRun, status: RunStatus, reason: str) -> None:
        if run.status.is_final:
            return
        if status is not RunStatus.SUCCESS:
            run.error = reason
        self._move(run, status)
        self._step(run, f"{status.value}: {reason}")

    def _emit(self, event: RunEvent) -> None:
        for observer in list(self._observers):
            try:
                observer(event)
            except Exception:  # an observer must never break the run
                log_event(log, "observer.failed", level=logging.ERROR, exc_info=True, run_id=event.run.run_id)


def _hint(what: str, exc: BaseException) -> str:
    if what == "run-now" and isinstance(exc, dbx_errors.NotFound | dbx_errors.InvalidParameterValue):
        return " (check DATABRICKS_JOB_ID and the job's `run_id` parameter)"
    if isinstance(exc, dbx_errors.PermissionDenied | dbx_errors.Unauthenticated):
        return " (check DATABRICKS_TOKEN, and that its user may run the job: CAN MANAGE RUN)"
    return ""
