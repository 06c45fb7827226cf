"""The SQLite store: a page and its cursor commit together; re-reads write nothing."""

from __future__ import annotations

import sqlite3
import stat
from datetime import UTC, datetime, timedelta
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
