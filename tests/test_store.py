"""The SQLite store: a page and its cursor commit together; re-reads write nothing."""

from __future__ import annotations

import re
import sqlite3
import stat
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from syncd.errors import StoreError
from syncd.model import Page, Record, Usage
from syncd.store import Store, iso, parse_iso
from syncd.store.migrations import MIGRATIONS

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def record(record_id: str, minutes: int = 0, **fields: object) -> Record:
    return Record(
        "hubspot",
        "contacts",
        record_id,
        T0 + timedelta(minutes=minutes),
        fields or {"email": f"{record_id}@x.com"},
    )


def page(*records: Record, cursor: str = '{"after": 1}') -> Page:
    return Page("contacts", records, cursor, watermark=max(r.updated_at for r in records))


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "syncd.db")


def test_store_file_is_created_owner_only_and_in_wal_mode(tmp_path: Path) -> None:
    store = Store(tmp_path / "deep" / "syncd.db")
    mode = stat.S_IMODE((tmp_path / "deep" / "syncd.db").stat().st_mode)
    assert mode == 0o600
    assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store.schema_version == max(v for v, _, _ in MIGRATIONS)


def test_the_log_is_checkpointed_every_64_mib_not_4_and_closing_leaves_it_in_the_file(
    tmp_path: Path,
) -> None:
    """A pass rewrites the same pages stage after stage: SQLite's default checkpoint every
    4 MiB copied them into the file again and again (`WAL_BYTES`)."""
    path = tmp_path / "syncd.db"
    store = Store(path)
    # Checkpoints still happen, past 64 MiB, and the log is cut back to that size.
    assert store.db.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 16_384
    assert store.db.execute("PRAGMA journal_size_limit").fetchone()[0] == 64 * 2**20
    for batch in range(16):  # 8 MiB in transactions of half a MiB
        with store.transaction():
            for i in range(256):
                store.unified.set_state(f"k{batch}.{i}", f"{batch}.{i}".ljust(2048, "x"))
    log = tmp_path / "syncd.db-wal"
    # By default the log would have been copied and restarted past 4 MiB: about 4.5 MiB long.
    assert log.stat().st_size > 7 * 2**20
    store.close()
    assert not log.exists() or log.stat().st_size == 0
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT count(*) FROM state WHERE key LIKE 'k%'").fetchone()[0] == 4096


def test_reopening_applies_no_migration_twice(tmp_path: Path) -> None:
    Store(tmp_path / "s.db").close()
    again = Store(tmp_path / "s.db")
    assert again.db.execute("SELECT count(*) FROM schema_version").fetchone()[0] == len(MIGRATIONS)


def test_a_store_from_a_newer_syncd_is_refused(tmp_path: Path) -> None:
    Store(tmp_path / "s.db").close()
    with sqlite3.connect(tmp_path / "s.db") as conn:
        conn.execute("INSERT INTO schema_version VALUES (99, 'future', '2030-01-01')")
    with pytest.raises(StoreError, match="schema version 99 is newer"):
        Store(tmp_path / "s.db")


@pytest.mark.parametrize(
    ("damage", "named"),
    [
        ("DROP TABLE outbox", "table outbox"),
        ("ALTER TABLE outbox DROP COLUMN attempts", "column outbox.attempts"),
    ],
)
def test_a_store_missing_a_table_or_column_is_refused_naming_it(
    tmp_path: Path, damage: str, named: str
) -> None:
    Store(tmp_path / "s.db").close()
    with sqlite3.connect(tmp_path / "s.db") as conn:
        conn.execute(damage)
    with pytest.raises(StoreError, match=re.escape(f"{named} is missing, so the file is damaged.")):
        Store(tmp_path / "s.db")


def test_a_file_that_is_not_a_store_gives_one_clear_error(tmp_path: Path) -> None:
    (tmp_path / "junk.db").write_bytes(b"not sqlite at all" * 100)
    with pytest.raises(StoreError, match="cannot be opened"):
        Store(tmp_path / "junk.db")


def test_page_and_cursor_are_saved_together(store: Store) -> None:
    run = store.begin_run(T0, "once", {})
    assert store.save_page(run, "hubspot", page(record("1"), record("2", 5))) == 2
    assert store.cursor("hubspot", "contacts") == '{"after": 1}'
    assert store.cursors()[0]["watermark"] == iso(T0 + timedelta(minutes=5))
    row = store.source_record("hubspot", "contacts", "2")
    assert row is not None and row["data"] == {"email": "2@x.com"} and row["pulled_run"] == run


def test_a_failed_page_leaves_neither_records_nor_cursor(store: Store) -> None:
    run = store.begin_run(T0, "once", {})
    bad = Record("hubspot", "contacts", "3", T0, {"x": object()})  # not JSON: the page fails
    with pytest.raises(TypeError):
        store.save_page(run, "hubspot", page(record("1"), bad, cursor='{"after": 9}'))
    assert store.cursor("hubspot", "contacts") is None
    assert store.source_record("hubspot", "contacts", "1") is None


def test_rereading_an_unchanged_record_writes_nothing(store: Store) -> None:
    first = store.begin_run(T0, "once", {})
    store.save_page(first, "hubspot", page(record("1")))
    second = store.begin_run(T0, "once", {})
    assert store.save_page(second, "hubspot", page(record("1"))) == 0
    row = store.source_record("hubspot", "contacts", "1")
    assert row is not None and row["pulled_run"] == first


def test_a_changed_record_is_rewritten_and_marked_with_the_run(store: Store) -> None:
    first = store.begin_run(T0, "once", {})
    store.save_page(first, "hubspot", page(record("1")))
    second = store.begin_run(T0, "once", {})
    assert store.save_page(second, "hubspot", page(record("1", 3, email="new@x.com"))) == 1
    row = store.source_record("hubspot", "contacts", "1")
    assert row is not None and row["data"]["email"] == "new@x.com" and row["pulled_run"] == second


def test_deletes_and_merges_are_kept_as_flags(store: Store) -> None:
    run = store.begin_run(T0, "once", {})
    store.save_page(
        run,
        "hubspot",
        page(
            Record("hubspot", "contacts", "7", T0, {}, deleted=True),
            Record("hubspot", "contacts", "8", T0, {}, deleted=True, merged_into="9"),
        ),
    )
    (counts,) = store.source_counts()
    assert (counts["rows"], counts["deleted"], counts["merged"]) == (2, 2, 1)


def test_runs_and_usage_are_recorded(store: Store) -> None:
    run = store.begin_run(T0, "once", {"full": True})
    store.record_usage(run, Usage("salesforce", calls=12, limit=15000, remaining=14000))
    store.finish_run(run, T0 + timedelta(seconds=3), "ok", 0, {"rows": 5})
    (latest,) = store.latest_usage()
    assert (latest["calls"], latest["remaining"]) == (12, 14000)
    assert store.runs()[0]["status"] == "ok"


def test_iso_round_trips_with_milliseconds() -> None:
    moment = datetime(2026, 3, 4, 5, 6, 7, 891000, tzinfo=UTC)
    assert iso(moment) == "2026-03-04T05:06:07.891Z"
    assert parse_iso(iso(moment)) == moment


def test_records_are_stamped_as_iso_writes_them_whatever_their_time_zone(store: Store) -> None:
    run = store.begin_run(T0, "once", {})
    zone = timezone(timedelta(hours=-5))
    stamps = [datetime(2026, 3, 4, 0, 6, 7, 891999, tzinfo=zone), datetime(999, 1, 2, tzinfo=UTC),
              datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)]
    store.save_page(run, "hubspot", page(*[Record("hubspot", "contacts", str(n), moment, {})
                                          for n, moment in enumerate(stamps)]))
    for n, moment in enumerate(stamps):
        row = store.source_record("hubspot", "contacts", str(n))
        assert row is not None and row["updated_at"] == iso(moment)
    assert iso(stamps[0]) == "2026-03-04T05:06:07.891Z"


def test_migration_6_makes_source_record_a_rowid_table_keeping_every_row_and_index(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A store made by the schema as it stood before migration 6.
    monkeypatch.setattr("syncd.store.core.MIGRATIONS", tuple(m for m in MIGRATIONS if m[0] < 6))
    old = Store(tmp_path / "s.db")
    run = old.begin_run(T0, "once", {})
    old.save_page(run, "hubspot", page(record("1"), record("10", 5, email="b@x.com"),
                                       Record("hubspot", "contacts", "2", T0, {}, deleted=True,
                                              merged_into="1")))
    task = Record("salesforce", "Task", "00T1", T0, {"WhoId": "00Q1", "Subject": "Call é"})
    old.save_page(run, "salesforce", Page("Task", [task], '{"v": 1}', watermark=T0))
    everything = "SELECT * FROM source_record ORDER BY system, object, id"
    rows = old.db.execute(everything).fetchall()
    indexes = source_record_indexes(old)
    assert "WITHOUT ROWID" in table_sql(old) and {"source_record_changed",
                                                  "source_record_who"} <= indexes
    old.close()
    monkeypatch.undo()

    store = Store(tmp_path / "s.db")
    assert store.schema_version == max(v for v, _, _ in MIGRATIONS)
    assert "WITHOUT ROWID" not in table_sql(store)
    assert store.db.execute(everything).fetchall() == rows
    assert source_record_indexes(store) == indexes | {"source_record_key"}
    plan = store.db.execute("EXPLAIN QUERY PLAN SELECT data FROM source_record WHERE system = ? "
                            "AND object = ? AND id = ?", ["hubspot", "contacts", "1"]).fetchall()
    assert "source_record_key" in str(plan)
    # The key is still the upsert's: a re-read writes nothing, a change rewrites its one row.
    again = store.begin_run(T0, "once", {})
    assert store.save_page(again, "hubspot", page(record("1"))) == 0
    assert store.save_page(again, "hubspot", page(record("1", 9, email="c@x.com"))) == 1
    assert store.db.execute("SELECT count(*) FROM source_record").fetchone()[0] == len(rows)


def table_sql(store: Store) -> str:
    return str(store.db.execute(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'source_record'"
    ).fetchone()[0])


def source_record_indexes(store: Store) -> set[str]:
    return {name for (name,) in store.db.execute(
        "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'source_record'"
    )}
