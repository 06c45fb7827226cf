"""JSON as the store writes it: orjson answers exactly what the standard library answered
(decimal numbers as `Decimal`s digit for digit, integers past 64 bits kept whole, sorted keys,
non-ASCII text as it is), and the per-pass memo of decoded records never answers stale data."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from syncd.model import Page, Record
from syncd.store import Store
from syncd.store.codec import Decoded, dumps, loads, loads_exact

# What unified values and source records hold: text (any script, controls included), numbers
# of every size, money as Decimal, flags, and nesting.
scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.decimals(allow_nan=False, allow_infinity=False, places=4)
    | st.text()
)
documents = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


def standard_dumps(value: Any) -> str:
    """What the store wrote before orjson: the standard library with the same fallbacks."""

    def plain(item: Any) -> Any:
        if isinstance(item, Decimal):
            return int(item) if item == item.to_integral_value() else float(item)
        raise TypeError(type(item).__name__)

    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=plain)


def same(left: Any, right: Any) -> bool:
    """Equal, and of the same types all the way down (1 == 1.0 == Decimal(1) is not enough),
    and a Decimal with the same digits and exponent (str)."""
    if type(left) is not type(right):
        return False
    if isinstance(left, dict):
        return left.keys() == right.keys() and all(same(left[k], right[k]) for k in left)
    if isinstance(left, list):
        return len(left) == len(right) and all(map(same, left, right))
    if isinstance(left, Decimal):
        return str(left) == str(right)
    return bool(left == right)


@given(documents)
def test_loads_exact_gives_the_decimals_the_standard_parser_gave(value: Any) -> None:
    text = dumps(value)
    assert same(loads_exact(text), json.loads(text, parse_float=Decimal))
    old = standard_dumps(value)
    assert same(loads_exact(old), json.loads(old, parse_float=Decimal))


@given(documents)
def test_loads_reads_what_the_standard_library_reads(value: Any) -> None:
    for text in (dumps(value), standard_dumps(value)):
        assert same(loads(text), json.loads(text))


@given(documents)
def test_dumps_is_the_standard_document(value: Any) -> None:
    assert same(json.loads(dumps(value)), json.loads(standard_dumps(value)))


@given(st.decimals(allow_nan=False, allow_infinity=False, places=2))
def test_money_round_trips_without_drift(amount: Decimal) -> None:
    # A whole amount is written as an integer and comes back whole; the others as the
    # shortest float text, read back as the Decimal of that text (not of the binary float).
    whole = amount == amount.to_integral_value()
    expected = int(amount) if whole else Decimal(repr(float(amount)))
    assert same(loads_exact(dumps({"amount": amount}))["amount"], expected)
    assert loads_exact(dumps({"amount": Decimal("1234.50")})) == {"amount": Decimal("1234.5")}
    assert str(loads_exact(dumps([Decimal("0.10")]))[0]) == "0.1"


def test_integers_past_64_bits_stay_whole() -> None:
    huge = {"n": 12345678901234567890123, "m": -(2**64), "nested": [[2**70]]}
    text = dumps(huge)
    assert loads(text) == huge
    assert same(loads_exact(text), huge)
    assert loads("1e400") == float("inf")  # orjson refuses it; the standard library reads it


def test_dumps_sorts_keys_keeps_unicode_and_writes_dates() -> None:
    text = dumps({"b": "Zoë 你好 🚀", "a": date(2024, 5, 1), "c": datetime(2024, 5, 1, tzinfo=UTC)})
    assert text == ('{"a":"2024-05-01","b":"Zoë 你好 🚀","c":"2024-05-01T00:00:00+00:00"}')
    assert dumps({"b": 1, "a": 2}, sort_keys=False) == '{"b":1,"a":2}'
    with pytest.raises(TypeError):
        dumps({"x": object()})


def test_lone_surrogates_fall_back_to_the_standard_library() -> None:
    value = {"name": "bad \ud800 half"}
    assert loads(dumps(value)) == value


def test_decoded_answers_the_same_document_until_its_text_changes() -> None:
    memo = Decoded(capacity=2)
    first = memo.loads("a", '{"x":1}')
    assert memo.loads("a", '{"x":1}') is first
    assert memo.loads("a", '{"x":2}') == {"x": 2}
    memo.loads("b", "[]")
    memo.loads("c", "{}")  # past capacity: decoded, not kept
    assert memo.loads("c", "{}") == {}
    assert memo.loads("c", "{}") is not memo.loads("c", "{}")
    memo.clear()
    assert memo.loads("a", '{"x":2}') is not first


def test_records_read_again_after_a_pull_changed_them(tmp_path: Path) -> None:
    store = Store(tmp_path / "syncd.db")
    at = datetime(2026, 1, 1, tzinfo=UTC)

    def pull(run: int, title: str) -> None:
        record = Record("salesforce", "Contact", "003A", at, {"Title": title})
        store.save_page(run, "salesforce", Page("Contact", [record], "c", watermark=at))

    key = ("salesforce", "Contact", "003A")
    pull(1, "CEO")
    assert store.records([key])[key]["data"] == {"Title": "CEO"}
    pull(2, "CTO")
    assert store.records([key])[key]["data"] == {"Title": "CTO"}
    assert [r["data"] for r in store.changed_records([key[:2]], 1, keep=True)] == [{"Title": "CTO"}]
    store.close()
