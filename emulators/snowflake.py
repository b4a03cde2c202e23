"""Snowflake stand-in: fakesnow's HTTP server behind a query engine (emulators/snowflake_engine.py) that answers
the way Snowflake does, reached by the real snowflake-connector-python over http.

fakesnow keeps one shared DuckDB database per process, so there is one SnowflakeEmulator per process.
Its S3 reads go to the S3 emulator through an fsspec filesystem registered on that DuckDB connection.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
import threading
import time
import warnings
from typing import Any

import fakesnow.server as fakesnow_server
import snowflake.connector
import uvicorn
from fakesnow.converter import from_binding
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ._net import free_port
from .s3 import S3Emulator
from .snowflake_engine import ROLES, USER_ROLES, WAREHOUSES, Engine, Query, Session

ACCOUNT = "fakesnow"
ROLE = "SYNCBOT"
WAREHOUSE = "SYNCBOT_WH"
FILE_FORMAT = "SYNCBOT_PARQUET"
SYNC_ANSWER_SECONDS = 45.0  # a statement not done by then is answered "in progress" (333333), as Snowflake does
warnings.filterwarnings("ignore", message="Arrow output on a DB-API result")  # fakesnow's own, harmless
# The real columns of samples.accuweather.forecast_daily_calendar_imperial that the demo exports.
DEMO_TABLE_COLUMNS = (
    "CITY_NAME VARCHAR, COUNTRY_CODE VARCHAR, DATE DATE, LATITUDE FLOAT, LONGITUDE FLOAT, TEMPERATURE_MAX FLOAT, "
    "TEMPERATURE_MIN FLOAT, TEMPERATURE_AVG FLOAT, HUMIDITY_RELATIVE_AVG FLOAT, PRECIPITATION_PROBABILITY NUMBER, "
    "RAIN_PROBABILITY NUMBER, CLOUD_COVER_PERC_AVG FLOAT"
)


def _body(raw: bytes, encoding: str | None) -> dict[str, Any]:
    return dict(json.loads(gzip.decompress(raw) if encoding == "gzip" else raw))


def _login_error(code: str, message: str) -> JSONResponse:
    return JSONResponse({"data": {"nextAction": "RETRY_LOGIN", "authnMethod": "USERNAME_PASSWORD"}, "code": code,
                         "message": message, "success": False})


class SnowflakeEmulator:
    def __init__(self, s3: S3Emulator, port: int = 0, user: str = "syncbot", password: str = "local-stack") -> None:
        self.s3 = s3
        self.port = port or free_port()
        self.user = user
        self.password = password
        self.engine = Engine(s3)
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    # ---- test switches (see Engine) --------------------------------------------------------------------------------

    @property
    def copy_seconds(self) -> float:
        return self.engine.copy_seconds

    @copy_seconds.setter
    def copy_seconds(self, value: float) -> None:
        self.engine.copy_seconds = value

    def reset(self) -> None:
        engine = self.engine
        engine.copy_seconds = engine.submit_answer_delay_seconds = engine.warehouse_queue_seconds = 0.0
        engine.revoked.clear()

    @property
    def queries(self) -> list[dict[str, Any]]:
        """Every statement the clients sent, oldest first: sql, query_tag, status, query_id."""
        return [{"sql": q.sql, "query_tag": q.tag, "status": q.status, "query_id": q.query_id}
                for q in self.engine.registry.all()]

    def statements(self, tag: str, starting: str) -> list[Query]:
        return [q for q in self.engine.registry.all() if q.tag == tag and q.sql.upper().startswith(starting.upper())]

    # ---- clients ---------------------------------------------------------------------------------------------------

    def connect_kwargs(self, **overrides: Any) -> dict[str, Any]:
        return {"account": ACCOUNT, "user": self.user, "password": self.password, "host": "127.0.0.1",
                "port": self.port, "protocol": "http", **overrides}

    def connect(self, **overrides: Any) -> snowflake.connector.SnowflakeConnection:
        return snowflake.connector.connect(**self.connect_kwargs(**overrides))

    def rows(self, sql: str) -> list[tuple[Any, ...]]:
        with self.connect() as connection, connection.cursor() as cursor:
            cursor.execute(sql)
            return list(cursor.fetchall())

    def count_rows(self, table_name: str) -> int:
        return int(self.rows(f"SELECT COUNT(*) FROM {table_name}")[0][0])

    def setup_demo(self, *, database: str, schema: str, tables: tuple[str, ...], stage: str) -> None:
        """The objects an admin creates once in real Snowflake (README: Snowflake setup)."""
        with self.connect() as connection, connection.cursor() as cursor:
            cursor.execute(f"CREATE DATABASE IF NOT EXISTS {database}")
            cursor.execute(f"CREATE SCHEMA IF NOT EXISTS {database}.{schema}")
            for table in tables:
                cursor.execute(f"CREATE TABLE IF NOT EXISTS {database}.{schema}.{table} ({DEMO_TABLE_COLUMNS})")
            cursor.execute(f"CREATE STAGE IF NOT EXISTS {database}.{schema}.{stage} "
                           f"URL='s3://{self.s3.bucket}/' FILE_FORMAT=(TYPE=PARQUET)")
            cursor.execute(f"CREATE FILE FORMAT IF NOT EXISTS {database}.{schema}.{FILE_FORMAT} TYPE = PARQUET")

    def create_table(self, table_name: str, columns: str = DEMO_TABLE_COLUMNS) -> None:
        with self.connect() as connection, connection.cursor() as cursor:
            cursor.execute(f"CREATE TABLE {table_name} ({columns})")

    # ---- the server ------------------------------------------------------------------------------------------------

    def start(self) -> SnowflakeEmulator:
        duck_conn = fakesnow_server.shared_fs.duck_conn
        if duck_conn.filesystem_is_registered("s3"):  # an earlier emulator in this process
            duck_conn.unregister_filesystem("s3")
        duck_conn.register_filesystem(self.s3.filesystem())
        fakesnow_server.logger.setLevel(logging.WARNING)
        ours = {"/session/v1/login-request", "/queries/v1/query-request", "/monitoring/queries/{sfqid}"}
        routes = [route for route in fakesnow_server.routes if route.path not in ours]  # type: ignore[attr-defined]
        routes += [Route("/session/v1/login-request", self._login, methods=["POST"]),
                   Route("/queries/v1/query-request", self._query, methods=["POST"]),
                   Route("/queries/{query_id}/result", self._result, methods=["GET"]),
                   Route("/queries/{query_id}/abort-request", self._abort, methods=["POST"]),
                   Route("/monitoring/queries/{query_id}", self._monitoring, methods=["GET"])]
        config = uvicorn.Config(Starlette(routes=routes), host="127.0.0.1", port=self.port, log_level="warning",
                                lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="snowflake-emulator", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 15
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError(f"the Snowflake emulator did not start on port {self.port}")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        for query in self.engine.registry.all():  # statements still running end, as at a shutdown
            if not query.done.is_set():
                query.abort.set()
        deadline = time.monotonic() + 5
        while any(not query.done.is_set() for query in self.engine.registry.all()) and time.monotonic() < deadline:
            time.sleep(0.05)
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _session(self, request: Request) -> Session | None:
        token = request.headers.get("Authorization", "")[17:-1]
        return self.engine.sessions.get(token)

    async def _login(self, request: Request) -> Response:
        data = _body(await request.body(), request.headers.get("Content-Encoding")).get("data", {})
        supplied = data.get("PASSWORD")
        user = str(data.get("LOGIN_NAME", ""))
        if user != self.user or (supplied is not None and supplied != self.password):
            return _login_error("390100", "Incorrect username or password was specified.")
        role = (request.query_params.get("roleName") or USER_ROLES.get(user.upper(), ROLE)).strip('"').upper()
        if role not in ROLES:
            return _login_error("390189", f"Role '{role}' specified in the connect string does not exist or not "
                                "authorized. Contact your local system administrator, or attempt to login with "
                                "another role, e.g. PUBLIC.")
        warehouse = (request.query_params.get("warehouse") or WAREHOUSE).strip('"').upper()
        if warehouse not in WAREHOUSES or ("USAGE", "WAREHOUSE", warehouse) in self.engine.revoked:
            warehouse = None  # Snowflake signs in, and the session has no current warehouse
        response = await fakesnow_server.login_request(request)
        token = json.loads(bytes(response.body))["data"]["token"]
        connection = fakesnow_server.sessions[token]
        parameters = {str(k).upper(): v for k, v in (data.get("SESSION_PARAMETERS") or {}).items()}
        self.engine.sessions[token] = Session(token=token, user=user.upper(), role=role, warehouse=warehouse,
                                              database=connection.database, schema=connection.schema,
                                              parameters=parameters)
        return response

    async def _query(self, request: Request) -> Response:
        session = self._session(request)
        body = _body(await request.body(), request.headers.get("Content-Encoding"))
        bindings = body.get("bindings") or {}
        batch = any(isinstance(binding.get("value"), list) for binding in bindings.values())
        if session is None or body.get("describeOnly") or batch:
            return await fakesnow_server.query_request(request)  # fakesnow answers these (and bad tokens) itself
        params: Any = None
        if bindings:
            if all(key.isdigit() for key in bindings):
                params = tuple(from_binding(bindings[str(i)]) for i in range(1, len(bindings) + 1))
            else:
                params = {name: from_binding(binding) for name, binding in bindings.items()}
        query = self.engine.submit(session, str(body.get("sqlText", "")), params)
        if body.get("asyncExec"):
            await asyncio.sleep(self.engine.submit_answer_delay_seconds)
            return JSONResponse({"code": "333334", "message": "Asynchronous query in progress", "success": True,
                                 "data": {"queryId": query.query_id,
                                          "getResultUrl": f"/queries/{query.query_id}/result"}})
        await self._until_done(query, SYNC_ANSWER_SECONDS)
        return JSONResponse(query.answer())

    @staticmethod
    async def _until_done(query: Query, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not query.done.is_set() and time.monotonic() < deadline:
            await asyncio.sleep(0.005 if time.monotonic() - query.start < 0.1 else 0.05)

    async def _result(self, request: Request) -> Response:
        session = self._session(request)
        query = self.engine.registry.get(request.path_params["query_id"])
        if session is None or query is None or query.session.user != session.user:
            return JSONResponse({"data": None, "code": "000709", "success": False,
                                 "message": f"Statement {request.path_params['query_id']} not found"})
        await self._until_done(query, 10.0)
        return JSONResponse(query.answer())

    async def _monitoring(self, request: Request) -> Response:
        session = self._session(request)
        query = self.engine.registry.get(request.path_params["query_id"])
        if session is None:
            return JSONResponse({"data": None, "code": "390104", "success": False,
                                 "message": "User must login again to access the service."}, status_code=401)
        if query is None or query.session.user != session.user:
            return JSONResponse({"data": {"queries": []}, "success": True})
        return JSONResponse({"data": {"queries": [query.monitoring()]}, "success": True})

    async def _abort(self, request: Request) -> Response:
        session = self._session(request)
        if session is None:
            return JSONResponse({"success": False, "code": "390104", "message": "User must login again."},
                                status_code=401)
        self.engine.cancel(request.path_params["query_id"], session.user)
        return JSONResponse({"success": True, "data": None, "code": None, "message": None})
