"""Touchpoints built from both emulators' records (ARCHITECTURE section 5, "Touchpoints"):
kinds, labels and times as specified, tied to unified people, kept up to date incrementally."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from syncd.model import Page, Record
from syncd.store import Store, iso
from syncd.store.attribution import AttributionStore, TouchRow
from syncd.touchpoints import TouchReport, refresh_touchpoints, touch_of
from tests.harness import World


def _sf_time(world: World, days_ago: float) -> str:
    return (world.clock.now - timedelta(days=days_ago)).strftime("%Y-%m-%dT%H:%M:%S.000+0000")


def refresh(world: World, store: Store) -> TouchReport:
    """A pass (which refreshes the touchpoints of what it pulled), and what it changed in the
    touchpoint table: rows written, rows dropped, and the people they belong to."""
    before = _rows(store)
    world.sync()
    after = _rows(store)
    written = {t for t, row in after.items() if before.get(t) != row}
    dropped = set(before) - set(after)
    people = {after[t][0] for t in written} | {before[t][0] for t in dropped}
    return TouchReport(len(written), len(dropped), {p for p in people if p})


def _rows(store: Store) -> dict[str, tuple[object, ...]]:
    return {row[0]: tuple(row[1:]) for row in store.db.execute(
        "SELECT id, person_id, at, kind, label, sales FROM touchpoint")}


def touches(store: Store) -> dict[str, TouchRow]:
    ids = [row[0] for row in store.db.execute("SELECT id FROM touchpoint")]
    return AttributionStore(store.db.conn).touchpoints(ids)


def person_of_contact(store: Store, contact_id: str) -> str:
    key = ("salesforce", "Contact", contact_id)
    return store.unified.links([key])[key].entity_id


def test_every_kind_of_touch_has_its_label_time_and_person(world: World) -> None:
    org, portal, now = world.org, world.portal, world.clock.now
    ada = org.insert("Contact", {"LastName": "Lovelace", "Email": "ada@example.com"})
    webinar = org.insert("Campaign", {"Name": "Spring Webinar"})
    member = org.insert("CampaignMember", {"CampaignId": webinar, "ContactId": ada,
                                           "Status": "Responded"}, at=now - timedelta(days=3))
    call = org.insert("Task", {"WhoId": ada, "Subject": "Call", "Type": "Call"},
                      at=now - timedelta(days=2))
    note = org.insert("Task", {"WhoId": ada, "Subject": "Note"}, at=now - timedelta(days=2))
    meeting = org.insert("Event", {"WhoId": ada, "Subject": "Demo",
                                   "StartDateTime": _sf_time(world, 1),
                                   "EndDateTime": _sf_time(world, 0.9)})
    form = portal.add_form("Contact us")
    submission = portal.add_submission(form, {"email": " Ada@Example.com "},
                                       submitted_at=now - timedelta(days=5))
    news = portal.add_email_campaign("Newsletter")
    click = portal.add_click(news, "ADA@example.com", created=now - timedelta(days=4))
    store = world.store()
    try:
        report = refresh(world, store)
        person = person_of_contact(store, ada)
        expected = {
            f"hubspot:form_submissions:{submission}": (
                "form_submission", "Contact us", now - timedelta(days=5), False),
            f"hubspot:email_events:{click}": (
                "email_click", "Newsletter", now - timedelta(days=4), False),
            # A campaign response counts at 00:00 UTC of its FirstRespondedDate.
            f"salesforce:CampaignMember:{member}": (
                "campaign_response", "Spring Webinar",
                (now - timedelta(days=3)).replace(hour=0, minute=0), False),
            f"salesforce:Task:{call}": ("task", "Sales: Call", now - timedelta(days=2), True),
            f"salesforce:Task:{note}": ("task", "Sales: Task", now - timedelta(days=2), True),
            f"salesforce:Event:{meeting}": (
                "event", "Sales: Event", now - timedelta(days=1), True),
        }
        found = touches(store)
        assert {tid: (r.kind, r.label, r.at, r.sales) for tid, r in found.items()} == {
            tid: (kind, label, iso(at), sales) for tid, (kind, label, at, sales) in
            expected.items()}
        assert {r.person_id for r in found.values()} == {person}
        assert report.written == 6 and report.people == {person}
    finally:
        store.close()


def test_only_responded_campaign_members_are_touches(world: World) -> None:
    org = world.org
    ada = org.insert("Contact", {"LastName": "Lovelace", "Email": "ada@example.com"})
    campaign = org.insert("Campaign", {"Name": "Roadshow"})
    member = org.insert("CampaignMember", {"CampaignId": campaign, "ContactId": ada,
                                           "Status": "Sent"})
    store = world.store()
    try:
        refresh(world, store)
        assert touches(store) == {}
        world.clock.advance(minutes=1)
        org.update("CampaignMember", member, {"Status": "Responded"})
        refresh(world, store)
        assert [r.label for r in touches(store).values()] == ["Roadshow"]
    finally:
        store.close()


def test_a_renamed_campaign_relabels_its_responses(world: World) -> None:
    org = world.org
    ada = org.insert("Contact", {"LastName": "Lovelace", "Email": "ada@example.com"})
    campaign = org.insert("Campaign", {"Name": "Roadshow"})
    org.insert("CampaignMember", {"CampaignId": campaign, "ContactId": ada,
                                  "Status": "Responded"})
    store = world.store()
    try:
        refresh(world, store)
        world.clock.advance(minutes=1)
        org.update("Campaign", campaign, {"Name": "Roadshow 2026"})
        report = refresh(world, store)
        assert [r.label for r in touches(store).values()] == ["Roadshow 2026"]
        assert report.written == 1
    finally:
        store.close()


def test_a_converted_leads_touches_stay_with_the_person(world: World) -> None:
    org = world.org
    lead = org.insert("Lead", {"LastName": "Lovelace", "Company": "Engines",
                               "Email": "ada@example.com"})
    campaign = org.insert("Campaign", {"Name": "Roadshow"})
    org.insert("CampaignMember", {"CampaignId": campaign, "LeadId": lead,
                                  "Status": "Responded"})
    call = org.insert("Task", {"WhoId": lead, "Subject": "Call", "Type": "Call"})
    store = world.store()
    try:
        refresh(world, store)
        world.clock.advance(minutes=1)
        converted = org.convert_lead(lead)
        refresh(world, store)
        person = person_of_contact(store, str(converted["contactId"]))
        found = touches(store)
        assert {r.label for r in found.values()} == {"Roadshow", "Sales: Call"}
        # The Task still names the Lead: its link points at the person now.
        assert found[f"salesforce:Task:{call}"].person_id == person
        assert {r.person_id for r in found.values()} == {person}
    finally:
        store.close()


def test_a_touch_of_an_unknown_person_is_kept_and_tied_once_they_exist(world: World) -> None:
    portal = world.portal
    news = portal.add_email_campaign("Newsletter")
    click = portal.add_click(news, "stranger@example.com",
                             created=world.clock.now - timedelta(days=1))
    store = world.store()
    try:
        refresh(world, store)
        tid = f"hubspot:email_events:{click}"
        assert touches(store)[tid].person_id is None
        portal.create("contacts", {"email": "stranger@example.com"})
        report = refresh(world, store)
        person = store.unified.by_match_key("person", ["stranger@example.com"])
        assert touches(store)[tid].person_id == person["stranger@example.com"]
        assert report.people == {person["stranger@example.com"]}
    finally:
        store.close()


def test_a_deleted_record_removes_its_touch_and_a_quiet_pass_writes_nothing(
    world: World,
) -> None:
    org = world.org
    ada = org.insert("Contact", {"LastName": "Lovelace", "Email": "ada@example.com"})
    call = org.insert("Task", {"WhoId": ada, "Subject": "Call", "Type": "Call"})
    keep = org.insert("Task", {"WhoId": ada, "Subject": "Call", "Type": "Email"})
    store = world.store()
    try:
        refresh(world, store)
        quiet = refresh(world, store)
        assert (quiet.written, quiet.dropped, quiet.people) == (0, 0, set())
        world.clock.advance(minutes=1)
        org.delete("Task", call)
        report = refresh(world, store)
        assert set(touches(store)) == {f"salesforce:Task:{keep}"}
        assert report.dropped == 1 and report.people == {person_of_contact(store, ada)}
    finally:
        store.close()


# -- hostile values (issue 8, part 4) ---------------------------------------------------------

HOSTILE_TOUCHES = [
    ("salesforce", "CampaignMember", {"CampaignId": "701A", "ContactId": "003A",
                                      "HasResponded": True, "FirstRespondedDate": "2025-02-30"}),
    ("salesforce", "CampaignMember", {"CampaignId": "701A", "ContactId": True,
                                      "HasResponded": True, "FirstRespondedDate": "2025-02-01"}),
    ("salesforce", "Task", {"WhoId": "003A", "CreatedDate": "yesterday"}),
    ("salesforce", "Event", {"WhoId": 12345, "StartDateTime": "2025-02-01T10:00:00.000+0000"}),
    ("hubspot", "form_submissions", {"email": "ada@example.com", "submittedAt": "soon"}),
    ("hubspot", "email_events", {"recipient": "ada@example.com", "created": 10**30}),
    ("hubspot", "form_submissions", {"values": ["not", "fields"], "submittedAt": 1}),
]


def test_records_whose_values_cannot_place_a_touch_are_skipped_with_the_reason(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A date that does not exist, an id that is not text, a time that is no time: no touch
    and a warning naming the record, never a crashed pass; the usual records beside them
    still become touches, whichever way the table is built (in SQL first, then per record)."""
    at = datetime(2025, 3, 1, tzinfo=UTC)
    usual = Record("salesforce", "Task", "00TOK", at,
                   {"WhoId": "003A", "CreatedDate": "2025-02-01T10:00:00.000+0000"})
    records = [Record(system, obj, f"bad{n}", at, data)
               for n, (system, obj, data) in enumerate(HOSTILE_TOUCHES)]
    store = Store(tmp_path / "s.db")
    for system, obj in {(r.system, r.object) for r in [usual, *records]}:
        mine = [r for r in [usual, *records] if (r.system, r.object) == (system, obj)]
        with store.transaction():
            store.save_page(1, system, Page(obj, mine, cursor="{}", watermark=at))
    with caplog.at_level(logging.WARNING, logger="syncd.touchpoints"):
        refresh_touchpoints(store, 0, 1)
        for record in records:  # and one by one, as an incremental pass rebuilds them
            row = {"system": record.system, "object": record.object, "id": record.id,
                   "deleted": False, "merged_into": None, "data": record.fields}
            assert touch_of(row, {}) is None
    assert list(touches(store)) == ["salesforce:Task:00TOK"]
    skipped = {r.getMessage() for r in caplog.records}
    assert skipped == {"touch_skipped"}
    named = {getattr(r, "fields", {}).get("id") for r in caplog.records}
    assert named == {r.id for r in records}
