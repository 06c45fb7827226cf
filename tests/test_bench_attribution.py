"""`benchmarks/bench_attribution.py` at a small scale: it runs to its table, and its incremental
steps recompute exactly the opportunities it changed (it had broken unnoticed when the store
began streaming entity ids)."""

from __future__ import annotations

import re

import pytest

from benchmarks import bench_attribution


def test_the_table_has_the_full_computation_and_each_incremental_one(
    capsys: pytest.CaptureFixture[str],
) -> None:
    bench_attribution.main(["--people", "300", "--changes", "0.1,0.5"])

    output = capsys.readouterr().out
    assert "| full: touchpoints | 3,000 touchpoints |" in output
    full = re.search(
        r"\| full: credits, all 8 models \| (\d+) opportunities, ([\d,]+) credit", output
    )
    assert full is not None and int(full.group(1)) > 0 and int(full.group(2).replace(",", "")) > 0
    opportunities = int(full.group(1))
    changed = [
        int(n) for n in re.findall(r"\| incremental \((\d+) opportunities changed\)", output)
    ]
    # Every tenth, then every other opportunity, as `change_opportunities` picks them.
    assert changed == [-(-opportunities // 10), -(-opportunities // 2)]
    for count in changed:
        assert f"| incremental ({count}): credits | {count} recomputed of {count} considered |" in (
            output
        )
        assert f"| **incremental total ({count})** |" in output
