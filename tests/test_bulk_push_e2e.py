"""Salesforce writes above `bulk_threshold` go by Bulk API 2.0 ingest jobs, through the push
stage as a pass runs it (issue 4: "Bulk API 2.0 ingest above `bulk_threshold`")."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from connectors.loopback import ThrowawayCA
from syncd.cli import run
from syncd.errors import EXIT_OK, EXIT_REJECTED
from tests.harness import World, make_world

THRESHOLD = 5
INGEST = "POST /services/data/v{version}/jobs/ingest"
COLLECTIONS_UPDATE = "PATCH /services/data/v{version}/composite/sobjects"


@pytest.fixture
def bulk_world(tmp_path: Path, loopback_ca: ThrowawayCA) -> Iterator[World]:
    yield from make_world(tmp_path, loopback_ca, salesforce_config=f"bulk_threshold = {THRESHOLD}")


def people(world: World, count: int) -> dict[str, str]:
    """Salesforce Contacts with a HubSpot contact each: email -> Contact id."""
    account = world.org.insert("Account", {"Name": "Acme"})
    found = {}
    for n in range(count):
        email = f"person{n}@example.com"
        found[email] = str(world.org.insert("Contact", {
            "LastName": f"Person {n}", "Email": email, "AccountId": account}))
        world.portal.create("contacts", {"email": email, "firstname": f"P{n}"})
    return found


def calls(world: World) -> dict[str, Any]:
    return dict(world.salesforce.counts)


def test_a_large_group_of_contact_updates_goes_by_an_ingest_job_and_converges(
    bulk_world: World,
) -> None:
    contacts = people(bulk_world, 12)
    bulk_world.sync()
    seen = calls(bulk_world)
    assert seen.get(INGEST, 0) == 1
    assert seen.get(COLLECTIONS_UPDATE, 0) == 0  # none of the 12 went by Collections
    stages = {bulk_world.org.get("Contact", i)["Lifecycle_Stage__c"] for i in contacts.values()}
    assert None not in stages
    bulk_world.sync()
    bulk_world.reset_counts()
    bulk_world.sync()
    assert bulk_world.writes() == 0


def test_a_record_refused_in_an_ingest_job_is_parked_while_its_job_mates_land(
    bulk_world: World,
) -> None:
    contacts = people(bulk_world, 8)
    refused = "person3@example.com"
    bulk_world.salesforce.faults.reject_record = (
        lambda obj, fields: obj == "Contact" and fields.get("Email") == refused)
    report = bulk_world.sync()
    assert report.exit_code == EXIT_REJECTED
    assert calls(bulk_world).get(INGEST, 0) == 1
    staged = {email: bulk_world.org.get("Contact", i)["Lifecycle_Stage__c"]
              for email, i in contacts.items()}
    assert staged[refused] is None
    assert None not in [stage for email, stage in staged.items() if email != refused]
    store = bulk_world.store()
    try:
        (error,) = store.outbox.rows("error")
    finally:
        store.close()
    assert (error.system, error.object, error.record_id) == ("salesforce", "Contact",
                                                             contacts[refused])
    assert error.error_code and error.message
    bulk_world.salesforce.faults.reject_record = None
    assert run(["errors", "retry", "--config", str(bulk_world.config)]) == EXIT_OK
    assert bulk_world.org.get("Contact", contacts[refused])["Lifecycle_Stage__c"] is not None


def test_hand_off_leads_above_the_threshold_still_go_through_assignment_rules(
    bulk_world: World,
) -> None:
    """Bulk API 2.0 runs Lead assignment rules only given a rule's id: syncd keeps its Lead
    upserts on sObject Collections with `Sforce-Auto-Assign` while the rules are on."""
    for n in range(THRESHOLD + 2):
        bulk_world.portal.create("contacts", {"email": f"mql{n}@example.com",
                                              "lifecyclestage": "marketingqualifiedlead"})
    bulk_world.sync()
    seen = calls(bulk_world)
    assert seen.get(INGEST, 0) == 0
    assert seen.get("PATCH /services/data/v{version}/composite/sobjects/{sobject}/{field}") == 1
    assert len([lead for lead in bulk_world.org.records("Lead") if lead["Syncd_Id__c"]]) == (
        THRESHOLD + 2)
