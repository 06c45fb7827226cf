"""SQL for the outbox (what is to be written to each CRM, and what was refused), for the
values syncd last wrote, which tell its own echo apart from a person's edit, and for the links
planning reads a chunk at a time."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import groupby
from typing import Any

from syncd.store.codec import dumps, loads, loads_exact
from syncd.store.unified import SourceKey, _chunks, by_object

_COLUMNS = (
    "id, system, object, kind, entity_id, operation, record_id, key_field, key, fields, "
    "origins, associations, status, attempts, error_code, message, clear_first"
)


@dataclass
class OutboxRow:
    system: str
    object: str
    kind: str
    entity_id: str
    operation: str  # update | upsert
    fields: dict[str, Any]
    record_id: str | None = None
    key_field: str | None = None
    key: str | None = None
    origins: dict[str, str | None] = field(default_factory=dict)
    associations: list[list[Any]] = field(default_factory=list)
    status: str = "pending"
    attempts: int = 0
    error_code: str | None = None
    message: str | None = None
    id: int | None = None
    clear_first: list[str] = field(default_factory=list)  # HubSpot: emptied before the write

    def same_write(self, other: OutboxRow) -> bool:
        return (
            self.system,
            self.object,
            self.operation,
            self.record_id,
            self.key,
            self.fields,
        ) == (other.system, other.object, other.operation, other.record_id, other.key, other.fields)


def _row(values: Sequence[Any]) -> OutboxRow:
    (
        id_,
        system,
        object_,
        kind,
        entity_id,
        operation,
        record_id,
        key_field,
        key,
        fields,
        origins,
        associations,
        status,
        attempts,
        error_code,
        message,
        clear_first,
    ) = values
    return OutboxRow(
        system,
        object_,
        kind,
        entity_id,
        operation,
        loads(fields),
        record_id,
        key_field,
        key,
        loads(origins),
        loads(associations),
        status,
        attempts,
        error_code,
        message,
        id_,
        loads(clear_first),
    )


_INSERT = (
    "INSERT INTO outbox (run, system, object, kind, entity_id, operation, record_id,"
    " key_field, key, fields, origins, associations, status, attempts, error_code,"
    " message, created_at, updated_at, clear_first)"
    " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
)


# A row planned anew (pending, never tried) leaves status, attempts, error and message to the
# columns' defaults and is created and updated at once: fewer values to bind, row by row.
_INSERT_NEW = (
    "INSERT INTO outbox (run, system, object, kind, entity_id, operation, record_id,"
    " key_field, key, fields, origins, associations, clear_first, created_at, updated_at)"
    " VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?14)"
)


def _is_new(row: OutboxRow) -> bool:
    return (row.status, row.attempts, row.error_code, row.message) == ("pending", 0, None, None)


def _planned(row: OutboxRow) -> tuple[Any, ...]:
    """The columns a plan decides, from `system` to `associations`, as both inserts bind them."""
    return (
        row.system,
        row.object,
        row.kind,
        row.entity_id,
        row.operation,
        row.record_id,
        row.key_field,
        row.key,
        dumps(row.fields),
        _json(row.origins, sort_keys=False),
        _json(row.associations),
    )


def _new_values(row: OutboxRow, run: int, at: str) -> tuple[Any, ...]:
    return (run, *_planned(row), _json(row.clear_first), at)


def _json(value: dict[str, Any] | list[Any], *, sort_keys: bool = True) -> str:
    # Most rows have no origins, associations or fields to clear: their JSON is a constant.
    if not value:
        return "{}" if isinstance(value, dict) else "[]"
    return dumps(value, sort_keys=sort_keys)


def _values(row: OutboxRow, run: int, at: str) -> tuple[Any, ...]:
    return (
        run,
        *_planned(row),
        row.status,
        row.attempts,
        row.error_code,
        row.message,
        at,
        at,
        _json(row.clear_first),
    )


class OutboxStore:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def replace(
        self, kind: str, entity_ids: Iterable[str], rows: Iterable[OutboxRow], run: int, at: str
    ) -> int:
        """The plan for these entities becomes `rows`: their pending rows are replaced; a
        parked error whose write is planned again unchanged stays parked (it needs a fix and
        `syncd errors retry`, not a retry every pass). Returns the pending rows written."""
        ids = list(set(entity_ids))
        parked: dict[str, list[OutboxRow]] = {}
        # Each statement below costs about a microsecond per id even where it finds nothing,
        # which is the common case (a first pass, or everything pushed since the last).
        if self._holds(kind):
            for error in self._of(kind, ids, status="error"):
                parked.setdefault(error.entity_id, []).append(error)
            for chunk in _chunks(ids):
                marks = ",".join("?" for _ in chunk)
                self.conn.execute(
                    f"DELETE FROM outbox WHERE kind = ? AND entity_id IN ({marks})",
                    [kind, *chunk],
                )
        written = 0
        rows = list(rows)
        for row in rows:
            old = (
                next((p for p in parked.get(row.entity_id, ()) if p.same_write(row)), None)
                if parked
                else None
            )
            if old is not None:
                row.status, row.attempts = "error", old.attempts
                row.error_code, row.message = old.error_code, old.message
            else:
                written += 1
        # In their order (pushed in id order), a run of rows planned anew at a time.
        for new, group in groupby(rows, key=_is_new):
            if new:
                self.conn.executemany(_INSERT_NEW, [_new_values(r, run, at) for r in group])
            else:
                self.conn.executemany(_INSERT, [_values(r, run, at) for r in group])
        return written

    def _holds(self, kind: str) -> bool:
        """Whether the outbox holds any row of this kind."""
        return (
            self.conn.execute("SELECT 1 FROM outbox WHERE kind = ? LIMIT 1", (kind,)).fetchone()
            is not None
        )

    def _of(self, kind: str, entity_ids: Sequence[str], status: str) -> list[OutboxRow]:
        found: list[OutboxRow] = []
        for chunk in _chunks(list(entity_ids)):
            marks = ",".join("?" for _ in chunk)
            found += [
                _row(r)
                for r in self.conn.execute(
                    f"SELECT {_COLUMNS} FROM outbox WHERE kind = ? AND entity_id IN ({marks})"
                    " AND status = ?",
                    [kind, *chunk, status],
                )
            ]
        return found

    def pending_groups(
        self, kinds: Iterable[str], system: str
    ) -> list[tuple[str, str, list[int]]]:
        """The pending rows of these kinds bound for `system`, as (object, operation, ids), in
        the order push sends them: it reads the rows a chunk at a time (`by_ids`), so that
        what it holds does not grow with the outbox."""
        wanted = list(kinds)
        marks = ",".join("?" for _ in wanted)
        groups: list[tuple[str, str, list[int]]] = []
        for row_id, object_name, operation in self.conn.execute(
            "SELECT id, object, operation FROM outbox WHERE status = 'pending'"
            f" AND kind IN ({marks}) AND system = ? ORDER BY object, operation, id",
            [*wanted, system],
        ):
            if not groups or groups[-1][:2] != (object_name, operation):
                groups.append((object_name, operation, []))
            groups[-1][2].append(int(row_id))
        return groups

    def pending_of(
        self, kind: str, entity_ids: Sequence[str]
    ) -> list[tuple[int, str, str, str]]:
        """The pending rows of these entities, as (id, system, object, operation), in id
        order."""
        found: list[tuple[int, str, str, str]] = []
        for chunk in _chunks(list(entity_ids)):
            marks = ",".join("?" for _ in chunk)
            found += self.conn.execute(
                "SELECT id, system, object, operation FROM outbox WHERE kind = ?"
                f" AND entity_id IN ({marks}) AND status = 'pending'",
                [kind, *chunk],
            ).fetchall()
        return sorted(found)

    def by_ids(self, ids: Sequence[int]) -> list[OutboxRow]:
        """The pending rows among these ids, in the order given."""
        found: dict[int, OutboxRow] = {}
        for chunk in _chunks(ids):
            marks = ",".join("?" for _ in chunk)
            for r in self.conn.execute(
                f"SELECT {_COLUMNS} FROM outbox WHERE status = 'pending' AND id IN ({marks})",
                list(chunk),
            ):
                row = _row(r)
                found[int(row.id or 0)] = row
        return [found[i] for i in ids if i in found]

    def rows(self, status: str | None = None) -> list[OutboxRow]:
        if status is None:
            cursor = self.conn.execute(f"SELECT {_COLUMNS} FROM outbox ORDER BY id")
        else:
            cursor = self.conn.execute(
                f"SELECT {_COLUMNS} FROM outbox WHERE status = ? ORDER BY id", (status,)
            )
        return [_row(r) for r in cursor]

    def done(self, ids: Iterable[int]) -> None:
        self.conn.executemany("DELETE FROM outbox WHERE id = ?", [(i,) for i in ids])

    def park(self, failures: Iterable[tuple[int, str, str]], at: str) -> None:
        """(outbox id, error code, message): the CRM refused these; keep them with why."""
        self.conn.executemany(
            "UPDATE outbox SET status = 'error', attempts = attempts + 1, error_code = ?,"
            " message = ?, updated_at = ? WHERE id = ?",
            [(code, message, at, i) for i, code, message in failures],
        )

    def retry(self, ids: Iterable[int] | None = None) -> int:
        """Parked errors back to pending; all of them, or those ids. Returns how many."""
        if ids is None:
            cursor = self.conn.execute(
                "UPDATE outbox SET status = 'pending' WHERE status = 'error'"
            )
        else:
            cursor = self.conn.executemany(
                "UPDATE outbox SET status = 'pending' WHERE status = 'error' AND id = ?",
                [(i,) for i in ids],
            )
        return int(cursor.rowcount)

    def counts(self) -> dict[str, int]:
        return {
            status: n
            for status, n in self.conn.execute(
                "SELECT status, count(*) FROM outbox GROUP BY status"
            )
        }

    # written values -----------------------------------------------------------------------

    def written(
        self, keys: Iterable[SourceKey]
    ) -> dict[SourceKey, dict[str, tuple[Any, str | None, int]]]:
        """For each target record, field -> (value syncd last wrote, when that value was
        decided, the pass that wrote it)."""
        found: dict[SourceKey, dict[str, tuple[Any, str | None, int]]] = {}
        if self.conn.execute("SELECT 1 FROM written LIMIT 1").fetchone() is None:
            return found  # nothing written yet (a first pass): no statement per id to run
        for system_, obj, chunk in by_object(keys):
            marks = ",".join("?" for _ in chunk)
            for system, object_, record_id, field_, value, origin, run in self.conn.execute(
                "SELECT system, object, record_id, field, value, origin_at, run FROM written"
                f" WHERE system = ? AND object = ? AND record_id IN ({marks})",
                [system_, obj, *chunk],
            ):
                found.setdefault((system, object_, record_id), {})[field_] = (
                    loads_exact(value),
                    origin,
                    int(run),
                )
        return found

    def remember(self, rows: Iterable[tuple[SourceKey, str, Any, str | None]], run: int) -> None:
        """(target record, field, value written, when it was decided) rows."""
        self.conn.executemany(
            "INSERT INTO written (system, object, record_id, field, value, origin_at, run)"
            " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (system, object, record_id, field)"
            " DO UPDATE SET value = excluded.value, origin_at = excluded.origin_at,"
            " run = excluded.run",
            [(k[0], k[1], k[2], f, dumps(v), o, run) for k, f, v, o in rows],
        )
