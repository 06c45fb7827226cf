"""`benchmarks/bench_reconcile.py` at a small scale: its table, and `--per-entity`'s split of the
passes into the functions that work one record or entity at a time."""

from __future__ import annotations

import contextlib
import importlib
import re
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from benchmarks import bench_reconcile
from syncd.store import Store


def _seconds(output: str, label: str) -> list[float]:
    """The wall seconds of every table row with this label (one per pass), from its records
    and records per second: at this scale the seconds column rounds most rows to 0.00 (and
    a row that took no time at all shows its rate as "-", read here as 0)."""
    found = []
    for line in output.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) > 3 and re.sub(r"(&nbsp;)+", "", cells[0]) == label:
            records, rate = (cells[i].replace(",", "") for i in (1, 3))
            found.append(int(records) / float(rate) if rate != "-" else 0.0)
    return found


def _timed_functions() -> list[Any]:
    """The functions `--per-entity` wraps, as their modules and classes hold them now."""
    found = []
    for module_name, class_name, function, _ in bench_reconcile.PER_ENTITY:
        owner = importlib.import_module(module_name)
        found.append(getattr(getattr(owner, class_name) if class_name else owner, function))
    return found


def test_per_entity_splits_both_passes_and_leaves_syncd_as_it_was(
    capsys: pytest.CaptureFixture[str],
) -> None:
    originals = _timed_functions()

    bench_reconcile.main(["--scale", "200", "--per-entity"])

    output = capsys.readouterr().out
    labels = {name for *_, name in bench_reconcile.PER_ENTITY}
    for name in labels:
        assert len(_seconds(output, f"in {name}")) == 2, name  # the full pass, the incremental
    full_total = _seconds(output, "**full reconcile + plan**")[0]
    together = _seconds(output, "per-entity functions together")
    full_parts = [_seconds(output, f"in {name}")[0] for name in labels]
    # Every function ran in the backfill, and together they are part of the pass, not more.
    assert all(seconds > 0 for seconds in full_parts), output
    assert together[0] == pytest.approx(sum(full_parts), rel=0.01)
    assert 0 < together[0] < full_total
    assert re.search(r"per-entity functions together .*\| \d+% of the pass \|", output)
    # The wrappers are gone once the benchmark is done.
    assert _timed_functions() == originals


def test_without_per_entity_the_table_has_no_split_and_the_other_passes(
    capsys: pytest.CaptureFixture[str],
) -> None:
    bench_reconcile.main(["--scale", "100"])

    output = capsys.readouterr().out
    assert _seconds(output, "**full reconcile + plan**")
    # The passes besides the goal's: nothing changed (and nothing done), then 2% edited.
    unchanged = next(line for line in output.splitlines() if "nothing changed" in line)
    assert unchanged.endswith("; 0 entities changed, 0 rows planned |")
    more = next(line for line in output.splitlines() if "2% edited" in line)
    assert re.search(r"x the 1% pass for \d\.\dx the records; [\d,]+ entities changed", more)
    assert "per-entity" not in output
    assert " in recompute" not in output
    # The full pass's floors, and what they leave of the goal for everything else.
    written = next(line for line in output.splitlines() if "its rows, written by SQLite" in line)
    assert re.search(r"\| [\d,]+ rows into \d+ tables, with the close; \d+% of the goal's", written)
    assert re.search(r"the floors leave [\d.,]+ s for all the rest of the full pass, every "
                     r"decision among it: ([\d,]+ µs|nothing) for each of its [\d,]+ entities",
                     output)


def test_the_floor_copies_every_row_the_pass_wrote_and_reads_every_mapped_record(
    tmp_path: Path,
) -> None:
    store = Store(tmp_path / "syncd.db")
    conn = store.db.conn
    with store.transaction():
        conn.executemany(
            "INSERT INTO source_record (system, object, id, updated_at, data, pulled_run)"
            " VALUES (?, ?, ?, '2026-11-24T00:00:00.000Z', ?, 1)",
            [("salesforce", "Contact", f"003{i}", f'{{"Id": "003{i}"}}') for i in range(30)]
            + [("hubspot", "emails", "e1", "{}")],  # an activity: not read by reconcile
        )
        conn.executemany(
            "INSERT INTO duplicate (system, object, record_id, kind, entity_id, reason, run)"
            " VALUES ('salesforce', 'Lead', ?, 'person', ?, 'same person', 1)",
            [(f"00Q{i}", f"p{i}") for i in range(7)],
        )
        conn.executemany(
            "INSERT INTO opportunity_person (opportunity_id, person_id, is_primary, source_id)"
            " VALUES ('o1', ?, 0, ?)",
            [(f"p{i}", f"00K{i}") for i in range(5)],
        )
        conn.execute("INSERT INTO state (key, value) VALUES ('reconciled_run', '1')")
    store.close()

    found = bench_reconcile.floor(tmp_path / "syncd.db", tmp_path)

    # The two tables the "pass" filled, not the pull's records or the store's own books.
    assert (found.rows, found.tables, found.entities, found.records) == (12, 2, 0, 30)
    assert all(seconds > 0 for seconds in (*found.write, *found.read))
    with contextlib.closing(sqlite3.connect(tmp_path / "floor.db")) as copy:
        assert copy.execute("SELECT count(*) FROM duplicate").fetchone() == (7,)
        assert copy.execute("SELECT count(*) FROM opportunity_person").fetchone() == (5,)
        assert copy.execute("SELECT count(*) FROM source_record").fetchone() == (0,)
        # Closed as the pass's store is: its write-ahead log checkpointed and gone.
    assert not (tmp_path / "floor.db-wal").exists()
