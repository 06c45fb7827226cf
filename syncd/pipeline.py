"""`run_once()`: one pass of syncd (ARCHITECTURE section 1): pull, reconcile, derive, plan, push.

Each connector reads its streams from their cursors; every page is stored with its cursor in one
transaction, so a pass stopped at any point (budget spent, auth failure, SIGKILL) resumes where
it stood. The activity streams (touches) are still being read while the pass reconciles and
derives stages (`_Pull`). The clock is injected (the daemon and the tests pass their own);
`timer` only measures durations.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from syncd.connector import Connector, Window
from syncd.credits import compute_credits, desired_writes
from syncd.definitions import Definitions
from syncd.errors import (
    EXIT_OK,
    EXIT_REJECTED,
    EXIT_STOPPED,
    AuthError,
    BudgetError,
    ConnectorError,
    SyncdError,
)
from syncd.handoff import HandoffTracker
from syncd.identity import spec_for
from syncd.lifecycle import RECONCILED_THROUGH, StageDeriver
from syncd.log import event
from syncd.model import Page, Usage
from syncd.planner import Planner
from syncd.push import Pushing, PushReport, push
from syncd.readahead import Interleaved, close_iterator
from syncd.reconcile import KindReport, Reconciler
from syncd.store import Store, iso
from syncd.touchpoints import TOUCH_OBJECTS, TouchReport, refresh_touchpoints

log = logging.getLogger("syncd.pipeline")

# Streams read while the pass reconciles (`_Pull`): the touches, which only the touchpoints
# and the hand-off's first-touch check read, both after the reconcile.
ACTIVITY_STREAMS = frozenset(TOUCH_OBJECTS)
# How far (in rows) a connector's pull may read ahead of the store.
READ_AHEAD_ROWS = 20_000
# The accounts' push chunks while the touchpoints and credits are worked out, which record no
# result: 200 HubSpot batch calls each, some 10 s of an Enterprise portal's allowance, and a
# second one waits while one is sent. (At 1,000,000 people those two stages took 71 s after
# HubSpot's last activity page, `bench_pipeline` at d80f039.)
ACCOUNTS_AHEAD = 20_000


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
    reconciled: list[KindReport] = field(default_factory=list)
    planned: dict[str, int] = field(default_factory=dict)
    pushed: PushReport = field(default_factory=PushReport)
    rejected: int = 0
    stages_moved: int = 0
    attributed: int = 0

    def summary(self) -> dict[str, Any]:
        summary: dict[str, Any] = {
            "rows": sum(s.rows for s in self.streams),
            "changed": sum(s.changed for s in self.streams),
            "pages": sum(s.pages for s in self.streams),
        }
        summary.update({f"calls_{u.system}": u.calls for u in self.usage})
        if self.reconciled or self.planned:
            summary["entities_changed"] = sum(k.changed for k in self.reconciled)
            summary["planned"] = sum(self.planned.values())
            summary["pushed"] = sum(self.pushed.applied.values())
            summary["created"] = sum(self.pushed.created.values())
            summary["rejected"] = self.rejected
            summary["stages_moved"] = self.stages_moved
            summary["opportunities_attributed"] = self.attributed
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
    definitions: Definitions | None = None,
    options: RunOptions = RunOptions(),
    progress: Progress | None = None,
    timer: Callable[[], float] = time.perf_counter,
    should_stop: Callable[[], bool] = lambda: False,
) -> RunReport:
    """One pass: pull every stream of every connector, then (given mappings) reconcile, plan
    and push. Never raises a SyncdError: the report says how the pass ended (`status`,
    `exit_code`, `error`).

    `should_stop` is asked after every stored page and pushed chunk: once it says yes (SIGTERM
    in the daemon), the pass ends there with status `interrupted`, its cursors and outbox kept.
    """
    started_at = clock()
    run = store.begin_run(started_at, options.kind, _options_summary(options))
    report = RunReport(run=run, started_at=started_at)
    checks = {name: _Budget(store, name, budgets.get(name, 1.0), started_at) for name in connectors}

    def checkpoint() -> None:
        for name, connector in connectors.items():
            checks[name].check(connector.usage())
        if should_stop():
            raise _Interrupted

    order: dict[tuple[str, str], int] = {}
    try:
        streams = [(c.system, s.name) for c in connectors.values() for s in c.streams()]
        order.update((key, index) for index, key in enumerate(streams))
        window = _window(store, options, lookback, started_at)
        checkpoint()
        stored = _Arrivals(store, run, report, checkpoint, progress, timer)
        budgets_of = {name: _budget_check(checks[name], c) for name, c in connectors.items()}
        with _Pull(store, connectors, window, budgets_of, stored) as pull:
            pull.others()
            if definitions is not None:
                _sync(store, connectors, definitions, run, options, report, checkpoint, pull)
            pull.finish()
        report.status = "rejected" if report.rejected else "ok"
        report.exit_code = EXIT_REJECTED if report.rejected else EXIT_OK
    except _Interrupted:
        report.status, report.exit_code = "interrupted", EXIT_OK
    except (BudgetError, AuthError, ConnectorError) as exc:
        report.status, report.exit_code, report.error = "stopped", EXIT_STOPPED, str(exc)
    except SyncdError as exc:
        report.status, report.exit_code, report.error = "stopped", exc.exit_code, str(exc)
    finally:
        # In the connectors' order, as they declare their streams (activities end last).
        report.streams.sort(key=lambda s: order.get((s.system, s.stream), len(order)))
        for connector in connectors.values():
            usage = connector.usage()
            report.usage.append(usage)
            store.record_usage(run, usage)
        if report.status == "running":  # an exception that is not ours is on its way out
            report.status, report.exit_code, report.error = "failed", EXIT_STOPPED, "crashed"
        store.finish_run(
            run, clock(), report.status, report.exit_code, report.summary(), report.error
        )
        event(log, "run", run=run, status=report.status, exit=report.exit_code, **report.summary())
    return report


def _window(
    store: Store, options: RunOptions, lookback: timedelta, started_at: datetime
) -> Window:
    if options.full:
        store.reset_cursors()
    return Window(run_start=started_at, lookback=lookback, since=options.since, full=options.full)


def _cursors(store: Store, connector: Connector, window: Window) -> dict[str, str | None]:
    """The connector's streams in the order it declares them, the activity streams last,
    with their cursors."""
    streams = [stream.name for stream in connector.streams()]
    streams.sort(key=lambda name: (connector.system, name) in ACTIVITY_STREAMS)  # stable
    return {name: None if window.full else store.cursor(connector.system, name) for name in streams}


class _Pull:
    """Every stream of every connector, read side by side: a worker thread per connector
    reads its streams in turn, the activity streams (`ACTIVITY_STREAMS`) last, and hands
    their pages to the store's thread, where each is stored with its cursor.

    `others()` stores pages until every connector's other streams are stored: what the
    reconcile reads. The activity streams go on while the pass reconciles, derives stages
    and plans accounts, which store what has arrived between their chunks (`pump`: outside
    their transactions, but inside the identity resolve's, which is one for all its
    batches); the touchpoints and all after them wait for the last page (`finish`).
    In a backfill the activity streams are most of HubSpot's calls, and paced at its
    allowance they leave the store's thread idle most of the time they take.

    A worker may read up to `READ_AHEAD_ROWS` rows ahead of the store, so that a busy store
    (a reconcile chunk, a Salesforce page of 2,000 rows) does not hold HubSpot's paced calls
    back: with one page ahead, as commit 044c88e read the connectors side by side,
    `bench_pull` at 100,000 people showed HubSpot's share of the Enterprise allowance fall to
    85.4% (98.5% one connector after the other); reading ahead so, `bench_pipeline`'s
    Enterprise-limited backfill at 100,000 people used 98.8% of it while calling HubSpot,
    the Salesforce pull and the reconcile running beside (3f98379; docs/benchmarks.md has
    what both show now).
    Each worker checks its connector's daily budget before every page, so reading ahead
    spends no more past it than the store's own check after each page did (the calls of one
    page); pages read and not stored when a pass stops are read again by the next, from the
    cursor of the last page stored.
    """

    def __init__(
        self,
        store: Store,
        connectors: Mapping[str, Connector],
        window: Window,
        budgets: Mapping[str, Callable[[], None]],
        stored: _Arrivals,
    ) -> None:
        self.connectors, self.stored = connectors, stored
        sources = {
            name: _connector_pages(
                connector, _cursors(store, connector, window), window, stored.timer, budgets[name]
            )
            for name, connector in connectors.items()
        }
        self._reads: Interleaved[_Item] = Interleaved(
            sources, "pull", ahead=dict.fromkeys(sources, READ_AHEAD_ROWS), weigh=_rows
        )
        self._reading_others = set(sources)

    def __enter__(self) -> _Pull:
        return self

    def __exit__(self, *exc: object) -> None:
        self._reads.close()

    def others(self) -> None:
        """Store pages, waiting for each, until every connector's other streams are stored."""
        if self._reading_others:
            for name, item in self._reads:
                self._take(name, item)
                if not self._reading_others:
                    return

    def pump(self) -> None:
        """Store the pages that have arrived, without waiting for more."""
        for name, item in self._reads.ready():
            self._take(name, item)

    def finish(self) -> None:
        """Store every page that is left, waiting for each."""
        for name, item in self._reads:
            self._take(name, item)

    def activities_read(self) -> set[tuple[str, str]]:
        """The activity streams whose every page is stored."""
        return {(s.system, s.stream) for s in self.stored.report.streams} & ACTIVITY_STREAMS

    def _take(self, name: str, item: _Item) -> None:
        if isinstance(item[1], _OthersRead):
            self._reading_others.discard(name)
        else:
            self.stored.take(self.connectors[name].system, item)


class _Arrivals:
    """What the pull's workers hand over, stored on the store's thread: pages with their
    cursors, and each stream's report as it ends."""

    def __init__(
        self,
        store: Store,
        run: int,
        report: RunReport,
        checkpoint: Callable[[], None],
        progress: Progress | None,
        timer: Callable[[], float],
    ) -> None:
        self.store, self.run, self.report, self.checkpoint = store, run, report, checkpoint
        self.progress, self.timer = progress, timer
        self.open: dict[tuple[str, str], StreamReport] = {}

    def take(self, system: str, item: _Item) -> None:
        stream, what = item
        key = (system, stream)
        if isinstance(what, _StreamStart):
            self.open[key] = StreamReport(system, stream, took=what.at)
        elif isinstance(what, _StreamEnd):
            done = self.open.pop(key)
            done.took = round(self.timer() - done.took, 3)
            self.report.streams.append(_stream_done(self.run, done, self.progress))
        elif isinstance(what, Page):
            _store_page(self.store, self.run, self.open[key], what, self.progress)
            self.checkpoint()


def _rows(item: _Item) -> int:
    what = item[1]
    return len(what.records) if isinstance(what, Page) else 0


def _sync(
    store: Store,
    connectors: Mapping[str, Connector],
    definitions: Definitions,
    run: int,
    options: RunOptions,
    report: RunReport,
    checkpoint: Callable[[], None],
    pull: _Pull,
) -> None:
    """Reconcile what changed since the last complete pass, plan, and push (not on a dry run).
    The activity streams are stored between chunks of the reconcile and of the stages, and
    wholly before the touchpoints.

    People and accounts go first, so that the deals planned next can be associated with the
    HubSpot records just created for them. The reconcile watermark moves only once everything
    is planned, so a pass stopped in between reconciles the same changes again next time.

    The calls to HubSpot, whose allowance a large pass waits on, go on while the store's
    thread works out what needs no call: the accounts (no attribution on them) are planned
    while the activity streams are read, and pushed from the last page on, while the
    touchpoints and credits are worked out; the people are pushed as they are planned
    (`Pushing`).
    """
    mappings, lifecycle = definitions.mappings, definitions.lifecycle
    unified = store.unified
    after = int(unified.get_state(RECONCILED_THROUGH) or 0)
    at = iso(report.started_at)
    reconciler = Reconciler(store, mappings, run, at, between=pull.pump)
    report.reconciled = reconciler.reconcile(after)
    for kind, problems in reconciler.problems.items():
        for (system, object_name, record_id), name, message in problems:
            # The value is left out of the unified record (the other system's, or the last one,
            # stands) until the record is fixed: said once per pass that reads it.
            event(log, "value_problem", logging.WARNING, run=run, kind=kind, system=system,
                  object=object_name, id=record_id, field=name, reason=message)
    dirty = reconciler.dirty
    tracker = None
    if lifecycle is not None:
        deriver = StageDeriver(store, lifecycle, spec_for(mappings.person), run, report.started_at)
        deriver.people_touched_by(dirty["opportunity"], into=dirty["person"])
        report.stages_moved = deriver.derive(dirty["person"], between=pull.pump)
        tracker = HandoffTracker(store, lifecycle, run, report.started_at)
    planner = Planner(store, mappings, run, at, lifecycle, definitions.attribution)
    # Accounts carry no attribution: planned while the activity streams are still read.
    report.planned["account"] = planner.plan(
        "account", dirty["account"], planned=lambda accounts: pull.pump()
    )
    with Pushing(store, connectors, ("account", "person"), run, after_chunk=checkpoint) as out:

        def pulled() -> None:
            # The pull is done with the connectors: the accounts go out while the touchpoints
            # and credits are worked out, in chunks that last (`ACCOUNTS_AHEAD`).
            if not options.dry_run:
                out.planning()
                out.pending(["account"], rows=ACCOUNTS_AHEAD)

        # The touched people are the credits' only input from the touchpoints: not kept
        # past them.
        touches = _touchpoints(store, after, run, pull, then=pulled)
        credits = compute_credits(
            store, definitions.attribution, report.started_at, run,
            touched=touches.people, everyone_touched=touches.everyone,
        )
        del touches
        report.attributed = len(credits.recomputed)
        dirty["opportunity"] |= credits.recomputed
        if credits.full:
            dirty["person"].add_live()
        else:
            dirty["person"] |= credits.people
        # Planned whole before the first checkpoint: the credits (and their watermark) are
        # committed already, so a pass stopped from here on would leave nothing to plan the
        # revenue from. (The push keeps what it raises until the plan is done: `Pushing`.)
        report.planned["campaign"] = planner.plan_campaigns(
            desired_writes(store, definitions.attribution, credits).campaign_revenue
        )

        def planned(people: list[str]) -> None:
            # Before the push may take their Lead upserts out of the outbox.
            if tracker is not None:
                tracker.record_planned(people)
            if not options.dry_run:
                out.planned("person", people)

        report.planned["person"] = planner.plan("person", dirty["person"], planned=planned)
        if tracker is not None:
            tracker.record_planned()  # any still queued from before
        checkpoint()
        if not options.dry_run:
            report.pushed.add(out.finish())
    dirty["opportunity"] |= unified.opportunities_of(dirty["person"], dirty["account"])
    report.planned["opportunity"] = planner.plan("opportunity", dirty["opportunity"])
    if not options.dry_run:
        report.pushed.add(
            push(store, connectors, ("opportunity", "campaign"), run, after_chunk=checkpoint)
        )
    tracker.refresh(after)
    with store.transaction():
        unified.set_state(RECONCILED_THROUGH, str(run))
    report.rejected = sum(report.pushed.rejected.values())


def _touchpoints(
    store: Store, after: int, run: int, pull: _Pull, then: Callable[[], None]
) -> TouchReport:
    """The touchpoints, once every activity stream is stored. A backfill first builds those
    of the streams read already, in one go: the pass would otherwise wait for HubSpot's last
    activity page to start it. (One build per object, as d80f039 made them, took 102 s in all
    in `bench_pipeline`'s 1,000,000-person backfill, where one build of every object had
    taken 55 s: each rebuilds the table's indexes. A pass after the first rebuilds the changed
    touches only: nothing to gain there.) `then` is called once the last page is stored."""
    touches, built = TouchReport(), pull.activities_read() if after == 0 else set()
    if built:
        touches.add(refresh_touchpoints(store, after, run, objects=built))
    pull.finish()
    then()
    rest = [touch for touch in TOUCH_OBJECTS if touch not in built]
    if rest:
        touches.add(refresh_touchpoints(store, after, run, objects=rest))
    return touches


@dataclass(frozen=True)
class _StreamStart:
    at: float  # the timer's reading when the connector began the stream


class _StreamEnd:
    """The stream's last page was handed over."""


class _OthersRead:
    """The connector's streams before its activity streams are all read."""


# A stream's name and what it handed over.
_Item = tuple[str, Page | _StreamStart | _StreamEnd | _OthersRead]


def _connector_pages(
    connector: Connector,
    cursors: Mapping[str, str | None],
    window: Window,
    timer: Callable[[], float],
    budget: Callable[[], None],
) -> Iterator[_Item]:
    """A connector's streams in turn, each page tagged with its stream (run on a worker),
    the budget checked before each page; `_OthersRead` once the streams before its activity
    streams are read."""
    others = True
    for stream, cursor in cursors.items():
        if others and (connector.system, stream) in ACTIVITY_STREAMS:
            others = False
            yield stream, _OthersRead()
        budget()
        yield stream, _StreamStart(timer())
        pages = connector.pull(stream, cursor, window)
        try:
            for page in pages:
                yield stream, page
                budget()
        finally:
            close_iterator(pages)
        yield stream, _StreamEnd()
    if others:
        yield "", _OthersRead()


def _budget_check(budget: _Budget, connector: Connector) -> Callable[[], None]:
    return lambda: budget.check(connector.usage())


def _store_page(
    store: Store, run: int, report: StreamReport, page: Page, progress: Progress | None
) -> None:
    system, stream = report.system, report.stream
    report.changed += store.save_page(run, system, page)
    report.pages += 1
    report.rows += len(page.records)
    report.calls += page.calls
    if progress is not None:
        progress.page(system, stream, page, report.rows)
    event(
        log,
        "page",
        logging.DEBUG,
        run=run,
        system=system,
        stream=stream,
        rows=len(page.records),
        calls=page.calls,
        watermark=page.watermark,
    )


def _stream_done(run: int, report: StreamReport, progress: Progress | None) -> StreamReport:
    if progress is not None:
        progress.stream_done(report)
    event(
        log,
        "pull",
        run=run,
        system=report.system,
        stream=report.stream,
        pages=report.pages,
        rows=report.rows,
        changed=report.changed,
        calls=report.calls,
        took=f"{report.took}s",
    )
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
    return {
        "since": options.since.isoformat() if options.since else None,
        "full": options.full,
        "dry_run": options.dry_run,
    }
