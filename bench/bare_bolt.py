"""The ack latency baseline: a bare Bolt Socket Mode app that acks /sync with one line of text, configured as
syncbot's Bolt app is (AsyncApp, process_before_response=True, a shared aiohttp session, gc.freeze() after start)."""

from __future__ import annotations

import asyncio
import gc
import os
import signal

import aiohttp
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient


async def main() -> None:
    async with aiohttp.ClientSession() as session:
        client = AsyncWebClient(token=os.environ["SLACK_BOT_TOKEN"], base_url=os.environ["SLACK_API_URL"],
                                session=session)
        app = AsyncApp(client=client, process_before_response=True)

        @app.command("/sync")
        async def sync(ack):  # type: ignore[no-untyped-def]
            await ack(text="ok")

        handler = AsyncSocketModeHandler(app, os.environ["SLACK_APP_TOKEN"])
        await handler.connect_async()
        gc.freeze()
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()
        await handler.close_async()


if __name__ == "__main__":
    asyncio.run(main())
