"""Pages read ahead: the pull fetches the next pages while it stores this one, and a pass that
stops, fails or is interrupted keeps exactly the pages it stored (with their cursors), as it
did when it read one page at a time; what was read ahead is read again by the next pass."""

from __future__ import annotations

import inspect
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import cast

import pytest

from syncd.connector import Connector, Window
from syncd.errors import BudgetError
from syncd.model import Page, Record, Stream, Usage
from syncd.pipeline import Progress, RunReport, StreamReport, run_once
from syncd.readahead import Interleaved
from syncd.store import Store

T0 = datetime(2026, 3, 1, tzinfo=UTC)


@dataclass
class Source:
    """An iterator of numbers that notes, for each one, how many the consumer had taken."""

    count: int
    fail_after: int | None = None
    error: Exception = field(default_factory=lambda: BudgetError("spent", system="x"))
    taken: int = 0
    taken_when_made: list[int] = field(default_factory=list)
    threads: set[int] = field(default_factory=set)
    closed_on: list[int] = field(default_factory=list)

    def items(self) -> Iterator[int]:
        try:
            for number in range(self.count):
                if number == self.fail_after:
                    raise self.error
                self.threads.add(threading.get_ident())
                self.taken_when_made.append(self.taken)
                yield number
        finally:
            self.closed_on.append(threading.get_ident())


def test_items_arrive_in_order_from_another_thread_never_more_than_one_ahead() -> None:
    source = Source(6)
    seen = []
    with Interleaved({"only": source.items()}) as items:
        for _, item in items:
            seen.append(item)
            source.taken += 1
    assert seen == list(range(6))
    assert threading.get_ident() not in source.threads
    # Item n is made once the caller has taken item n - 2: the one before it may be in use.
    assert all(taken >= number - 1 for number, taken in enumerate(source.taken_when_made))


def test_an_error_arrives_after_the_items_before_it_as_the_same_object() -> None:
    source = Source(5, fail_after=3)
    seen = []
    with pytest.raises(BudgetError) as raised, Interleaved({"only": source.items()}) as items:
        for _, item in items:
            seen.append(item)
    assert seen == [0, 1, 2]
    assert raised.value is source.error


def test_a_caller_leaving_early_stops_the_worker_and_closes_the_iterator_on_its_thread() -> None:
    source = Source(100)
    with pytest.raises(KeyboardInterrupt), Interleaved({"only": source.items()}) as items:
        for _, item in items:
            source.taken += 1
            if item == 2:
                raise KeyboardInterrupt
    assert len(source.taken_when_made) <= 4  # items 0-2 taken, at most item 3 read ahead
    assert len(source.closed_on) == 1 and source.closed_on[0] != threading.get_ident()
    assert not [t for t in threading.enumerate() if t.name.startswith("syncd-read-ahead")]


def test_an_iterator_never_started_is_closed_where_it_was_left() -> None:
    source = Source(3)
    items = source.items()
    with Interleaved({"only": items}):
        pass
    # Closed before its first item: nothing read, and nothing left to read it later.
    assert inspect.getgeneratorstate(items) == inspect.GEN_CLOSED
    assert source.taken_when_made == []


def test_interleaved_sources_are_read_side_by_side() -> None:
    """A source waiting on the other (as the paced HubSpot reads wait on their allowance) does
    not hold the other back: here `slow` cannot end before `quick` has handed over all of its
    items, which a one-source-after-the-other reader would never get to."""
    quick_done = threading.Event()

    def slow() -> Iterator[str]:
        yield "s0"
        assert quick_done.wait(10), "the quick source was not read while the slow one waited"
        yield "s1"

    def quick() -> Iterator[str]:
        yield from ("q0", "q1", "q2")
        quick_done.set()

    with Interleaved({"slow": slow(), "quick": quick()}) as items:
        seen = list(items)
    assert sorted(seen) == sorted([("slow", "s0"), ("slow", "s1"), ("quick", "q0"),
                                   ("quick", "q1"), ("quick", "q2")])
    assert [item for key, item in seen if key == "quick"] == ["q0", "q1", "q2"]
    assert seen.index(("quick", "q2")) < seen.index(("slow", "s1"))


def test_an_error_in_one_source_stops_and_closes_the_others_on_their_threads() -> None:
    error = BudgetError("spent", system="x")
    other_started = threading.Event()
    other_closed_on: list[int] = []

    def other() -> Iterator[str]:  # never ends: only the failure can end the loop
        try:
            while True:
                other_started.set()
                yield "o"
        finally:
            other_closed_on.append(threading.get_ident())

    def failing() -> Iterator[str]:
        yield "f"
        assert other_started.wait(10)  # the other source is mid-way when this one fails
        raise error

    with pytest.raises(BudgetError) as raised, Interleaved(
        {"failing": failing(), "other": other()}
    ) as items:
        for _ in items:
            pass
    assert raised.value is error
    assert len(other_closed_on) == 1 and other_closed_on[0] != threading.get_ident()
    assert not [t for t in threading.enumerate() if t.name.startswith("syncd-read-ahead")]


def _wait_for(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, "the worker did not get there"
        time.sleep(0.005)


def test_a_source_given_room_reads_ahead_until_what_it_holds_weighs_that_much() -> None:
    """`ahead` counts what `weigh` says (the pull's activity streams: rows): here items weigh
    2 and the room is 5, so the worker fetches while it holds less than 5 (0, 2, 4) and
    stops holding three items; as they are taken it goes on."""
    source, gate = Source(10), threading.Event()

    def gated() -> Iterator[int]:
        assert gate.wait(10)
        yield from source.items()

    with Interleaved({"only": gated()}, ahead={"only": 5}, weigh=lambda _: 2) as items:
        assert list(items.ready()) == []  # starts the worker, which waits at the gate
        gate.set()
        _wait_for(lambda: len(source.taken_when_made) >= 3)
        time.sleep(0.05)  # time for a fourth, were the bound not kept
        assert source.taken_when_made == [0, 0, 0]
        seen = []
        for _, item in items:
            seen.append(item)
            source.taken += 1
    assert seen == list(range(10))
    # Item n is made once the caller has taken item n - 3 (three held while one is used).
    assert all(taken >= number - 3 for number, taken in enumerate(source.taken_when_made))
    assert list(items) == []  # exhausted: nothing more comes


def test_ready_hands_over_what_has_arrived_without_waiting_for_more() -> None:
    asked_again, release = threading.Event(), threading.Event()

    def gated() -> Iterator[str]:
        yield "first"
        asked_again.set()  # "first" is handed over: the worker asks for the next
        assert release.wait(10)
        yield "second"

    with Interleaved({"gated": gated()}, ahead={"gated": 10}) as items:
        got = list(items.ready())  # starts the worker
        _wait_for(asked_again.is_set)
        got += list(items.ready())
        assert got == [("gated", "first")]
        started = time.monotonic()
        assert list(items.ready()) == []  # the second is not there: no waiting for it
        assert time.monotonic() - started < 1
        release.set()
        assert list(items) == [("gated", "second")]  # it was still to come
        assert list(items.ready()) == []


# -- the pull stage -------------------------------------------------------------------------


def page(number: int) -> Page:
    record = Record("fake", "things", f"t{number}", T0 + timedelta(minutes=number),
                    {"n": number})
    return Page("things", [record], cursor=f'{{"page": {number}}}',
                watermark=record.updated_at)


@dataclass
class FakeConnector:
    """Three pages of one stream; notes what it read, where, and that it was closed."""

    fail_after: int | None = None
    system: str = "fake"
    limit: int | None = None  # the daily allowance its usage reports
    made: list[int] = field(default_factory=list)
    threads: set[int] = field(default_factory=set)
    closed: list[bool] = field(default_factory=list)

    def streams(self) -> Sequence[Stream]:
        return [Stream("things", ())]

    def pull(self, stream: str, cursor: str | None, window: Window) -> Iterator[Page]:
        try:
            for number in range(1, 4):
                if number == self.fail_after:
                    raise BudgetError("fake: the daily allowance is spent", system="fake")
                self.threads.add(threading.get_ident())
                self.made.append(number)
                yield page(number)
        finally:
            self.closed.append(True)

    def usage(self) -> Usage:
        return Usage("fake", calls=len(self.made), limit=self.limit)

    def close(self) -> None:
        pass


def pull_pass(store: Store, connector: FakeConnector, *,
              should_stop: Callable[[], bool] = lambda: False,
              progress: Progress | None = None) -> RunReport:
    """The pull stage only (no definitions), over the fake connector alone."""
    connectors = {"fake": cast(Connector, connector)}
    return run_once(store, connectors, clock=lambda: T0 + timedelta(days=1),
                    lookback=timedelta(minutes=10), budgets={}, should_stop=should_stop,
                    progress=progress)


def stored(store: Store) -> list[str]:
    return [row["id"] for row in store.source_records("fake", "things")]


def test_the_pull_stores_every_page_on_its_own_thread_while_the_next_is_read(
    tmp_path: Path,
) -> None:
    store, connector = Store(tmp_path / "s.db"), FakeConnector()
    report = pull_pass(store, connector)
    assert report.status == "ok"
    assert stored(store) == ["t1", "t2", "t3"]
    assert store.cursor("fake", "things") == '{"page": 3}'
    assert threading.get_ident() not in connector.threads  # SQLite would refuse that thread


def test_a_pass_stopped_after_a_page_keeps_that_page_and_not_those_read_ahead(
    tmp_path: Path,
) -> None:
    store, connector = Store(tmp_path / "s.db"), FakeConnector()
    report = pull_pass(store, connector, should_stop=lambda: bool(stored(store)))
    assert report.status == "interrupted"
    assert stored(store) == ["t1"]
    assert store.cursor("fake", "things") == '{"page": 1}'  # the next pass reads on from here
    assert connector.closed == [True]


def test_read_ahead_never_spends_past_the_daily_budget(tmp_path: Path) -> None:
    """The worker reads ahead of the store, but checks the connector's budget before every
    page: with syncd's share at two calls, the third page is never asked for."""
    store, connector = Store(tmp_path / "s.db"), FakeConnector(limit=2)
    report = run_once(store, {"fake": cast(Connector, connector)},
                      clock=lambda: T0 + timedelta(days=1), lookback=timedelta(minutes=10),
                      budgets={"fake": 1.0})
    assert (report.status, report.exit_code) == ("stopped", 3)
    assert "daily budget is spent" in str(report.error)
    assert connector.made == [1, 2]
    # The store's own check stops it after the page at which the calls reached the budget.
    kept = stored(store)
    assert kept in (["t1"], ["t1", "t2"])
    assert store.cursor("fake", "things") == f'{{"page": {len(kept)}}}'


def test_a_budget_error_mid_stream_stops_the_pass_after_storing_the_pages_before_it(
    tmp_path: Path,
) -> None:
    store, connector = Store(tmp_path / "s.db"), FakeConnector(fail_after=3)
    report = pull_pass(store, connector)
    assert (report.status, report.exit_code) == ("stopped", 3)
    assert "daily allowance is spent" in str(report.error)
    assert stored(store) == ["t1", "t2"]
    assert store.cursor("fake", "things") == '{"page": 2}'


def test_an_interrupt_while_storing_goes_up_once_the_reader_is_stopped(tmp_path: Path) -> None:
    store, connector = Store(tmp_path / "s.db"), FakeConnector()

    class Interrupting:
        def page(self, system: str, stream: str, page: Page, rows_so_far: int) -> None:
            raise KeyboardInterrupt

        def stream_done(self, report: StreamReport) -> None:
            pass

    with pytest.raises(KeyboardInterrupt):
        pull_pass(store, connector, progress=Interrupting())
    assert connector.closed == [True]
    assert stored(store) == ["t1"]  # committed before the progress line was drawn
    assert [run["status"] for run in store.runs()] == ["failed"]


def test_two_connectors_are_stored_in_one_pass_and_reported_in_their_order(
    tmp_path: Path,
) -> None:
    store = Store(tmp_path / "s.db")
    first, second = FakeConnector(system="first"), FakeConnector(system="second")
    connectors = {"first": cast(Connector, first), "second": cast(Connector, second)}
    report = run_once(store, connectors, clock=lambda: T0 + timedelta(days=1),
                      lookback=timedelta(minutes=10), budgets={})
    assert report.status == "ok"
    assert [(s.system, s.stream, s.pages) for s in report.streams] == [
        ("first", "things", 3), ("second", "things", 3)]
    for system in ("first", "second"):
        assert store.cursor(system, "things") == '{"page": 3}'
    assert threading.get_ident() not in first.threads | second.threads
