"""Credits per opportunity and model, recomputed only where inputs changed, and the write-back
values; on a store built by direct inserts (`Book`) and against both emulators (`world`)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

from syncd.attribution import MODELS, AttributionSettings, Touch
from syncd.attribution_mapping import load_attribution
from syncd.credits import CreditReport, Desired, compute_credits, desired_writes
from syncd.errors import MappingError
from syncd.model import Page, Record
from syncd.store import Store, iso
from syncd.store.attribution import AttributionStore, TouchRow
from syncd.store.unified import Entity, Link
from tests.harness import World

D = Decimal
DAY0 = datetime(2025, 1, 1, tzinfo=UTC)
Credits = Callable[[str, str], dict[str, Decimal]]


def _sf_time(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%S.000+0000")


class Book:
    """A store filled by direct inserts: people, accounts, opportunities and touchpoints."""

    def __init__(self, tmp_path: Path, settings: AttributionSettings | None = None) -> None:
        self.store = Store(tmp_path / "syncd.db")
        self.unified = self.store.unified
        self.attribution = AttributionStore(self.store.db.conn)
        self.settings = settings or AttributionSettings()
        self.run = 1
        self.touches = 0
        self.last: CreditReport | None = None

    def _source(self, system: str, obj: str, record_id: str, data: dict[str, Any],
                deleted: bool = False) -> None:
        record = Record(system, obj, record_id, DAY0 + timedelta(seconds=self.run), data,
                        deleted=deleted)
        self.store.save_page(self.run, system, Page(obj, [record], cursor=str(self.run)))

    def _entity(self, kind: str, entity_id: str, fields: dict[str, Any],
                match_key: str | None = None, account: str | None = None) -> None:
        with self.store.transaction():
            self.unified.save_entities([Entity(kind, entity_id, match_key, fields, {}, None,
                                               self.run, self.run, account)])

    def _link(self, obj: str, record_id: str, kind: str, entity_id: str) -> None:
        with self.store.transaction():
            self.unified.save_links([Link("salesforce", obj, record_id, kind, entity_id)],
                                    self.run)

    def account(self, entity_id: str) -> None:
        self._entity("account", entity_id, {"name": entity_id})

    def person(self, entity_id: str, *, contact: str, account: str | None = None,
               email: str | None = None) -> None:
        """A person with a Salesforce Contact (of `account`, an account entity)."""
        self._entity("person", entity_id, {"email": email}, email, account)
        self._source("salesforce", "Contact", contact,
                     {"Id": contact, "AccountId": account, "Email": email})
        self._link("Contact", contact, "person", entity_id)

    def opportunity(self, entity_id: str, sf_id: str, *, created: datetime, close: date,
                    stage: str, amount: str, account: str | None = None,
                    roles: Iterable[str] = ()) -> None:
        self._entity("opportunity", entity_id, {
            "name": entity_id, "amount": D(amount), "closedate": close.isoformat(),
            "stage": stage, "_created": _sf_time(created)}, account=account)
        self._source("salesforce", "Opportunity", sf_id, {
            "Id": sf_id, "CreatedDate": _sf_time(created), "CloseDate": close.isoformat(),
            "Amount": float(amount)})
        self._link("Opportunity", sf_id, "opportunity", entity_id)
        with self.store.transaction():
            self.unified.save_roles(
                (entity_id, person, None, False, f"00K{entity_id}{person}") for person in roles)

    def update_opportunity(self, entity_id: str, **fields: Any) -> None:
        entity = self.unified.entities("opportunity", [entity_id])[entity_id]
        self._entity("opportunity", entity_id, {**entity.fields, **fields},
                     account=entity.account_id)

    def touch(self, person: str | None, at: datetime, kind: str, label: str) -> str:
        self.touches += 1
        touch_id = f"test:{kind}:{self.touches:04d}"
        row = TouchRow(touch_id, person, iso(at), kind, label, kind in ("task", "event"),
                       f"{self.touches:04d}")
        with self.store.transaction():
            self.attribution.save_touchpoints([row], self.run)
        return touch_id

    def campaign(self, sf_id: str, name: str) -> None:
        self._source("salesforce", "Campaign", sf_id, {"Id": sf_id, "Name": name})

    def next_run(self) -> None:
        self.run += 1

    def compute(self, run_start: datetime = DAY0 + timedelta(days=400), *,
                touched: Iterable[str] = (), everyone_touched: bool = False) -> Credits:
        self.last = compute_credits(self.store, self.settings, run_start, self.run,
                                    touched=touched, everyone_touched=everyone_touched)
        return self.credits

    def credits(self, opportunity: str, model: str) -> dict[str, Decimal]:
        rows = self.attribution.credits(opportunity, model)
        labels = self.attribution.touchpoints(r.touchpoint_id for r in rows)
        return {labels[r.touchpoint_id].label: D(repr(r.amount)).quantize(D("0.01"))
                for r in rows}

    def desired(self, changes: CreditReport | None = None) -> Desired:
        return desired_writes(self.store, self.settings, changes)


def small_book(tmp_path: Path) -> Book:
    """Two won opportunities on two people, and one open one."""
    book = Book(tmp_path)
    book.person("p1", contact="003P1")
    book.person("p2", contact="003P2")
    created = DAY0 + timedelta(days=10)
    book.opportunity("o1", "006O1", created=created, close=date(2025, 2, 1), stage="closedwon",
                     amount="1000", roles=["p1"])
    book.opportunity("o2", "006O2", created=created, close=date(2025, 2, 1), stage="closedwon",
                     amount="500", roles=["p2"])
    book.opportunity("o3", "006O3", created=created, close=date(2025, 3, 1),
                     stage="qualifiedtobuy", amount="200", roles=["p1", "p2"])
    book.touch("p1", DAY0 + timedelta(days=1), "form_submission", "Spring Webinar")
    book.touch("p2", DAY0 + timedelta(days=2), "campaign_response", "spring webinar")
    book.touch("p2", DAY0 + timedelta(days=3), "email_click", "Newsletter")
    book.campaign("701W", "SPRING WEBINAR")
    book.campaign("701N", "Newsletter")
    book.campaign("701X", "Nothing yet")
    return book


# -- incremental recomputation ------------------------------------------------------------------


def test_every_model_is_written_for_every_opportunity_with_touches(tmp_path: Path) -> None:
    book = small_book(tmp_path)
    book.compute()
    assert book.last is not None and book.last.recomputed == {"o1", "o2", "o3"}
    for model in MODELS:
        assert book.credits("o1", model) == {"Spring Webinar": D("1000.00")}


def test_a_second_computation_with_no_change_recomputes_nothing(tmp_path: Path) -> None:
    book = small_book(tmp_path)
    book.compute()
    book.next_run()
    book.compute()
    assert book.last is not None and book.last.recomputed == set()
    assert book.desired(book.last) == Desired({}, {}, {}, full=False)


def test_a_full_computation_names_no_people_and_everyone_touched_names_them_all(
    tmp_path: Path,
) -> None:
    """A backfill's credits are computed in full: its report holds no people (the write-back
    takes everyone; a million ids would be held for nothing). A later pass after a first
    touchpoint build (TouchReport.everyone) names everyone with a touch."""
    book = small_book(tmp_path)
    book.compute(touched=["p1", "p2"])
    assert book.last is not None and book.last.full and book.last.people == set()
    assert book.desired(book.last).person_revenue == {"p1": D("1000.00"), "p2": D("500.00")}
    book.next_run()
    book.compute(everyone_touched=True)
    assert book.last is not None and not book.last.full
    assert book.last.people == {"p1", "p2"} and book.last.recomputed == set()


def test_a_change_to_one_opportunity_recomputes_only_what_depends_on_it(tmp_path: Path) -> None:
    book = small_book(tmp_path)
    book.compute()
    book.next_run()
    book.update_opportunity("o2", amount=D("800"))
    book.compute()
    assert book.last is not None and book.last.recomputed == {"o2"}
    # o2 (p2, won, 800): w_shaped: the response (day 2) is first + lead creation 60%; the click
    # (day 3) is the latest before CreatedDate: opportunity creation 30%; rest 10% has no
    # other touch: split between the two, 5% each. Response 65% = 520, click 35% = 280.
    assert book.credits("o2", "w_shaped") == {"spring webinar": D("520.00"),
                                              "Newsletter": D("280.00")}
    desired = book.desired(book.last)
    assert desired.touch_labels == {"o2": ("spring webinar", "Newsletter")}
    # Campaign "SPRING WEBINAR" = p1's Spring Webinar in o1 (1000) + p2's response in o2 (520).
    assert desired.campaign_revenue == {"701W": D("1520.00"), "701N": D("280.00")}
    assert desired.person_revenue == {"p2": D("800.00")}


def test_a_new_touch_recomputes_the_opportunities_of_its_person(tmp_path: Path) -> None:
    book = small_book(tmp_path)
    book.compute()
    book.next_run()
    book.touch("p1", DAY0 + timedelta(days=4), "task", "Sales: Call")
    book.compute()
    assert book.last is not None and book.last.recomputed == {"o1", "o3"}
    # o1: Spring Webinar first + lead creation + opportunity creation... the Call (day 4) is
    # the latest before CreatedDate (day 10): Webinar 60%, Call 30%, rest 10% split: 65/35.
    assert book.credits("o1", "w_shaped") == {"Spring Webinar": D("650.00"),
                                              "Sales: Call": D("350.00")}


def test_revenue_that_falls_to_zero_is_given_as_zero(tmp_path: Path) -> None:
    book = small_book(tmp_path)
    book.compute()
    assert book.desired().person_revenue == {"p1": D("1000.00"), "p2": D("500.00")}
    book.next_run()
    book.update_opportunity("o2", stage="closedlost")
    book.compute()
    desired = book.desired(book.last)
    assert desired.person_revenue == {"p2": D("0.00")}
    assert desired.campaign_revenue == {"701W": D("1000.00"), "701N": D("0.00")}


def test_campaign_revenue_matches_touch_labels_case_insensitively(tmp_path: Path) -> None:
    book = small_book(tmp_path)
    book.compute()
    # o1: Spring Webinar 1000 (p1's form). o2 (500): w_shaped response 65% = 325, click 175.
    assert book.desired().campaign_revenue == {
        "701W": D("1325.00"), "701N": D("175.00"), "701X": D("0.00")}


def test_a_touch_an_open_window_grows_to_take_in_recomputes_its_opportunity(
    tmp_path: Path,
) -> None:
    book = small_book(tmp_path)
    meeting = DAY0 + timedelta(days=50)
    book.touch("p1", meeting, "event", "Sales: Meeting")  # scheduled ahead of the run
    book.compute(run_start=DAY0 + timedelta(days=40))
    assert book.credits("o3", "last_touch") == {"Newsletter": D("200.00")}
    book.next_run()
    book.compute(run_start=DAY0 + timedelta(days=60))
    assert book.last is not None and book.last.recomputed == {"o3"}
    assert book.credits("o3", "last_touch") == {"Sales: Meeting": D("200.00")}


def test_changed_settings_recompute_every_opportunity(tmp_path: Path) -> None:
    book = small_book(tmp_path)
    book.compute()
    book.next_run()
    book.settings = AttributionSettings(include_sales_touches=False, lookback_days=30)
    book.compute()
    assert book.last is not None and book.last.full
    assert book.last.recomputed == {"o1", "o2", "o3"}


def test_sales_touches_are_left_out_when_the_settings_say_so(tmp_path: Path) -> None:
    book = small_book(tmp_path)
    book.settings = AttributionSettings(include_sales_touches=False)
    book.touch("p1", DAY0 + timedelta(days=4), "task", "Sales: Call")
    book.compute()
    assert book.credits("o1", "linear") == {"Spring Webinar": D("1000.00")}


def test_an_opportunity_merged_away_loses_its_credits(tmp_path: Path) -> None:
    book = small_book(tmp_path)
    book.compute()
    book.next_run()
    entity = book.unified.entities("opportunity", ["o2"])["o2"]
    entity.merged_into, entity.updated_run = "o1", book.run
    with book.store.transaction():
        book.unified.save_entities([entity])
    book.compute()
    assert book.last is not None and book.last.dropped == {"o2"}
    assert book.attribution.credits("o2") == []
    assert book.desired(book.last).person_revenue == {"p2": D("0.00")}


# -- settings -------------------------------------------------------------------------------------


def test_the_installed_attribution_settings_are_the_architecture_defaults() -> None:
    assert load_attribution(None) == AttributionSettings()
    shipped = Path(__file__).parent.parent / "mappings"
    assert load_attribution(shipped) == AttributionSettings()
    default = Path(__file__).parent.parent / "syncd" / "default_mappings" / "attribution.toml"
    assert (shipped / "attribution.toml").read_text() == default.read_text()


def test_a_wrong_attribution_file_lists_every_problem_with_file_section_and_key(
    tmp_path: Path,
) -> None:
    (tmp_path / "attribution.toml").write_text(
        '[attribution]\nlookback_days = -3\nlink_mode = "acount"\n'
        'include_sales_touches = "yes"\nwritten_model = "w-shaped"\nlookbak = 2\n'
        "[custom]\nfirst = 0.5\nrest = 0.9\n"
    )
    with pytest.raises(MappingError) as raised:
        load_attribution(tmp_path)
    lines = raised.value.lines()
    folder = tmp_path.name
    assert lines == [
        f'{folder}/attribution.toml [attribution] lookbak: not a key of [attribution] (keys: '
        'lookback_days, link_mode, include_sales_touches, written_model). '
        'Did you mean "lookback_days"?',
        f"{folder}/attribution.toml [custom]: the shares must add up to 1; "
        "0.5 + 0.3 + 0.3 + 0 + 0.9 = 2.0. Lower or raise one of them.",
        f"{folder}/attribution.toml [attribution] lookback_days: must be a whole number of "
        "days, 1 or more (365 is a year); not -3.",
        f"{folder}/attribution.toml [attribution] link_mode: 'acount' is not one of "
        'contact_roles, account, hybrid. Did you mean "account"?',
        f"{folder}/attribution.toml [attribution] written_model: 'w-shaped' is not one of "
        "first_touch, last_touch, linear, u_shaped, w_shaped, full_path, time_decay, custom. "
        'Did you mean "w_shaped"?',
        f"{folder}/attribution.toml [attribution] include_sales_touches: must be true or "
        "false, not 'yes'.",
    ]


def test_custom_weights_load_exactly(tmp_path: Path) -> None:
    (tmp_path / "attribution.toml").write_text(
        '[attribution]\nwritten_model = "custom"\n'
        "[custom]\nfirst = 0.1\nlead_creation = 0.2\nopportunity_creation = 0.3\n"
        "close = 0.3\nrest = 0.1\n"
    )
    settings = load_attribution(tmp_path)
    assert settings.written_model == "custom"
    assert settings.custom.close == D("0.3")


# -- against both emulators -----------------------------------------------------------------------


def seed_world(world: World) -> dict[str, str]:
    """Two accounts, four people, three opportunities (won with roles, won on the account
    alone, open), and touches from both systems."""
    org, portal, now = world.org, world.portal, world.clock.now
    acme = org.insert("Account", {"Name": "Acme", "Website": "acme.example"})
    globex = org.insert("Account", {"Name": "Globex", "Website": "globex.example"})
    ada = org.insert("Contact", {"LastName": "Lovelace", "Email": "ada@acme.example",
                                 "AccountId": acme})
    bob = org.insert("Contact", {"LastName": "Babbage", "Email": "bob@acme.example",
                                 "AccountId": acme})
    cy = org.insert("Contact", {"LastName": "Cyr", "Email": "cy@globex.example",
                                "AccountId": globex})
    won = org.insert("Opportunity", {"Name": "Acme won", "StageName": "Closed Won",
                                     "CloseDate": (now + timedelta(days=1)).date().isoformat(),
                                     "Amount": 1000.0, "AccountId": acme})
    org.insert("OpportunityContactRole", {"OpportunityId": won, "ContactId": ada})
    fallback = org.insert("Opportunity", {"Name": "Globex won", "StageName": "Closed Won",
                                          "CloseDate": (now + timedelta(days=1)).date()
                                          .isoformat(), "Amount": 333.33, "AccountId": globex})
    open_ = org.insert("Opportunity", {"Name": "Acme open", "StageName": "Prospecting",
                                       "CloseDate": (now + timedelta(days=90)).date()
                                       .isoformat(), "Amount": 50.0, "AccountId": acme})
    org.insert("OpportunityContactRole", {"OpportunityId": open_, "ContactId": bob})
    webinar = org.insert("Campaign", {"Name": "Spring Webinar"})
    org.insert("CampaignMember", {"CampaignId": webinar, "ContactId": ada,
                                  "Status": "Responded"}, at=now - timedelta(days=40))
    org.insert("CampaignMember", {"CampaignId": webinar, "ContactId": cy, "Status": "Sent"})
    org.insert("Task", {"WhoId": ada, "Subject": "Call", "Type": "Call"},
               at=now - timedelta(days=20))
    org.insert("Event", {"WhoId": cy, "Subject": "Demo",
                         "StartDateTime": _sf_time(now - timedelta(days=10)),
                         "EndDateTime": _sf_time(now - timedelta(days=10, hours=-1))})
    form = portal.add_form("spring webinar")
    portal.add_submission(form, {"email": "Cy@Globex.example"},
                          submitted_at=now - timedelta(days=30))
    portal.add_submission(form, {"email": "bob@acme.example"},
                          submitted_at=now - timedelta(days=5))
    news = portal.add_email_campaign("Newsletter")
    portal.add_click(news, "ada@acme.example", created=now - timedelta(days=60))
    return {"won": won, "fallback": fallback, "open": open_, "webinar": webinar,
            "ada": ada, "bob": bob, "cy": cy}


def independent_w_shaped(touches: list[Touch], created: datetime,
                         amount: Decimal) -> dict[str, Decimal]:
    """W-shaped written out the plain way, for checking the engine against."""
    touches = sorted(touches, key=lambda t: (t.at, t.kind, t.source_id))
    first = touches[0]
    lead = next((t for t in touches if t.kind in ("form_submission", "campaign_response")), None)
    opp = next((t for t in reversed(touches) if t.at <= created), None)
    share = {t.id: Fraction(0) for t in touches}
    rest = Fraction(1, 10)
    holders = set()
    for milestone in (first, lead, opp):
        if milestone is None:
            rest += Fraction(3, 10)
        else:
            share[milestone.id] += Fraction(3, 10)
            holders.add(milestone.id)
    others = [t.id for t in touches if t.id not in holders] or sorted(holders)
    for touch_id in others:
        share[touch_id] += rest / len(others)
    # Whole cents, the cents lost to rounding down to the largest remainders (earliest first).
    exact = {k: v * Fraction(amount) * 100 for k, v in share.items() if v}
    cents = {k: int(v) for k, v in exact.items()}
    spare = int(amount * 100) - sum(cents.values())
    for k in sorted(exact, key=lambda k: -(exact[k] - cents[k]))[:spare]:
        cents[k] += 1
    return {k: D(c) / 100 for k, c in cents.items()}


def test_credits_from_the_emulators_equal_an_independent_computation(world: World) -> None:
    ids = seed_world(world)
    first = world.sync()  # the pass computes touchpoints and credits, and writes them back
    store = world.store()
    try:
        settings = AttributionSettings()
        attribution = AttributionStore(store.db.conn)
        links = store.unified.links(
            [("salesforce", "Opportunity", ids[n]) for n in ("won", "fallback", "open")]
            + [("salesforce", "Contact", ids[n]) for n in ("ada", "bob", "cy")])
        opp = {n: links[("salesforce", "Opportunity", ids[n])].entity_id
               for n in ("won", "fallback", "open")}
        person = {n: links[("salesforce", "Contact", ids[n])].entity_id
                  for n in ("ada", "bob", "cy")}
        assert first.attributed == len(opp)
        touches_of = attribution.touchpoints_of(person.values())
        rows = {r.id: r for found in touches_of.values() for r in found}
        # won: Ada's contact role: the click (60 days ago), the response (40), the Call (20).
        # fallback (no contact role): every Globex Contact, Cy: the form (30), the Demo (10).
        for name, who, labels, amount in (
            ("won", "ada", {"Newsletter", "Spring Webinar", "Sales: Call"}, D("1000")),
            ("fallback", "cy", {"spring webinar", "Sales: Event"}, D("333.33")),
        ):
            key = ("salesforce", "Opportunity", ids[name])
            created = datetime.fromisoformat(store.records([key])[key]["data"]["CreatedDate"])
            touches = [Touch(r.id, datetime.fromisoformat(r.at.replace("Z", "+00:00")), r.kind,
                             r.label, r.sales, r.source_id) for r in touches_of[person[who]]]
            assert {t.label for t in touches} == labels
            expected = independent_w_shaped(touches, created, amount)
            got = {r.touchpoint_id: D(repr(r.amount)).quantize(D("0.01"))
                   for r in attribution.credits(opp[name], "w_shaped")}
            assert got == expected
            assert sum(got.values()) == amount
        desired = desired_writes(store, settings)
        assert desired.touch_labels[opp["won"]] == ("Newsletter", "Sales: Call")
        assert desired.touch_labels[opp["open"]] == ("spring webinar", "spring webinar")
        webinar_revenue = sum(
            (D(repr(r.amount)) for name in ("won", "fallback")
             for r in attribution.credits(opp[name], "w_shaped")
             if rows[r.touchpoint_id].label.lower() == "spring webinar"), D(0))
        assert desired.campaign_revenue == {ids["webinar"]: webinar_revenue.quantize(D("0.01"))}
        assert desired.person_revenue[person["ada"]] == D("1000.00")
        assert desired.person_revenue[person["cy"]] == D("333.33")
        # What the pass wrote to both CRMs equals the independent computation.
        won = world.org.get("Opportunity", ids["won"])
        assert (won["First_Touch_Campaign__c"], won["Last_Touch_Campaign__c"]) == (
            "Newsletter", "Sales: Call")
        webinar = world.org.get("Campaign", ids["webinar"])
        assert D(repr(webinar["Attributed_Revenue__c"])).quantize(D("0.01")) == (
            webinar_revenue.quantize(D("0.01")))
        deal_id = store.unified.hubspot_records("opportunity", [opp["won"]])[opp["won"]]
        assert deal_id is not None
        deal = world.portal.properties("deals", deal_id)
        assert (deal["syncd_first_touch_campaign"], deal["syncd_last_touch_campaign"]) == (
            "Newsletter", "Sales: Call")
        ada = store.unified.hubspot_records("person", [person["ada"]])[person["ada"]]
        assert ada is not None
        assert D(world.portal.properties("contacts", ada)["syncd_attributed_revenue"]) == D(1000)
        # A second pass with nothing new recomputes and writes nothing.
        world.reset_counts()
        again = world.sync()
        assert again.attributed == 0 and world.writes() == 0
    finally:
        store.close()
