"""The bot's settings: Slack, access, and the orchestrator's, validated together at start-up."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from orchestrator.settings import EnvReader, Settings, SettingsError, read_settings


@dataclass(frozen=True)
class AccessPolicy:
    """Who may start and cancel runs. Status is open to the whole workspace."""

    allowed_users: frozenset[str] = frozenset()
    allowed_channels: frozenset[str] = frozenset()

    @property
    def nobody(self) -> bool:
        return not self.allowed_users and not self.allowed_channels

    def refusal(self, user_id: str, channel_id: str) -> str | None:
        """None when allowed; otherwise the reason, naming the setting an admin would change."""
        if self.nobody:
            return ("Nobody may start or cancel syncs yet: an admin sets SYNC_ALLOWED_USERS (Slack user IDs, "
                    "or * for everyone) and/or SYNC_ALLOWED_CHANNELS in syncbot's environment.")
        if self.allowed_users and "*" not in self.allowed_users and user_id not in self.allowed_users:
            return (f"You are not allowed to start or cancel syncs: ask an admin to add your Slack ID "
                    f"`{user_id}` to SYNC_ALLOWED_USERS.")
        if self.allowed_channels and "*" not in self.allowed_channels and channel_id not in self.allowed_channels:
            return (f"Syncs cannot be started or cancelled from this channel: ask an admin to add `{channel_id}` "
                    "to SYNC_ALLOWED_CHANNELS, or use an allowed channel.")
        return None


@dataclass(frozen=True)
class BotSettings:
    bot_token: str = field(repr=False)
    app_token: str = field(repr=False)
    api_url: str | None
    access: AccessPolicy
    orchestrator: Settings


def _ids(text: str | None) -> frozenset[str]:
    return frozenset(part.strip() for part in (text or "").split(",") if part.strip())


def load_bot_settings(environ: Mapping[str, str]) -> BotSettings:
    reader = EnvReader(environ)
    bot_token = reader.required("SLACK_BOT_TOKEN", "the Bot User OAuth Token (xoxb-…) from OAuth & Permissions")
    if bot_token and not bot_token.startswith("xoxb-"):
        reader.problems.append("SLACK_BOT_TOKEN should start with xoxb- (the Bot User OAuth Token)")
    app_token = reader.required("SLACK_APP_TOKEN", "an app-level token (xapp-…) with connections:write, "
                                "from Basic Information → App-Level Tokens")
    if app_token and not app_token.startswith("xapp-"):
        reader.problems.append("SLACK_APP_TOKEN should start with xapp- (an app-level token, not the bot token)")
    api_url = reader.optional("SLACK_API_URL")
    if api_url and not api_url.startswith(("http://", "https://")):
        reader.problems.append(f"SLACK_API_URL={api_url!r:.60} should be a URL such as https://slack.com/api/")
    if api_url and not api_url.endswith("/"):
        api_url += "/"
    access = AccessPolicy(_ids(reader.optional("SYNC_ALLOWED_USERS")), _ids(reader.optional("SYNC_ALLOWED_CHANNELS")))
    orchestrator = read_settings(reader)
    if reader.problems:
        raise SettingsError(reader.problems)
    return BotSettings(bot_token=bot_token, app_token=app_token, api_url=api_url, access=access,
                       orchestrator=orchestrator)
