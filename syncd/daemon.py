"""`syncd run` without `--once`: the daemon. It only decides *when* to call `run_once()`.

APScheduler 3 runs one job, the pass, on the configured trigger (`[sync] schedule`, a cron
expression in UTC, or `[sync] interval`; "*/5 * * * *" when neither is set), with a first
pass right at start. One pass at a time (`max_instances=1`: a pass still running when the
next is due is not started twice, the due one is skipped), and missed passes coalesce into one.

Each pass gets fresh connectors from `connectors_factory()` (fresh usage counters, fresh
tokens) and its own store connection (SQLite connections belong to one thread). A pass that
raises is logged as one line and counted, and the daemon keeps running.

SIGTERM/SIGINT set the stop event: the pass in hand stops after the page in hand (its
cursor is committed with it), the scheduler shuts down and `serve()` returns 0, within
10 seconds. Passes run in daemon threads (`_PassThreads`) so that a pass stuck in a network
call cannot hold the process past that deadline: it loses at most its uncommitted page, which
the next start re-reads.
"""

from __future__ import annotations

import itertools
import logging
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from datetime import UTC, datetime, timedelta
from types import FrameType
from typing import Any

from apscheduler.executors.base import BaseExecutor, run_job
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.interval import IntervalTrigger

from syncd.config import Settings, SyncSettings, parse_duration
from syncd.connector import Connector
from syncd.console import LogProgress
from syncd.cron import cron_trigger
from syncd.definitions import Definitions
from syncd.errors import EXIT_OK, ConfigError
from syncd.lock import StoreLock
from syncd.log import event, redact
from syncd.metrics import Health, Metrics, PassOutcome
from syncd.model import Page
from syncd.pipeline import RunOptions, RunReport, StreamReport, run_once
from syncd.server import StatusServer, StatusSources
from syncd.store import Store

log = logging.getLogger("syncd.daemon")

DEFAULT_SCHEDULE = "*/5 * * * *"
SHUTDOWN_GRACE = 8.0  # seconds the page in hand may take; the rest of the 10 s is teardown
CRON_GAPS_SAMPLED = 16

ConnectorsFactory = Callable[[], Mapping[str, Connector]]


def _utc_now() -> datetime:
    return datetime.now(UTC)


def serve(
    settings: Settings,
    *,
    connectors_factory: ConnectorsFactory,
    clock: Callable[[], datetime] = _utc_now,
    stop: threading.Event | None = None,
    host: str | None = None,
    on_ready: Callable[[Daemon], None] | None = None,
    definitions: Definitions | None = None,
) -> int:
    """Run the daemon until `stop` is set (SIGTERM/SIGINT set it when called from the main
    thread); the exit code. Holds the store's single-instance lock throughout: a second
    `syncd run` on the same store gets `StoreError` (exit 3) naming this process."""
    stop = stop if stop is not None else threading.Event()
    lock = StoreLock(settings.store.path, command="syncd run").acquire()
    pass_left_running = False
    try:
        with _stop_on_signals(stop):
            daemon = Daemon(settings, connectors_factory=connectors_factory, clock=clock,
                            stop=stop, host=host, definitions=definitions)
            daemon.start()
            try:
                if on_ready is not None:
                    on_ready(daemon)
                while not stop.wait(0.5):
                    pass
            finally:
                pass_left_running = not daemon.shutdown()
    finally:
        # A pass still inside a network call keeps the lock until the process exits (the
        # kernel frees it then), so no second syncd writes beside it.
        if not pass_left_running:
            lock.release()
    return EXIT_OK


class Daemon:
    """The scheduler, the status server and the state they share. `serve()` drives it;
    tests may too."""

    def __init__(
        self,
        settings: Settings,
        *,
        connectors_factory: ConnectorsFactory,
        clock: Callable[[], datetime] = _utc_now,
        stop: threading.Event | None = None,
        host: str | None = None,
        shutdown_grace: float = SHUTDOWN_GRACE,
        definitions: Definitions | None = None,
    ) -> None:
        self.settings = settings
        self.definitions = definitions
        self.connectors_factory = connectors_factory
        self.clock = clock
        self.stop = stop if stop is not None else threading.Event()
        self.shutdown_grace = shutdown_grace
        self.trigger, self.period = schedule_of(settings.sync, now=clock())
        self.metrics = Metrics()
        self.health = Health(started_at=clock(), interval=self.period)
        self.budgets = {"hubspot": settings.hubspot.daily_budget,
                        "salesforce": settings.salesforce.daily_budget}
        self.server = _bind(settings, StatusSources(settings.store.path, self.health,
                                                    self.metrics, self.budgets, clock), host)
        self.scheduler = BackgroundScheduler(timezone=UTC,
                                             executors={"default": _PassThreads()})
        self._idle = threading.Event()
        self._idle.set()
        self.passes_started = 0

    @property
    def url(self) -> str:
        return self.server.url

    def start(self) -> None:
        store = Store(self.settings.store.path)  # creates and migrates before anyone reads
        try:
            self.metrics.seed_budget(store.latest_usage())
        finally:
            store.close()
        self.server.start()
        self.scheduler.add_job(
            self.run_pass, self.trigger, id="pass", name="syncd pass", max_instances=1,
            coalesce=True, misfire_grace_time=max(1, int(self.period.total_seconds())),
            next_run_time=datetime.now(UTC),
        )
        self.scheduler.start()
        event(log, "daemon", schedule=_describe(self.settings.sync),
              health_window=f"{int(2 * self.period.total_seconds())}s", url=self.url)

    def shutdown(self) -> bool:
        """Stop scheduling, let the pass in hand finish its page, close the server. True when
        no pass is left running."""
        self.stop.set()
        with suppress(Exception):  # already stopped, or never started
            self.scheduler.shutdown(wait=False)
        idle = self._idle.wait(self.shutdown_grace)
        if not idle:
            event(log, "stop", logging.WARNING, outcome="the pass in hand did not finish its "
                  f"page within {self.shutdown_grace:g}s; exiting without it, the next start "
                  "re-reads that page")
        self.server.stop()
        event(log, "stopped", passes=self.passes_started)
        return idle

    def run_pass(self) -> None:
        """One scheduled pass: never raises (the scheduler would only log it)."""
        if self.stop.is_set():
            return
        self._idle.clear()
        try:
            self.passes_started += 1
            started, began = self.clock(), time.monotonic()
            self.health.pass_started(started)
            try:
                report = self._run_once()
            except Exception as exc:
                self._crashed(exc, started, time.monotonic() - began)
            else:
                self._finished(report, time.monotonic() - began)
        finally:
            self._idle.set()

    def _run_once(self) -> RunReport:
        connectors = dict(self.connectors_factory())
        self.metrics.watch(connectors)
        store = Store(self.settings.store.path)
        try:
            return run_once(
                store, connectors, clock=self.clock,
                lookback=timedelta(seconds=self.settings.sync.lookback_seconds),
                budgets=self.budgets, definitions=self.definitions,
                options=RunOptions(kind="daemon"),
                progress=_HealthProgress(self.health, self.clock),
                should_stop=self.stop.is_set,
            )
        finally:
            for connector in connectors.values():
                try:
                    connector.close()
                except Exception:
                    log.debug("closing a connector failed", exc_info=True)
            store.close()

    def _finished(self, report: RunReport, took: float) -> None:
        finished = self.clock()
        self.metrics.observe(report, took, finished)
        error = redact(report.error) if report.error else None
        self.health.pass_finished(PassOutcome(report.run, report.started_at, finished,
                                              report.status, error))
        if report.status not in ("ok", "interrupted"):
            event(log, "pass", logging.WARNING, run=report.run, status=report.status,
                  took=f"{took:.1f}s", error=error)

    def _crashed(self, exc: Exception, started: datetime, took: float) -> None:
        finished = self.clock()
        error = redact(f"{type(exc).__name__}: {exc}")
        log.debug("pass crashed", exc_info=True)
        event(log, "pass", logging.ERROR, status="failed", took=f"{took:.1f}s", error=error)
        self.metrics.observe_crash(took, finished)
        self.health.pass_finished(PassOutcome(None, started, finished, "failed", error))


def schedule_of(sync: SyncSettings, *, now: datetime) -> tuple[BaseTrigger, timedelta]:
    """The trigger for `[sync]` and its period, the unit of the health window.

    For cron, the period is the longest gap among the next few fire times, so that a
    weekday-only schedule is not reported stale over the weekend.
    """
    if sync.interval:
        seconds = parse_duration(sync.interval)
        return IntervalTrigger(seconds=seconds, timezone=UTC), timedelta(seconds=seconds)
    trigger = cron_trigger(sync.schedule or DEFAULT_SCHEDULE)
    times: list[datetime] = []
    previous = None
    moment = now
    for _ in range(CRON_GAPS_SAMPLED + 1):
        fire = trigger.get_next_fire_time(previous, moment)
        if fire is None:
            break
        times.append(fire)
        previous, moment = fire, fire + timedelta(microseconds=1)
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    return trigger, max(gaps, default=timedelta(minutes=5))


def _describe(sync: SyncSettings) -> str:
    return f"every {sync.interval}" if sync.interval else (sync.schedule or DEFAULT_SCHEDULE)


def _bind(settings: Settings, sources: StatusSources, host: str | None) -> StatusServer:
    port = settings.server.port
    try:
        return StatusServer(sources, port=port, host=host)
    except OSError as exc:
        raise ConfigError([
            f"{settings.source} [server] port: cannot listen on port {port} ({exc.strerror}). "
            f"Choose another port, or 0 for any free port."
        ]) from None


class _HealthProgress:
    """Tells the health state that the pass is alive at every stored page, and logs progress
    lines for long streams as `run --once` does off a terminal."""

    def __init__(self, health: Health, clock: Callable[[], datetime]) -> None:
        self.health = health
        self.clock = clock
        self.lines = LogProgress()

    def page(self, system: str, stream: str, page: Page, rows_so_far: int) -> None:
        self.health.page_stored(self.clock())
        self.lines.page(system, stream, page, rows_so_far)

    def stream_done(self, report: StreamReport) -> None:
        self.lines.stream_done(report)


class _PassThreads(BaseExecutor):  # type: ignore[misc]
    """APScheduler executor running each job in its own daemon thread. The stock thread pool's
    workers are joined at interpreter exit, so a pass stuck in a 120 s read timeout would hold
    a stopping daemon past its deadline. `max_instances` is enforced by `BaseExecutor`."""

    def _do_submit_job(self, job: Any, run_times: Any) -> None:
        def target() -> None:
            try:
                events = run_job(job, job._jobstore_alias, run_times, self._logger.name)
            except BaseException:
                self._run_job_error(job.id, *sys.exc_info()[1:])
            else:
                self._run_job_success(job.id, events)

        threading.Thread(target=target, name=f"syncd-pass-{job.id}", daemon=True).start()


@contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """SIGTERM and SIGINT set `stop` while inside; only the main thread may install handlers,
    so elsewhere (tests driving `serve()` in a thread) the caller sets `stop` itself."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        event(log, "stopping", signal=signal.Signals(signum).name,
              outcome="finishing the page in hand")
        stop.set()

    previous = {signum: signal.signal(signum, handler)
                for signum in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)
