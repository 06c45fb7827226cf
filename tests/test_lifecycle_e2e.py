"""Unified lifecycle stages against both emulators (ARCHITECTURE 5, Lifecycle; issue 5).

A test per signal and per rule: each seeds the emulators, runs passes of syncd as
`syncd run --once` runs them, and asserts on what both CRMs show afterwards and on the store
(the person's unified stage, the dates each stage was first entered).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from connectors.loopback import Request, Response, ThrowawayCA
from syncd.lifecycle import STAGE
from syncd.plan import SYNCD_ID_FIELD
from tests.harness import World, make_world

DEFAULT_MAPPINGS = Path(__file__).resolve().parents[1] / "syncd" / "default_mappings"
RECYCLE_RULES = """
[recycle.disqualified]
lead_status = ["Closed - Not Converted"]
to = "lead"

[recycle.lost]
lost_after_days = 90
to = "lead"
"""
HUBSPOT_BATCH_UPDATE = "POST /crm/v3/objects/{object_type}/batch/update"

# -- seeding and reading --------------------------------------------------------------------


def contact(w: World, email: str, **props: str) -> str:
    return str(w.portal.create("contacts", {"email": email, **props}))


def lead(w: World, email: str, **fields: Any) -> str:
    return str(w.org.insert("Lead", {"LastName": "Lovelace", "Company": "Analytical Engines",
                                     "Email": email, **fields}))


def account(w: World, name: str = "Analytical Engines") -> str:
    return str(w.org.insert("Account", {"Name": name}))


def sf_contact(w: World, email: str, account_id: str | None = None, **fields: Any) -> str:
    values = {"LastName": "Hopper", "Email": email, **fields}
    if account_id:
        values["AccountId"] = account_id
    return str(w.org.insert("Contact", values))


def opportunity(w: World, account_id: str, stage: str = "Prospecting",
                close: str = "2026-09-30", roles: tuple[str, ...] = ()) -> str:
    opp = str(w.org.insert("Opportunity", {"Name": "Engines", "AccountId": account_id,
                                           "StageName": stage, "CloseDate": close,
                                           "Amount": 1000}))
    for contact_id in roles:
        w.org.insert("OpportunityContactRole", {"OpportunityId": opp, "ContactId": contact_id})
    return opp


def hubspot_contact(w: World, email: str) -> dict[str, Any]:
    """The live HubSpot contact with this email (exactly one)."""
    found: list[dict[str, Any]] = [
        dict(w.portal.properties("contacts", i)) for i in w.portal.ids("contacts")]
    (match,) = [p for p in found if p.get("email") == email]
    return match


def hubspot_stage(w: World, email: str) -> str | None:
    return hubspot_contact(w, email).get("lifecyclestage")


def sf_stage(w: World, sobject: str, record_id: str) -> Any:
    return w.org.get(sobject, record_id)["Lifecycle_Stage__c"]


def person_of(w: World, email: str) -> str:
    syncd_id = hubspot_contact(w, email).get("syncd_id")
    if syncd_id:
        return str(syncd_id)
    store = w.store()
    try:
        found = store.unified.by_match_key("person", [email])
        return found[email]
    finally:
        store.close()


def unified_stage(w: World, email: str) -> Any:
    store = w.store()
    try:
        person = person_of(w, email)
        return store.unified.entities("person", [person])[person].fields.get(STAGE)
    finally:
        store.close()


def stage_dates(w: World, email: str) -> dict[str, str]:
    store = w.store()
    try:
        person = person_of(w, email)
        return store.lifecycle.history([person]).get(person, {})
    finally:
        store.close()


@dataclass(frozen=True)
class Seen:
    """One request an emulator answered, with its body and headers."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any
    status: int


@contextmanager
def recording(server: Any) -> Iterator[list[Seen]]:
    """Every request the server answers while inside, in order. The loopback log keeps method,
    path and status only; the app is wrapped to keep the body and headers too."""
    seen: list[Seen] = []
    app: Callable[[Request], tuple[str, Response]] = server.app

    def spy(request: Request) -> tuple[str, Response]:
        endpoint, response = app(request)
        body = json.loads(request.body) if request.body.startswith((b"{", b"[")) else None
        seen.append(Seen(request.method, request.path, dict(request.headers), body,
                         response.status))
        return endpoint, response

    server.app = spy
    try:
        yield seen
    finally:
        server.app = app


def lifecycle_world(tmp_path: Path, ca: ThrowawayCA, stack: ExitStack, *,
                    replace: tuple[str, str] | None = None, append: str = "",
                    extra_config: str = "") -> World:
    """A world whose mappings folder holds the default files with lifecycle.toml edited."""
    folder = tmp_path / "mappings"
    shutil.copytree(DEFAULT_MAPPINGS, folder)
    path = folder / "lifecycle.toml"
    text = path.read_text(encoding="utf-8")
    if replace is not None:
        assert replace[0] in text
        text = text.replace(*replace)
    path.write_text(text + append, encoding="utf-8")
    return stack.enter_context(
        contextmanager(make_world)(tmp_path, ca, mappings_folder=folder,
                                   extra_config=extra_config))


@pytest.fixture
def stack() -> Iterator[ExitStack]:
    with ExitStack() as opened:
        yield opened


@pytest.fixture
def recycling(tmp_path: Path, loopback_ca: ThrowawayCA, stack: ExitStack) -> World:
    return lifecycle_world(tmp_path, loopback_ca, stack, append=RECYCLE_RULES)


def link_mode_world(tmp_path: Path, ca: ThrowawayCA, stack: ExitStack, mode: str) -> World:
    return lifecycle_world(tmp_path, ca, stack,
                           replace=('link_mode = "hybrid"', f'link_mode = "{mode}"'))


# -- each signal ----------------------------------------------------------------------------


def test_hubspot_lifecyclestage_sets_the_stage_on_the_salesforce_lead(world: World) -> None:
    lead_id = lead(world, "ada@example.com")
    contact(world, "ada@example.com", lifecyclestage="marketingqualifiedlead")
    world.sync()
    assert sf_stage(world, "Lead", lead_id) == "MQL"
    assert hubspot_stage(world, "ada@example.com") == "marketingqualifiedlead"
    assert unified_stage(world, "ada@example.com") == "marketingqualifiedlead"


def test_salesforce_lifecycle_stage_field_sets_the_stage_in_hubspot(world: World) -> None:
    lead_id = lead(world, "ada@example.com", Lifecycle_Stage__c="MQL")
    contact(world, "ada@example.com", lifecyclestage="lead")
    world.sync()
    assert hubspot_stage(world, "ada@example.com") == "marketingqualifiedlead"
    assert sf_stage(world, "Lead", lead_id) == "MQL"


def test_any_live_lead_makes_a_hubspot_subscriber_a_lead(world: World) -> None:
    lead_id = lead(world, "ada@example.com")
    contact(world, "ada@example.com", lifecyclestage="subscriber")
    world.sync()
    assert hubspot_stage(world, "ada@example.com") == "lead"
    assert sf_stage(world, "Lead", lead_id) == "Lead"


def test_any_live_contact_makes_a_hubspot_subscriber_a_lead(world: World) -> None:
    contact_id = sf_contact(world, "grace@example.com", account(world))
    contact(world, "grace@example.com", lifecyclestage="subscriber")
    world.sync()
    assert hubspot_stage(world, "grace@example.com") == "lead"
    assert sf_stage(world, "Contact", contact_id) == "Lead"


def test_lead_status_working_contacted_makes_the_person_sql(world: World) -> None:
    lead_id = lead(world, "ada@example.com")
    contact(world, "ada@example.com", lifecyclestage="marketingqualifiedlead")
    world.sync()
    world.clock.advance(minutes=1)
    world.org.update("Lead", lead_id, {"Status": "Working - Contacted"})
    world.sync()
    assert hubspot_stage(world, "ada@example.com") == "salesqualifiedlead"
    assert sf_stage(world, "Lead", lead_id) == "SQL"


def test_conversion_makes_the_person_sql_and_the_converted_lead_is_never_written(
    world: World,
) -> None:
    # The Lead says Customer, but a converted Lead's stage field is history, not a signal.
    lead_id = lead(world, "ada@example.com", Lifecycle_Stage__c="Customer")
    converted = world.org.convert_lead(lead_id)
    with recording(world.salesforce.server) as seen:
        report = world.sync()
    contact_id = str(converted["contactId"])
    assert report.rejected == 0
    assert sf_stage(world, "Contact", contact_id) == "SQL"
    assert hubspot_stage(world, "ada@example.com") == "salesqualifiedlead"
    assert sf_stage(world, "Lead", lead_id) == "Customer"
    assert not [s for s in seen if s.method != "GET" and lead_id in json.dumps(s.body)]


def test_conversion_after_a_sync_writes_the_contact_and_leaves_the_lead(world: World) -> None:
    lead_id = lead(world, "ada@example.com")
    world.sync()
    assert sf_stage(world, "Lead", lead_id) == "Lead"
    world.clock.advance(minutes=1)
    contact_id = str(world.org.convert_lead(lead_id)["contactId"])
    report = world.sync()
    assert report.rejected == 0
    assert sf_stage(world, "Contact", contact_id) == "SQL"
    assert sf_stage(world, "Lead", lead_id) == "Lead"
    assert hubspot_stage(world, "ada@example.com") == "salesqualifiedlead"
    world.reset_counts()
    world.sync()
    assert world.writes() == 0


# -- opportunities, in each link mode -----------------------------------------------------

# (mode, whether a role holder is reached, an account Contact without a role on an opportunity
#  that has roles, an account Contact of an opportunity that has no roles at all)
LINK_MODES = [
    ("contact_roles", True, False, False),
    ("account", True, True, True),
    ("hybrid", True, False, True),
]


@pytest.mark.parametrize(("mode", "holder", "bystander", "roleless"), LINK_MODES)
def test_an_open_opportunity_makes_the_people_it_reaches_opportunity_stage(
    tmp_path: Path, loopback_ca: ThrowawayCA, stack: ExitStack,
    mode: str, holder: bool, bystander: bool, roleless: bool,
) -> None:
    w = link_mode_world(tmp_path, loopback_ca, stack, mode)
    with_roles, without_roles = account(w, "Engines"), account(w, "Looms")
    holder_id = sf_contact(w, "holder@example.com", with_roles)
    bystander_id = sf_contact(w, "bystander@example.com", with_roles)
    roleless_id = sf_contact(w, "roleless@example.com", without_roles)
    opportunity(w, with_roles, roles=(holder_id,))
    opportunity(w, without_roles)
    w.sync()
    for email, record_id, reached in (("holder@example.com", holder_id, holder),
                                      ("bystander@example.com", bystander_id, bystander),
                                      ("roleless@example.com", roleless_id, roleless)):
        expected = ("opportunity", "Opportunity") if reached else ("lead", "Lead")
        assert (hubspot_stage(w, email), sf_stage(w, "Contact", record_id)) == expected, email


@pytest.mark.parametrize(("mode", "holder", "bystander", "roleless"), LINK_MODES)
def test_a_won_opportunity_makes_the_people_it_reaches_customers(
    tmp_path: Path, loopback_ca: ThrowawayCA, stack: ExitStack,
    mode: str, holder: bool, bystander: bool, roleless: bool,
) -> None:
    w = link_mode_world(tmp_path, loopback_ca, stack, mode)
    with_roles, without_roles = account(w, "Engines"), account(w, "Looms")
    holder_id = sf_contact(w, "holder@example.com", with_roles)
    bystander_id = sf_contact(w, "bystander@example.com", with_roles)
    roleless_id = sf_contact(w, "roleless@example.com", without_roles)
    won = opportunity(w, with_roles, roles=(holder_id,))
    won_roleless = opportunity(w, without_roles)
    w.sync()
    w.clock.advance(minutes=1)
    for opp in (won, won_roleless):
        w.org.update("Opportunity", opp, {"StageName": "Closed Won"})
    w.sync()
    for email, record_id, reached in (("holder@example.com", holder_id, holder),
                                      ("bystander@example.com", bystander_id, bystander),
                                      ("roleless@example.com", roleless_id, roleless)):
        expected = ("customer", "Customer") if reached else ("lead", "Lead")
        assert (hubspot_stage(w, email), sf_stage(w, "Contact", record_id)) == expected, email
    w.reset_counts()
    w.sync()
    assert w.writes() == 0


def test_a_contact_role_added_later_reaches_its_holder(world: World) -> None:
    account_id = account(world)
    contact_id = sf_contact(world, "grace@example.com", account_id)
    other = sf_contact(world, "alan@example.com", account_id)
    opp = opportunity(world, account_id, roles=(other,))
    world.sync()
    assert hubspot_stage(world, "grace@example.com") == "lead"
    world.clock.advance(minutes=1)
    world.org.insert("OpportunityContactRole", {"OpportunityId": opp, "ContactId": contact_id})
    world.sync()
    assert hubspot_stage(world, "grace@example.com") == "opportunity"
    assert sf_stage(world, "Contact", contact_id) == "Opportunity"


# -- forward only ---------------------------------------------------------------------------


def test_a_stale_lower_hubspot_value_never_drags_a_person_back(world: World) -> None:
    lead_id = lead(world, "ada@example.com", Status="Working - Contacted")
    hubspot_id = contact(world, "ada@example.com", lifecyclestage="lead")
    world.sync()
    assert hubspot_stage(world, "ada@example.com") == "salesqualifiedlead"
    world.clock.advance(minutes=1)
    # Someone in HubSpot sets the stage back by hand (an import, a UI edit): a stale value.
    world.portal.update("contacts", hubspot_id, {"lifecyclestage": "subscriber"})
    world.sync()
    assert unified_stage(world, "ada@example.com") == "salesqualifiedlead"
    assert hubspot_stage(world, "ada@example.com") == "salesqualifiedlead"
    assert sf_stage(world, "Lead", lead_id) == "SQL"


def test_a_stale_lower_salesforce_value_never_drags_a_person_back(world: World) -> None:
    lead_id = lead(world, "ada@example.com")
    contact(world, "ada@example.com", lifecyclestage="salesqualifiedlead")
    world.sync()
    world.clock.advance(minutes=1)
    world.org.update("Lead", lead_id, {"Lifecycle_Stage__c": "Subscriber"})
    world.sync()
    assert sf_stage(world, "Lead", lead_id) == "SQL"
    assert hubspot_stage(world, "ada@example.com") == "salesqualifiedlead"


# -- recycle rules --------------------------------------------------------------------------


def stage_writes(seen: list[Seen]) -> list[str | None]:
    """The lifecyclestage values HubSpot was sent, in order ("" clears)."""
    values = []
    for request in seen:
        if request.method == "POST" and request.path.endswith("/batch/update"):
            for item in request.body["inputs"]:
                if "lifecyclestage" in item["properties"]:
                    values.append(item["properties"]["lifecyclestage"])
    return values


def test_a_disqualified_lead_recycles_once_with_clear_then_set_in_hubspot(
    recycling: World,
) -> None:
    w = recycling
    lead_id = lead(w, "ada@example.com", Status="Working - Contacted")
    contact(w, "ada@example.com", lifecyclestage="marketingqualifiedlead")
    w.sync()
    assert hubspot_stage(w, "ada@example.com") == "salesqualifiedlead"
    w.clock.advance(minutes=1)
    w.org.update("Lead", lead_id, {"Status": "Closed - Not Converted"})
    w.hubspot.server.reset_counts()
    with recording(w.hubspot.server) as seen:
        w.sync()
    assert hubspot_stage(w, "ada@example.com") == "lead"
    assert sf_stage(w, "Lead", lead_id) == "Lead"
    assert unified_stage(w, "ada@example.com") == "lead"
    assert stage_writes(seen) == ["", "lead"]
    updates = [entry.number for entry in w.hubspot.server.log
               if entry.endpoint == HUBSPOT_BATCH_UPDATE]
    assert len(updates) == 2 and updates[0] < updates[1]
    # It does not fire again: the next pass writes nothing, the stage stays.
    w.reset_counts()
    w.sync()
    assert w.writes() == 0
    assert hubspot_stage(w, "ada@example.com") == "lead"


def test_a_recycled_person_moves_forward_again_on_a_hubspot_mql(recycling: World) -> None:
    w = recycling
    # MQL first reaches HubSpot through syncd's own write, so HubSpot stamps its entry date.
    lead_id = lead(w, "ada@example.com", Lifecycle_Stage__c="MQL")
    hubspot_id = contact(w, "ada@example.com", lifecyclestage="lead")
    w.sync()
    assert hubspot_contact(w, "ada@example.com")["hs_lifecyclestage_marketingqualifiedlead_date"]
    w.clock.advance(minutes=1)
    w.org.update("Lead", lead_id, {"Status": "Working - Contacted"})
    w.sync()
    w.clock.advance(minutes=1)
    w.org.update("Lead", lead_id, {"Status": "Closed - Not Converted"})
    w.sync()
    assert (hubspot_stage(w, "ada@example.com"), sf_stage(w, "Lead", lead_id)) == ("lead", "Lead")
    w.clock.advance(days=3)
    # Re-engagement: a form or a workflow makes the contact an MQL again, and HubSpot stamps
    # the stage's entry date anew (as the emulator's API does; seeding does not stamp it).
    w.portal.update("contacts", hubspot_id, {
        "lifecyclestage": "marketingqualifiedlead",
        "hs_lifecyclestage_marketingqualifiedlead_date": w.clock.now.isoformat(),
    })
    w.sync()
    assert unified_stage(w, "ada@example.com") == "marketingqualifiedlead"
    assert sf_stage(w, "Lead", lead_id) == "MQL"
    assert hubspot_stage(w, "ada@example.com") == "marketingqualifiedlead"
    w.reset_counts()
    w.sync()
    assert w.writes() == 0


def test_a_lost_opportunity_recycles_after_the_days_the_rule_gives(recycling: World) -> None:
    w = recycling
    account_id = account(w)
    contact_id = sf_contact(w, "grace@example.com", account_id)
    opp = opportunity(w, account_id, roles=(contact_id,))
    w.sync()
    assert hubspot_stage(w, "grace@example.com") == "opportunity"
    w.clock.advance(minutes=1)
    closed = w.clock.now.date().isoformat()
    w.org.update("Opportunity", opp, {"StageName": "Closed Lost", "CloseDate": closed})
    w.sync()
    assert hubspot_stage(w, "grace@example.com") == "opportunity"  # not yet: 90 days
    w.clock.advance(days=89)
    w.sync()
    assert hubspot_stage(w, "grace@example.com") == "opportunity"
    w.clock.advance(days=1)
    w.hubspot.server.reset_counts()
    with recording(w.hubspot.server) as seen:
        w.sync()
    assert stage_writes(seen) == ["", "lead"]
    assert hubspot_stage(w, "grace@example.com") == "lead"
    assert sf_stage(w, "Contact", contact_id) == "Lead"
    w.reset_counts()
    w.sync(advance_minutes=60 * 24)
    assert w.writes() == 0
    assert hubspot_stage(w, "grace@example.com") == "lead"


# -- a person in one system only ------------------------------------------------------------


@pytest.mark.parametrize("stage", ["subscriber", "lead"])
def test_a_hubspot_only_person_below_the_handoff_keeps_their_stage(
    world: World, stage: str
) -> None:
    contact(world, "ada@example.com", lifecyclestage=stage)
    world.sync()
    assert unified_stage(world, "ada@example.com") == stage
    assert hubspot_stage(world, "ada@example.com") == stage
    assert world.org.records("Lead") == []


@pytest.mark.parametrize(("stage", "label"), [
    ("marketingqualifiedlead", "MQL"), ("salesqualifiedlead", "SQL"),
    ("opportunity", "Opportunity"), ("customer", "Customer"), ("evangelist", "Evangelist"),
])
def test_a_hubspot_only_person_at_or_past_the_handoff_becomes_a_lead_at_their_stage(
    world: World, stage: str, label: str
) -> None:
    contact(world, "ada@example.com", lifecyclestage=stage)
    world.sync()
    (created,) = world.org.records("Lead")
    assert created["Lifecycle_Stage__c"] == label
    assert hubspot_stage(world, "ada@example.com") == stage
    assert created[SYNCD_ID_FIELD] == person_of(world, "ada@example.com")


def test_a_salesforce_only_lead_is_created_in_hubspot_at_stage_lead(world: World) -> None:
    lead_id = lead(world, "ada@example.com")
    world.sync()
    assert hubspot_stage(world, "ada@example.com") == "lead"
    assert sf_stage(world, "Lead", lead_id) == "Lead"
    assert "lead" in stage_dates(world, "ada@example.com")


def test_a_salesforce_only_sql_lead_is_created_in_hubspot_at_sql(world: World) -> None:
    lead(world, "ada@example.com", Status="Working - Contacted")
    world.sync()
    assert hubspot_stage(world, "ada@example.com") == "salesqualifiedlead"
    world.reset_counts()
    world.sync()
    assert world.writes() == 0


# -- excluded stages ------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["other", "1234567"])
def test_an_unlisted_hubspot_stage_keeps_both_stage_fields_while_other_fields_sync(
    world: World, value: str
) -> None:
    world.portal.add_property("contacts", "lifecyclestage", type="enumeration",
                              field_type="radio", options=(
                                  "subscriber", "lead", "marketingqualifiedlead",
                                  "salesqualifiedlead", "opportunity", "customer",
                                  "evangelist", "other", "1234567"))
    lead_id = lead(world, "ada@example.com", Lifecycle_Stage__c="Subscriber",
                   Status="Working - Contacted", Title="Countess")
    contact(world, "ada@example.com", lifecyclestage=value)
    world.sync()
    assert hubspot_stage(world, "ada@example.com") == value
    assert sf_stage(world, "Lead", lead_id) == "Subscriber"
    assert hubspot_contact(world, "ada@example.com")["jobtitle"] == "Countess"
    assert unified_stage(world, "ada@example.com") is None
    world.reset_counts()
    world.sync()
    assert world.writes() == 0


# -- stage dates ----------------------------------------------------------------------------


def test_the_date_each_stage_was_first_entered_is_kept_across_passes(world: World) -> None:
    lead_id = lead(world, "ada@example.com")
    world.sync()
    first = stage_dates(world, "ada@example.com")
    assert set(first) == {"lead"}
    world.clock.advance(days=2)
    world.org.update("Lead", lead_id, {"Status": "Working - Contacted"})
    sql_at = world.clock.now
    world.sync()
    dates = stage_dates(world, "ada@example.com")
    assert dates["lead"] == first["lead"]
    assert dates["salesqualifiedlead"].startswith(sql_at.date().isoformat())
    world.clock.advance(days=5)
    world.sync()
    assert stage_dates(world, "ada@example.com") == dates


def test_stage_dates_survive_a_recycle_and_the_way_back(recycling: World) -> None:
    w = recycling
    lead_id = lead(w, "ada@example.com", Status="Working - Contacted")
    hubspot_id = contact(w, "ada@example.com", lifecyclestage="marketingqualifiedlead")
    w.sync()
    before = stage_dates(w, "ada@example.com")
    assert {"lead", "marketingqualifiedlead", "salesqualifiedlead"} <= set(before)
    w.clock.advance(days=1)
    w.org.update("Lead", lead_id, {"Status": "Closed - Not Converted"})
    w.sync()
    w.clock.advance(days=10)
    w.portal.update("contacts", hubspot_id, {"lifecyclestage": "marketingqualifiedlead"})
    w.sync()
    w.clock.advance(days=1)
    w.org.update("Lead", lead_id, {"Status": "Working - Contacted"})
    w.sync()
    assert unified_stage(w, "ada@example.com") == "salesqualifiedlead"
    assert stage_dates(w, "ada@example.com") == before
