"""`run_once()`: one pass of syncd (ARCHITECTURE section 1). Today: the pull stage.

Each connector reads its streams from their cursors; every page is stored with its cursor in one
transaction, so a pass stopped at any point (budget spent, auth failure, SIGKILL) resumes where
it stood. The clock is injected (the daemon and the tests pass their own); `timer` only measures
durations.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from syncd.connector import Connector, Window
from syncd.errors import (
    EXIT_OK,
    EXIT_STOPPED,
    AuthError,
    BudgetError,
    ConnectorError,
    SyncdError,
)
from syncd.log import event
from syncd.model import Page, Usage
from syncd.store import Store

log = logging.getLogger("syncd.pipeline")


@dataclass(frozen=True)
class RunOptions:
    kind: str = "once"
    since: datetime | None = None
    full: bool = False
    dry_run: bool = False


@dataclass
class StreamReport:
    system: str
    stream: str
    pages: int = 0
    rows: int = 0
    changed: int = 0
    calls: int = 0
    took: float = 0.0


@dataclass
class RunReport:
    run: int
    started_at: datetime
    status: str = "running"
    exit_code: int = EXIT_OK
    error: str | None = None
    streams: list[StreamReport] = field(default_factory=list)
    usage: list[Usage] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        summary: dict[str, Any] = {
            "rows": sum(s.rows for s in self.streams),
            "changed": sum(s.changed for s in self.streams),
            "pages": sum(s.pages for s in self.streams),
        }
        summary.update({f"calls_{u.system}": u.calls for u in self.usage})
        return summary


class Progress(Protocol):
    """Told about every stored page; the CLI shows a bar on a terminal, log lines otherwise."""

    def page(self, system: str, stream: str, page: Page, rows_so_far: int) -> None: ...

    def stream_done(self, report: StreamReport) -> None: ...


def run_once(
    store: Store,
    connectors: Mapping[str, Connector],
    *,
    clock: Callable[[], datetime],
    lookback: timedelta,
    budgets: Mapping[str, float],
    options: RunOptions = RunOptions(),
    progress: Progress | None = None,
    timer: Callable[[], float] = time.perf_counter,
    should_stop: Callable[[], bool] = lambda: False,
) -> RunReport:
    """One pass: pull every stream of every connector. Never raises a SyncdError: the report
    says how the pass ended (`status`, `exit_code`, `error`).

    `should_stop` is asked after every stored page: once it says yes (SIGTERM in the daemon), the
    pass ends there with status `interrupted`, its cursors kept.
    """
    started_at = clock()
    run = store.begin_run(started_at, options.kind, _options_summary(options))
    report = RunReport(run=run, started_at=started_at)
    if options.full:
        store.reset_cursors()
    window = Window(run_start=started_at, lookback=lookback, since=options.since,
                    full=options.full)
    try:
        for system, connector in connectors.items():
            budget = _Budget(store, system, budgets.get(system, 1.0), started_at)
            for stream in connector.streams():
                if should_stop():
                    raise _Interrupted
                report.streams.append(
                    _pull_stream(store, run, connector, stream.name, window, budget, progress,
                                 timer, should_stop)
                )
        report.status = "ok"
    except _Interrupted:
        report.status, report.exit_code = "interrupted", EXIT_OK
    except (BudgetError, AuthError, ConnectorError) as exc:
        report.status, report.exit_code, report.error = "stopped", EXIT_STOPPED, str(exc)
    except SyncdError as exc:
        report.status, report.exit_code, report.error = "stopped", exc.exit_code, str(exc)
    finally:
        for connector in connectors.values():
            usage = connector.usage()
            report.usage.append(usage)
            store.record_usage(run, usage)
        if report.status == "running":  # an exception that is not ours is on its way out
            report.status, report.exit_code, report.error = "failed", EXIT_STOPPED, "crashed"
        store.finish_run(run, clock(), report.status, report.exit_code, report.summary(),
                         report.error)
        event(log, "run", run=run, status=report.status, exit=report.exit_code,
              **report.summary())
    return report


def _pull_stream(
    store: Store,
    run: int,
    connector: Connector,
    stream: str,
    window: Window,
    budget: _Budget,
    progress: Progress | None,
    timer: Callable[[], float],
    should_stop: Callable[[], bool],
) -> StreamReport:
    system = connector.system
    report = StreamReport(system, stream)
    began = timer()
    cursor = None if window.full else store.cursor(system, stream)
    for page in connector.pull(stream, cursor, window):
        report.changed += store.save_page(run, system, page)
        report.pages += 1
        report.rows += len(page.records)
        report.calls += page.calls
        if progress is not None:
            progress.page(system, stream, page, report.rows)
        event(log, "page", logging.DEBUG, run=run, system=system, stream=stream,
              rows=len(page.records), calls=page.calls, watermark=page.watermark)
        budget.check(connector.usage())
        if should_stop():
            raise _Interrupted
    report.took = round(timer() - began, 3)
    if progress is not None:
        progress.stream_done(report)
    event(log, "pull", run=run, system=system, stream=stream, pages=report.pages,
          rows=report.rows, changed=report.changed, calls=report.calls, took=f"{report.took}s")
    return report


class _Interrupted(Exception):
    """Raised between pages when the caller asked the pass to stop."""


class _Budget:
    """syncd's own share of a CRM's daily allowance: `daily_budget` x the daily limit, counting
    the calls of every pass since midnight UTC."""

    def __init__(self, store: Store, system: str, share: float, started_at: datetime) -> None:
        self.system = system
        self.share = share
        day = started_at.replace(hour=0, minute=0, second=0, microsecond=0)
        self.spent_before = store.calls_since(system, day)

    def check(self, usage: Usage) -> None:
        if usage.limit is None:
            return
        allowed = int(self.share * usage.limit)
        spent = self.spent_before + usage.calls
        if spent >= allowed:
            raise BudgetError(
                f"{self.system}: syncd's daily budget is spent ({spent:,} calls today of "
                f"{allowed:,} = daily_budget {self.share} x limit {usage.limit:,}). Stopped with "
                f"cursors kept; the next pass after midnight UTC resumes, or raise "
                f"[{self.system}] daily_budget.",
                system=self.system,
            )


def _options_summary(options: RunOptions) -> dict[str, Any]:
    return {"since": options.since.isoformat() if options.since else None,
            "full": options.full, "dry_run": options.dry_run}
