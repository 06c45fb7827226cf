"""Push: outbox rows to the CRMs, in the largest batches each API allows (ARCHITECTURE 1).

Before a chunk is sent, the records its updates target are asked for their modification
stamps: a row whose target changed after the stamp the store holds (someone edited it while
the pass ran) stays pending, since its plan was made from an older read; the next pass reads
the edit and plans again. Each result is recorded per record, in one transaction per chunk:
applied rows leave the outbox and what they wrote is remembered (so the next pull knows
syncd's own echo); a record created by an upsert is linked to its entity at once; refused
rows stay as errors with the CRM's reason while their batch-mates land.
"""

from __future__ import annotations

import logging
import queue
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from syncd.connector import Connector
from syncd.log import event
from syncd.model import Change, PushResult
from syncd.readahead import Interleaved
from syncd.store import Store, iso
from syncd.store.outbox import OutboxRow
from syncd.store.unified import Link

log = logging.getLogger("syncd.push")
# Changes handed to a connector at once: one transaction of results each, and one stamp read
# per object (Salesforce reads 2,000 stamps a call, HubSpot 100).
CHUNK = 2000


def _chunks(
    connector: Connector, groups: Iterable[tuple[str, str, list[int]]]
) -> Iterator[list[int]]:
    """The outbox ids a connector is handed at a time: CHUNK of them, across objects, except
    for a group the connector writes another way when it is that large (`push_chunk`), which
    goes in chunks of its own size."""
    runs: list[tuple[list[int], int]] = []
    usual: list[int] = []
    for object_name, operation, ids in groups:
        size = connector.push_chunk(object_name, operation, len(ids))
        if size is None:
            usual += ids
            continue
        if usual:
            runs.append((usual, CHUNK))
            usual = []
        runs.append((ids, max(1, size)))
    if usual:
        runs.append((usual, CHUNK))
    return iter([ids[i : i + size] for ids, size in runs for i in range(0, len(ids), size)])


@dataclass
class PushReport:
    applied: dict[tuple[str, str], int] = field(default_factory=dict)
    created: dict[tuple[str, str], int] = field(default_factory=dict)
    rejected: dict[tuple[str, str], int] = field(default_factory=dict)
    held: dict[tuple[str, str], int] = field(default_factory=dict)  # target changed: pending

    def add(self, other: PushReport) -> None:
        for mine, theirs in (
            (self.applied, other.applied),
            (self.created, other.created),
            (self.rejected, other.rejected),
            (self.held, other.held),
        ):
            for key, count in theirs.items():
                mine[key] = mine.get(key, 0) + count


def push(
    store: Store,
    connectors: Mapping[str, Connector],
    kinds: Iterable[str],
    run: int,
    *,
    after_chunk: Callable[[], None] = lambda: None,
) -> PushReport:
    """Send every pending outbox row of these kinds; record each result (`Pushing`)."""
    with Pushing(store, connectors, kinds, run, after_chunk=after_chunk) as pushing:
        return pushing.finish()


# While rows are still being planned, a group of one object and operation is handed over in
# multiples of this many, so that no batch call goes out part-empty because its group had
# not been planned whole yet (HubSpot's batch endpoints take 100 inputs, sObject Collections
# 200).
WHOLE_BATCHES = 200


class Pushing:
    """Sends the pending outbox rows of these kinds, and records each result.

    The CRMs are written side by side, each from a worker thread of its own that sends one
    chunk at a time; its results are recorded on the store's thread, before its next chunk
    is handed over (so a stopped pass has at most one chunk per CRM sent and not recorded,
    two while planning, which its idempotent upserts and re-planned updates make good).

    It can start while rows of its kinds are still being planned: `planned` hands on the
    rows of entities just planned, and `pump` records what has been sent, both between the
    planner's chunks. A backfill of a million people plans for minutes (`bench_pipeline`'s plan
    column in docs/benchmarks.md), and HubSpot, whose allowance the pass waits on, would
    otherwise make no call meanwhile. Till `finish`:
    - a group a connector writes another way when it is large (Salesforce's Bulk API 2.0
      above `bulk_threshold`, `push_chunk`) waits, since its size is not known yet;
    - the others go in whole batches (`WHOLE_BATCHES`), and each CRM may have a second chunk
      waiting while one is sent, since the store's thread answers between planner chunks;
    - what a chunk raises (a CRM error, the budget, a stop asked for) is kept and raised by
      `finish`: the planning goes on to its end (the credits it plans revenue from are
      committed already), and nothing more is handed over.
    """

    def __init__(
        self,
        store: Store,
        connectors: Mapping[str, Connector],
        kinds: Iterable[str],
        run: int,
        *,
        after_chunk: Callable[[], None] = lambda: None,
    ) -> None:
        self.store, self.connectors, self.run = store, connectors, run
        self.kinds, self.after_chunk = list(kinds), after_chunk
        self.report = PushReport()
        self._planning = False
        self._failed: Exception | None = None
        self._jobs: dict[str, queue.Queue[_Job | None]] = {
            system: queue.Queue() for system in connectors
        }
        # Per CRM: chunks to hand over, the ids handed and not recorded (a chunk per job),
        # and the rows held back this pass (their target changed): neither is handed again.
        self._chunks: dict[str, Iterator[list[int]]] = {}
        self._sending: dict[str, list[list[int]]] = {system: [] for system in connectors}
        self._held: set[int] = set()
        # While planning: per CRM, (object, operation) -> ids planned and not handed yet.
        self._waiting: dict[str, dict[tuple[str, str], list[int]]] = {
            system: {} for system in connectors
        }
        self._same_way: dict[tuple[str, str, str], bool] = {}
        self._rows: dict[tuple[str, str, str], int] = {}  # most rows to a chunk of a group
        self._ended: set[str] = set()
        self._sent: Interleaved[tuple[list[OutboxRow], set[tuple[str, str]], list[PushResult]]]
        self._sent = Interleaved(
            {system: _sender(c, self._jobs[system]) for system, c in connectors.items()},
            "push",
            ahead=dict.fromkeys(connectors, 2),
        )

    def __enter__(self) -> Pushing:
        return self

    def __exit__(self, *exc: object) -> None:
        for waiting in self._jobs.values():
            waiting.put(None)  # a worker waiting for its next chunk ends there
        self._sent.close()

    def planning(self) -> None:
        """Rows of these kinds are still being planned: until `finish`, only the rows handed
        on by `pending` and `planned` go out."""
        self._planning = True

    def pending(self, kinds: Iterable[str], rows: int = CHUNK) -> None:
        """While planning, hand on every pending row of these kinds (planned whole already),
        up to `rows` to a chunk: a pass that does not record results for a while (it builds
        touchpoints) gives each CRM larger chunks to send meanwhile."""
        for system in self.connectors:
            for object_name, operation, ids in self.store.outbox.pending_groups(kinds, system):
                self._wait(system, object_name, operation, ids, rows)
        self.pump()

    def planned(self, kind: str, entity_ids: Iterable[str]) -> None:
        """While planning: the pending rows of these entities, just planned, may go."""
        if self._failed is not None:
            return  # nothing more is handed over
        for row_id, system, object_name, operation in self.store.outbox.pending_of(
            kind, list(entity_ids)
        ):
            if system in self.connectors:
                self._wait(system, object_name, operation, [row_id])
        self.pump()

    def pump(self) -> None:
        """While planning: record the chunks sent already and hand over more, without
        waiting."""
        if self._failed is not None or not self._planning:
            return
        try:
            for system in self.connectors:
                self._hand_over(system)
            for system, sent in self._sent.ready():
                self._recorded(system, *sent)
        except Exception as exc:  # kept for `finish`: see the class docstring
            self._failed = exc

    def finish(self) -> PushReport:
        """Send everything of these kinds pending now, waiting for each result."""
        if self._failed is not None:
            raise self._failed
        self._planning = False
        sending = {i for chunks in self._sending.values() for ids in chunks for i in ids}
        for system, connector in self.connectors.items():
            self._waiting[system] = {}
            # Ids now, rows a chunk at a time: what the push holds stays flat however many
            # it sends.
            groups = [
                (object_name, operation, left)
                for object_name, operation, ids in self.store.outbox.pending_groups(
                    self.kinds, system
                )
                if (left := [i for i in ids if i not in sending and i not in self._held])
            ]
            self._chunks[system] = _chunks(connector, groups)
            self._hand_over(system)
        for system, sent in self._sent:
            self._recorded(system, *sent)
        self._log()
        return self.report

    def _wait(
        self, system: str, object_name: str, operation: str, ids: list[int], rows: int = CHUNK
    ) -> None:
        connector = self.connectors[system]
        key = (system, object_name, operation)
        if key not in self._same_way:
            self._same_way[key] = connector.push_chunk(object_name, operation, 2**62) is None
        if self._same_way[key]:
            self._waiting[system].setdefault((object_name, operation), []).extend(ids)
            self._rows[key] = rows

    def _next(self, system: str) -> list[int] | None:
        if not self._planning:
            return next(self._chunks[system], None)
        for group, ids in self._waiting[system].items():
            most = self._rows[(system, *group)]
            whole = min(most, len(ids)) // WHOLE_BATCHES * WHOLE_BATCHES
            if whole:
                self._waiting[system][group] = ids[whole:]
                return ids[:whole]
        return None

    def _hand_over(self, system: str) -> None:
        sending = self._sending[system]
        while system not in self._ended and len(sending) < (2 if self._planning else 1):
            ids = self._next(system)
            if ids is None:
                if not self._planning and not sending:
                    self._ended.add(system)
                    self._jobs[system].put(None)
                return
            chunk = self.store.outbox.by_ids(ids)
            sending.append(ids)
            self._jobs[system].put(_Job(chunk, _read_stamps(self.store, chunk)))

    def _recorded(
        self,
        system: str,
        chunk: list[OutboxRow],
        moved: set[tuple[str, str]],
        results: list[PushResult],
    ) -> None:
        self._sending[system].pop(0)
        kept = _unchanged_since_read(chunk, moved, self.report)
        self._held.update(int(row.id or 0) for row in chunk if _held(row, moved))
        with self.store.transaction():
            _record(self.store, kept, results, self.run, self.report)
        self.after_chunk()
        self._hand_over(system)

    def _log(self) -> None:
        report, run = self.report, self.run
        for (system, obj), count in sorted(report.applied.items()):
            event(
                log,
                "push",
                run=run,
                system=system,
                object=obj,
                applied=count,
                created=report.created.get((system, obj), 0),
                rejected=report.rejected.get((system, obj), 0),
            )
        for (system, obj), count in sorted(report.rejected.items()):
            if (system, obj) not in report.applied:
                event(log, "push", run=run, system=system, object=obj, applied=0, rejected=count)
        for (system, obj), count in sorted(report.held.items()):
            event(
                log,
                "push_held",
                run=run,
                system=system,
                object=obj,
                rows=count,
                reason="changed_since_read",
            )


@dataclass
class _Job:
    """A chunk for a sender, with the stamps the store holds for its update targets (read on
    the store's thread)."""

    rows: list[OutboxRow]
    read: dict[tuple[str, str, str], str]


def _sender(
    connector: Connector, jobs: queue.Queue[_Job | None]
) -> Iterator[tuple[list[OutboxRow], set[tuple[str, str]], list[PushResult]]]:
    """Run on a worker: for each chunk handed over, check its targets' stamps and send the rows
    whose targets did not move; yields (chunk, moved targets, results)."""
    while (job := jobs.get()) is not None:
        moved = _moved_since_read(connector, job.read)
        chunk = [row for row in job.rows if not _held(row, moved)]
        refused = _clear_first(connector, chunk)
        skipped = {r.ref for r in refused}
        results = [
            *refused,
            *connector.push([_change(row) for row in chunk if str(row.id) not in skipped]),
        ]
        yield job.rows, moved, results


def _held(row: OutboxRow, moved: set[tuple[str, str]]) -> bool:
    return row.operation == "update" and (row.object, row.record_id) in moved


def _unchanged_since_read(
    rows: list[OutboxRow], moved: set[tuple[str, str]], report: PushReport
) -> list[OutboxRow]:
    """The rows whose target still shows the stamp their plan was made from; the others stay
    pending (counted as held) until the next pass has read the edit and planned again."""
    kept = []
    for row in rows:
        if _held(row, moved):
            where = (row.system, row.object)
            report.held[where] = report.held.get(where, 0) + 1
        else:
            kept.append(row)
    return kept


def _read_stamps(store: Store, rows: list[OutboxRow]) -> dict[tuple[str, str, str], str]:
    """The stamps the store holds for the update targets of these rows. Upserts carry no
    record id (their target was never read) and are not checked."""
    return store.updated_at(
        (row.system, row.object, row.record_id)
        for row in rows
        if row.operation == "update" and row.record_id
    )


def _moved_since_read(
    connector: Connector, read: Mapping[tuple[str, str, str], str]
) -> set[tuple[str, str]]:
    """(object, id) of the update targets the CRM stamps later than the store read them; no
    targets cost no call."""
    ids: dict[str, list[str]] = {}
    for _, obj, record_id in sorted(read):
        ids.setdefault(obj, []).append(record_id)
    moved = set()
    for obj, wanted in ids.items():
        for record_id, stamp in connector.stamps(obj, wanted).items():
            seen = read.get((connector.system, obj, record_id))
            # Both sides at the store's precision (milliseconds), as text in time order.
            if seen is not None and iso(stamp) > seen:
                moved.add((obj, record_id))
    return moved


def _clear_first(connector: Connector, rows: list[OutboxRow]) -> list[PushResult]:
    """HubSpot moves a lifecycle stage backwards only once the value was cleared in a request
    of its own (reference 1.11): clear first; a row whose clear was refused is refused."""
    clears = [
        Change(
            system=row.system,
            object=row.object,
            ref=str(row.id),
            operation="update",
            fields={name: "" for name in row.clear_first},
            id=row.record_id,
        )
        for row in rows
        if row.clear_first and row.record_id
    ]
    if not clears:
        return []
    return [result for result in connector.push(clears) if not result.ok]


def _change(row: OutboxRow) -> Change:
    return Change(
        system=row.system,
        object=row.object,
        ref=str(row.id),
        operation="update" if row.operation == "update" else "upsert",
        fields=row.fields,
        id=row.record_id,
        key_field=row.key_field,
        key=row.key,
        associations=[(str(a[0]), str(a[1]), int(a[2])) for a in row.associations],
    )


def _record(
    store: Store, rows: list[OutboxRow], results: list[PushResult], run: int, report: PushReport
) -> None:
    at = iso(datetime.now(UTC))
    by_ref = {result.ref: result for result in results}
    done, failed, remembered, links = [], [], [], []
    for row in rows:
        result = by_ref.get(str(row.id))
        where = (row.system, row.object)
        if result is None or not result.ok:
            code = result.error_code if result else "NO_RESULT"
            message = result.message if result else "the connector gave no result for it"
            failed.append((int(row.id or 0), code or "REJECTED", message))
            report.rejected[where] = report.rejected.get(where, 0) + 1
            continue
        done.append(int(row.id or 0))
        report.applied[where] = report.applied.get(where, 0) + 1
        record_id = result.id or row.record_id
        if record_id is None:
            continue
        target = (row.system, row.object, record_id)
        remembered += [
            (target, name, value, row.origins.get(name)) for name, value in row.fields.items()
        ]
        if row.operation != "update":
            links.append(
                Link(row.system, row.object, record_id, row.kind, row.entity_id, created_at=at)
            )
            if result.created:
                report.created[where] = report.created.get(where, 0) + 1
    store.outbox.done(done)
    store.outbox.park(failed, at)
    store.outbox.remember(remembered, run)
    known = store.unified.links(link.key for link in links)
    store.unified.save_links([lk for lk in links if lk.key not in known], run)
