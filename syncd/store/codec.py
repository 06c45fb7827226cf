"""JSON as the store writes it. Unified values may be `Decimal`s (money must not drift through
binary floats): they are written as JSON numbers and, where exactness matters (unified values
and what syncd wrote), read back as `Decimal`s, so a value compares equal to itself after a
round trip through the store.

orjson does the work (reconcile and plan decode every record and entity they touch, and the
standard library's decoder was among a pass's largest costs). Where orjson would answer
differently from the standard library, the standard library answers: an integer past 64 bits
(orjson cannot write one, and reads one back as a float), and the `NaN`/`Infinity` literals
and out-of-range numbers that orjson refuses to read.
"""

from __future__ import annotations

import json
from collections.abc import Hashable
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import orjson

_OPTIONS = orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS | orjson.OPT_PASSTHROUGH_DATETIME
# orjson reads an integer past 64 bits as a float. Floats that large are rare in the store, so a
# document holding one is read again by the standard library, which keeps such an int exact.
_HUGE = 2.0**63


class _Inexact(Exception):
    """The document holds a number orjson did not read as the standard library would."""


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not storable as JSON")


def dumps(value: Any, *, sort_keys: bool = True) -> str:
    """Compact JSON with sorted keys (or in insertion order) and non-ASCII text as it is."""
    try:
        options = _OPTIONS if sort_keys else _OPTIONS & ~orjson.OPT_SORT_KEYS
        return orjson.dumps(value, default=_plain, option=options).decode()
    except orjson.JSONEncodeError:
        return json.dumps(
            value, ensure_ascii=False, sort_keys=sort_keys, default=_plain, separators=(",", ":")
        )


def loads(text: str | bytes) -> Any:
    """JSON with its decimal numbers as floats, as `json.loads` reads them (source records)."""
    try:
        value = orjson.loads(text)
        _check(value)
    except (orjson.JSONDecodeError, _Inexact):
        return json.loads(text)
    return value


def loads_exact(text: str | bytes) -> Any:
    """JSON with its decimal numbers as `Decimal`s (unified values, written values).

    The store writes every float as its shortest repr, so `Decimal(repr(float))` gives the
    same `Decimal`, digit for digit, that `json.loads(text, parse_float=Decimal)` gives."""
    try:
        return _exact(orjson.loads(text))
    except (orjson.JSONDecodeError, _Inexact):
        return json.loads(text, parse_float=Decimal)


def _check(value: Any) -> None:
    """Raise `_Inexact` where orjson may have read an integer as a float."""
    for item in value.values() if type(value) is dict else value if type(value) is list else ():
        kind = type(item)
        if kind is float:
            if not -_HUGE < item < _HUGE:
                raise _Inexact
        elif kind is dict or kind is list:
            _check(item)
    if type(value) is float and not -_HUGE < value < _HUGE:
        raise _Inexact


def _decimal(number: float) -> Decimal:
    if not -_HUGE < number < _HUGE:
        raise _Inexact
    return Decimal(repr(number))


def _exact(value: Any) -> Any:
    """Floats as `Decimal`s, in place (a decoded document is nobody else's yet)."""
    kind = type(value)
    if kind is float:
        return _decimal(value)
    if kind is dict:
        for key, item in value.items():
            inner = type(item)
            if inner is float:
                value[key] = _decimal(item)
            elif inner is dict or inner is list:
                _exact(item)
    elif kind is list:
        for index, item in enumerate(value):
            inner = type(item)
            if inner is float:
                value[index] = _decimal(item)
            elif inner is dict or inner is list:
                _exact(item)
    return value


class Decoded:
    """Documents decoded once per pass: `loads` of the text decoded before under the same key
    answers the value decoded then (a pass reads each source record in reconcile, in deriving
    stages and in planning). A changed text is decoded again, so nothing goes stale.

    What it answers is shared: callers must not change it. It holds at most `capacity`
    documents and then decodes without keeping, so a pass over a million records does not
    hold them all (the first ones are kept: a pass reads in the same order stage after stage,
    where a least-recently-used memo would have dropped each before it was read again).
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._kept: dict[Hashable, tuple[str, Any]] = {}

    def loads(self, key: Hashable, text: str) -> Any:
        found = self._kept.get(key)
        if found is not None and found[0] == text:
            return found[1]
        value = loads(text)
        if found is not None or len(self._kept) < self.capacity:
            self._kept[key] = (text, value)
        return value

    def clear(self) -> None:
        self._kept.clear()
