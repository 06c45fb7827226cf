"""Reconcile against both emulators: one dataset, decided field by field, written both ways."""

from __future__ import annotations

from tests.harness import World


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
