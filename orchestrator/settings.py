"""Settings, read once from the environment (and syncs.toml) and validated; every problem is reported at once."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from .syncs import SyncDefaults, SyncDefinition, load_syncs

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]{0,254}$")
_PREFIX = re.compile(r"^([A-Za-z0-9_.=-]+/)*$")
DEFAULT_CONFIG_PATH = "./syncs.toml"


class SettingsError(Exception):
    """Start-up cannot go on; `problems` names each variable and what it should hold."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        lines = "\n".join(f"  - {problem}" for problem in problems)
        super().__init__(f"syncbot cannot start; fix these settings (see .env.example):\n{lines}")


def is_identifier(value: str) -> bool:
    return bool(_IDENTIFIER.fullmatch(value))


class EnvReader:
    """Reads variables and collects every problem instead of stopping at the first."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self.environ = environ
        self.problems: list[str] = []

    def optional(self, name: str, default: str | None = None) -> str | None:
        value = self.environ.get(name, "").strip()
        return value or default

    def required(self, name: str, meaning: str) -> str:
        value = self.optional(name)
        if value is None:
            self.problems.append(f"{name} is not set: {meaning}")
            return ""
        return value

    def identifier(self, name: str, meaning: str, *, required: bool = False) -> str:
        value = self.required(name, meaning) if required else (self.optional(name) or "")
        if value and not is_identifier(value):
            self.problems.append(f"{name}={value!r:.60} is not a plain Snowflake identifier: {meaning}")
        return value

    def number(self, name: str, default: float, *, minimum: float) -> float:
        text = self.optional(name)
        if text is None:
            return default
        try:
            value = float(text)
        except ValueError:
            value = float("nan")
        if not value >= minimum:
            self.problems.append(f"{name}={text!r:.40} should be a number of seconds ≥ {minimum:g}")
            return default
        return value

    def integer(self, name: str, meaning: str) -> int | None:
        text = self.optional(name)
        if not text:
            return None
        if not text.isdigit() or int(text) <= 0:
            self.problems.append(f"{name}={text!r:.40} should be a positive whole number: {meaning}")
            return None
        return int(text)

    def ids(self, name: str) -> frozenset[str]:
        return frozenset(part.strip() for part in (self.optional(name) or "").split(",") if part.strip())


@dataclass(frozen=True)
class DatabricksSettings:
    host: str | None
    token: str | None = field(default=None, repr=False)
    # Everything else (OAuth service principal, profile) is read by the SDK's own unified auth.


@dataclass(frozen=True)
class SnowflakeSettings:
    account: str
    user: str
    password: str | None = field(default=None, repr=False)
    private_key_file: str | None = None
    private_key_passphrase: str | None = field(default=None, repr=False)
    role: str | None = None
    warehouse: str | None = None
    host: str | None = None
    port: int | None = None
    protocol: str | None = None

    def connect_kwargs(self) -> dict[str, object]:
        """Arguments for snowflake.connector.connect; secrets stay inside this dict."""
        kwargs: dict[str, object] = {"account": self.account, "user": self.user}
        if self.private_key_file:
            kwargs["authenticator"] = "SNOWFLAKE_JWT"
            kwargs["private_key_file"] = self.private_key_file
            if self.private_key_passphrase:
                kwargs["private_key_file_pwd"] = self.private_key_passphrase
        else:
            kwargs["password"] = self.password
        for key in ("role", "warehouse", "host", "port", "protocol"):
            if (value := getattr(self, key)) is not None:
                kwargs[key] = value
        return kwargs


@dataclass(frozen=True)
class SyncSettings:
    export_prefix: str = "runs/"
    poll_interval_seconds: float = 30.0
    poll_max_interval_seconds: float = 60.0
    run_timeout_seconds: float = 1800.0
    load_timeout_seconds: float = 1800.0
    resume_grace_seconds: float = 300.0
    lease_seconds: float = 30.0
    db_path: str = "./syncbot.db"
    db_url: str | None = field(default=None, repr=False)  # may carry a password: see `store_description`
    config_path: str | None = None  # syncs.toml, when one was read

    @property
    def store_description(self) -> str:
        """Where runs are kept, safe to print: a PostgreSQL URL without its password."""
        if not self.db_url:
            return f"SQLite at {self.db_path}"
        return f"PostgreSQL at {redact_url(self.db_url)}"


def redact_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


@dataclass(frozen=True)
class Settings:
    databricks: DatabricksSettings
    snowflake: SnowflakeSettings
    sync: SyncSettings
    syncs: dict[str, SyncDefinition]
    secrets: tuple[str, ...] = field(default=(), repr=False)


SECRET_VARIABLES = ("DATABRICKS_TOKEN", "DATABRICKS_CLIENT_SECRET", "SNOWFLAKE_PASSWORD",
                    "SNOWFLAKE_PRIVATE_KEY_PASSPHRASE", "SLACK_BOT_TOKEN", "SLACK_APP_TOKEN", "SYNC_API_TOKEN")


def secret_values(environ: Mapping[str, str]) -> tuple[str, ...]:
    """Every configured secret, so logs and messages can be scrubbed of them."""
    values = [value for name in SECRET_VARIABLES if len(value := environ.get(name, "").strip()) >= 4]
    password = urlsplit(environ.get("SYNC_DB_URL", "").strip()).password
    if password and len(password) >= 4:
        values.append(password)
    return tuple(values)


def _read_databricks(reader: EnvReader) -> DatabricksSettings:
    host = reader.optional("DATABRICKS_HOST")
    if not host and not reader.optional("DATABRICKS_CONFIG_PROFILE"):
        reader.problems.append("DATABRICKS_HOST is not set: your workspace URL, e.g. https://dbc-1234.cloud.databricks.com")
    if host and not host.startswith(("https://", "http://")):
        reader.problems.append(f"DATABRICKS_HOST={host!r:.60} should start with https://")
    has_credentials = any(reader.optional(name) for name in (
        "DATABRICKS_TOKEN", "DATABRICKS_CLIENT_ID", "DATABRICKS_CONFIG_PROFILE", "DATABRICKS_AUTH_TYPE"))
    if not has_credentials:
        reader.problems.append("DATABRICKS_TOKEN is not set: a personal access token, or set DATABRICKS_CLIENT_ID "
                               "and DATABRICKS_CLIENT_SECRET for an OAuth service principal")
    return DatabricksSettings(host=host, token=reader.optional("DATABRICKS_TOKEN"))


def _read_snowflake(reader: EnvReader) -> SnowflakeSettings:
    password = reader.optional("SNOWFLAKE_PASSWORD")
    key_file = reader.optional("SNOWFLAKE_PRIVATE_KEY_FILE")
    if not password and not key_file:
        reader.problems.append("SNOWFLAKE_PRIVATE_KEY_FILE is not set (nor SNOWFLAKE_PASSWORD): the path of the "
                               "bot user's private key (.p8), or a password for local use")
    if key_file and not Path(key_file).expanduser().is_file():
        reader.problems.append(f"SNOWFLAKE_PRIVATE_KEY_FILE={key_file} does not exist or is not a file: "
                               "give the path of the bot user's private key (.p8)")
    port_text = reader.optional("SNOWFLAKE_PORT")
    port = None
    if port_text:
        if port_text.isdigit() and 0 < int(port_text) < 65536:
            port = int(port_text)
        else:
            reader.problems.append(f"SNOWFLAKE_PORT={port_text!r:.20} should be a TCP port number")
    protocol = reader.optional("SNOWFLAKE_PROTOCOL")
    if protocol and protocol not in ("http", "https"):
        reader.problems.append(f"SNOWFLAKE_PROTOCOL={protocol!r:.20} should be https (or http for the local stack)")
    return SnowflakeSettings(
        account=reader.required("SNOWFLAKE_ACCOUNT", "your account identifier, e.g. myorg-myaccount"),
        user=reader.required("SNOWFLAKE_USER", "the bot's Snowflake user"),
        password=password,
        private_key_file=key_file,
        private_key_passphrase=reader.optional("SNOWFLAKE_PRIVATE_KEY_PASSPHRASE"),
        role=reader.identifier("SNOWFLAKE_ROLE", "a role name") or None,
        warehouse=reader.identifier("SNOWFLAKE_WAREHOUSE", "a warehouse name") or None,
        host=reader.optional("SNOWFLAKE_HOST"),
        port=port,
        protocol=protocol,
    )


def _read_sync(reader: EnvReader) -> SyncSettings:
    prefix = reader.optional("SYNC_EXPORT_PREFIX", "runs/") or "runs/"
    if not prefix.endswith("/"):
        prefix += "/"
    if not _PREFIX.fullmatch(prefix):
        reader.problems.append(f"SYNC_EXPORT_PREFIX={prefix!r:.60} should be a plain S3 key prefix such as runs/")
    poll = reader.number("SYNC_POLL_INTERVAL_SECONDS", 30.0, minimum=0.01)
    poll_max = reader.number("SYNC_POLL_MAX_INTERVAL_SECONDS", max(60.0, poll), minimum=0.01)
    if poll_max < poll:
        reader.problems.append(f"SYNC_POLL_MAX_INTERVAL_SECONDS ({poll_max:g}) should be ≥ "
                               f"SYNC_POLL_INTERVAL_SECONDS ({poll:g})")
    db_url = reader.optional("SYNC_DB_URL")
    if db_url and not db_url.startswith(("postgresql://", "postgres://")):
        reader.problems.append(f"SYNC_DB_URL={redact_url(db_url)!r:.80} should be a postgresql:// URL "
                               "(leave it empty to keep runs in the SQLite file at SYNC_DB_PATH)")
    return SyncSettings(
        export_prefix=prefix,
        poll_interval_seconds=poll,
        poll_max_interval_seconds=poll_max,
        run_timeout_seconds=reader.number("SYNC_RUN_TIMEOUT_SECONDS", 1800.0, minimum=1),
        load_timeout_seconds=reader.number("SYNC_LOAD_TIMEOUT_SECONDS", 1800.0, minimum=1),
        resume_grace_seconds=reader.number("SYNC_RESUME_GRACE_SECONDS", 300.0, minimum=0),
        lease_seconds=reader.number("SYNC_LEASE_SECONDS", 30.0, minimum=1),
        db_path=reader.optional("SYNC_DB_PATH", "./syncbot.db") or "./syncbot.db",
        db_url=db_url,
    )


def _defaults(reader: EnvReader, sync: SyncSettings) -> SyncDefaults:
    """What a sync falls back to for each key it leaves out: today's environment variable of the same meaning."""
    file_format = reader.identifier("SNOWFLAKE_FILE_FORMAT", "a named Parquet file format") or "SYNCBOT_PARQUET"
    return SyncDefaults(
        databricks_job_id=reader.integer("DATABRICKS_JOB_ID", "the export job's id (Workflows → the job → Job ID)"),
        snowflake_database=reader.identifier("SNOWFLAKE_DATABASE", "the target table's database"),
        snowflake_schema=reader.identifier("SNOWFLAKE_SCHEMA", "the target table's schema"),
        snowflake_table=reader.identifier("SNOWFLAKE_TABLE", "the table the sync loads"),
        snowflake_stage=reader.identifier("SNOWFLAKE_STAGE", "the external stage over the S3 bucket"),
        snowflake_file_format=file_format,
        allowed_users=reader.ids("SYNC_ALLOWED_USERS"),
        allowed_channels=reader.ids("SYNC_ALLOWED_CHANNELS"),
        run_timeout_seconds=sync.run_timeout_seconds,
        report_channel=reader.optional("SYNC_REPORT_CHANNEL"),
    )


def read_settings(reader: EnvReader) -> Settings:
    """Read the orchestrator's settings; problems accumulate in `reader.problems`."""
    databricks = _read_databricks(reader)
    snowflake = _read_snowflake(reader)
    sync = _read_sync(reader)
    defaults = _defaults(reader, sync)
    explicit = reader.optional("SYNC_CONFIG")
    config_path = Path(explicit or DEFAULT_CONFIG_PATH).expanduser()
    if explicit and not config_path.is_file():
        reader.problems.append(f"SYNC_CONFIG={explicit}: no such file (leave SYNC_CONFIG unset to run the one sync "
                               "described by the environment variables)")
    path = config_path if config_path.is_file() else None
    syncs, problems = load_syncs(path, defaults)
    reader.problems.extend(problems)
    if path is not None:
        sync = SyncSettings(**{**sync.__dict__, "config_path": str(path)})
    return Settings(databricks=databricks, snowflake=snowflake, sync=sync, syncs=syncs,
                    secrets=secret_values(reader.environ))


def load_settings(environ: Mapping[str, str]) -> Settings:
    reader = EnvReader(environ)
    settings = read_settings(reader)
    if reader.problems:
        raise SettingsError(reader.problems)
    return settings
