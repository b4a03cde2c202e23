"""Databricks stand-in: the Jobs API shapes databricks-sdk speaks, with jobs whose SQL really runs.

A job's export statement (`INSERT OVERWRITE DIRECTORY 's3://…' USING PARQUET <query>`) runs against a local
DuckDB workspace and lands in the S3 emulator the way a Spark write does: several
`part-<n>-<uuid>-c000.snappy.parquet` files and the markers `_started_<txn>` (empty), `_committed_<txn>` (JSON
naming the part files) and `_SUCCESS` (empty). As on Databricks with API 2.2, jobs queue by default: a run-now
while another run of the job is active gives a QUEUED run. `runs/get` answers both the deprecated `state` and
the 2.2 `status` with real termination codes.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import math
import random
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
OUTCOMES = ("success", "corrupt", "fail", "timedout", "canceled", "internal_error", "hang", "unknown_state")
ROWS_PER_PART = 250_000  # a Spark task writes a part file; an export is split over at least two

_CITIES = [("Seattle", "US", 47.61, -122.33), ("Denver", "US", 39.74, -104.99), ("Chicago", "US", 41.88, -87.63),
           ("Boston", "US", 42.36, -71.06), ("Austin", "US", 30.27, -97.74), ("Phoenix", "US", 33.45, -112.07),
           ("Miami", "US", 25.76, -80.19), ("Atlanta", "US", 33.75, -84.39), ("Portland", "US", 45.52, -122.68),
           ("Toronto", "CA", 43.65, -79.38), ("Vancouver", "CA", 49.28, -123.12), ("Montreal", "CA", 45.50, -73.57),
           ("London", "GB", 51.51, -0.13), ("Dublin", "IE", 53.35, -6.26), ("Paris", "FR", 48.86, 2.35),
           ("Berlin", "DE", 52.52, 13.40), ("Madrid", "ES", 40.42, -3.70), ("Rome", "IT", 41.90, 12.50),
           ("Tokyo", "JP", 35.68, 139.69), ("Sydney", "AU", -33.87, 151.21)]

# The real table's columns (seen in public notebooks); `SELECT *` on Databricks brings many more.
_FORECAST_VIEW = """
    CREATE VIEW samples.accuweather.{name} AS
    WITH days AS (SELECT range AS day_index, DATE '2000-01-01' + CAST(range AS INTEGER) AS date FROM range({days}))
    SELECT c.city_name, c.country_code, d.date, c.latitude, c.longitude,
           round(55 + 25 * sin(2 * pi() * dayofyear(d.date) / 365.25) + (c.city_id * 7) % 11, 1) AS temperature_max,
           round(38 + 22 * sin(2 * pi() * dayofyear(d.date) / 365.25) + (c.city_id * 5) % 9, 1) AS temperature_min,
           round(46.5 + 23.5 * sin(2 * pi() * dayofyear(d.date) / 365.25) + (c.city_id * 6) % 10, 1)
               AS temperature_avg,
           CAST(40 + (d.day_index * 13 + c.city_id * 29) % 55 AS DOUBLE) AS humidity_relative_avg,
           CAST((d.day_index * 31 + c.city_id * 17) % 100 AS INTEGER) AS precipitation_probability,
           CAST((d.day_index * 23 + c.city_id * 11) % 90 AS INTEGER) AS rain_probability,
           CAST((d.day_index * 7 + c.city_id * 3) % 100 AS DOUBLE) AS cloud_cover_perc_avg
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
    cities = ", ".join(f"({i}, '{name}', '{code}', {lat}, {lon})" for i, (name, code, lat, lon) in enumerate(_CITIES))
    con.execute("CREATE TABLE samples.accuweather.cities (city_id INTEGER, city_name VARCHAR, country_code VARCHAR, "
                f"latitude DOUBLE, longitude DOUBLE); INSERT INTO samples.accuweather.cities VALUES {cities}")
    for name, days in (("forecast_daily_calendar_imperial", 36525), ("forecast_daily_calendar_imperial_xl", 250_000)):
        con.execute(_FORECAST_VIEW.format(name=name, days=days))
    return con


@dataclass
class JobSpec:
    job_id: int
    name: str
    sql: str
    duration_seconds: float = 2.0
    parameters: tuple[str, ...] = ("run_id",)  # the job parameters the job declares
    max_concurrent_runs: int = 1
    queue: bool = True  # API 2.2 jobs queue by default
    permission: str = "CAN_MANAGE_RUN"  # what the bot's user may do on the job ("" for nothing)
    outcome: str = "success"  # a test switch: one of OUTCOMES
    message: str = ""  # the state message for a failing outcome

    @property
    def notebook_path(self) -> str:
        return f"/Workspace/Shared/syncbot/job_{self.job_id}"


@dataclass
class EmulatedRun:
    run_id: int
    job: JobSpec
    parameters: dict[str, str]
    life_cycle_state: str = "PENDING"
    result_state: str | None = None
    code: str | None = None  # status.termination_details.code
    kind: str | None = None  # status.termination_details.type
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
                                 duration_seconds=float(spec.get("duration_seconds", 2.0)),
                                 parameters=tuple(spec.get("parameters", ["run_id"])))
            for job_id, spec in config["jobs"].items()}


def notebook_source(job: JobSpec) -> str:
    """The job's task as the README's notebook shape (what `doctor` reads to compare the export path)."""
    statement = _PARAMETER.sub(lambda m: "{" + m.group(1) + "}", job.sql.strip())
    widgets = "\n".join(f'{name} = dbutils.widgets.get("{name}")' for name in job.parameters)
    return f'# Databricks notebook source\n{widgets}\nspark.sql(f"""\n{statement}\n""")\n'


class DatabricksEmulator:
    def __init__(self, s3: S3Emulator, *, token: str = "dapi-local-stack", jobs: dict[int, JobSpec] | None = None,
                 job_seconds: float | None = None) -> None:
        self.s3 = s3
        self.token = token
        self.job_seconds = job_seconds  # every job's duration, when set (tests: short jobs)
        self.jobs = jobs if jobs is not None else self._configured_jobs()
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
        """The next `times` calls to `endpoint` ('run-now', 'runs/get', 'runs/cancel', 'get') answer this error."""
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

    def _configured_jobs(self) -> dict[int, JobSpec]:
        jobs = load_jobs()
        if self.job_seconds is not None:
            for job in jobs.values():
                job.duration_seconds = self.job_seconds
        return jobs

    def reset(self) -> None:
        """Back to the configured jobs with no faults (between tests)."""
        self.jobs = self._configured_jobs()
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
        app.router.add_get("/api/2.0/permissions/jobs/{job_id}", self._permissions)
        app.router.add_get("/api/2.0/workspace/export", self._workspace_export)
        for version in ("2.1", "2.2"):
            app.router.add_post(f"/api/{version}/jobs/run-now", self._run_now)
            app.router.add_get(f"/api/{version}/jobs/runs/get", self._runs_get)
            app.router.add_post(f"/api/{version}/jobs/runs/cancel", self._runs_cancel)
            app.router.add_get(f"/api/{version}/jobs/get", self._jobs_get)
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

    def _job(self, value: Any) -> JobSpec | None:
        try:
            return self.jobs.get(int(value))
        except (TypeError, ValueError):
            return None

    async def _jobs_get(self, request: web.Request) -> web.Response:
        job = self._job(request.query.get("job_id"))
        if job is None:
            return _error(400, "INVALID_PARAMETER_VALUE", f"Job {request.query.get('job_id')} does not exist.")
        if not job.permission:
            return _error(403, "PERMISSION_DENIED", f"User syncbot@example.com does not have View permission on "
                          f"job {job.job_id}.")
        settings = {
            "name": job.name, "max_concurrent_runs": job.max_concurrent_runs, "queue": {"enabled": job.queue},
            "parameters": [{"name": name, "default": "manual"} for name in job.parameters],
            "tasks": [{"task_key": "export", "notebook_task": {"notebook_path": job.notebook_path,
                                                                "source": "WORKSPACE"}}],
            "environments": [{"environment_key": "default", "spec": {"environment_version": "2"}}],
        }
        return web.json_response({"job_id": job.job_id, "creator_user_name": "admin@example.com",
                                  "run_as_user_name": "syncbot@example.com", "settings": settings})

    async def _permissions(self, request: web.Request) -> web.Response:
        job = self._job(request.match_info["job_id"])
        if job is None:
            return _error(404, "RESOURCE_DOES_NOT_EXIST", f"Job {request.match_info['job_id']} does not exist.")
        acl = [{"group_name": "admins", "all_permissions": [{"permission_level": "CAN_MANAGE", "inherited": True}]}]
        if job.permission:
            acl.append({"user_name": "syncbot@example.com",
                        "all_permissions": [{"permission_level": job.permission, "inherited": False}]})
        return web.json_response({"object_id": f"/jobs/{job.job_id}", "object_type": "job",
                                  "access_control_list": acl})

    async def _workspace_export(self, request: web.Request) -> web.Response:
        path = request.query.get("path", "")
        job = next((job for job in self.jobs.values() if job.notebook_path == path), None)
        if job is None:
            return _error(404, "RESOURCE_DOES_NOT_EXIST", f"Path ({path}) doesn't exist.")
        content = base64.b64encode(notebook_source(job).encode()).decode()
        return web.json_response({"content": content, "file_type": "py"})

    async def _run_now(self, request: web.Request) -> web.Response:
        body = await request.json()
        await asyncio.sleep(self.run_now_delay_seconds)
        job_id = body.get("job_id")
        if not isinstance(job_id, int):
            return _error(400, "INVALID_PARAMETER_VALUE", "Missing required field: job_id")
        job = self.jobs.get(job_id)
        if job is None:
            return _error(400, "INVALID_PARAMETER_VALUE", f"Job {job_id} does not exist.")
        if job.permission not in ("CAN_MANAGE_RUN", "CAN_MANAGE", "IS_OWNER"):
            return _error(403, "PERMISSION_DENIED", f"User syncbot@example.com does not have Manage Run "
                          f"permissions on job {job_id}.")
        token = body.get("idempotency_token")
        if token and len(token) > 64:
            return _error(400, "INVALID_PARAMETER_VALUE", "idempotency_token must be at most 64 characters")
        if token and (job_id, token) in self._by_token:
            run_id = self._by_token[(job_id, token)]
            return web.json_response({"run_id": run_id, "number_in_job": run_id})
        parameters = {str(k): str(v) for k, v in (body.get("job_parameters") or {}).items()}
        undeclared = sorted(set(parameters) - set(job.parameters))
        if undeclared:
            return _error(400, "INVALID_PARAMETER_VALUE", f"Job parameter(s) {', '.join(undeclared)} are not "
                          f"defined for job {job_id}.")
        run = EmulatedRun(run_id=next(self._ids), job=job, parameters=parameters)
        self.runs[run.run_id] = run
        if token:
            self._by_token[(job_id, token)] = run.run_id
        task = asyncio.create_task(self._execute(run))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return web.json_response({"run_id": run.run_id, "number_in_job": run.run_id})

    async def _runs_get(self, request: web.Request) -> web.Response:
        try:
            run = self.runs.get(int(request.query.get("run_id", "0") or 0))
        except ValueError:
            run = None
        if run is None:
            return _error(400, "INVALID_PARAMETER_VALUE", f"Run {request.query.get('run_id')} does not exist.")
        return web.json_response(self._describe(run))

    async def _runs_cancel(self, request: web.Request) -> web.Response:
        body = await request.json()
        run = self.runs.get(int(body.get("run_id") or 0))
        if run is None:
            return _error(400, "INVALID_PARAMETER_VALUE", f"Run {body.get('run_id')} does not exist.")
        if run.life_cycle_state in ("QUEUED",):
            self._end(run, "TERMINATED", "CANCELED", "USER_CANCELED", "SUCCESS", "Run cancelled by user.")
        elif run.life_cycle_state not in ("TERMINATED", "SKIPPED", "INTERNAL_ERROR"):
            run.cancel_requested = True
            run.life_cycle_state = "TERMINATING"
        return web.json_response({})

    def _describe(self, run: EmulatedRun) -> dict[str, Any]:
        state: dict[str, Any] = {"life_cycle_state": run.life_cycle_state, "state_message": run.state_message,
                                 "user_cancelled_or_timedout": run.result_state in ("CANCELED", "TIMEDOUT")}
        if run.result_state:
            state["result_state"] = run.result_state
        status: dict[str, Any] = {"state": _status_state(run)}
        if run.end_time:
            status["termination_details"] = {"code": run.code, "type": run.kind, "message": run.state_message}
        if run.life_cycle_state == "QUEUED":
            status["queue_details"] = {"code": "MAX_CONCURRENT_RUNS_REACHED", "message":
                                       f"The job has reached its limit of {run.job.max_concurrent_runs} concurrent "
                                       "run(s); this run starts when an active run ends."}
        return {
            "job_id": run.job.job_id, "run_id": run.run_id, "number_in_job": run.run_id,
            "run_name": run.job.name, "creator_user_name": "syncbot@example.com",
            "run_page_url": f"{self.base_url}/jobs/{run.job.job_id}/runs/{run.run_id}",
            "job_parameters": [{"name": k, "value": v} for k, v in run.parameters.items()],
            "state": state, "status": status, "start_time": run.start_time, "end_time": run.end_time,
            "run_type": "JOB_RUN", "trigger": "ONE_TIME",
        }

    # ---- running a job ------------------------------------------------------------------------------------------

    def _running(self, job: JobSpec, run: EmulatedRun) -> int:
        return sum(1 for other in self.runs.values() if other.job.job_id == job.job_id and other is not run
                   and other.life_cycle_state in ("PENDING", "RUNNING", "TERMINATING"))

    async def _wait_in_queue(self, run: EmulatedRun) -> bool:
        """FIFO: a run starts when the job has room and no earlier queued run is waiting. False: skipped."""
        job = run.job
        if self._running(job, run) < job.max_concurrent_runs:
            return True
        if not job.queue:
            self._end(run, "SKIPPED", None, "MAX_CONCURRENT_RUNS_EXCEEDED", "CLIENT_ERROR",
                      f"Skipping this run because the limit of {job.max_concurrent_runs} maximum concurrent runs "
                      "has been reached.")
            return False
        run.life_cycle_state = "QUEUED"
        run.state_message = "Queued: waiting for an active run of this job to end."
        while True:
            if run.life_cycle_state != "QUEUED":  # cancelled while queued
                return False
            earlier = [other for other in self.runs.values() if other.job.job_id == job.job_id
                       and other.life_cycle_state == "QUEUED" and other.run_id < run.run_id]
            if not earlier and self._running(job, run) < job.max_concurrent_runs:
                run.state_message = ""
                return True
            await asyncio.sleep(0.05)

    async def _execute(self, run: EmulatedRun) -> None:
        job = run.job
        if not await self._wait_in_queue(run):
            return
        if await self._phase(run, "PENDING", max(0.05, job.duration_seconds * 0.2)):
            return
        if job.outcome == "hang":
            await self._phase(run, "RUNNING", float("inf"))
            return
        if job.outcome == "unknown_state":
            run.life_cycle_state = "WAITING_FOR_APPROVAL"  # a state this SDK's enums do not know
            await self._phase(run, "WAITING_FOR_APPROVAL", float("inf"))
            return
        if await self._phase(run, "RUNNING", job.duration_seconds):
            return
        if job.outcome in ("success", "corrupt"):
            try:
                run.files = await asyncio.to_thread(self.export, job.sql, run.parameters)
            except Exception as exc:
                self._end(run, "TERMINATED", "FAILED", "RUN_EXECUTION_ERROR", "CLIENT_ERROR",
                          f"Task export failed with message: [SQL_EXECUTION_ERROR] {exc}")
                return
            if job.outcome == "corrupt":  # a test switch: a truncated part file beside the good ones
                bucket, _, key = run.files[0].removeprefix("s3://").partition("/")
                self.s3.client().put_object(Bucket=bucket, Key=key.replace("part-00000", "part-00099"),
                                            Body=b"PAR1 this is not parquet")
            self._end(run, "TERMINATED", "SUCCESS", "SUCCESS", "SUCCESS", "")
        elif job.outcome == "internal_error":
            self._end(run, "INTERNAL_ERROR", "FAILED", "INTERNAL_ERROR", "INTERNAL_ERROR", job.message or
                      "Cluster failed to start: INTERNAL_ERROR: the driver became unresponsive.")
        else:
            result, code, message = {
                "fail": ("FAILED", "RUN_EXECUTION_ERROR", "Task export failed with message: "
                         "[TABLE_OR_VIEW_NOT_FOUND] The table or view `samples`.`accuweather`.`missing` cannot be "
                         "found."),
                "timedout": ("TIMEDOUT", "CANCELED", "Run timed out after the job's timeout_seconds."),
                "canceled": ("CANCELED", "USER_CANCELED", "Run cancelled by a workspace admin."),
            }[job.outcome]
            self._end(run, "TERMINATED", result, code, "CLIENT_ERROR", job.message or message)

    async def _phase(self, run: EmulatedRun, life_cycle_state: str, seconds: float) -> bool:
        """Stay in a state for `seconds`; True when the run was cancelled meanwhile."""
        if not run.cancel_requested:
            run.life_cycle_state = life_cycle_state
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if run.cancel_requested:
                await asyncio.sleep(0.1)  # TERMINATING for a moment, as the real service does
                self._end(run, "TERMINATED", "CANCELED", "USER_CANCELED", "SUCCESS", "Run cancelled by user.")
                return True
            await asyncio.sleep(min(0.05, max(0.0, deadline - time.monotonic())))
        return run.cancel_requested

    def _end(self, run: EmulatedRun, life_cycle_state: str, result_state: str | None, code: str, kind: str,
             message: str) -> None:
        run.life_cycle_state, run.result_state, run.state_message = life_cycle_state, result_state, message
        run.code, run.kind = code, kind
        run.end_time = int(time.time() * 1000)

    def export(self, sql: str, parameters: dict[str, str]) -> list[str]:
        """Run an export statement as Spark writes a directory: overwrite it, write the part files between the
        `_started_` and `_committed_` markers, then `_SUCCESS`. Returns the part files' URLs."""
        statement = _PARAMETER.sub(lambda m: parameters.get(m.group(1), ""), sql)
        match = _EXPORT.match(statement)
        if not match:
            raise ValueError("only `INSERT OVERWRITE DIRECTORY 's3://…' USING PARQUET <query>` is supported here")
        directory = match.group("path").rstrip("/") + "/"
        bucket, _, prefix = directory.removeprefix("s3://").partition("/")
        client = self.s3.client()
        for key in self.s3.keys(prefix) if bucket == self.s3.bucket else []:
            client.delete_object(Bucket=bucket, Key=key)  # OVERWRITE: the directory holds only this export
        transaction = str(random.randrange(10**18, 10**19))
        client.put_object(Bucket=bucket, Key=f"{prefix}_started_{transaction}", Body=b"")
        query = match.group("query")
        names = []
        with self._workspace_lock:
            # The query runs once (as Spark's would); its rows are then split over the part files.
            self._workspace.execute(f"CREATE OR REPLACE TEMP TABLE export_rows AS SELECT * FROM ({query})")
            try:
                (rows,) = self._workspace.execute("SELECT COUNT(*) FROM export_rows").fetchone()  # type: ignore[misc]
                parts = 1 if rows == 0 else max(2, math.ceil(rows / ROWS_PER_PART))
                per_part = max(1, math.ceil(rows / parts))
                task = uuid.uuid4()
                for index in range(parts):
                    name = f"part-{index:05d}-{task}-c000.snappy.parquet"
                    self._workspace.execute(f"COPY (SELECT * FROM export_rows WHERE rowid >= {index * per_part} AND "
                                            f"rowid < {(index + 1) * per_part}) TO '{directory}{name}' "
                                            "(FORMAT PARQUET, COMPRESSION SNAPPY)")
                    names.append(name)
            finally:
                self._workspace.execute("DROP TABLE IF EXISTS export_rows")
        committed = json.dumps({"added": names, "removed": []}).encode()
        client.put_object(Bucket=bucket, Key=f"{prefix}_committed_{transaction}", Body=committed)
        client.put_object(Bucket=bucket, Key=f"{prefix}_SUCCESS", Body=b"")
        return [f"{directory}{name}" for name in names]


def _status_state(run: EmulatedRun) -> str:
    state = run.life_cycle_state
    if state in ("SKIPPED", "INTERNAL_ERROR"):
        return "TERMINATED"
    return state  # QUEUED, PENDING, RUNNING, TERMINATING, TERMINATED, or a newer state as it is


def _error(status: int, error_code: str, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"error_code": error_code, "message": message, "details": []}, status=status,
                             headers=headers)
