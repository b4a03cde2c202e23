"""Slack's rate limits, kept on our side: the bot waits for its turn instead of running into a 429.

chat.postMessage allows about one message per second per channel (short bursts tolerated); chat.update is Tier 3,
about 50 a minute for the workspace. Each (method, channel) lane is a token bucket a little below those rates;
callers queue for a token, outcomes first (a finished run's last replies and final parent), then new runs' parents,
then progress, so that a busy channel delays progress replies, not outcomes. While a run waits for its turn its steps
pile up and go out as one reply.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field

POST_PER_SECOND = 0.9  # chat.postMessage per channel: Slack's ~1/s, with a margin
POST_BURST = 2
UPDATE_PER_MINUTE = 45  # chat.update (Tier 3, ~50/min) for the whole workspace
UPDATE_BURST = 4
OUTCOME, NEW_RUN, PROGRESS = 0, 1, 2  # the order in which waiting calls get their turn


@dataclass
class _Lane:
    rate: float  # tokens per second
    burst: float
    tokens: float
    updated: float
    waiters: list[tuple[int, Callable[[], int], asyncio.Future[None]]] = field(default_factory=list)
    dispatcher: asyncio.Task[None] | None = None

    def refill(self, now: float) -> None:
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now


class SlackPacer:
    def __init__(self, *, post_per_second: float = POST_PER_SECOND, post_burst: int = POST_BURST,
                 update_per_minute: float = UPDATE_PER_MINUTE, update_burst: int = UPDATE_BURST) -> None:
        self._limits = {"chat.postMessage": (post_per_second, post_burst),
                        "chat.update": (update_per_minute / 60, update_burst)}
        self._lanes: dict[tuple[str, str], _Lane] = {}
        self._order = itertools.count()

    async def turn(self, method: str, channel: str, *, priority: int | Callable[[], int] = PROGRESS) -> None:
        """Return when a call of `method` may be made (postMessage: per channel; update: per workspace). A callable
        priority is asked again at each turn: a run that ends while it waits moves to the front."""
        if method not in self._limits:
            return
        loop = asyncio.get_running_loop()
        key = (method, channel if method == "chat.postMessage" else "*")
        lane = self._lanes.get(key)
        if lane is None:
            rate, burst = self._limits[method]
            lane = self._lanes[key] = _Lane(rate, burst, burst, loop.time())
        lane.refill(loop.time())
        if not lane.waiters and lane.tokens >= 1:
            lane.tokens -= 1
            return
        future: asyncio.Future[None] = loop.create_future()
        lane.waiters.append((next(self._order), priority if callable(priority) else (lambda: priority), future))
        if lane.dispatcher is None or lane.dispatcher.done():
            lane.dispatcher = asyncio.create_task(self._dispatch(lane))
        await future

    async def _dispatch(self, lane: _Lane) -> None:
        loop = asyncio.get_running_loop()
        while lane.waiters:
            lane.refill(loop.time())
            if lane.tokens < 1:
                await asyncio.sleep((1 - lane.tokens) / lane.rate)
                continue
            chosen = min(lane.waiters, key=lambda waiter: (waiter[1](), waiter[0]))
            lane.waiters.remove(chosen)
            future = chosen[2]
            if not future.done():  # a caller that gave up does not spend a token
                lane.tokens -= 1
                future.set_result(None)
