"""How often to ask Databricks about a run: the one place that decides the poll schedule."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

# With a history of this job's export times (docs/benchmarks.md shows how these were chosen):
QUIET_UNTIL_FRACTION = 0.9  # after the first poll, stay quiet until 90 % of the shortest recent export…
DENSE_UNTIL_FRACTION = 1.1  # …then poll more often until 110 % of the longest, where nearly every run has ended
DENSE_FRACTION = 2 / 3  # "more often" = 2/3 of the initial interval (20 s with the default 30 s)


@dataclass(frozen=True)
class PollSchedule:
    """Start at `initial_seconds`, grow by `growth` after each poll, never above `maximum_seconds`.

    With the defaults (30 s → 60 s, ×1.5) the waits are 30, 45, 60, 60, … : short jobs are noticed quickly,
    long jobs cost about one call a minute.

    When this job's recent export times are known (`history`, seconds, from earlier successful runs of the
    same target), the waits follow them: one poll after `initial_seconds` (to see RUNNING, and early failures),
    quiet until 90 % of the shortest, every 20 s until 110 % of the longest, then the default growth. On a
    realistic spread of jobs this costs fewer calls than the default and notices the end about twice as fast.
    """

    initial_seconds: float = 30.0
    maximum_seconds: float = 60.0
    growth: float = 1.5

    def intervals(self, history: Sequence[float] = ()) -> Iterator[float]:
        if history:
            yield from self._informed(min(history), max(history))
        interval = self.initial_seconds
        while True:
            yield interval
            interval = min(self.maximum_seconds, interval * self.growth)

    def _informed(self, shortest: float, longest: float) -> Iterator[float]:
        elapsed = self.initial_seconds
        yield elapsed
        quiet_until = QUIET_UNTIL_FRACTION * shortest
        if quiet_until > elapsed + self.initial_seconds:
            yield quiet_until - elapsed
            elapsed = quiet_until
        dense = self.initial_seconds * DENSE_FRACTION
        while elapsed < DENSE_UNTIL_FRACTION * longest:
            yield dense
            elapsed += dense
