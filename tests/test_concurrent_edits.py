"""Concurrent edits (issue 8, part 3): people keep editing both CRMs while a pass reads them.

An emulator hook fires right after request N of a pass has been applied (the kill hook, used as
a clock of requests) and edits records through `world.portal` / `world.org`, stamped just before
the pass started (an edit that lands late in a range the pass has already read: what the
lookback is for) or during the pass. The next pass must pick every such edit up and carry it to
the other system: none lost. And an edit made in one system while the pass reads must not be
overwritten by the older value syncd planned to write there from the other system: none
written back stale.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from connectors.loopback import Faults, LoopbackServer, ThrowawayCA
from tests.harness import World
from tests.org_state import org_state, outbox_counts, seeded_world

# After the sandbox's anchor and every stamp it seeds (see tests/test_api_faults.py).
CLOCK_START = datetime(2026, 9, 1, 12, 0, tzinfo=UTC)
SCALE = 100

@dataclass(frozen=True)
class Person:
    """One person known to both systems: the HubSpot contact and the live Salesforce Lead."""

    email: str
    contact: str
    lead: str


@pytest.fixture
def world(tmp_path: Path, loopback_ca: ThrowawayCA) -> Iterator[World]:
    with seeded_world(tmp_path / "world", loopback_ca, SCALE) as seeded:
        seeded.clock.now = CLOCK_START
        seeded.sync()
        yield seeded


def people_in_both(world: World, count: int) -> list[Person]:
    """People with a HubSpot contact and a live, unconverted Lead (and no Contact, whose
    values would come first), by Lead id."""
    table = world.portal.table("contacts")
    with_contacts = {str(r["Email"]).lower() for r in world.org.records("Contact") if r["Email"]}
    found = []
    for lead in sorted(world.org.records("Lead"), key=lambda r: r["Id"]):
        email = lead.get("Email")
        if not email or lead["IsConverted"] or str(email).lower() in with_contacts:
            continue
        contact = table.find(email, "email")
        if contact is not None and not contact.archived:
            found.append(Person(str(email).lower(), contact.id, lead["Id"]))
    assert len(found) >= count, "the sandbox org holds too few people in both systems"
    return found[:count]


def after_request(server: LoopbackServer, number: int, edit: Callable[[], None]) -> None:
    """Run `edit` right after the `number`-th request from now has been applied."""
    server.faults = Faults(kill_after=len(server.log) + number, on_kill=edit)


def last_read(world: World) -> int:
    """How many requests the next pass makes to Salesforce before its push: its reads of every
    stream (`queryAll`, one page each once the org is synced). The push begins with the stamp
    queries (`query`) of the records it updates, then writes."""
    log = world.salesforce.server.log
    return next(i for i, e in enumerate(log) if not e.endpoint.endswith("/queryAll"))


def lead(world: World, person: Person) -> dict[str, object]:
    return dict(world.org.get("Lead", person.lead))


def contact(world: World, person: Person) -> dict[str, str | None]:
    return dict(world.portal.properties("contacts", person.contact))


@pytest.mark.parametrize("stamped", [-30, 1], ids=["stamped-before-the-run-start",
                                                   "stamped-during-the-run"])
def test_edits_made_while_a_pass_reads_are_all_carried_over_by_the_next_pass(
    stamped: int, world: World
) -> None:
    ada, grace = people_in_both(world, 2)
    reads = last_read(world)

    def edit() -> None:
        # The HubSpot streams and every Salesforce stream have been read by now.
        at = world.clock.now + timedelta(seconds=stamped)
        with world.hubspot.server.app_lock, world.salesforce.server.app_lock:
            world.portal.update("contacts", ada.contact, {"jobtitle": "Edited in HubSpot"}, at=at)
            world.org.update("Lead", grace.lead, {"Title": "Edited in Salesforce",
                                                  "FirstName": "Gracie"}, at=at)
            world.portal.create("contacts", {"email": "late@concurrent.example",
                                             "firstname": "Late", "lastname": "Comer",
                                             "lifecyclestage": "marketingqualifiedlead"}, at=at)
            world.org.insert("Lead", {"LastName": "Newlead", "Company": "Concurrent Inc",
                                      "Email": "newlead@concurrent.example"}, at=at)

    world.clock.advance(minutes=5)  # the pass starts at this instant (World.sync advances 0)
    after_request(world.salesforce.server, reads, edit)
    world.sync(advance_minutes=0)
    world.salesforce.server.faults = Faults()
    world.sync()
    assert lead(world, ada)["Title"] == "Edited in HubSpot"
    assert (contact(world, grace)["jobtitle"], contact(world, grace)["firstname"]) == (
        "Edited in Salesforce", "Gracie")
    handed_off = [r for r in world.org.records("Lead") if r["Email"] == "late@concurrent.example"]
    assert [r["Company"] for r in handed_off] == ["[not provided]"]
    created = world.portal.table("contacts").find("newlead@concurrent.example", "email")
    assert created is not None and created.properties.get("lastname") == "Newlead"
    world.reset_counts()
    world.sync()
    assert world.writes() == 0, "the edits were not all carried over by the pass after them"


def test_a_pass_after_concurrent_edits_ends_in_the_state_of_a_pass_that_saw_them_all(
    world: World, tmp_path: Path, loopback_ca: ThrowawayCA
) -> None:
    """The same edits made between passes, in a world seeded alike: the same end state."""
    ada, grace = people_in_both(world, 2)
    reads = last_read(world)

    def edit(target: World) -> None:
        at = target.clock.now - timedelta(seconds=30)
        with target.hubspot.server.app_lock, target.salesforce.server.app_lock:
            target.portal.update("contacts", ada.contact, {"phone": "+1 555 0100 0001"}, at=at)
            target.org.update("Lead", grace.lead, {"Phone": "+1 555 0100 0002"}, at=at)

    world.clock.advance(minutes=5)
    after_request(world.salesforce.server, reads, lambda: edit(world))
    world.sync(advance_minutes=0)
    world.salesforce.server.faults = Faults()
    world.sync()
    with seeded_world(tmp_path / "calm", loopback_ca, SCALE) as calm:
        calm.clock.now = CLOCK_START
        calm.sync()
        calm.clock.advance(minutes=5)
        edit(calm)
        calm.sync()
        calm.sync()
        differences = org_state(world.hubspot, world.salesforce).differences(
            org_state(calm.hubspot, calm.salesforce))
    assert not differences, "\n".join(differences)


def test_a_salesforce_edit_made_while_the_pass_reads_is_not_overwritten_with_the_older_value(
    world: World,
) -> None:
    """HubSpot's title (two-way: the later edit wins) changes before the pass; while it reads,
    a Salesforce user changes the same person's title again. The pass must not write the older
    HubSpot value over the newer Salesforce one, and the next pass carries the Salesforce value
    to HubSpot."""
    (ada,) = people_in_both(world, 1)
    world.clock.advance(minutes=1)
    world.portal.update("contacts", ada.contact, {"jobtitle": "Older, from HubSpot"})
    reads = last_read(world)

    def edit() -> None:
        with world.salesforce.server.app_lock:
            world.org.update("Lead", ada.lead, {"Title": "Newer, from Salesforce"},
                             at=world.clock.now + timedelta(seconds=1))

    world.clock.advance(minutes=4)
    after_request(world.salesforce.server, reads, edit)
    world.sync(advance_minutes=0)
    assert outbox_counts(world) == {"pending": 1}, "the older value is held back, not sent"
    world.salesforce.server.faults = Faults()
    world.sync()
    assert lead(world, ada)["Title"] == "Newer, from Salesforce"
    assert contact(world, ada)["jobtitle"] == "Newer, from Salesforce"
    assert outbox_counts(world) == {}


def test_a_hubspot_edit_made_while_the_pass_reads_is_not_overwritten_with_the_older_value(
    world: World,
) -> None:
    """The mirror image: Salesforce's title changes before the pass; while the pass reads
    Salesforce (HubSpot is read first), a HubSpot user changes the title again."""
    (ada,) = people_in_both(world, 1)
    world.clock.advance(minutes=1)
    world.org.update("Lead", ada.lead, {"Title": "Older, from Salesforce"})
    reads = last_read(world)

    def edit() -> None:
        world.portal.update("contacts", ada.contact, {"jobtitle": "Newer, from HubSpot"},
                            at=world.clock.now + timedelta(seconds=1))

    world.clock.advance(minutes=4)
    after_request(world.salesforce.server, reads, edit)
    world.sync(advance_minutes=0)
    assert outbox_counts(world) == {"pending": 1}, "the older value is held back, not sent"
    world.salesforce.server.faults = Faults()
    world.sync()
    assert contact(world, ada)["jobtitle"] == "Newer, from HubSpot"
    assert lead(world, ada)["Title"] == "Newer, from HubSpot"
    assert outbox_counts(world) == {}
