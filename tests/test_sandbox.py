"""The sandbox org: what it promises to hold, read back through the real client libraries,
its determinism, and a started sandbox whose printed config works with both clients unchanged.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hubspot
import pytest
from simple_salesforce.api import Salesforce

from connectors.loopback import ThrowawayCA
from connectors.sandbox import (
    HUBSPOT_STAGES,
    OrgPlan,
    PlannedAccount,
    PlannedPerson,
    Sandbox,
    Seeder,
)
from tests.conftest import trusting_session

SCALE = 300


@pytest.fixture
def seeded(hubspot_emulator: Any, salesforce_emulator: Any) -> dict[str, int]:
    """The fixture emulators holding a 300-person org (seed 7)."""
    return Sandbox(scale=SCALE, seed=7).seed_into(hubspot_emulator, salesforce_emulator)


def every_contact(client: Any, *, archived: bool = False,
                  properties: tuple[str, ...] = ("email",)) -> list[Any]:
    """All HubSpot contacts (live or archived) through basic_api paging."""
    found: list[Any] = []
    after = None
    while True:
        page = client.crm.contacts.basic_api.get_page(limit=100, after=after, archived=archived,
                                                      properties=list(properties))
        found += page.results
        if page.paging is None:
            return found
        after = page.paging.next.after


def people(plan: OrgPlan) -> Iterator[PlannedPerson]:
    return (step for step in plan.steps() if isinstance(step, PlannedPerson))


def hubspot_get(emulator: Any, path: str) -> Any:
    """A GET for legacy endpoints the SDK has no method for (forms submissions, email events)."""
    session = trusting_session(emulator.ca_path)
    answer = session.get(emulator.url + path,
                         headers={"Authorization": f"Bearer {emulator.access_token}"})
    assert answer.status_code == 200, answer.text
    return answer.json()


# -- the plan on its own -------------------------------------------------------------------


def test_the_same_seed_draws_the_same_org_and_another_seed_a_different_one() -> None:
    first = list(OrgPlan(scale=150, seed=7).steps())
    assert first == list(OrgPlan(scale=150, seed=7).steps())
    assert first != list(OrgPlan(scale=150, seed=8).steps())


def test_a_person_has_about_ten_touches_on_average_and_the_option_changes_it() -> None:
    default = list(people(OrgPlan(scale=2000)))
    responded = sum(t.responded for p in default for t in p.touches)
    assert 9.0 < responded / len(default) < 11.0
    sparse = list(people(OrgPlan(scale=2000, touches_per_person=2.0)))
    assert 1.5 < sum(t.responded for p in sparse for t in p.touches) / len(sparse) < 2.5


def test_the_smallest_org_holds_every_kind_of_person_whatever_the_seed() -> None:
    for seed in (1, 2, 3):
        found = list(people(OrgPlan(scale=100, seed=seed)))
        kinds = {p.salesforce.kind for p in found if p.salesforce}
        assert kinds == {"Lead", "Contact", "ConvertedLead", "LeadAndContact"}
        assert {p.hubspot.fate for p in found if p.hubspot} == {"live", "archived", "merged"}
        assert {p.salesforce.fate for p in found if p.salesforce} == {"live", "deleted", "merged"}
        assert any(p.hubspot and p.salesforce and p.salesforce.email != p.hubspot.email
                   for p in found)


def test_accounts_are_a_tenth_of_the_people_and_most_have_a_website() -> None:
    accounts = [s for s in OrgPlan(scale=5000).steps() if isinstance(s, PlannedAccount)]
    assert len(accounts) == 500
    with_website = [a for a in accounts if a.website]
    assert 0.6 < len(with_website) / len(accounts) < 0.8
    assert any(a.website.startswith("https://www.") and "/" in a.website[8:]
               for a in with_website if a.website)
    assert any("/" not in a.website and not a.website.startswith("www.")
               for a in with_website if a.website)


def test_unknown_hubspot_limits_are_refused() -> None:
    with pytest.raises(ValueError, match="hubspot_limits"):
        Sandbox(hubspot_limits="free")


# -- the seeded org, read through the real clients -----------------------------------------


def test_people_in_both_systems_have_emails_differing_only_in_case_or_spaces(
        seeded: dict[str, int], hubspot_client: Any, salesforce_client: Any,
        hubspot_emulator: Any) -> None:
    hubspot_emails = {c.properties["email"] for c in every_contact(hubspot_client)}
    salesforce_emails = {r["Email"] for r in salesforce_client.query_all(
        "SELECT Email FROM Lead")["records"] + salesforce_client.query_all(
        "SELECT Email FROM Contact")["records"] if r["Email"]}
    case_only = {e for e in salesforce_emails
                 if e not in hubspot_emails and e.lower() in hubspot_emails}
    assert case_only, "no Salesforce email differs from its HubSpot contact's by case only"
    submitted = [value["value"]
                 for form in hubspot_client.marketing.forms.forms_api.get_page(limit=100).results
                 for submission in hubspot_get(
                     hubspot_emulator,
                     f"/form-integrations/v1/submissions/forms/{form.id}?limit=50")["results"]
                 for value in submission["values"] if value["name"] == "email"]
    spaced = [e for e in submitted if e != e.strip() and e.strip().lower() in hubspot_emails]
    assert spaced, "no form submission carries a contact's email with surrounding spaces"
    assert seeded["people.both"] > 0


def test_converted_leads_point_at_contacts_that_carry_their_campaign_memberships(
        seeded: dict[str, int], salesforce_client: Any) -> None:
    converted = salesforce_client.query_all(
        "SELECT Id, Status, ConvertedContactId, ConvertedAccountId FROM Lead "
        "WHERE IsConverted = true")["records"]
    assert len(converted) == seeded["salesforce.Lead.converted"] > 0
    assert {lead["Status"] for lead in converted} == {"Closed - Converted"}
    contact = salesforce_client.Contact.get(converted[0]["ConvertedContactId"])
    assert contact["AccountId"] == converted[0]["ConvertedAccountId"]
    lead_ids = {lead["Id"]: lead["ConvertedContactId"] for lead in converted}
    members = salesforce_client.query_all(
        "SELECT LeadId, ContactId FROM CampaignMember WHERE LeadId != null")["records"]
    moved = [m for m in members if m["LeadId"] in lead_ids]
    assert moved and all(m["ContactId"] == lead_ids[m["LeadId"]] for m in moved)


def test_a_lead_and_a_contact_share_an_email(seeded: dict[str, int],
                                             salesforce_client: Any) -> None:
    leads = {r["Email"] for r in salesforce_client.query_all(
        "SELECT Email FROM Lead WHERE IsConverted = false")["records"]}
    contacts = {r["Email"] for r in salesforce_client.query_all(
        "SELECT Email FROM Contact")["records"]}
    assert len(leads & contacts) >= seeded["salesforce.lead_and_contact_sharing_email"] > 0


def test_deleted_and_merged_salesforce_rows_appear_only_through_query_all(
        seeded: dict[str, int], salesforce_client: Any) -> None:
    for sobject in ("Lead", "Contact"):
        gone = salesforce_client.query_all(
            f"SELECT Id, MasterRecordId FROM {sobject} WHERE IsDeleted = true",
            include_deleted=True)["records"]
        merged = [r for r in gone if r["MasterRecordId"]]
        assert len(merged) == seeded[f"salesforce.{sobject}.merged"] > 0
        assert len(gone) - len(merged) == seeded[f"salesforce.{sobject}.deleted"] > 0
        live = {r["Id"] for r in salesforce_client.query_all(
            f"SELECT Id FROM {sobject}")["records"]}
        assert live.isdisjoint(r["Id"] for r in gone)
        assert {r["MasterRecordId"] for r in merged} <= live


def test_archived_and_merged_hubspot_contacts_show_with_archived_true(
        seeded: dict[str, int], hubspot_client: Any) -> None:
    archived = every_contact(hubspot_client, archived=True)
    assert len(archived) == (seeded["hubspot.contacts.archived"]
                             + seeded["hubspot.contacts.merged"])
    assert all(contact.archived for contact in archived)
    survivors = [c for c in every_contact(hubspot_client, properties=("hs_merged_object_ids",))
                 if c.properties.get("hs_merged_object_ids")]
    assert len(survivors) == seeded["hubspot.contacts.merged"] > 0
    merged_away = {c.properties["hs_merged_object_ids"] for c in survivors}
    assert merged_away <= {c.id for c in archived}


def test_accounts_with_and_without_websites_and_companies_by_domain(
        seeded: dict[str, int], salesforce_client: Any, hubspot_client: Any) -> None:
    accounts = salesforce_client.query_all("SELECT Name, Website FROM Account")["records"]
    assert len(accounts) == seeded["salesforce.Account"] == SCALE // 10
    assert sum(a["Website"] is None for a in accounts) == \
        seeded["salesforce.Account.without_website"] > 0
    companies = hubspot_client.crm.companies.get_all(properties=["name", "domain"])
    assert len(companies) == seeded["hubspot.companies"] > len(accounts) // 2
    names = {a["Name"] for a in accounts}
    assert any(c.properties["name"] not in names for c in companies), "no HubSpot-only company"
    domains = [c.properties["domain"] for c in companies if c.properties["domain"]]
    assert any(d.startswith("www.") or d != d.lower() for d in domains)


def test_contacts_are_associated_to_companies_as_primary_or_unlabeled(
        seeded: dict[str, int], hubspot_client: Any) -> None:
    ids = [contact.id for contact in every_contact(hubspot_client)]
    seen: set[tuple[int, ...]] = set()
    for start in range(0, len(ids), 100):
        answer = hubspot_client.crm.associations.v4.batch_api.get_page(
            "contacts", "companies", {"inputs": [{"id": i} for i in ids[start:start + 100]]})
        seen.update(tuple(sorted(t.type_id for t in link.association_types))
                    for result in answer.results for link in result.to)
    assert seen == {(1, 279), (279,)}
    assert seeded["hubspot.associations.primary"] > seeded["hubspot.associations.unlabeled"] > 0


def test_opportunities_are_open_won_and_lost_with_and_without_contact_roles(
        seeded: dict[str, int], salesforce_client: Any) -> None:
    opportunities = salesforce_client.query_all(
        "SELECT Id, StageName, IsClosed, IsWon, Amount, CloseDate, CreatedDate "
        "FROM Opportunity")["records"]
    assert len(opportunities) == SCALE // 10
    outcomes = {(o["IsClosed"], o["IsWon"]) for o in opportunities}
    assert outcomes == {(False, False), (True, True), (True, False)}
    assert any(o["Amount"] for o in opportunities) and all(o["CloseDate"] for o in opportunities)
    roles = salesforce_client.query_all(
        "SELECT OpportunityId, ContactId, Role, IsPrimary FROM OpportunityContactRole")["records"]
    with_roles = {r["OpportunityId"] for r in roles}
    assert 0 < len(with_roles) < len(opportunities)
    assert len(with_roles) == seeded["opportunities.with_contact_roles"]
    assert any(r["IsPrimary"] for r in roles)


def test_campaign_members_responded_and_not(seeded: dict[str, int],
                                            salesforce_client: Any) -> None:
    members = salesforce_client.query_all(
        "SELECT Status, HasResponded, FirstRespondedDate FROM CampaignMember")["records"]
    responded = [m for m in members if m["HasResponded"]]
    assert len(responded) == seeded["campaign_responses"] > 0
    assert all(m["FirstRespondedDate"] for m in responded)
    assert len(members) - len(responded) == seeded["campaign_non_responses"] > 0


def test_campaigns_share_names_across_salesforce_and_hubspot_email(
        seeded: dict[str, int], salesforce_client: Any, hubspot_emulator: Any) -> None:
    campaigns = {r["Name"] for r in salesforce_client.query_all(
        "SELECT Name FROM Campaign")["records"]}
    clicks = hubspot_get(hubspot_emulator, "/email/public/v1/events?eventType=CLICK&limit=1000")
    assert len(clicks["events"]) == min(1000, seeded["email_clicks"])
    campaign_ids = {event["emailCampaignId"] for event in clicks["events"]}
    names = {hubspot_get(hubspot_emulator, f"/email/public/v1/campaigns/{campaign_id}")["name"]
             for campaign_id in campaign_ids}
    assert names & campaigns and names - campaigns


def test_forms_hold_submissions_with_an_email_value(seeded: dict[str, int],
                                                    hubspot_client: Any,
                                                    hubspot_emulator: Any) -> None:
    forms = hubspot_client.marketing.forms.forms_api.get_page(limit=100).results
    assert len(forms) == seeded["hubspot.forms"]
    total = 0
    for form in forms:
        path = f"/form-integrations/v1/submissions/forms/{form.id}?limit=50"
        while path:
            page = hubspot_get(hubspot_emulator, path)
            total += len(page["results"])
            assert all(any(v["name"] == "email" for v in s["values"]) for s in page["results"])
            after = page.get("paging", {}).get("next", {}).get("after")
            path = f"/form-integrations/v1/submissions/forms/{form.id}?limit=50&after={after}" \
                if after else ""
    assert total == seeded["form_submissions"] > 0


def test_tasks_and_events_name_leads_and_contacts_with_every_type(
        seeded: dict[str, int], salesforce_client: Any) -> None:
    for sobject, count in (("Task", "tasks"), ("Event", "events")):
        rows = salesforce_client.query_all(f"SELECT WhoId, Type FROM {sobject}")["records"]
        assert len(rows) == seeded[count] > 0
        assert {r["Type"] for r in rows} >= {"Call", "Email", "Meeting", None}
        assert {r["WhoId"][:3] for r in rows} == {"00Q", "003"}


def test_touches_average_about_ten_per_person(seeded: dict[str, int]) -> None:
    parts = ("form_submissions", "email_clicks", "campaign_responses", "tasks", "events")
    assert seeded["touches"] == sum(seeded[part] for part in parts)
    assert 7 < seeded["touches"] / seeded["people"] < 12


def test_names_and_titles_carry_unicode_and_blanks(seeded: dict[str, int],
                                                   hubspot_client: Any,
                                                   salesforce_client: Any) -> None:
    contacts = every_contact(hubspot_client,
                             properties=("firstname", "lastname", "jobtitle", "phone"))
    values = [c.properties for c in contacts]
    assert any(v["firstname"] is None for v in values)
    assert any(v["phone"] is None for v in values)
    text = " ".join(str(v.get(k)) for v in values for k in ("firstname", "lastname", "jobtitle"))
    assert any("\u00c0" <= ch <= "\u024f" for ch in text)  # accented Latin
    assert any("\u3040" <= ch <= "\u9fff" or "\uac00" <= ch <= "\ud7af" for ch in text)  # CJK
    assert any("\u0590" <= ch <= "\u06ff" for ch in text)  # Hebrew or Arabic (RTL)
    assert any(ord(ch) >= 0x1F300 or ch == "\u2b50" for ch in text)  # emoji
    leads = salesforce_client.query_all("SELECT FirstName, LastName, Title FROM Lead")["records"]
    assert any(lead["FirstName"] is None for lead in leads)
    assert any(ch > "\u00ff" for lead in leads for ch in lead["LastName"])


def test_every_lifecycle_stage_appears_in_hubspot(seeded: dict[str, int],
                                                  hubspot_client: Any) -> None:
    stages = {c.properties["lifecyclestage"]
              for c in every_contact(hubspot_client, properties=("lifecyclestage",))}
    assert stages >= set(HUBSPOT_STAGES)


def test_the_portal_has_the_syncd_properties_installed(seeded: dict[str, int],
                                                       hubspot_client: Any) -> None:
    contacts = {p.name: p for p in hubspot_client.crm.properties.core_api.get_all("contacts")
                .results}
    assert contacts["syncd_id"].has_unique_value is True
    assert contacts["syncd_attributed_revenue"].type == "number"
    deals = {p.name for p in hubspot_client.crm.properties.core_api.get_all("deals").results}
    assert {"syncd_id", "syncd_first_touch_campaign", "syncd_last_touch_campaign"} <= deals


# -- determinism against the emulators ------------------------------------------------------


def seeded_snapshot(ca: ThrowawayCA, seed: int) -> tuple[dict[str, int], list[Any], list[Any]]:
    """Counts, the first HubSpot contacts and the first Leads of a fresh pair of emulators."""
    from connectors.hubspot.emulator import HubSpotEmulator
    from connectors.salesforce.emulator import SalesforceEmulator

    with HubSpotEmulator(ca=ca) as hs, SalesforceEmulator(ca=ca) as sf:
        counts = Sandbox(scale=120, seed=seed).seed_into(hs, sf)
        ids = hs.portal.ids("contacts")[:25]
        contacts = [hs.portal.properties("contacts", i) for i in ids]
        leads = sf.org.records("Lead", include_deleted=True)[:25]
    return counts, contacts, leads


def test_same_seed_seeds_identical_records_and_another_seed_different_ones(
        loopback_ca: ThrowawayCA) -> None:
    first = seeded_snapshot(loopback_ca, 7)
    assert seeded_snapshot(loopback_ca, 7) == first
    other = seeded_snapshot(loopback_ca, 8)
    assert other[1] != first[1] and other[2] != first[2]


# -- a started sandbox and its config --------------------------------------------------------


def test_started_sandbox_prints_a_config_both_real_clients_use_unchanged(tmp_path: Path) -> None:
    box = Sandbox(scale=100, seed=3, directory=tmp_path / "ca")
    try:
        info = box.start()
        config = tomllib.loads(box.config_text(info, store_path="state/syncd.db"))
        assert set(config) == {"store", "hubspot", "salesforce", "sync", "server"}
        assert config["store"]["path"] == "state/syncd.db"
        hs, sf = config["hubspot"], config["salesforce"]
        assert hs["requests_per_10s"] == 150 and sf["auth"] == "token"
        assert Path(hs["ca_bundle"]).is_absolute() and hs["ca_bundle"] == sf["ca_bundle"]
        assert config["sync"] == {"schedule": "*/5 * * * *", "lookback": "10m"}
        assert config["server"] == {"port": 9464}

        client = hubspot.Client.create(access_token=hs["access_token"], host=hs["base_url"],
                                       ssl_ca_cert=hs["ca_bundle"])
        live = info.counts["hubspot.contacts"] - info.counts["hubspot.contacts.archived"] \
            - info.counts["hubspot.contacts.merged"]
        assert len(client.crm.contacts.basic_api.get_page(limit=100).results) == min(100, live)
        org = Salesforce(instance_url=sf["instance_url"], session_id=sf["access_token"],
                         version=sf["api_version"], session=trusting_session(sf["ca_bundle"]))
        leads = org.query("SELECT COUNT() FROM Lead")["totalSize"]
        assert leads == info.counts["salesforce.Lead"] - info.counts["salesforce.Lead.deleted"] \
            - info.counts["salesforce.Lead.merged"]
    finally:
        box.stop()
    assert box.hubspot is None and box.salesforce is None


def test_a_restarted_sandbox_with_the_same_seed_accepts_the_same_tokens() -> None:
    assert Sandbox(seed=5).hubspot_token == Sandbox(seed=5).hubspot_token
    assert Sandbox(seed=5).salesforce_token == Sandbox(seed=5).salesforce_token
    assert Sandbox(seed=5).salesforce_token != Sandbox(seed=6).salesforce_token
    assert Sandbox(seed=5).salesforce_token.startswith("00D")


def test_seeding_pauses_the_garbage_collector_and_turns_it_back_on(
        hubspot_emulator: Any, salesforce_emulator: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import gc

    enabled_while_seeding: list[bool] = []
    apply = Seeder.apply

    def noting(seeder: Seeder, step: Any) -> None:
        enabled_while_seeding.append(gc.isenabled())
        apply(seeder, step)

    monkeypatch.setattr(Seeder, "apply", noting)
    assert gc.isenabled()
    counts = Sandbox(scale=50, seed=2).seed_into(hubspot_emulator, salesforce_emulator)
    assert gc.isenabled() and counts["people"] == 50
    assert enabled_while_seeding and not any(enabled_while_seeding)
