"""Identity resolution gives the same people whatever its batch size.

`resolve_all` works a batch of 2,000 records at a time and keeps only that batch's match keys
and entity ids in memory (a backfill of a million people would otherwise hold hundreds of
megabytes of them); what earlier batches made is read back from the store. Resolving one
record per batch must link every record to the same entity, make the same entities and record
the same merges as resolving all of them in one batch, over passes that add, convert, merge
and delete records.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from syncd.identity import resolve_all, spec_for
from syncd.mapping_loader import load_mappings
from syncd.model import Page, Record
from syncd.store import Store

SHIPPED = Path(__file__).resolve().parent.parent / "mappings"
SPEC = spec_for(load_mappings(SHIPPED).person)
START = datetime(2026, 1, 1, tzinfo=UTC)
EMAILS = ("ada@example.com", " Ada@Example.COM ", "bob@example.com", "cy@example.com", "", None)
CONTACTS = ("003000000000000001", "003000000000000002", "003000000000000003")
LEADS = ("00Q000000000000001", "00Q000000000000002", "00Q000000000000003")
HUBSPOT = ("101", "102", "103", "104")
# A source record to save: object, id, fields, deleted, the survivor it was merged into.
SourceRecord = tuple[str, str, dict[str, Any], bool, str | None]


@st.composite
def salesforce_contact(draw: st.DrawFn) -> SourceRecord:
    record_id = draw(st.sampled_from(CONTACTS))
    deleted = draw(st.booleans())
    survivor = draw(st.sampled_from([None, *CONTACTS])) if deleted else None
    return "Contact", record_id, {"Email": draw(st.sampled_from(EMAILS))}, deleted, survivor


@st.composite
def salesforce_lead(draw: st.DrawFn) -> SourceRecord:
    data: dict[str, Any] = {"Email": draw(st.sampled_from(EMAILS))}
    if draw(st.booleans()):
        data |= {"IsConverted": True, "ConvertedContactId": draw(st.sampled_from(CONTACTS))}
    return "Lead", draw(st.sampled_from(LEADS)), data, draw(st.booleans()), None


@st.composite
def hubspot_contact(draw: st.DrawFn) -> SourceRecord:
    email = draw(st.sampled_from(EMAILS))
    return "contacts", draw(st.sampled_from(HUBSPOT)), {"email": email}, draw(st.booleans()), None


passes = st.lists(
    st.lists(st.one_of(salesforce_contact(), salesforce_lead(), hubspot_contact()),
             min_size=1, max_size=12),
    min_size=1, max_size=3,
)


def _resolved(
    folder: Path, batch: int, runs: list[list[SourceRecord]]
) -> tuple[set[Any], set[Any]]:
    store = Store(folder / f"batch-{batch}.db")
    try:
        for run, records in enumerate(runs, start=1):
            for number, (obj, record_id, data, deleted, survivor) in enumerate(records):
                system = "hubspot" if obj == "contacts" else "salesforce"
                stamp = START + timedelta(days=run, seconds=number)
                record = Record(system, obj, record_id, stamp, data, deleted=deleted,
                                merged_into=survivor)
                store.save_page(run, system, Page(obj, [record], cursor=str(number)))
            with store.transaction():
                resolve_all(store, SPEC, run, run - 1, batch=batch)
        entities = set(store.db.execute("SELECT id, match_key, merged_into FROM entity"))
        links = set(store.db.execute(
            "SELECT system, object, record_id, entity_id, state FROM link"))
        return entities, links
    finally:
        store.close()


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(runs=passes)
def test_one_record_per_batch_resolves_as_one_batch_of_all(
    tmp_path_factory: Any, runs: list[list[SourceRecord]]
) -> None:
    folder = tmp_path_factory.mktemp("identity")
    assert _resolved(folder, 1, runs) == _resolved(folder, 2000, runs)


def test_a_match_key_of_a_person_merged_away_leads_to_the_survivor_in_later_batches(
        tmp_path: Path) -> None:
    """A Lead of the first pass converts to the Contact of another person in the second,
    which merges the Lead's person away; a HubSpot contact with the Lead's email, resolved in
    a later batch of that pass (another object: always another batch), joins the survivor."""
    runs: list[list[SourceRecord]] = [
        [("Lead", LEADS[0], {"Email": "ada@example.com"}, False, None),
         ("Contact", CONTACTS[0], {"Email": "bob@example.com"}, False, None)],
        [("Lead", LEADS[0], {"Email": "ada@example.com", "IsConverted": True,
                             "ConvertedContactId": CONTACTS[0]}, False, None),
         ("contacts", HUBSPOT[0], {"email": "ada@example.com"}, False, None)],
    ]
    for batch in (1, 2000):
        entities, links = _resolved(tmp_path, batch, runs)
        survivor = f"per_s{CONTACTS[0]}"
        assert ("hubspot", "contacts", HUBSPOT[0], survivor, "live") in links
        assert (f"per_s{LEADS[0]}", "ada@example.com", survivor) in entities
        assert len(entities) == 2
