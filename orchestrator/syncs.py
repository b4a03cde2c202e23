"""Named syncs: `syncs.toml` (SYNC_CONFIG), or the one sync the environment variables describe.

A key a sync leaves out falls back to the environment variable of the same meaning, so an existing setup that
has no syncs.toml keeps working unchanged, as one sync named after its table.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .models import ColumnMismatch, LoadMode, SyncTarget

SYNC_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
RESERVED_NAMES = frozenset({"status", "cancel", "help", "list", "start", "run", "now"})  # /sync's own words
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]{0,254}$")
_PARAMETER_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$")

# Each key of a [syncs.<name>] entry, and the environment variable it falls back to (None: no fallback).
KEYS: dict[str, str | None] = {
    "description": None,
    "databricks_job_id": "DATABRICKS_JOB_ID",
    "job_parameters": None,
    "snowflake_database": "SNOWFLAKE_DATABASE",
    "snowflake_schema": "SNOWFLAKE_SCHEMA",
    "snowflake_table": "SNOWFLAKE_TABLE",
    "snowflake_stage": "SNOWFLAKE_STAGE",
    "snowflake_file_format": "SNOWFLAKE_FILE_FORMAT",
    "mode": None,
    "merge_keys": None,
    "create_table": None,
    "on_column_mismatch": None,
    "allowed_users": "SYNC_ALLOWED_USERS",
    "allowed_channels": "SYNC_ALLOWED_CHANNELS",
    "run_timeout_seconds": "SYNC_RUN_TIMEOUT_SECONDS",
    "report_channel": "SYNC_REPORT_CHANNEL",
}


@dataclass(frozen=True)
class SyncDefaults:
    """What the environment says, for keys a sync leaves out."""

    databricks_job_id: int | None = None
    snowflake_database: str = ""
    snowflake_schema: str = ""
    snowflake_table: str = ""
    snowflake_stage: str = ""
    snowflake_file_format: str = "SYNCBOT_PARQUET"
    allowed_users: frozenset[str] = frozenset()
    allowed_channels: frozenset[str] = frozenset()
    run_timeout_seconds: float = 1800.0
    report_channel: str | None = None


@dataclass(frozen=True)
class SyncDefinition:
    """One named sync: what it moves, how it loads, who may run it, and where it reports when not run from Slack."""

    name: str
    description: str
    target: SyncTarget
    allowed_users: frozenset[str]
    allowed_channels: frozenset[str]
    run_timeout_seconds: float
    report_channel: str | None = None


class _Entry:
    """Reads one [syncs.<name>] entry, collecting problems that name the entry and the key."""

    def __init__(self, where: str, values: dict[str, Any], defaults: SyncDefaults, problems: list[str]) -> None:
        self.where = where
        self.values = values
        self.defaults = defaults
        self.problems = problems

    def problem(self, key: str, text: str) -> None:
        self.problems.append(f"{self.where} {key}: {text}")

    def identifier(self, key: str, meaning: str) -> str:
        value = self.values.get(key, getattr(self.defaults, key))
        if value in (None, ""):
            fallback = KEYS[key]
            self.problem(key, f"missing ({meaning}); set it here" + (f" or set {fallback}" if fallback else ""))
            return ""
        if not isinstance(value, str) or not _IDENTIFIER.fullmatch(value):
            self.problem(key, f"{value!r:.60} is not a plain Snowflake identifier ({meaning})")
            return ""
        return value

    def job_id(self) -> int:
        value = self.values.get("databricks_job_id", self.defaults.databricks_job_id)
        if value is None:
            self.problem("databricks_job_id", "missing (the export job's id: Workflows → the job → Job ID); "
                         "set it here or set DATABRICKS_JOB_ID")
            return 0
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            self.problem("databricks_job_id", f"{value!r:.40} should be a positive whole number")
            return 0
        return value

    def job_parameters(self) -> tuple[tuple[str, str], ...]:
        value = self.values.get("job_parameters", {})
        if not isinstance(value, dict):
            self.problem("job_parameters", "should be a table, e.g. { region = \"us\" }")
            return ()
        parameters = []
        for name, item in value.items():
            if name == "run_id":
                self.problem("job_parameters", "run_id is set by syncbot for each run; remove it here")
            elif not _PARAMETER_NAME.fullmatch(name) or isinstance(item, dict | list):
                self.problem("job_parameters", f"{name!r:.40} = {item!r:.40}: names are plain words, values are "
                             "strings or numbers")
            else:
                parameters.append((name, str(item).lower() if isinstance(item, bool) else str(item)))
        return tuple(sorted(parameters))

    def choice(self, key: str, kind: type[LoadMode] | type[ColumnMismatch], default: str) -> Any:
        value = self.values.get(key, default)
        options = [member.value for member in kind]
        if value not in options:
            self.problem(key, f"{value!r:.40} should be one of {', '.join(options)}")
            return kind(default)
        return kind(value)

    def ids(self, key: str) -> frozenset[str]:
        if key not in self.values:
            return frozenset(getattr(self.defaults, key))
        value = self.values[key]
        if not isinstance(value, list) or not all(isinstance(item, str) and item.strip() for item in value):
            self.problem(key, "should be a list of Slack IDs, e.g. [\"U0123ABC\"] (or [\"*\"] for everyone)")
            return frozenset()
        return frozenset(item.strip() for item in value)

    def seconds(self, key: str) -> float:
        value = self.values.get(key, getattr(self.defaults, key))
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 1:
            self.problem(key, f"{value!r:.40} should be a number of seconds ≥ 1")
            return float(getattr(self.defaults, key))
        return float(value)


def _definition(name: str, values: dict[str, Any], defaults: SyncDefaults, where: str,
                problems: list[str]) -> SyncDefinition:
    entry = _Entry(where, values, defaults, problems)
    for key in values:
        if key not in KEYS:
            entry.problem(key, f"unknown key (known keys: {', '.join(KEYS)})")
    mode = entry.choice("mode", LoadMode, LoadMode.APPEND.value)
    merge_keys: tuple[str, ...] = ()
    raw_keys = values.get("merge_keys")
    if mode is LoadMode.MERGE:
        if not isinstance(raw_keys, list) or not raw_keys:
            entry.problem("merge_keys", "mode = \"merge\" needs the columns that identify a row, "
                          "e.g. merge_keys = [\"city_name\", \"date\"]")
        elif not all(isinstance(key, str) and _IDENTIFIER.fullmatch(key) for key in raw_keys):
            entry.problem("merge_keys", f"{raw_keys!r:.80} should be plain column names")
        else:
            merge_keys = tuple(raw_keys)
    elif raw_keys is not None:
        entry.problem("merge_keys", f"only used with mode = \"merge\" (this sync's mode is \"{mode.value}\")")
    create_table = values.get("create_table", False)
    if not isinstance(create_table, bool):
        entry.problem("create_table", f"{create_table!r:.20} should be true or false")
        create_table = False
    description = values.get("description", "")
    if not isinstance(description, str):
        entry.problem("description", "should be a string")
        description = ""
    report_channel = values.get("report_channel", defaults.report_channel)
    if report_channel is not None and (not isinstance(report_channel, str) or not report_channel.strip()):
        entry.problem("report_channel", "should be a channel ID such as C0123ABC")
        report_channel = None
    target = SyncTarget(
        job_id=entry.job_id(),
        database=entry.identifier("snowflake_database", "the target table's database"),
        schema=entry.identifier("snowflake_schema", "the target table's schema"),
        table=entry.identifier("snowflake_table", "the table the sync loads"),
        stage=entry.identifier("snowflake_stage", "the external stage over the S3 bucket"),
        job_parameters=entry.job_parameters(),
        mode=mode,
        merge_keys=merge_keys,
        create_table=create_table,
        on_column_mismatch=entry.choice("on_column_mismatch", ColumnMismatch, ColumnMismatch.FAIL.value),
        file_format=entry.identifier("snowflake_file_format", "a named Parquet file format") or "SYNCBOT_PARQUET",
    )
    return SyncDefinition(name=name, description=description, target=target,
                          allowed_users=entry.ids("allowed_users"), allowed_channels=entry.ids("allowed_channels"),
                          run_timeout_seconds=entry.seconds("run_timeout_seconds"),
                          report_channel=report_channel.strip() if report_channel else None)


def _from_environment(defaults: SyncDefaults) -> tuple[dict[str, SyncDefinition], list[str]]:
    """The one sync of a setup without syncs.toml; problems name the environment variables, as before."""
    problems: list[str] = []
    missing = {
        "DATABRICKS_JOB_ID": (defaults.databricks_job_id, "the id of the export job (Workflows → the job → Job ID)"),
        "SNOWFLAKE_DATABASE": (defaults.snowflake_database, "the target table's database"),
        "SNOWFLAKE_SCHEMA": (defaults.snowflake_schema, "the target table's schema"),
        "SNOWFLAKE_TABLE": (defaults.snowflake_table, "the table the sync loads"),
        "SNOWFLAKE_STAGE": (defaults.snowflake_stage, "the external stage over the S3 bucket, e.g. DATABRICKS_SHARE"),
    }
    for name, (value, meaning) in missing.items():
        if not value:
            problems.append(f"{name} is not set: {meaning} (or describe your syncs in syncs.toml: see SYNC_CONFIG)")
    if problems:
        return {}, problems
    name = defaults.snowflake_table.lower()
    definition = _definition(name, {}, defaults, "the environment's sync", problems)
    return {name: definition}, problems


def load_syncs(path: Path | None, defaults: SyncDefaults) -> tuple[dict[str, SyncDefinition], list[str]]:
    if path is None:
        return _from_environment(defaults)
    problems: list[str] = []
    try:
        document = tomllib.loads(path.read_text())
    except (OSError, UnicodeDecodeError) as exc:
        return {}, [f"{path}: cannot read it ({exc})"]
    except tomllib.TOMLDecodeError as exc:
        return {}, [f"{path}: not valid TOML ({exc})"]
    unknown = sorted(set(document) - {"syncs"})
    if unknown:
        problems.append(f"{path}: unknown top-level key(s) {', '.join(unknown)}; each sync is a [syncs.<name>] table")
    entries = document.get("syncs")
    if not isinstance(entries, dict) or not entries:
        problems.append(f"{path}: no syncs; describe each one as a [syncs.<name>] table (see the README)")
        return {}, problems
    syncs: dict[str, SyncDefinition] = {}
    for name, values in entries.items():
        where = f"{path.name} [syncs.{name}]"
        if not SYNC_NAME.fullmatch(name) or name in RESERVED_NAMES:
            problems.append(f"{where}: the name should be lower-case letters, digits, - or _ (at most 40), "
                            f"and not one of {', '.join(sorted(RESERVED_NAMES))}: people type it after /sync")
            continue
        if not isinstance(values, dict):
            problems.append(f"{where}: should be a table of keys")
            continue
        syncs[name] = _definition(name, values, defaults, where, problems)
    return syncs, problems
