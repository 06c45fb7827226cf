"""The entities a pass must look at again, kept in a temporary table of the store's connection.

A backfill names every entity: 1.2 million of them at a million people (bench_pipeline's
backfill log, `entities_changed`), held as Python sets until this table. With it and other
changes, that backfill's peak RSS fell from 617 MB (8685f1e) to 334 MB (c4af832); see
docs/benchmarks.md for what it is now. Here they cost SQLite's page cache of the temporary
file, and are read back in sorted chunks by whoever works through them.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator

_FLUSH = 2000  # ids added one at a time are written in batches of this many

# One table per connection (TEMP), one set per kind. A pass starts each kind afresh.
_TABLE = "temp.syncd_dirty"


class DirtyIds:
    """A set of entity ids of one kind, backed by SQLite: add, discard, union, length and
    sorted iteration. Writes join the transaction open on the connection (a batch rolled back
    takes its ids with it) and commit at once when none is. Being TEMP, the table is never
    part of the store file."""

    def __init__(self, conn: sqlite3.Connection, kind: str) -> None:
        self.conn, self.kind = conn, kind
        self._pending: set[str] = set()
        conn.execute(
            f"CREATE TABLE IF NOT EXISTS {_TABLE} (kind TEXT NOT NULL, id TEXT NOT NULL,"
            " PRIMARY KEY (kind, id)) WITHOUT ROWID"
        )

    @classmethod
    def fresh(cls, conn: sqlite3.Connection, kind: str) -> DirtyIds:
        """An empty set of this kind (what an earlier pass on this connection left is gone)."""
        dirty = cls(conn, kind)
        dirty._write(f"DELETE FROM {_TABLE} WHERE kind = ?", [(kind,)])
        return dirty

    def add(self, entity_id: str) -> None:
        self._pending.add(entity_id)
        if len(self._pending) >= _FLUSH:
            self.flush()

    def discard(self, entity_id: str) -> None:
        self._pending.discard(entity_id)
        self._write(f"DELETE FROM {_TABLE} WHERE kind = ? AND id = ?", [(self.kind, entity_id)])

    def update(self, ids: Iterable[str]) -> None:
        """Add these ids (a generator is consumed a batch at a time, never held whole)."""
        for entity_id in ids:
            self.add(entity_id)
        self.flush()

    def __ior__(self, ids: Iterable[str]) -> DirtyIds:
        self.update(ids)
        return self

    def add_live(self) -> None:
        """Every live (not merged away) entity of the kind, in SQL."""
        self.flush()
        self._write(
            f"INSERT OR IGNORE INTO {_TABLE} (kind, id) SELECT kind, id FROM main.entity"
            " WHERE kind = ? AND merged_into IS NULL",
            [(self.kind,)],
        )

    def flush(self) -> None:
        if self._pending:
            pending, self._pending = self._pending, set()
            self._write(
                f"INSERT OR IGNORE INTO {_TABLE} (kind, id) VALUES (?, ?)",
                [(self.kind, entity_id) for entity_id in pending],
            )

    def chunks(self, size: int = 2000) -> Iterator[list[str]]:
        """The ids in order, `size` at a time. Each chunk is read whole before it is handed
        over, so the caller may add to the set while it works through it: ids added after
        the last chunk read are in a later chunk if they sort after it."""
        self.flush()
        last = ""
        while True:
            chunk = [
                row[0]
                for row in self.conn.execute(
                    f"SELECT id FROM {_TABLE} WHERE kind = ? AND id > ? ORDER BY id LIMIT ?",
                    (self.kind, last, size),
                )
            ]
            if not chunk:
                return
            yield chunk
            last = chunk[-1]

    def __iter__(self) -> Iterator[str]:
        for chunk in self.chunks():
            yield from chunk

    def __len__(self) -> int:
        self.flush()
        row = self.conn.execute(f"SELECT count(*) FROM {_TABLE} WHERE kind = ?", (self.kind,))
        return int(row.fetchone()[0])

    def _write(self, sql: str, rows: list[tuple[str, ...]]) -> None:
        joined = self.conn.in_transaction
        self.conn.executemany(sql, rows)
        if not joined:
            self.conn.commit()


def sorted_chunks(ids: Iterable[str], size: int) -> Iterator[list[str]]:
    """These ids in order, `size` at a time: a `DirtyIds` read from SQLite in chunks, anything
    else sorted in memory (a set is not copied first)."""
    if isinstance(ids, DirtyIds):
        yield from ids.chunks(size)
        return
    ordered = sorted(ids if isinstance(ids, (set, frozenset)) else set(ids))
    for start in range(0, len(ordered), size):
        yield ordered[start : start + size]
