"""`python -m bot doctor`: one line per check of the configured setup against the live services; exit 0 only when
every check passes. Slack here; Databricks and Snowflake in orchestrator/doctor.py. No data moves."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

from slack_sdk.errors import SlackApiError

from orchestrator import build_doctor

from .app import build_client
from .settings import BotSettings

Check = tuple[bool, str, str]


async def slack_checks(settings: BotSettings) -> AsyncIterator[Check]:
    client = build_client(settings)
    try:
        identity = await client.auth_test()
        yield True, f"Slack: bot token works (team {identity.get('team')}, bot user {identity.get('user')})", ""
    except SlackApiError as exc:
        yield False, "Slack: bot token", (f"Slack says {exc.response.get('error')}: copy the Bot User OAuth Token "
                                          "(xoxb-…) from the app's OAuth & Permissions page into SLACK_BOT_TOKEN")
    except Exception as exc:
        yield False, "Slack: bot token", f"cannot reach Slack ({type(exc).__name__}: {exc}); check the network"
    try:
        await client.apps_connections_open(app_token=settings.app_token)
        yield True, "Slack: app token opens a Socket Mode connection (Socket Mode is on)", ""
    except SlackApiError as exc:
        yield False, "Slack: app token and Socket Mode", (
            f"Slack says {exc.response.get('error')}: create an app-level token with connections:write (Basic "
            "Information → App-Level Tokens) into SLACK_APP_TOKEN, and turn Socket Mode on")
    except Exception as exc:
        yield False, "Slack: app token", f"cannot reach Slack ({type(exc).__name__}: {exc})"


async def run_doctor(settings: BotSettings, out: list[str]) -> bool:
    ok = True
    async for passed, what, fix in slack_checks(settings):
        out.append(f"✓ {what}" if passed else f"✗ {what} — {fix}")
        ok &= passed
    doctor = build_doctor(settings.orchestrator)
    for check in await asyncio.to_thread(lambda: list(_all(doctor.checks()))):
        out.append(check.line())
        ok &= check.ok
    return ok


def _all(checks: Iterator) -> Iterator:  # type: ignore[type-arg]
    yield from checks
