"""CRM search evaluation for the HubSpot emulator: the body of
`POST /crm/v3/objects/{type}/search` (reference 1.4) compiled into a predicate and a sort key.

Filters within a group are ANDed, groups are ORed. Values are compared by the property's type:
numbers numerically (`hs_object_id` included), datetimes as epoch ms or ISO (both accepted),
everything else case-insensitively as text. When every filter group holds an ordered filter,
candidates come from a sorted property index (`search_index.py`), else from a scan of the live
records; either way the full predicate decides. The emulator caches the sorted id list per
query so that later pages only slice it.
"""

from __future__ import annotations

import json
import re
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from connectors.hubspot.portal import (
    CrmRecord,
    ObjectTable,
    PropertyDef,
    canonical_date,
    canonical_datetime,
)
from connectors.hubspot.search_index import ORDERED_OPERATORS, Bound, SearchIndexes

MAX_GROUPS = 5
MAX_FILTERS_PER_GROUP = 6
MAX_FILTERS = 18
MAX_LIMIT = 200
MAX_RESULTS = 10_000

Values = dict[str, str]
Predicate = Callable[[Values], bool]
Bounds = tuple[Bound, ...]  # a group's ordered filters
# Free-text `query` looks in these properties (HubSpot's default searchable ones).
QUERY_PROPERTIES = {
    "contacts": ("email", "firstname", "lastname", "phone", "company"),
    "companies": ("name", "domain", "website", "phone"),
    "deals": ("dealname",),
}


class SearchError(ValueError):
    """The request is invalid: answered 400 VALIDATION_ERROR with this message."""


@dataclass(frozen=True)
class Query:
    predicate: Predicate
    sort_key: Callable[[CrmRecord], tuple[Any, ...]]
    descending: bool
    # Each group's ordered filters, when every group has one: an index may narrow the scan.
    bounds: tuple[Bounds, ...] | None = None


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _folded(text: str) -> str:
    return text.lower()


def _converter(prop: PropertyDef | None) -> Callable[[str], Any]:
    """How a property's text becomes the value filters and sorts compare: a float, canonical
    datetime/date text (which orders like time), or case-folded text."""
    kind = prop.type if prop else "string"
    return {"number": _number, "datetime": canonical_datetime,
            "date": canonical_date}.get(kind, _folded)


def _token_pattern(value: str) -> re.Pattern[str]:
    parts = (re.escape(part) for part in value.lower().split("*"))
    return re.compile(".*".join(parts))


def _contains_token(pattern: re.Pattern[str], text: str) -> bool:
    folded = text.lower()
    if pattern.fullmatch(folded):
        return True
    return any(pattern.fullmatch(token) for token in re.split(r"[\s,;]+", folded))


def _compare(name: str, prop: PropertyDef | None, op: str, raw: Any) -> Predicate:
    convert = _converter(prop)
    target = convert(str(raw))
    if target is None:
        raise SearchError(f"{raw!r} is not a valid value for the number property {name}")
    tests: dict[str, Callable[[Any], bool]] = {
        "EQ": lambda v: v == target, "NEQ": lambda v: v != target,
        "LT": lambda v: v < target, "LTE": lambda v: v <= target,
        "GT": lambda v: v > target, "GTE": lambda v: v >= target,
    }
    test = tests[op]
    # A record without the value never equals anything, so it satisfies NEQ (HubSpot's
    # behaviour for blank values in "is not" filters); ordered comparisons need a value.
    blank = op == "NEQ"

    def check(values: Values) -> bool:
        text = values.get(name)
        if text is None:
            return blank
        value = convert(text)
        return blank if value is None else bool(test(value))

    return check


def _membership(name: str, prop: PropertyDef | None, values: Any, negate: bool) -> Predicate:
    if not isinstance(values, list) or not values:
        raise SearchError(f"IN and NOT_IN on {name} need a non-empty `values` list")
    convert = _converter(prop)
    wanted = {convert(str(v)) for v in values}

    def check(record_values: Values) -> bool:
        text = record_values.get(name)
        inside = text is not None and convert(text) in wanted
        return inside != negate

    return check


def _between(name: str, prop: PropertyDef | None, spec: Mapping[str, Any]) -> Predicate:
    if spec.get("value") is None or spec.get("highValue") is None:
        raise SearchError(f"BETWEEN on {name} needs `value` and `highValue`")
    low, high = _compare(name, prop, "GTE", spec["value"]), _compare(
        name, prop, "LTE", spec["highValue"])
    return lambda values: low(values) and high(values)


def _token(name: str, value: Any, negate: bool) -> Predicate:
    pattern = _token_pattern(str(value))

    def check(values: Values) -> bool:
        text = values.get(name)
        found = text is not None and _contains_token(pattern, text)
        return found != negate

    return check


def _filter(spec: Mapping[str, Any], schema: Mapping[str, PropertyDef]) -> Predicate:
    name = str(spec.get("propertyName", ""))
    op = str(spec.get("operator", "EQ")).upper()
    prop = schema.get(name)
    if prop is None:
        raise SearchError(f"There was a problem with the request. Property {name!r} does not "
                          "exist.")
    if op in ("EQ", "NEQ", "LT", "LTE", "GT", "GTE"):
        if spec.get("value") is None:
            raise SearchError(f"Operator {op} on {name} needs a `value`")
        return _compare(name, prop, op, spec["value"])
    if op == "BETWEEN":
        return _between(name, prop, spec)
    if op in ("IN", "NOT_IN"):
        return _membership(name, prop, spec.get("values"), op == "NOT_IN")
    if op in ("HAS_PROPERTY", "NOT_HAS_PROPERTY"):
        present = op == "HAS_PROPERTY"
        return lambda values: (name in values) == present
    if op in ("CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN"):
        return _token(name, spec.get("value", ""), op == "NOT_CONTAINS_TOKEN")
    raise SearchError(f"Unknown filter operator {op!r}")


def _bounds(spec: Mapping[str, Any], schema: Mapping[str, PropertyDef]) -> Bounds:
    """The ordered comparisons of a filter `_filter` accepted, for an index; () for others."""
    name = str(spec.get("propertyName", ""))
    op = str(spec.get("operator", "EQ")).upper()
    convert = _converter(schema.get(name))
    if op in ORDERED_OPERATORS:
        return (Bound(name, convert, op, convert(str(spec["value"]))),)
    if op == "BETWEEN":
        return (Bound(name, convert, "GTE", convert(str(spec["value"]))),
                Bound(name, convert, "LTE", convert(str(spec["highValue"]))))
    return ()


def _group(filters: list[Predicate]) -> Predicate:
    return lambda values: all(test(values) for test in filters)


def _groups(body: Mapping[str, Any],
            schema: Mapping[str, PropertyDef]) -> list[tuple[Predicate, Bounds]]:
    groups = body.get("filterGroups") or []
    if len(groups) > MAX_GROUPS:
        raise SearchError(f"Too many filter groups: {len(groups)} (at most {MAX_GROUPS}).")
    total = 0
    compiled: list[tuple[Predicate, Bounds]] = []
    for group in groups:
        filters = group.get("filters") or []
        if len(filters) > MAX_FILTERS_PER_GROUP:
            raise SearchError(f"Too many filters in a group: {len(filters)} "
                              f"(at most {MAX_FILTERS_PER_GROUP}).")
        total += len(filters)
        test = _group([_filter(f, schema) for f in filters])
        compiled.append((test, tuple(b for f in filters for b in _bounds(f, schema))))
    if total > MAX_FILTERS:
        raise SearchError(f"Too many filters: {total} (at most {MAX_FILTERS} in all groups).")
    return compiled


def _free_text(object_type: str, query: str) -> Predicate:
    needle = query.lower()
    names = QUERY_PROPERTIES[object_type]
    return lambda values: any(needle in values.get(n, "").lower() for n in names)


def _sort(body: Mapping[str, Any], schema: Mapping[str, PropertyDef]) -> tuple[str, bool]:
    """The one sort rule, accepted as a dict or as "prop"/"-prop" text [reported]."""
    sorts = body.get("sorts") or []
    if len(sorts) > 1:
        raise SearchError("Only one sort is supported.")
    if not sorts:
        return "hs_object_id", False
    rule = sorts[0]
    if isinstance(rule, str):
        return rule.lstrip("-"), rule.startswith("-")
    return str(rule.get("propertyName", "hs_object_id")), \
        str(rule.get("direction", "ASCENDING")).upper() == "DESCENDING"


def compile_query(object_type: str, body: Mapping[str, Any],
                  schema: Mapping[str, PropertyDef]) -> Query:
    """A predicate and sort key for the body, or SearchError for an invalid body."""
    compiled = _groups(body, schema)
    groups = [test for test, _ in compiled]
    bounds = tuple(group_bounds for _, group_bounds in compiled)
    checks: list[Predicate] = []
    if groups:
        checks.append(lambda values: any(group(values) for group in groups))
    if body.get("query"):
        checks.append(_free_text(object_type, str(body["query"])))
    sort_name, descending = _sort(body, schema)
    convert = _converter(schema.get(sort_name))

    def sort_key(record: CrmRecord) -> tuple[Any, ...]:
        text = record.properties.get(sort_name)
        value = convert(text) if text is not None else None
        # Records without the value sort after those with it; ties break on the numeric id.
        return (value is None, value if value is not None else 0, int(record.id))

    indexable = bool(bounds) and all(bounds)
    return Query(_group(checks), sort_key, descending, bounds if indexable else None)


def _matching(records: Iterable[CrmRecord], query: Query) -> list[str]:
    test = query.predicate
    matches = [record for record in records if test(record.properties)]
    matches.sort(key=query.sort_key, reverse=query.descending)
    return [record.id for record in matches]


def run_query(table: ObjectTable, query: Query) -> list[str]:
    """Ids of every live record matching, in the requested order: a scan."""
    return _matching(table.iter_live(), query)


def run_indexed(table: ObjectTable, query: Query, indexes: SearchIndexes) -> list[str]:
    """The same ids as `run_query`, testing only the candidates a property index gives when
    every group has an ordered filter (candidates arrive in id order, as a scan's do)."""
    if query.bounds is None:
        return run_query(table, query)
    records = table.records
    candidates = indexes.candidates(table, query.bounds)
    return _matching((records[str(number)] for number in candidates), query)


class SearchCache:
    """Sorted results per (object type, data version, query): later pages only slice. Holds
    the property indexes that narrow the first search of each query."""

    def __init__(self, size: int = 16) -> None:
        self._size = size
        self._entries: OrderedDict[tuple[str, int, str], list[str]] = OrderedDict()
        self._indexes = SearchIndexes()

    def results(self, table: ObjectTable, body: Mapping[str, Any]) -> list[str]:
        shape = {k: body.get(k) for k in ("filterGroups", "sorts", "query")}
        key = (table.object_type, table.version, json.dumps(shape, sort_keys=True))
        cached = self._entries.get(key)
        if cached is not None:
            self._entries.move_to_end(key)
            return cached
        query = compile_query(table.object_type, body, table.schema)
        found = run_indexed(table, query, self._indexes)
        self._entries[key] = found
        if len(self._entries) > self._size:
            self._entries.popitem(last=False)
        return found
