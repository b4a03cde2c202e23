"""What the Snowflake stand-in adds to fakesnow, done the way Snowflake does it.

- Statements run in their own thread and are remembered in a query registry: `execute_async` gets its query id at
  once and the statement runs on (and commits) whether or not the client stays; any session of the same user
  asks `/monitoring/queries/<id>`, reads `RESULT_SCAN('<id>')`, or aborts it (`SYSTEM$CANCEL_QUERY`, the
  connector's abort-request). STATEMENT_TIMEOUT_IN_SECONDS and STATEMENT_QUEUED_TIMEOUT_IN_SECONDS are honoured.
- COPY INTO <table> FROM @stage/path: reads every object under the path (a non-empty file that is not Parquet
  fails the whole statement; empty files are skipped), PATTERN= and FILES=, MATCH_BY_COLUMN_NAME, all-or-nothing
  (ON_ERROR=ABORT_STATEMENT), load metadata (files already loaded into the table are left out of the result;
  none left → "Copy executed with 0 files processed."), a configurable duration, and a load history.
- LIST @stage, INFER_SCHEMA, CREATE TABLE … USING TEMPLATE, CREATE TABLE … LIKE … COPY GRANTS, ALTER TABLE … SWAP
  WITH, COPY_HISTORY, QUERY_HISTORY[_BY_USER], SHOW GRANTS, SHOW STAGES / FILE FORMATS, CURRENT_ROLE() and
  CURRENT_WAREHOUSE(), roles and privileges (what `doctor` checks, and what COPY, SWAP and MERGE need).
Everything else goes to fakesnow (DuckDB) unchanged.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import duckdb
import fakesnow.server as fakesnow_server
import snowflake.connector.errors
from fakesnow.arrow import to_ipc, to_sf
from fakesnow.dialect import parse_one
from fakesnow.rowtype import describe_as_rowtype
from fakesnow.statement_type import DML_TYPE_IDS, statement_type_id

log = logging.getLogger("emulators.snowflake")

USER_ROLES = {"SYNCBOT": "SYNCBOT"}  # user → default role
ROLES = frozenset({"SYNCBOT", "PUBLIC", "SYSADMIN", "ACCOUNTADMIN"})
WAREHOUSES = frozenset({"SYNCBOT_WH", "COMPUTE_WH"})
REGISTRY_SIZE = 50_000  # queries remembered (Snowflake keeps 14 days; tests and benchmarks need far fewer)
_RESULT_SCAN = re.compile(r"^\s*select\s+\*\s+from\s+table\s*\(\s*result_scan\s*\(\s*'([0-9a-fA-F-]+)'\s*\)\s*\)\s*$",
                          re.IGNORECASE)
_TABLE_FUNCTION = re.compile(r"TABLE\s*\(\s*(?:[A-Za-z_][\w$]*\.)*(INFER_SCHEMA|COPY_HISTORY|QUERY_HISTORY_BY_USER|"
                             r"QUERY_HISTORY_BY_SESSION|QUERY_HISTORY)\s*\(", re.IGNORECASE)
_IDENT = r"(?:[A-Za-z_][\w$]*|\"[^\"]+\")"
_NAME = rf"{_IDENT}(?:\.{_IDENT}){{0,2}}"


class SnowflakeError(Exception):
    def __init__(self, code: int, message: str, sql_state: str = "42000") -> None:
        super().__init__(message)
        self.code, self.message, self.sql_state = code, message, sql_state


def _not_found(kind: str, name: str) -> SnowflakeError:
    return SnowflakeError(2003, f"SQL compilation error:\n{kind} '{name}' does not exist or not authorized.", "02000")


def _no_privilege(kind: str, name: str) -> SnowflakeError:
    return SnowflakeError(3001, f"SQL access control error:\nInsufficient privileges to operate on {kind} '{name}'",
                          "42501")


def sf_now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


@dataclass
class Session:
    token: str
    user: str
    role: str
    warehouse: str | None
    database: str | None
    schema: str | None
    parameters: dict[str, Any] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)  # fakesnow's session runs one statement at a time

    @property
    def tag(self) -> str:
        return str(self.parameters.get("QUERY_TAG") or "")

    def seconds(self, name: str) -> float:
        value = float(self.parameters.get(name) or 0)
        return value if value > 0 else 172_800.0  # Snowflake's default: two days


@dataclass
class Query:
    query_id: str
    session: Session
    sql: str
    tag: str
    start: float = field(default_factory=time.time)
    end: float | None = None
    status: str = "QUEUED"
    payload: dict[str, Any] | None = None  # the "data" of a successful answer
    error: SnowflakeError | None = None
    abort: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)

    def finish(self, status: str, payload: dict[str, Any] | None = None, error: SnowflakeError | None = None) -> None:
        self.status, self.payload, self.error, self.end = status, payload, error, time.time()
        self.done.set()

    @property
    def history_status(self) -> str:
        return {"ABORTED": "FAILED_WITH_ERROR"}.get(self.status, self.status)

    def answer(self) -> dict[str, Any]:
        """The query-request answer a client gets for this statement now."""
        if not self.done.is_set():
            return {"code": "333333", "message": "Query execution in progress", "success": True,
                    "data": {"queryId": self.query_id, "getResultUrl": f"/queries/{self.query_id}/result"}}
        if self.error is not None:
            code = f"{self.error.code:06d}"
            return {"data": {"errorCode": code, "sqlState": self.error.sql_state, "queryId": self.query_id},
                    "code": code, "message": self.error.message, "success": False}
        session = self.session
        return {"success": True, "data": {**(self.payload or {}), "queryId": self.query_id,
                                          "finalDatabaseName": session.database, "finalSchemaName": session.schema,
                                          "parameters": [{"name": "TIMEZONE", "value": "Etc/UTC"}]}}

    def monitoring(self) -> dict[str, Any]:
        entry: dict[str, Any] = {"id": self.query_id, "status": self.status, "sqlText": self.sql,
                                 "startTime": int(self.start * 1000)}
        if self.error is not None:
            entry.update(errorCode=f"{self.error.code:06d}", errorMessage=self.error.message)
        return entry


def json_payload(columns: list[tuple[str, str]], rows: list[tuple[Any, ...]]) -> dict[str, Any]:
    """A result in the JSON rowset format (as Snowflake answers DDL, DML and small results)."""
    rowtype = [{"name": name, "database": "", "schema": "", "table": "", "nullable": True, "type": kind,
                "byteLength": None, "length": None, "scale": 0 if kind == "fixed" else None,
                "precision": 38 if kind == "fixed" else None, "collation": None} for name, kind in columns]
    rowset = [[None if value is None else _text(value) for value in row] for row in rows]
    return {"rowtype": rowtype, "rowset": rowset, "total": len(rowset), "returned": len(rowset),
            "queryResultFormat": "json", "statementTypeId": 4096}


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    return str(value)


_DUCK_TO_SF = {"VARCHAR": "text", "BIGINT": "fixed", "INTEGER": "fixed", "HUGEINT": "fixed", "DOUBLE": "real",
               "FLOAT": "real", "BOOLEAN": "boolean", "DATE": "text", "TIMESTAMP": "text",
               "TIMESTAMP WITH TIME ZONE": "text"}


def duck_payload(cursor: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    """The rows of the cursor's last statement, as a JSON result."""
    description = cursor.description or []
    columns = [(str(name).upper(), _DUCK_TO_SF.get(str(kind), "text")) for name, kind, *_ in description]
    return json_payload(columns, cursor.fetchall())


_PARQUET_TO_SF = {"VARCHAR": "TEXT", "DOUBLE": "REAL", "FLOAT": "REAL", "BIGINT": "NUMBER(38, 0)",
                  "INTEGER": "NUMBER(38, 0)", "SMALLINT": "NUMBER(38, 0)", "DATE": "DATE", "BOOLEAN": "BOOLEAN",
                  "TIMESTAMP": "TIMESTAMP_NTZ(9)", "TIMESTAMP WITH TIME ZONE": "TIMESTAMP_TZ(9)", "BLOB": "BINARY"}


def sf_type_of(parquet_type: str) -> str:
    if parquet_type.startswith("DECIMAL"):
        return "NUMBER" + parquet_type.removeprefix("DECIMAL").replace(",", ", ")
    return _PARQUET_TO_SF.get(parquet_type, "TEXT")


def split_arguments(text: str) -> dict[str, str]:
    """`NAME => value, …` of a table function, values as written (strings unquoted)."""
    arguments, depth, current, quoted = [], 0, "", False
    for char in text:
        if char == "'" and not quoted:
            quoted = True
        elif char == "'" and quoted:
            quoted = False
        if not quoted and char == "(":
            depth += 1
        elif not quoted and char == ")":
            depth -= 1
        if char == "," and depth == 0 and not quoted:
            arguments.append(current)
            current = ""
        else:
            current += char
    if current.strip():
        arguments.append(current)
    named = {}
    for argument in arguments:
        name, _, value = argument.partition("=>")
        named[name.strip().upper()] = value.strip()
    return named


def strings(text: str) -> list[str]:
    return [match.replace("\\'", "'") for match in re.findall(r"'((?:[^'\\]|\\.)*)'", text)]


def matching_paren(text: str, start: int) -> int:
    """The index of the parenthesis closing the one at `start`."""
    depth, quoted = 0, False
    for index in range(start, len(text)):
        char = text[index]
        if char == "'":
            quoted = not quoted
        elif not quoted and char == "(":
            depth += 1
        elif not quoted and char == ")":
            depth -= 1
            if depth == 0:
                return index
    raise SnowflakeError(1003, "SQL compilation error:\nsyntax error: unbalanced parenthesis", "42000")


class Registry:
    """Every statement the stand-in ran, by query id (bounded), for monitoring, results and history."""

    def __init__(self) -> None:
        self._queries: OrderedDict[str, Query] = OrderedDict()
        self._lock = threading.Lock()

    def add(self, query: Query) -> None:
        with self._lock:
            self._queries[query.query_id] = query
            while len(self._queries) > REGISTRY_SIZE:
                self._queries.popitem(last=False)

    def get(self, query_id: str) -> Query | None:
        with self._lock:
            return self._queries.get(query_id)

    def all(self) -> list[Query]:
        with self._lock:
            return list(self._queries.values())


@dataclass
class LoadRecord:
    """One file loaded into one table: Snowflake's load metadata and its COPY_HISTORY row."""

    file_name: str  # relative to the stage location
    stage_location: str
    url: str
    etag: str
    rows_parsed: int
    rows_loaded: int
    size: int
    at: str


def new_query_id() -> str:
    return str(uuid.uuid4())


SqlHandler = Callable[[Query, re.Match[str]], dict[str, Any]]


class Engine:
    """Runs each statement in its own thread, remembers it, and answers what fakesnow cannot."""

    def __init__(self, s3: Any) -> None:
        self.s3 = s3
        self.registry = Registry()
        self.sessions: dict[str, Session] = {}
        # test switches
        self.copy_seconds = 0.0  # a COPY stays RUNNING this long after reading its files, before it commits
        self.submit_answer_delay_seconds = 0.0  # execute_async's answer (the query id) arrives this late
        self.warehouse_queue_seconds = 0.0  # COPY and MERGE wait QUEUED this long for a busy warehouse
        self.revoked: set[tuple[str, str, str]] = set()  # (privilege, object type, NAME) the role lacks
        self.table_privileges: dict[str, set[str]] = {}  # NAME → privileges when not the owner (default: owner)
        # Snowflake's load metadata and COPY_HISTORY, by table (they move with the table on SWAP)
        self.loads: dict[str, list[LoadRecord]] = {}
        self._loads_lock = threading.Lock()

    # ---- running statements ----------------------------------------------------------------------------------------

    def submit(self, session: Session, sql: str, params: Any) -> Query:
        query = Query(new_query_id(), session, sql, session.tag)
        self.registry.add(query)
        threading.Thread(target=self._run, args=(query, params), name=f"sf-{query.query_id[:8]}",
                         daemon=True).start()
        return query

    def _run(self, query: Query, params: Any) -> None:
        try:
            self._wait_for_warehouse(query)
            query.status = "RUNNING"
            payload = self._dispatch(query, params)
            if query.abort.is_set() and query.status != "SUCCESS":
                raise SnowflakeError(604, "SQL execution canceled", "57014")
            query.finish("SUCCESS", payload)
        except SnowflakeError as exc:
            query.finish("ABORTED" if exc.code == 604 else "FAILED_WITH_ERROR", error=exc)
        except snowflake.connector.errors.Error as exc:
            query.finish("FAILED_WITH_ERROR", error=SnowflakeError(exc.errno or 2000, exc.msg or str(exc),
                                                                   exc.sqlstate or "42000"))
        except Exception as exc:  # a statement the stand-in cannot run: say so, never a 500 the client retries
            log.warning("the Snowflake emulator cannot run %r: %s", query.sql[:200], exc)
            query.finish("FAILED_WITH_ERROR", error=SnowflakeError(
                2000, f"SQL execution error: the Snowflake emulator cannot run this statement ({type(exc).__name__}: "
                f"{exc}); see the README's emulator gaps", "0A000"))

    def _wait_for_warehouse(self, query: Query) -> None:
        if self.warehouse_queue_seconds <= 0 or not re.match(r"\s*(COPY|MERGE)\b", query.sql, re.IGNORECASE):
            return
        limit = query.session.seconds("STATEMENT_QUEUED_TIMEOUT_IN_SECONDS")
        waited_until = time.monotonic() + self.warehouse_queue_seconds
        started = time.monotonic()
        while time.monotonic() < waited_until:
            if query.abort.is_set():
                raise SnowflakeError(604, "SQL execution canceled", "57014")
            if time.monotonic() - started > limit:
                raise SnowflakeError(630, f"Statement reached its statement or warehouse timeout of {limit:g} "
                                     "second(s) and was canceled.", "57014")
            time.sleep(0.05)

    def _dispatch(self, query: Query, params: Any) -> dict[str, Any]:
        sql = query.sql.strip().rstrip(";").strip()
        for pattern, handler in self._handlers():
            if match := pattern.match(sql):
                return handler(query, match)
        if _TABLE_FUNCTION.search(sql):
            return self._table_function_query(query, sql)
        if match := re.match(rf"MERGE\s+INTO\s+({_NAME})", sql, re.IGNORECASE):
            self._require(query.session, "TABLE", self._qualify(query.session, match.group(1)), "INSERT", "UPDATE")
            self._wait_while_running(query)
        return self.fakesnow(query.session, sql, params)

    def _handlers(self) -> list[tuple[re.Pattern[str], SqlHandler]]:
        flags = re.IGNORECASE | re.DOTALL
        return [
            (_RESULT_SCAN, self._result_scan),
            (re.compile(rf"^COPY\s+INTO\s+({_NAME})\s+FROM\s+@(\S+)(.*)$", flags), self._copy),
            (re.compile(r"^(?:LIST|LS)\s+@(\S+)(.*)$", flags), self._list),
            (re.compile(rf"^ALTER\s+TABLE\s+(?:IF\s+EXISTS\s+)?({_NAME})\s+SWAP\s+WITH\s+({_NAME})$", flags),
             self._swap),
            (re.compile(rf"^CREATE\s+(OR\s+REPLACE\s+)?(?:TRANSIENT\s+)?TABLE\s+(IF\s+NOT\s+EXISTS\s+)?({_NAME})\s+"
                        r"USING\s+TEMPLATE\s*\((.*)\)$", flags), self._create_from_template),
            (re.compile(rf"^CREATE\s+(OR\s+REPLACE\s+)?(TRANSIENT\s+)?TABLE\s+(IF\s+NOT\s+EXISTS\s+)?({_NAME})\s+"
                        rf"LIKE\s+({_NAME})(\s+COPY\s+GRANTS)?$", flags), self._create_like),
            (re.compile(r"^SELECT\s+SYSTEM\$CANCEL_QUERY\s*\(\s*'([^']+)'\s*\)$", flags), self._cancel_query),
            (re.compile(r"^SHOW\s+GRANTS\s+(TO\s+ROLE|ON\s+\w+)\s+(\S+)$", flags), self._show_grants),
            (re.compile(rf"^SHOW\s+(STAGES|FILE\s+FORMATS)\s+LIKE\s+'([^']+)'\s+IN\s+SCHEMA\s+({_NAME})$", flags),
             self._show_objects),
            (re.compile(r"^SELECT\s+(CURRENT_\w+\(\)(?:\s*,\s*CURRENT_\w+\(\))*)$", flags), self._current),
            (re.compile(r"^ALTER\s+SESSION\s+(SET|UNSET)\s+(.*)$", flags), self._alter_session),
            (re.compile(r"^USE\s+(ROLE|WAREHOUSE)\s+(\S+)$", flags), self._use),
            (re.compile(rf"^DROP\s+TABLE\s+(?:IF\s+EXISTS\s+)?({_NAME})$", flags), self._drop_table),
        ]

    def fakesnow(self, session: Session, sql: str, params: Any = None) -> dict[str, Any]:
        """A statement fakesnow runs, answered as fakesnow's server would answer it."""
        connection = fakesnow_server.sessions.get(session.token)
        if connection is None:
            raise SnowflakeError(390104, "User must login again to access the service.", "08001")
        with session.lock:
            cursor = connection.cursor()
            cursor.execute(sql, binding_params=params, server=True)
            type_id = statement_type_id(parse_one(sql))
            rowtype = describe_as_rowtype(cursor._describe_last_sql())
            arrow_table = cursor._arrow_table
            session.database, session.schema = connection.database, connection.schema
        if arrow_table is not None and type_id in DML_TYPE_IDS:
            rows = [[None if v is None else str(v) for v in row]
                    for row in zip(*[column.to_pylist() for column in arrow_table.columns], strict=True)]
            result: dict[str, Any] = {"queryResultFormat": "json", "rowset": rows}
        elif arrow_table is not None:
            from base64 import b64encode

            result = {"queryResultFormat": "arrow",
                      "rowsetBase64": b64encode(to_ipc(to_sf(arrow_table, rowtype))).decode("utf-8")}
        else:
            result = {"queryResultFormat": "arrow", "rowsetBase64": ""}
        return {"rowtype": rowtype, "total": arrow_table.num_rows if arrow_table is not None else 0,
                "statementTypeId": type_id, **result}

    def _wait_while_running(self, query: Query, seconds: float = 0.0) -> None:
        """Stay RUNNING for `seconds` (a long statement), honouring abort and STATEMENT_TIMEOUT_IN_SECONDS."""
        limit = query.session.seconds("STATEMENT_TIMEOUT_IN_SECONDS")
        until = query.start + seconds
        while time.time() < until or seconds == 0.0:
            if query.abort.is_set():
                raise SnowflakeError(604, "SQL execution canceled", "57014")
            if time.time() - query.start > limit:
                raise SnowflakeError(630, f"Statement reached its statement or warehouse timeout of {limit:g} "
                                     "second(s) and was canceled.", "57014")
            if seconds == 0.0:
                return
            time.sleep(0.05)

    # ---- names, objects, privileges --------------------------------------------------------------------------------

    @staticmethod
    def _qualify(session: Session, name: str) -> str:
        parts = [part.strip('"') if part.startswith('"') else part.upper() for part in name.split(".")]
        if len(parts) == 1:
            parts = [session.database or "", session.schema or "", *parts]
        elif len(parts) == 2:
            parts = [session.database or "", *parts]
        return ".".join(parts)

    def _cursor(self) -> duckdb.DuckDBPyConnection:
        return fakesnow_server.shared_fs.duck_conn.cursor()

    def table_columns(self, name: str) -> list[tuple[str, str]]:
        database, schema, table = name.split(".")
        with self._cursor() as cursor:
            rows = cursor.execute("SELECT column_name, data_type FROM information_schema.columns WHERE table_catalog "
                                  "= ? AND table_schema = ? AND table_name = ? ORDER BY ordinal_position",
                                  [database, schema, table]).fetchall()
        return [(str(column), str(kind)) for column, kind in rows]

    def _named(self, session: Session, name: str, kind: str, catalog: str, column: str) -> tuple[str, str]:
        """(qualified name, `column`) of a stage or file format the role may use; Snowflake's error otherwise."""
        qualified = self._qualify(session, name)
        database, schema, item = qualified.split(".")
        with self._cursor() as cursor:
            row = cursor.execute(f"SELECT {column} FROM _fs_global._fs_information_schema.{catalog} WHERE "
                                 "database_name = ? AND schema_name = ? AND name = ?",
                                 [database, schema, item]).fetchone()
        if row is None:
            raise _not_found(kind, qualified)
        self._require(session, kind.upper().replace(" ", "_"), qualified, "USAGE")
        return qualified, str(row[0])

    def _stage(self, session: Session, name: str) -> tuple[str, str]:
        """(qualified name, URL) of an external stage."""
        qualified, url = self._named(session, name, "Stage", "_fs_stages", "url")
        return qualified, url if url.endswith("/") else url + "/"

    def _file_format(self, session: Session, name: str) -> str:
        return self._named(session, name, "File format", "_fs_file_formats", "type")[1].upper()

    def privileges(self, object_type: str, name: str) -> set[str]:
        """What the bot's role holds on an object: everything it owns, minus what a test revoked."""
        if object_type == "TABLE":
            held = self.table_privileges.get(name, {"OWNERSHIP"})
            if "OWNERSHIP" in held:
                held = {"OWNERSHIP", "SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE"}
        elif object_type == "SCHEMA":
            held = {"USAGE", "CREATE TABLE", "CREATE STAGE", "CREATE FILE FORMAT"}
        else:
            held = {"USAGE"}
        return {privilege for privilege in held if (privilege, object_type, name) not in self.revoked}

    def _require(self, session: Session, object_type: str, name: str, *privileges: str) -> None:
        if session.role == "ACCOUNTADMIN":
            return
        missing = set(privileges) - self.privileges(object_type, name)
        if missing:
            raise _no_privilege(object_type.lower().replace("_", " "), name)

    # ---- COPY, LIST and the load history --------------------------------------------------------------------------

    def _objects(self, url: str) -> list[dict[str, Any]]:
        bucket, _, prefix = url.removeprefix("s3://").partition("/")
        pages = self.s3.client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        return [{**item, "Bucket": bucket} for page in pages for item in page.get("Contents", [])]

    def _copy(self, query: Query, match: re.Match[str]) -> dict[str, Any]:
        session = query.session
        table = self._qualify(session, match.group(1))
        stage_ref, options = match.group(2), match.group(3)
        if stage_ref.startswith("'") or "(" in stage_ref:
            raise SnowflakeError(2000, "SQL execution error: the Snowflake emulator supports COPY INTO <table> FROM "
                                 "@stage[/path] only", "0A000")
        stage_name, _, path = stage_ref.partition("/")
        _, stage_url = self._stage(session, stage_name)
        columns = self.table_columns(table)
        if not columns:
            raise _not_found("Table", table)
        self._require(session, "TABLE", table, "INSERT")
        if not re.search(r"TYPE\s*=\s*'?PARQUET", options, re.IGNORECASE):
            raise SnowflakeError(2000, "SQL execution error: the Snowflake emulator loads FILE_FORMAT=(TYPE=PARQUET) "
                                 "only", "0A000")
        if not re.search(r"MATCH_BY_COLUMN_NAME\s*=\s*'?CASE_(IN)?SENSITIVE", options, re.IGNORECASE):
            raise SnowflakeError(2019, "SQL compilation error:\nPARQUET file format can produce one and only one "
                                 "column of type variant, object, or array. Load data into separate columns using "
                                 "the MATCH_BY_COLUMN_NAME copy option or copy with transformation.", "0A000")
        pattern = re.search(r"PATTERN\s*=\s*'((?:[^'\\]|\\.)*)'", options, re.IGNORECASE)
        files = re.search(r"FILES\s*=\s*\(([^)]*)\)", options, re.IGNORECASE)
        force = bool(re.search(r"FORCE\s*=\s*TRUE", options, re.IGNORECASE))
        location = stage_url + path
        candidates = []
        for item in self._objects(location):
            relative = item["Key"][len(location.removeprefix("s3://").partition("/")[2]):]
            stage_relative = item["Key"][len(stage_url.removeprefix("s3://").partition("/")[2]):]
            if files and relative not in strings(files.group(1)):
                continue
            if pattern and not re.fullmatch(pattern.group(1), stage_relative):  # bulk loads: the whole location
                continue
            if int(item["Size"]) == 0:
                continue  # empty files are skipped, not failed
            candidates.append({**item, "stage_relative": stage_relative, "url": f"s3://{item['Bucket']}/{item['Key']}"})
        with self._loads_lock:
            loaded = {(record.url, record.etag) for record in self.loads.get(table, [])}
        todo = [item for item in candidates if force or (item["url"], item["ETag"]) not in loaded]
        if not todo:
            self._wait_while_running(query, self.copy_seconds if candidates else 0.0)
            return json_payload([("status", "text")], [("Copy executed with 0 files processed.",)])
        for item in todo:
            head = self.s3.client().get_object(Bucket=item["Bucket"], Key=item["Key"], Range="bytes=0-3")["Body"].read()
            tail_start = max(0, int(item["Size"]) - 4)
            tail = self.s3.client().get_object(Bucket=item["Bucket"], Key=item["Key"],
                                               Range=f"bytes={tail_start}-")["Body"].read()
            if head != b"PAR1" or tail != b"PAR1":
                raise SnowflakeError(100109, f"Error parsing the parquet file: Invalid: Parquet magic bytes not found "
                                     f"in footer. Either the file is corrupted or this is not a parquet file. File "
                                     f"'{item['stage_relative']}'", "22000")
        results, records = self._insert(query, table, columns, todo, stage_url)
        with self._loads_lock:
            self.loads.setdefault(table, []).extend(records)
        return json_payload(
            [("file", "text"), ("status", "text"), ("rows_parsed", "fixed"), ("rows_loaded", "fixed"),
             ("error_limit", "fixed"), ("errors_seen", "fixed"), ("first_error", "text"),
             ("first_error_line", "fixed"), ("first_error_character", "fixed"), ("first_error_column_name", "text")],
            results)

    def _insert(self, query: Query, table: str, columns: list[tuple[str, str]], todo: list[dict[str, Any]],
                stage_url: str) -> tuple[list[tuple[Any, ...]], list[LoadRecord]]:
        """All files in one transaction (ON_ERROR=ABORT_STATEMENT): every file's rows or none."""
        cursor = self._cursor()
        results, records = [], []
        cursor.execute("BEGIN TRANSACTION")
        try:
            for item in todo:
                described = cursor.execute(f"DESCRIBE SELECT * FROM read_parquet('{item['url']}')").fetchall()
                by_upper = {str(name).upper(): str(name) for name, *_ in described}
                matched = [(column, by_upper[column.upper()]) for column, _ in columns if column.upper() in by_upper]
                (parsed,) = cursor.execute(f"SELECT COUNT(*) FROM read_parquet('{item['url']}')").fetchone()  # type: ignore[misc]
                if matched:
                    targets = ", ".join(f'"{column}"' for column, _ in matched)
                    sources = ", ".join(f'"{source}"' for _, source in matched)
                    try:
                        cursor.execute(f"INSERT INTO {_duck_name(table)} ({targets}) SELECT {sources} FROM "
                                       f"read_parquet('{item['url']}')")
                    except duckdb.ConversionException as exc:
                        raise SnowflakeError(100038, f"Numeric value is not recognized: {exc} File "
                                             f"'{item['stage_relative']}'", "22018") from None
                results.append((item["url"], "LOADED", parsed, parsed, 1, 0, None, None, None, None))
                records.append(LoadRecord(file_name=item["stage_relative"], stage_location=stage_url, url=item["url"],
                                          etag=item["ETag"], rows_parsed=parsed, rows_loaded=parsed,
                                          size=int(item["Size"]), at=sf_now()))
            self._wait_while_running(query, self.copy_seconds)  # the COPY's duration, before it commits
            cursor.execute("COMMIT")
        except BaseException:
            cursor.execute("ROLLBACK")
            raise
        finally:
            cursor.close()
        return results, records

    def _list(self, query: Query, match: re.Match[str]) -> dict[str, Any]:
        stage_name, _, path = match.group(1).partition("/")
        _, stage_url = self._stage(query.session, stage_name)
        pattern = re.search(r"PATTERN\s*=\s*'((?:[^'\\]|\\.)*)'", match.group(2), re.IGNORECASE)
        rows = []
        for item in self._objects(stage_url + path):
            url = f"s3://{item['Bucket']}/{item['Key']}"
            if pattern and not re.fullmatch(pattern.group(1), url):
                continue
            modified = item["LastModified"].strftime("%a, %d %b %Y %H:%M:%S GMT")
            rows.append((url, int(item["Size"]), str(item["ETag"]).strip('"'), modified))
        return json_payload([("name", "text"), ("size", "fixed"), ("md5", "text"), ("last_modified", "text")], rows)

    # ---- table functions: INFER_SCHEMA, COPY_HISTORY, QUERY_HISTORY ------------------------------------------------

    def _table_function_query(self, query: Query, sql: str) -> dict[str, Any]:
        """Materialise each TABLE(<function>(…)) as a table, then let DuckDB run the rest of the statement."""
        cursor = self._cursor()
        try:
            while match := _TABLE_FUNCTION.search(sql):
                open_at = match.end() - 1
                close_at = matching_paren(sql, open_at)
                outer_close = matching_paren(sql, sql.index("(", match.start()))
                arguments = split_arguments(sql[open_at + 1:close_at])
                name = f"emu_{match.group(1).lower()}_{uuid.uuid4().hex[:10]}"
                columns, rows = self._function_rows(query.session, match.group(1).upper(), arguments)
                definition = ", ".join(f'"{column}" {kind}' for column, kind in columns)
                cursor.execute(f"CREATE TEMP TABLE {name} ({definition})")
                if rows:
                    marks = ", ".join("?" * len(columns))
                    cursor.executemany(f"INSERT INTO {name} VALUES ({marks})", rows)
                sql = sql[:match.start()] + name + sql[outer_close + 1:]
            if match := re.match(r"^CREATE\s+", sql, re.IGNORECASE):
                raise SnowflakeError(2000, "SQL execution error: the Snowflake emulator supports table functions "
                                     "in SELECT and in CREATE TABLE … USING TEMPLATE only", "0A000")
            try:
                cursor.execute(_without_snowflake_functions(sql))
            except duckdb.Error as exc:
                raise SnowflakeError(1003, f"SQL compilation error:\n{exc}", "42000") from None
            return duck_payload(cursor)
        finally:
            cursor.close()

    def _function_rows(self, session: Session, function: str,
                       arguments: dict[str, str]) -> tuple[list[tuple[str, str]], list[tuple[Any, ...]]]:
        if function == "INFER_SCHEMA":
            return self._infer_schema(session, arguments)
        if function == "COPY_HISTORY":
            table = self._qualify(session, (strings(arguments.get("TABLE_NAME", "")) or [""])[0])
            with self._loads_lock:
                records = list(self.loads.get(table, []))
            database, schema, name = table.split(".")
            return ([("FILE_NAME", "VARCHAR"), ("STAGE_LOCATION", "VARCHAR"), ("LAST_LOAD_TIME", "VARCHAR"),
                     ("ROW_COUNT", "BIGINT"), ("ROW_PARSED", "BIGINT"), ("FILE_SIZE", "BIGINT"),
                     ("FIRST_ERROR_MESSAGE", "VARCHAR"), ("ERROR_COUNT", "BIGINT"), ("STATUS", "VARCHAR"),
                     ("TABLE_CATALOG_NAME", "VARCHAR"), ("TABLE_SCHEMA_NAME", "VARCHAR"), ("TABLE_NAME", "VARCHAR")],
                    [(r.file_name, r.stage_location, r.at, r.rows_loaded, r.rows_parsed, r.size, None, 0, "Loaded",
                      database, schema, name) for r in records])
        queries = [q for q in self.registry.all() if q.session.user == session.user]
        if function == "QUERY_HISTORY_BY_SESSION":
            queries = [q for q in queries if q.session.token == session.token]
        return ([("QUERY_ID", "VARCHAR"), ("QUERY_TEXT", "VARCHAR"), ("DATABASE_NAME", "VARCHAR"),
                 ("SCHEMA_NAME", "VARCHAR"), ("USER_NAME", "VARCHAR"), ("ROLE_NAME", "VARCHAR"),
                 ("WAREHOUSE_NAME", "VARCHAR"), ("QUERY_TAG", "VARCHAR"), ("EXECUTION_STATUS", "VARCHAR"),
                 ("ERROR_CODE", "VARCHAR"), ("ERROR_MESSAGE", "VARCHAR"), ("START_TIME", "DOUBLE"),
                 ("END_TIME", "DOUBLE")],
                [(q.query_id, q.sql, q.session.database, q.session.schema, q.session.user, q.session.role,
                  q.session.warehouse, q.tag, q.history_status, f"{q.error.code:06d}" if q.error else None,
                  q.error.message if q.error else None, q.start, q.end) for q in queries])

    def _infer_schema(self, session: Session,
                      arguments: dict[str, str]) -> tuple[list[tuple[str, str]], list[tuple[Any, ...]]]:
        location = (strings(arguments.get("LOCATION", "")) or [""])[0]
        if not location.startswith("@"):
            raise SnowflakeError(2000, "SQL execution error: INFER_SCHEMA's LOCATION must be a stage", "0A000")
        format_name = (strings(arguments.get("FILE_FORMAT", "")) or [""])[0]
        if not format_name:
            raise SnowflakeError(1003, "SQL compilation error:\nINFER_SCHEMA needs FILE_FORMAT => '<named file "
                                 "format>'", "42000")
        if self._file_format(session, format_name) != "PARQUET":
            raise SnowflakeError(2000, "SQL execution error: the Snowflake emulator infers Parquet only", "0A000")
        stage_name, _, path = location[1:].partition("/")
        _, stage_url = self._stage(session, stage_name)
        wanted = strings(arguments.get("FILES", ""))
        ignore_case = arguments.get("IGNORE_CASE", "FALSE").upper() == "TRUE"
        columns: dict[str, tuple[str, list[str]]] = {}
        with self._cursor() as cursor:
            for item in self._objects(stage_url + path):
                relative = item["Key"].rsplit("/", 1)[-1] if path else item["Key"]
                if wanted and relative not in wanted and item["Key"].split("/")[-1] not in wanted:
                    continue
                if int(item["Size"]) == 0:
                    continue
                url = f"s3://{item['Bucket']}/{item['Key']}"
                try:
                    described = cursor.execute(f"DESCRIBE SELECT * FROM read_parquet('{url}')").fetchall()
                except duckdb.Error:
                    raise SnowflakeError(100109, f"Error parsing the parquet file: Invalid: Parquet magic bytes not "
                                         f"found in footer. File '{relative}'", "22000") from None
                for name, kind, *_ in described:
                    column = str(name).upper() if ignore_case else str(name)
                    entry = columns.setdefault(column, (sf_type_of(str(kind)), []))
                    entry[1].append(relative)
        rows = [(name, kind, True, f"$1:{name}::{kind.split('(')[0]}", json.dumps(files), order)
                for order, (name, (kind, files)) in enumerate(columns.items())]
        return ([("COLUMN_NAME", "VARCHAR"), ("TYPE", "VARCHAR"), ("NULLABLE", "BOOLEAN"), ("EXPRESSION", "VARCHAR"),
                 ("FILENAMES", "VARCHAR"), ("ORDER_ID", "BIGINT")], rows)

    def _create_from_template(self, query: Query, match: re.Match[str]) -> dict[str, Any]:
        session = query.session
        table = self._qualify(session, match.group(3))
        template = match.group(4)
        found = _TABLE_FUNCTION.search(template)
        if found is None or found.group(1).upper() != "INFER_SCHEMA" or "ARRAY_AGG" not in template.upper():
            raise SnowflakeError(2000, "SQL execution error: the Snowflake emulator creates tables from "
                                 "ARRAY_AGG(OBJECT_CONSTRUCT(*)) over INFER_SCHEMA only", "0A000")
        open_at = found.end() - 1
        arguments = split_arguments(template[open_at + 1:matching_paren(template, open_at)])
        database, schema, _ = table.split(".")
        self._require(session, "SCHEMA", f"{database}.{schema}", "CREATE TABLE")
        if self.table_columns(table):
            if match.group(2):
                return json_payload([("status", "text")], [(f"{table.split('.')[-1]} already exists, statement "
                                                            "succeeded.",)])
            if not match.group(1):
                raise SnowflakeError(2002, f"SQL compilation error:\nObject '{table}' already exists.", "42710")
        _, rows = self._infer_schema(session, arguments)
        if not rows:
            raise SnowflakeError(2000, "SQL execution error: INFER_SCHEMA found no columns", "22000")
        definition = ", ".join(f'"{name}" {kind}' if name != name.upper() else f"{name} {kind}"
                               for name, kind, *_ in rows)
        replace = "OR REPLACE " if match.group(1) else ""
        self.fakesnow(session, f"CREATE {replace}TABLE {table} ({definition})")
        self._new_table(table, {"OWNERSHIP"})
        return json_payload([("status", "text")], [(f"Table {table.split('.')[-1]} successfully created.",)])

    def _create_like(self, query: Query, match: re.Match[str]) -> dict[str, Any]:
        session = query.session
        table = self._qualify(session, match.group(4))
        source = self._qualify(session, match.group(5))
        if not self.table_columns(source):
            raise _not_found("Table", source)
        database, schema, _ = table.split(".")
        self._require(session, "SCHEMA", f"{database}.{schema}", "CREATE TABLE")
        exists = bool(self.table_columns(table))
        if exists and match.group(3):
            return json_payload([("status", "text")], [(f"{table.split('.')[-1]} already exists, statement "
                                                        "succeeded.",)])
        replace = "OR REPLACE " if match.group(1) else ""
        result = self.fakesnow(session, f"CREATE {replace}TABLE {table} LIKE {source}")
        privileges = set(self.table_privileges.get(source, {"OWNERSHIP"})) if match.group(6) else {"OWNERSHIP"}
        self._new_table(table, privileges | {"OWNERSHIP"})
        return result

    def _new_table(self, table: str, privileges: set[str]) -> None:
        self.table_privileges[table] = privileges
        with self._loads_lock:
            self.loads.pop(table, None)  # a new table has no load metadata

    def _drop_table(self, query: Query, match: re.Match[str]) -> dict[str, Any]:
        table = self._qualify(query.session, match.group(1))
        result = self.fakesnow(query.session, query.sql.strip().rstrip(";"))
        with self._loads_lock:
            self.loads.pop(table, None)
        self.table_privileges.pop(table, None)
        return result

    def _swap(self, query: Query, match: re.Match[str]) -> dict[str, Any]:
        """Both tables trade names (and data, grants and load metadata) in one transaction."""
        session = query.session
        first, second = self._qualify(session, match.group(1)), self._qualify(session, match.group(2))
        for table in (first, second):
            if not self.table_columns(table):
                raise _not_found("Table", table)
            self._require(session, "TABLE", table, "OWNERSHIP")
        if first.split(".")[:2] != second.split(".")[:2]:
            raise SnowflakeError(2000, "SQL execution error: the Snowflake emulator swaps tables of one schema only",
                                 "0A000")
        spare = f"EMU_SWAP_{uuid.uuid4().hex[:8].upper()}"
        with self._cursor() as cursor:
            cursor.execute("BEGIN TRANSACTION")
            try:
                cursor.execute(f"ALTER TABLE {_duck_name(first)} RENAME TO {spare}")
                cursor.execute(f"ALTER TABLE {_duck_name(second)} RENAME TO \"{first.split('.')[-1]}\"")
                schema = ".".join(_quoted(part) for part in first.split(".")[:2])
                cursor.execute(f"ALTER TABLE {schema}.{spare} RENAME TO \"{second.split('.')[-1]}\"")
                cursor.execute("COMMIT")
            except BaseException:
                cursor.execute("ROLLBACK")
                raise
        with self._loads_lock:
            self.loads[first], self.loads[second] = self.loads.pop(second, []), self.loads.pop(first, [])
        self.table_privileges[first], self.table_privileges[second] = (
            self.table_privileges.pop(second, {"OWNERSHIP"}), self.table_privileges.pop(first, {"OWNERSHIP"}))
        return json_payload([("status", "text")], [("Statement executed successfully.",)])

    # ---- sessions, cancelling, grants ------------------------------------------------------------------------------

    def _result_scan(self, query: Query, match: re.Match[str]) -> dict[str, Any]:
        earlier = self.registry.get(match.group(1))
        if earlier is None or earlier.session.user != query.session.user:
            raise SnowflakeError(709, f"Statement {match.group(1)} not found", "02000")
        if not earlier.done.is_set() or earlier.payload is None:
            raise SnowflakeError(709, f"Statement {match.group(1)} has no results (status {earlier.status})", "02000")
        return earlier.payload

    def cancel(self, query_id: str, user: str | None = None) -> bool:
        target = self.registry.get(query_id)
        if target is None or (user is not None and target.session.user != user) or target.done.is_set():
            return False
        target.status = "ABORTING"
        target.abort.set()
        return True

    def _cancel_query(self, query: Query, match: re.Match[str]) -> dict[str, Any]:
        if self.registry.get(match.group(1)) is None:
            raise SnowflakeError(709, f"Statement {match.group(1)} not found", "02000")
        stopped = self.cancel(match.group(1), query.session.user)
        text = (f"query [{match.group(1)}] terminated." if stopped
                else "Identified SQL statement is not currently executing.")
        return json_payload([(f"SYSTEM$CANCEL_QUERY('{match.group(1)}')", "text")], [(text,)])

    def _current(self, query: Query, match: re.Match[str]) -> dict[str, Any]:
        session = query.session
        values = {"CURRENT_ROLE()": session.role, "CURRENT_WAREHOUSE()": session.warehouse,
                  "CURRENT_USER()": session.user, "CURRENT_DATABASE()": session.database,
                  "CURRENT_SCHEMA()": session.schema, "CURRENT_ACCOUNT()": "FAKESNOW"}
        names = [name.strip().upper() for name in match.group(1).split(",")]
        return json_payload([(name, "text") for name in names], [tuple(values.get(name) for name in names)])

    def _alter_session(self, query: Query, match: re.Match[str]) -> dict[str, Any]:
        for assignment in match.group(2).split(","):
            name, _, value = assignment.partition("=")
            name, value = name.strip().upper(), value.strip().strip("'")
            if match.group(1).upper() == "UNSET":
                query.session.parameters.pop(name, None)
            else:
                query.session.parameters[name] = value
        return json_payload([("status", "text")], [("Statement executed successfully.",)])

    def _use(self, query: Query, match: re.Match[str]) -> dict[str, Any]:
        kind, name = match.group(1).upper(), match.group(2).strip('"').upper()
        if kind == "ROLE":
            if name not in ROLES:
                raise SnowflakeError(2043, f"SQL compilation error:\nRole '{name}' does not exist or not "
                                     "authorized.", "02000")
            query.session.role = name
        else:
            if name not in WAREHOUSES or ("USAGE", "WAREHOUSE", name) in self.revoked:
                raise _not_found("Warehouse", name)
            query.session.warehouse = name
        return json_payload([("status", "text")], [("Statement executed successfully.",)])

    def grants(self, role: str) -> list[tuple[str, str, str]]:
        """(privilege, object type, name) held by the role: what SHOW GRANTS TO ROLE lists."""
        if role not in ROLES:
            return []
        held: list[tuple[str, str, str]] = []
        with self._cursor() as cursor:
            schemas = cursor.execute("SELECT DISTINCT catalog_name, schema_name FROM information_schema.schemata "
                                     "WHERE catalog_name NOT IN ('system', 'temp', 'memory', '_fs_global') AND "
                                     "schema_name NOT IN ('main', 'information_schema', 'pg_catalog', "
                                     "'_fs_information_schema')").fetchall()
            tables = cursor.execute("SELECT table_catalog, table_schema, table_name FROM information_schema.tables "
                                    "WHERE table_schema NOT IN ('main', '_fs_information_schema', "
                                    "'information_schema')").fetchall()
            stages = cursor.execute("SELECT database_name, schema_name, name FROM "
                                    "_fs_global._fs_information_schema._fs_stages").fetchall()
            formats = cursor.execute("SELECT database_name, schema_name, name FROM "
                                     "_fs_global._fs_information_schema._fs_file_formats").fetchall()
        for warehouse in sorted(WAREHOUSES):
            held += [(p, "WAREHOUSE", warehouse) for p in self.privileges("WAREHOUSE", warehouse)]
        for database in sorted({str(row[0]) for row in schemas}):
            held += [(p, "DATABASE", database) for p in self.privileges("DATABASE", database)]
        for database, schema in schemas:
            name = f"{database}.{schema}"
            held += [(p, "SCHEMA", name) for p in sorted(self.privileges("SCHEMA", name))]
        for kind, rows in (("TABLE", tables), ("STAGE", stages), ("FILE_FORMAT", formats)):
            for database, schema, item in rows:
                name = f"{database}.{schema}.{item}"
                held += [(p, kind, name) for p in sorted(self.privileges(kind, name))]
        return held

    def _show_grants(self, query: Query, match: re.Match[str]) -> dict[str, Any]:
        how, name = match.group(1).upper(), match.group(2).strip('"')
        role = query.session.role
        if how.startswith("TO"):
            role = name.upper()
            if role not in ROLES:
                raise SnowflakeError(2003, f"SQL compilation error:\nRole '{role}' does not exist or not authorized.",
                                     "02000")
            rows = self.grants(role)
        else:
            kind = how.split()[-1]
            qualified = self._qualify(query.session, name)
            rows = [row for row in self.grants(role) if row[1] == kind and row[2] == qualified]
        return json_payload([("created_on", "text"), ("privilege", "text"), ("granted_on", "text"), ("name", "text"),
                             ("granted_to", "text"), ("grantee_name", "text"), ("grant_option", "text"),
                             ("granted_by", "text")],
                            [(sf_now(), privilege, kind, name, "ROLE", role, "false", "ACCOUNTADMIN")
                             for privilege, kind, name in rows])

    def _show_objects(self, query: Query, match: re.Match[str]) -> dict[str, Any]:
        kind = "_fs_stages" if match.group(1).upper() == "STAGES" else "_fs_file_formats"
        qualified = self._qualify(query.session, match.group(3) + ".X").rsplit(".", 1)[0]
        database, schema = qualified.split(".")
        like = match.group(2).upper().replace("%", ".*").replace("_", ".")
        columns = "name, database_name, schema_name, url" if kind == "_fs_stages" else \
            "name, database_name, schema_name, type"
        with self._cursor() as cursor:
            rows = cursor.execute(f"SELECT {columns} FROM _fs_global._fs_information_schema.{kind} WHERE "
                                  "database_name = ? AND schema_name = ?", [database, schema]).fetchall()
        rows = [row for row in rows if re.fullmatch(like, str(row[0]).upper())]
        last = "url" if kind == "_fs_stages" else "type"
        return json_payload([("name", "text"), ("database_name", "text"), ("schema_name", "text"), (last, "text")],
                            rows)


def _quoted(part: str) -> str:
    return f'"{part}"'


def _duck_name(qualified: str) -> str:
    return ".".join(_quoted(part) for part in qualified.split("."))


def _without_snowflake_functions(sql: str) -> str:
    """What DuckDB needs changed in the rest of a table-function query (the few Snowflake-only spellings)."""
    return re.sub(r"\bCURRENT_USER\(\)", "current_user", sql, flags=re.IGNORECASE)
