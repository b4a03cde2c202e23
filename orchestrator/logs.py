"""Structured logs: one line per event, `key=value` fields, with every configured secret scrubbed out."""

from __future__ import annotations

import atexit
import logging
import logging.handlers
import queue
import sys
from collections.abc import Iterable
from typing import Any


class KeyValueFormatter(logging.Formatter):
    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.secrets = tuple(sorted({s for s in secrets if s}, key=len, reverse=True))

    def format(self, record: logging.LogRecord) -> str:
        stamp = self.formatTime(record, "%Y-%m-%dT%H:%M:%S")
        fields: dict[str, Any] = getattr(record, "fields", {})
        parts = [f"{stamp} {record.levelname} {record.name} {record.getMessage()}"]
        parts += [f"{key}={_quote(value)}" for key, value in fields.items() if value is not None]
        if record.exc_info and record.levelno >= logging.ERROR:
            parts.append(f"exception={_quote(self.formatException(record.exc_info))}")
        return self.scrub(" ".join(parts))

    def scrub(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return text


def _quote(value: object) -> str:
    text = str(value.value if hasattr(value, "value") else value)
    if not text or any(ch.isspace() or ch in '"=' for ch in text):
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    return text


def log_event(logger: logging.Logger, event: str, *, level: int = logging.INFO, exc_info: bool = False,
              **fields: Any) -> None:
    logger.log(level, event, extra={"fields": fields}, exc_info=exc_info)


class _DeferredQueueHandler(logging.handlers.QueueHandler):
    """Hands the record to the writer thread as it is: formatting and writing happen off the event loop."""

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        return record


_listener: logging.handlers.QueueListener | None = None


def configure_logging(secrets: Iterable[str] = (), level: int = logging.INFO) -> None:
    # A log line costs ~0.2 ms to format and write; done on the event loop it was half of a /sync ack's extra time
    # over a bare Bolt app (docs/benchmarks.md). A thread writes them instead.
    global _listener
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(KeyValueFormatter(secrets))
    records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    if _listener is not None:
        _listener.stop()
    _listener = logging.handlers.QueueListener(records, handler)
    _listener.start()
    atexit.register(_listener.stop)
    # The logging HOWTO's optimisations: no caller lookup (a stack walk per record), no thread or process names.
    logging._srcfile = None  # type: ignore[attr-defined]
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    root = logging.getLogger()
    root.handlers[:] = [_DeferredQueueHandler(records)]
    root.setLevel(level)
    for noisy in ("slack_bolt", "slack_sdk", "snowflake.connector", "urllib3", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # The SDK warns when a workspace has no host metadata endpoint; its API errors reach us as exceptions.
    logging.getLogger("databricks.sdk").setLevel(logging.ERROR)
