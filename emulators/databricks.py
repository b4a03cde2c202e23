"""Databricks stand-in: the Jobs API shapes databricks-sdk speaks, with jobs whose SQL really runs.

A job's export statement (`INSERT OVERWRITE DIRECTORY 's3://…' USING PARQUET <query>`) runs against a local
DuckDB workspace, and the Parquet lands in the S3 emulator only when the run succeeds.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import threading
import time
import tomllib
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
from aiohttp import web

from .s3 import S3Emulator

JOBS_FILE = Path(__file__).with_name("jobs.toml")
_EXPORT = re.compile(r"^\s*INSERT\s+OVERWRITE\s+DIRECTORY\s+'(?P<path>s3://[^']+)'\s+USING\s+PARQUET\s+"
                     r"(?:OPTIONS\s*\([^)]*\)\s+)?(?P<query>.+?);?\s*$", re.IGNORECASE | re.DOTALL)
_PARAMETER = re.compile(r"\{\{\s*job\.parameters\.([A-Za-z0-9_]+)\s*\}\}")
OUTCOMES = ("success", "corrupt", "fail", "timedout", "canceled", "internal_error", "skipped", "hang")

_CITIES = [("Seattle", "US"), ("Denver", "US"), ("Chicago", "US"), ("Boston", "US"), ("Austin", "US"),
           ("Phoenix", "US"), ("Miami", "US"), ("Atlanta", "US"), ("Portland", "US"), ("Toronto", "CA"),
           ("Vancouver", "CA"), ("Montreal", "CA"), ("London", "GB"), ("Dublin", "IE"), ("Paris", "FR"),
           ("Berlin", "DE"), ("Madrid", "ES"), ("Rome", "IT"), ("Tokyo", "JP"), ("Sydney", "AU")]


_FORECAST_VIEW = """
    CREATE VIEW samples.accuweather.{name} AS
    WITH days AS (SELECT range AS day_index, DATE '2000-01-01' + CAST(range AS INTEGER) AS date FROM range({days}))
    SELECT c.city_name, c.country_code, d.date,
           round(55 + 25 * sin(2 * pi() * dayofyear(d.date) / 365.25) + (c.city_id * 7) % 11, 1) AS temperature_max_f,
           round(38 + 22 * sin(2 * pi() * dayofyear(d.date) / 365.25) + (c.city_id * 5) % 9, 1) AS temperature_min_f,
           round(((d.day_index * 31 + c.city_id * 17) % 100) / 40.0, 2) AS precipitation_in,
           CAST(40 + (d.day_index * 13 + c.city_id * 29) % 55 AS INTEGER) AS humidity_pct,
           ['Sunny', 'Partly cloudy', 'Cloudy', 'Showers', 'Thunderstorms', 'Snow', 'Fog']
               [1 + (d.day_index * 7 + c.city_id) % 7] AS conditions,
           CAST(d.date - INTERVAL 1 DAY AS TIMESTAMP) + INTERVAL 6 HOUR AS forecast_issued_at
    FROM days d CROSS JOIN samples.accuweather.cities c
    ORDER BY d.date, c.city_id
"""


def create_workspace() -> duckdb.DuckDBPyConnection:
    """A DuckDB database with a deterministic stand-in for samples.accuweather.forecast_daily_calendar_imperial:
    20 cities × every day of 2000–2099 (730 k rows, computed on read, so any LIMIT is cheap), and an `_xl`
    twin of 5 M rows (20 cities × 250 000 days) for volume benchmarks."""
    con = duckdb.connect()
    con.execute("ATTACH ':memory:' AS samples")
    con.execute("CREATE SCHEMA samples.accuweather")
    cities = ", ".join(f"({i}, '{name}', '{code}')" for i, (name, code) in enumerate(_CITIES))
    con.execute(f"CREATE TABLE samples.accuweather.cities (city_id INTEGER, city_name VARCHAR, country_code VARCHAR);"
                f"INSERT INTO samples.accuweather.cities VALUES {cities}")
    for name, days in (("forecast_daily_calendar_imperial", 36525), ("forecast_daily_calendar_imperial_xl", 250_000)):
        con.execute(_FORECAST_VIEW.format(name=name, days=days))
    return con


@dataclass
class JobSpec:
    job_id: int
    name: str
    sql: str
    duration_seconds: float = 2.0
    outcome: str = "success"  # a test switch: one of OUTCOMES
    message: str = ""  # the state message for a failing outcome


@dataclass
class EmulatedRun:
    run_id: int
    job: JobSpec
    parameters: dict[str, str]
    life_cycle_state: str = "PENDING"
    result_state: str | None = None
    state_message: str = ""
    start_time: int = field(default_factory=lambda: int(time.time() * 1000))
    end_time: int = 0
    cancel_requested: bool = False
    files: list[str] = field(default_factory=list)


@dataclass
class InjectedFault:
    status: int
    error_code: str
    message: str
    remaining: int
    retry_after: float | None = None


def load_jobs(path: Path = JOBS_FILE) -> dict[int, JobSpec]:
    with path.open("rb") as file:
        config = tomllib.load(file)
    return {int(job_id): JobSpec(job_id=int(job_id), name=spec["name"], sql=spec["sql"],
                                 duration_seconds=float(spec.get("duration_seconds", 2.0)))
            for job_id, spec in config["jobs"].items()}


class DatabricksEmulator:
    def __init__(self, s3: S3Emulator, *, token: str = "dapi-local-stack",
                 jobs: dict[int, JobSpec] | None = None) -> None:
        self.s3 = s3
        self.token = token
        self.jobs = jobs if jobs is not None else load_jobs()
        self.runs: dict[int, EmulatedRun] = {}
        self.calls: list[tuple[str, str]] = []  # (method, path) of every API call, for tests and benchmarks
        self._by_token: dict[tuple[int, str], int] = {}
        self._faults: dict[str, InjectedFault] = {}
        self.run_now_delay_seconds = 0.0  # a test switch: run-now answers late (its run is created after the wait)
        self._ids = itertools.count(900_001)
        self._workspace = create_workspace()
        self._workspace.register_filesystem(s3.filesystem())
        self._workspace_lock = threading.Lock()
        self._tasks: set[asyncio.Task[None]] = set()
        self.base_url = ""

    # ---- test switches ------------------------------------------------------------------------------------------

    def inject(self, endpoint: str, *, status: int, error_code: str, message: str, times: int = 1,
               retry_after: float | None = None) -> None:
        """The next `times` calls to `endpoint` ('run-now', 'runs/get', 'runs/cancel') answer with this error."""
        self._faults[endpoint] = InjectedFault(status, error_code, message, times, retry_after)

    def throttle(self, endpoint: str, *, times: int, retry_after: float = 1.0) -> None:
        self.inject(endpoint, status=429, error_code="TOO_MANY_REQUESTS", message="Too many requests. Please retry.",
                    times=times, retry_after=retry_after)

    def set_outcome(self, job_id: int, outcome: str, message: str = "", duration_seconds: float | None = None) -> None:
        assert outcome in OUTCOMES, outcome
        job = self.jobs[job_id]
        job.outcome, job.message = outcome, message
        if duration_seconds is not None:
            job.duration_seconds = duration_seconds

    def reset(self) -> None:
        """Back to the configured jobs with no faults (between tests)."""
        self.jobs = load_jobs()
        self._faults.clear()
        self.run_now_delay_seconds = 0.0

    def runs_for(self, run_id: str) -> list[EmulatedRun]:
        """The Databricks runs started for one sync run id."""
        return [run for run in self.runs.values() if run.parameters.get("run_id") == run_id]

    def calls_to(self, endpoint: str) -> int:
        return sum(1 for _, path in self.calls if path.endswith(endpoint))

    # ---- the HTTP app -------------------------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._auth_and_faults])
        app.router.add_get("/.well-known/databricks-config", lambda _: web.Response(status=404))
        app.router.add_get("/api/2.0/preview/scim/v2/Me", self._me)
        for version in ("2.1", "2.2"):
            app.router.add_post(f"/api/{version}/jobs/run-now", self._run_now)
            app.router.add_get(f"/api/{version}/jobs/runs/get", self._runs_get)
            app.router.add_post(f"/api/{version}/jobs/runs/cancel", self._runs_cancel)
        return app

    @web.middleware
    async def _auth_and_faults(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if request.path.startswith("/.well-known"):
            return await handler(request)
        self.calls.append((request.method, request.path))
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return _error(401, "UNAUTHENTICATED", "Invalid access token.")
        endpoint = request.path.split("/jobs/", 1)[-1]
        fault = self._faults.get(endpoint)
        if fault and fault.remaining > 0:
            fault.remaining -= 1
            headers = {"Retry-After": f"{fault.retry_after:g}"} if fault.retry_after is not None else None
            return _error(fault.status, fault.error_code, fault.message, headers)
        return await handler(request)

    async def _me(self, request: web.Request) -> web.Response:
        return web.json_response({"id": "1000", "userName": "syncbot@example.com", "active": True})

    async def _run_now(self, request: web.Request) -> web.Response:
        body = await request.json()
        await asyncio.sleep(self.run_now_delay_seconds)
        job_id = body.get("job_id")
        if not isinstance(job_id, int):
            return _error(400, "INVALID_PARAMETER_VALUE", "Missing required field: job_id")
        job = self.jobs.get(job_id)
        if job is None:
            return _error(400, "INVALID_PARAMETER_VALUE", f"Job {job_id} does not exist.")
        token = body.get("idempotency_token")
        if token and len(token) > 64:
            return _error(400, "INVALID_PARAMETER_VALUE", "idempotency_token must be at most 64 characters")
        if token and (job_id, token) in self._by_token:
            return web.json_response({"run_id": self._by_token[(job_id, token)]})
        parameters = {str(k): str(v) for k, v in (body.get("job_parameters") or {}).items()}
        run = EmulatedRun(run_id=next(self._ids), job=job, parameters=parameters)
        self.runs[run.run_id] = run
        if token:
            self._by_token[(job_id, token)] = run.run_id
        task = asyncio.create_task(self._execute(run))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return web.json_response({"run_id": run.run_id, "number_in_job": run.run_id})

    async def _runs_get(self, request: web.Request) -> web.Response:
        run = self.runs.get(int(request.query.get("run_id", "0") or 0))
        if run is None:
            return _error(400, "INVALID_PARAMETER_VALUE", f"Run {request.query.get('run_id')} does not exist.")
        return web.json_response(self._describe(run))

    async def _runs_cancel(self, request: web.Request) -> web.Response:
        body = await request.json()
        run = self.runs.get(int(body.get("run_id") or 0))
        if run is None:
            return _error(400, "INVALID_PARAMETER_VALUE", f"Run {body.get('run_id')} does not exist.")
        if run.life_cycle_state not in ("TERMINATED", "SKIPPED", "INTERNAL_ERROR"):
            run.cancel_requested = True
            run.life_cycle_state = "TERMINATING"
        return web.json_response({})

    def _describe(self, run: EmulatedRun) -> dict[str, Any]:
        state: dict[str, Any] = {"life_cycle_state": run.life_cycle_state, "state_message": run.state_message,
                                 "user_cancelled_or_timedout": run.result_state in ("CANCELED", "TIMEDOUT")}
        if run.result_state:
            state["result_state"] = run.result_state
        status: dict[str, Any] = {"state": _status_state(run.life_cycle_state)}
        if run.end_time:
            status["termination_details"] = {"code": run.result_state or run.life_cycle_state,
                                             "type": "SUCCESS" if run.result_state == "SUCCESS" else "CLIENT_ERROR",
                                             "message": run.state_message}
        return {
            "job_id": run.job.job_id, "run_id": run.run_id, "number_in_job": run.run_id,
            "run_name": run.job.name, "creator_user_name": "syncbot@example.com",
            "run_page_url": f"{self.base_url}/jobs/{run.job.job_id}/runs/{run.run_id}",
            "job_parameters": [{"name": k, "value": v} for k, v in run.parameters.items()],
            "state": state, "status": status, "start_time": run.start_time, "end_time": run.end_time,
            "run_type": "JOB_RUN", "trigger": "ONE_TIME",
        }

    # ---- running a job ------------------------------------------------------------------------------------------

    async def _execute(self, run: EmulatedRun) -> None:
        job = run.job
        if job.outcome == "skipped":
            self._end(run, "SKIPPED", None, job.message or "An active run for this job already exists; "
                      "max_concurrent_runs is 1, so this run was skipped.")
            return
        if await self._phase(run, "PENDING", max(0.05, job.duration_seconds * 0.2)):
            return
        if job.outcome == "hang":
            await self._phase(run, "RUNNING", float("inf"))
            return
        if await self._phase(run, "RUNNING", job.duration_seconds):
            return
        if job.outcome in ("success", "corrupt"):
            try:
                run.files = await asyncio.to_thread(self.export, job.sql, run.parameters)
            except Exception as exc:
                self._end(run, "TERMINATED", "FAILED", f"[SQL_EXECUTION_ERROR] {exc}")
                return
            if job.outcome == "corrupt":  # a test switch: a truncated part file beside the good one
                bucket, _, key = run.files[0].removeprefix("s3://").partition("/")
                self.s3.client().put_object(Bucket=bucket, Key=key.replace("part-00000", "part-00001"),
                                            Body=b"PAR1 this is not parquet")
            self._end(run, "TERMINATED", "SUCCESS", "")
        elif job.outcome == "internal_error":
            self._end(run, "INTERNAL_ERROR", "FAILED", job.message or "Cluster failed to start: "
                      "INTERNAL_ERROR: the driver became unresponsive.")
        else:
            result = {"fail": "FAILED", "timedout": "TIMEDOUT", "canceled": "CANCELED"}[job.outcome]
            default = {"FAILED": "Task export failed with message: [TABLE_OR_VIEW_NOT_FOUND] The table or view "
                                 "`samples`.`accuweather`.`missing` cannot be found.",
                       "TIMEDOUT": "Run timed out after the job's timeout_seconds.",
                       "CANCELED": "Run cancelled by a workspace admin."}[result]
            self._end(run, "TERMINATED", result, job.message or default)

    async def _phase(self, run: EmulatedRun, life_cycle_state: str, seconds: float) -> bool:
        """Stay in a state for `seconds`; True when the run was cancelled meanwhile."""
        if not run.cancel_requested:
            run.life_cycle_state = life_cycle_state
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if run.cancel_requested:
                await asyncio.sleep(0.1)  # TERMINATING for a moment, as the real service does
                self._end(run, "TERMINATED", "CANCELED", "Run cancelled by user.")
                return True
            await asyncio.sleep(min(0.05, max(0.0, deadline - time.monotonic())))
        return run.cancel_requested

    def _end(self, run: EmulatedRun, life_cycle_state: str, result_state: str | None, message: str) -> None:
        run.life_cycle_state, run.result_state, run.state_message = life_cycle_state, result_state, message
        run.end_time = int(time.time() * 1000)

    def export(self, sql: str, parameters: dict[str, str]) -> list[str]:
        """Run an export statement: overwrite the directory, write one Parquet part file, return its key."""
        statement = _PARAMETER.sub(lambda m: parameters.get(m.group(1), ""), sql)
        match = _EXPORT.match(statement)
        if not match:
            raise ValueError("only `INSERT OVERWRITE DIRECTORY 's3://…' USING PARQUET <query>` is supported here")
        directory = match.group("path").rstrip("/") + "/"
        bucket, _, prefix = directory.removeprefix("s3://").partition("/")
        client = self.s3.client()
        for key in self.s3.keys(prefix) if bucket == self.s3.bucket else []:
            client.delete_object(Bucket=bucket, Key=key)  # OVERWRITE: the directory holds only this export
        target = f"{directory}part-00000-{uuid.uuid4()}-c000.snappy.parquet"
        with self._workspace_lock:
            self._workspace.execute(f"COPY ({match.group('query')}) TO '{target}' (FORMAT PARQUET, COMPRESSION SNAPPY)")
        return [target]


def _status_state(life_cycle_state: str) -> str:
    return {"PENDING": "PENDING", "RUNNING": "RUNNING", "TERMINATING": "TERMINATING",
            "TERMINATED": "TERMINATED", "SKIPPED": "TERMINATED", "INTERNAL_ERROR": "TERMINATED"}.get(
        life_cycle_state, "QUEUED")


def _error(status: int, error_code: str, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"error_code": error_code, "message": message, "details": []}, status=status,
                             headers=headers)
