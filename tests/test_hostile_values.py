"""Hostile record values against both emulators (issue 8, part 4): megabyte strings, control
characters, mixed scripts, numbers in text fields and text in number fields, invalid emails and
domains, quotes, SOQL and HubSpot search syntax, markup. A pass never crashes (exit 0 or 1) nor
corrupts a query (every other record still syncs; no read answered 400); each value is written
as it is, transformed, or parked with the CRM's reason (`syncd errors list`); a second pass
converges."""

from __future__ import annotations

import csv
import io
import json
import logging
from collections.abc import Mapping
from typing import Any

import pytest

from syncd.cli import run
from syncd.errors import EXIT_OK, EXIT_REJECTED
from tests.harness import World

MEGABYTE = "x" * 1_000_000
csv.field_size_limit(4 * len(MEGABYTE))  # an export row carries the refused value in full
MIXED = "Zoë Привет مرحبا 你好 🚀"
QUOTES = "O'Brien \"Bob\" \\ back"
SOQL = "' OR Id != null --"
SEARCH = "* OR email:*"
MARKUP = "<script>alert('x')</script><b>bold</b>"
CONTROLS = "tab\tnul\x00esc\x1b[31mcrlf\r\nend"


# -- what the emulators and the store show -------------------------------------------------------


def reads_refused(world: World) -> list[tuple[str, str, int]]:
    """Every read either emulator answered with a 4xx: a hostile value broke a query."""
    reads = [
        (entry.method, entry.endpoint, entry.status)
        for server in (world.hubspot.server, world.salesforce.server)
        for entry in server.log
        if 400 <= entry.status < 500
        and (entry.method == "GET" or entry.endpoint.endswith(("/search", "/batch/read")))
    ]
    return reads


def refused_records(world: World, capsys: pytest.CaptureFixture[str]) -> list[dict[str, str]]:
    """`syncd errors export` of the world's store, as rows."""
    capsys.readouterr()
    assert run(["errors", "export", "--config", str(world.config)]) == EXIT_OK
    return list(csv.DictReader(io.StringIO(capsys.readouterr().out)))


def errors_list(world: World, capsys: pytest.CaptureFixture[str]) -> str:
    capsys.readouterr()
    assert run(["errors", "list", "--config", str(world.config)]) == EXIT_OK
    return capsys.readouterr().out


def hubspot_contact(world: World, email: str) -> dict[str, Any]:
    found = [
        world.portal.properties("contacts", i)
        for i in world.portal.ids("contacts")
        if world.portal.properties("contacts", i).get("email") == email
    ]
    assert len(found) == 1, (email, len(found))
    return dict(found[0])


def leads_by_email(world: World) -> dict[str, Mapping[str, Any]]:
    return {str(lead["Email"]): lead for lead in world.org.records("Lead") if lead["Email"]}


def converges(world: World) -> None:
    """A further pass with no outside change writes nothing and parks nothing new."""
    world.reset_counts()
    report = world.sync()
    assert world.writes() == 0, world.hubspot.counts | world.salesforce.counts
    assert report.exit_code in (EXIT_OK, EXIT_REJECTED)


# -- Salesforce -> HubSpot ---------------------------------------------------------------------

SALESFORCE_LEADS: list[tuple[str, dict[str, str]]] = [
    ("o'brien@example.com", {"LastName": QUOTES, "Title": QUOTES, "Company": QUOTES}),
    ("x'or'1'='1@example.com", {"LastName": SOQL, "Title": SOQL, "Company": "Acme' OR '1'='1"}),
    ("a*b+or@example.com", {"LastName": SEARCH, "FirstName": "OR", "Title": "AND NOT *"}),
    ("mixed@example.com", {"LastName": MIXED, "FirstName": "Ünïcødé", "Title": MIXED}),
    ("markup@example.com", {"LastName": MARKUP[:80], "Title": MARKUP}),
    ("controls@example.com", {"LastName": CONTROLS, "Title": CONTROLS}),
    ("numbers@example.com", {"LastName": "12345", "Title": "3.14159", "Phone": "twelve"}),
    ("plain@example.com", {"LastName": "Plain", "Title": "Engineer", "Phone": "+1 555 0100"}),
]


def test_hostile_salesforce_values_reach_hubspot_as_they_are(world: World) -> None:
    for email, fields in SALESFORCE_LEADS:
        world.org.insert("Lead", {"Company": "Engines", "Email": email, **fields})
    report = world.sync()
    assert report.exit_code == EXIT_OK, report.error
    assert reads_refused(world) == []
    for email, fields in SALESFORCE_LEADS:
        contact = hubspot_contact(world, email)
        assert contact["lastname"] == fields["LastName"], email
        assert contact.get("jobtitle") == fields["Title"], email
        assert contact.get("firstname") == fields.get("FirstName"), email
    assert hubspot_contact(world, "numbers@example.com")["phone"] == "twelve"
    converges(world)


# -- HubSpot -> Salesforce: the hand-off creates Leads in one batch ------------------------------

LONG_EMAIL = "a" * 290 + "@example.com"
LANDING: list[dict[str, str]] = [
    {"email": "plain1@example.com", "lastname": "Plain", "jobtitle": "Engineer"},
    {"email": "controls@example.com", "lastname": CONTROLS, "firstname": "\x00"},
    {"email": "mixed@example.com", "lastname": MIXED, "jobtitle": MIXED},
    {"email": "soql@example.com", "lastname": SOQL, "jobtitle": QUOTES},
    {"email": "search@example.com", "lastname": SEARCH, "phone": "OR *"},
    {"email": "Plain2@Example.com", "lastname": "Plain", "jobtitle": MARKUP},
]
# email -> the code Salesforce refuses the Lead with
PARKED: dict[str, tuple[str, dict[str, str]]] = {
    "mega@example.com": ("STRING_TOO_LONG", {"lastname": "Mega", "jobtitle": MEGABYTE}),
    "a@": ("INVALID_EMAIL_ADDRESS", {"lastname": "NoDomain"}),
    "@b": ("INVALID_EMAIL_ADDRESS", {"lastname": "NoLocal"}),
    "a b@c.d": ("INVALID_EMAIL_ADDRESS", {"lastname": "Space"}),
    LONG_EMAIL: ("STRING_TOO_LONG", {"lastname": "Long"}),
}


def test_hostile_hubspot_values_are_written_or_parked_while_batch_mates_land(
    world: World, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    mql = {"lifecyclestage": "marketingqualifiedlead"}
    people = [*LANDING, *({"email": e, **props} for e, (_, props) in PARKED.items())]
    for props in sorted(people, key=lambda p: p["email"]):  # refused ones mid-batch
        world.portal.create("contacts", {**props, **mql})
    report = world.sync()
    assert (report.exit_code, report.rejected) == (EXIT_REJECTED, len(PARKED))
    assert reads_refused(world) == []
    leads = leads_by_email(world)
    assert sorted(leads) == sorted(p["email"].lower() for p in LANDING)
    for props in LANDING:
        lead = leads[props["email"].lower()]
        assert lead["LastName"] == props["lastname"]
        assert lead["Title"] == props.get("jobtitle")
        assert lead["Phone"] == props.get("phone")
    refused = {json.loads(row["fields"])["Email"]: row for row in refused_records(world, capsys)}
    assert {email: row["error_code"] for email, row in refused.items()} == {
        email: code for email, (code, _) in PARKED.items()
    }
    assert refused["a b@c.d"]["message"] == "Email: invalid email address: a b@c.d"
    assert refused["mega@example.com"]["message"].endswith("(max length=128)")
    monkeypatch.setenv("COLUMNS", "400")
    listed = errors_list(world, capsys)
    assert listed.count("INVALID_EMAIL_ADDRESS") == 3 and listed.count("STRING_TOO_LONG") == 2
    assert "Email: invalid email address: @b" in listed
    converges(world)


# -- HubSpot -> Salesforce: edits update Leads in one batch -------------------------------------


def test_hostile_hubspot_edits_update_leads_or_are_parked_with_the_reason(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    edits = {
        "mega@example.com": {"jobtitle": MEGABYTE},
        "controls@example.com": {"jobtitle": CONTROLS},
        "soql@example.com": {"jobtitle": SOQL, "phone": "' OR 1=1"},
        "mixed@example.com": {"jobtitle": MIXED},
        "longphone@example.com": {"phone": "1" * 50},
    }
    ids = {email: str(world.org.insert("Lead", {"LastName": "Before", "Company": "Engines",
                                                "Email": email, "Title": "Before"}))
           for email in edits}
    world.sync()
    world.clock.advance(minutes=1)
    for hubspot_id in world.portal.ids("contacts"):
        email = str(world.portal.properties("contacts", hubspot_id)["email"])
        world.portal.update("contacts", hubspot_id, edits[email])
    report = world.sync()
    assert (report.exit_code, report.rejected) == (EXIT_REJECTED, 2)
    assert reads_refused(world) == []
    for email in ("controls@example.com", "soql@example.com", "mixed@example.com"):
        lead = world.org.get("Lead", ids[email])
        assert lead["Title"] == edits[email]["jobtitle"]
        assert lead["Phone"] == edits[email].get("phone")
    assert world.org.get("Lead", ids["mega@example.com"])["Title"] == "Before"
    assert world.org.get("Lead", ids["longphone@example.com"])["Phone"] is None
    refused = {row["record_id"]: row for row in refused_records(world, capsys)}
    assert {world.org.get("Lead", i)["Email"] for i in refused} == {
        "mega@example.com", "longphone@example.com"}
    assert {row["error_code"] for row in refused.values()} == {"STRING_TOO_LONG"}
    converges(world)


# -- accounts and opportunities ------------------------------------------------------------------

WEBSITES = {
    "Scheme only": ("http://", None),
    "Empty label": ("..com", None),
    "Space": ("acme .com", None),
    "Markup": ("<script>.com", None),
    "Unicode": ("https://www.Münchén.de/über?x=1", "xn--mnchn-esa3k.de"),
    "Plain": ("https://www.Acme.com/pricing", "acme.com"),
}


def test_hostile_account_values_become_companies_and_bad_domains_stay_blank(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    for name, (website, _) in WEBSITES.items():
        world.org.insert("Account", {"Name": f"{name} {QUOTES} {SOQL}", "Website": website})
    report = world.sync()
    assert report.exit_code == EXIT_OK, report.error
    assert reads_refused(world) == []
    domains = {
        str(props["name"]): props.get("domain")
        for i in world.portal.ids("companies")
        if (props := world.portal.properties("companies", i))
    }
    assert domains == {f"{name} {QUOTES} {SOQL}": domain
                       for name, (_, domain) in WEBSITES.items()}
    assert refused_records(world, capsys) == []
    converges(world)


def test_hostile_opportunity_names_become_deals_and_text_in_a_deal_amount_is_replaced(
    world: World, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    account = str(world.org.insert("Account", {"Name": "Acme", "Website": "acme.com"}))
    names = [SOQL, QUOTES, MIXED, MARKUP, CONTROLS, "12345", SEARCH, "Plain"]
    for name in names:
        world.org.insert("Opportunity", {"Name": name, "StageName": "Prospecting",
                                         "CloseDate": "2026-07-01", "Amount": 500,
                                         "AccountId": account})
    assert world.sync().exit_code == EXIT_OK
    deals = {str(world.portal.properties("deals", i)["dealname"]): i
             for i in world.portal.ids("deals")}
    assert sorted(deals) == sorted(names)
    world.clock.advance(minutes=1)
    world.portal.update("deals", deals["Plain"], {"amount": "twelve"})
    with caplog.at_level(logging.WARNING, logger="syncd.pipeline"):
        assert world.sync().exit_code == EXIT_OK
    # The text is left out of the unified amount, with the reason said for the deal.
    problems = [getattr(r, "fields", {}) for r in caplog.records
                if r.getMessage() == "value_problem"]
    assert [(p["object"], p["id"], p["field"]) for p in problems] == [
        ("deals", deals["Plain"], "amount")]
    assert "twelve" in problems[0]["reason"]
    # always-salesforce: the Opportunity's Amount replaces the text typed into the deal
    assert world.portal.properties("deals", deals["Plain"])["amount"] == "500"
    assert reads_refused(world) == []
    assert refused_records(world, capsys) == []
    converges(world)
