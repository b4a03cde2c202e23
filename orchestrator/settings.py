"""Settings, read once from the environment and validated; every problem is reported at once."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .models import SyncTarget

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]{0,254}$")
_PREFIX = re.compile(r"^([A-Za-z0-9_.=-]+/)*$")


class SettingsError(Exception):
    """Start-up cannot go on; `problems` names each variable and what it should hold."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        lines = "\n".join(f"  - {problem}" for problem in problems)
        super().__init__(f"syncbot cannot start; fix these settings (see .env.example):\n{lines}")


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

    def identifier(self, name: str, meaning: str, *, required: bool = True) -> str:
        value = self.required(name, meaning) if required else (self.optional(name) or "")
        if value and not _IDENTIFIER.fullmatch(value):
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

    def integer(self, name: str, meaning: str, *, required: bool = True) -> int:
        text = self.required(name, meaning) if required else self.optional(name)
        if not text:
            return 0
        if not text.isdigit() or int(text) <= 0:
            self.problems.append(f"{name}={text!r:.40} should be a positive whole number: {meaning}")
            return 0
        return int(text)


@dataclass(frozen=True)
class DatabricksSettings:
    host: str | None
    job_id: int
    token: str | None = field(default=None, repr=False)
    # Everything else (token, OAuth service principal, profile) is read by the SDK's own unified auth.


@dataclass(frozen=True)
class SnowflakeSettings:
    account: str
    user: str
    password: str | None
    private_key_file: str | None
    private_key_passphrase: str | None
    database: str
    schema: str
    table: str
    stage: str
    role: str | None = None
    warehouse: str | None = None
    host: str | None = None
    port: int | None = None
    protocol: str | None = None

    def connect_kwargs(self) -> dict[str, object]:
        """Arguments for snowflake.connector.connect; secrets stay inside this dict."""
        kwargs: dict[str, object] = {"account": self.account, "user": self.user, "database": self.database,
                                     "schema": self.schema}
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
    db_path: str = "./syncbot.db"


@dataclass(frozen=True)
class Settings:
    databricks: DatabricksSettings
    snowflake: SnowflakeSettings
    sync: SyncSettings
    secrets: tuple[str, ...] = field(default=(), repr=False)

    @property
    def default_target(self) -> SyncTarget:
        return SyncTarget(job_id=self.databricks.job_id, database=self.snowflake.database,
                          schema=self.snowflake.schema, table=self.snowflake.table, stage=self.snowflake.stage)


SECRET_VARIABLES = ("DATABRICKS_TOKEN", "DATABRICKS_CLIENT_SECRET", "SNOWFLAKE_PASSWORD",
                    "SNOWFLAKE_PRIVATE_KEY_PASSPHRASE", "SLACK_BOT_TOKEN", "SLACK_APP_TOKEN")


def secret_values(environ: Mapping[str, str]) -> tuple[str, ...]:
    """Every configured secret, so logs and messages can be scrubbed of them."""
    return tuple(value for name in SECRET_VARIABLES if len(value := environ.get(name, "").strip()) >= 4)


def read_settings(reader: EnvReader) -> Settings:
    """Read the orchestrator's settings; problems accumulate in `reader.problems`."""
    env = reader.environ
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
    job_id = reader.integer("DATABRICKS_JOB_ID", "the id of the export job (Workflows → the job → Job ID)")
    databricks = DatabricksSettings(host=host, job_id=job_id, token=reader.optional("DATABRICKS_TOKEN"))

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
    snowflake = SnowflakeSettings(
        account=reader.required("SNOWFLAKE_ACCOUNT", "your account identifier, e.g. myorg-myaccount"),
        user=reader.required("SNOWFLAKE_USER", "the bot's Snowflake user"),
        password=password,
        private_key_file=key_file,
        private_key_passphrase=reader.optional("SNOWFLAKE_PRIVATE_KEY_PASSPHRASE"),
        database=reader.identifier("SNOWFLAKE_DATABASE", "the target table's database"),
        schema=reader.identifier("SNOWFLAKE_SCHEMA", "the target table's schema"),
        table=reader.identifier("SNOWFLAKE_TABLE", "the table COPY INTO loads"),
        stage=reader.identifier("SNOWFLAKE_STAGE", "the external stage over the S3 bucket, e.g. DATABRICKS_SHARE"),
        role=reader.identifier("SNOWFLAKE_ROLE", "a role name", required=False) or None,
        warehouse=reader.identifier("SNOWFLAKE_WAREHOUSE", "a warehouse name", required=False) or None,
        host=reader.optional("SNOWFLAKE_HOST"),
        port=port,
        protocol=protocol,
    )

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
    sync = SyncSettings(
        export_prefix=prefix,
        poll_interval_seconds=poll,
        poll_max_interval_seconds=poll_max,
        run_timeout_seconds=reader.number("SYNC_RUN_TIMEOUT_SECONDS", 1800.0, minimum=1),
        db_path=reader.optional("SYNC_DB_PATH", "./syncbot.db") or "./syncbot.db",
    )
    return Settings(databricks=databricks, snowflake=snowflake, sync=sync, secrets=secret_values(env))


def load_settings(environ: Mapping[str, str]) -> Settings:
    reader = EnvReader(environ)
    settings = read_settings(reader)
    if reader.problems:
        raise SettingsError(reader.problems)
    return settings
