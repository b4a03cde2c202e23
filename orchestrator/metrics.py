"""What an operator graphs: runs by sync and outcome, how long runs and their phases take, calls to the outside
services and their errors, lease take-overs. prometheus-client does the bookkeeping and the text format; each
service has its own registry (tests run several bots in one process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_DURATION_BUCKETS = (5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200)


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.runs_started = Counter("syncbot_runs_started", "Runs started, by sync.", ["sync"],
                                    registry=self.registry)
        self.runs_finished = Counter("syncbot_runs", "Runs that reached a final status in this process, by sync "
                                     "and status.", ["sync", "status"], registry=self.registry)
        self.run_seconds = Histogram("syncbot_run_duration_seconds", "From /sync to the final status.",
                                     ["sync", "status"], buckets=_DURATION_BUCKETS, registry=self.registry)
        self.phase_seconds = Histogram("syncbot_phase_duration_seconds", "Time spent exporting (Databricks) and "
                                       "loading (Snowflake) in successful runs.", ["sync", "phase"],
                                       buckets=_DURATION_BUCKETS, registry=self.registry)
        self.active_runs = Gauge("syncbot_active_runs", "Unfinished runs this process drives.",
                                 registry=self.registry)
        self.calls = Counter("syncbot_external_calls", "Calls to Databricks, Snowflake and Slack.",
                             ["service", "call"], registry=self.registry)
        self.errors = Counter("syncbot_external_errors", "Calls to Databricks, Snowflake and Slack that failed.",
                              ["service", "call"], registry=self.registry)
        self.poll_lateness = Histogram("syncbot_poll_lateness_seconds", "How late a Databricks status poll started "
                                       "after its scheduled time (waiting for a worker thread).",
                                       buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
                                       registry=self.registry)
        self.loop_lag = Histogram("syncbot_event_loop_lag_seconds", "How late the event loop wakes a 100 ms timer.",
                                  buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1),
                                  registry=self.registry)
        self.takeovers = Counter("syncbot_lease_takeovers", "Runs this process took over from a process whose lease "
                                 "had expired.", registry=self.registry)

    def call(self, service: str, call: str, failed: bool = False) -> None:
        self.calls.labels(service, call).inc()
        if failed:
            self.errors.labels(service, call).inc()
