"""The bot's settings: Slack, access, the operator's HTTP server, and the orchestrator's, validated together."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from orchestrator import EnvReader, Settings, SettingsError, SyncDefinition, SyncRun, read_settings


@dataclass(frozen=True)
class Access:
    """Who may run, see and cancel what. Each sync lists who may run it (syncs.toml, or SYNC_ALLOWED_USERS and
    SYNC_ALLOWED_CHANNELS); SYNC_ADMINS may cancel any run."""

    admins: frozenset[str] = frozenset()

    @staticmethod
    def refusal(sync: SyncDefinition, user_id: str, channel_id: str) -> str | None:
        """None when `user_id` may start `sync` from `channel_id`; otherwise the reason, naming what to change."""
        users, channels = sync.allowed_users, sync.allowed_channels
        if not users and not channels:
            return (f"Nobody may start the sync `{sync.name}` yet: an admin lists who may (allowed_users, "
                    "allowed_channels in syncs.toml, or SYNC_ALLOWED_USERS / SYNC_ALLOWED_CHANNELS: Slack IDs, "
                    "or * for everyone).")
        if users and "*" not in users and user_id not in users:
            return (f"You are not allowed to run the sync `{sync.name}`: ask an admin to add your Slack ID "
                    f"`{user_id}` to its allowed_users (or SYNC_ALLOWED_USERS).")
        if channels and "*" not in channels and channel_id not in channels:
            return (f"The sync `{sync.name}` cannot be run from this channel: ask an admin to add `{channel_id}` "
                    "to its allowed_channels (or SYNC_ALLOWED_CHANNELS), or use an allowed channel.")
        return None

    def may_run(self, sync: SyncDefinition, user_id: str, channel_id: str) -> bool:
        return self.refusal(sync, user_id, channel_id) is None

    def cancel_refusal(self, run: SyncRun, sync: SyncDefinition | None, user_id: str) -> str | None:
        """The requester, anyone allowed to start that sync (judged in the run's own channel), or an admin."""
        if user_id == run.requested_by or user_id in self.admins:
            return None
        if sync is not None and self.may_run(sync, user_id, str(run.context.get("channel", ""))):
            return None
        return (f"You may not cancel sync `{run.run_id}`: only its requester, people allowed to run "
                f"`{run.sync_name}` there, and admins (SYNC_ADMINS) may.")

    @staticmethod
    def may_see(run: SyncRun, user_id: str) -> bool:
        """A run started in a DM or a private channel is shown only to its requester."""
        return not run.private or run.requested_by == user_id


@dataclass(frozen=True)
class HttpSettings:
    host: str = "127.0.0.1"
    port: int | None = None  # None: no HTTP server
    api_token: str | None = field(default=None, repr=False)  # None: no HTTP API


@dataclass(frozen=True)
class BotSettings:
    bot_token: str = field(repr=False)
    app_token: str = field(repr=False)
    api_url: str | None
    access: Access
    http: HttpSettings
    orchestrator: Settings


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
    port_text = reader.optional("SYNC_HTTP_PORT")
    port = None
    if port_text:
        if port_text.isdigit() and 0 < int(port_text) < 65536:
            port = int(port_text)
        else:
            reader.problems.append(f"SYNC_HTTP_PORT={port_text!r:.20} should be a TCP port number (or unset: no "
                                   "HTTP server)")
    api_token = reader.optional("SYNC_API_TOKEN")
    if api_token and len(api_token) < 16:
        reader.problems.append("SYNC_API_TOKEN is shorter than 16 characters: use a long random secret, e.g. "
                               "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`")
    if api_token and port is None:
        reader.problems.append("SYNC_API_TOKEN is set but SYNC_HTTP_PORT is not: the HTTP API needs the HTTP server")
    http = HttpSettings(host=reader.optional("SYNC_HTTP_HOST", "127.0.0.1") or "127.0.0.1", port=port,
                        api_token=api_token)
    access = Access(admins=reader.ids("SYNC_ADMINS"))
    orchestrator = read_settings(reader)
    if reader.problems:
        raise SettingsError(reader.problems)
    return BotSettings(bot_token=bot_token, app_token=app_token, api_url=api_url, access=access, http=http,
                       orchestrator=orchestrator)
