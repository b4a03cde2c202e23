"""Polling economy, on a fake clock: Databricks calls per run and detection delay (job end → noticed).

Job durations are drawn log-uniformly from 30 s to 30 min (as many 1-minute jobs as 20-minute ones). Each job's
runs vary around its typical duration by log-normal noise: σ=15 % (a steady job) and σ=40 % (an erratic one).
The history-informed schedule sees the job's 5 previous export times, as the service does.
"""

from __future__ import annotations

import itertools
import math
import random
import statistics
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from orchestrator.schedule import PollSchedule

JOBS = 20_000


@dataclass(frozen=True)
class PolicyResult:
    name: str
    calls_mean: float
    delay_mean: float
    delay_p50: float
    delay_p95: float


def detect(intervals: Iterator[float], duration: float) -> tuple[int, float]:
    """Poll on the schedule until the job has ended: (runs/get calls, seconds from job end to detection)."""
    clock = 0.0
    for calls, wait in enumerate(intervals, start=1):
        clock += wait
        if clock >= duration:
            return calls, clock - duration
    raise AssertionError("schedules are endless")


Job = tuple[list[float], float]  # (the 5 previous export times, this run's duration)


def evaluate(name: str, schedule: Callable[[list[float]], Iterator[float]], jobs: list[Job]) -> PolicyResult:
    results = [detect(schedule(history), actual) for history, actual in jobs]
    delays = sorted(delay for _, delay in results)
    return PolicyResult(name, statistics.fmean(calls for calls, _ in results), statistics.fmean(delays),
                        delays[len(delays) // 2], delays[int(len(delays) * 0.95)])


def draw_jobs(noise: float, seed: int = 7) -> list[Job]:
    rng = random.Random(seed)
    jobs = []
    for _ in range(JOBS):
        typical = math.exp(rng.uniform(math.log(30), math.log(1800)))
        history = [typical * math.exp(rng.gauss(0, noise)) for _ in range(5)]
        jobs.append((history, typical * math.exp(rng.gauss(0, noise))))
    return jobs


def run() -> list[PolicyResult]:
    default = PollSchedule()
    policies: list[tuple[str, Callable[[list[float]], Iterator[float]]]] = [
        ("fixed 30 s (seed)", lambda _: itertools.repeat(30.0)),
        ("fixed 60 s (seed)", lambda _: itertools.repeat(60.0)),
        ("30 s → 60 s (syncbot, no history)", lambda _: default.intervals()),
    ]
    results = []
    for noise in (0.15, 0.40):
        jobs = draw_jobs(noise)
        results += [evaluate(f"{name}, σ={noise:.0%}", schedule, jobs) for name, schedule in policies]
        results.append(evaluate(f"history-informed (syncbot), σ={noise:.0%}", default.intervals, jobs))
    return results


def main() -> None:
    print(f"Polling economy ({JOBS:,} simulated runs, 30 s–30 min jobs)")
    print(f"{'policy':42} {'calls/run':>9} {'delay mean':>11} {'p50':>6} {'p95':>6}")
    for result in run():
        print(f"{result.name:42} {result.calls_mean:9.1f} {result.delay_mean:10.1f}s {result.delay_p50:5.1f}s "
              f"{result.delay_p95:5.1f}s")


if __name__ == "__main__":
    main()
