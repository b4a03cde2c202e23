"""Parsing what a person typed after /sync. Never raises: anything odd becomes help or a not-found answer."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from enum import Enum

from orchestrator import RUN_ID_PATTERN, SYNC_NAME


class Action(str, Enum):
    START = "start"  # sync_name None: the only sync, or the picker
    LIST = "list"
    STATUS = "status"  # one run
    RECENT = "recent"  # `/sync status` alone
    CANCEL = "cancel"
    HELP = "help"


@dataclass(frozen=True)
class Command:
    action: Action
    run_id: str | None = None
    sync_name: str | None = None
    problem: str | None = None  # why the text was not understood, said before the usage
    raw_run_id: str | None = None  # what the person typed as a run id, when it was not one


def parse_command(text: str, sync_names: Collection[str] = ()) -> Command:
    words = (text or "").split()
    if not words:
        return Command(Action.START)
    verb, rest = words[0].lower(), words[1:]
    if verb in ("help", "-h", "--help", "?"):
        return Command(Action.HELP)
    if verb == "list" and not rest:
        return Command(Action.LIST)
    if verb == "status":
        if not rest:
            return Command(Action.RECENT)
        return _with_run_id(Action.STATUS, rest)
    if verb == "cancel":
        if not rest:
            return Command(Action.HELP, problem="`/sync cancel` needs a run id, e.g. `/sync cancel 1127-k3x9qa`.")
        return _with_run_id(Action.CANCEL, rest)
    if verb in ("start", "run", "now"):
        if not rest:
            return Command(Action.START)
        verb, rest = rest[0].lower(), rest[1:]
    if not rest and verb in sync_names:
        return Command(Action.START, sync_name=verb)
    if not rest and SYNC_NAME.fullmatch(verb):
        known = ", ".join(f"`{name}`" for name in sorted(sync_names)[:20]) or "none"
        return Command(Action.HELP, problem=f"There is no sync named `{_shown(verb)}` (syncs: {known}). "
                                            "`/sync list` shows them.")
    return Command(Action.HELP, problem=_unknown(text))


def _with_run_id(action: Action, rest: list[str]) -> Command:
    candidate = rest[0].strip("`'\"<>").lower()
    if len(rest) > 1:
        return Command(Action.HELP, problem=f"`/sync {action.value}` takes one run id.")
    if RUN_ID_PATTERN.fullmatch(candidate):
        return Command(action, run_id=candidate)
    return Command(action, raw_run_id=_shown(rest[0]))


def _shown(text: str, limit: int = 40) -> str:
    """User text made safe to echo inside `code`: no backticks, no mentions, bounded."""
    cleaned = "".join(ch for ch in text if ch.isprintable() and ch not in "`<>&*_~")
    return cleaned[:limit] + ("…" if len(cleaned) > limit else "")


def _unknown(text: str) -> str:
    return f"I don't know `/sync {_shown(text.strip())}`."
