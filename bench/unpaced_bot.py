"""`python -m bot` without its pace (the baseline of bench/pacing.py): every Slack call goes at once and 429s are
left to slack_sdk's retry handler, as before this change."""

from __future__ import annotations

import sys

from bot import pacing
from bot.__main__ import main


async def _no_wait(self: pacing.SlackPacer, method: str, channel: str, *, priority: int = pacing.PROGRESS) -> None:
    return None


pacing.SlackPacer.turn = _no_wait  # type: ignore[method-assign]

if __name__ == "__main__":
    sys.exit(main())
