"""Worker threads for the blocking clients (databricks-sdk, the Snowflake connector), one bounded pool each.

asyncio's default executor has min(32, cores + 4) threads shared by everything: a few long calls of one kind
would hold them all and make every other kind of call wait. Here each client has its own pool, and no call is
long: a COPY is submitted with execute_async and then watched with short status calls from the event loop.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")


class BlockingPool:
    def __init__(self, name: str, workers: int) -> None:
        self.name = name
        self.workers = workers
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"syncbot-{name}")

    async def run(self, call: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        context = contextvars.copy_context()
        return await loop.run_in_executor(self._executor, functools.partial(context.run, call, *args))

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
