"""The HubSpot emulator's index-assisted search answers exactly as a scan of the table does:
same ids, same order, for any body; and its indexes follow writes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.hubspot.portal import Portal, epoch_ms, iso_ms
from connectors.hubspot.search import SearchCache, compile_query, run_indexed, run_query
from connectors.hubspot.search_index import SearchIndexes

BASE = datetime(2024, 3, 1, tzinfo=UTC)
MOMENTS = [BASE + timedelta(minutes=m) for m in (0, 1, 1, 5, 60, 61, 1440)]
# Few distinct values, so that ties, equal bounds and empty ranges happen often.
DATETIMES = st.sampled_from(MOMENTS).flatmap(
    lambda m: st.sampled_from([str(epoch_ms(m)), iso_ms(m), m.isoformat()]))
NUMBERS = st.sampled_from(["1", "2.5", "-3", "10", "1e1", "0", "-0", "inf", "nan", " 7 "])
TEXTS = st.sampled_from(["Ann", "ann", "Bob", "bob smith", "Zed", "10", "2024-03-01"])
JUNK = st.sampled_from(["soon", "n/a", "12abc"])
PROPERTIES = {
    "hs_lastmodifieddate": st.one_of(DATETIMES, JUNK),
    "score": st.one_of(NUMBERS, JUNK),
    "firstname": TEXTS,
}
ORDERED = ["EQ", "LT", "LTE", "GT", "GTE", "BETWEEN"]
OTHERS = ["NEQ", "IN", "NOT_IN", "HAS_PROPERTY", "NOT_HAS_PROPERTY", "CONTAINS_TOKEN",
          "NOT_CONTAINS_TOKEN"]
TARGETS = {"hs_lastmodifieddate": DATETIMES, "score": NUMBERS, "firstname": TEXTS,
           "hs_object_id": st.integers(1000, 1030).map(str)}

# A blank ("") is not stored: the contact lacks that property.
contact = st.fixed_dictionaries(
    {name: st.one_of(values, values, values, st.just("")) for name, values in PROPERTIES.items()})


@st.composite
def filters(draw: st.DrawFn) -> dict[str, Any]:
    name = draw(st.sampled_from(sorted(TARGETS)))
    operator = draw(st.sampled_from(ORDERED) | st.sampled_from(OTHERS))
    target = TARGETS[name]
    spec: dict[str, Any] = {"propertyName": name, "operator": operator}
    if operator in ("IN", "NOT_IN"):
        spec["values"] = draw(st.lists(target, min_size=1, max_size=3))
    elif operator == "BETWEEN":
        spec["value"], spec["highValue"] = draw(target), draw(target)
    elif operator not in ("HAS_PROPERTY", "NOT_HAS_PROPERTY"):
        spec["value"] = draw(target)
    return spec


@st.composite
def bodies(draw: st.DrawFn) -> dict[str, Any]:
    groups = draw(st.lists(st.lists(filters(), min_size=1, max_size=2), min_size=1, max_size=3))
    body: dict[str, Any] = {"filterGroups": [{"filters": group} for group in groups]}
    if draw(st.booleans()):
        body["sorts"] = [{"propertyName": draw(st.sampled_from(sorted(TARGETS))),
                          "direction": draw(st.sampled_from(["ASCENDING", "DESCENDING"]))}]
    query = draw(st.sampled_from(["", "", "", "an", "bob"]))
    if query:
        body["query"] = query
    return body


def portal_with(contacts: list[dict[str, str]], archived: set[int]) -> Portal:
    portal = Portal(clock=lambda: BASE)
    portal.add_property("contacts", "hs_lastmodifieddate", type="datetime")
    portal.add_property("contacts", "score", type="number")
    for number, values in enumerate(contacts):
        record_id = portal.create("contacts", values)
        if number in archived:
            portal.archive("contacts", record_id)
    return portal


def window(low: datetime, high: datetime) -> dict[str, Any]:
    return {"filterGroups": [{"filters": [
        {"propertyName": "hs_lastmodifieddate", "operator": "GTE", "value": str(epoch_ms(low))},
        {"propertyName": "hs_lastmodifieddate", "operator": "LT", "value": str(epoch_ms(high))},
    ]}], "sorts": [{"propertyName": "hs_lastmodifieddate", "direction": "ASCENDING"}]}


@settings(max_examples=300, deadline=None)
@given(st.lists(contact, max_size=30), st.sets(st.integers(0, 29), max_size=4), bodies())
def test_indexed_search_answers_exactly_as_a_scan(
        contacts: list[dict[str, str]], archived: set[int], body: dict[str, Any]) -> None:
    table = portal_with(contacts, archived).tables["contacts"]
    query = compile_query("contacts", body, table.schema)

    assert run_indexed(table, query, SearchIndexes(size=2)) == run_query(table, query)


def test_a_window_with_ordered_filters_in_every_group_uses_the_index() -> None:
    table = portal_with([{"hs_lastmodifieddate": str(epoch_ms(m))} for m in MOMENTS],
                        set()).tables["contacts"]
    either = {"filterGroups": [*window(MOMENTS[1], MOMENTS[4])["filterGroups"],
                               {"filters": [{"propertyName": "score", "operator": "GTE",
                                             "value": "1"},
                                            {"propertyName": "firstname",
                                             "operator": "HAS_PROPERTY"}]}]}
    half = {"filterGroups": [*either["filterGroups"],
                             {"filters": [{"propertyName": "score", "operator": "NEQ",
                                           "value": "1"}]}]}

    assert compile_query("contacts", window(BASE, BASE), table.schema).bounds is not None
    assert compile_query("contacts", either, table.schema).bounds is not None
    assert compile_query("contacts", half, table.schema).bounds is None


def test_index_is_rebuilt_after_a_write_and_finds_the_new_record() -> None:
    portal = portal_with([{"hs_lastmodifieddate": str(epoch_ms(m))} for m in MOMENTS], set())
    table = portal.tables["contacts"]
    indexes = SearchIndexes()
    query = compile_query("contacts", window(MOMENTS[1], MOMENTS[4]), table.schema)
    assert query.bounds is not None
    convert = query.bounds[0][0].convert
    before = run_indexed(table, query, indexes)
    built = indexes.index(table, "hs_lastmodifieddate", convert)

    added = portal.create("contacts", {"hs_lastmodifieddate": iso_ms(MOMENTS[3])})
    after = run_indexed(table, query, indexes)

    assert indexes.index(table, "hs_lastmodifieddate", convert) is not built
    assert after == [*before, added] == run_query(table, query)


def test_search_cache_answers_windows_after_writes() -> None:
    portal = portal_with([{"hs_lastmodifieddate": str(epoch_ms(m))} for m in MOMENTS], set())
    table = portal.tables["contacts"]
    cache = SearchCache()
    first = cache.results(table, window(BASE, MOMENTS[4]))

    portal.update("contacts", first[0], {"hs_lastmodifieddate": iso_ms(MOMENTS[-1])})

    assert cache.results(table, window(BASE, MOMENTS[4])) == first[1:]


def test_a_property_redefined_with_another_type_is_searched_by_the_new_type() -> None:
    portal = Portal(clock=lambda: BASE)
    portal.add_property("contacts", "rank")  # text: "10" sorts before "9"
    ten = portal.create("contacts", {"rank": "10"})
    portal.create("contacts", {"rank": "9"})
    cache = SearchCache()
    above_nine = {"filterGroups": [{"filters": [
        {"propertyName": "rank", "operator": "GT", "value": "9"}]}]}
    assert cache.results(portal.tables["contacts"], above_nine) == []
    portal.add_property("contacts", "rank", type="number", field_type="number")
    assert cache.results(portal.tables["contacts"], above_nine) == [ten]
