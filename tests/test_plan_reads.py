"""The HubSpot records planning associates deals with, read a chunk of entities at a time."""

from __future__ import annotations

from pathlib import Path

import pytest

from syncd.store import Store
from syncd.store.unified import Link


@pytest.fixture
def store(tmp_path: Path) -> Store:
    store = Store(tmp_path / "syncd.db")
    links = [
        # Two live HubSpot records: the older wins, then the lower id at the same time.
        Link("hubspot", "contacts", "20", "person", "ada", created_at="2024-02-01T00:00:00Z"),
        Link("hubspot", "contacts", "10", "person", "ada", created_at="2024-03-01T00:00:00Z"),
        Link("hubspot", "contacts", "31", "person", "bob", created_at="2024-01-01T00:00:00Z"),
        Link("hubspot", "contacts", "30", "person", "bob", created_at="2024-01-01T00:00:00Z"),
        # Created by syncd and not pulled yet: no creation time, which sorts first.
        Link("hubspot", "contacts", "40", "person", "cy"),
        Link("hubspot", "contacts", "41", "person", "cy", created_at="2024-01-01T00:00:00Z"),
        # Deleted and merged records are no association target; Salesforce ones neither.
        Link("hubspot", "contacts", "50", "person", "dee", "deleted", "2023-01-01T00:00:00Z"),
        Link("hubspot", "contacts", "51", "person", "dee", "merged", "2023-01-01T00:00:00Z"),
        Link("salesforce", "Contact", "003A", "person", "dee", created_at="2023-01-01T00:00:00Z"),
        Link("hubspot", "contacts", "52", "person", "dee", created_at="2024-06-01T00:00:00Z"),
        Link("salesforce", "Contact", "003B", "person", "eve"),
        # Another kind with the same entity id is another entity.
        Link("hubspot", "companies", "60", "account", "ada", created_at="2024-01-01T00:00:00Z"),
    ]
    with store.transaction():
        store.unified.save_links(links, 1)
    return store


def test_hubspot_records_of_a_chunk_are_the_oldest_live_record_of_each_entity(
    store: Store,
) -> None:
    people = ["ada", "bob", "cy", "dee", "eve", "nobody"]
    assert store.unified.hubspot_records("person", people) == {
        "ada": "20",
        "bob": "30",
        "cy": "40",
        "dee": "52",
    }
    assert store.unified.hubspot_records("account", ["ada", "bob"]) == {"ada": "60"}


def test_hubspot_records_answers_more_entities_than_one_statement_holds(store: Store) -> None:
    many = [f"p{i}" for i in range(1_200)]
    with store.transaction():
        store.unified.save_links(
            [Link("hubspot", "contacts", f"h{i}", "person", p) for i, p in enumerate(many)], 2
        )
    found = store.unified.hubspot_records("person", [*many, "ada"])
    assert len(found) == 1_201
    assert found["p1199"] == "h1199"
    assert found["ada"] == "20"
