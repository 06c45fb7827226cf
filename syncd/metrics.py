"""What the daemon knows about its passes: the Prometheus metrics and the health verdict.

`Metrics` owns a `CollectorRegistry` of its own (never the global one, so that two daemons in
one test process, or a library importing syncd, never share counters) and learns from each
`RunReport`. `Health` keeps the last pass's outcome and answers `/healthz`:

- 200 `ok` while the last pass succeeded and finished within twice the schedule interval;
- 200 `starting` before any pass has finished, for one interval after start and for as long as
  the first pass keeps storing pages (a first pass is a backfill that can take hours; an
  orchestrator must not kill a daemon that is working);
- 200 `ok` also while a pass is in progress and stored a page within twice the interval, when
  the last finished pass succeeded (a long pass after a burst of changes is not a failure);
- 503 otherwise, with the reason: the last pass failed (its error), or no pass has succeeded
  for longer than twice the interval.

A pass that ended `interrupted` (the daemon was asked to stop) says nothing about health: the
verdict rests on the pass before it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from syncd.pipeline import RunReport

SUCCEEDED = frozenset({"ok", "rejected"})  # rejected records are data problems, not ill health
NEUTRAL = frozenset({"interrupted"})
# Passes run from seconds (a quiet org) to hours (a backfill).
DURATION_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400)


class Metrics:
    """The `/metrics` registry and how a pass updates it."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.passes = Counter("syncd_passes", "Passes by how they ended.", ["status"], registry=r)
        self.rows_pulled = Counter("syncd_rows_pulled", "Records read from a CRM.",
                                   ["system", "object"], registry=r)
        self.rows_pushed = Counter("syncd_rows_pushed", "Records written to a CRM.",
                                   ["system", "object"], registry=r)
        self.api_calls = Counter("syncd_api_calls", "HTTP calls made to a CRM.", ["system"],
                                 registry=r)
        self.throttled = Counter("syncd_api_throttled", "Calls a CRM answered 429.", ["system"],
                                 registry=r)
        self.retries = Counter("syncd_api_retries", "Calls retried after a 429, 5xx or timeout.",
                               ["system"], registry=r)
        self.rejected = Counter("syncd_rejected_records", "Records a CRM refused on write.",
                                ["system"], registry=r)
        self.duration = Histogram("syncd_pass_duration_seconds", "Wall time of a pass.",
                                  buckets=DURATION_BUCKETS, registry=r)
        self.last_pass = Gauge("syncd_last_pass_timestamp_seconds",
                               "When the last pass finished (Unix time).", registry=r)
        self.last_success = Gauge("syncd_last_success_timestamp_seconds",
                                  "When the last successful pass finished (Unix time).",
                                  registry=r)
        self.budget_remaining = Gauge("syncd_budget_remaining",
                                      "Daily API calls the CRM says remain.", ["system"],
                                      registry=r)

    def watch(self, systems: Iterable[str]) -> None:
        """Show the per-system series at 0 from the start, so that alerts and rate() see them
        before the first increment."""
        for system in systems:
            for counter in (self.api_calls, self.throttled, self.retries, self.rejected):
                counter.labels(system=system)

    def observe(self, report: RunReport, duration: float, finished_at: datetime) -> None:
        """Count a pass that returned a report (whatever its status)."""
        self.passes.labels(status=report.status).inc()
        for stream in report.streams:
            self.rows_pulled.labels(system=stream.system, object=stream.stream).inc(stream.rows)
        for usage in report.usage:
            self.api_calls.labels(system=usage.system).inc(usage.calls)
            self.throttled.labels(system=usage.system).inc(usage.throttled)
            self.retries.labels(system=usage.system).inc(usage.retries)
            if usage.remaining is not None:
                self.budget_remaining.labels(system=usage.system).set(usage.remaining)
        for (system, obj), count in report.pushed.applied.items():
            self.rows_pushed.labels(system=system, object=obj).inc(count)
        for (system, _), count in report.pushed.rejected.items():
            self.rejected.labels(system=system).inc(count)
        self._finished(report.status, duration, finished_at)

    def observe_crash(self, duration: float, finished_at: datetime) -> None:
        """Count a pass that raised instead of returning a report."""
        self.passes.labels(status="failed").inc()
        self._finished("failed", duration, finished_at)

    def seed_budget(self, latest_usage: Iterable[dict[str, Any]]) -> None:
        """The remaining allowance the store last saw, so /metrics has it before a pass ends."""
        for row in latest_usage:
            if row.get("remaining") is not None:
                self.budget_remaining.labels(system=str(row["system"])).set(row["remaining"])

    def text(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)

    def _finished(self, status: str, duration: float, finished_at: datetime) -> None:
        self.duration.observe(duration)
        self.last_pass.set(finished_at.timestamp())
        if status in SUCCEEDED:
            self.last_success.set(finished_at.timestamp())


@dataclass(frozen=True)
class PassOutcome:
    """How one pass ended, as /healthz and the status page tell it."""

    run: int | None
    started_at: datetime
    finished_at: datetime
    status: str
    error: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "run": self.run,
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat(),
            "status": self.status,
            "error": self.error,
        }


@dataclass(frozen=True)
class Verdict:
    """The answer to /healthz: HTTP status, a one-word state, the reason and the last pass."""

    code: int
    state: str
    reason: str
    last: PassOutcome | None

    def as_json(self) -> dict[str, Any]:
        return {
            "status": self.state,
            "reason": self.reason,
            "last_pass": self.last.as_json() if self.last else None,
        }


@dataclass(frozen=True)
class _Progress:
    started_at: datetime
    last_page_at: datetime


class Health:
    """The last pass's outcome and the pass in progress; thread-safe (the pass thread writes,
    the HTTP threads read)."""

    def __init__(self, *, started_at: datetime, interval: timedelta) -> None:
        self.started_at = started_at
        self.interval = interval
        self._lock = threading.Lock()
        self._last: PassOutcome | None = None
        self._last_verdict_pass: PassOutcome | None = None  # the last non-interrupted pass
        self._running: _Progress | None = None

    @property
    def last(self) -> PassOutcome | None:
        with self._lock:
            return self._last

    def pass_started(self, at: datetime) -> None:
        with self._lock:
            self._running = _Progress(started_at=at, last_page_at=at)

    def page_stored(self, at: datetime) -> None:
        with self._lock:
            if self._running is not None:
                self._running = replace(self._running, last_page_at=at)

    def pass_finished(self, outcome: PassOutcome) -> None:
        with self._lock:
            self._running = None
            self._last = outcome
            if outcome.status not in NEUTRAL:
                self._last_verdict_pass = outcome

    def verdict(self, now: datetime) -> Verdict:
        with self._lock:
            last, judged, running = self._last, self._last_verdict_pass, self._running
        window = 2 * self.interval
        working = running is not None and now - running.last_page_at <= window
        if judged is None:
            return self._before_first_pass(now, last, working)
        if judged.status not in SUCCEEDED:
            return Verdict(503, "failing", f"pass {judged.run} {judged.status}: "
                           f"{judged.error or 'no reason given'}", last)
        if now - judged.finished_at <= window or working:
            return Verdict(200, "ok", f"pass {judged.run} succeeded at "
                           f"{judged.finished_at.isoformat()}", last)
        return Verdict(503, "stale", f"no pass has succeeded since "
                       f"{judged.finished_at.isoformat()}, more than twice the schedule "
                       f"interval ({_seconds(window)}) ago", last)

    def _before_first_pass(self, now: datetime, last: PassOutcome | None,
                           working: bool) -> Verdict:
        if now - self.started_at <= self.interval or working:
            return Verdict(200, "starting", "the first pass has not finished yet", last)
        return Verdict(503, "stale", f"no pass has finished since the daemon started at "
                       f"{self.started_at.isoformat()}", last)


def _seconds(span: timedelta) -> str:
    return f"{int(span.total_seconds())}s"
