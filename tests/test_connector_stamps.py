"""`Connector.stamps()` over both CRMs: the modification stamp push compares with what the store
read before it writes over a record (tests/test_concurrent_edits.py shows why).

The stamp of a record is the `updated_at` its pull stored, read again in the largest batches the
API allows (HubSpot batch/read of 100 ids, Salesforce a Collections retrieve of 2,000); an edit
moves it; a record not found is left out; no ids cost no call.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from connectors.loopback import ThrowawayCA
from syncd.store import Store, iso
from tests.test_connector_contract import (
    T0,
    Clock,
    World,
    hubspot_world,
    salesforce_world,
    store_pass,
)

BATCH = {"hubspot": 100, "salesforce": 2000}
# Ids no record has: HubSpot ids are numbers, Salesforce ids 18 characters; the last one is
# SOQL syntax, which must stay a value.
UNKNOWN = {"hubspot": ["999999999"], "salesforce": ["00Q000000000000AAA", "x' OR Id != '"]}


@pytest.fixture(params=["hubspot", "salesforce"])
def world(
    request: pytest.FixtureRequest, tmp_path: Path, loopback_ca: ThrowawayCA
) -> Iterator[World]:
    make = hubspot_world if request.param == "hubspot" else salesforce_world
    yield from make(tmp_path, loopback_ca, Clock())


def stored_stamps(world: World, store: Store) -> dict[str, str]:
    return {
        row["id"]: row["updated_at"] for row in store.source_records(world.system, world.stream)
    }


def test_stamps_are_the_updated_at_the_pull_stored_read_in_full_batches(
    world: World, tmp_path: Path
) -> None:
    count = BATCH[world.system] + 50
    world.seed(count, T0 - timedelta(days=1), timedelta(seconds=1, milliseconds=7))
    store = Store(tmp_path / "s.db")
    store_pass(world, store, T0)
    before = world.calls()
    stamps = world.connector.stamps(world.stream, world.ids)
    assert world.calls() - before == 2
    assert {record_id: iso(stamp) for record_id, stamp in stamps.items()} == stored_stamps(
        world, store
    )


def test_an_edit_after_the_read_moves_the_stamp_past_the_stored_one(
    world: World, tmp_path: Path
) -> None:
    world.seed(3, T0 - timedelta(days=1), timedelta(minutes=1))
    store = Store(tmp_path / "s.db")
    store_pass(world, store, T0)
    world.change(world.ids[1], T0 + timedelta(seconds=1))
    stamps = world.connector.stamps(world.stream, world.ids)
    later = {i for i, stamp in stamps.items() if iso(stamp) > stored_stamps(world, store)[i]}
    assert later == {world.ids[1]}


def test_records_deleted_merged_away_or_unknown_are_left_out(world: World) -> None:
    world.seed(4, T0 - timedelta(days=1), timedelta(minutes=1))
    world.delete(world.ids[1], T0)
    world.merge(world.ids[2], world.ids[3], T0)
    stamps = world.connector.stamps(world.stream, [*world.ids, *UNKNOWN[world.system]])
    assert sorted(stamps) == sorted([world.ids[0], world.ids[2]])


def test_no_ids_cost_no_call(world: World) -> None:
    before = world.calls()
    assert world.connector.stamps(world.stream, []) == {}
    assert world.calls() == before
