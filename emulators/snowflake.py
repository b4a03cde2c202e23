"""Snowflake stand-in: fakesnow's HTTP server, reached by the real snowflake-connector-python over http.

fakesnow keeps one shared DuckDB database per process, so there is one SnowflakeEmulator per process.
Its S3 reads go to the S3 emulator through an fsspec filesystem registered on that DuckDB connection.
"""

from __future__ import annotations

import gzip
import json
import logging
import threading
import time
import warnings
from typing import Any

import duckdb
import fakesnow.cursor
import fakesnow.server as fakesnow_server
import snowflake.connector
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ._net import free_port
from .s3 import S3Emulator

ACCOUNT = "fakesnow"
warnings.filterwarnings("ignore", message="Arrow output on a DB-API result")  # fakesnow's own, harmless
DEMO_TABLE_COLUMNS = (
    "CITY_NAME VARCHAR, COUNTRY_CODE VARCHAR, DATE DATE, TEMPERATURE_MAX_F DOUBLE, TEMPERATURE_MIN_F DOUBLE, "
    "PRECIPITATION_IN DOUBLE, HUMIDITY_PCT INTEGER, CONDITIONS VARCHAR, FORECAST_ISSUED_AT TIMESTAMP_NTZ"
)


def _snowflake_error(code: str, message: str, sql_state: str = "22000") -> JSONResponse:
    return JSONResponse({"data": {"errorCode": code, "sqlState": sql_state}, "code": code, "message": message,
                         "success": False})


_current: SnowflakeEmulator | None = None  # the emulator serving fakesnow's shared database in this process


def _copy_into_with_real_errors(original: Any) -> Any:
    """fakesnow lets a raw DuckDB error escape a COPY (an HTTP 500 the connector retries for minutes);
    Snowflake answers a corrupt Parquet file with error 100109. Do the same."""

    def copy_into(duck_conn: duckdb.DuckDBPyConnection, *args: Any, **kwargs: Any) -> Any:
        # Snowflake's default ON_ERROR=ABORT_STATEMENT loads all files or none; fakesnow inserts file by file.
        duck_conn.execute("BEGIN TRANSACTION")
        try:
            result = original(duck_conn, *args, **kwargs)
        except (duckdb.InvalidInputException, duckdb.IOException) as exc:
            duck_conn.execute("ROLLBACK")
            raise snowflake.connector.errors.ProgrammingError(
                msg=f"Error parsing the parquet file: {exc}", errno=100109, sqlstate="22000") from None
        except BaseException:
            duck_conn.execute("ROLLBACK")
            raise
        duck_conn.execute("COMMIT")
        duck_conn.execute(result)  # fakesnow returns the per-file result as a self-contained SELECT: re-run it
        # A test switch: the COPY has committed, but its answer is late (to crash a client in that window).
        time.sleep(_current.copy_delay_seconds if _current else 0.0)
        return result

    copy_into.syncbot_patched = True  # type: ignore[attr-defined]
    return copy_into


class SnowflakeEmulator:
    def __init__(self, s3: S3Emulator, port: int = 0, user: str = "syncbot", password: str = "local-stack") -> None:
        self.s3 = s3
        self.port = port or free_port()
        self.user = user
        self.password = password
        self.copy_delay_seconds = 0.0
        self.queries: list[dict[str, Any]] = []  # every statement the clients sent, with its session's QUERY_TAG
        self._tags: dict[str, str] = {}
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    def connect_kwargs(self, **overrides: Any) -> dict[str, Any]:
        return {"account": ACCOUNT, "user": self.user, "password": self.password, "host": "127.0.0.1",
                "port": self.port, "protocol": "http", **overrides}

    def connect(self, **overrides: Any) -> snowflake.connector.SnowflakeConnection:
        return snowflake.connector.connect(**self.connect_kwargs(**overrides))

    def start(self) -> SnowflakeEmulator:
        duck_conn = fakesnow_server.shared_fs.duck_conn
        if duck_conn.filesystem_is_registered("s3"):  # an earlier emulator in this process
            duck_conn.unregister_filesystem("s3")
        duck_conn.register_filesystem(self.s3.filesystem())
        global _current
        _current = self
        if not getattr(fakesnow.cursor.copy_into, "syncbot_patched", False):  # type: ignore[attr-defined]
            fakesnow.cursor.copy_into = _copy_into_with_real_errors(fakesnow.cursor.copy_into)  # type: ignore[attr-defined]
        fakesnow_server.logger.setLevel(logging.WARNING)
        routes = [route for route in fakesnow_server.routes
                  if route.path not in ("/session/v1/login-request", "/queries/v1/query-request")]  # type: ignore[attr-defined]
        routes += [Route("/session/v1/login-request", self._login, methods=["POST"]),
                   Route("/queries/v1/query-request", self._query, methods=["POST"])]
        app = Starlette(routes=routes)
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off")
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
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)

    async def _login(self, request: Request) -> Response:
        body = await request.body()
        if request.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        data = json.loads(body).get("data", {})
        supplied = data.get("PASSWORD")
        if data.get("LOGIN_NAME") != self.user or (supplied is not None and supplied != self.password):
            # Snowflake's own answer to bad credentials
            return JSONResponse({"data": {"nextAction": "RETRY_LOGIN", "authnMethod": "USERNAME_PASSWORD"},
                                 "code": "390100", "message": "Incorrect username or password was specified.",
                                 "success": False})
        response = await fakesnow_server.login_request(request)
        tag = (data.get("SESSION_PARAMETERS") or {}).get("QUERY_TAG")
        if tag:
            self._tags[json.loads(bytes(response.body))["data"]["token"]] = tag
        return response

    async def _query(self, request: Request) -> Response:
        body = await request.body()
        if request.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        token = request.headers.get("Authorization", "").split('"')[1::2]
        self.queries.append({"sql": json.loads(body).get("sqlText", ""),
                             "query_tag": self._tags.get(token[0] if token else "", None)})
        response = await fakesnow_server.query_request(request)
        if response.status_code >= 500:
            # Never leave the connector retrying an unsupported statement for minutes.
            return _snowflake_error("002000", "SQL execution error: the Snowflake emulator cannot run this "
                                    "statement (see the README's emulator gaps)", "0A000")
        return response

    def setup_demo(self, *, database: str, schema: str, table: str, stage: str) -> None:
        """The objects an admin creates once in real Snowflake (README: Snowflake setup)."""
        with self.connect() as connection, connection.cursor() as cursor:
            cursor.execute(f"CREATE DATABASE IF NOT EXISTS {database}")
            cursor.execute(f"CREATE SCHEMA IF NOT EXISTS {database}.{schema}")
            cursor.execute(f"CREATE TABLE IF NOT EXISTS {database}.{schema}.{table} ({DEMO_TABLE_COLUMNS})")
            cursor.execute(f"CREATE STAGE IF NOT EXISTS {database}.{schema}.{stage} "
                           f"URL='s3://{self.s3.bucket}/' FILE_FORMAT=(TYPE=PARQUET)")

    def create_table(self, table_name: str) -> None:
        with self.connect() as connection, connection.cursor() as cursor:
            cursor.execute(f"CREATE TABLE {table_name} ({DEMO_TABLE_COLUMNS})")

    def count_rows(self, table_name: str) -> int:
        with self.connect() as connection, connection.cursor() as cursor:
            cursor.execute(f"SELECT COUNT(*) FROM {table_name}")
            return int(cursor.fetchone()[0])  # type: ignore[index]
