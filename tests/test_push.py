"""Push writes both CRMs side by side: each from a worker thread of its own, one chunk at a
time, its results recorded on the store's thread before its next chunk goes out."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import cast

import pytest

from syncd.connector import Connector
from syncd.errors import BudgetError
from syncd.model import Change, PushResult, Usage
from syncd.push import CHUNK, WHOLE_BATCHES, Pushing, push
from syncd.store import Store
from syncd.store.outbox import OutboxRow, OutboxStore


@dataclass
class FakeCRM:
    """Applies every change; `wait_for` holds its first push until that event is set,
    `fail_on` raises a budget error on that push (1 = the first), and a group of one object and
    operation larger than `bulk_above` is asked for `bulk_chunk` at a time (`push_chunk`)."""

    system: str
    wait_for: threading.Event | None = None
    fail_on: int | None = None
    pushed: list[list[str]] = field(default_factory=list)
    objects: list[list[str]] = field(default_factory=list)  # of each push, its changes' objects
    threads: set[int] = field(default_factory=set)
    done: threading.Event = field(default_factory=threading.Event)
    bulk_above: int | None = None  # groups larger than this come in chunks of bulk_chunk
    bulk_chunk: int = 0

    def stamps(self, object_name: str, ids: Sequence[str]) -> dict[str, datetime]:
        return {}

    def push(self, changes: Sequence[Change]) -> list[PushResult]:
        self.threads.add(threading.get_ident())
        if self.wait_for is not None and not self.pushed:
            assert self.wait_for.wait(10), "the other CRM was not written meanwhile"
        if self.fail_on == len(self.pushed) + 1:
            raise BudgetError(f"{self.system}: spent", system=self.system)
        self.pushed.append([change.ref for change in changes])
        self.objects.append([change.object for change in changes])
        self.done.set()
        return [PushResult(change.ref, True, id=f"{self.system}-{change.ref}")
                for change in changes]

    def push_chunk(self, object_name: str, operation: str, pending: int) -> int | None:
        return self.bulk_chunk if self.bulk_above is not None and pending > self.bulk_above \
            else None

    def usage(self) -> Usage:
        return Usage(self.system, calls=len(self.pushed))


def planned(store: Store, system: str, count: int) -> None:
    rows = [
        OutboxRow(system, "Thing", "person", f"{system}{n}", "upsert", {"n": n},
                  key_field="Ext", key=f"{system}{n}")
        for n in range(count)
    ]
    with store.transaction():
        store.outbox.replace("person", [row.entity_id for row in rows], rows, 1, "2026-01-01")


def pending(store: Store, system: str) -> int:
    return sum(len(ids) for *_, ids in store.outbox.pending_groups(["person"], system))


def test_both_crms_are_written_side_by_side_and_recorded_on_the_store_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = Store(tmp_path / "s.db")
    planned(store, "first", CHUNK + 5)
    planned(store, "second", 3)
    second = FakeCRM("second")
    # The first CRM's first write waits for the second CRM's: one after the other, the
    # second would never start.
    first = FakeCRM("first", wait_for=second.done)
    connectors = {"first": cast(Connector, first), "second": cast(Connector, second)}
    read: list[int] = []
    by_ids = OutboxStore.by_ids

    def counted(outbox: OutboxStore, ids: Sequence[int]) -> list[OutboxRow]:
        read.append(len(ids))
        return by_ids(outbox, ids)

    monkeypatch.setattr(OutboxStore, "by_ids", counted)
    report = push(store, connectors, ["person"], 2)
    assert sorted(read) == [3, 5, CHUNK]  # rows are read a chunk at a time, not all at once
    assert [len(refs) for refs in first.pushed] == [CHUNK, 5]
    assert [len(refs) for refs in second.pushed] == [3]
    assert report.applied == {("first", "Thing"): CHUNK + 5, ("second", "Thing"): 3}
    assert pending(store, "first") == pending(store, "second") == 0
    assert threading.get_ident() not in first.threads | second.threads


def test_a_budget_error_on_one_crm_keeps_what_both_wrote_before_it(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    planned(store, "first", 2 * CHUNK)
    planned(store, "second", 3)
    first, second = FakeCRM("first", fail_on=2), FakeCRM("second")
    connectors = {"first": cast(Connector, first), "second": cast(Connector, second)}
    with pytest.raises(BudgetError, match="first: spent"):
        push(store, connectors, ["person"], 2)
    assert pending(store, "first") == CHUNK  # the first chunk was recorded, the second not sent
    # Written and recorded, or not recorded (never sent, or sent as the error arrived: its
    # upserts find their records next pass).
    assert pending(store, "second") in (0, 3)
    if pending(store, "second") == 0:
        assert len(second.pushed) == 1
    assert not [t for t in threading.enumerate() if t.name.startswith("push-")]


def planned_groups(store: Store, system: str, groups: Sequence[tuple[str, str, int]]) -> None:
    rows = [
        OutboxRow(system, obj, "person", f"{obj}{n}", operation, {"n": n},
                  record_id=f"{obj}{n}" if operation == "update" else None,
                  key_field="Ext" if operation == "upsert" else None,
                  key=f"{obj}{n}" if operation == "upsert" else None)
        for obj, operation, count in groups
        for n in range(count)
    ]
    with store.transaction():
        store.outbox.replace("person", [row.entity_id for row in rows], rows, 1, "2026-01-01")


@pytest.mark.parametrize(("bulk_above", "chunks"), [
    (None, [[("Alpha", 3), ("Beta", 25), ("Gamma", 4)]]),
    # Beta alone is above: it comes whole in chunks of its own size, the rest as usual.
    (10, [[("Alpha", 3)], [("Beta", 7)], [("Beta", 7)], [("Beta", 7)], [("Beta", 4)],
          [("Gamma", 4)]]),
])
def test_a_group_the_connector_writes_in_bulk_comes_in_chunks_of_its_size(
    tmp_path: Path, bulk_above: int | None, chunks: list[list[tuple[str, int]]]
) -> None:
    store = Store(tmp_path / "s.db")
    planned_groups(store, "crm", [("Beta", "update", 25), ("Alpha", "upsert", 3),
                                  ("Gamma", "upsert", 4)])
    crm = FakeCRM("crm", bulk_above=bulk_above, bulk_chunk=7)
    report = push(store, {"crm": cast(Connector, crm)}, ["person"], 2)
    seen = [[(obj, objects.count(obj)) for obj in sorted(set(objects))]
            for objects in crm.objects]
    assert seen == chunks
    assert report.applied == {("crm", "Alpha"): 3, ("crm", "Beta"): 25, ("crm", "Gamma"): 4}
    assert pending(store, "crm") == 0


# -- pushing while the plan is made (`Pushing.planning`) ----------------------------------------


def plan_more(store: Store, system: str, first: int, count: int, obj: str = "Thing") -> list[str]:
    """Plan `count` more entities (one row each); their ids."""
    rows = [
        OutboxRow(system, obj, "person", f"{system}{n:05d}", "upsert", {"n": n},
                  key_field="Ext", key=f"{system}{n}")
        for n in range(first, first + count)
    ]
    ids = [row.entity_id for row in rows]
    with store.transaction():
        store.outbox.replace("person", ids, rows, 1, "2026-01-01")
    return ids


def test_rows_planned_while_pushing_go_in_whole_batches_and_bulk_groups_wait_for_finish(
    tmp_path: Path,
) -> None:
    store = Store(tmp_path / "s.db")
    crm = FakeCRM("crm")
    bulk = FakeCRM("bulk", bulk_above=0, bulk_chunk=1000)  # any group may go in bulk
    connectors = {"crm": cast(Connector, crm), "bulk": cast(Connector, bulk)}
    with Pushing(store, connectors, ["person"], 2) as out:
        out.planning()
        for chunk in range(3):
            out.planned("person", plan_more(store, "crm", chunk * 250, 250)
                        + plan_more(store, "bulk", chunk * 10, 10))
            assert crm.done.wait(10), "nothing was sent while planning"
        wait_sent(crm, 2)  # two chunks of 200 of the first 500 planned, at least
        during = [len(refs) for refs in crm.pushed]
        assert not bulk.pushed  # its size decides how it goes: known once the plan is done
        report = out.finish()
    assert during and all(size % WHOLE_BATCHES == 0 for size in during)
    assert sum(during) <= 600  # whole batches of the 750 planned
    sent = [ref for refs in crm.pushed for ref in refs]
    assert len(sent) == len(set(sent)) == 750  # every row once
    assert [len(refs) for refs in bulk.pushed] == [30]  # one group of 30, in bulk
    assert report.applied == {("crm", "Thing"): 750, ("bulk", "Thing"): 30}
    assert pending(store, "crm") == pending(store, "bulk") == 0


def test_what_a_chunk_raises_while_planning_waits_for_finish_and_the_plan_goes_on(
    tmp_path: Path,
) -> None:
    store = Store(tmp_path / "s.db")
    crm = FakeCRM("crm", fail_on=1)
    planned_ids: list[str] = []
    with Pushing(store, {"crm": cast(Connector, crm)}, ["person"], 2) as out:
        out.planning()
        for chunk in range(5):
            ids = plan_more(store, "crm", chunk * 400, 400)
            out.planned("person", ids)  # never raises: the plan goes on to its end
            planned_ids += ids
            time.sleep(0.05)  # the first chunk's error arrives meanwhile
        out.pump()
        with pytest.raises(BudgetError, match="crm: spent"):
            out.finish()
    assert len(planned_ids) == 2000
    assert crm.pushed == []  # the first chunk failed (that nothing more is handed over after
    # an error is the next test's: there the CRM could still take it)
    assert pending(store, "crm") == 2000  # all planned, none recorded: the next pass sends them


def test_a_stop_asked_for_while_planning_is_raised_by_finish_after_the_chunk_it_followed(
    tmp_path: Path,
) -> None:
    """`after_chunk` (the pass's checkpoint: its budget, SIGTERM) raising while the plan is
    made: the chunk before it is recorded, nothing more goes out, and `finish` raises it."""

    class Stop(Exception):
        pass

    def stop() -> None:
        raise Stop

    store = Store(tmp_path / "s.db")
    go = threading.Event()
    crm = FakeCRM("crm", wait_for=go)
    with Pushing(store, {"crm": cast(Connector, crm)}, ["person"], 2, after_chunk=stop) as out:
        out.planning()
        out.planned("person", plan_more(store, "crm", 0, 200))
        out.planned("person", plan_more(store, "crm", 200, 200))  # waits while one is sent
        go.set()
        wait_sent(crm, 2)
        # Records the first chunk, after which the stop comes: these are not handed over.
        out.planned("person", plan_more(store, "crm", 400, 200))
        with pytest.raises(Stop):
            out.finish()
    assert len(crm.pushed) == 2
    assert pending(store, "crm") == 600 - 200  # the first recorded; the second sent, not


def wait_sent(crm: FakeCRM, chunks: int) -> None:
    """Wait until the CRM was sent this many chunks."""
    deadline = time.monotonic() + 10
    while len(crm.pushed) < chunks:
        assert time.monotonic() < deadline, f"{crm.system}: {len(crm.pushed)} chunks sent"
        time.sleep(0.01)


def test_rows_pending_already_go_in_chunks_of_the_size_asked_while_planning(
    tmp_path: Path,
) -> None:
    store = Store(tmp_path / "s.db")
    plan_more(store, "crm", 0, 2500)
    go = threading.Event()
    crm = FakeCRM("crm", wait_for=go)
    with Pushing(store, {"crm": cast(Connector, crm)}, ["person"], 2) as out:
        out.planning()
        out.pending(["person"], rows=1000)  # two chunks handed: one sent, one waiting
        go.set()
        wait_sent(crm, 2)
        report = out.finish()
    assert [len(refs) for refs in crm.pushed] == [1000, 1000, 500]
    assert report.applied == {("crm", "Thing"): 2500}


def test_hand_offs_are_recorded_for_the_people_of_a_chunk_before_their_leads_leave(
    tmp_path: Path,
) -> None:
    """The pass records each planned chunk's hand-offs (`record_planned(among)`) before the
    push may take the chunk's Lead upserts out of the outbox, which is where they are found."""
    from datetime import UTC

    from syncd.handoff import HandoffTracker
    from syncd.stages import load_lifecycle

    store = Store(tmp_path / "s.db")
    rows = [OutboxRow("salesforce", "Lead", "person", person, "upsert", {"LastName": person},
                      key_field="Syncd_Id__c", key=person) for person in ("p1", "p2", "p3")]
    with store.transaction():
        store.outbox.replace("person", ["p1", "p2", "p3"], rows, 1, "2026-01-01")
    shipped = Path(__file__).resolve().parent.parent / "mappings"
    tracker = HandoffTracker(store, load_lifecycle(shipped), 1, datetime(2026, 1, 1, tzinfo=UTC))
    assert tracker.record_planned(["p1", "p3", "p4"]) == 2
    assert sorted(store.lifecycle.handoffs(["p1", "p2", "p3"])) == ["p1", "p3"]
    assert tracker.record_planned(["p1"]) == 0  # once
    assert tracker.record_planned() == 1  # the rest: p2
    assert sorted(store.lifecycle.handoffs(["p1", "p2", "p3"])) == ["p1", "p2", "p3"]
