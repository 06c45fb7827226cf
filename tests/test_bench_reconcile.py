"""`benchmarks/bench_reconcile.py` at a small scale: its table, and `--per-entity`'s split of the
passes into the functions that work one record or entity at a time."""

from __future__ import annotations

import importlib
import re
from typing import Any

import pytest

from benchmarks import bench_reconcile


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
