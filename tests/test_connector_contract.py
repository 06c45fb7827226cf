"""The connector contract, one suite over both CRMs (STYLE.md, Tests).

Pages arrive in cursor order, a cursor never moves backwards, a pass stopped after any page and
started again ends with the same rows, a change made while a pass runs is picked up by the next
one, deletes and merges arrive, and a stream with nothing changed costs one call.
Everything goes through the real client libraries against the emulators, and through the store.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from connectors.loopback import ThrowawayCA
from syncd.config import load_settings
from syncd.connector import Connector, Window
from syncd.model import Page
from syncd.store import Store

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
LOOKBACK = timedelta(minutes=10)


@dataclass
class Clock:
    now: datetime = T0

    def __call__(self) -> datetime:
        return self.now


@dataclass
class World:
    """One CRM stream behind its emulator, with ways to change it and a connector to read it."""

    system: str
    stream: str
    emulator: Any
    connector: Connector
    add: Callable[[datetime], str]
    change: Callable[[str, datetime], None]
    delete: Callable[[str, datetime], None]
    merge: Callable[[str, str, datetime], None]
    calls: Callable[[], int]
    page_size: int
    ids: list[str] = field(default_factory=list)

    def seed(self, count: int, start: datetime, step: timedelta) -> None:
        for n in range(count):
            self.ids.append(self.add(start + step * n))


def _settings(tmp_path: Path, body: str) -> Any:
    path = tmp_path / "config.toml"
    path.write_text(body, encoding="utf-8")
    return load_settings(path, environ={}, require_credentials=True)


def hubspot_world(tmp_path: Path, ca: ThrowawayCA, clock: Clock) -> Iterator[World]:
    from connectors.hubspot.connector import create
    from connectors.hubspot.emulator import HubSpotEmulator, HubSpotLimits

    emulator = HubSpotEmulator(ca=ca, clock=clock, limits=HubSpotLimits.unlimited()).start()
    portal = emulator.portal
    settings = _settings(
        tmp_path,
        f"""
[hubspot]
base_url = "{emulator.url}"
access_token = "{emulator.access_token}"
ca_bundle = "{emulator.ca_path}"
requests_per_10s = 1000
[salesforce]
access_token = "unused"
""",
    )
    counter = iter(range(1_000_000))

    def add(at: datetime) -> str:
        n = next(counter)
        return str(
            portal.create("contacts", {"email": f"p{n}@example.com", "firstname": f"P{n}"}, at=at)
        )

    def change(record_id: str, at: datetime) -> None:
        portal.update("contacts", record_id, {"jobtitle": f"changed at {at.isoformat()}"}, at=at)

    world = World(
        system="hubspot",
        stream="contacts",
        emulator=emulator,
        connector=create(settings, sleep=lambda _: None),
        add=add,
        change=change,
        delete=lambda record_id, at: portal.archive("contacts", record_id, at=at),
        merge=lambda keep, lose, at: portal.merge("contacts", keep, lose, at=at),
        calls=lambda: emulator.calls(),
        page_size=100,
    )
    yield world
    world.connector.close()
    emulator.stop()


def salesforce_world(tmp_path: Path, ca: ThrowawayCA, clock: Clock) -> Iterator[World]:
    from connectors.salesforce.connector import create
    from connectors.salesforce.emulator import SalesforceEmulator

    emulator = SalesforceEmulator(ca=ca, clock=clock, access_token="00D000000000001!AQcontract")
    emulator.start()
    org = emulator.org
    settings = _settings(
        tmp_path,
        f"""
[hubspot]
access_token = "unused"
[salesforce]
instance_url = "{emulator.url}"
access_token = "00D000000000001!AQcontract"
ca_bundle = "{emulator.ca_path}"
bulk_threshold = 1000000
""",
    )
    counter = iter(range(1_000_000))

    def add(at: datetime) -> str:
        n = next(counter)
        return str(
            org.insert(
                "Lead",
                {"LastName": f"P{n}", "Company": "Acme", "Email": f"p{n}@example.com"},
                at=at,
            )
        )

    world = World(
        system="salesforce",
        stream="Lead",
        emulator=emulator,
        connector=create(settings, sleep=lambda _: None),
        add=add,
        change=lambda record_id, at: org.update(
            "Lead", record_id, {"Title": f"changed {at.isoformat()}"}, at=at
        ),
        delete=lambda record_id, at: org.delete("Lead", record_id, at=at),
        merge=lambda keep, lose, at: org.merge("Lead", keep, lose, at=at),
        calls=lambda: emulator.calls(),
        page_size=2000,
    )
    yield world
    world.connector.close()
    emulator.stop()


@pytest.fixture(params=["hubspot", "salesforce"])
def world(
    request: pytest.FixtureRequest, tmp_path: Path, loopback_ca: ThrowawayCA
) -> Iterator[World]:
    clock = Clock()
    make = hubspot_world if request.param == "hubspot" else salesforce_world
    yield from make(tmp_path, loopback_ca, clock)


def window(run_start: datetime, **extra: Any) -> Window:
    return Window(run_start=run_start, lookback=LOOKBACK, **extra)


def pages(world: World, cursor: str | None, run_start: datetime) -> list[Page]:
    return list(world.connector.pull(world.stream, cursor, window(run_start)))


def read_ids(found: list[Page]) -> list[str]:
    return [record.id for page in found for record in page.records]


def store_pass(
    world: World, store: Store, run_start: datetime, stop_after: int | None = None
) -> int:
    """Pull the stream into the store like a pass does; optionally stop after N pages."""
    run = store.begin_run(run_start, "once", {})
    cursor = store.cursor(world.system, world.stream)
    for number, page in enumerate(world.connector.pull(world.stream, cursor, window(run_start)), 1):
        store.save_page(run, world.system, page)
        if stop_after is not None and number >= stop_after:
            break
    return run


def stored(store: Store, world: World) -> dict[str, tuple[Any, ...]]:
    return {
        row["id"]: (row["updated_at"], row["deleted"], row["merged_into"], row["data"])
        for row in store.source_records(world.system, world.stream)
    }


def test_a_backfill_reads_every_record_in_cursor_order(world: World) -> None:
    count = world.page_size * 2 + world.page_size // 2
    world.seed(count, T0 - timedelta(days=30), timedelta(seconds=7))
    found = pages(world, None, T0)
    assert sorted(read_ids(found)) == sorted(world.ids)
    assert len(set(read_ids(found))) == count
    watermarks = [page.watermark for page in found if page.watermark is not None]
    assert watermarks == sorted(watermarks)


def test_a_cursor_never_moves_backwards_across_passes(world: World, tmp_path: Path) -> None:
    world.seed(30, T0 - timedelta(days=1), timedelta(minutes=1))
    store = Store(tmp_path / "s.db")
    marks = []
    for hours in range(4):
        store_pass(world, store, T0 + timedelta(hours=hours))
        (row,) = [c for c in store.cursors() if c["stream"] == world.stream]
        marks.append(row["watermark"])
        world.change(world.ids[hours], T0 + timedelta(hours=hours, minutes=30))
    assert marks == sorted(marks)


@pytest.mark.parametrize("stop_after", [1, 2])
def test_a_pass_stopped_after_any_page_resumes_with_the_same_rows(
    world: World, tmp_path: Path, stop_after: int
) -> None:
    world.seed(world.page_size * 2 + 10, T0 - timedelta(days=3), timedelta(seconds=30))
    whole, resumed = Store(tmp_path / "whole.db"), Store(tmp_path / "resumed.db")
    store_pass(world, whole, T0)
    store_pass(world, resumed, T0, stop_after=stop_after)
    assert len(stored(resumed, world)) < len(world.ids)
    store_pass(world, resumed, T0 + timedelta(minutes=1))
    assert stored(resumed, world) == stored(whole, world)


def test_a_record_changed_during_a_pass_is_picked_up_by_the_next(
    world: World, tmp_path: Path
) -> None:
    world.seed(world.page_size + 5, T0 - timedelta(days=2), timedelta(minutes=1))
    store = Store(tmp_path / "s.db")
    run_start = T0
    run = store.begin_run(run_start, "once", {})
    edited = world.ids[0]
    for number, page in enumerate(world.connector.pull(world.stream, None, window(run_start))):
        store.save_page(run, world.system, page)
        if number == 0:  # an edit lands while the pass is still reading, just before its start
            world.change(edited, run_start - timedelta(seconds=1))
    store_pass(world, store, run_start + timedelta(minutes=5))
    row = store.source_record(world.system, world.stream, edited)
    assert row is not None and "changed" in str(row["data"])


def test_deletes_and_merges_arrive(world: World, tmp_path: Path) -> None:
    world.seed(10, T0 - timedelta(days=2), timedelta(minutes=1))
    store = Store(tmp_path / "s.db")
    store_pass(world, store, T0)
    world.delete(world.ids[1], T0 + timedelta(minutes=1))
    world.merge(world.ids[2], world.ids[3], T0 + timedelta(minutes=2))
    store_pass(world, store, T0 + timedelta(minutes=5))
    deleted = store.source_record(world.system, world.stream, world.ids[1])
    loser = store.source_record(world.system, world.stream, world.ids[3])
    assert deleted is not None and deleted["deleted"] == 1
    assert loser is not None and loser["deleted"] == 1 and loser["merged_into"] == world.ids[2]


def test_a_stream_with_nothing_changed_costs_one_call_and_writes_nothing(
    world: World, tmp_path: Path
) -> None:
    world.seed(world.page_size + 1, T0 - timedelta(days=2), timedelta(minutes=1))
    store = Store(tmp_path / "s.db")
    store_pass(world, store, T0)
    store_pass(world, store, T0 + timedelta(minutes=5))  # the lookback re-read settles
    before = world.calls()
    run = store_pass(world, store, T0 + timedelta(hours=1))
    assert world.calls() - before == 1
    assert all(row["pulled_run"] != run for row in store.source_records(world.system, world.stream))
