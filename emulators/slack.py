"""Slack stand-in: the Web API methods syncbot calls plus a Socket Mode WebSocket, so slack-bolt's real
Socket Mode handler connects to it. It sends slash commands and button clicks, and records every message.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

TEAM_ID = "T0LOCAL"
BOT_USER_ID = "U0SYNCBOT"
APP_ID = "A0SYNCBOT"
DEMO_CHANNEL_ID = "C0DATAENG"
DEMO_CHANNEL_NAME = "data-eng"
DEMO_USER_ID = "U0DEMO"


_FINAL_PARENT = re.compile(r"^\S+ (SUCCESS|FAILED|CANCELLED): sync ")


@dataclass
class Message:
    channel: str
    ts: str
    user: str
    text: str
    blocks: list[dict[str, Any]] = field(default_factory=list)
    thread_ts: str | None = None
    edits: int = 0
    history: list[str] = field(default_factory=list)  # every text this message has had, oldest first

    @property
    def shows_final_run(self) -> bool:
        """A run's parent message whose text (status word first, as the bot writes it) says the run has ended."""
        return self.thread_ts is None and bool(_FINAL_PARENT.match(self.text))


@dataclass
class Ephemeral:
    channel: str
    user: str
    text: str
    via: str  # "ack", "chat.postEphemeral" or "response_url"
    blocks: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Fault:
    status: int
    error: str
    remaining: int
    retry_after: float | None = None


class SlackEmulator:
    def __init__(self, *, bot_token: str = "xoxb-local-stack", app_token: str = "xapp-local-stack") -> None:
        self.bot_token = bot_token
        self.app_token = app_token
        self.channels: dict[str, str] = {DEMO_CHANNEL_ID: DEMO_CHANNEL_NAME, "C0PRIVATE": "private-team"}
        self.bot_channels: set[str] = {DEMO_CHANNEL_ID}  # where the bot is a member
        self.messages: list[Message] = []
        self.ephemerals: list[Ephemeral] = []
        self.calls: list[str] = []
        self.acks: dict[str, dict[str, Any]] = {}
        self.base_url = ""
        self._faults: dict[str, Fault] = {}
        self._sockets: list[web.WebSocketResponse] = []
        self._pending_acks: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._envelopes: dict[str, dict[str, Any]] = {}
        self._ts = itertools.count(1)
        self._listeners: list[Callable[[], None]] = []
        self._connected = asyncio.Event()
        self._response_urls: dict[str, tuple[str, str]] = {}

    # ---- what the bot posted ------------------------------------------------------------------------------------

    def on_change(self, listener: Callable[[], None]) -> None:
        self._listeners.append(listener)

    def _changed(self) -> None:
        for listener in list(self._listeners):
            listener()

    def parents(self, channel: str | None = None) -> list[Message]:
        return [m for m in self.messages if m.thread_ts is None and (channel is None or m.channel == channel)]

    def replies(self, parent: Message) -> list[Message]:
        return [m for m in self.messages if m.thread_ts == parent.ts and m.channel == parent.channel]

    def find_parent(self, run_id: str) -> Message | None:
        return next((m for m in self.parents() if run_id in m.text), None)

    def thread_text(self, run_id: str) -> str:
        parent = self.find_parent(run_id)
        if parent is None:
            return ""
        return "\n".join([parent.text, *(reply.text for reply in self.replies(parent))])

    def ephemeral_texts(self, user: str | None = None) -> list[str]:
        return [e.text for e in self.ephemerals if user is None or e.user == user]

    # ---- test switches ------------------------------------------------------------------------------------------

    def inject(self, method: str, *, status: int = 200, error: str = "internal_error", times: int = 1,
               retry_after: float | None = None) -> None:
        """The next `times` calls to a Web API method fail: 429 with Retry-After, a 500, or ok=false `error`."""
        self._faults[method] = Fault(status, error, times, retry_after)

    def reset(self) -> None:
        self._faults.clear()
        self.bot_channels = {DEMO_CHANNEL_ID}

    async def drop_sockets(self) -> None:
        """Close every Socket Mode connection, as Slack does on a refresh; the client must reconnect."""
        self._connected.clear()
        for socket in list(self._sockets):
            await socket.close()

    # ---- sending like Slack -------------------------------------------------------------------------------------

    @property
    def connections(self) -> list[web.WebSocketResponse]:
        """The open Socket Mode connections (a bot that connected and has not gone away)."""
        return list(self._sockets)

    async def wait_connected(self, timeout: float = 10) -> None:
        await asyncio.wait_for(self._connected.wait(), timeout)

    def slash_command_payload(self, text: str, *, user: str = DEMO_USER_ID, channel: str = DEMO_CHANNEL_ID,
                              command: str = "/sync") -> dict[str, Any]:
        response_id = uuid.uuid4().hex
        self._response_urls[response_id] = (channel, user)
        return {
            "token": "unused-verification-token", "team_id": TEAM_ID, "team_domain": "local",
            "channel_id": channel, "channel_name": self.channels.get(channel, "directmessage"),
            "user_id": user, "user_name": user.lower(), "command": command, "text": text,
            "api_app_id": APP_ID, "is_enterprise_install": "false",
            "response_url": f"{self.base_url}/response/{response_id}",
            "trigger_id": f"{next(self._ts)}.{uuid.uuid4().hex[:12]}",
        }

    async def send_command(self, text: str, *, user: str = DEMO_USER_ID, channel: str = DEMO_CHANNEL_ID,
                           timeout: float = 10) -> dict[str, Any]:
        """Deliver `/sync <text>` over Socket Mode; returns the ack (with `latency_ms`)."""
        payload = self.slash_command_payload(text, user=user, channel=channel)
        return await self.send_envelope("slash_commands", payload, timeout=timeout)

    async def click(self, parent: Message, action_id: str, *, user: str = DEMO_USER_ID,
                    timeout: float = 10) -> dict[str, Any]:
        """Press a button of a message, as a block_actions interactive payload."""
        action = next(element for block in parent.blocks if block.get("type") == "actions"
                      for element in block.get("elements", []) if element.get("action_id") == action_id)
        response_id = uuid.uuid4().hex
        self._response_urls[response_id] = (parent.channel, user)
        payload = {
            "type": "block_actions", "team": {"id": TEAM_ID}, "user": {"id": user, "username": user.lower()},
            "api_app_id": APP_ID, "trigger_id": f"{next(self._ts)}.{uuid.uuid4().hex[:12]}",
            "container": {"type": "message", "message_ts": parent.ts, "channel_id": parent.channel},
            "channel": {"id": parent.channel, "name": self.channels.get(parent.channel, "")},
            "message": {"ts": parent.ts, "text": parent.text, "blocks": parent.blocks},
            "response_url": f"{self.base_url}/response/{response_id}",
            "actions": [{"type": "button", "action_id": action_id, "block_id": "actions",
                         "value": action.get("value", ""), "action_ts": f"{time.time():.6f}"}],
        }
        return await self.send_envelope("interactive", payload, timeout=timeout)

    async def send_envelope(self, kind: str, payload: dict[str, Any], *, envelope_id: str | None = None,
                            timeout: float = 10) -> dict[str, Any]:
        await self.wait_connected(timeout)
        envelope_id = envelope_id or str(uuid.uuid4())
        envelope = {"envelope_id": envelope_id, "type": kind, "accepts_response_payload": kind != "events_api",
                    "payload": payload, "retry_attempt": 0, "retry_reason": ""}
        if envelope_id in self._envelopes:  # Slack's redelivery of an envelope
            envelope.update(retry_attempt=1, retry_reason="timeout")
        self._envelopes[envelope_id] = payload
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending_acks[envelope_id] = future
        sent = time.perf_counter()
        await self._sockets[-1].send_str(json.dumps(envelope))
        ack = await asyncio.wait_for(future, timeout)
        ack["latency_ms"] = (time.perf_counter() - sent) * 1000
        if kind == "slash_commands" and (ack.get("text") or ack.get("blocks")):
            channel, user = payload["channel_id"], payload["user_id"]
            if ack.get("response_type") == "in_channel":
                self._post(channel, ack.get("text", ""), ack.get("blocks") or [], None, BOT_USER_ID)
            else:
                self.ephemerals.append(Ephemeral(channel, user, ack.get("text", ""), "ack", ack.get("blocks") or []))
                self._changed()
        return ack

    # ---- the HTTP app -------------------------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/api/{method}", self._api)
        app.router.add_get("/socket", self._socket)
        app.router.add_post("/response/{response_id}", self._response_url)
        return app

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        self.calls.append(method)
        args = await _arguments(request)
        if (fault := self._faults.get(method)) and fault.remaining > 0:
            fault.remaining -= 1
            headers = {"Retry-After": f"{fault.retry_after:g}"} if fault.retry_after is not None else None
            error = "ratelimited" if fault.status == 429 else fault.error
            return web.json_response({"ok": False, "error": error}, status=fault.status, headers=headers)
        expected = self.app_token if method == "apps.connections.open" else self.bot_token
        if request.headers.get("Authorization") != f"Bearer {expected}":
            return web.json_response({"ok": False, "error": "invalid_auth"})
        handler = getattr(self, "_" + method.replace(".", "_"), None)
        if handler is None:
            return web.json_response({"ok": False, "error": "unknown_method"})
        return web.json_response(handler(args))

    def _auth_test(self, _: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "url": "https://local-stack.slack.invalid/", "team": "Local", "user": "syncbot",
                "team_id": TEAM_ID, "user_id": BOT_USER_ID, "bot_id": "B0SYNCBOT", "is_enterprise_install": False}

    def _apps_connections_open(self, _: dict[str, Any]) -> dict[str, Any]:
        ws_url = self.base_url.replace("http://", "ws://") + f"/socket?ticket={uuid.uuid4().hex}"
        return {"ok": True, "url": ws_url}

    def _chat_postMessage(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = str(args.get("channel", ""))
        if not self._can_post(channel):
            return {"ok": False, "error": "not_in_channel" if channel in self.channels else "channel_not_found"}
        message = self._post(self._dm_channel(channel), str(args.get("text", "")), _blocks(args),
                             args.get("thread_ts"), BOT_USER_ID)
        return {"ok": True, "channel": message.channel, "ts": message.ts,
                "message": {"text": message.text, "ts": message.ts, "user": BOT_USER_ID}}

    def _chat_update(self, args: dict[str, Any]) -> dict[str, Any]:
        channel, ts = self._dm_channel(str(args.get("channel", ""))), str(args.get("ts", ""))
        message = next((m for m in self.messages if m.channel == channel and m.ts == ts), None)
        if message is None:
            return {"ok": False, "error": "message_not_found"}
        message.text = str(args.get("text", message.text))
        message.blocks = _blocks(args) or message.blocks
        message.edits += 1
        message.history.append(message.text)
        self._changed()
        return {"ok": True, "channel": channel, "ts": ts, "text": message.text}

    def _chat_postEphemeral(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = str(args.get("channel", ""))
        if channel in self.channels and channel not in self.bot_channels:
            return {"ok": False, "error": "not_in_channel"}
        self.ephemerals.append(Ephemeral(channel, str(args.get("user", "")), str(args.get("text", "")),
                                         "chat.postEphemeral", _blocks(args)))
        self._changed()
        return {"ok": True, "message_ts": self._next_ts()}

    async def _response_url(self, request: web.Request) -> web.Response:
        target = self._response_urls.get(request.match_info["response_id"])
        if target is None:
            return web.Response(status=404, text="expired_url")
        channel, user = target
        body = await request.json()
        if body.get("response_type") == "in_channel":
            self._post(channel, str(body.get("text", "")), body.get("blocks") or [], None, BOT_USER_ID)
        else:
            self.ephemerals.append(Ephemeral(channel, user, str(body.get("text", "")), "response_url",
                                             body.get("blocks") or []))
            self._changed()
        return web.Response(text="ok")

    async def _socket(self, request: web.Request) -> web.WebSocketResponse:
        socket = web.WebSocketResponse(autoping=True)
        await socket.prepare(request)
        await socket.send_str(json.dumps({"type": "hello", "num_connections": len(self._sockets) + 1,
                                          "debug_info": {"host": "local-stack"},
                                          "connection_info": {"app_id": APP_ID}}))
        self._sockets.append(socket)
        self._connected.set()
        try:
            async for frame in socket:
                if frame.type != WSMsgType.TEXT:
                    continue
                data = json.loads(frame.data)
                future = self._pending_acks.pop(data.get("envelope_id", ""), None)
                self.acks[data.get("envelope_id", "")] = data.get("payload") or {}
                if future is not None and not future.done():
                    future.set_result(dict(data.get("payload") or {}))
        finally:
            self._sockets.remove(socket)
            if not self._sockets:
                self._connected.clear()
        return socket

    # ---- helpers ------------------------------------------------------------------------------------------------

    def _can_post(self, channel: str) -> bool:
        return channel in self.bot_channels or channel.startswith(("U", "D"))

    @staticmethod
    def _dm_channel(channel: str) -> str:
        # Posting to a user id lands in the app's DM with that user, as on Slack.
        return "D" + channel[1:] if channel.startswith("U") else channel

    def _next_ts(self) -> str:
        return f"{int(time.time())}.{next(self._ts):06d}"

    def _post(self, channel: str, text: str, blocks: list[dict[str, Any]], thread_ts: str | None,
              user: str) -> Message:
        message = Message(channel, self._next_ts(), user, text, blocks, thread_ts, history=[text])
        self.messages.append(message)
        self._changed()
        return message


async def _arguments(request: web.Request) -> dict[str, Any]:
    if request.content_type == "application/json":
        return dict(await request.json())
    return dict(await request.post())


def _blocks(args: dict[str, Any]) -> list[dict[str, Any]]:
    blocks = args.get("blocks") or []
    return json.loads(blocks) if isinstance(blocks, str) else list(blocks)
