"""The SOQL subset: parsing, Salesforce's error answers, and evaluation over wire-form records."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.salesforce.soql import (
    And,
    Comparison,
    Not,
    Or,
    OrderTerm,
    Relationship,
    SoqlError,
)
from connectors.salesforce.soql_binding import BoundQuery
from connectors.salesforce.soql_parser import parse

LEAD_TYPES = {
    "Id": "id",
    "FirstName": "string",
    "LastName": "string",
    "Email": "email",
    "Status": "picklist",
    "Interests__c": "multipicklist",
    "AccountId": "reference",
    "NumberOfEmployees": "int",
    "AnnualRevenue": "currency",
    "IsConverted": "boolean",
    "IsDeleted": "boolean",
    "Birthdate": "date",
    "SystemModstamp": "datetime",
    "CreatedDate": "datetime",
}
NOW = datetime(2024, 4, 25, 15, 50, 37, tzinfo=UTC)


def lead(number: int, **fields: Any) -> dict[str, Any]:
    record: dict[str, Any] = {name: None for name in LEAD_TYPES}
    record.update(
        Id=f"00Q{number:015d}",
        IsConverted=False,
        IsDeleted=False,
        SystemModstamp="2024-01-01T00:00:00.000+0000",
    )
    record.update(fields)
    return record


def bound(text: str, **options: Any) -> BoundQuery:
    return parse(text).bind(LEAD_TYPES, now=options.pop("now", NOW), **options)


def ids(query: BoundQuery, records: list[dict[str, Any]]) -> list[str]:
    return [record["Id"] for record in query.select(records)]


def error_of(text: str, field_types: dict[str, str] | None = None) -> SoqlError:
    with pytest.raises(SoqlError) as raised:
        parse(text).bind(field_types or LEAD_TYPES, now=NOW)
    return raised.value


# --------------------------------------------------------------------------- parsing


def test_select_list_keeps_fields_as_written_including_relationship_paths() -> None:
    query = parse("SELECT Id, email, Account.Name FROM Lead")
    assert query.fields == ("Id", "email", "Account.Name")
    assert query.sobject == "Lead"
    assert not query.count_only
    assert query.where is None and query.order_by == () and query.limit is None


def test_keywords_are_case_insensitive() -> None:
    query = parse("select Id from Lead where Email = 'a' order by Id desc nulls last limit 3")
    assert query.fields == ("Id",)
    assert query.order_by == (OrderTerm("Id", descending=True, nulls_last=True),)
    assert query.limit == 3


def test_count_query_has_no_fields() -> None:
    query = parse("SELECT COUNT() FROM Lead WHERE IsDeleted = false")
    assert query.count_only and query.fields == ()


def test_where_clause_parses_into_a_tree_of_and_or_not() -> None:
    query = parse("SELECT Id FROM Lead WHERE NOT Status = 'x' AND (Email = 'a' OR Email = 'b')")
    assert isinstance(query.where, And)
    negated, either = query.where.operands
    assert isinstance(negated, Not) and isinstance(negated.operand, Comparison)
    assert isinstance(either, Or) and len(either.operands) == 2


def test_order_by_nulls_default_follows_the_direction() -> None:
    query = parse("SELECT Id FROM Lead ORDER BY LastName, FirstName DESC, Email ASC NULLS LAST")
    assert [(t.field, t.descending, t.nulls_last) for t in query.order_by] == [
        ("LastName", False, False),
        ("FirstName", True, True),
        ("Email", False, True),
    ]


def test_order_term_built_by_hand_resolves_the_nulls_default() -> None:
    assert OrderTerm("Id", descending=True).nulls_last is True
    assert OrderTerm("Id").nulls_last is False


def test_limit_and_offset_parse_as_integers() -> None:
    query = parse("SELECT Id FROM Lead LIMIT 10 OFFSET 20")
    assert (query.limit, query.offset) == (10, 20)


def test_referenced_fields_cover_select_where_and_order_by() -> None:
    query = parse(
        "SELECT Id, Email FROM Lead WHERE (Status = 'a' OR NOT IsDeleted = true) "
        "AND Birthdate IN (2024-01-01) ORDER BY LastName"
    )
    assert query.referenced_fields() == {
        "Id",
        "Email",
        "Status",
        "IsDeleted",
        "Birthdate",
        "LastName",
    }


def test_literals_of_every_kind_parse_to_their_values() -> None:
    query = parse(
        "SELECT Id FROM Lead WHERE A = 'it\\'s\\n' AND B = -12 AND C = 3.5 AND D = TRUE "
        "AND E = null AND F = 2024-01-02 AND G = 2024-01-02T03:04:05.123-01:30 "
        "AND H = LAST_N_DAYS:7 AND I = today"
    )
    assert isinstance(query.where, And)
    values = {
        c.field.name: (c.values[0].kind, c.values[0].value)
        for c in query.where.operands
        if isinstance(c, Comparison)
    }
    assert values == {
        "A": ("string", "it's\n"),
        "B": ("number", -12),
        "C": ("number", 3.5),
        "D": ("boolean", True),
        "E": ("null", None),
        "F": ("date", datetime(2024, 1, 2).date()),
        "G": ("datetime", "2024-01-02T04:34:05.123+0000"),
        "H": ("date_range", ("LAST_N_DAYS", 7)),
        "I": ("date_range", ("TODAY", 0)),
    }


# --------------------------------------------------------------------------- errors


def test_unknown_field_answers_invalid_field_with_salesforce_caret_message() -> None:
    error = error_of("SELECT Foo FROM Lead")
    assert error.error_code == "INVALID_FIELD"
    assert error.message == (
        "\nSELECT Foo FROM Lead\n       ^\nERROR at Row:1:Column:8\n"
        "No such column 'Foo' on entity 'Lead'. If you are attempting to use a custom field, "
        "be sure to append the '__c' after the custom field name. Please reference your WSDL "
        "or the describe call for the appropriate names."
    )


def test_unknown_field_in_where_or_order_by_points_at_that_field() -> None:
    where = error_of("SELECT Id FROM Lead WHERE Nope__c = 'x'")
    order = error_of("SELECT Id FROM Lead ORDER BY Nope__c")
    assert "ERROR at Row:1:Column:27\nNo such column 'Nope__c'" in where.message
    assert "ERROR at Row:1:Column:30\nNo such column 'Nope__c'" in order.message


def test_error_position_counts_rows_and_columns_on_multi_line_queries() -> None:
    error = error_of("SELECT Id\nFROM Lead\nWHERE   Bogus = 1")
    assert error.message.startswith("\nWHERE   Bogus = 1\n        ^\nERROR at Row:3:Column:9\n")


def test_quoted_value_for_a_datetime_field_answers_invalid_field() -> None:
    error = error_of("SELECT Id FROM Lead WHERE SystemModstamp > '2024-01-01T00:00:00Z'")
    assert error.error_code == "INVALID_FIELD"
    assert error.message.endswith(
        "value of filter criterion for field 'SystemModstamp' must be of type dateTime "
        "and should not be enclosed in quotes"
    )


def test_date_literal_for_a_datetime_field_is_refused() -> None:
    error = error_of("SELECT Id FROM Lead WHERE systemmodstamp >= 2024-01-01")
    assert error.error_code == "INVALID_FIELD"
    assert "field 'SystemModstamp' must be of type dateTime" in error.message


def test_unquoted_number_for_a_text_field_must_be_enclosed_in_quotes() -> None:
    error = error_of("SELECT Id FROM Lead WHERE LastName = 5")
    assert error.message.endswith(
        "field 'LastName' must be of type string and should be enclosed in quotes"
    )


@pytest.mark.parametrize(
    ("condition", "type_word"),
    [
        ("NumberOfEmployees = '5'", "integer"),
        ("AnnualRevenue IN ('5')", "double"),
        ("IsDeleted = 'false'", "boolean"),
        ("Birthdate = 2024-01-01T00:00:00Z", "date"),
    ],
)
def test_literal_of_the_wrong_type_names_the_expected_type(condition: str, type_word: str) -> None:
    error = error_of(f"SELECT Id FROM Lead WHERE {condition}")
    assert error.error_code == "INVALID_FIELD"
    assert f"must be of type {type_word} and should not be enclosed in quotes" in error.message


def test_operator_not_valid_for_the_field_type_answers_invalid_query_filter_operator() -> None:
    like = error_of("SELECT Id FROM Lead WHERE NumberOfEmployees LIKE '5%'")
    includes = error_of("SELECT Id FROM Lead WHERE Status INCLUDES ('a')")
    ordered = error_of("SELECT Id FROM Lead WHERE IsDeleted > false")
    assert {like.error_code, includes.error_code, ordered.error_code} == {
        "INVALID_QUERY_FILTER_OPERATOR"
    }
    assert includes.message.endswith(
        "includes or excludes operator only valid on multipicklist field"
    )


def test_unknown_sobject_error_is_invalid_type_pointing_at_from() -> None:
    error = parse("SELECT Id FROM Leed").invalid_type_error()
    assert error.error_code == "INVALID_TYPE"
    assert error.message.startswith("\nSELECT Id FROM Leed\n               ^\n")
    assert "sObject type 'Leed' is not supported." in error.message


@pytest.mark.parametrize(
    ("text", "token", "column"),
    [
        ("SELECT Id FROM Lead WHERE", "<EOF>", 26),
        ("SELECT Id FROM Lead WHERE Email = 'a' AND Id = 'b' OR Id = 'c'", "OR", 52),
        ("SELECT Id FROM Lead WHERE Email = 'a' OR Id = 'b' AND Id = 'c'", "AND", 51),
        ("SELECT Id, FROM Lead", "FROM", 12),
        ("SELECT Id FROM Lead LIMIT -1", "-1", 27),
        ("SELECT Id FROM Lead WHERE Email = :email", ":", 35),
        ("SELECT Id FROM Lead GROUP BY Email", "GROUP", 21),
        ("SELECT COUNT(Id) FROM Lead", "Id", 14),
        ("SELECT Id FROM Lead WHERE Id IN (SELECT Id FROM Lead)", "SELECT", 34),
        ("SELECT Id FROM Lead WHERE Email NOT LIKE 'a%'", "NOT", 33),
        ("SELECT Id FROM Lead;", ";", 20),
    ],
)
def test_text_outside_the_grammar_answers_malformed_query_at_the_token(
    text: str, token: str, column: int
) -> None:
    with pytest.raises(SoqlError) as raised:
        parse(text)
    assert raised.value.error_code == "MALFORMED_QUERY"
    assert raised.value.message.endswith(
        f"\nERROR at Row:1:Column:{column}\nunexpected token: {token}"
    )


def test_mixing_and_with_or_is_fine_inside_parentheses() -> None:
    query = bound("SELECT Id FROM Lead WHERE (Email = 'a' AND Status = 'b') OR Status = 'c'")
    records = [lead(1, Email="a", Status="b"), lead(2, Status="c"), lead(3, Email="a")]
    assert ids(query, records) == [records[0]["Id"], records[1]["Id"]]


@pytest.mark.parametrize(
    ("text", "detail"),
    [
        ("SELECT Id FROM Lead WHERE Email = 'open", "unterminated string literal"),
        ("SELECT Id FROM Lead WHERE Email = 'a\\qb'", "Illegal escape sequence '\\q'"),
        ("SELECT Id, email FROM Lead ORDER BY Id, Email", ""),
        ("SELECT Id, ID FROM Lead", "duplicate field selected: ID"),
        ("SELECT Id FROM Lead WHERE Birthdate = 2024-02-30", "invalid date: 2024-02-30"),
        ("SELECT Id FROM Lead WHERE CreatedDate = 2024-01-01T25:00:00Z", "invalid dateTime"),
        ("SELECT Id FROM Lead WHERE " + "(" * 150 + "Id = 'x'" + ")" * 150, "nested too deeply"),
    ],
)
def test_malformed_literals_and_shapes_answer_malformed_query(text: str, detail: str) -> None:
    if not detail:  # the control case: a legal query
        assert parse(text).fields == ("Id", "email")
        return
    with pytest.raises(SoqlError) as raised:
        parse(text)
    assert raised.value.error_code == "MALFORMED_QUERY"
    assert detail in raised.value.message


def test_offset_past_two_thousand_is_out_of_range() -> None:
    with pytest.raises(SoqlError) as raised:
        parse("SELECT Id FROM Lead OFFSET 2001")
    assert raised.value.error_code == "NUMBER_OUTSIDE_VALID_RANGE"
    assert parse("SELECT Id FROM Lead OFFSET 2000").offset == 2000


def test_soql_keywords_inside_a_string_literal_stay_a_literal() -> None:
    hostile = "x' OR Email != null OR Email = 'y"
    escaped = hostile.replace("'", "\\'")
    query = bound(f"SELECT Id FROM Lead WHERE Email = '{escaped}'")
    records = [lead(1, Email="a@example.com"), lead(2, Email=hostile), lead(3, Email="y")]
    assert ids(query, records) == [records[1]["Id"]]
    assert query.query.referenced_fields() == {"Id", "Email"}


def test_backslash_escapes_decode_and_escaped_wildcards_match_themselves_in_like() -> None:
    query = bound(r"SELECT Id FROM Lead WHERE LastName LIKE '100\%\_\\%'")
    records = [
        lead(1, LastName="100%_\\ off"),
        lead(2, LastName="100x_\\ off"),
        lead(3, LastName="100%y\\"),
    ]
    assert ids(query, records) == [records[0]["Id"]]


# --------------------------------------------------------------------------- binding


def test_bind_answers_select_list_in_describe_casing() -> None:
    query = bound("SELECT id, EMAIL, systemmodstamp FROM Lead")
    assert query.canonical_fields == ("Id", "Email", "SystemModstamp")
    record = lead(1, Email="a@example.com")
    assert query.project(record) == {
        "Id": record["Id"],
        "Email": "a@example.com",
        "SystemModstamp": "2024-01-01T00:00:00.000+0000",
    }


def test_project_answers_missing_record_keys_as_null() -> None:
    query = bound("SELECT Id, Email FROM Lead")
    assert query.project({"Id": "00Q1"}) == {"Id": "00Q1", "Email": None}


def test_relationship_fields_nest_the_resolved_parent_like_salesforce() -> None:
    accounts = {"001A": {"attributes": {"type": "Account"}, "Name": "Acme", "Website": "a.io"}}
    relationships = {"Account": Relationship("Account", {"Name": "string", "Website": "url"})}
    query = bound(
        "SELECT Id, account.name, Account.WEBSITE FROM Lead WHERE Account.Name = 'ACME'",
        relationships=relationships,
        resolve_parent=lambda rel, record: accounts.get(record["AccountId"] or ""),
    )
    with_parent, orphan = lead(1, AccountId="001A"), lead(2)
    assert query.canonical_fields == ("Id", "Account.Name", "Account.Website")
    assert query.project(with_parent) == {
        "Id": with_parent["Id"],
        "Account": {"attributes": {"type": "Account"}, "Name": "Acme", "Website": "a.io"},
    }
    assert query.project(orphan) == {"Id": orphan["Id"], "Account": None}
    assert ids(query, [with_parent, orphan]) == [with_parent["Id"]]


def test_relationship_without_parent_describe_is_vouched_for_by_its_reference_field() -> None:
    query = bound("SELECT Id, Account.Name FROM Lead")
    assert query.canonical_fields == ("Id", "Account.Name")
    assert query.project(lead(1, AccountId="001A"))["Account"] is None


def test_unknown_relationship_answers_invalid_field() -> None:
    error = error_of("SELECT Id, Owner.Name FROM Lead")
    assert error.error_code == "INVALID_FIELD"
    assert "Didn't understand relationship 'Owner' in field path." in error.message


def test_unknown_field_on_a_described_parent_names_the_parent_entity() -> None:
    relationships = {"Account": Relationship("Account", {"Name": "string"})}
    with pytest.raises(SoqlError) as raised:
        parse("SELECT Account.Nmae FROM Lead").bind(LEAD_TYPES, relationships=relationships)
    assert "No such column 'Nmae' on entity 'Account'" in raised.value.message


# --------------------------------------------------------------------------- semantics


def test_string_equality_and_in_ignore_case() -> None:
    records = [lead(1, Email="Ann@Example.com"), lead(2, Email="bob@example.com")]
    assert ids(bound("SELECT Id FROM Lead WHERE email = 'ANN@example.COM'"), records) == [
        records[0]["Id"]
    ]
    assert ids(bound("SELECT Id FROM Lead WHERE Email IN ('x', 'BOB@EXAMPLE.COM')"), records) == [
        records[1]["Id"]
    ]
    assert ids(bound("SELECT Id FROM Lead WHERE Email != 'ann@example.com'"), records) == [
        records[1]["Id"]
    ]


def test_string_ordering_comparisons_ignore_case() -> None:
    records = [lead(1, LastName="apple"), lead(2, LastName="Banana"), lead(3, LastName="cherry")]
    assert ids(bound("SELECT Id FROM Lead WHERE LastName < 'BANANA'"), records) == [
        records[0]["Id"]
    ]
    assert ids(bound("SELECT Id FROM Lead WHERE LastName >= 'banana'"), records) == [
        records[1]["Id"],
        records[2]["Id"],
    ]


def test_like_wildcards_match_case_insensitively() -> None:
    records = [lead(1, Email="ann@ACME.com"), lead(2, Email="bob@acme.co"), lead(3, Email="a")]
    assert ids(bound("SELECT Id FROM Lead WHERE Email LIKE '%@acme.com'"), records) == [
        records[0]["Id"]
    ]
    assert ids(bound("SELECT Id FROM Lead WHERE Email LIKE '___@acme.c_'"), records) == [
        records[1]["Id"]
    ]


def test_datetime_literal_offset_is_compared_as_an_instant() -> None:
    # 2024-01-01T00:00:00+02:00 is 2023-12-31T22:00:00Z, so 23:00Z is after it.
    record = lead(1, SystemModstamp="2023-12-31T23:00:00.000+0000")
    after_plus_two = bound("SELECT Id FROM Lead WHERE SystemModstamp >= 2024-01-01T00:00:00+02:00")
    after_utc = bound("SELECT Id FROM Lead WHERE SystemModstamp >= 2024-01-01T00:00:00Z")
    before_minus_one = bound(
        "SELECT Id FROM Lead WHERE SystemModstamp < 2023-12-31T23:00:00.001-00:00"
    )
    assert after_plus_two.matches(record)
    assert not after_utc.matches(record)
    assert before_minus_one.matches(record)


def test_window_boundaries_are_exact_to_the_millisecond() -> None:
    query = bound(
        "SELECT Id FROM Lead WHERE SystemModstamp >= 2024-01-01T00:00:00.000Z "
        "AND SystemModstamp < 2024-01-01T00:00:01Z"
    )
    stamps = {
        "2023-12-31T23:59:59.999+0000": False,
        "2024-01-01T00:00:00.000+0000": True,
        "2024-01-01T00:00:00.999+0000": True,
        "2024-01-01T00:00:01.000+0000": False,
    }
    assert {s: query.matches(lead(1, SystemModstamp=s)) for s in stamps} == stamps


def test_record_datetimes_in_other_iso_spellings_are_still_compared_as_instants() -> None:
    query = bound("SELECT Id FROM Lead WHERE SystemModstamp = 2024-01-01T00:00:00Z")
    assert query.matches(lead(1, SystemModstamp="2024-01-01T01:00:00+01:00"))
    assert query.matches(lead(2, SystemModstamp=datetime(2024, 1, 1, tzinfo=UTC)))
    assert not query.matches(lead(3, SystemModstamp="not a datetime"))


@settings(max_examples=200, deadline=None)
@given(
    literal=st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2030, 1, 1)),
    record=st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2030, 1, 1)),
    offset_minutes=st.integers(min_value=-14 * 60, max_value=14 * 60),
)
def test_datetime_comparison_agrees_with_instant_arithmetic(
    literal: datetime, record: datetime, offset_minutes: int
) -> None:
    literal = literal.replace(microsecond=literal.microsecond // 1000 * 1000)
    record = record.replace(microsecond=record.microsecond // 1000 * 1000, tzinfo=UTC)
    zone = timezone(timedelta(minutes=offset_minutes))
    written = literal.replace(tzinfo=zone)
    sign = "+" if offset_minutes >= 0 else "-"
    hours, minutes = divmod(abs(offset_minutes), 60)
    millis = written.microsecond // 1000
    text = f"{written:%Y-%m-%dT%H:%M:%S}.{millis:03d}{sign}{hours:02d}:{minutes:02d}"
    stamp = f"{record:%Y-%m-%dT%H:%M:%S}.{record.microsecond // 1000:03d}+0000"
    query = bound(f"SELECT Id FROM Lead WHERE SystemModstamp > {text}")
    assert query.matches(lead(1, SystemModstamp=stamp)) == (record > written)


def test_dates_compare_with_date_literals() -> None:
    records = [lead(1, Birthdate="1990-05-01"), lead(2, Birthdate="2001-01-01"), lead(3)]
    assert ids(bound("SELECT Id FROM Lead WHERE Birthdate < 2000-01-01"), records) == [
        records[0]["Id"]
    ]


def test_relative_date_literals_are_ranges_around_now() -> None:
    stamps = [
        "2024-04-25T00:00:00.000+0000",
        "2024-04-24T23:59:59.999+0000",
        "2024-04-18T00:00:00.000+0000",
        "2024-04-17T23:59:59.999+0000",
        "2024-04-26T00:00:00.000+0000",
    ]
    records = [lead(n, CreatedDate=s) for n, s in enumerate(stamps)]

    def created(condition: str) -> list[str]:
        found = bound(f"SELECT Id FROM Lead WHERE CreatedDate {condition}").select(records)
        return [record["CreatedDate"] for record in found]

    assert created("= TODAY") == [stamps[0]]
    assert created("= YESTERDAY") == [stamps[1]]
    assert created("= LAST_N_DAYS:7") == stamps[:3]
    assert created("< LAST_N_DAYS:7") == [stamps[3]]
    assert created("> TODAY") == [stamps[4]]
    assert created(">= today") == [stamps[0], stamps[4]]


def test_relative_date_literal_on_a_date_field_uses_whole_days() -> None:
    records = [lead(1, Birthdate="2024-04-25"), lead(2, Birthdate="2024-04-24")]
    assert ids(bound("SELECT Id FROM Lead WHERE Birthdate = TODAY"), records) == [records[0]["Id"]]


def test_numbers_compare_numerically() -> None:
    records = [lead(1, AnnualRevenue=9.5), lead(2, AnnualRevenue=10), lead(3, AnnualRevenue=100)]
    assert ids(bound("SELECT Id FROM Lead WHERE AnnualRevenue >= 10"), records) == [
        records[1]["Id"],
        records[2]["Id"],
    ]
    assert ids(
        bound("SELECT Id FROM Lead WHERE AnnualRevenue > -1.5 AND AnnualRevenue < 10"), records
    ) == [records[0]["Id"]]


def test_in_and_not_in() -> None:
    records = [lead(1, Status="Open"), lead(2, Status="Working"), lead(3, Status="Closed"), lead(4)]
    query_in = bound("SELECT Id FROM Lead WHERE Status IN ('open', 'closed')")
    query_not_in = bound("SELECT Id FROM Lead WHERE Status NOT IN ('open', 'closed')")
    query_in_null = bound("SELECT Id FROM Lead WHERE Status IN ('working', null)")
    assert ids(query_in, records) == [records[0]["Id"], records[2]["Id"]]
    assert ids(query_not_in, records) == [records[1]["Id"]]
    assert ids(query_in_null, records) == [records[1]["Id"], records[3]["Id"]]


def test_null_tests_and_comparisons_against_null_values() -> None:
    records = [lead(1, Email="a@example.com"), lead(2)]
    assert ids(bound("SELECT Id FROM Lead WHERE Email = null"), records) == [records[1]["Id"]]
    assert ids(bound("SELECT Id FROM Lead WHERE Email != null"), records) == [records[0]["Id"]]
    # Any other comparison with a null value is false; NOT flips the whole comparison.
    assert ids(bound("SELECT Id FROM Lead WHERE Email != 'x'"), records) == [records[0]["Id"]]
    assert ids(bound("SELECT Id FROM Lead WHERE Email < 'z'"), records) == [records[0]["Id"]]
    assert ids(bound("SELECT Id FROM Lead WHERE NOT Email = 'x'"), records) == [
        records[0]["Id"],
        records[1]["Id"],
    ]


def test_checkbox_equal_null_means_false_as_documented() -> None:
    records = [lead(1, IsConverted=True), lead(2, IsConverted=False), lead(3, IsConverted=None)]
    assert ids(bound("SELECT Id FROM Lead WHERE IsConverted = null"), records) == [
        records[1]["Id"],
        records[2]["Id"],
    ]
    assert ids(bound("SELECT Id FROM Lead WHERE IsConverted != NULL"), records) == [
        records[0]["Id"]
    ]
    assert ids(bound("SELECT Id FROM Lead WHERE IsConverted = FALSE"), records) == [
        records[1]["Id"],
        records[2]["Id"],
    ]


def test_fifteen_and_eighteen_character_ids_name_the_same_record() -> None:
    record = lead(1, Id="00Q5e00000AbCdEFGH", AccountId="0015e00000XyZaBAAA")
    assert bound("SELECT Id FROM Lead WHERE Id = '00Q5e00000AbCdE'").matches(record)
    assert bound("SELECT Id FROM Lead WHERE AccountId IN ('0015e00000XyZaB')").matches(record)
    assert not bound("SELECT Id FROM Lead WHERE Id = '00Q5e00000ABCDE'").matches(record)


def test_includes_and_excludes_on_multipicklists() -> None:
    records = [lead(1, Interests__c="Golf;Tennis"), lead(2, Interests__c="golf"), lead(3)]
    includes = bound("SELECT Id FROM Lead WHERE Interests__c INCLUDES ('GOLF;tennis', 'chess')")
    excludes = bound("SELECT Id FROM Lead WHERE Interests__c EXCLUDES ('tennis')")
    exact = bound("SELECT Id FROM Lead WHERE Interests__c = 'tennis;golf'")
    assert ids(includes, records) == [records[0]["Id"]]
    assert ids(excludes, records) == [records[1]["Id"]]
    assert ids(exact, records) == [records[0]["Id"]]


def test_order_by_multiple_keys_with_nulls_placement() -> None:
    records = [
        lead(1, LastName="b", FirstName="x"),
        lead(2, LastName=None, FirstName="y"),
        lead(3, LastName="a", FirstName=None),
        lead(4, LastName="B", FirstName="z"),
        lead(5, LastName="a", FirstName="w"),
    ]
    asc = bound("SELECT Id FROM Lead ORDER BY LastName, FirstName DESC")
    desc = bound("SELECT Id FROM Lead ORDER BY LastName DESC NULLS FIRST, FirstName NULLS LAST")
    assert [r["Id"][-1] for r in asc.order(records)] == ["2", "5", "3", "4", "1"]
    assert [r["Id"][-1] for r in desc.order(records)] == ["2", "1", "4", "5", "3"]


def test_order_by_datetime_and_number_use_their_natural_order() -> None:
    records = [
        lead(1, SystemModstamp="2024-01-02T00:00:00.000+0000", AnnualRevenue=5),
        lead(2, SystemModstamp="2024-01-01T12:00:00+02:00", AnnualRevenue=50),
        lead(3, SystemModstamp="2024-01-01T11:00:00.000+0000", AnnualRevenue=-1),
    ]
    by_stamp = bound("SELECT Id FROM Lead ORDER BY SystemModstamp")
    by_amount = bound("SELECT Id FROM Lead ORDER BY AnnualRevenue DESC")
    assert [r["Id"][-1] for r in by_stamp.order(records)] == ["2", "3", "1"]
    assert [r["Id"][-1] for r in by_amount.order(records)] == ["2", "1", "3"]


def test_order_keeps_input_order_for_ties_and_without_order_by() -> None:
    records = [lead(n, Status="same") for n in range(5)]
    assert bound("SELECT Id FROM Lead ORDER BY Status").order(records) == records
    assert bound("SELECT Id FROM Lead ORDER BY Status DESC").order(records) == records
    assert bound("SELECT Id FROM Lead").order(iter(records)) == records


def test_limit_and_offset_page_after_ordering() -> None:
    records = [lead(n, NumberOfEmployees=n) for n in range(10)]
    query = bound("SELECT Id FROM Lead ORDER BY NumberOfEmployees DESC LIMIT 3 OFFSET 2")
    unordered = bound("SELECT Id FROM Lead LIMIT 2 OFFSET 9")
    assert [r["NumberOfEmployees"] for r in query.select(records)] == [7, 6, 5]
    assert [r["NumberOfEmployees"] for r in unordered.select(records)] == [9]


def test_count_counts_matching_records_within_limit() -> None:
    records = [lead(n, IsDeleted=n % 2 == 0) for n in range(10)]
    assert bound("SELECT COUNT() FROM Lead WHERE IsDeleted = false").count(records) == 5
    assert bound("SELECT COUNT() FROM Lead LIMIT 3").count(records) == 3
    assert bound("SELECT COUNT() FROM Lead").canonical_fields == ()


def test_matches_agrees_with_a_plain_filter_over_a_hundred_thousand_records() -> None:
    """Correctness at the size the emulator filters; its speed is `bench_emulators`' paging
    rows, measured, not asserted here."""
    records = [
        lead(
            n,
            Email=f"person{n}@example.com",
            SystemModstamp=f"2024-01-{1 + n % 28:02d}T{n % 24:02d}:00:00.000+0000",
            IsDeleted=n % 50 == 0,
        )
        for n in range(100_000)
    ]
    query = bound(
        "SELECT Id, Email, SystemModstamp FROM Lead WHERE SystemModstamp >= "
        "2024-01-10T00:00:00Z AND SystemModstamp < 2024-01-20T00:00:00.000+00:00 "
        "AND IsDeleted = false AND Email LIKE '%@example.com'"
    )
    found = [record for record in records if query.matches(record)]
    assert found == [
        r
        for r in records
        if "2024-01-10" <= r["SystemModstamp"][:10] < "2024-01-20" and not r["IsDeleted"]
    ]
    assert found  # the window holds records, and some are dropped for IsDeleted
    assert len(found) < sum(
        1 for r in records if "2024-01-10" <= r["SystemModstamp"][:10] < "2024-01-20"
    )


# --------------------------------------------------------------------------- robustness


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=200))
def test_parse_raises_only_soql_errors_on_arbitrary_text(text: str) -> None:
    try:
        parse(text)
    except SoqlError as error:
        assert error.error_code in {"MALFORMED_QUERY", "NUMBER_OUTSIDE_VALID_RANGE"}


_FIELDS = st.sampled_from(
    [
        "Email",
        "status",
        "Interests__c",
        "AccountId",
        "AnnualRevenue",
        "IsDeleted",
        "Birthdate",
        "SystemModstamp",
        "Account.Name",
    ]
)
_OPERATORS = st.sampled_from(["=", "!=", "<", ">=", "LIKE", "IN", "NOT IN", "INCLUDES", "EXCLUDES"])
_LITERALS = st.sampled_from(
    [
        "null",
        "TRUE",
        "'a%'",
        "'x\\''",
        "'A;b'",
        "5",
        "-2.5",
        "2024-01-01",
        "2024-01-01T00:00:00Z",
        "2024-01-01T00:00:00.5-03:30",
        "TODAY",
        "LAST_N_DAYS:3",
    ]
)


@st.composite
def _comparisons(draw: st.DrawFn) -> str:
    field, op = draw(_FIELDS), draw(_OPERATORS)
    if op in ("IN", "NOT IN", "INCLUDES", "EXCLUDES"):
        values = draw(st.lists(_LITERALS, min_size=1, max_size=3))
        return f"{field} {op} ({', '.join(values)})"
    return f"{field} {op} {draw(_LITERALS)}"


_CONDITIONS = st.recursive(
    _comparisons(),
    lambda inner: st.one_of(
        inner.map(lambda condition: f"NOT {condition}"),
        st.lists(inner, min_size=2, max_size=3).map(lambda parts: f"({' AND '.join(parts)})"),
        st.lists(inner, min_size=2, max_size=3).map(lambda parts: f"({' OR '.join(parts)})"),
    ),
    max_leaves=6,
)
_RECORDS = [
    lead(1),
    lead(
        2,
        Email="a@b.c",
        Status="A",
        Interests__c="a;B",
        AnnualRevenue=3.0,
        Birthdate="2024-01-01",
        IsDeleted=True,
        AccountId="001000000000001AAA",
        SystemModstamp="2024-04-24T10:00:00.000+0000",
    ),
]


@settings(max_examples=400, deadline=None)
@given(_CONDITIONS, _FIELDS)
def test_generated_queries_bind_and_evaluate_or_raise_only_soql_errors(
    condition: str, order_field: str
) -> None:
    text = f"SELECT Id FROM Lead WHERE {condition} ORDER BY {order_field} DESC LIMIT 1"
    try:
        query = parse(text).bind(LEAD_TYPES, now=NOW)
    except SoqlError as error:
        assert error.error_code in {"INVALID_FIELD", "INVALID_QUERY_FILTER_OPERATOR"}
        return
    verdicts = [query.matches(record) for record in _RECORDS]
    assert all(isinstance(verdict, bool) for verdict in verdicts)
    negated = parse(f"SELECT Id FROM Lead WHERE NOT ({condition})").bind(LEAD_TYPES, now=NOW)
    assert [negated.matches(record) for record in _RECORDS] == [not v for v in verdicts]
    assert len(query.select(_RECORDS)) == min(1, sum(verdicts))
