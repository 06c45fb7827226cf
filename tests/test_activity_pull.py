"""The activity streams are read while the pass reconciles (`syncd.pipeline._Pull`).

Touches (HubSpot form submissions and email events, Salesforce campaign members, Tasks and
Events) are most of a backfill's HubSpot calls, and nothing the reconcile or the stages read
is in them. So each connector's worker reads every other stream first, then its activity
streams, and the pass goes on to reconcile and derive stages as soon as the other streams of
every connector are stored, storing the activity pages between chunks of that work, outside
its transactions; the touchpoints wait for the last page.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pytest

from syncd.connector import Connector, Window
from syncd.definitions import load_definitions
from syncd.identity import Resolver, spec_for
from syncd.lifecycle import StageDeriver
from syncd.mapping_loader import load_mappings
from syncd.model import Page, Record, Stream, Usage
from syncd.pipeline import ACTIVITY_STREAMS, RunOptions, StreamReport, run_once
from syncd.reconcile import Reconciler
from syncd.stages import load_lifecycle
from syncd.store import Store, iso

SHIPPED = Path(__file__).resolve().parent.parent / "mappings"
T0 = datetime(2026, 3, 1, tzinfo=UTC)


@dataclass
class Recorded:
    """The pages stored, in the order the pass stored them."""

    pages: list[tuple[str, str]] = field(default_factory=list)

    def page(self, system: str, stream: str, page: Page, rows_so_far: int) -> None:
        self.pages.append((system, stream))

    def stream_done(self, report: StreamReport) -> None:
        pass


@dataclass
class TwoKinds:
    """A HubSpot-named connector declaring an activity stream before an ordinary one."""

    system: str = "hubspot"
    threads: dict[str, set[int]] = field(default_factory=dict)

    def streams(self) -> Sequence[Stream]:
        return [Stream("email_events"), Stream("things")]

    def pull(self, stream: str, cursor: str | None, window: Window) -> Iterator[Page]:
        for number in range(1, 3):
            self.threads.setdefault(stream, set()).add(threading.get_ident())
            record = Record(self.system, stream, f"{stream}-{number}",
                            T0 + timedelta(minutes=number), {"n": number})
            yield Page(stream, [record], cursor=str(number), watermark=record.updated_at)

    def usage(self) -> Usage:
        return Usage(self.system, calls=0)

    def close(self) -> None:
        pass


def test_the_touch_streams_are_the_activity_streams() -> None:
    touches = {("hubspot", "form_submissions"), ("hubspot", "email_events"),
               ("salesforce", "CampaignMember"), ("salesforce", "Task"), ("salesforce", "Event")}
    assert touches == ACTIVITY_STREAMS


def test_activity_streams_are_stored_after_the_others_and_reported_in_declared_order(
    tmp_path: Path,
) -> None:
    store, connector, recorded = Store(tmp_path / "s.db"), TwoKinds(), Recorded()
    report = run_once(store, {"hubspot": cast(Connector, connector)},
                      clock=lambda: T0 + timedelta(days=1), lookback=timedelta(minutes=10),
                      budgets={}, progress=recorded)
    assert report.status == "ok"
    assert recorded.pages == [("hubspot", "things")] * 2 + [("hubspot", "email_events")] * 2
    assert [(s.stream, s.pages) for s in report.streams] == [("email_events", 2), ("things", 2)]
    assert store.cursor("hubspot", "email_events") == "2"
    assert threading.get_ident() not in connector.threads["email_events"]


def _people(store: Store, count: int) -> None:
    records = [
        Record("salesforce", "Contact", f"003{number:015d}", T0 + timedelta(seconds=number),
               {"Email": f"p{number}@example.com", "LastName": f"P{number}"})
        for number in range(count)
    ]
    store.save_page(1, "salesforce", Page("Contact", records, cursor="1"))


def test_the_reconcile_calls_between_after_each_chunk_outside_its_transaction(
    tmp_path: Path,
) -> None:
    store = Store(tmp_path / "s.db")
    _people(store, 5)
    calls: list[bool] = []
    reconciler = Reconciler(store, load_mappings(SHIPPED), 1, iso(T0), batch=2,
                            between=lambda: calls.append(store.db.conn.in_transaction))
    reconciler.reconcile(0)
    # 5 people in chunks of 2 (no accounts or deals): resolved in one transaction, then
    # recomputed in one transaction per chunk
    assert calls == [True, True, True, False, False, False]
    assert len(reconciler.dirty["person"]) == 5


def test_pages_stored_while_identities_resolve_commit_or_roll_back_with_the_resolve(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The resolve is one transaction for all its batches; a page stored between them joins
    it, so a pass stopped there keeps neither (the next pass reads the page again)."""
    store = Store(tmp_path / "s.db")
    _people(store, 5)
    event = Record("hubspot", "email_events", "e1", T0, {"recipient": "p1@example.com"})
    resolve = Resolver.resolve
    batches: list[int] = []

    def third_fails(self: Resolver, records: list[dict[str, Any]]) -> None:
        batches.append(len(records))
        if len(batches) == 3:
            raise RuntimeError("stopped")
        resolve(self, records)

    def store_page() -> None:  # after the first batch
        if store.cursor("hubspot", "email_events") is None:
            store.save_page(1, "hubspot", Page("email_events", [event], cursor="c1"))

    monkeypatch.setattr(Resolver, "resolve", third_fails)
    reconciler = Reconciler(store, load_mappings(SHIPPED), 1, iso(T0), batch=2,
                            between=store_page)
    with pytest.raises(RuntimeError, match="stopped"):
        reconciler.reconcile(0)
    assert store.cursor("hubspot", "email_events") is None
    assert list(store.source_records("hubspot", "email_events")) == []
    assert store.db.conn.execute("SELECT count(*) FROM link").fetchone()[0] == 0  # nor links

    monkeypatch.setattr(Resolver, "resolve", resolve)
    Reconciler(store, load_mappings(SHIPPED), 1, iso(T0), batch=2, between=store_page
               ).reconcile(0)
    assert store.cursor("hubspot", "email_events") == "c1"
    assert [r["id"] for r in store.source_records("hubspot", "email_events")] == ["e1"]
    assert store.db.conn.execute("SELECT count(*) FROM link").fetchone()[0] == 5


def test_deriving_stages_calls_between_after_each_batch_outside_its_transaction(
    tmp_path: Path,
) -> None:
    store = Store(tmp_path / "s.db")
    _people(store, 5)
    mappings = load_mappings(SHIPPED)
    reconciler = Reconciler(store, mappings, 1, iso(T0))
    reconciler.reconcile(0)
    deriver = StageDeriver(store, load_lifecycle(SHIPPED), spec_for(mappings.person), 1, T0)
    calls: list[bool] = []
    moved = deriver.derive(reconciler.dirty["person"], batch=2,
                           between=lambda: calls.append(store.db.conn.in_transaction))
    assert calls == [False, False, False]
    assert moved == 5  # each live Contact makes its person a lead


@dataclass
class GatedActivities:
    """A HubSpot-named connector: one page of contacts, then email events whose first page is
    read only once the reconcile has begun, and whose second waits for the test."""

    system: str = "hubspot"
    reconciling: threading.Event = field(default_factory=threading.Event)
    first_handed: threading.Event = field(default_factory=threading.Event)

    def streams(self) -> Sequence[Stream]:
        return [Stream("contacts"), Stream("email_events")]

    def pull(self, stream: str, cursor: str | None, window: Window) -> Iterator[Page]:
        if stream == "contacts":
            record = Record(self.system, "contacts", "101", T0, {"email": "ada@example.com"})
            yield Page(stream, [record], cursor="1", watermark=T0)
            return
        assert self.reconciling.wait(10), "the reconcile did not start"
        for number in (1, 2):
            record = Record(self.system, stream, f"e{number}", T0,
                            {"recipient": "ada@example.com", "type": "CLICK"})
            yield Page(stream, [record], cursor=str(number), watermark=T0)
            self.first_handed.set()  # the worker asks for the next once this one is handed

    def usage(self) -> Usage:
        return Usage(self.system, calls=0)

    def close(self) -> None:
        pass


def test_activity_pages_that_arrive_during_the_reconcile_are_stored_between_its_chunks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    connector, recorded = GatedActivities(), Recorded()
    reconciled: list[tuple[str, str]] = []
    chunk = Reconciler._recompute_chunk

    def first_chunk_waits(self: Reconciler, *args: Any) -> None:
        connector.reconciling.set()
        assert connector.first_handed.wait(10), "the first activity page never came"
        chunk(self, *args)

    def reconcile(self: Reconciler, after_run: int) -> Any:
        result = original(self, after_run)
        reconciled.extend(recorded.pages)  # what was stored by the time the reconcile ended
        return result

    original = Reconciler.reconcile
    monkeypatch.setattr(Reconciler, "_recompute_chunk", first_chunk_waits)
    monkeypatch.setattr(Reconciler, "reconcile", reconcile)
    store = Store(tmp_path / "s.db")
    report = run_once(store, {"hubspot": cast(Connector, connector)},
                      clock=lambda: T0 + timedelta(days=1), lookback=timedelta(minutes=10),
                      budgets={}, definitions=load_definitions(SHIPPED),
                      options=RunOptions(dry_run=True), progress=recorded)
    assert report.status == "ok", report.error
    assert ("hubspot", "email_events") in reconciled  # stored by `pump`, mid-reconcile
    assert recorded.pages.count(("hubspot", "email_events")) == 2
