"""The operator's HTTP server (SYNC_HTTP_PORT): /healthz, /metrics, and the HTTP API when SYNC_API_TOKEN is set.

  GET  /healthz             200 when the Socket Mode connection is up and the run store is writable, else 503
  GET  /metrics             Prometheus text format (prometheus-client)
  POST /api/sync            {"sync": "<name>"} → 202 {"run_id", "status": "PENDING", …}; 409 when the table is busy
  GET  /api/sync/<run_id>   the run as JSON
  GET  /api/sync?limit=N    recent runs

The API takes a bearer token (compared in constant time); every answer, errors included, is JSON
{"error": "…"} — never a stack trace. Request bodies are capped at 64 KiB.
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

from orchestrator import InvalidRunId, SyncRun, SyncService, UnknownSync, log_event, validate_run_id

from .settings import HttpSettings

log = logging.getLogger("syncbot.http")

MAX_BODY_BYTES = 64 * 1024
API_USER = "api"  # requested_by of a run started over HTTP
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def error(status: int, message: str, **extra: Any) -> web.Response:
    return web.json_response({"error": message, **extra}, status=status)


def run_json(run: SyncRun) -> dict[str, Any]:
    """A run for other tools: everything but the bot's Slack bookkeeping."""
    data = run.to_dict()
    data.pop("context", None)
    data.pop("extra", None)
    data["databricks"] = {"run_id": run.databricks_run_id, "run_page_url": run.run_page_url,
                          "state": run.databricks_state}
    data["snowflake"] = {"query_ids": dict(run.statements), "table": run.target.table_name}
    return data


class OperatorServer:
    def __init__(self, settings: HttpSettings, service: SyncService, socket: AsyncSocketModeHandler) -> None:
        self.settings = settings
        self.service = service
        self.socket = socket
        self._runner: web.AppRunner | None = None
        self.url = ""

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._json_errors], client_max_size=MAX_BODY_BYTES)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/metrics", self._metrics)
        if self.settings.api_token:
            app.router.add_post("/api/sync", self._guarded(self._start))
            app.router.add_get("/api/sync", self._guarded(self._recent))
            app.router.add_get("/api/sync/{run_id}", self._guarded(self._one))
        return app

    async def start(self) -> OperatorServer:
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.settings.host, self.settings.port).start()
        self.url = f"http://{self.settings.host}:{self.settings.port}"
        log_event(log, "http.listening", url=self.url, api=bool(self.settings.api_token))
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    @web.middleware
    async def _json_errors(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except web.HTTPRequestEntityTooLarge:
            return error(413, f"the request body is larger than {MAX_BODY_BYTES // 1024} KiB")
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            return error(exc.status, exc.reason or "error")
        except Exception:
            log_event(log, "http.failed", level=logging.ERROR, exc_info=True, path=request.path)
            return error(500, "internal error in syncbot; the details are in the bot's log")

    # ---- health and metrics ----------------------------------------------------------------------------------------

    async def _healthz(self, request: web.Request) -> web.Response:
        problems = []
        if not await self.socket.client.is_connected():
            problems.append("the Slack Socket Mode connection is down (Bolt is reconnecting)")
        try:
            await self.service.store.check_writable()
        except Exception as exc:
            problems.append(f"the run store is not writable: {exc}")
        if problems:
            return web.json_response({"status": "unavailable", "reason": "; ".join(problems)}, status=503)
        return web.json_response({"status": "ok", "socket_mode": "connected", "store": "writable",
                                  "active_runs": self.service.active_count})

    async def _metrics(self, request: web.Request) -> web.Response:
        body = generate_latest(self.service.metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    # ---- the API ---------------------------------------------------------------------------------------------------

    def _guarded(self, handler: Handler) -> Handler:
        async def guarded(request: web.Request) -> web.StreamResponse:
            header = request.headers.get("Authorization", "")
            if not header.startswith("Bearer "):
                return error(401, "send the API token as `Authorization: Bearer <SYNC_API_TOKEN>`")
            supplied = header.removeprefix("Bearer ").strip().encode()
            if not hmac.compare_digest(supplied, str(self.settings.api_token).encode()):
                return error(403, "the API token is not valid")
            return await handler(request)
        return guarded

    async def _start(self, request: web.Request) -> web.Response:
        if (request.content_length or 0) > MAX_BODY_BYTES:
            return error(413, f"the request body is larger than {MAX_BODY_BYTES // 1024} KiB")
        try:
            body = json.loads(await request.read() or b"{}")
        except (ValueError, UnicodeDecodeError):
            return error(422, 'the body is not JSON; send {"sync": "<name>"}')
        if not isinstance(body, dict):
            return error(422, 'send a JSON object: {"sync": "<name>"}')
        names = list(self.service.syncs)
        name = body.get("sync", names[0] if len(names) == 1 else None)
        if not isinstance(name, str) or not name:
            return error(422, f'name the sync: {{"sync": "<name>"}} (syncs: {", ".join(names)})')
        try:
            definition = self.service.definition(name)
        except UnknownSync:
            return error(404, f"there is no sync named {name[:60]!r}", syncs=names)
        context = {"channel": definition.report_channel, "source": "api"} if definition.report_channel else {}
        result = await self.service.start_sync(name, requested_by=API_USER, context=context)
        run = result.run
        if not result.created:
            return error(409, f"a run of {run.target.table_name} is already active: {run.run_id} ({run.status.value})",
                         active_run={"run_id": run.run_id, "status": run.status.value, "sync": run.sync_name})
        return web.json_response({"run_id": run.run_id, "status": run.status.value, "sync": name,
                                  "url": f"/api/sync/{run.run_id}"}, status=202)

    async def _one(self, request: web.Request) -> web.Response:
        try:
            run_id = validate_run_id(request.match_info["run_id"])
        except InvalidRunId:
            return error(404, "no such run (run ids look like 1127-k3x9qa)")
        run = await self.service.get(run_id)
        if run is None:
            return error(404, f"no run {run_id}")
        return web.json_response(run_json(run))

    async def _recent(self, request: web.Request) -> web.Response:
        text = request.query.get("limit", "10")
        if not text.isdigit() or not 1 <= int(text) <= 200:
            return error(422, "limit should be a whole number from 1 to 200")
        runs = await self.service.recent(int(text))
        return web.json_response({"runs": [{"run_id": run.run_id, "sync": run.sync_name, "status": run.status.value,
                                            "table": run.target_table, "requested_by": run.requested_by,
                                            "created_at": run.created_at.isoformat(),
                                            "finished_at": run.finished_at.isoformat() if run.finished_at else None,
                                            "rows_loaded": run.rows_loaded, "error": run.summary or None}
                                           for run in runs]})
