"""`doctor`: proves a real setup against the live services, without moving any data.

Each check is a line: what was checked, whether it holds, and for a failure the fix. Databricks: the job exists,
declares `run_id` (and the sync's fixed parameters), may be run by the token's user, queues; where its notebook
can be read, it writes where the stage reads. Snowflake: the login, role and warehouse, the database, schema,
stage, file format and table, a LIST of the stage under the export prefix (which proves the storage integration
and the IAM role), and the privileges each sync's load mode needs.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from .databricks import DatabricksJobs, describe_error
from .models import LoadMode, SyncTarget
from .settings import Settings
from .snowflake import SnowflakeClient, SnowflakeLoadError, SnowflakeSession
from .syncs import SyncDefinition

_RUN_PERMISSIONS = {"CAN_MANAGE_RUN", "CAN_MANAGE", "IS_OWNER"}
_S3_PATH = re.compile(r"s3://[A-Za-z0-9.\-_]+/[^'\"\s{}]*")


@dataclass(frozen=True)
class Check:
    ok: bool
    what: str
    fix: str = ""

    def line(self) -> str:
        return f"✓ {self.what}" if self.ok else f"✗ {self.what} — {self.fix}"


def required_privileges(target: SyncTarget) -> dict[tuple[str, str], set[str]]:
    """(object type, name) → the privileges a sync's load needs (OWNERSHIP on a table covers the rest)."""
    schema = f"{target.database}.{target.schema}".upper()
    table = target.table_key
    needs: dict[tuple[str, str], set[str]] = {
        ("DATABASE", target.database.upper()): {"USAGE"},
        ("SCHEMA", schema): {"USAGE"},
        ("STAGE", f"{schema}.{target.stage.upper()}"): {"USAGE"},
        ("FILE_FORMAT", f"{schema}.{target.file_format.upper()}"): {"USAGE"},
        ("TABLE", table): {"SELECT", "INSERT"},
    }
    if target.mode is LoadMode.REPLACE:
        needs[("TABLE", table)] = {"OWNERSHIP"}  # ALTER TABLE … SWAP WITH needs ownership of both tables
    if target.mode is LoadMode.MERGE:
        needs[("TABLE", table)] |= {"UPDATE"}
    if target.mode is not LoadMode.APPEND or target.create_table:
        needs[("SCHEMA", schema)] |= {"CREATE TABLE"}  # the staging table, or the table itself
    return needs


def _grant_fix(kind: str, name: str, privileges: set[str], role: str) -> str:
    on = kind.replace("_", " ")
    if privileges == {"OWNERSHIP"}:
        return f"GRANT OWNERSHIP ON {on} {name} TO ROLE {role} COPY CURRENT GRANTS;"
    return f"GRANT {', '.join(sorted(privileges))} ON {on} {name} TO ROLE {role};"


class Doctor:
    def __init__(self, settings: Settings, databricks: DatabricksJobs, snowflake: SnowflakeClient) -> None:
        self.settings = settings
        self.databricks = databricks
        self.snowflake = snowflake
        self._stage_urls: dict[str, str] = {}

    def checks(self) -> Iterator[Check]:
        yield from self._snowflake_checks()
        yield from self._databricks_checks()

    # ---- Databricks ------------------------------------------------------------------------------------------------

    def _databricks_checks(self) -> Iterator[Check]:
        try:
            me = self.databricks.current_user()
        except Exception as exc:
            yield Check(False, "Databricks: sign in", f"{describe_error(exc)}; check DATABRICKS_HOST and "
                        "DATABRICKS_TOKEN (or the OAuth / profile settings)")
            return
        user = str(me.get("userName", ""))
        yield Check(True, f"Databricks: signed in as {user}")
        for sync in self.settings.syncs.values():
            yield from self._job_checks(sync, user)

    def _job_checks(self, sync: SyncDefinition, user: str) -> Iterator[Check]:
        target = sync.target
        where = f"Databricks job {target.job_id} (sync {sync.name})"
        try:
            job = self.databricks.get_job(target.job_id)
        except Exception as exc:
            yield Check(False, f"{where} exists", f"{describe_error(exc)}; fix databricks_job_id (or "
                        "DATABRICKS_JOB_ID), and give the token's user CAN MANAGE RUN on the job")
            return
        settings = job.get("settings") or {}
        yield Check(True, f"{where} exists: {settings.get('name', '?')}")
        declared = {str(p.get("name")) for p in settings.get("parameters") or []}
        wanted = {"run_id", *(name for name, _ in target.job_parameters)}
        missing = sorted(wanted - declared)
        yield Check(not missing, f"{where} declares the job parameter(s) {', '.join(sorted(wanted))}",
                    f"add the job parameter(s) {', '.join(missing)} to the job (Job parameters → Add); the export "
                    "writes to s3://<bucket>/<prefix>{{job.parameters.run_id}}/")
        yield self._permission_check(where, target.job_id, user)
        queue = (settings.get("queue") or {}).get("enabled", False)
        concurrent = settings.get("max_concurrent_runs", 1)
        yield Check(bool(queue), f"{where} queues runs (queue.enabled, max_concurrent_runs = {concurrent})",
                    "enable the job's queue (Job details → Queue): without it a run-now while another run is "
                    "active is SKIPPED instead of waiting")
        yield from self._export_path_check(where, sync, settings)

    def _permission_check(self, where: str, job_id: int, user: str) -> Check:
        try:
            acl = self.databricks.job_permissions(job_id).get("access_control_list") or []
        except Exception as exc:
            return Check(False, f"{where}: the token's user may run it", f"cannot read the job's permissions "
                         f"({describe_error(exc)}); give {user or 'the user'} CAN MANAGE RUN on the job")
        levels = {str(permission.get("permission_level")) for entry in acl if entry.get("user_name") == user
                  or entry.get("service_principal_name") == user for permission in entry.get("all_permissions", [])}
        ok = bool(levels & _RUN_PERMISSIONS)
        return Check(ok, f"{where}: {user} may run it ({', '.join(sorted(levels)) or 'no permission'})",
                     f"give {user} CAN MANAGE RUN on the job (Job → Permissions)")

    def _export_path_check(self, where: str, sync: SyncDefinition, settings: dict[str, Any]) -> Iterator[Check]:
        path = next((task.get("notebook_task", {}).get("notebook_path") for task in settings.get("tasks") or []
                     if task.get("notebook_task")), None)
        stage_url = self._stage_urls.get(f"{sync.target.database}.{sync.target.schema}.{sync.target.stage}".upper())
        if not path or not stage_url:
            return  # only a notebook task can be read, and only against a stage we could describe
        try:
            exported = self.databricks._client.api_client.do(
                "GET", "/api/2.0/workspace/export", query={"path": path, "format": "SOURCE"})
            source = base64.b64decode(exported.get("content", "")).decode("utf-8", "replace")  # type: ignore[union-attr]
        except Exception:
            return
        paths = _S3_PATH.findall(source)
        expected = f"{stage_url}{self.settings.sync.export_prefix}"
        ok = any(found.rstrip("/") + "/" == expected for found in paths)
        shown = ", ".join(sorted(set(paths))) or "no s3:// path"
        yield Check(ok, f"{where} writes under {expected}<run_id>/ (its notebook writes to {shown})",
                    f"make the job write to {expected}{{run_id}}/, or point the stage / SYNC_EXPORT_PREFIX at "
                    "where it writes")

    # ---- Snowflake -------------------------------------------------------------------------------------------------

    def _snowflake_checks(self) -> Iterator[Check]:
        settings = self.settings.snowflake
        auth = "key pair" if settings.private_key_file else "password"
        targets = list({(sync.target.table_key, sync.target.mode, sync.target.create_table): sync.target
                        for sync in self.settings.syncs.values()}.values())
        try:
            session = self.snowflake.open_session(targets[0], "0000-doctor") if targets else None
        except SnowflakeLoadError as exc:
            yield Check(False, f"Snowflake: sign in as {settings.user} ({auth})", str(exc))
            return
        if session is None:
            return
        try:
            yield Check(True, f"Snowflake: signed in as {settings.user} ({auth})")
            role, warehouse = self._query(session, "SELECT CURRENT_ROLE(), CURRENT_WAREHOUSE()")[0]
            if settings.role and str(role).upper() != settings.role.upper():
                yield Check(False, f"Snowflake: role {settings.role}", f"the session's role is {role}: grant "
                            f"{settings.role} to {settings.user}, or fix SNOWFLAKE_ROLE")
            else:
                yield Check(True, f"Snowflake: role {role}")
            yield Check(bool(warehouse), f"Snowflake: warehouse {warehouse or settings.warehouse or '(none)'} usable",
                        f"set SNOWFLAKE_WAREHOUSE to a warehouse the role may use (GRANT USAGE ON WAREHOUSE "
                        f"<name> TO ROLE {role})")
            grants = self._grants(session, str(role))
            for target in targets:
                yield from self._target_checks(session, target, grants, str(role))
        finally:
            session.close()

    @staticmethod
    def _query(session: SnowflakeSession, sql: str) -> list[tuple[Any, ...]]:
        return session.query(sql)[1]

    def _grants(self, session: SnowflakeSession, role: str) -> dict[tuple[str, str], set[str]]:
        held: dict[tuple[str, str], set[str]] = {}
        try:
            columns, rows = session.query(f"SHOW GRANTS TO ROLE {role}")
        except SnowflakeLoadError:
            return held
        index = {name.lower(): i for i, name in enumerate(columns)}
        for row in rows:
            kind = str(row[index["granted_on"]]).upper().replace(" ", "_")
            held.setdefault((kind, str(row[index["name"]]).upper()), set()).add(str(row[index["privilege"]]).upper())
        return held

    def _target_checks(self, session: SnowflakeSession, target: SyncTarget,
                       grants: dict[tuple[str, str], set[str]], role: str) -> Iterator[Check]:
        schema = f"{target.database}.{target.schema}"
        checks: list[tuple[str, Callable[[], Check]]] = [
            ("stage", lambda: self._stage_check(session, target, schema)),
            ("file format", lambda: self._format_check(session, target, schema)),
            ("list", lambda: self._list_check(session, target)),
            ("table", lambda: self._table_check(session, target)),
        ]
        for _, check in checks:
            try:
                yield check()
            except SnowflakeLoadError as exc:
                yield Check(False, f"Snowflake: {target.table_name}", str(exc))
        for (kind, name), privileges in required_privileges(target).items():
            held = grants.get((kind, name), set())
            if kind == "TABLE" and "OWNERSHIP" in held:
                held = held | {"SELECT", "INSERT", "UPDATE", "DELETE"}
            missing = privileges - held
            if kind == "TABLE" and target.create_table and not self._table_exists(session, target):
                continue  # created by the bot, which then owns it
            yield Check(not missing, f"Snowflake: role {role} has {', '.join(sorted(privileges))} on "
                        f"{kind.replace('_', ' ').lower()} {name} ({target.mode.value})",
                        _grant_fix(kind, name, missing, role))

    def _stage_check(self, session: SnowflakeSession, target: SyncTarget, schema: str) -> Check:
        rows = self._query(session, f"SHOW STAGES LIKE '{target.stage}' IN SCHEMA {schema}")
        if not rows:
            return Check(False, f"Snowflake: stage {schema}.{target.stage} exists",
                         "create it over the bucket with the storage integration (README: Snowflake setup), or fix "
                         "snowflake_stage / SNOWFLAKE_STAGE")
        url = str(rows[0][3])
        self._stage_urls[f"{schema}.{target.stage}".upper()] = url if url.endswith("/") else url + "/"
        return Check(True, f"Snowflake: stage {schema}.{target.stage} exists ({url})")

    def _format_check(self, session: SnowflakeSession, target: SyncTarget, schema: str) -> Check:
        rows = self._query(session, f"SHOW FILE FORMATS LIKE '{target.file_format}' IN SCHEMA {schema}")
        return Check(bool(rows), f"Snowflake: file format {schema}.{target.file_format} exists",
                     f"CREATE FILE FORMAT {schema}.{target.file_format} TYPE = PARQUET; (or set "
                     "snowflake_file_format / SNOWFLAKE_FILE_FORMAT)")

    def _list_check(self, session: SnowflakeSession, target: SyncTarget) -> Check:
        prefix = self.settings.sync.export_prefix
        path = f"@{target.stage}/{prefix}"
        try:
            rows = self._query(session, f"LIST {path}")
        except SnowflakeLoadError as exc:
            return Check(False, f"Snowflake: LIST {path} (the storage integration and the IAM role)",
                         f"{exc}; check the integration's STORAGE_ALLOWED_LOCATIONS (it must contain the stage URL), "
                         "the IAM role's trust policy (DESC INTEGRATION) and its s3:ListBucket on the prefix")
        return Check(True, f"Snowflake: LIST {path} works ({len(rows)} object(s) under the export prefix)")

    def _table_exists(self, session: SnowflakeSession, target: SyncTarget) -> bool:
        return bool(self._query(session, f"SELECT COLUMN_NAME FROM {target.database}.INFORMATION_SCHEMA.COLUMNS "
                                         f"WHERE TABLE_SCHEMA = '{target.schema.upper()}' AND TABLE_NAME = "
                                         f"'{target.table.upper()}'"))

    def _table_check(self, session: SnowflakeSession, target: SyncTarget) -> Check:
        if self._table_exists(session, target):
            return Check(True, f"Snowflake: table {target.table_name} exists")
        if target.create_table:
            return Check(True, f"Snowflake: table {target.table_name} will be created from the first run's files "
                         "(create_table = true)")
        return Check(False, f"Snowflake: table {target.table_name} exists",
                     "create it with the export's columns, or set create_table = true for this sync")
