"""The audit trail against the emulators: every changed unified value has its row (run, field,
old, new, winner, rule) and an unchanged one has none, so anyone can answer "why did this value
change?"."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from syncd.store.codec import dumps, loads_exact
from tests.harness import World

Values = dict[tuple[str, str, str], Any]  # (kind, entity id, field) -> unified value


def unified_values(world: World) -> Values:
    store = world.store()
    try:
        rows = store.db.conn.execute(
            "SELECT kind, id, fields FROM entity WHERE merged_into IS NULL").fetchall()
    finally:
        store.close()
    # Names starting with "_" are structure syncd derives (an opportunity's account, its
    # dates for attribution, the lifecycle stage with its own history), not mapped fields.
    return {(kind, entity, name): value
            for kind, entity, fields in rows for name, value in loads_exact(fields).items()
            if not name.startswith("_")}


def audit_of_run(world: World, run: int) -> list[tuple[Any, ...]]:
    store = world.store()
    try:
        return store.db.conn.execute(
            "SELECT kind, entity_id, field, old_value, new_value, winner, rule FROM audit"
            " WHERE run = ? ORDER BY id", (run,)).fetchall()
    finally:
        store.close()


def as_text(value: Any) -> str | None:
    """A value as the audit table keeps it."""
    return value if value is None or isinstance(value, str) else dumps(value)


def assert_audit_matches_changes(world: World, before: Values, after: Values, run: int) -> None:
    changed = {
        key: (as_text(before.get(key)), as_text(after.get(key)))
        for key in before.keys() | after.keys()
        if before.get(key) != after.get(key)
    }
    rows = [row for row in audit_of_run(world, run) if not row[2].startswith("_")]
    audited = {(kind, entity, name): (old, new) for kind, entity, name, old, new, _, _ in rows}
    assert len(audited) == len(rows), "one row per changed value"
    assert audited == changed


def seed(world: World) -> dict[str, str]:
    account = str(world.org.insert("Account", {"Name": "Acme", "Website": "acme.com"}))
    contact = str(world.org.insert("Contact", {"LastName": "Lovelace", "Email": "ada@acme.com",
                                               "Title": "Countess", "AccountId": account}))
    hubspot = str(world.portal.create("contacts", {"email": "ada@acme.com", "firstname": "Ada",
                                                   "phone": "+44 20 7946 0000"}))
    opportunity = str(world.org.insert("Opportunity", {
        "Name": "Engine", "StageName": "Prospecting", "CloseDate": "2026-07-01", "Amount": 500,
        "AccountId": account}))
    return {"account": account, "contact": contact, "hubspot": hubspot,
            "opportunity": opportunity}


def test_every_changed_unified_value_has_its_audit_row_and_no_other_has_one(
    world: World,
) -> None:
    ids = seed(world)
    edits: list[Callable[[], None]] = [
        lambda: None,
        lambda: world.org.update("Contact", ids["contact"], {"Title": "Analyst"}),
        lambda: world.portal.update("contacts", ids["hubspot"], {"phone": "+44 20 7946 1111",
                                                                 "jobtitle": "Engineer"}),
        lambda: world.org.update("Opportunity", ids["opportunity"],
                                 {"StageName": "Closed Won", "Amount": 750}),
        lambda: None,
    ]
    for edit in edits:
        world.clock.advance(minutes=1)
        edit()
        before = unified_values(world)
        report = world.sync()
        assert_audit_matches_changes(world, before, unified_values(world), report.run)
    assert audit_of_run(world, report.run) == []  # the last pass changed nothing


def test_an_audit_row_names_the_winner_and_the_rule(world: World) -> None:
    ids = seed(world)
    world.sync()
    world.clock.advance(minutes=1)
    world.org.update("Contact", ids["contact"], {"Title": "Analyst"})
    world.clock.advance(minutes=1)
    world.portal.update("contacts", ids["hubspot"], {"firstname": "Augusta",
                                                     "phone": "+44 20 7946 1111"})
    world.clock.advance(minutes=1)
    world.org.update("Opportunity", ids["opportunity"], {"StageName": "Negotiation/Review"})
    report = world.sync()
    rows = {(kind, name): (old, new, winner, rule)
            for kind, _, name, old, new, winner, rule in audit_of_run(world, report.run)}
    assert rows[("person", "jobtitle")] == ("Countess", "Analyst", "salesforce", "two-way")
    assert rows[("person", "phone")] == (
        "+44 20 7946 0000", "+44 20 7946 1111", "hubspot", "two-way")
    # prefer-salesforce: Salesforce took "Ada" from HubSpot on the first pass (it had none),
    # so HubSpot's later edit loses and the unified value does not change: no row.
    assert ("person", "firstname") not in rows
    assert rows[("opportunity", "stage")] == (
        "appointmentscheduled", "contractsent", "salesforce", "always-salesforce")


def test_the_audit_trail_answers_why_a_value_changed(world: World) -> None:
    ids = seed(world)
    first = world.sync()
    world.clock.advance(minutes=1)
    world.portal.update("contacts", ids["hubspot"], {"jobtitle": "Engineer"})
    second = world.sync()
    store = world.store()
    try:
        (person,) = store.unified.entity_ids("person")
        trail = [(row["run"], row["old_value"], row["new_value"], row["winner"], row["rule"])
                 for row in store.unified.audit_of("person", person)
                 if row["field"] == "jobtitle"]
    finally:
        store.close()
    assert trail == [
        (first.run, None, "Countess", "salesforce", "two-way"),
        (second.run, "Countess", "Engineer", "hubspot", "two-way"),
    ]
