"""A pass over `syncd sandbox` data converges: the second pass, with no outside change, writes
nothing to either CRM (ARCHITECTURE 5, Runs; issue 5)."""

from __future__ import annotations

from collections import Counter

from connectors.sandbox import Sandbox
from syncd.lifecycle import STAGE
from tests.harness import World


def test_a_second_pass_over_sandbox_data_writes_nothing(world: World) -> None:
    seeded = Sandbox(scale=300).seed_into(world.hubspot, world.salesforce)
    assert seeded
    first = world.sync()
    assert first.rejected == 0
    assert sum(first.pushed.applied.values()) > 0
    world.reset_counts()
    second = world.sync()
    assert world.writes() == 0, dict(world.hubspot.counts) | dict(world.salesforce.counts)
    assert sum(second.planned.values()) == 0
    # Both systems show every person's unified stage: HubSpot's lifecyclestage and the label
    # on every live, unconverted Lead and every Contact of theirs.
    store = world.store()
    try:
        people = store.unified.entities("person", store.unified.entity_ids("person"))
        links = store.unified.links_of("person", list(people))
    finally:
        store.close()
    labels = {s.hubspot: s.salesforce for s in world.definitions.lifecycle.stages}
    staged = {pid: e.fields[STAGE] for pid, e in people.items() if e.fields.get(STAGE)}
    assert len(staged) > 100
    seen: Counter[str] = Counter()
    for person, stage in staged.items():
        for link in links.get(person, []):
            if link.state != "live":
                continue
            if link.system == "hubspot":
                shown = world.portal.properties("contacts", link.record_id).get("lifecyclestage")
                assert shown == stage, (person, shown, stage)
            else:
                record = world.org.get(link.object, link.record_id)
                if not record.get("IsConverted"):
                    assert record["Lifecycle_Stage__c"] == labels[stage], (person, record)
            seen[link.object] += 1
    assert seen["contacts"] and seen["Lead"] and seen["Contact"], seen
