"""How a run ends early: the reasons a person reads."""

from __future__ import annotations


class RunFailed(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class RunCancelled(Exception):
    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail
