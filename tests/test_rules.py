"""The field-rule engine: each rule when both sides changed, one is blank, or holds the
placeholder; and the properties every decision keeps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest
from hypothesis import given
from hypothesis import strategies as st

from syncd.mapping import RULES, FieldMapping, Rule
from syncd.rules import PLACEHOLDER, Decision, Observed, decide, is_blank, settle

EARLY = datetime(2024, 5, 1, 9, 0, tzinfo=UTC)
LATE = EARLY + timedelta(hours=3)


def field(rule: str, blank: str = "keep") -> FieldMapping:
    return FieldMapping(
        "jobtitle", "jobtitle", {"Contact": "Title"}, cast(Rule, rule), cast(Any, blank)
    )


def seen(value: Any, at: datetime | None = EARLY) -> Observed:
    return Observed(value, at)


# -- blank


@pytest.mark.parametrize("value", [None, "", "   ", "\t\n", PLACEHOLDER, " [Not Provided] "])
def test_blank_values(value: Any) -> None:
    assert is_blank(value)


@pytest.mark.parametrize("value", ["x", 0, False, "0", "[not provided] yet"])
def test_values_that_are_not_blank(value: Any) -> None:
    assert not is_blank(value)


# -- two-way


def test_two_way_both_edited_the_later_change_wins() -> None:
    assert decide(field("two-way"), seen("CTO", LATE), seen("CEO", EARLY), "VP") == Decision(
        "CTO", "hubspot", "two-way"
    )
    assert decide(field("two-way"), seen("CTO", EARLY), seen("CEO", LATE), "VP") == Decision(
        "CEO", "salesforce", "two-way"
    )


def test_two_way_the_side_that_changed_the_field_wins_over_a_newer_record() -> None:
    # Salesforce's record is newer (another field changed) but still holds the old title.
    decision = decide(field("two-way"), seen("CTO", EARLY), seen("VP", LATE), previous="VP")
    assert decision == Decision("CTO", "hubspot", "two-way")


def test_two_way_tie_goes_to_salesforce() -> None:
    assert decide(field("two-way"), seen("CTO", EARLY), seen("CEO", EARLY)).winner == "salesforce"
    assert decide(field("two-way"), seen("CTO", None), seen("CEO", None)).winner == "salesforce"


def test_two_way_a_missing_time_is_the_oldest() -> None:
    assert decide(field("two-way"), seen("CTO", EARLY), seen("CEO", None)).value == "CTO"


def test_two_way_blank_never_overwrites_a_value_even_when_newer() -> None:
    decision = decide(field("two-way"), seen("", LATE), seen("CEO", EARLY), previous="CEO")
    assert decision == Decision("CEO", "salesforce", "two-way")


def test_two_way_placeholder_is_never_copied_back() -> None:
    decision = decide(field("two-way"), seen("Lee", EARLY), seen(PLACEHOLDER, LATE))
    assert decision == Decision("Lee", "hubspot", "two-way")


def test_two_way_with_blank_clear_lets_a_newer_blank_win() -> None:
    decision = decide(field("two-way", "clear"), seen("", LATE), seen("CEO", EARLY), "CEO")
    assert decision == Decision(None, "hubspot", "two-way")


def test_two_way_with_blank_clear_still_never_copies_the_placeholder_as_text() -> None:
    decision = decide(field("two-way", "clear"), seen("Lee", EARLY), seen(PLACEHOLDER, LATE), "x")
    assert decision.value is None


def test_keep_holds_the_previous_value_when_every_side_is_blank() -> None:
    decision = decide(field("two-way"), seen(None, LATE), seen("  ", LATE), previous="CEO")
    assert decision == Decision("CEO", "none", "two-way")


def test_clear_empties_the_value_when_every_side_is_blank() -> None:
    decision = decide(field("two-way", "clear"), seen(None, LATE), seen("", LATE), "CEO")
    assert decision.value is None


# -- prefer


def test_prefer_salesforce_takes_salesforce_even_when_hubspot_is_newer() -> None:
    decision = decide(field("prefer-salesforce"), seen("Ann", LATE), seen("Anne", EARLY))
    assert decision == Decision("Anne", "salesforce", "prefer-salesforce")


def test_prefer_salesforce_falls_back_to_hubspot_when_salesforce_is_blank() -> None:
    decision = decide(field("prefer-salesforce"), seen("Lee", EARLY), seen(PLACEHOLDER, LATE))
    assert decision == Decision("Lee", "hubspot", "prefer-salesforce")


def test_prefer_hubspot_takes_hubspot_unless_blank() -> None:
    assert decide(field("prefer-hubspot"), seen("A", EARLY), seen("B", LATE)).value == "A"
    assert decide(field("prefer-hubspot"), seen(" ", LATE), seen("B", EARLY)).value == "B"


def test_prefer_with_blank_clear_takes_the_preferred_blank() -> None:
    decision = decide(field("prefer-hubspot", "clear"), seen("", LATE), seen("B", EARLY), "B")
    assert decision == Decision(None, "hubspot", "prefer-hubspot")


# -- always


def test_always_salesforce_copies_a_blank_over_a_value() -> None:
    decision = decide(field("always-salesforce"), seen("CEO", LATE), seen("", EARLY), "CEO")
    assert decision == Decision(None, "salesforce", "always-salesforce")


def test_always_hubspot_wins_over_a_newer_salesforce_value() -> None:
    decision = decide(field("always-hubspot"), seen("A", EARLY), seen("B", LATE))
    assert decision == Decision("A", "hubspot", "always-hubspot")


def test_always_salesforce_placeholder_arrives_as_a_blank() -> None:
    decision = decide(field("always-salesforce"), seen("Lee", LATE), seen(PLACEHOLDER, EARLY))
    assert decision.value is None


def test_always_x_without_xs_record_takes_the_other_side() -> None:
    decision = decide(field("always-hubspot"), None, seen("B", EARLY))
    assert decision == Decision("B", "salesforce", "always-hubspot")


# -- none and missing sides


def test_none_is_decided_like_two_way() -> None:
    decision = decide(field("none"), seen("A", EARLY), seen("B", LATE), previous="A")
    assert decision == Decision("B", "salesforce", "none")


def test_only_one_system_holds_the_record_its_value_is_taken() -> None:
    assert decide(field("two-way"), seen("A"), None) == Decision("A", "hubspot", "two-way")
    assert decide(field("prefer-hubspot"), None, seen("B")).winner == "salesforce"


def test_no_system_holds_the_record_the_previous_value_stays() -> None:
    assert decide(field("two-way"), None, None, previous="A") == Decision("A", "none", "two-way")


# -- properties

values = st.one_of(
    st.none(), st.sampled_from(["", "  ", PLACEHOLDER]), st.text(max_size=5), st.integers(-3, 3)
)
times = st.one_of(
    st.none(),
    st.datetimes(
        min_value=datetime(2020, 1, 1), max_value=datetime(2030, 1, 1), timezones=st.just(UTC)
    ),
)
observations = st.builds(Observed, values, times)
maybe_observations = st.one_of(st.none(), observations)


@given(
    st.sampled_from(["hubspot", "salesforce"]),
    st.sampled_from(["keep", "clear"]),
    observations,
    observations,
    values,
)
def test_always_x_always_returns_xs_value(
    side: str, blank: str, hubspot: Observed, salesforce: Observed, previous: Any
) -> None:
    decision = decide(field(f"always-{side}", blank), hubspot, salesforce, previous)
    own = hubspot if side == "hubspot" else salesforce
    assert decision.winner == side
    assert decision.value is None if is_blank(own.value) else decision.value == own.value


@given(
    st.sampled_from(["two-way", "prefer-hubspot", "prefer-salesforce", "none"]),
    observations,
    observations,
    values,
)
def test_a_blank_never_wins_over_a_value_under_keep(
    rule: str, hubspot: Observed, salesforce: Observed, previous: Any
) -> None:
    decision = decide(field(rule), hubspot, salesforce, previous)
    if not (is_blank(hubspot.value) and is_blank(salesforce.value)):
        assert not is_blank(decision.value)


@given(
    st.sampled_from(RULES),
    st.sampled_from(["keep", "clear"]),
    maybe_observations,
    maybe_observations,
    values,
)
def test_the_result_is_one_of_the_inputs_or_previous(
    rule: str, blank: str, hubspot: Observed | None, salesforce: Observed | None, previous: Any
) -> None:
    decision = decide(field(rule, blank), hubspot, salesforce, previous)
    candidates = {"hubspot": hubspot, "salesforce": salesforce}
    source = candidates.get(decision.winner)
    expected = previous if decision.winner == "none" else cast(Observed, source).value
    assert source is not None or decision.winner == "none"
    assert decision.value == (None if is_blank(expected) else expected)
    assert decision.rule == rule


@given(st.sampled_from(RULES), observations, observations, values)
def test_deciding_twice_gives_the_same_answer(
    rule: str, hubspot: Observed, salesforce: Observed, previous: Any
) -> None:
    first = decide(field(rule), hubspot, salesforce, previous)
    assert decide(field(rule), hubspot, salesforce, previous) == first
    # Once both systems hold the decided value, deciding again changes nothing.
    settled = decide(
        field(rule),
        Observed(first.value, hubspot.changed_at),
        Observed(first.value, salesforce.changed_at),
        first.value,
    )
    assert settled.value == first.value


# -- the specialised engine against the rules as first written

# `decide` (through `settle`, which reconcile calls per field with plain tuples) works out each
# blankness once and takes shortcuts per rule. The engine as first written, kept here as the
# oracle: both must give the same value and winner for every input.


def reference(
    field: FieldMapping, hubspot: Observed | None, salesforce: Observed | None, previous: Any
) -> Decision:
    def keep() -> Decision:
        return Decision(None if is_blank(previous) else previous, "none", field.rule)

    if hubspot is None and salesforce is None:
        return keep()
    seen = {"hubspot": hubspot, "salesforce": salesforce}
    blank = {side: o is None or is_blank(o.value) for side, o in seen.items()}
    always = {"always-hubspot": "hubspot", "always-salesforce": "salesforce"}.get(field.rule)
    prefer = {"prefer-hubspot": "hubspot", "prefer-salesforce": "salesforce"}.get(field.rule)
    clear = field.blank == "clear"
    winner = always
    if winner is None or seen[winner] is None:
        if not clear and blank["hubspot"] and blank["salesforce"] and not is_blank(previous):
            return keep()
        if hubspot is None or salesforce is None:
            winner = "hubspot" if hubspot is not None else "salesforce"
        elif prefer is not None:
            other = "salesforce" if prefer == "hubspot" else "hubspot"
            winner = prefer if clear or not blank[prefer] else other
        else:
            winner = reference_two_way(hubspot, salesforce, previous, clear)
    taken = seen[winner]
    value = None if blank[winner] or taken is None else taken.value
    return Decision(value, cast(Any, winner), field.rule)


def reference_two_way(hubspot: Observed, salesforce: Observed, previous: Any, clear: bool) -> str:
    hubspot_blank, salesforce_blank = is_blank(hubspot.value), is_blank(salesforce.value)
    if not clear and hubspot_blank != salesforce_blank:
        return "salesforce" if hubspot_blank else "hubspot"

    def same(left: Any, right: Any) -> bool:
        if is_blank(left) or is_blank(right):
            return is_blank(left) and is_blank(right)
        return bool(left == right)

    if not same(hubspot.value, salesforce.value):
        hubspot_moved = not same(hubspot.value, previous)
        salesforce_moved = not same(salesforce.value, previous)
        if hubspot_moved != salesforce_moved:
            return "hubspot" if hubspot_moved else "salesforce"
    if hubspot.changed_at is None:
        return "salesforce"
    if salesforce.changed_at is None:
        return "hubspot"
    return "hubspot" if hubspot.changed_at > salesforce.changed_at else "salesforce"


@given(
    st.sampled_from(RULES),
    st.sampled_from(["keep", "clear"]),
    maybe_observations,
    maybe_observations,
    values,
)
def test_decide_agrees_with_the_rules_as_first_written(
    rule: str, blank: str, hubspot: Observed | None, salesforce: Observed | None, previous: Any
) -> None:
    expected = reference(field(rule, blank), hubspot, salesforce, previous)
    assert decide(field(rule, blank), hubspot, salesforce, previous) == expected
    as_tuples = [None if o is None else (o.value, o.changed_at) for o in (hubspot, salesforce)]
    value, winner = settle(rule, blank == "clear", *as_tuples, previous)
    assert (value, winner) == (expected.value, expected.winner)
