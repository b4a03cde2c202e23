"""How often to ask Databricks about a run: the one place that decides the poll schedule."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class PollSchedule:
    """Start at `initial_seconds`, grow by `growth` after each poll, never above `maximum_seconds`.

    With the defaults (30 s → 60 s, ×1.5) the waits are 30, 45, 60, 60, … : short jobs are noticed quickly,
    long jobs cost about one call a minute.
    """

    initial_seconds: float = 30.0
    maximum_seconds: float = 60.0
    growth: float = 1.5

    def intervals(self) -> Iterator[float]:
        interval = self.initial_seconds
        while True:
            yield interval
            interval = min(self.maximum_seconds, interval * self.growth)
