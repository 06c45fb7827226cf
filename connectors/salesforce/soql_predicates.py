"""The compiled WHERE clause of a bound SOQL query: how record values compare, and the
closures that test a record.

Records are held in Salesforce's wire form: text as str, dates "2024-04-25", datetimes
"2024-04-25T15:50:37.000+0000" (always UTC), numbers as int/float, checkboxes as bool, null as
None. Datetimes are compared as instants by bringing both sides to that canonical UTC text,
whose lexical order is the time order.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Final

from .soql import Literal, Predicate, Record, _format_instant

# --------------------------------------------------------------------------- values


def _instant_key(value: Any) -> str | None:
    # Fast path: the emulator stores exactly the canonical form, so most values pass untouched.
    if isinstance(value, str) and len(value) == 28 and value.endswith("+0000"):
        return value
    try:
        moment = value if isinstance(value, datetime) else datetime.fromisoformat(value)
        return _format_instant(moment)
    except (TypeError, ValueError, OverflowError):
        return None


def _date_key(value: Any) -> str | None:
    if isinstance(value, str):
        return value[:10]
    return value.isoformat()[:10] if isinstance(value, date) else None


def _text_key(value: Any) -> str:
    return value.lower() if isinstance(value, str) else str(value).lower()


def _id_key(value: Any) -> str:
    # An 18-character id is its 15-character case-sensitive id plus a checksum of the case, so
    # either spelling of one record compares equal.
    text = value if isinstance(value, str) else str(value)
    return text[:15] if len(text) == 18 else text


def _multi_key(value: Any) -> frozenset[str]:
    return frozenset(part.strip().lower() for part in str(value).split(";") if part.strip())


def _number_key(value: Any) -> int | float | None:
    if isinstance(value, int | float):
        return value
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


_KEYS: Final[dict[str, Callable[[Any], Any]]] = {
    "text": _text_key,
    "id": _id_key,
    "multi": _multi_key,
    "number": _number_key,
    "boolean": bool,
    "date": _date_key,
    "datetime": _instant_key,
}
_TYPE_WORDS: Final = {
    "text": "string",
    "id": "id",
    "multi": "string",
    "boolean": "boolean",
    "date": "date",
    "datetime": "dateTime",
}


@dataclass(frozen=True)
class _Field:
    name: str  # canonical: "Email", "Account.Name"
    key: str  # the key holding the value (in the parent record for a relationship field)
    sf_type: str
    kind: str
    get: Callable[[Record], Any]
    relationship: str | None
    offset: int

    def type_word(self) -> str:
        if self.kind == "number":
            return "integer" if self.sf_type == "int" else "double"
        return _TYPE_WORDS[self.kind]


# --------------------------------------------------------------------------- predicates
# Each builder returns a closure; the record-level semantics follow the brief: `= null` holds
# for None, any other comparison with a None value is false (Salesforce's own handling of
# `!=` against null values is [reported] to differ: the documented rule is kept). Checkboxes
# are never null: None reads as false, and `= null` means `= false` (documented).


def _always(record: Record) -> bool:
    return True


def _negation(inner: Predicate) -> Predicate:
    def negated(record: Record) -> bool:
        return not inner(record)

    return negated


def _conjunction(operands: list[Predicate]) -> Predicate:
    if len(operands) == 2:
        first, second = operands

        def both(record: Record) -> bool:
            return first(record) and second(record)

        return both

    def every(record: Record) -> bool:
        return all(operand(record) for operand in operands)

    return every


def _disjunction(operands: list[Predicate]) -> Predicate:
    if len(operands) == 2:
        first, second = operands

        def either(record: Record) -> bool:
            return first(record) or second(record)

        return either

    def some(record: Record) -> bool:
        return any(operand(record) for operand in operands)

    return some


def _compare(field: _Field, compare: Callable[[Any, Any], bool], target: Any) -> Predicate:
    get, key = field.get, _KEYS[field.kind]
    if field.kind == "boolean":

        def checkbox(record: Record) -> bool:
            return compare(bool(get(record)), target)

        return checkbox

    def compared(record: Record) -> bool:
        value = get(record)
        if value is None:
            return False
        normal = key(value)
        return normal is not None and compare(normal, target)

    return compared


def _null_test(field: _Field, op: str) -> Predicate:
    get = field.get
    if op not in ("=", "!="):
        return lambda record: False  # ordering against null holds for no record
    if field.kind == "boolean":
        wanted = op == "!="
        return lambda record: bool(get(record)) is wanted
    if op == "=":
        return lambda record: get(record) is None
    return lambda record: get(record) is not None


def _within(field: _Field, op: str, start: str, end: str) -> Predicate:
    """A relative date literal is a range: `=` inside it, `<` before its start, `>` after it."""
    tests: dict[str, Callable[[str], bool]] = {
        "=": lambda key: start <= key < end,
        "!=": lambda key: not start <= key < end,
        "<": lambda key: key < start,
        "<=": lambda key: key < end,
        ">": lambda key: key >= end,
        ">=": lambda key: key >= start,
    }
    test, get, key = tests[op], field.get, _KEYS[field.kind]

    def within(record: Record) -> bool:
        value = get(record)
        normal = None if value is None else key(value)
        return normal is not None and test(normal)

    return within


def _member(field: _Field, targets: frozenset[Any], with_null: bool, negate: bool) -> Predicate:
    get, key = field.get, _KEYS[field.kind]
    if field.kind == "boolean":
        wanted = targets | {False} if with_null else targets
        return lambda record: (bool(get(record)) in wanted) is not negate

    def member(record: Record) -> bool:
        value = get(record)
        if value is None:
            return with_null and not negate
        return (key(value) in targets) is not negate

    return member


def _present_and(field: _Field, inner: Predicate) -> Predicate:
    get = field.get
    return lambda record: get(record) is not None and inner(record)


def _like(field: _Field, literal: Literal) -> Predicate:
    matcher = re.compile(literal.like_pattern, re.IGNORECASE | re.DOTALL).fullmatch
    get = field.get

    def like(record: Record) -> bool:
        value = get(record)
        return (
            value is not None
            and matcher(value if isinstance(value, str) else str(value)) is not None
        )

    return like


def _includes(field: _Field, groups: list[frozenset[str]], exclude: bool) -> Predicate:
    """INCLUDES ('a;b', 'c'): the value holds both a and b, or holds c. EXCLUDES: neither."""
    get = field.get

    def includes(record: Record) -> bool:
        value = get(record)
        if value is None:
            return False
        chosen = _multi_key(value)
        return any(group <= chosen for group in groups) is not exclude

    return includes
