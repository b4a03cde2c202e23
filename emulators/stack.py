"""The whole local stack — S3, Snowflake, Databricks, Slack — on free loopback ports, in background threads."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from aiohttp import web

from ._net import free_port
from .databricks import DatabricksEmulator
from .s3 import S3Emulator
from .slack import SlackEmulator
from .snowflake import ROLE, WAREHOUSE, SnowflakeEmulator

T = TypeVar("T")

DEMO_DATABASE = "ANALYTICS"
DEMO_SCHEMA = "WEATHER"
DEMO_TABLE = "FORECAST_DAILY"
DEMO_HISTORY_TABLE = "FORECAST_HISTORY"
DEMO_STAGE = "DATABRICKS_SHARE"
DEMO_JOB_ID = 101


SERVICES = ("s3", "snowflake", "databricks", "slack")


class LocalStack:
    def __init__(self, *, poll_interval_seconds: float = 0.5, poll_max_interval_seconds: float = 1.0,
                 run_timeout_seconds: float = 120.0, services: tuple[str, ...] = SERVICES,
                 job_seconds: float | None = None) -> None:
        unknown = set(services) - set(SERVICES)
        if unknown:
            raise ValueError(f"unknown services {sorted(unknown)}; choose from {', '.join(SERVICES)}")
        # Snowflake reads, and Databricks writes, the S3 bucket: they bring S3 along.
        self.services = set(services) | ({"s3"} if {"snowflake", "databricks"} & set(services) else set())
        self.s3 = S3Emulator()
        self.snowflake = SnowflakeEmulator(self.s3)
        self.databricks = DatabricksEmulator(self.s3, job_seconds=job_seconds)
        self.slack = SlackEmulator()
        self.poll_interval_seconds = poll_interval_seconds
        self.poll_max_interval_seconds = poll_max_interval_seconds
        self.run_timeout_seconds = run_timeout_seconds
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="local-stack", daemon=True)
        self._runners: list[web.AppRunner] = []
        self.databricks_port = free_port()
        self.slack_port = free_port()

    def start(self) -> LocalStack:
        if "s3" in self.services:
            self.s3.start()
        if "snowflake" in self.services:
            self.snowflake.start()
            self.snowflake.setup_demo(database=DEMO_DATABASE, schema=DEMO_SCHEMA,
                                      tables=(DEMO_TABLE, DEMO_HISTORY_TABLE), stage=DEMO_STAGE)
        self._thread.start()
        self.databricks.base_url = f"http://127.0.0.1:{self.databricks_port}"
        self.slack.base_url = f"http://127.0.0.1:{self.slack_port}"
        if "databricks" in self.services:
            self.call(self._serve(self.databricks.app(), self.databricks_port))
        if "slack" in self.services:
            self.call(self._serve(self.slack.app(), self.slack_port))
        return self

    def stop(self) -> None:
        if self._thread.is_alive():
            for runner in self._runners:
                self.call(runner.cleanup())
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=10)
        if "snowflake" in self.services:
            self.snowflake.stop()
        if "s3" in self.services:
            self.s3.stop()

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    async def _serve(self, app: web.Application, port: int) -> None:
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        self._runners.append(runner)

    def call(self, coroutine: Coroutine[Any, Any, T], timeout: float = 60) -> T:
        """Run a coroutine on the stack's loop from plain (non-async) code."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    async def acall(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run a coroutine on the stack's loop from another event loop (a test's, the bot's)."""
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coroutine, self.loop))

    def env(self) -> dict[str, str]:
        """The environment a bot needs to use this stack: the same variables production uses."""
        env = self._all_env()
        prefixes = {"slack": ("SLACK_",), "databricks": ("DATABRICKS_",), "snowflake": ("SNOWFLAKE_",)}
        dropped = tuple(p for service, names in prefixes.items() if service not in self.services for p in names)
        return {name: value for name, value in env.items() if not name.startswith(dropped)}

    def _all_env(self) -> dict[str, str]:
        env = {
            "SLACK_BOT_TOKEN": self.slack.bot_token,
            "SLACK_APP_TOKEN": self.slack.app_token,
            "SLACK_API_URL": f"{self.slack.base_url}/api/",
            "DATABRICKS_HOST": self.databricks.base_url,
            "DATABRICKS_TOKEN": self.databricks.token,
            "DATABRICKS_JOB_ID": str(DEMO_JOB_ID),
            "SNOWFLAKE_ACCOUNT": "fakesnow",
            "SNOWFLAKE_USER": self.snowflake.user,
            "SNOWFLAKE_PASSWORD": self.snowflake.password,
            "SNOWFLAKE_DATABASE": DEMO_DATABASE,
            "SNOWFLAKE_SCHEMA": DEMO_SCHEMA,
            "SNOWFLAKE_TABLE": DEMO_TABLE,
            "SNOWFLAKE_STAGE": DEMO_STAGE,
            "SNOWFLAKE_HOST": "127.0.0.1",
            "SNOWFLAKE_PORT": str(self.snowflake.port),
            "SNOWFLAKE_PROTOCOL": "http",
            "SNOWFLAKE_ROLE": ROLE,
            "SNOWFLAKE_WAREHOUSE": WAREHOUSE,
            "SYNC_POLL_INTERVAL_SECONDS": str(self.poll_interval_seconds),
            "SYNC_POLL_MAX_INTERVAL_SECONDS": str(self.poll_max_interval_seconds),
            "SYNC_RUN_TIMEOUT_SECONDS": str(self.run_timeout_seconds),
            "SYNC_ALLOWED_USERS": "*",
            "SYNC_ALLOWED_CHANNELS": "*",
        }
        if "s3" in self.services:  # for boto3 and the AWS CLI; the bot itself needs no AWS credentials
            env["AWS_ENDPOINT_URL_S3"] = self.s3.endpoint_url
        return env
