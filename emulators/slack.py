"""Slack stand-in: the Web API methods syncbot calls plus a Socket Mode WebSocket, so slack-bolt's real Socket Mode
handler connects to it. It sends slash commands and button clicks, and records every message.

As strict as Slack where the bot could trip: blocks and text limits (invalid_blocks, msg_too_long), a response_url
that works 30 minutes and 5 times, a private channel the bot is not in answers channel_not_found (a public one
not_in_channel), the published rate limits when a test turns them on (429 + Retry-After), envelopes spread across
all of the app's open connections and redelivered to another one when not acked within 3 s, message metadata.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import math
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
PRIVATE_CHANNEL_ID = "G0PRIVATE"  # a private channel the bot is not in
PRIVATE_MEMBER_CHANNEL_ID = "G0SECRET"  # a private channel the bot is in
OTHER_CHANNEL_ID = "C0PRIVATE"  # a public channel the bot is not in (its id predates the rename)
MORE_CHANNEL_IDS = ("C0ANALYTICS", "C0PLATFORM", "C0FINANCE")  # more public channels the bot is in
DEMO_USER_ID = "U0DEMO"
FINAL_STATUSES = ("SUCCESS", "FAILED", "CANCELLED")
SECTION_TEXT_LIMIT = 3000
BLOCKS_LIMIT = 50
TEXT_LIMIT = 40_000
RESPONSE_URL_USES = 5
RESPONSE_URL_SECONDS = 30 * 60
REDELIVER_AFTER_SECONDS = 3.0  # Slack redelivers an envelope that was not acked


@dataclass
class Channel:
    id: str
    name: str
    private: bool = False
    bot_member: bool = False


@dataclass
class Message:
    channel: str
    ts: str
    user: str
    text: str
    blocks: list[dict[str, Any]] = field(default_factory=list)
    thread_ts: str | None = None
    metadata: dict[str, Any] | None = None
    edits: int = 0
    history: list[str] = field(default_factory=list)  # every text this message has had, oldest first
    seq: int = 0  # when it was last posted or updated, in the order of all calls (for "the parent goes last")
    final_at: float | None = None  # wall-clock time the parent's metadata first showed a final status

    @property
    def run(self) -> dict[str, Any]:
        """The sync run this parent message shows (its metadata), or {}."""
        if self.metadata and self.metadata.get("event_type") == "sync_run":
            return dict(self.metadata.get("event_payload") or {})
        return {}

    @property
    def shows_final_run(self) -> bool:
        return self.thread_ts is None and self.run.get("status") in FINAL_STATUSES


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


@dataclass
class _Bucket:
    rate: float
    burst: float
    tokens: float
    updated: float

    def take(self, now: float) -> float:
        """0 when a call may go now (and takes its token); else the seconds until one may."""
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate


@dataclass
class _ResponseUrl:
    channel: str
    user: str
    created: float = field(default_factory=time.monotonic)
    uses: int = 0


# Published limits: chat.postMessage about 1/s per channel with short bursts; chat.update Tier 3 (~50/min).
RATE_LIMITS = {"chat.postMessage": (1.0, 3.0), "chat.update": (50 / 60, 5.0)}


class SlackEmulator:
    def __init__(self, *, bot_token: str = "xoxb-local-stack", app_token: str = "xapp-local-stack") -> None:
        self.bot_token = bot_token
        self.app_token = app_token
        self.channels = {channel.id: channel for channel in (
            Channel(DEMO_CHANNEL_ID, DEMO_CHANNEL_NAME, bot_member=True),
            Channel(OTHER_CHANNEL_ID, "general"),
            Channel(PRIVATE_CHANNEL_ID, "private-team", private=True),
            Channel(PRIVATE_MEMBER_CHANNEL_ID, "secret-project", private=True, bot_member=True),
            *(Channel(channel, channel[2:].lower(), bot_member=True) for channel in MORE_CHANNEL_IDS),
        )}
        self.messages: list[Message] = []
        self.ephemerals: list[Ephemeral] = []
        self.calls: list[str] = []
        self.acks: dict[str, dict[str, Any]] = {}
        self.rate_limited: list[tuple[str, str]] = []  # (method, channel) of every 429 the limits gave
        self.refused: list[tuple[str, str]] = []  # (method, error) of every call refused for good
        self.rate_limits = False  # a test switch: enforce Slack's published limits
        self.socket_mode_up = True  # a test switch: False refuses new Socket Mode connections (an outage)
        self.base_url = ""
        self._faults: dict[str, Fault] = {}
        self._buckets: dict[tuple[str, str], _Bucket] = {}
        self._sockets: list[web.WebSocketResponse] = []
        self._next_socket = itertools.count()
        self._pending_acks: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._envelopes: dict[str, dict[str, Any]] = {}
        self._ts = itertools.count(1)
        self._seq = itertools.count(1)
        self._listeners: list[Callable[[], None]] = []
        self._connected = asyncio.Event()
        self._response_urls: dict[str, _ResponseUrl] = {}

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

    def parents_of(self, run_id: str) -> list[Message]:
        """Every parent message that shows this run (its metadata): one, unless a duplicate was posted."""
        return [m for m in self.parents() if m.run.get("run_id") == run_id]

    def find_parent(self, run_id: str) -> Message | None:
        return next(iter(self.parents_of(run_id)), None)

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
        self.rate_limits = False
        self.socket_mode_up = True
        self._buckets.clear()
        for channel in self.channels.values():
            channel.bot_member = channel.id in (DEMO_CHANNEL_ID, PRIVATE_MEMBER_CHANNEL_ID, *MORE_CHANNEL_IDS)

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

    def _response_url(self, channel: str, user: str) -> str:
        response_id = uuid.uuid4().hex
        self._response_urls[response_id] = _ResponseUrl(channel, user)
        return f"{self.base_url}/response/{response_id}"

    def slash_command_payload(self, text: str, *, user: str = DEMO_USER_ID, channel: str = DEMO_CHANNEL_ID,
                              command: str = "/sync") -> dict[str, Any]:
        return {
            "token": "unused-verification-token", "team_id": TEAM_ID, "team_domain": "local",
            "channel_id": channel, "channel_name": self._channel_name(channel),
            "user_id": user, "user_name": user.lower(), "command": command, "text": text,
            "api_app_id": APP_ID, "is_enterprise_install": "false",
            "response_url": self._response_url(channel, user),
            "trigger_id": f"{next(self._ts)}.{uuid.uuid4().hex[:12]}",
        }

    async def send_command(self, text: str, *, user: str = DEMO_USER_ID, channel: str = DEMO_CHANNEL_ID,
                           timeout: float = 10) -> dict[str, Any]:
        """Deliver `/sync <text>` over Socket Mode; returns the ack (with `latency_ms`)."""
        payload = self.slash_command_payload(text, user=user, channel=channel)
        return await self.send_envelope("slash_commands", payload, timeout=timeout)

    async def click(self, message: Message | Ephemeral, action_id: str, *, user: str = DEMO_USER_ID,
                    value: str | None = None, timeout: float = 10) -> dict[str, Any]:
        """Press a button of a message, as a block_actions interactive payload."""
        elements = [element for block in message.blocks
                    for element in ([block.get("accessory")] if block.get("accessory") else block.get("elements", []))
                    if element and element.get("action_id") == action_id]
        action = next(element for element in elements if value is None or element.get("value") == value)
        channel_id = message.channel
        ts = getattr(message, "ts", f"{time.time():.6f}")
        payload = {
            "type": "block_actions", "team": {"id": TEAM_ID}, "user": {"id": user, "username": user.lower()},
            "api_app_id": APP_ID, "trigger_id": f"{next(self._ts)}.{uuid.uuid4().hex[:12]}",
            "container": {"type": "message", "message_ts": ts, "channel_id": channel_id,
                          "is_ephemeral": isinstance(message, Ephemeral)},
            "channel": {"id": channel_id, "name": self._channel_name(channel_id)},
            "message": {"ts": ts, "text": message.text, "blocks": message.blocks},
            "response_url": self._response_url(channel_id, user),
            "actions": [{"type": "button", "action_id": action_id, "block_id": "actions",
                         "value": action.get("value", ""), "action_ts": f"{time.time():.6f}"}],
        }
        return await self.send_envelope("interactive", payload, timeout=timeout)

    async def send_envelope(self, kind: str, payload: dict[str, Any], *, envelope_id: str | None = None,
                            timeout: float = 10) -> dict[str, Any]:
        """Send to one of the open connections (spread across them), redelivering to another connection when the
        ack does not come within 3 s, as Slack does."""
        await self.wait_connected(timeout)
        envelope_id = envelope_id or str(uuid.uuid4())
        attempt = 1 if envelope_id in self._envelopes else 0
        self._envelopes[envelope_id] = payload
        sent = time.perf_counter()
        deadline = time.monotonic() + timeout
        while True:
            envelope = {"envelope_id": envelope_id, "type": kind, "accepts_response_payload": kind != "events_api",
                        "payload": payload, "retry_attempt": attempt, "retry_reason": "timeout" if attempt else ""}
            future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
            self._pending_acks[envelope_id] = future
            await self.wait_connected(max(0.1, deadline - time.monotonic()))
            sockets = self._sockets
            await sockets[next(self._next_socket) % len(sockets)].send_str(json.dumps(envelope))
            try:
                ack = await asyncio.wait_for(asyncio.shield(future),
                                             min(REDELIVER_AFTER_SECONDS, max(0.1, deadline - time.monotonic())))
                break
            except TimeoutError:
                if time.monotonic() >= deadline:
                    raise
                attempt += 1
        ack["latency_ms"] = (time.perf_counter() - sent) * 1000
        if kind == "slash_commands" and (ack.get("text") or ack.get("blocks")):
            channel, user = payload["channel_id"], payload["user_id"]
            if ack.get("response_type") == "in_channel":
                self._post(channel, ack.get("text", ""), ack.get("blocks") or [], None, BOT_USER_ID, None)
            else:
                self.ephemerals.append(Ephemeral(channel, user, ack.get("text", ""), "ack", ack.get("blocks") or []))
                self._changed()
        return ack

    # ---- the HTTP app -------------------------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/api/{method}", self._api)
        app.router.add_get("/socket", self._socket)
        app.router.add_post("/response/{response_id}", self._response)
        return app

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        self.calls.append(method)
        args = await _arguments(request)
        if (fault := self._faults.get(method)) and fault.remaining > 0:
            fault.remaining -= 1
            headers = {"Retry-After": f"{fault.retry_after:g}"} if fault.retry_after is not None else None
            error = "ratelimited" if fault.status == 429 else fault.error
            if fault.status == 200:
                self.refused.append((method, error))
            return web.json_response({"ok": False, "error": error}, status=fault.status, headers=headers)
        expected = self.app_token if method == "apps.connections.open" else self.bot_token
        if request.headers.get("Authorization") != f"Bearer {expected}":
            return web.json_response({"ok": False, "error": "invalid_auth"})
        if self.rate_limits and method in RATE_LIMITS:
            channel = str(args.get("channel", "")) if method == "chat.postMessage" else "*"
            rate, burst = RATE_LIMITS[method]
            bucket = self._buckets.setdefault((method, channel), _Bucket(rate, burst, burst, time.monotonic()))
            if (wait := bucket.take(time.monotonic())) > 0:
                self.rate_limited.append((method, channel))
                return web.json_response({"ok": False, "error": "ratelimited"}, status=429,
                                         headers={"Retry-After": str(max(1, math.ceil(wait)))})
        handler = getattr(self, "_" + method.replace(".", "_"), None)
        if handler is None:
            return web.json_response({"ok": False, "error": "unknown_method"})
        answer = handler(args)
        if not answer.get("ok"):
            self.refused.append((method, str(answer.get("error"))))
        return web.json_response(answer)

    def _auth_test(self, _: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "url": "https://local-stack.slack.invalid/", "team": "Local", "user": "syncbot",
                "team_id": TEAM_ID, "user_id": BOT_USER_ID, "bot_id": "B0SYNCBOT", "is_enterprise_install": False}

    def _apps_connections_open(self, _: dict[str, Any]) -> dict[str, Any]:
        if not self.socket_mode_up:
            return {"ok": False, "error": "internal_error"}
        ws_url = self.base_url.replace("http://", "ws://") + f"/socket?ticket={uuid.uuid4().hex}"
        return {"ok": True, "url": ws_url}

    def _reach(self, channel: str) -> str | None:
        """None when the bot may post in `channel`; else Slack's error."""
        if channel.startswith(("U", "W", "D")):
            return None if channel[1:] else "channel_not_found"
        known = self.channels.get(channel)
        if known is None:
            return "channel_not_found"
        if not known.bot_member:
            return "channel_not_found" if known.private else "not_in_channel"  # a private channel is invisible
        return None

    @staticmethod
    def _refusal(args: dict[str, Any], blocks: list[dict[str, Any]]) -> str | None:
        text = str(args.get("text", ""))
        if len(text) > TEXT_LIMIT:
            return "msg_too_long"
        if len(blocks) > BLOCKS_LIMIT:
            return "invalid_blocks"
        for block in blocks:
            section = block.get("text") or {}
            if len(str(section.get("text", ""))) > SECTION_TEXT_LIMIT:
                return "invalid_blocks"
            if any(len(str(item.get("text", ""))) > 2000 for item in block.get("fields", [])) or \
                    len(block.get("fields", [])) > 10:
                return "invalid_blocks"
        if not text and not blocks:
            return "no_text"
        return None

    def _chat_postMessage(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = str(args.get("channel", ""))
        if error := self._reach(channel):
            return {"ok": False, "error": error}
        blocks = _blocks(args)
        if error := self._refusal(args, blocks):
            return {"ok": False, "error": error}
        message = self._post(self._dm_channel(channel), str(args.get("text", "")), blocks, args.get("thread_ts"),
                             BOT_USER_ID, _metadata(args))
        return {"ok": True, "channel": message.channel, "ts": message.ts,
                "message": {"text": message.text, "ts": message.ts, "user": BOT_USER_ID}}

    def _chat_update(self, args: dict[str, Any]) -> dict[str, Any]:
        channel, ts = self._dm_channel(str(args.get("channel", ""))), str(args.get("ts", ""))
        message = next((m for m in self.messages if m.channel == channel and m.ts == ts), None)
        if message is None:
            return {"ok": False, "error": "message_not_found"}
        blocks = _blocks(args)
        if error := self._refusal(args, blocks):
            return {"ok": False, "error": error}
        message.text = str(args.get("text", message.text))
        message.blocks = blocks or message.blocks
        message.metadata = _metadata(args) or message.metadata
        message.edits += 1
        message.history.append(message.text)
        message.seq = next(self._seq)
        if message.final_at is None and message.shows_final_run:
            message.final_at = time.time()
        self._changed()
        return {"ok": True, "channel": channel, "ts": ts, "text": message.text}

    def _chat_postEphemeral(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = str(args.get("channel", ""))
        if error := self._reach(channel):
            return {"ok": False, "error": error}
        self.ephemerals.append(Ephemeral(channel, str(args.get("user", "")), str(args.get("text", "")),
                                         "chat.postEphemeral", _blocks(args)))
        self._changed()
        return {"ok": True, "message_ts": self._next_ts()}

    async def _response(self, request: web.Request) -> web.Response:
        target = self._response_urls.get(request.match_info["response_id"])
        if target is None or time.monotonic() - target.created > RESPONSE_URL_SECONDS:
            return web.Response(status=404, text="expired_url")
        if target.uses >= RESPONSE_URL_USES:
            return web.Response(status=404, text="used_url")
        target.uses += 1
        body = await request.json()
        blocks = body.get("blocks") or []
        if error := self._refusal(body, blocks):
            return web.Response(status=400, text=error)
        if body.get("response_type") == "in_channel":
            self._post(target.channel, str(body.get("text", "")), blocks, None, BOT_USER_ID, None)
        else:
            if body.get("replace_original"):
                replaced = next((e for e in reversed(self.ephemerals) if e.user == target.user
                                 and e.channel == target.channel and e.blocks), None)
                if replaced is not None:
                    self.ephemerals.remove(replaced)
            self.ephemerals.append(Ephemeral(target.channel, target.user, str(body.get("text", "")), "response_url",
                                             blocks))
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

    def _channel_name(self, channel: str) -> str:
        """What a payload's channel_name says: the name, "privategroup" for a private channel, "directmessage"."""
        known = self.channels.get(channel)
        if known is None:
            return "directmessage"  # a DM with the app: D…
        return "privategroup" if known.private else known.name

    @staticmethod
    def _dm_channel(channel: str) -> str:
        # Posting to a user id lands in the app's DM with that user, as on Slack.
        return "D" + channel[1:] if channel.startswith(("U", "W")) else channel

    def _next_ts(self) -> str:
        return f"{int(time.time())}.{next(self._ts):06d}"

    def _post(self, channel: str, text: str, blocks: list[dict[str, Any]], thread_ts: str | None, user: str,
              metadata: dict[str, Any] | None) -> Message:
        message = Message(channel, self._next_ts(), user, text, blocks, thread_ts, metadata, history=[text],
                          seq=next(self._seq))
        if message.shows_final_run:
            message.final_at = time.time()
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


def _metadata(args: dict[str, Any]) -> dict[str, Any] | None:
    metadata = args.get("metadata")
    if isinstance(metadata, str):
        metadata = json.loads(metadata)
    return dict(metadata) if isinstance(metadata, dict) else None
