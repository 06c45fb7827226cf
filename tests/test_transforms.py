"""The named transforms: unified forms, wire forms, and the round-trip and idempotence laws."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from syncd.transforms import TRANSFORMS, is_valid_email, transform_named

email = transform_named("email")
domain = transform_named("domain")
phone = transform_named("phone")
day = transform_named("date")
number = transform_named("number")

# -- email


def test_email_is_lower_cased_and_trimmed() -> None:
    assert email.normalize("  Ann.Lee@Example.COM \n") == "ann.lee@example.com"


@pytest.mark.parametrize(
    "value",
    [
        "not an email",
        "ann@",
        "@example.com",
        "ann@example",
        "ann lee@example.com",
        "ann@@example.com",
        "ann\x00@x.com",
    ],
)
def test_invalid_email_is_kept_as_it_is_but_flagged(value: str) -> None:
    normalized = email.normalize(value)
    assert normalized == value.strip().lower()
    assert not is_valid_email(normalized)


def test_valid_email_is_flagged_valid() -> None:
    assert is_valid_email("ann.lee+news@mail.example.co.uk")


@pytest.mark.parametrize("value", [None, "", "   "])
def test_blank_email_is_none(value: Any) -> None:
    assert email.normalize(value) is None


# -- domain


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Acme.com", "acme.com"),
        ("https://www.Acme.com/pricing?x=1#top", "acme.com"),
        ("http://acme.com:8080", "acme.com"),
        ("acme.com.", "acme.com"),
        ("www.acme.com/", "acme.com"),
        ("//cdn.acme.com/a", "cdn.acme.com"),
        ("https://eu.shop.acme.co.uk/", "eu.shop.acme.co.uk"),
        ("https://user:pw@acme.com/", "acme.com"),
        ("www.www.acme.com", "acme.com"),
        ("www.com", "www.com"),
        ("münchen.de", "xn--mnchen-3ya.de"),
        ("https://www.MÜNCHEN.de/stadt", "xn--mnchen-3ya.de"),
        ("xn--mnchen-3ya.de", "xn--mnchen-3ya.de"),
    ],
)
def test_domain_keeps_the_host_without_scheme_www_port_path_or_trailing_dot(
    value: str, expected: str
) -> None:
    assert domain.normalize(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "  ",
        "localhost",
        "not a domain",
        "http://",
        "acme..com",
        "-acme.com",
        "acme_corp.com",
        "N/A",
        "a@b",
    ],
)
def test_garbage_domain_is_none(value: Any) -> None:
    assert domain.normalize(value) is None


# -- phone


def test_phone_is_trimmed_and_spaces_collapsed_but_digits_untouched() -> None:
    assert phone.normalize("  +1 (555)   010-9999\text. 12 ") == "+1 (555) 010-9999 ext. 12"


def test_phone_from_a_number_becomes_text() -> None:
    assert phone.normalize(5550109999) == "5550109999"


# -- date


@pytest.mark.parametrize(
    "value",
    [
        "2024-03-01",
        "2024-03-01T00:00:00Z",
        "2024-03-01T23:30:00.000+0000",
        "2024-03-01T10:00:00+01:00",
        "1709251200000",
        1709251200000,
        date(2024, 3, 1),
        datetime(2024, 3, 1, 12, tzinfo=UTC),
    ],
)
def test_date_reads_every_form_both_systems_send(value: Any) -> None:
    assert day.normalize(value) == date(2024, 3, 1)


def test_date_in_another_timezone_is_taken_in_utc() -> None:
    assert day.normalize("2024-03-01T00:30:00+02:00") == date(2024, 2, 29)


def test_date_goes_to_hubspot_datetime_properties_as_midnight_utc_epoch_ms() -> None:
    assert day.to_hubspot("2024-03-01", "datetime") == "1709251200000"
    assert day.to_hubspot("2024-03-01", "date") == "2024-03-01"
    assert day.to_salesforce("1709251200000") == "2024-03-01"


@pytest.mark.parametrize("value", ["yesterday", "2024-13-01", "01/03/2024"])
def test_garbage_date_raises_a_clear_value_error(value: str) -> None:
    with pytest.raises(ValueError, match=value.replace("/", ".")):
        day.normalize(value)


# -- number


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1,234.50", Decimal("1234.5")),
        ("1234.5", Decimal("1234.5")),
        (1234.5, Decimal("1234.5")),
        (1000, Decimal("1000")),
        ("1e3", Decimal("1000")),
        ("-0", Decimal("0")),
        (0.1, Decimal("0.1")),
        (" 42 ", Decimal("42")),
        (Decimal("19.990"), Decimal("19.99")),
    ],
)
def test_number_reads_text_and_json_numbers_exactly(value: Any, expected: Decimal) -> None:
    normalized = number.normalize(value)
    assert normalized == expected
    assert str(normalized) == str(expected)


def test_number_goes_to_hubspot_as_text_and_to_salesforce_as_a_json_number() -> None:
    assert number.to_hubspot("1,234.50") == "1234.5"
    assert number.to_hubspot(1e7) == "10000000"
    assert number.to_salesforce("1,234.50") == 1234.5
    assert number.to_salesforce("1000") == 1000
    assert isinstance(number.to_salesforce("1000"), int)


@pytest.mark.parametrize("value", ["12abc", "1,23", "1.2.3", "$", "NaN", "Infinity", True, "1 234"])
def test_garbage_number_raises_a_value_error_naming_the_value(value: Any) -> None:
    with pytest.raises(ValueError) as raised:
        number.normalize(value)
    assert str(value) in str(raised.value)


def test_every_transform_answers_none_for_a_blank() -> None:
    for transform in TRANSFORMS.values():
        assert transform.normalize(None) is None
        assert transform.normalize("  ") is None
        assert transform.to_hubspot(None) is None
        assert transform.to_salesforce("") is None


# -- properties

hostnames = st.lists(
    st.from_regex(r"[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True), min_size=2, max_size=4
).map(".".join)
# scheme, www, host, trailing dot, port, path: joined in that order by `urls`.
url_parts = st.tuples(
    st.sampled_from(["", "http://", "https://", "HTTPS://", "//"]),
    st.sampled_from(["", "www.", "WWW."]),
    hostnames,
    st.sampled_from(["", "."]),
    st.sampled_from(["", ":443", ":8080"]),
    st.sampled_from(["", "/", "/a/b?q=1#x"]),
)
urls = url_parts.map("".join)
amounts = st.decimals(
    min_value=Decimal("-1e12"),
    max_value=Decimal("1e12"),
    places=2,
    allow_nan=False,
    allow_infinity=False,
)
dates = st.dates(min_value=date(1971, 1, 1), max_value=date(2999, 12, 31))


@given(st.one_of(st.text(), urls))
def test_domain_normalize_is_idempotent(value: str) -> None:
    once = domain.normalize(value)
    assert domain.normalize(once) == once


@given(url_parts)
def test_a_url_normalizes_to_its_host_without_scheme_www_port_or_path(
    parts: tuple[str, str, str, str, str, str],
) -> None:
    _, www, host, _, _, _ = parts
    labels = (www.lower() + host).split(".")
    while labels[0] == "www" and len(labels) > 2:  # never down to one label (`www.com`)
        labels = labels[1:]
    assert domain.normalize("".join(parts)) == ".".join(labels)


@given(st.text())
def test_email_and_phone_normalize_are_idempotent_and_never_crash(value: str) -> None:
    for transform in (email, phone):
        once = transform.normalize(value)
        assert transform.normalize(once) == once
    is_valid_email(email.normalize(value))


@given(amounts)
def test_amounts_round_trip_exactly_through_both_wire_forms(value: Decimal) -> None:
    unified = number.normalize(value)
    assert unified == value
    assert number.normalize(number.to_hubspot(unified)) == unified
    assert number.normalize(number.to_salesforce(unified)) == unified
    assert number.normalize(unified) == unified


@given(
    st.one_of(
        st.text(),
        amounts.map(str),
        st.floats(allow_nan=False, allow_infinity=False).map(str),
        st.integers().map(str),
        st.from_regex(r"\s*[-+]?[\d,]{1,12}(\.\d{0,4})?\s*", fullmatch=True),
    )
)
def test_number_either_raises_value_error_or_is_idempotent(value: str) -> None:
    try:
        once = number.normalize(value)
    except ValueError:
        return
    assert number.normalize(once) == once
    assert number.normalize(number.to_hubspot(once)) == once


@given(dates, st.sampled_from(["date", "datetime"]))
def test_dates_round_trip_through_both_wire_forms(value: date, property_type: str) -> None:
    unified = day.normalize(value)
    assert day.normalize(day.to_hubspot(unified, property_type)) == unified
    assert day.normalize(day.to_salesforce(unified)) == unified
    assert day.normalize(unified) == unified


@given(
    st.one_of(
        st.text(),
        dates.map(str),
        st.datetimes(timezones=st.just(UTC)).map(lambda d: d.isoformat()),
        st.integers(min_value=-(10**15), max_value=10**15).map(str),
    )
)
def test_date_either_raises_value_error_or_is_idempotent(value: str) -> None:
    try:
        once = day.normalize(value)
    except ValueError:
        return
    assert day.normalize(once) == once


@given(
    st.sampled_from(sorted(TRANSFORMS)),
    st.one_of(st.text(), urls, amounts.map(str), dates.map(str)),
)
def test_every_transform_round_trips_through_both_wire_forms(name: str, value: str) -> None:
    transform = TRANSFORMS[name]
    try:
        unified = transform.normalize(value)
    except ValueError:
        return  # date and number refuse garbage; the caller parks the record
    assert transform.normalize(unified) == unified
    assert transform.normalize(transform.to_hubspot(unified)) == unified
    assert transform.normalize(transform.to_salesforce(unified)) == unified
