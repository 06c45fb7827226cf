"""The marketing-to-sales hand-off against both emulators (ARCHITECTURE 5, People; issue 5).

A HubSpot contact reaching the hand-off stage with no live Salesforce Lead or Contact becomes
exactly one Lead, upserted on `Syncd_Id__c`, through the org's assignment rules unless the
config says otherwise; the hand-off table then follows the Lead's owner and first sales touch.
"""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

import syncd.handoff
from connectors.loopback import ThrowawayCA
from syncd.config import load_settings
from syncd.plan import SYNCD_ID_FIELD
from syncd.rules import PLACEHOLDER
from syncd.store.lifecycle import Handoff
from tests.harness import World
from tests.test_lifecycle_e2e import (
    contact,
    hubspot_contact,
    lead,
    lifecycle_world,
    person_of,
    recording,
    stack,
)

__all__ = ["stack"]  # the fixture, shared with the lifecycle tests
MQL = "marketingqualifiedlead"
PRIMARY_COMPANY, UNLABELED_COMPANY = 1, 279  # contact-to-company association types


def live_leads(w: World) -> list[dict[str, Any]]:
    return list(w.org.records("Lead"))


def handoff_of(w: World, email: str) -> Handoff:
    store = w.store()
    try:
        person = person_of(w, email)
        return store.lifecycle.handoffs([person])[person]
    finally:
        store.close()


def company(w: World, name: str) -> str:
    return str(w.portal.create("companies", {"name": name}))


def lead_upserts(seen: list[Any]) -> list[Any]:
    return [s for s in seen if s.method == "PATCH" and s.path.endswith(f"/Lead/{SYNCD_ID_FIELD}")]


# -- the Lead -------------------------------------------------------------------------------


def test_an_mql_with_no_salesforce_record_becomes_exactly_one_lead(world: World) -> None:
    hubspot_id = contact(world, "ada@example.com", lifecyclestage=MQL, firstname="Ada",
                         lastname="Lovelace", jobtitle="Countess", phone="+44 20 7946 0000",
                         company="Free text Ltd")
    engines = company(world, "Analytical Engines")
    world.portal.associate("contacts", hubspot_id, "companies", engines, PRIMARY_COMPANY)
    world.sync()
    (created,) = live_leads(world)
    expected = {
        "FirstName": "Ada", "LastName": "Lovelace", "Email": "ada@example.com",
        "Company": "Analytical Engines", "Title": "Countess", "Phone": "+44 20 7946 0000",
        "Lifecycle_Stage__c": "MQL", SYNCD_ID_FIELD: person_of(world, "ada@example.com"),
        "Status": "Open - Not Contacted",
    }
    assert {k: created[k] for k in expected} == expected
    world.reset_counts()
    world.sync()
    world.sync()
    assert world.writes() == 0
    assert len(live_leads(world)) == 1


def test_a_blank_last_name_and_no_company_become_the_placeholder(world: World) -> None:
    contact(world, "ada@example.com", lifecyclestage=MQL, company="Free text Ltd")
    world.sync()
    (created,) = live_leads(world)
    assert (created["LastName"], created["Company"]) == (PLACEHOLDER, PLACEHOLDER)
    world.reset_counts()
    world.sync()
    assert world.writes() == 0
    # The placeholder counts as blank: it is never copied back to HubSpot.
    assert not hubspot_contact(world, "ada@example.com").get("lastname")


def test_the_primary_company_names_the_lead_even_with_a_lower_id_company(world: World) -> None:
    hubspot_id = contact(world, "ada@example.com", lifecyclestage=MQL)
    first, primary = company(world, "Looms Ltd"), company(world, "Analytical Engines")
    world.portal.associate("contacts", hubspot_id, "companies", first, UNLABELED_COMPANY)
    world.portal.associate("contacts", hubspot_id, "companies", primary, PRIMARY_COMPANY)
    world.sync()
    (created,) = live_leads(world)
    assert created["Company"] == "Analytical Engines"


def test_without_a_primary_the_lowest_id_company_names_the_lead(world: World) -> None:
    hubspot_id = contact(world, "ada@example.com", lifecyclestage=MQL)
    low, high = company(world, "Analytical Engines"), company(world, "Looms Ltd")
    for company_id in (high, low):
        world.portal.associate("contacts", hubspot_id, "companies", company_id, UNLABELED_COMPANY)
    world.sync()
    (created,) = live_leads(world)
    assert created["Company"] == "Analytical Engines"


def test_a_contact_below_the_handoff_stage_gets_no_lead_until_it_reaches_it(
    world: World,
) -> None:
    hubspot_id = contact(world, "ada@example.com", lifecyclestage="lead")
    world.sync()
    assert live_leads(world) == []
    world.clock.advance(hours=1)
    world.portal.update("contacts", hubspot_id, {"lifecyclestage": MQL})
    world.sync()
    (created,) = live_leads(world)
    assert created["Lifecycle_Stage__c"] == "MQL"
    assert hubspot_contact(world, "ada@example.com")["lifecyclestage"] == MQL


def test_an_mql_that_already_has_a_salesforce_lead_is_not_handed_off(world: World) -> None:
    existing = lead(world, "ada@example.com")
    contact(world, "ada@example.com", lifecyclestage=MQL)
    world.sync()
    assert [r["Id"] for r in live_leads(world)] == [existing]
    store = world.store()
    try:
        assert store.lifecycle.handoffs() == {}
    finally:
        store.close()


# -- assignment rules -----------------------------------------------------------------------


def test_lead_assignment_rules_apply_to_handed_off_leads_by_default(world: World) -> None:
    contact(world, "ada@example.com", lifecyclestage=MQL)
    with recording(world.salesforce.server) as seen:
        world.sync()
    (upsert,) = lead_upserts(seen)
    assert upsert.headers["sforce-auto-assign"] == "TRUE"


def test_lead_assignment_rules_can_be_turned_off(
    tmp_path: Path, loopback_ca: ThrowawayCA, stack: ExitStack
) -> None:
    w = lifecycle_world(tmp_path, loopback_ca, stack)
    text = w.config.read_text(encoding="utf-8")
    off = text.replace("[salesforce]\n", "[salesforce]\nlead_assignment_rules = false\n")
    w.config.write_text(off, encoding="utf-8")
    w.settings = load_settings(w.config, environ={})
    contact(w, "ada@example.com", lifecyclestage=MQL)
    with recording(w.salesforce.server) as seen:
        w.sync()
    (upsert,) = lead_upserts(seen)
    assert upsert.headers["sforce-auto-assign"] == "FALSE"
    assert len(live_leads(w)) == 1


# -- exactly once ---------------------------------------------------------------------------


def test_a_pass_killed_after_the_lead_upsert_and_repeated_creates_no_duplicate_lead(
    world: World,
) -> None:
    contact(world, "ada@example.com", lifecyclestage=MQL)
    server = world.salesforce.server

    def die() -> None:
        # The upsert was applied; syncd "dies" before it reads the answer: this connection
        # drops, and every later Salesforce call of the pass is refused as if the process
        # were gone (401 stops a pass at once, with no retry to succeed in its place).
        server.faults.error_rate, server.faults.error_statuses = 1.0, (401,)
        raise ConnectionAbortedError("syncd killed mid-push")

    server.faults.on_kill = die
    with recording(server) as seen:
        original = server.app

        def arm(request: Any) -> Any:
            if request.method == "PATCH" and request.path.endswith(f"/Lead/{SYNCD_ID_FIELD}"):
                server.faults.kill_after = server._number
            return original(request)

        server.app = arm
        with pytest.raises(AssertionError):
            world.sync()
    assert world.reports[-1].status == "stopped"
    assert len(lead_upserts(seen)) == 1
    (created,) = live_leads(world)
    server.faults.error_rate, server.faults.kill_after, server.faults.on_kill = 0.0, None, None
    world.sync()
    world.sync()
    person = person_of(world, "ada@example.com")
    assert [r["Id"] for r in live_leads(world) if r[SYNCD_ID_FIELD] == person] == [created["Id"]]
    assert handoff_of(world, "ada@example.com").lead_id == created["Id"]


def test_a_deleted_lead_of_a_person_is_not_handed_off_again(world: World) -> None:
    hubspot_id = contact(world, "ada@example.com", lifecyclestage=MQL)
    world.sync()
    (created,) = live_leads(world)
    world.clock.advance(hours=1)
    world.org.delete("Lead", created["Id"])
    world.sync()
    world.clock.advance(hours=1)
    world.portal.update("contacts", hubspot_id, {"lifecyclestage": "salesqualifiedlead"})
    world.sync()
    assert live_leads(world) == []
    assert len(world.org.records("Lead", include_deleted=True)) == 1


# -- the hand-off table ---------------------------------------------------------------------


def test_the_handoff_records_the_lead_its_owner_and_a_first_task(world: World) -> None:
    contact(world, "ada@example.com", lifecyclestage=MQL)
    qualified = world.clock.now
    world.sync()
    world.sync()
    (created,) = live_leads(world)
    handoff = handoff_of(world, "ada@example.com")
    assert (handoff.lead_id, handoff.owner_id, handoff.created_by_syncd) == (
        created["Id"], created["OwnerId"], True)
    assert handoff.qualified_at <= world.clock.now.isoformat()
    assert handoff.qualified_at.startswith(qualified.date().isoformat())
    assert handoff.first_touch_at is None
    world.clock.advance(hours=3)
    touched = world.clock.now
    world.org.insert("Task", {"WhoId": created["Id"], "Subject": "Call", "Type": "Call"})
    world.sync()
    handoff = handoff_of(world, "ada@example.com")
    assert handoff.first_touch_at is not None
    assert handoff.first_touch_at.startswith(touched.strftime("%Y-%m-%dT%H:%M"))
    assert handoff.first_touch == "Task: Call"


def test_the_lead_status_leaving_its_initial_value_is_a_first_touch(world: World) -> None:
    contact(world, "ada@example.com", lifecyclestage=MQL)
    world.sync()
    (created,) = live_leads(world)
    world.clock.advance(hours=2)
    touched = world.clock.now
    world.org.update("Lead", created["Id"], {"Status": "Working - Contacted"})
    world.sync()
    handoff = handoff_of(world, "ada@example.com")
    assert handoff.lead_id == created["Id"]
    assert handoff.first_touch == "Status Working - Contacted"
    assert handoff.first_touch_at is not None
    assert handoff.first_touch_at.startswith(touched.strftime("%Y-%m-%dT%H:%M"))
    # Working - Contacted also means SQL: both systems say so now.
    assert hubspot_contact(world, "ada@example.com")["lifecyclestage"] == "salesqualifiedlead"


def test_hand_offs_are_refreshed_a_batch_at_a_time_with_the_same_outcome(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The hand-offs and their Leads are read back a batch at a time (the pass after a 1M
    backfill reads 170,000): batches of one give each hand-off its own Lead and touch."""
    monkeypatch.setattr(syncd.handoff, "_BATCH", 1)
    emails = ["ada@example.com", "bob@example.com", "cy@example.com"]
    for email in emails:
        contact(world, email, lifecyclestage=MQL)
    world.sync()
    world.sync()
    leads = {lead["Email"]: lead for lead in live_leads(world)}
    assert sorted(leads) == emails
    for email in emails:
        assert handoff_of(world, email).lead_id == leads[email]["Id"]
    world.org.insert("Task", {"WhoId": leads["bob@example.com"]["Id"], "Subject": "Call",
                              "Type": "Call"})
    world.sync()
    touched = {email: handoff_of(world, email).first_touch for email in emails}
    assert touched == {"ada@example.com": None, "bob@example.com": "Task: Call",
                       "cy@example.com": None}


def test_a_closed_hand_off_keeps_the_owner_it_was_worked_by(world: World) -> None:
    """Only open hand-offs follow their Lead: once the first sales touch is in, reassigning
    the Lead later does not rewrite who the hand-off went to."""
    contact(world, "ada@example.com", lifecyclestage=MQL)
    world.sync()
    world.sync()
    (created,) = live_leads(world)
    world.org.insert("Task", {"WhoId": created["Id"], "Subject": "Call", "Type": "Call"})
    world.sync()
    worked = handoff_of(world, "ada@example.com")
    assert worked.first_touch == "Task: Call"
    assert worked.owner_id == created["OwnerId"]
    other_owner = world.org.insert("User", {"LastName": "Rep", "Username": "rep@example.com",
                                            "Email": "rep@example.com", "Alias": "rep"})
    world.org.update("Lead", created["Id"], {"OwnerId": other_owner})
    world.sync()
    assert world.org.get("Lead", created["Id"])["OwnerId"] == other_owner
    assert handoff_of(world, "ada@example.com").owner_id == worked.owner_id
