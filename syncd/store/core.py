"""The SQLite store (sqlite-utils, WAL): the one module that writes SQL.

Holds what was pulled (`source_record`), where each stream stands (`cursor`), the runs and the
API usage. A page of records and its cursor commit in one transaction, so a run killed at any
instant resumes with nothing lost and nothing half-written. The file is created readable by
its owner only.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import sqlite_utils

from syncd.errors import StoreError
from syncd.model import Page, Usage
from syncd.store.attribution import AttributionStore
from syncd.store.codec import Decoded, dumps, loads
from syncd.store.lifecycle import LifecycleStore
from syncd.store.migrations import MIGRATIONS
from syncd.store.outbox import OutboxStore
from syncd.store.reports import ReportStore
from syncd.store.unified import UnifiedStore, by_object


def iso(value: datetime) -> str:
    """ISO 8601 in UTC with milliseconds and `Z`: sorts as text in time order.

    By `isoformat`, which is faster than `strftime` (every record of every page is stamped,
    and reconcile reads a change time per record). `strftime` writes years before 1000
    unpadded: those keep its text."""
    moment = value.astimezone(UTC)
    if moment.year < 1000:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    return moment.isoformat(timespec="milliseconds")[:23] + "Z"


def parse_iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


WAL_BYTES = 64 * 2**20  # written to the log between checkpoints (`Store.__init__`)


class Store:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._in_transaction = False  # inside `transaction()`
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            if not path.exists():
                # Created 0600 before SQLite opens it: the store holds people's data.
                os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
            self.db = sqlite_utils.Database(str(path))
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.execute("PRAGMA busy_timeout=5000")
            # Checkpoints (the log copied into the file, which is then synced) every 64 MiB
            # written rather than SQLite's 1,000 pages (4 MiB): a pass rewrites the same
            # entity, link and outbox pages stage after stage, and each checkpoint copied
            # them again. `bench_reconcile --scale 100000 --profile incremental`: the
            # incremental pass's 18 commits took 0.203 s with 4 MiB, 0.026 s with 64 MiB; the
            # last checkpoint moves to the close, which the benchmark counts in the pass (its
            # `Store.close` row). The log is cut back to that size after each.
            page = int(self.db.execute("PRAGMA page_size").fetchone()[0])
            self.db.execute(f"PRAGMA wal_autocheckpoint={WAL_BYTES // page}")
            self.db.execute(f"PRAGMA journal_size_limit={WAL_BYTES}")
            self._migrate()
            self._check_tables()
        except (OSError, sqlite3.DatabaseError) as exc:
            raise StoreError(
                f"Store {path}: cannot be opened ({exc}). Check the path in "
                f"[store] path and that the file is a syncd store."
            ) from None

    def close(self) -> None:
        self.db.close()

    @property
    def unified(self) -> UnifiedStore:
        return UnifiedStore(self.db.conn)

    @property
    def outbox(self) -> OutboxStore:
        return OutboxStore(self.db.conn)

    @property
    def lifecycle(self) -> LifecycleStore:
        return LifecycleStore(self.db.conn)

    @property
    def attribution(self) -> AttributionStore:
        return AttributionStore(self.db.conn)

    @property
    def reports(self) -> ReportStore:
        return ReportStore(self.db.conn)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One transaction: everything inside commits together or not at all. Opened inside
        another, it joins that one (sqlite3's own `with conn` would commit the outer one's work
        at the inner one's end): the pass stores pages that arrive while it resolves
        identities inside the resolve's transaction, and they commit or roll back with it."""
        if self._in_transaction:
            yield
            return
        self._in_transaction = True
        try:
            with self.db.conn:
                yield
        finally:
            self._in_transaction = False

    def _migrate(self) -> None:
        conn = self.db.conn
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_version "
            "(version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
        )
        done = {row[0] for row in conn.execute("SELECT version FROM schema_version")}
        newest = max(v for v, _, _ in MIGRATIONS)
        if done and max(done) > newest:
            raise StoreError(
                f"Store {self.path}: schema version {max(done)} is newer than this syncd "
                f"understands ({newest}). Upgrade syncd."
            )
        for version, name, script in MIGRATIONS:
            if version in done:
                continue
            with conn:
                conn.execute("BEGIN IMMEDIATE")
                # Another process opening the same new store may have applied it meanwhile.
                applied = "SELECT 1 FROM schema_version WHERE version = ?"
                if conn.execute(applied, (version,)).fetchone() is not None:
                    continue
                for statement in _statements(script):
                    conn.execute(statement)
                conn.execute(
                    "INSERT INTO schema_version VALUES (?, ?, ?)",
                    (version, name, iso(datetime.now(UTC))),
                )

    def _check_tables(self) -> None:
        """Every table and column the migrations make is there: one dropped by hand (or by a
        tool) would otherwise fail deep inside a command, where no line can say what is wrong."""
        conn = self.db.conn
        present = {name for (name,) in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'")}
        missing = sorted(set(_schema_tables()) - present)
        for table, columns in sorted(_schema_tables().items()):
            if table in present:
                have = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
                missing += [f"{table}.{column}" for column in sorted(columns - have)]
        if missing:
            what = "table" if "." not in missing[0] else "column"
            raise StoreError(
                f"Store {self.path}: {what} {', '.join(missing)} is missing, so the file is "
                f"damaged. Restore it from a backup, or move it aside and run `syncd run --once` "
                f"to backfill a new store."
            )

    @property
    def schema_version(self) -> int:
        return int(self.db.execute("SELECT max(version) FROM schema_version").fetchone()[0])

    # runs ---------------------------------------------------------------------------------

    def begin_run(self, started_at: datetime, kind: str, options: Mapping[str, Any]) -> int:
        with self.db.conn:
            cursor = self.db.conn.execute(
                "INSERT INTO run (started_at, kind, status, options) VALUES (?, ?, 'running', ?)",
                (iso(started_at), kind, json.dumps(dict(options), default=str)),
            )
        return int(cursor.lastrowid or 0)

    def finish_run(
        self,
        run: int,
        finished_at: datetime,
        status: str,
        exit_code: int,
        summary: Mapping[str, Any],
        error: str | None = None,
    ) -> None:
        with self.db.conn:
            self.db.conn.execute(
                "UPDATE run SET finished_at = ?, status = ?, exit_code = ?, summary = ?, error = ?"
                " WHERE id = ?",
                (iso(finished_at), status, exit_code, json.dumps(dict(summary)), error, run),
            )

    def runs(self, limit: int = 10) -> list[dict[str, Any]]:
        return list(self.db.query("SELECT * FROM run ORDER BY id DESC LIMIT ?", [limit]))

    # pull ---------------------------------------------------------------------------------

    def cursor(self, system: str, stream: str) -> str | None:
        row = self.db.execute(
            "SELECT cursor FROM cursor WHERE system = ? AND stream = ?", [system, stream]
        ).fetchone()
        return None if row is None else str(row[0])

    def save_page(self, run: int, system: str, page: Page) -> int:
        """Store a page's records and its cursor in one transaction (or in the one open
        around it, see `transaction`); rows actually changed.

        A record re-read unchanged (the lookback window re-reads some) is not written again.
        """
        rows = [
            (
                system,
                record.object,
                record.id,
                iso(record.updated_at),
                int(record.deleted),
                record.merged_into,
                dumps(record.fields),
                run,
            )
            for record in page.records
        ]
        conn = self.db.conn
        with self.transaction():
            before = conn.total_changes
            conn.executemany(
                """
                INSERT INTO source_record
                    (system, object, id, updated_at, deleted, merged_into, data, pulled_run)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT (system, object, id) DO UPDATE SET
                    updated_at = excluded.updated_at, deleted = excluded.deleted,
                    merged_into = excluded.merged_into, data = excluded.data,
                    pulled_run = excluded.pulled_run
                WHERE source_record.data IS NOT excluded.data
                   OR source_record.deleted IS NOT excluded.deleted
                   OR source_record.merged_into IS NOT excluded.merged_into
                   OR source_record.updated_at < excluded.updated_at
                """,
                rows,
            )
            changed = conn.total_changes - before
            conn.execute(
                """
                INSERT INTO cursor (system, stream, cursor, watermark, saved_at, run)
                VALUES (?, ?, ?, ?, ?, ?)
                ON CONFLICT (system, stream) DO UPDATE SET
                    cursor = excluded.cursor, watermark = excluded.watermark,
                    saved_at = excluded.saved_at, run = excluded.run
                WHERE cursor.cursor IS NOT excluded.cursor
                """,
                (
                    system,
                    page.stream,
                    page.cursor,
                    iso(page.watermark) if page.watermark else None,
                    iso(datetime.now(UTC)),
                    run,
                ),
            )
        return changed

    def reset_cursors(self, system: str | None = None) -> None:
        with self.db.conn:
            if system is None:
                self.db.conn.execute("DELETE FROM cursor")
            else:
                self.db.conn.execute("DELETE FROM cursor WHERE system = ?", (system,))

    def cursors(self) -> list[dict[str, Any]]:
        return list(self.db.query("SELECT * FROM cursor ORDER BY system, stream"))

    def source_counts(self) -> list[dict[str, Any]]:
        return list(
            self.db.query(
                "SELECT system, object, count(*) AS rows, sum(deleted) AS deleted, "
                "sum(merged_into IS NOT NULL) AS merged, max(updated_at) AS newest "
                "FROM source_record GROUP BY system, object ORDER BY system, object"
            )
        )

    def source_record(self, system: str, object_name: str, record_id: str) -> dict[str, Any] | None:
        rows = list(
            self.db.query(
                "SELECT * FROM source_record WHERE system = ? AND object = ? AND id = ?",
                [system, object_name, record_id],
            )
        )
        if not rows:
            return None
        row = rows[0]
        row["data"] = loads(row["data"])
        return row

    # Source records decoded by `records` (and `changed_records(keep=True)`), for the stages
    # after the first that reads them. This many hold an org of 10,000 people (where
    # `bench_reconcile` shows reconcile + plan holding under 100 MiB: its "held by it" line in
    # docs/benchmarks.md) and cap a larger one near that: a pass must stay under 500 MB at any
    # size.
    DECODED_RECORDS = 20_000
    _decoded: Decoded | None = None

    def forget_decoded(self) -> None:
        """A new pass starts: keep room for the records it reads (`DECODED_RECORDS`)."""
        if self._decoded is not None:
            self._decoded.clear()

    def _decoding(self) -> Decoded:
        if self._decoded is None:
            self._decoded = Decoded(self.DECODED_RECORDS)
        return self._decoded

    def changed_records(
        self,
        objects: Iterable[tuple[str, str]],
        after_run: int,
        *,
        oldest_first: bool = False,
        keep: bool = False,
    ) -> Iterator[dict[str, Any]]:
        """Source records of these (system, object)s changed by passes after `after_run`,
        streamed in id order, or oldest created first. `keep`: remember them decoded for
        `records` (the stages of a pass that read them again)."""
        decoding = self._decoding() if keep else None
        # After a pass, the few rows changed since are found through source_record_changed
        # (`+` keeps SQLite off the key, where it read every row of the object to find them);
        # the first pass reads every row anyway, in key order.
        where = "system = ? AND object = ?" if after_run <= 0 else "+system = ? AND +object = ?"
        for system, object_name in objects:
            cursor = self.db.conn.execute(
                "SELECT system, object, id, updated_at, deleted, merged_into, data, pulled_run"
                f" FROM source_record WHERE {where} AND pulled_run > ?"
                f" ORDER BY {_OLDEST_FIRST if oldest_first else 'id'}",
                (system, object_name, after_run),
            )
            for row in cursor:
                yield _source_row(row, decoding)

    def records(
        self, keys: Iterable[tuple[str, str, str]]
    ) -> dict[tuple[str, str, str], dict[str, Any]]:
        """Source records by (system, object, id), in batches: one object at a time, so that
        SQLite searches the primary key (a row-value IN over VALUES scans the table)."""
        found: dict[tuple[str, str, str], dict[str, Any]] = {}
        decoding = self._decoding()
        for system, object_name, chunk in by_object(keys):
            marks = ",".join("?" for _ in chunk)
            cursor = self.db.conn.execute(
                "SELECT system, object, id, updated_at, deleted, merged_into, data, pulled_run"
                f" FROM source_record WHERE system = ? AND object = ? AND id IN ({marks})",
                [system, object_name, *chunk],
            )
            for row in cursor:
                found[(row[0], row[1], row[2])] = _source_row(row, decoding)
        return found

    def updated_at(self, keys: Iterable[tuple[str, str, str]]) -> dict[tuple[str, str, str], str]:
        """The stored modification stamp of source records by (system, object, id): what
        `records` gives as `updated_at`, without reading and decoding their data."""
        found: dict[tuple[str, str, str], str] = {}
        for system, object_name, chunk in by_object(keys):
            marks = ",".join("?" for _ in chunk)
            for record_id, stamp in self.db.conn.execute(
                "SELECT id, updated_at FROM source_record"
                f" WHERE system = ? AND object = ? AND id IN ({marks})",
                [system, object_name, *chunk],
            ):
                found[(system, object_name, record_id)] = stamp
        return found

    def last_run(self) -> int:
        row = self.db.execute("SELECT coalesce(max(id), 0) FROM run").fetchone()
        return int(row[0])

    def source_records(self, system: str, object_name: str) -> Iterator[dict[str, Any]]:
        for row in self.db.query(
            "SELECT * FROM source_record WHERE system = ? AND object = ? ORDER BY id",
            [system, object_name],
        ):
            row["data"] = loads(row["data"])
            yield row

    # usage --------------------------------------------------------------------------------

    def record_usage(self, run: int, usage: Usage) -> None:
        with self.db.conn:
            self.db.conn.execute(
                """
                INSERT INTO api_usage (run, system, calls, retries, throttled, limit_total,
                                       remaining, details, recorded_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT (run, system) DO UPDATE SET
                    calls = excluded.calls, retries = excluded.retries,
                    throttled = excluded.throttled, limit_total = excluded.limit_total,
                    remaining = excluded.remaining, details = excluded.details,
                    recorded_at = excluded.recorded_at
                """,
                (
                    run,
                    usage.system,
                    usage.calls,
                    usage.retries,
                    usage.throttled,
                    usage.limit,
                    usage.remaining,
                    json.dumps(dict(usage.details)),
                    iso(datetime.now(UTC)),
                ),
            )

    def calls_since(self, system: str, since: datetime) -> int:
        """API calls to `system` recorded by the passes started at or after `since`."""
        row = self.db.execute(
            "SELECT coalesce(sum(u.calls), 0) FROM api_usage u JOIN run r ON r.id = u.run "
            "WHERE u.system = ? AND r.started_at >= ?",
            [system, iso(since)],
        ).fetchone()
        return int(row[0])

    def latest_usage(self) -> list[dict[str, Any]]:
        return list(
            self.db.query(
                "SELECT u.* FROM api_usage u JOIN (SELECT system, max(run) AS run FROM api_usage "
                "GROUP BY system) last USING (system, run) ORDER BY system"
            )
        )


# The record's creation time in either CRM's words, so "the oldest wins" sorts in SQLite.
_OLDEST_FIRST = (
    "coalesce(json_extract(data, '$.CreatedDate'), json_extract(data, '$.createdate'), '9999'), id"
)


def _source_row(row: tuple[Any, ...], decoding: Decoded | None = None) -> dict[str, Any]:
    """A source record; its `data` shared with the other readers of the pass when decoded
    through `decoding` (read it, never change it)."""
    return {
        "system": row[0],
        "object": row[1],
        "id": row[2],
        "updated_at": row[3],
        "deleted": bool(row[4]),
        "merged_into": row[5],
        "data": loads(row[6]) if decoding is None else decoding.loads(row[:3], row[6]),
        "pulled_run": row[7],
    }


@cache
def _schema_tables() -> dict[str, frozenset[str]]:
    """The tables a store holds once migrated, with their columns: the migrations applied to an
    empty database."""
    conn = sqlite3.connect(":memory:")
    try:
        for _, _, script in MIGRATIONS:
            for statement in _statements(script):
                conn.execute(statement)
        names = [name for (name,) in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'")]
        tables = {name: frozenset(row[1] for row in conn.execute(f"PRAGMA table_info({name})"))
                  for name in names}
    finally:
        conn.close()
    return {**tables, "schema_version": frozenset({"version", "name", "applied_at"})}


def _statements(script: str) -> Iterator[str]:
    """The script's statements, split where SQLite itself says a statement is complete (so a
    `;` inside a comment or a string does not split one)."""
    pending = ""
    for line in script.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            yield pending
            pending = ""
    if pending.strip():
        yield pending
