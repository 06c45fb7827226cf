"""Identity against both emulators: which records are one person, one account, one opportunity
(ARCHITECTURE section 5), and what merges, conversions and deletes do to that."""

from __future__ import annotations

from typing import Any

from syncd.store import Store
from tests.harness import World


def lead(w: World, email: str, **fields: object) -> str:
    return str(w.org.insert("Lead", {"LastName": "Lovelace", "Company": "Analytical Engines",
                                     "Email": email, **fields}))


def sf_contact(w: World, email: str, **fields: object) -> str:
    return str(w.org.insert("Contact", {"LastName": "Lovelace", "Email": email, **fields}))


def hubspot_contact(w: World, email: str, **props: str) -> str:
    return str(w.portal.create("contacts", {"email": email, **props}))


def live(w: World, object_type: str) -> list[dict[str, Any]]:
    return [w.portal.properties(object_type, i) for i in w.portal.ids(object_type)]


def read(w: World, query: str, *args: object) -> list[tuple[Any, ...]]:
    store = w.store()
    try:
        return list(store.db.conn.execute(query, args))
    finally:
        store.close()


def people(w: World) -> int:
    store = w.store()
    try:
        return store.unified.count("person")
    finally:
        store.close()


def duplicates(w: World) -> list[dict[str, Any]]:
    store: Store = w.store()
    try:
        return store.unified.duplicates()
    finally:
        store.close()


# -- people ----------------------------------------------------------------------------------


def test_emails_differing_in_case_and_whitespace_are_one_person(world: World) -> None:
    lead_id = lead(world, "Ada.Lovelace@Example.COM", Title="Countess")
    hubspot_id = hubspot_contact(world, "  ada.lovelace@example.com ")
    world.sync()
    assert people(world) == 1
    assert [c["hs_object_id"] for c in live(world, "contacts")] == [hubspot_id]
    assert world.portal.properties("contacts", hubspot_id)["jobtitle"] == "Countess"
    # The same address in another case is no change: Salesforce keeps its spelling.
    assert world.org.get("Lead", lead_id)["Email"] == "Ada.Lovelace@Example.COM"
    world.reset_counts()
    world.sync()
    assert world.writes() == 0


def test_a_lead_and_a_contact_sharing_an_email_are_one_person_and_the_contact_wins(
    world: World,
) -> None:
    lead_id = lead(world, "ada@example.com", Title="Lead title")
    world.clock.advance(minutes=1)
    contact_id = sf_contact(world, "ada@example.com", Title="Contact title")
    world.sync()
    assert people(world) == 1
    (hubspot,) = live(world, "contacts")
    assert hubspot["jobtitle"] == "Contact title"
    assert [(d["object"], d["record_id"], d["kind"]) for d in duplicates(world)] == [
        ("Lead", lead_id, "person")
    ]
    assert contact_id in duplicates(world)[0]["reason"]
    world.reset_counts()
    world.sync()
    assert world.writes() == 0


def test_a_converted_lead_hands_its_person_to_its_contact_and_is_never_written(
    world: World,
) -> None:
    lead_id = lead(world, "ada@example.com", Title="Countess")
    world.sync()
    (hubspot_id,) = world.portal.ids("contacts")
    world.clock.advance(minutes=1)
    converted = world.org.convert_lead(lead_id)
    world.sync()
    assert people(world) == 1
    assert world.portal.ids("contacts") == [hubspot_id]
    links = read(world, "SELECT object, state FROM link WHERE system = 'salesforce'"
                        " AND kind = 'person' ORDER BY object")
    assert links == [("Contact", "live"), ("Lead", "converted")]
    world.clock.advance(minutes=1)
    world.portal.update("contacts", hubspot_id, {"jobtitle": "Analyst"})
    world.sync()
    assert world.org.get("Contact", str(converted["contactId"]))["Title"] == "Analyst"
    assert world.org.get("Lead", lead_id)["Title"] == "Countess"
    assert read(world, "SELECT count(*) FROM outbox WHERE object = 'Lead'") == [(0,)]
    world.clock.advance(minutes=1)
    world.org.update("Contact", str(converted["contactId"]), {"Title": "Engineer"})
    world.sync()
    assert world.portal.properties("contacts", hubspot_id)["jobtitle"] == "Engineer"


def test_a_hubspot_merge_relinks_the_person_to_the_survivor(world: World) -> None:
    lead_id = lead(world, "ada@example.com", Title="Countess")
    world.sync()
    (loser,) = world.portal.ids("contacts")
    survivor = hubspot_contact(world, "ada.work@example.com")
    world.clock.advance(minutes=1)
    world.portal.merge("contacts", survivor, loser)
    world.sync()
    assert world.portal.ids("contacts") == [survivor]
    assert people(world) == 1
    assert read(world, "SELECT record_id, state FROM link WHERE system = 'hubspot'"
                       " ORDER BY record_id") == [(loser, "merged"), (survivor, "live")]
    assert len(read(world, "SELECT DISTINCT entity_id FROM link WHERE kind = 'person'")) == 1
    world.clock.advance(minutes=1)
    world.org.update("Lead", lead_id, {"Title": "Analyst"})
    world.sync()
    assert world.portal.properties("contacts", survivor)["jobtitle"] == "Analyst"
    assert world.portal.ids("contacts") == [survivor]  # the loser is not made again


def test_a_salesforce_merge_relinks_the_person_to_the_survivor(world: World) -> None:
    master = sf_contact(world, "ada@example.com", Title="Countess")
    loser = sf_contact(world, "ada.other@example.com", LastName="Byron")
    world.sync()
    assert people(world) == 2
    hubspot_ids = world.portal.ids("contacts")
    world.clock.advance(minutes=1)
    world.org.merge("Contact", master, loser)
    world.sync()
    assert people(world) == 1
    assert world.portal.ids("contacts") == hubspot_ids  # nothing deleted in HubSpot
    links = dict(read(world, "SELECT record_id, state FROM link WHERE object = 'Contact'"))
    assert links == {master: "live", loser: "merged"}
    # Every record of both people, the merged-away Contact's too, now points at one entity;
    # the second HubSpot contact is reported, not deleted.
    (entity,) = {e for (e,) in read(world, "SELECT entity_id FROM link WHERE kind = 'person'")}
    assert [(d["object"], d["entity_id"]) for d in duplicates(world)] == [("contacts", entity)]
    world.clock.advance(minutes=1)
    world.org.update("Contact", master, {"Title": "Analyst"})
    world.sync()
    master_contact = [c for c in live(world, "contacts") if c["email"] == "ada@example.com"]
    assert master_contact[0]["jobtitle"] == "Analyst"
    assert read(world, "SELECT DISTINCT entity_id FROM link WHERE kind = 'person'") == [(entity,)]


def test_a_deleted_hubspot_contact_unlinks_and_is_not_recreated(world: World) -> None:
    lead_id = lead(world, "ada@example.com", Title="Countess")
    hubspot_id = hubspot_contact(world, "ada@example.com")
    world.sync()
    world.clock.advance(minutes=1)
    world.portal.archive("contacts", hubspot_id)
    # Deletes are invisible to HubSpot's search: the connector sweeps the archived list every
    # six hours, or in a pass that finds other changes.
    world.sync(advance_minutes=6 * 60 + 1)
    assert read(world, "SELECT state FROM link WHERE system = 'hubspot'") == [("deleted",)]
    world.clock.advance(minutes=1)
    world.org.update("Lead", lead_id, {"Title": "Analyst"})
    world.reset_counts()
    world.sync()
    assert world.portal.ids("contacts") == []
    assert world.hubspot.calls("POST /crm/v3/objects/{object_type}/batch/") == 0
    assert world.org.get("Lead", lead_id)["Title"] == "Analyst"
    assert world.org.get("Lead", lead_id)["IsDeleted"] is False


def test_a_contact_deleted_before_syncd_read_back_its_creation_is_not_recreated(
    world: World,
) -> None:
    lead_id = lead(world, "ada@example.com", Title="Countess")
    world.sync()
    (hubspot_id,) = world.portal.ids("contacts")
    world.clock.advance(minutes=1)
    world.portal.archive("contacts", hubspot_id)
    world.sync()
    world.clock.advance(minutes=1)
    world.org.update("Lead", lead_id, {"Title": "Analyst"})
    world.sync()
    world.sync(advance_minutes=6 * 60 + 1)
    assert world.portal.ids("contacts") == []
    assert read(world, "SELECT state FROM link WHERE system = 'hubspot'") == [("deleted",)]


def test_a_deleted_lead_never_deletes_the_hubspot_contact(world: World) -> None:
    lead_id = lead(world, "ada@example.com", Title="Countess")
    world.sync()
    (hubspot_id,) = world.portal.ids("contacts")
    world.clock.advance(minutes=1)
    world.org.delete("Lead", lead_id)
    world.reset_counts()
    world.sync()
    assert world.portal.ids("contacts") == [hubspot_id]
    assert world.portal.properties("contacts", hubspot_id)["jobtitle"] == "Countess"
    assert read(world, "SELECT state FROM link WHERE object = 'Lead'") == [("deleted",)]
    assert world.writes() == 0


# -- accounts --------------------------------------------------------------------------------


def test_accounts_match_by_normalized_domain(world: World) -> None:
    account = str(world.org.insert("Account", {"Name": "Acme", "Website": "https://www.Acme.com/x"}))
    company = str(world.portal.create("companies", {"name": "Acme Inc", "domain": "acme.com"}))
    world.sync()
    assert world.portal.ids("companies") == [company]
    assert world.portal.properties("companies", company)["name"] == "Acme"  # prefer-salesforce
    assert world.org.get("Account", account)["Website"] == "https://www.Acme.com/x"
    assert read(world, "SELECT count(DISTINCT entity_id) FROM link WHERE kind = 'account'") == [
        (1,)]


def test_the_oldest_of_several_companies_sharing_a_domain_is_the_match(world: World) -> None:
    oldest = str(world.portal.create("companies", {"name": "Acme", "domain": "acme.com"}))
    world.clock.advance(minutes=1)
    newer = str(world.portal.create("companies", {"name": "Acme (dup)", "domain": "www.acme.com"}))
    world.clock.advance(minutes=1)
    account = str(world.org.insert("Account", {"Name": "Acme Corp", "Website": "acme.com"}))
    world.sync()
    linked = dict(read(world, "SELECT record_id, entity_id FROM link WHERE kind = 'account'"))
    assert linked[oldest] == linked[account]
    assert [(d["object"], d["record_id"]) for d in duplicates(world)] == [("companies", newer)]
    assert world.portal.properties("companies", oldest)["name"] == "Acme Corp"
    assert world.portal.properties("companies", newer)["name"] == "Acme (dup)"
    world.reset_counts()
    world.sync()
    assert world.writes() == 0


def test_an_account_without_website_matches_only_by_link_and_is_created_in_hubspot(
    world: World,
) -> None:
    same_name = str(world.portal.create("companies", {"name": "Plain Ltd"}))
    account = str(world.org.insert("Account", {"Name": "Plain Ltd"}))
    sited = str(world.org.insert("Account", {"Name": "Sited", "Website": "http://WWW.Sited.io:8080/a?b"}))
    world.sync()
    companies = {c["hs_object_id"]: c for c in live(world, "companies")}
    assert len(companies) == 3
    created = [c for i, c in companies.items() if i != same_name]
    entity_of = dict(read(world, "SELECT record_id, entity_id FROM link WHERE kind = 'account'"))
    by_name = {c["name"]: c for c in created}
    assert by_name["Plain Ltd"]["syncd_id"] == entity_of[account]
    assert "domain" not in by_name["Plain Ltd"]
    assert by_name["Sited"]["domain"] == "sited.io"
    assert by_name["Sited"]["syncd_id"] == entity_of[sited]
    assert world.hubspot.counts["POST /crm/v3/objects/{object_type}/batch/upsert"] >= 1
    world.reset_counts()
    world.sync()
    assert world.writes() == 0
    assert len(world.portal.ids("companies")) == 3


# -- opportunities ---------------------------------------------------------------------------


STAGES = {
    "Prospecting": "appointmentscheduled", "Qualification": "qualifiedtobuy",
    "Needs Analysis": "qualifiedtobuy", "Value Proposition": "presentationscheduled",
    "Id. Decision Makers": "decisionmakerboughtin",
    "Perception Analysis": "decisionmakerboughtin", "Proposal/Price Quote": "contractsent",
    "Negotiation/Review": "contractsent", "Closed Won": "closedwon", "Closed Lost": "closedlost",
}


def test_every_opportunity_becomes_a_deal_with_its_mapped_stage_and_associations(
    world: World,
) -> None:
    account = str(world.org.insert("Account", {"Name": "Acme", "Website": "acme.com"}))
    ada = sf_contact(world, "ada@acme.com", AccountId=account)
    opportunities = {}
    for number, stage in enumerate(STAGES):
        opportunities[stage] = str(world.org.insert("Opportunity", {
            "Name": f"Deal {number}", "StageName": stage, "CloseDate": "2026-07-01",
            "Amount": 100 + number, "AccountId": account}))
    world.org.insert("OpportunityContactRole", {"OpportunityId": opportunities["Prospecting"],
                                                "ContactId": ada, "Role": "Decision Maker"})
    world.sync()
    deals = {d["dealname"]: d for d in live(world, "deals")}
    assert len(deals) == len(STAGES)
    (company,) = world.portal.ids("companies")
    (person,) = world.portal.ids("contacts")
    for number, (stage, hubspot_stage) in enumerate(STAGES.items()):
        deal = deals[f"Deal {number}"]
        assert (deal["pipeline"], deal["dealstage"]) == ("default", hubspot_stage)
        assert deal["amount"] == str(100 + number)
        assert deal["closedate"] == "2026-07-01T00:00:00.000Z"
        deal_id = deal["hs_object_id"]
        assert [i for i, _ in world.portal.associations("deals", deal_id, "companies")] == [
            company]
        expected = [person] if stage == "Prospecting" else []
        assert [i for i, _ in world.portal.associations("deals", deal_id, "contacts")] == expected
    world.reset_counts()
    world.sync()
    assert world.writes() == 0


def test_a_contact_role_added_later_adds_the_association(world: World) -> None:
    account = str(world.org.insert("Account", {"Name": "Acme", "Website": "acme.com"}))
    ada = sf_contact(world, "ada@acme.com", AccountId=account)
    opportunity = str(world.org.insert("Opportunity", {
        "Name": "Deal", "StageName": "Qualification", "CloseDate": "2026-07-01",
        "AccountId": account}))
    world.sync()
    (deal,) = world.portal.ids("deals")
    assert world.portal.associations("deals", deal, "contacts") == []
    world.clock.advance(minutes=1)
    world.org.insert("OpportunityContactRole", {"OpportunityId": opportunity, "ContactId": ada})
    world.sync()
    (person,) = world.portal.ids("contacts")
    assert [i for i, _ in world.portal.associations("deals", deal, "contacts")] == [person]
    assert world.portal.ids("deals") == [deal]
    world.reset_counts()
    world.sync()
    assert world.writes() == 0


def test_a_stage_change_in_salesforce_moves_the_deal(world: World) -> None:
    opportunity = str(world.org.insert("Opportunity", {
        "Name": "Deal", "StageName": "Qualification", "CloseDate": "2026-07-01"}))
    world.sync()
    (deal,) = world.portal.ids("deals")
    world.clock.advance(minutes=1)
    world.portal.update("deals", deal, {"dealstage": "closedlost"})
    world.clock.advance(minutes=1)
    world.org.update("Opportunity", opportunity, {"StageName": "Closed Won"})
    world.sync()
    assert world.portal.properties("deals", deal)["dealstage"] == "closedwon"
    assert world.org.get("Opportunity", opportunity)["StageName"] == "Closed Won"


def test_a_contact_added_later_with_a_leads_email_takes_over_the_person(world: World) -> None:
    lead_id = lead(world, "ada@example.com", Title="Countess")
    world.sync()
    (hubspot_id,) = world.portal.ids("contacts")
    world.clock.advance(minutes=1)
    contact_id = sf_contact(world, "ada@example.com", Title="Analyst")
    world.sync()
    assert people(world) == 1
    assert world.portal.ids("contacts") == [hubspot_id]
    assert world.portal.properties("contacts", hubspot_id)["jobtitle"] == "Analyst"
    assert [(d["object"], d["record_id"]) for d in duplicates(world)] == [("Lead", lead_id)]
    world.clock.advance(minutes=1)
    world.portal.update("contacts", hubspot_id, {"jobtitle": "Engineer"})
    world.sync()
    assert world.org.get("Contact", contact_id)["Title"] == "Engineer"


def test_a_lead_converted_into_another_persons_contact_merges_the_two_people(
    world: World,
) -> None:
    lead_id = lead(world, "ada@example.com", Title="Countess")
    contact_id = sf_contact(world, "ada.lovelace@example.com", Title="Analyst")
    world.sync()
    assert people(world) == 2
    world.clock.advance(minutes=1)
    world.org.convert_lead(lead_id, contact_id=contact_id)
    world.sync()
    assert people(world) == 1
    (entity,) = {e for (e,) in read(world, "SELECT entity_id FROM link WHERE kind = 'person'")}
    states = dict(read(world, "SELECT object, state FROM link WHERE system = 'salesforce'"
                            " AND kind = 'person'"))
    assert states == {"Contact": "live", "Lead": "converted"}
    assert len(world.portal.ids("contacts")) == 2  # both HubSpot contacts stay; one reported
    assert [d["entity_id"] for d in duplicates(world)] == [entity]
    world.reset_counts()
    world.sync()
    assert world.writes() == 0


def test_an_email_changed_in_hubspot_is_written_to_salesforce_and_still_matches(
    world: World,
) -> None:
    lead_id = lead(world, "ada@example.com")
    world.sync()
    (hubspot_id,) = world.portal.ids("contacts")
    world.clock.advance(minutes=1)
    world.portal.update("contacts", hubspot_id, {"email": "ada@engines.example"})
    world.sync()
    assert world.org.get("Lead", lead_id)["Email"] == "ada@engines.example"
    assert people(world) == 1
    assert read(world, "SELECT match_key FROM entity WHERE kind = 'person'") == [
        ("ada@engines.example",)]
    world.reset_counts()
    world.sync()
    assert world.writes() == 0
