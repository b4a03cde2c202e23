"""The sync service: owns each run from request to final state, durably, with other processes on the same store.

A process drives only the runs it holds a lease on (orchestrator/store.py). A keeper task renews those leases,
reads cancel requests written by any process, and claims runs whose process has died, so an orphaned run is
taken over within one lease period. Every write of a run is fenced by the lease: once another process has
claimed a run, this one stops driving it without writing anything.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from enum import Enum
from typing import Any, Literal

from .databricks import DatabricksJobs, JobRunState, describe_error, fix_hint, is_transient
from .errors import RunCancelled, RunFailed
from .executors import BlockingPool
from .load import LoadLimits, LoadPhase
from .logs import log_event
from .metrics import Metrics
from .models import RunStatus, RunSummary, StepLog, SyncRun, new_run_id, utcnow, validate_run_id
from .schedule import PollSchedule
from .settings import SyncSettings
from .snowflake import SnowflakeClient, run_path
from .store import LeaseLost, RunStore, StoreError
from .syncs import SyncDefinition
from .timefmt import format_duration

log = logging.getLogger("syncbot.orchestrator")

CANCEL_CONFIRM_SECONDS = 60.0  # how long to wait for Databricks to confirm a cancelled run has ended
KEEPER_TICK_SECONDS = 1.0  # cancel requests from other processes are read this often (acted on within 2 s)
STORE_RETRY_MAX_SECONDS = 5.0
RECENT_CACHE_SECONDS = 1.0  # how stale `/sync status` may be about runs other processes drive


class UnknownSync(KeyError):
    """No sync has that name."""


class _StoreGone(Exception):
    """The store refused writes for a whole lease period: stop driving; the run is claimed again once it is back."""


@dataclass(frozen=True)
class RunEvent:
    run: SyncRun
    kind: Literal["created", "status", "step", "resumed"]
    step: StepLog | None = None


Observer = Callable[[RunEvent], None]


@dataclass(frozen=True)
class StartResult:
    run: SyncRun
    created: bool  # False: a run on the same table was already active and is returned instead


class CancelOutcome(str, Enum):
    REQUESTED = "REQUESTED"  # the run will end CANCELLED (or finish, if it was too late)
    ALREADY_FINAL = "ALREADY_FINAL"
    NOT_FOUND = "NOT_FOUND"


@dataclass(eq=False)
class _ActiveRun:
    """Everything this process knows about one run it drives; forgetting the run is one pop."""

    service: SyncService
    run: SyncRun
    resumed: bool = False
    wakeup: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None
    cancel_by: str | None = None
    statement: str | None = None  # the Snowflake query in flight (what a cancel aborts)
    last_error: str | None = None  # the latest transient API error, for a timeout's message
    deadline_extension: float = 0.0  # a grace period for a run resumed after its deadline had passed

    @property
    def cancel_requested_by(self) -> str | None:
        return self.cancel_by

    async def save(self) -> None:
        await self.service._save(self)

    async def step(self, message: str, url: str | None = None, actor: str | None = None) -> None:
        await self.service._step(self, message, url=url, actor=actor)

    async def sleep(self, seconds: float) -> None:
        """Sleep, but wake at once on a cancel request."""
        try:
            await asyncio.wait_for(self.wakeup.wait(), timeout=max(0.0, seconds))
        except TimeoutError:
            pass
        self.wakeup.clear()  # the request itself stays in cancel_by: only the wake-up is spent

    async def note_cancel(self, requested_by: str) -> None:
        if self.cancel_by is None:
            self.cancel_by = requested_by
            self.wakeup.set()
            await self.step("Cancel requested", actor=requested_by)


class SyncService:
    def __init__(self, *, store: RunStore, databricks: DatabricksJobs, snowflake: SnowflakeClient,
                 syncs: dict[str, SyncDefinition], schedule: PollSchedule, settings: SyncSettings,
                 databricks_pool: BlockingPool, snowflake_pool: BlockingPool, metrics: Metrics | None = None) -> None:
        self.store = store
        self.syncs = syncs
        self.settings = settings
        self.metrics = metrics or Metrics()
        self._databricks = databricks
        self._snowflake = snowflake
        self._schedule = schedule
        self._databricks_pool = databricks_pool
        self._snowflake_pool = snowflake_pool
        self._active: dict[str, _ActiveRun] = {}
        self._lost: set[str] = set()  # runs another process took from this one: this one must not report them
        self._observers: list[Observer] = []
        self._keeper: asyncio.Task[None] | None = None
        self._recent_cache: dict[tuple[int, str | None, str | None], tuple[float, list[RunSummary]]] = {}
        self._latest_cache: dict[tuple[int, str | None, str | None], tuple[float, dict[str, RunSummary]]] = {}

    # ---- public surface -------------------------------------------------------------------------------------

    def subscribe(self, observer: Observer) -> Callable[[], None]:
        """Call `observer` on every run's changes; it must be quick (enqueue, don't await)."""
        self._observers.append(observer)
        return lambda: self._observers.remove(observer)

    async def start(self) -> list[SyncRun]:
        """Take over every run nobody holds (left by a stopped process), then keep leases and claims going."""
        claimed = await self._claim_orphans()
        self._keeper = asyncio.create_task(self._keep(), name="syncbot-keeper")
        return claimed

    async def shutdown(self) -> None:
        """Stop driving runs without changing their status, and give their leases up so that another process (or
        the next start) takes them over at once."""
        if self._keeper is not None:
            self._keeper.cancel()
            await asyncio.gather(self._keeper, return_exceptions=True)
        actives = list(self._active.values())
        tasks = [active.task for active in actives if active.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        with contextlib.suppress(StoreError):
            await self.store.release([active.run.run_id for active in actives])
        await asyncio.to_thread(self._snowflake.close)
        self._databricks_pool.shutdown()
        self._snowflake_pool.shutdown()

    def definition(self, sync_name: str) -> SyncDefinition:
        try:
            return self.syncs[sync_name]
        except KeyError:
            raise UnknownSync(sync_name) from None

    async def start_sync(self, sync_name: str | None = None, *, requested_by: str = "",
                         context: dict[str, Any] | None = None, private: bool = False) -> StartResult:
        """Record a PENDING run held by this process and return it at once; the work goes on in a task. When the
        table already has an active run (in any process, for any sync), that run is returned instead."""
        if sync_name is None:
            if len(self.syncs) != 1:
                raise UnknownSync("")
            sync_name = next(iter(self.syncs))
        definition = self.definition(sync_name)
        target = definition.target
        for active in self._active.values():  # this process's own active run on that table: no store round trip
            if active.run.target.table_key == target.table_key and not active.run.status.is_final:
                return StartResult(active.run, created=False)
        run_id = new_run_id()
        run = SyncRun(run_id=run_id, target=target, sync_name=sync_name, requested_by=requested_by,
                      private=private, context=dict(context or {}),
                      run_timeout_seconds=definition.run_timeout_seconds,
                      stage_path=run_path(target.stage, self.settings.export_prefix, run_id))
        active_run = await self.store.insert(run)
        if active_run is not None:
            return StartResult(active_run, created=False)
        self.metrics.runs_started.labels(sync_name).inc()
        log_event(log, "run.created", run_id=run_id, sync=sync_name, target=target.table_name,
                  requested_by=requested_by)
        self._emit(RunEvent(run, "created"))
        self._spawn(_ActiveRun(self, run))
        return StartResult(run, created=True)

    async def get(self, run_id: str) -> SyncRun | None:
        validate_run_id(run_id)
        active = self._active.get(run_id)
        return active.run if active else await self.store.get(run_id)

    def live(self, run_id: str) -> SyncRun | None:
        """The run as this process is driving it right now (None when it does not drive it)."""
        active = self._active.get(run_id)
        return active.run if active else None

    def holds(self, run_id: str) -> bool:
        """Whether this process may report this run: it drives it, or drove it to its end."""
        return run_id not in self._lost

    async def recent(self, limit: int = 10, *, user: str | None = None,
                     sync_name: str | None = None) -> list[RunSummary]:
        """The recent runs as the store has them, at most RECENT_CACHE_SECONDS old (a burst of `/sync status` costs
        one query; any change this process makes clears the cache at once)."""
        key = (limit, user, sync_name)
        now = time.monotonic()
        cached = self._recent_cache.get(key)
        if cached is not None and now - cached[0] < RECENT_CACHE_SECONDS:
            return cached[1]
        summaries = await self.store.summaries(limit, user=user, sync_name=sync_name)
        self._recent_cache[key] = (now, summaries)
        return summaries

    async def latest_by_sync(self, *, user: str | None = None) -> dict[str, RunSummary]:
        key = (-1, user, None)
        now = time.monotonic()
        cached = self._latest_cache.get(key)
        if cached is not None and now - cached[0] < RECENT_CACHE_SECONDS:
            return cached[1]
        latest = await self.store.latest_by_sync(list(self.syncs), user=user)
        self._latest_cache[key] = (now, latest)
        return latest

    async def update_context(self, run_id: str, **values: Any) -> None:
        """The caller's own bookkeeping (for the bot: where the run's thread is), stored with the run."""
        active = self._active.get(run_id)
        if active is not None:
            active.run.context.update(values)
            with contextlib.suppress(LeaseLost, _StoreGone):
                await self._save(active)
        elif run_id not in self._lost:  # finished here a moment ago: nobody else writes it any more
            await self.store.update_final_context(run_id, values)

    async def cancel(self, run_id: str, *, requested_by: str = "") -> tuple[CancelOutcome, SyncRun | None]:
        """Cancel from any process: the request is stored; the process driving the run acts on it within 2 s.
        When nobody drives it, this process claims it and cancels it for real."""
        validate_run_id(run_id)
        active = self._active.get(run_id)
        run = active.run if active else await self.store.get(run_id)
        if run is None:
            return CancelOutcome.NOT_FOUND, None
        if run.status.is_final:
            return CancelOutcome.ALREADY_FINAL, run
        await self.store.request_cancel(run_id, requested_by)
        if active is None and await self.store.holder(run_id) is None:
            for claimable_id, previous in await self.store.claimable():
                if claimable_id == run_id:
                    await self._take(run_id, previous)
            active = self._active.get(run_id)
        if active is not None:
            with contextlib.suppress(LeaseLost, _StoreGone):
                await active.note_cancel(requested_by)
        return CancelOutcome.REQUESTED, run

    async def wait(self, run_id: str, timeout: float | None = None) -> SyncRun:
        """Until the run is final, whichever process drives it (for tests, the demo and benchmarks)."""
        async def final() -> SyncRun:
            while True:
                active = self._active.get(run_id)
                if active is not None and active.task is not None:
                    await asyncio.gather(asyncio.shield(active.task), return_exceptions=True)
                run = await self.store.get(run_id)
                if run is None or run.status.is_final:
                    assert run is not None, run_id
                    return run
                await asyncio.sleep(0.1)
        return await asyncio.wait_for(final(), timeout)

    @property
    def active_count(self) -> int:
        return len(self._active)

    # ---- leases ---------------------------------------------------------------------------------------------------

    async def _keep(self) -> None:
        loop = asyncio.get_running_loop()
        lease = self.settings.lease_seconds
        renew_every, claim_every = lease / 3, min(5.0, lease / 3)
        next_renew = next_claim = loop.time()
        while True:
            await asyncio.sleep(min(KEEPER_TICK_SECONDS, renew_every))
            try:
                for run_id, requested_by in (await self.store.cancel_requests()).items():
                    if (active := self._active.get(run_id)) is not None and active.cancel_by is None:
                        await active.note_cancel(requested_by)
                if loop.time() >= next_renew:
                    next_renew = loop.time() + renew_every
                    held = await self.store.renew(list(self._active))
                    for run_id in [run_id for run_id in self._active if run_id not in held]:
                        self._lose(run_id, "another process holds its lease now")
                if loop.time() >= next_claim:
                    next_claim = loop.time() + claim_every
                    await self._claim_orphans()
            except (StoreError, LeaseLost, _StoreGone) as exc:
                log_event(log, "store.unavailable", level=logging.WARNING, error=str(exc))
            except Exception:
                log_event(log, "keeper.failed", level=logging.ERROR, exc_info=True)

    async def _claim_orphans(self) -> list[SyncRun]:
        claimed = []
        for run_id, previous_owner in await self.store.claimable():
            if run_id not in self._active and (run := await self._take(run_id, previous_owner)) is not None:
                claimed.append(run)
        return claimed

    async def _take(self, run_id: str, previous_owner: str | None) -> SyncRun | None:
        run = await self.store.claim(run_id, previous_owner)
        if run is None:
            return None
        self._lost.discard(run_id)
        if previous_owner is not None and previous_owner != self.store.owner:
            self.metrics.takeovers.inc()
        active = _ActiveRun(self, run, resumed=True)
        log_event(log, "run.resumed", run_id=run_id, status=run.status, previous_owner=previous_owner)
        self._active[run_id] = active  # before the first write, so that update_context and cancel find it
        try:
            cancel_by = await self.store.cancel_request(run_id)
            self._grant_grace(active)
            await active.step(f"Resumed after a restart (was {run.status.value})")
            self._emit(RunEvent(run, "resumed"))
            if cancel_by:
                await active.note_cancel(cancel_by)
        except (LeaseLost, _StoreGone):
            self._active.pop(run_id, None)
            return None
        self._spawn(active)
        return run

    def _grant_grace(self, active: _ActiveRun) -> None:
        """A run resumed after its time limit had passed is not timed out before Databricks (or Snowflake) has
        been asked: it gets SYNC_RESUME_GRACE_SECONDS from now."""
        if active.run.status is RunStatus.EXPORTING and self._seconds_left(active) <= 0:
            overdue = -self._seconds_left(active)
            active.deadline_extension = overdue + self.settings.resume_grace_seconds

    def _lose(self, run_id: str, why: str) -> None:
        active = self._active.pop(run_id, None)
        self._lost.add(run_id)
        if active is not None and active.task is not None:
            active.task.cancel()
        self.metrics.active_runs.set(len(self._active))
        log_event(log, "run.lease_lost", level=logging.WARNING, run_id=run_id, reason=why)

    # ---- the run's life ---------------------------------------------------------------------------------------

    def _spawn(self, active: _ActiveRun) -> None:
        run_id = active.run.run_id
        self._active[run_id] = active
        active.task = asyncio.create_task(self._drive(active), name=f"sync-{run_id}")
        active.task.add_done_callback(lambda _: self._forget(active))
        self.metrics.active_runs.set(len(self._active))

    def _forget(self, active: _ActiveRun) -> None:
        if self._active.get(active.run.run_id) is active:
            del self._active[active.run.run_id]
        self.metrics.active_runs.set(len(self._active))

    async def _drive(self, active: _ActiveRun) -> None:
        run = active.run
        try:
            try:
                if run.status is RunStatus.PENDING:
                    await self._trigger_export(active)
                if run.status is RunStatus.EXPORTING:
                    await self._await_export(active)
                if run.status is RunStatus.LOADING:
                    await LoadPhase(active, snowflake=self._snowflake, pool=self._snowflake_pool,
                                    export_prefix=self.settings.export_prefix, metrics=self.metrics,
                                    limits=LoadLimits(self.settings.load_timeout_seconds,
                                                      self.settings.resume_grace_seconds)).load()
                    await self._succeed(active)
            except RunCancelled as exc:
                await self._finish(active, RunStatus.CANCELLED, exc.detail)
            except RunFailed as exc:
                await self._finish(active, RunStatus.FAILED, exc.reason)
        except (LeaseLost, _StoreGone) as exc:
            if isinstance(exc, LeaseLost):
                self._lost.add(run.run_id)
            log_event(log, "run.dropped", level=logging.WARNING, run_id=run.run_id, reason=type(exc).__name__)
        except asyncio.CancelledError:
            log_event(log, "run.suspended", run_id=run.run_id, status=run.status)
            raise
        except Exception as exc:
            log_event(log, "run.crashed", level=logging.ERROR, exc_info=True, run_id=run.run_id)
            with contextlib.suppress(LeaseLost, _StoreGone):
                await self._finish(active, RunStatus.FAILED, f"internal error in syncbot: {type(exc).__name__}: {exc}")

    def _timeout(self, run: SyncRun) -> float:
        if run.run_timeout_seconds:
            return run.run_timeout_seconds
        definition = self.syncs.get(run.sync_name)
        return definition.run_timeout_seconds if definition else self.settings.run_timeout_seconds

    def _seconds_left(self, active: _ActiveRun) -> float:
        run = active.run
        started = run.started_at or utcnow()
        deadline = started + timedelta(seconds=self._timeout(run) + active.deadline_extension)
        return (deadline - utcnow()).total_seconds()

    @staticmethod
    def _raise_if_cancelled(active: _ActiveRun, detail: str) -> None:
        if active.cancel_by is not None:
            raise RunCancelled(detail)

    async def _trigger_export(self, active: _ActiveRun) -> None:
        run = active.run
        if run.started_at is None:
            run.started_at = utcnow()
            await self._save(active)
        self._raise_if_cancelled(active, "before the Databricks job was triggered")
        target = run.target
        databricks_run_id = await self._databricks_call(
            active, "run-now", self._databricks.run_now, target.job_id, run.run_id, dict(target.job_parameters))
        run.databricks_run_id = databricks_run_id
        try:  # only for the link; the poll loop reads the state for real
            state = await self._databricks_pool.run(self._databricks.get_run, databricks_run_id)
            run.run_page_url = state.run_page_url
        except Exception as exc:
            active.last_error = describe_error(exc)
        await self._move(active, RunStatus.EXPORTING)
        await active.step(f"Databricks job {target.job_id} triggered: run {databricks_run_id}", url=run.run_page_url)

    async def _await_export(self, active: _ActiveRun) -> None:
        run = active.run
        assert run.databricks_run_id is not None
        ask_first = active.resumed  # a restarted process asks Databricks before it waits or times anything out
        history = [] if active.resumed else await self.store.export_durations(run.target.table_key)
        for interval in self._schedule.intervals(history if len(history) >= 3 else []):
            if not ask_first:
                await active.sleep(min(interval, max(self._seconds_left(active), 0.0)))
            ask_first = False
            if active.cancel_by is not None:
                confirmed = await self._cancel_databricks_run(active)
                raise RunCancelled("the Databricks run was cancelled" if confirmed
                                   else "syncbot asked Databricks to cancel the run")
            try:
                state = await self._databricks_call(active, "runs/get", self._timed(self._databricks.get_run),
                                                    run.databricks_run_id)
            except RunFailed:
                # We can no longer follow the job: stop it rather than leave it writing files nobody loads.
                with contextlib.suppress(Exception):
                    await self._databricks_pool.run(self._databricks.cancel_run, run.databricks_run_id)
                raise
            await self._note_state(active, state)
            if state.terminal:
                if not state.succeeded:
                    link = f" (see {state.run_page_url})" if state.run_page_url else ""
                    raise RunFailed(f"Databricks run {run.databricks_run_id} ended {state.label}: "
                                    f"{state.message or 'no message from Databricks'}{link}")
                run.exported_at = utcnow()
                await active.step(f"Export finished: Parquet files are under {run.stage_path}")
                await self._move(active, RunStatus.LOADING)
                return
            if self._seconds_left(active) <= 0:
                await self._time_out(active, state)

    def _timed(self, call: Callable[..., Any]) -> Callable[..., Any]:
        """`call`, recording how long it waited for a worker thread (a poll that is late is a starved pool)."""
        due = time.monotonic()

        def timed(*args: Any) -> Any:
            self.metrics.poll_lateness.observe(time.monotonic() - due)
            return call(*args)
        return timed

    async def _time_out(self, active: _ActiveRun, state: JobRunState) -> None:
        run = active.run
        confirmed = await self._cancel_databricks_run(active)
        queued = " (it was still queued behind another run of the job)" if state.queued else ""
        raise RunFailed(
            f"timed out after {format_duration(self._timeout(run))} waiting for Databricks run "
            f"{run.databricks_run_id} (last state {state.label}){queued}; "
            + ("the Databricks run was cancelled" if confirmed else "syncbot asked Databricks to cancel it")
            + (f". Databricks' last answer was an error: {active.last_error}" if active.last_error else ""))

    async def _note_state(self, active: _ActiveRun, state: JobRunState) -> None:
        run = active.run
        if state.run_page_url and not run.run_page_url:
            run.run_page_url = state.run_page_url
        if state.label == run.databricks_state:
            return
        run.databricks_state = state.label
        if state.queued:
            detail = f" ({state.message})" if state.message else ""
            await active.step(f"Databricks run {run.databricks_run_id} is {state.state}: queued behind another run "
                              f"of job {run.target.job_id}{detail}; the wait counts against the run's time limit")
        else:
            detail = f": {state.message}" if state.message and state.terminal else ""
            await active.step(f"Databricks run {run.databricks_run_id} is {state.label}{detail}")

    async def _cancel_databricks_run(self, active: _ActiveRun) -> bool:
        """Ask Databricks to cancel, then wait (bounded) until it confirms the run has ended (True)."""
        run = active.run
        assert run.databricks_run_id is not None
        try:
            await self._databricks_pool.run(self._databricks.cancel_run, run.databricks_run_id)
            self.metrics.call("databricks", "runs/cancel")
        except Exception as exc:
            self.metrics.call("databricks", "runs/cancel", failed=True)
            active.last_error = describe_error(exc)
            await active.step(f"Could not cancel Databricks run {run.databricks_run_id}: {describe_error(exc)}")
            return False
        loop = asyncio.get_running_loop()
        give_up_at = loop.time() + CANCEL_CONFIRM_SECONDS
        while loop.time() < give_up_at:
            try:
                state = await self._databricks_pool.run(self._databricks.get_run, run.databricks_run_id)
            except Exception as exc:
                active.last_error = describe_error(exc)
                await active.step(f"Asked Databricks to cancel run {run.databricks_run_id}, but could not confirm "
                                  f"it ended ({describe_error(exc)}); check it in Databricks")
                return False
            await self._note_state(active, state)
            if state.terminal:
                return True
            await asyncio.sleep(min(2.0, self._schedule.initial_seconds))
        await active.step(f"Databricks did not confirm the cancel of run {run.databricks_run_id} "
                          f"within {format_duration(CANCEL_CONFIRM_SECONDS)}; check it in Databricks")
        return False

    async def _databricks_call(self, active: _ActiveRun, what: str, call: Callable[..., Any], *args: Any) -> Any:
        """One API call, retried with backoff on transient failures (429, 5xx, dropped connections) until the
        run's deadline; anything else fails the run at once (fail fast, no re-run)."""
        run = active.run
        delay = 1.0
        announced = False
        while True:
            try:
                result = await self._databricks_pool.run(call, *args)
                self.metrics.call("databricks", what)
                active.last_error = None
                return result
            except Exception as exc:
                self.metrics.call("databricks", what, failed=True)
                reason = describe_error(exc)
                active.last_error = reason
                if not is_transient(exc):
                    raise RunFailed(f"Databricks {what} failed: {reason}{fix_hint(what, exc, run.target.job_id)}") \
                        from None
                log_event(log, "databricks.retry", level=logging.WARNING, run_id=run.run_id, call=what, error=reason)
                if self._seconds_left(active) <= 0:
                    raise RunFailed(f"Databricks {what} kept failing ({reason}); gave up after "
                                    f"{format_duration(self._timeout(run))}, the run's time limit") from None
                if not announced:
                    await active.step(f"Databricks {what} failed ({reason}); retrying")
                    announced = True
                await active.sleep(min(delay, max(self._seconds_left(active), 0.0)))
                if active.cancel_by is not None:
                    raise RunCancelled("cancelled while Databricks was not answering") from None
                delay = min(delay * 2, 30.0)

    async def _succeed(self, active: _ActiveRun) -> None:
        run = active.run
        target = run.target
        run.move_to(RunStatus.SUCCESS)
        for warning in run.warnings[-2:]:
            run.steps.append(StepLog(at=utcnow(), message=f"Warning: {warning}"))
        verb = {"append": "Loaded", "replace": "Replaced the rows of", "merge": "Merged"}[target.mode.value]
        where = "into " if target.mode.value != "replace" else ""
        loaded = (f"{verb} {where}{target.table_name} with {run.rows_loaded or 0:,} rows from "
                  f"{run.files_loaded or 0} file(s)" if target.mode.value != "append" else
                  f"Loaded {run.rows_loaded or 0:,} rows from {run.files_loaded or 0} file(s) into {target.table_name}")
        await self._finish(active, RunStatus.SUCCESS, f"{loaded} in {format_duration(run.elapsed_seconds())}")

    # ---- recording ---------------------------------------------------------------------------------------------

    async def _save(self, active: _ActiveRun, *, release: bool = False) -> None:
        """A fenced write; a store that keeps failing for a whole lease period makes this process let go."""
        loop = asyncio.get_running_loop()
        give_up_at = loop.time() + self.settings.lease_seconds
        delay = 0.25
        while True:
            try:
                await self.store.save(active.run, release=release)
                return
            except LeaseLost:
                self._lost.add(active.run.run_id)
                raise
            except StoreError as exc:
                log_event(log, "store.write_failed", level=logging.WARNING, run_id=active.run.run_id, error=str(exc))
                if loop.time() > give_up_at:
                    raise _StoreGone(str(exc)) from None
                await asyncio.sleep(delay)
                delay = min(delay * 2, STORE_RETRY_MAX_SECONDS)

    async def _move(self, active: _ActiveRun, status: RunStatus) -> None:
        run = active.run
        run.move_to(status)
        await self._save(active)
        log_event(log, "run.status", run_id=run.run_id, status=status, databricks_run_id=run.databricks_run_id)
        self._emit(RunEvent(run, "status"))

    async def _step(self, active: _ActiveRun, message: str, url: str | None = None, actor: str | None = None) -> None:
        run = active.run
        step = StepLog(at=utcnow(), message=message, url=url, actor=actor)
        run.steps.append(step)
        await self._save(active)
        log_event(log, "run.step", run_id=run.run_id, message=message)
        self._emit(RunEvent(run, "step", step))

    async def _finish(self, active: _ActiveRun, status: RunStatus, reason: str) -> None:
        """The final write: status, reason and last step in one fenced write that also gives the lease up. A store
        error here is retried; if the store stays away the run is claimed again later (and finished then)."""
        run = active.run
        if run.status is not status:
            if status is not RunStatus.SUCCESS:
                run.error = reason
            if status is RunStatus.CANCELLED:
                run.cancelled_by = active.cancel_by
            run.move_to(status)
        step = StepLog(at=utcnow(), message=f"{status.value}: {reason}",
                       actor=run.cancelled_by if status is RunStatus.CANCELLED else None)
        run.steps.append(step)
        await self._save(active, release=True)
        self._record_outcome(run)
        log_event(log, "run.status", run_id=run.run_id, status=status, rows_loaded=run.rows_loaded, error=run.error)
        self._emit(RunEvent(run, "status"))
        self._emit(RunEvent(run, "step", step))

    def _record_outcome(self, run: SyncRun) -> None:
        self.metrics.runs_finished.labels(run.sync_name, run.status.value).inc()
        self.metrics.run_seconds.labels(run.sync_name, run.status.value).observe(run.elapsed_seconds())
        if run.status is RunStatus.SUCCESS:
            if (export := run.export_seconds) is not None:
                self.metrics.phase_seconds.labels(run.sync_name, "export").observe(export)
            if (load := run.load_seconds) is not None:
                self.metrics.phase_seconds.labels(run.sync_name, "load").observe(load)

    def _emit(self, event: RunEvent) -> None:
        self._recent_cache.clear()
        self._latest_cache.clear()
        for observer in list(self._observers):
            try:
                observer(event)
            except Exception:  # an observer must never break the run
                log_event(log, "observer.failed", level=logging.ERROR, exc_info=True, run_id=event.run.run_id)
