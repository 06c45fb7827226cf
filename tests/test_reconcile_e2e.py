"""Reconcile against both emulators: one dataset, decided field by field, written both ways."""

from __future__ import annotations

import threading
import time
from collections.abc import Generator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

import pytest

from connectors.loopback import ThrowawayCA
from syncd.mapping_files import DEFAULTS_FOLDER
from tests.harness import World, make_world


def lead(w: World, email: str, **fields: object) -> str:
    return str(w.org.insert("Lead", {"LastName": "Lovelace", "Company": "Analytical Engines",
                                     "Email": email, **fields}))


def contact(w: World, email: str, **props: str) -> str:
    return str(w.portal.create("contacts", {"email": email, **props}))


def test_two_passes_converge_and_the_second_writes_nothing(world: World) -> None:
    lead(world, "ada@example.com", FirstName="Ada", Title="Countess")
    contact(world, "grace@example.com", firstname="Grace")
    world.sync()
    world.reset_counts()
    world.sync()
    assert world.writes() == 0
    (hubspot_ada,) = [i for i in world.portal.ids("contacts")
                      if world.portal.properties("contacts", i)["email"] == "ada@example.com"]
    ada = world.portal.properties("contacts", hubspot_ada)
    assert (ada["firstname"], ada["jobtitle"]) == ("Ada", "Countess")
    assert ada["syncd_id"]


def test_prefer_salesforce_wins_when_both_systems_edit_the_same_field(world: World) -> None:
    lead_id = lead(world, "ada@example.com", FirstName="Ada")
    world.sync()
    hubspot_id = world.portal.ids("contacts")[0]
    world.clock.advance(minutes=1)
    world.org.update("Lead", lead_id, {"FirstName": "Augusta"})
    world.clock.advance(minutes=1)
    world.portal.update("contacts", hubspot_id, {"firstname": "Ada B."})
    world.sync()
    assert world.portal.properties("contacts", hubspot_id)["firstname"] == "Augusta"
    assert world.org.get("Lead", lead_id)["FirstName"] == "Augusta"


def test_two_way_takes_the_later_edit_and_writes_it_to_the_other_system(world: World) -> None:
    lead_id = lead(world, "ada@example.com", Title="Countess")
    world.sync()
    hubspot_id = world.portal.ids("contacts")[0]
    world.clock.advance(minutes=1)
    world.org.update("Lead", lead_id, {"Title": "Analyst"})
    world.clock.advance(minutes=1)
    world.portal.update("contacts", hubspot_id, {"jobtitle": "Mathematician"})
    world.sync()
    assert world.org.get("Lead", lead_id)["Title"] == "Mathematician"
    assert world.portal.properties("contacts", hubspot_id)["jobtitle"] == "Mathematician"
    world.reset_counts()
    world.sync()
    assert world.writes() == 0


def test_a_blank_never_overwrites_a_value_under_keep(world: World) -> None:
    lead_id = lead(world, "ada@example.com", Phone="+44 20 7946 0000")
    world.sync()
    hubspot_id = world.portal.ids("contacts")[0]
    world.clock.advance(minutes=1)
    world.portal.update("contacts", hubspot_id, {"phone": ""})
    world.sync()
    assert world.org.get("Lead", lead_id)["Phone"] == "+44 20 7946 0000"
    assert world.portal.properties("contacts", hubspot_id)["phone"] == "+44 20 7946 0000"


# -- a mixed org converges ---------------------------------------------------------------------


def snapshot(w: World) -> dict[tuple[str, str], dict[str, Any]]:
    """Every record of both systems, as they stand: the state a pass is judged by."""
    state: dict[tuple[str, str], dict[str, Any]] = {}
    for object_type in ("contacts", "companies", "deals"):
        for record_id in w.portal.ids(object_type):
            state[(object_type, record_id)] = w.portal.properties(object_type, record_id)
    for sobject in ("Lead", "Contact", "Account", "Opportunity"):
        for record in w.org.records(sobject):
            state[(sobject, record["Id"])] = dict(record)
    return state


def changed_fields(
    before: dict[tuple[str, str], dict[str, Any]], after: dict[tuple[str, str], dict[str, Any]]
) -> dict[tuple[str, str], dict[str, Any]]:
    """Record -> {field: new value} for what differs, modification stamps left out."""
    stamps = {"lastmodifieddate", "hs_lastmodifieddate", "LastModifiedDate", "SystemModstamp"}
    diff: dict[tuple[str, str], dict[str, Any]] = {}
    for key in before.keys() | after.keys():
        old, new = before.get(key, {}), after.get(key, {})
        fields = {k: new.get(k) for k in old.keys() | new.keys()
                  if k not in stamps and old.get(k) != new.get(k)}
        if fields:
            diff[key] = fields
    return diff


def hubspot_by(w: World, object_type: str, name: str, value: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = [
        w.portal.properties(object_type, i) for i in w.portal.ids(object_type)
        if w.portal.properties(object_type, i).get(name) == value]
    (only,) = found
    return only


def mixed_org(w: World) -> dict[str, str]:
    """People in both systems, in one only (Lead, Contact, HubSpot contact), accounts with and
    without a Website, opportunities with and without contact roles."""
    acme = str(w.org.insert("Account", {"Name": "Acme", "Website": "https://www.Acme.com/x"}))
    plain = str(w.org.insert("Account", {"Name": "No Site Ltd"}))
    w.portal.create("companies", {"name": "Acme Inc", "domain": "acme.com"})
    both = str(w.org.insert("Contact", {"LastName": "Both", "FirstName": "Bo",
                                        "Email": "both@acme.com", "AccountId": acme}))
    w.portal.create("contacts", {"email": "both@acme.com", "firstname": "Bob", "jobtitle": "CTO"})
    w.portal.create("contacts", {"email": "hub@only.com", "firstname": "Hub"})
    lead(w, "lead@only.com", FirstName="Lea")
    w.org.insert("Contact", {"LastName": "Conty", "Email": "contact@only.com", "AccountId": plain})
    big = str(w.org.insert("Opportunity", {"Name": "Big deal", "StageName": "Prospecting",
                                           "CloseDate": "2026-07-01", "Amount": 1000,
                                           "AccountId": acme}))
    w.org.insert("Opportunity", {"Name": "Small deal", "StageName": "Closed Won",
                                 "CloseDate": "2026-05-01", "Amount": 10, "AccountId": plain})
    w.org.insert("OpportunityContactRole", {"OpportunityId": big, "ContactId": both,
                                            "Role": "Decision Maker"})
    return {"both": both, "acme": acme, "plain": plain, "big": big}


def test_a_mixed_org_converges_in_two_passes_and_a_third_writes_one_edit(world: World) -> None:
    ids = mixed_org(world)
    world.sync()
    world.reset_counts()
    settled = snapshot(world)
    world.sync()
    assert world.writes() == 0
    assert changed_fields(settled, snapshot(world)) == {}
    assert len(world.portal.ids("contacts")) == 4  # both, HubSpot-only, Lead, Contact
    assert len(world.portal.ids("companies")) == 2  # Acme matched by domain, No Site created
    assert len(world.portal.ids("deals")) == 2
    assert hubspot_by(world, "contacts", "email", "both@acme.com")["firstname"] == "Bo"
    assert world.org.get("Contact", ids["both"])["Title"] == "CTO"

    world.clock.advance(minutes=1)
    world.org.update("Contact", ids["both"], {"Title": "Chief Technologist"})
    before = snapshot(world)
    world.reset_counts()
    world.sync()
    (hubspot_id,) = [i for i in world.portal.ids("contacts")
                     if world.portal.properties("contacts", i)["email"] == "both@acme.com"]
    assert changed_fields(before, snapshot(world)) == {
        ("contacts", hubspot_id): {"jobtitle": "Chief Technologist"}
    }
    assert world.writes() == 1
    assert world.hubspot.counts["POST /crm/v3/objects/{object_type}/batch/update"] == 1


# -- every rule, when both systems edit the same field -----------------------------------------


def person_mapping(folder: Path, field: str, **keys: str) -> Path:
    """A mappings folder whose person.toml is the shipped one with `[fields.<field>]` keys
    replaced or added (rule, blank, ...)."""
    folder.mkdir(parents=True, exist_ok=True)
    text = (DEFAULTS_FOLDER / "person.toml").read_text(encoding="utf-8")
    head, _, rest = text.partition(f"[fields.{field}]\n")
    body, sep, tail = rest.partition("\n\n")
    lines = [line for line in body.splitlines() if line.split(" = ")[0] not in keys]
    lines += [f'{key} = "{value}"' for key, value in keys.items()]
    (folder / "person.toml").write_text(
        head + f"[fields.{field}]\n" + "\n".join(lines) + sep + tail, encoding="utf-8"
    )
    return folder


@contextmanager
def world_with(tmp_path: Path, ca: ThrowawayCA, field: str, **keys: str) -> Iterator[World]:
    """A world whose person.toml changes one field's keys (make_world is a generator: closing
    it stops the emulators)."""
    worlds = cast(Generator[World, None, None], make_world(
        tmp_path, ca, mappings_folder=person_mapping(tmp_path / "maps", field, **keys)))
    try:
        yield next(worlds)
    finally:
        worlds.close()


def edit_both(
    w: World, lead_id: str, hubspot_id: str, later: str, **values: dict[str, str]
) -> None:
    """Salesforce and HubSpot both edit, a minute apart; `later` says who edits last."""
    edits = [("salesforce", values["salesforce"]), ("hubspot", values["hubspot"])]
    for system, change in edits if later == "hubspot" else edits[::-1]:
        w.clock.advance(minutes=1)
        if system == "salesforce":
            w.org.update("Lead", lead_id, change)
        else:
            w.portal.update("contacts", hubspot_id, change)


@pytest.mark.parametrize(
    ("rule", "later", "hubspot_shows", "salesforce_shows", "unified"),
    [
        ("two-way", "hubspot", "Mathematician", "Mathematician", "Mathematician"),
        ("two-way", "salesforce", "Analyst", "Analyst", "Analyst"),
        ("prefer-salesforce", "hubspot", "Analyst", "Analyst", "Analyst"),
        ("prefer-hubspot", "salesforce", "Mathematician", "Mathematician", "Mathematician"),
        ("always-salesforce", "hubspot", "Analyst", "Analyst", "Analyst"),
        ("always-hubspot", "salesforce", "Mathematician", "Mathematician", "Mathematician"),
        # none: decided like two-way for the unified dataset, written to neither system
        ("none", "hubspot", "Mathematician", "Analyst", "Mathematician"),
    ],
)
def test_the_same_field_edited_in_both_systems_resolves_per_its_rule(
    tmp_path: Path, loopback_ca: ThrowawayCA, rule: str, later: str, hubspot_shows: str,
    salesforce_shows: str, unified: str,
) -> None:
    with world_with(tmp_path, loopback_ca, "jobtitle", rule=rule) as w:
        lead_id = lead(w, "ada@example.com", Title="Countess")
        hubspot_id = contact(w, "ada@example.com", jobtitle="Countess")
        w.sync()
        edit_both(w, lead_id, hubspot_id, later, salesforce={"Title": "Analyst"},
                  hubspot={"jobtitle": "Mathematician"})
        w.sync()
        assert w.portal.properties("contacts", hubspot_id).get("jobtitle") == hubspot_shows
        assert w.org.get("Lead", lead_id)["Title"] == salesforce_shows
        store = w.store()
        try:
            (person,) = store.unified.entity_ids("person")
            assert store.unified.entities("person", [person])[person].fields["jobtitle"] == unified
            trail = [(row["old_value"], row["new_value"], row["rule"])
                     for row in store.unified.audit_of("person", person)
                     if row["field"] == "jobtitle"]
            assert trail == [(None, "Countess", rule), ("Countess", unified, rule)]
        finally:
            store.close()
        w.reset_counts()
        w.sync()
        assert w.writes() == 0


# -- blanks --------------------------------------------------------------------------------------


def test_a_blank_in_salesforce_never_overwrites_hubspot_under_keep(world: World) -> None:
    lead_id = lead(world, "ada@example.com", Title="Countess")
    world.sync()
    hubspot_id = world.portal.ids("contacts")[0]
    world.clock.advance(minutes=1)
    world.org.update("Lead", lead_id, {"Title": None})
    world.sync()
    assert world.portal.properties("contacts", hubspot_id)["jobtitle"] == "Countess"
    assert world.org.get("Lead", lead_id)["Title"] == "Countess"


def test_prefer_salesforce_fills_a_blank_salesforce_value_from_hubspot(world: World) -> None:
    lead_id = lead(world, "ada@example.com")
    contact(world, "ada@example.com", firstname="Ada")
    world.sync()
    assert world.org.get("Lead", lead_id)["FirstName"] == "Ada"


def test_a_blank_clears_the_other_system_under_blank_clear(
    tmp_path: Path, loopback_ca: ThrowawayCA
) -> None:
    with world_with(tmp_path, loopback_ca, "phone", blank="clear") as w:
        lead_id = lead(w, "ada@example.com", Phone="+44 20 7946 0000")
        w.sync()
        hubspot_id = w.portal.ids("contacts")[0]
        w.clock.advance(minutes=1)
        w.portal.update("contacts", hubspot_id, {"phone": ""})
        w.sync()
        assert w.org.get("Lead", lead_id)["Phone"] is None
        assert w.portal.properties("contacts", hubspot_id).get("phone") is None
        w.reset_counts()
        w.sync()
        assert w.writes() == 0


def test_an_always_rule_copies_its_systems_blank(tmp_path: Path, loopback_ca: ThrowawayCA) -> None:
    with world_with(tmp_path, loopback_ca, "jobtitle", rule="always-hubspot") as w:
        lead_id = lead(w, "ada@example.com", Title="Countess")
        hubspot_id = contact(w, "ada@example.com", jobtitle="Countess")
        w.sync()
        w.clock.advance(minutes=1)
        w.portal.update("contacts", hubspot_id, {"jobtitle": ""})
        w.sync()
        assert w.org.get("Lead", lead_id)["Title"] is None


def test_an_always_rule_ignores_the_other_systems_blank(
    tmp_path: Path, loopback_ca: ThrowawayCA
) -> None:
    with world_with(tmp_path, loopback_ca, "jobtitle", rule="always-hubspot") as w:
        lead_id = lead(w, "ada@example.com", Title="Countess")
        hubspot_id = contact(w, "ada@example.com", jobtitle="Countess")
        w.sync()
        w.clock.advance(minutes=1)
        w.org.update("Lead", lead_id, {"Title": None})
        w.sync()
        assert w.org.get("Lead", lead_id)["Title"] == "Countess"
        assert w.portal.properties("contacts", hubspot_id)["jobtitle"] == "Countess"


# -- the placeholder -----------------------------------------------------------------------------


def test_the_not_provided_placeholder_is_never_copied_to_hubspot(world: World) -> None:
    lead_id = lead(world, "ada@example.com", LastName="[not provided]",
                   Company="[not provided]", FirstName="Ada")
    world.sync()
    (hubspot_id,) = world.portal.ids("contacts")
    properties = world.portal.properties("contacts", hubspot_id)
    assert "[not provided]" not in properties.values()
    assert properties.get("lastname") is None
    world.clock.advance(minutes=1)
    world.portal.update("contacts", hubspot_id, {"lastname": "Lovelace"})
    world.sync()
    assert world.org.get("Lead", lead_id)["LastName"] == "Lovelace"
    assert world.portal.properties("contacts", hubspot_id)["lastname"] == "Lovelace"


# -- a pass killed between plan and push, or mid-push --------------------------------------------


class Killed(BaseException):
    """The process dies: nothing catches it, nothing after it runs (BaseException, like
    SystemExit, so no `except Exception` in syncd swallows it)."""


class Dying:
    """A connector that dies at its owner's `n`-th push: before sending it, or after the CRM
    applied it but before syncd could record the results."""

    def __init__(self, inner: Any, plan: dict[str, Any]) -> None:
        self._inner, self._plan = inner, plan

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def push(self, changes: Any) -> Any:
        self._plan["pushes"] += 1
        dies = self._plan["pushes"] == self._plan["at"]
        if dies and self._plan["when"] == "before":
            raise Killed
        results = self._inner.push(changes)
        if dies:
            raise Killed
        return results


def settled_once(w: World) -> None:
    """`mixed_org` and three more Leads, settled: a pass writes nothing, and each record is
    in HubSpot once, the deals associated with their companies."""
    w.reset_counts()
    w.sync()
    assert w.writes() == 0
    contacts = [w.portal.properties("contacts", i) for i in w.portal.ids("contacts")]
    assert sorted(str(c["email"]) for c in contacts) == sorted([
        "both@acme.com", "hub@only.com", "lead@only.com", "contact@only.com",
        "lead0@example.com", "lead1@example.com", "lead2@example.com"])
    companies = [w.portal.properties("companies", i) for i in w.portal.ids("companies")]
    assert sorted(str(c["name"]) for c in companies) == ["Acme", "No Site Ltd"]
    deals = [w.portal.properties("deals", i) for i in w.portal.ids("deals")]
    assert sorted(str(d["dealname"]) for d in deals) == ["Big deal", "Small deal"]
    assert all(w.portal.associations("deals", d["hs_object_id"], "companies") for d in deals)


@pytest.mark.parametrize(("streaming", "when", "at"), [
    (False, "before", 1), (False, "after", 1), (False, "after", 2), (False, "after", 3),
    # The push under way while the people are planned one at a time (every row whole), so
    # the kill lands mid-plan: accounts and some people sent, others not yet planned.
    (True, "before", 1), (True, "after", 1), (True, "before", 2), (True, "after", 2),
    (True, "after", 3), (True, "after", 5),
])
def test_a_pass_killed_after_plan_or_mid_push_then_rerun_creates_nothing_twice(
    world: World, monkeypatch: pytest.MonkeyPatch, streaming: bool, when: str, at: int
) -> None:
    from tests import harness

    mixed_org(world)
    for number in range(3):
        lead(world, f"lead{number}@example.com")
    plan = {"pushes": 0, "at": at, "when": when}
    real = harness._connectors  # type: ignore[attr-defined]
    if streaming:
        push_while_planning_one_at_a_time(monkeypatch)
    monkeypatch.setattr(harness, "_connectors", lambda settings, mappings: {
        name: Dying(c, plan) for name, c in real(settings, mappings).items()})
    with pytest.raises(Killed):
        world.sync()
    monkeypatch.setattr(harness, "_connectors", real)
    world.sync()
    settled_once(world)
    leads = [r for r in world.org.records("Lead") if not r.get("IsDeleted")]
    assert len({r["Email"] for r in leads}) == len(leads)  # no Lead created twice


def push_while_planning_one_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """The planner plans one entity a chunk and the push takes every row as whole: a few
    records then go out while later ones are still being planned."""
    from syncd import push as push_module
    from syncd.planner import Planner

    plan = Planner.plan

    def one_at_a_time(self: Planner, kind: str, ids: Any, batch: int = 2000,
                      **keywords: Any) -> int:
        return plan(self, kind, ids, 1, **keywords)

    monkeypatch.setattr(push_module, "WHOLE_BATCHES", 1)
    monkeypatch.setattr(Planner, "plan", one_at_a_time)


class Written:
    """A connector whose pushes set `written[object]` once one of them writes that object."""

    def __init__(self, inner: Any, written: dict[str, threading.Event]) -> None:
        self._inner, self._written = inner, written

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def push(self, changes: Any) -> Any:
        results = self._inner.push(changes)
        for change in changes:
            if change.object in self._written:
                self._written[change.object].set()
        return results


def test_people_are_pushed_while_they_are_planned_and_the_pass_converges(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The push starts with the people's plan (`Pushing.planning`): HubSpot is written while
    later people are still being planned, and the end state is that of any other pass."""
    from syncd import push as push_module
    from syncd.planner import Planner
    from tests import harness

    mixed_org(world)
    for number in range(3):
        lead(world, f"lead{number}@example.com")
    contacts_pushed = threading.Event()
    real = harness._connectors  # type: ignore[attr-defined]
    monkeypatch.setattr(harness, "_connectors", lambda settings, mappings: {
        name: Written(c, {"contacts": contacts_pushed})
        for name, c in real(settings, mappings).items()})
    push_while_planning_one_at_a_time(monkeypatch)
    chunk, handed = Planner._plan_chunk, push_module.Pushing.planned
    people_planned: list[bool] = []  # per person chunk: were HubSpot contacts pushed before?

    def planning(self: Planner, mapping: Any, *args: Any) -> int:
        if mapping.entity == "person":
            people_planned.append(contacts_pushed.is_set())
        return chunk(self, mapping, *args)

    def slow_planner(self: push_module.Pushing, kind: str, entity_ids: Any) -> None:
        handed(self, kind, entity_ids)
        # From the third person on, the planner takes its time: what the push sends
        # meanwhile is recorded between its chunks (at most 10 s of it).
        deadline = time.monotonic() + 10
        while (len(people_planned) >= 3 and not contacts_pushed.is_set()
               and time.monotonic() < deadline):
            self.pump()
            time.sleep(0.01)

    monkeypatch.setattr(Planner, "_plan_chunk", planning)
    monkeypatch.setattr(push_module.Pushing, "planned", slow_planner)
    world.sync()
    assert len(people_planned) == 7
    assert people_planned[3:] == [True] * 4  # contacts written before these were planned
    monkeypatch.undo()
    settled_once(world)


def test_accounts_are_pushed_while_the_credits_are_worked_out(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Accounts carry no attribution: planned before the touchpoints, they go out from the
    pull's last page on, while the store's thread works out touchpoints and credits."""
    import syncd.pipeline as pipeline
    from syncd import push as push_module
    from tests import harness

    mixed_org(world)
    written = {"companies": threading.Event(), "contacts": threading.Event()}
    real, credits = harness._connectors, pipeline.compute_credits  # type: ignore[attr-defined]
    monkeypatch.setattr(harness, "_connectors", lambda settings, mappings: {
        name: Written(c, written) for name, c in real(settings, mappings).items()})
    monkeypatch.setattr(push_module, "WHOLE_BATCHES", 1)
    during: list[tuple[bool, bool]] = []

    def waiting_credits(*args: Any, **keywords: Any) -> Any:
        written["companies"].wait(10)  # nothing records results meanwhile
        during.append((written["companies"].is_set(), written["contacts"].is_set()))
        return credits(*args, **keywords)

    monkeypatch.setattr(pipeline, "compute_credits", waiting_credits)
    world.sync()
    assert during == [(True, False)]  # the companies before the credits, people after
    monkeypatch.undo()
    world.reset_counts()
    world.sync()
    assert world.writes() == 0
    companies = [world.portal.properties("companies", i) for i in world.portal.ids("companies")]
    assert sorted(str(c["name"]) for c in companies) == ["Acme", "No Site Ltd"]


# -- syncd plan --------------------------------------------------------------------------------


def test_syncd_plan_prints_old_new_and_rule_for_a_pending_edit_and_writes_nothing(
    world: World, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from syncd.cli import run

    lead_id = lead(world, "ada@example.com", Title="Countess")
    world.sync()
    hubspot_id = world.portal.ids("contacts")[0]
    world.clock.advance(minutes=1)
    world.portal.update("contacts", hubspot_id, {"jobtitle": "Mathematician"})
    world.reset_counts()
    monkeypatch.setenv("COLUMNS", "250")  # rich wraps cells at the terminal's width
    assert run(["plan", "--config", str(world.config)]) == 0
    out = capsys.readouterr().out
    (line,) = [row for row in out.splitlines() if f"Lead {lead_id}" in row]
    cells = [cell.strip() for cell in line.strip("│ ").split("│")]
    assert cells == ["salesforce", f"Lead {lead_id}", "Title", "Countess", "Mathematician",
                     "person.jobtitle: two-way"]
    assert world.writes() == 0
    assert world.org.get("Lead", lead_id)["Title"] == "Countess"
