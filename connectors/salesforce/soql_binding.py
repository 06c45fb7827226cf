"""Binding a parsed SOQL query to an sObject's describe.

`_Binder` checks every field, operator and literal of a `Query` against the describe (answering
Salesforce's INVALID_FIELD and INVALID_QUERY_FILTER_OPERATOR errors) and compiles it into a
`BoundQuery`, which filters, orders, counts and projects records.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, date, datetime, timedelta
from itertools import islice
from typing import Any, Final

from .soql import (
    And,
    Comparison,
    Condition,
    Literal,
    Not,
    OrderTerm,
    ParentResolver,
    Predicate,
    Query,
    Record,
    Relationship,
    SoqlError,
    _format_instant,
    _located,
)
from .soql_predicates import (
    _KEYS,
    _always,
    _compare,
    _conjunction,
    _disjunction,
    _Field,
    _includes,
    _like,
    _member,
    _multi_key,
    _negation,
    _null_test,
    _present_and,
    _text_key,
    _within,
)

_UNKNOWN_FIELD_HINT: Final = (
    "If you are attempting to use a custom field, be sure to append the '__c' after the custom "
    "field name. Please reference your WSDL or the describe call for the appropriate names."
)
_UNKNOWN_RELATIONSHIP_HINT: Final = (
    "If you are attempting to use a custom relationship, be sure to append the '__r' after the "
    "custom relationship name. Please reference your WSDL or the describe call for the "
    "appropriate names."
)

# Field kind by describe type; types not listed (address, base64, ...) behave as text.
_KIND_BY_TYPE: Final = {
    "id": "id",
    "reference": "id",
    "multipicklist": "multi",
    "boolean": "boolean",
    "date": "date",
    "datetime": "datetime",
    "currency": "number",
    "double": "number",
    "percent": "number",
    "int": "number",
    "long": "number",
}
_LITERAL_KINDS: Final = {
    "text": {"string"},
    "id": {"string"},
    "multi": {"string"},
    "number": {"number"},
    "boolean": {"boolean"},
    "date": {"date", "date_range"},
    "datetime": {"datetime", "date_range"},
}
_OPERATORS: Final[dict[str, Callable[[Any, Any], bool]]] = {
    "=": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


def _no_value(record: Record) -> Any:
    return None


# --------------------------------------------------------------------------- binding


def _shift(day: date, days: int) -> date:
    try:
        return day + timedelta(days=days)
    except OverflowError:
        return date.max if days > 0 else date.min


def _date_bounds(name: str, days: int, today: date) -> tuple[date, date]:
    """A relative date literal as [start, end) days. Salesforce evaluates them in the user's
    time zone; the emulator's users are all UTC."""
    if name == "TODAY":
        return today, _shift(today, 1)
    if name == "YESTERDAY":
        return _shift(today, -1), today
    if name == "TOMORROW":
        return _shift(today, 1), _shift(today, 2)
    if name == "LAST_N_DAYS":
        # Documented as "starts with the current day and continues for the past n days";
        # practice [reported]: n whole days back, up to the end of today.
        return _shift(today, -days), _shift(today, 1)
    return _shift(today, 1), _shift(today, days + 1)  # NEXT_N_DAYS: from tomorrow, n days


class _Binder:
    def __init__(
        self,
        query: Query,
        field_types: Mapping[str, str],
        now: datetime | None,
        relationships: Mapping[str, Relationship] | None,
        resolve_parent: ParentResolver | None,
    ) -> None:
        self.query = query
        self.types = {name.lower(): (name, kind) for name, kind in field_types.items()}
        self.relationships = (
            None
            if relationships is None
            else {name.lower(): (name, rel) for name, rel in relationships.items()}
        )
        self.resolve_parent = resolve_parent
        moment = now or datetime.now(UTC)
        aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
        self.today_date = aware.astimezone(UTC).date()

    def bind(self) -> BoundQuery:
        query = self.query
        selected = [
            self.field(name, offset)
            for name, offset in zip(
                query.fields, query.field_offsets or [0] * len(query.fields), strict=True
            )
        ]
        predicate = _always if query.where is None else self.compile(query.where)
        sort_keys = [self.sort_key(term) for term in query.order_by]
        return BoundQuery(query, selected, predicate, sort_keys, self.resolve_parent)

    # -- fields

    def field(self, name: str, offset: int) -> _Field:
        if "." not in name:
            canonical, sf_type = self.lookup(self.types, name, offset, self.query.sobject)
            kind = _KIND_BY_TYPE.get(sf_type.lower(), "text")
            return _Field(
                canonical,
                canonical,
                sf_type,
                kind,
                operator.methodcaller("get", canonical),
                None,
                offset,
            )
        relationship, _, parent_field = name.partition(".")
        if "." in parent_field:  # grandparents (Account.Owner.Name) are outside the subset
            raise self.unknown_relationship(name.rpartition(".")[0], offset)
        rel_name, parent = self.parent(relationship, offset)
        if parent is None:
            canonical, sf_type = parent_field, "string"
        else:
            parent_types = {key.lower(): (key, value) for key, value in parent.field_types.items()}
            canonical, sf_type = self.lookup(parent_types, parent_field, offset, parent.sobject)
        kind = _KIND_BY_TYPE.get(sf_type.lower(), "text")
        getter = self.parent_getter(rel_name, canonical)
        return _Field(f"{rel_name}.{canonical}", canonical, sf_type, kind, getter, rel_name, offset)

    def lookup(
        self, types: Mapping[str, tuple[str, str]], name: str, offset: int, entity: str
    ) -> tuple[str, str]:
        found = types.get(name.lower())
        if found is None:
            detail = f"No such column '{name}' on entity '{entity}'. {_UNKNOWN_FIELD_HINT}"
            raise _located("INVALID_FIELD", self.query.text, offset, detail)
        return found

    def parent(self, relationship: str, offset: int) -> tuple[str, Relationship | None]:
        lowered = relationship.lower()
        if self.relationships is not None:
            known = self.relationships.get(lowered)
            if known is None:
                raise self.unknown_relationship(relationship, offset)
            return known
        # Without parent describes, the reference field vouches for the relationship name.
        if lowered.endswith("__r") and lowered[:-3] + "__c" in self.types:
            return self.types[lowered[:-3] + "__c"][0][:-3] + "__r", None
        if lowered + "id" in self.types and self.types[lowered + "id"][1] == "reference":
            return self.types[lowered + "id"][0][:-2], None
        raise self.unknown_relationship(relationship, offset)

    def unknown_relationship(self, relationship: str, offset: int) -> SoqlError:
        detail = (
            f"Didn't understand relationship '{relationship}' in field path. "
            f"{_UNKNOWN_RELATIONSHIP_HINT}"
        )
        return _located("INVALID_FIELD", self.query.text, offset, detail)

    def parent_getter(self, relationship: str, key: str) -> Callable[[Record], Any]:
        resolve = self.resolve_parent
        if resolve is None:
            return _no_value

        def get(record: Record) -> Any:
            parent = resolve(relationship, record)
            return None if parent is None else parent.get(key)

        return get

    # -- WHERE

    def compile(self, condition: Condition) -> Predicate:
        if isinstance(condition, Comparison):
            return self.comparison(condition)
        if isinstance(condition, Not):
            return _negation(self.compile(condition.operand))
        operands = [self.compile(operand) for operand in condition.operands]
        return _conjunction(operands) if isinstance(condition, And) else _disjunction(operands)

    def comparison(self, comparison: Comparison) -> Predicate:
        field = self.field(comparison.field.name, comparison.field.offset)
        op = comparison.op
        self.check_operator(field, op)
        for literal in comparison.values:
            self.check_literal(field, op, literal)
        if op == "LIKE":
            return _like(field, comparison.values[0])
        if op in ("INCLUDES", "EXCLUDES"):
            groups = [_multi_key(literal.value) for literal in comparison.values]
            return _includes(field, groups, op == "EXCLUDES")
        if op in ("IN", "NOT IN"):
            return self.membership(field, comparison.values, op == "NOT IN")
        return self.single(field, op, comparison.values[0])

    def check_operator(self, field: _Field, op: str) -> None:
        if op in ("INCLUDES", "EXCLUDES") and field.kind != "multi":
            detail = "includes or excludes operator only valid on multipicklist field"
        elif (op == "LIKE" and field.kind != "text") or (
            op in ("<", "<=", ">", ">=") and field.kind in ("multi", "boolean")
        ):
            detail = f"invalid operator on {field.sf_type} field"
        else:
            return
        raise _located("INVALID_QUERY_FILTER_OPERATOR", self.query.text, field.offset, detail)

    def check_literal(self, field: _Field, op: str, literal: Literal) -> None:
        if literal.kind == "null" and op not in ("LIKE", "INCLUDES", "EXCLUDES"):
            return
        if literal.kind in _LITERAL_KINDS[field.kind]:
            return
        if field.kind in ("text", "id", "multi"):
            quoting = "should be enclosed in quotes"
        else:
            quoting = "should not be enclosed in quotes"
        detail = (
            f"value of filter criterion for field '{field.name}' must be of type "
            f"{field.type_word()} and {quoting}"
        )
        raise _located("INVALID_FIELD", self.query.text, field.offset, detail)

    def target(self, field: _Field, literal: Literal) -> Any:
        """A literal in the form the field's record values are compared in."""
        if literal.kind == "date":
            return literal.value.isoformat()
        if literal.kind == "datetime":
            return literal.value
        return _KEYS[field.kind](literal.value)

    def bounds(self, field: _Field, literal: Literal) -> tuple[str, str]:
        name, days = literal.value
        start, end = _date_bounds(name, days, self.today_date)
        if field.kind == "date":
            return start.isoformat(), end.isoformat()
        midnight = datetime.min.time()
        return (
            _format_instant(datetime.combine(start, midnight, UTC)),
            _format_instant(datetime.combine(end, midnight, UTC)),
        )

    def single(self, field: _Field, op: str, literal: Literal) -> Predicate:
        if literal.kind == "null":
            return _null_test(field, op)
        if literal.kind == "date_range":
            return _within(field, op, *self.bounds(field, literal))
        return _compare(field, _OPERATORS[op], self.target(field, literal))

    def membership(self, field: _Field, literals: tuple[Literal, ...], negate: bool) -> Predicate:
        if any(literal.kind == "date_range" for literal in literals):
            found = _disjunction([self.single(field, "=", literal) for literal in literals])
            return _present_and(field, _negation(found)) if negate else found
        targets = frozenset(
            self.target(field, literal) for literal in literals if literal.kind != "null"
        )
        with_null = any(literal.kind == "null" for literal in literals)
        return _member(field, targets, with_null, negate)

    # -- ORDER BY

    def sort_key(self, term: OrderTerm) -> tuple[Callable[[Record], Any], bool]:
        field = self.field(term.field, term.field_offset)
        key = _text_key if field.kind == "multi" else _KEYS[field.kind]
        get = field.get
        # Ranks around the non-null rank 1; a descending sort reverses them too.
        null_rank = 0 if term.nulls_last == term.descending else 2

        if field.kind == "boolean":

            def boolean_key(record: Record) -> Any:
                return (1, bool(get(record)))

            return boolean_key, term.descending

        def sort_key(record: Record) -> Any:
            value = get(record)
            normal = None if value is None else key(value)
            return (null_rank, "") if normal is None else (1, normal)

        return sort_key, term.descending


# --------------------------------------------------------------------------- bound query


class BoundQuery:
    """A query checked against a describe, ready to filter, order and project records."""

    matches: Predicate
    """Whether a record satisfies the WHERE clause (a compiled closure; call it per record)."""

    def __init__(
        self,
        query: Query,
        selected: list[_Field],
        predicate: Predicate,
        sort_keys: list[tuple[Callable[[Record], Any], bool]],
        resolve_parent: ParentResolver | None,
    ) -> None:
        self.query = query
        self.canonical_fields: tuple[str, ...] = tuple(field.name for field in selected)
        self.matches = predicate
        self._selected = selected
        self._sort_keys = sort_keys
        self._resolve_parent = resolve_parent

    def order(self, records: Iterable[Record]) -> list[Record]:
        """ORDER BY (stable: ties keep input order), then OFFSET and LIMIT."""
        start = self.query.offset or 0
        stop = None if self.query.limit is None else start + self.query.limit
        if not self._sort_keys:
            return list(islice(records, start, stop))
        rows = list(records)
        # Stable sorts from the last key to the first give the multi-key order.
        for key, descending in reversed(self._sort_keys):
            rows.sort(key=key, reverse=descending)
        return rows[start:stop]

    def select(self, records: Iterable[Record]) -> list[Record]:
        """The records the query answers, in order, paged by OFFSET and LIMIT."""
        matches = self.matches
        return self.order(record for record in records if matches(record))

    def count(self, records: Iterable[Record]) -> int:
        """What `SELECT COUNT()` answers as totalSize (OFFSET and LIMIT applied)."""
        matches = self.matches
        total = sum(1 for record in records if matches(record))
        total = max(0, total - (self.query.offset or 0))
        return total if self.query.limit is None else min(total, self.query.limit)

    def project(self, record: Record) -> dict[str, Any]:
        """The selected fields under canonical names, in select-list order. A relationship field
        answers as Salesforce nests it: {"Account": {"attributes": ..., "Name": ...}}, or
        {"Account": None} when the parent is absent or no resolver was bound. The record's own
        "attributes" are the caller's to add."""
        answer: dict[str, Any] = {}
        for field in self._selected:
            if field.relationship is None:
                answer[field.key] = record.get(field.key)
            elif field.relationship not in answer:
                answer[field.relationship] = self._parent_view(field.relationship, record)
        return answer

    def _parent_view(self, relationship: str, record: Record) -> dict[str, Any] | None:
        parent = (
            None if self._resolve_parent is None else self._resolve_parent(relationship, record)
        )
        if parent is None:
            return None
        view: dict[str, Any] = {}
        if "attributes" in parent:
            view["attributes"] = parent["attributes"]
        for field in self._selected:
            if field.relationship == relationship:
                view[field.key] = parent.get(field.key)
        return view
