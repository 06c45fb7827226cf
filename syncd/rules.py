"""The field-rule engine: which system's value a unified field takes (ARCHITECTURE section 5).

`decide` is a pure function of one field's mapping, the value each system holds now (already
normalized to the unified form) and the unified value decided last time. The rules:

- `two-way`: the most recently changed value wins. A side whose value still equals the
  previous unified value has not changed this field, so the other side wins whatever the
  record timestamps say (a record's modification time moves for any field, and for syncd's
  own writes). When both changed, the later `changed_at` wins; a missing time counts as the
  oldest; on a tie Salesforce wins (a fixed choice, so that reruns decide the same way).
- `prefer-X`: X's value unless it is blank, then the other system's.
- `always-X`: X's value, blank included.
- `none`: decided like `two-way`, kept in the unified dataset, never written (the planner
  consults `FieldMapping.writes_hubspot` / `writes_salesforce`).

A blank never overwrites a value unless the rule says so (`always-*`) or the field says
`blank = "clear"`, which makes a blank a value like any other (then `prefer-X` takes X's
blank). That includes the previous unified value: with `blank = "keep"`, when every system
holding the record shows a blank, the previous value stays (and the planner writes it back),
so clearing a field everywhere takes `blank = "clear"`. Blank is None, empty or
whitespace-only text, and the placeholder `[not provided]` that syncd writes for a required
Lead LastName/Company, which must never be copied back. A blank result is always None.

An observation of None means that system holds no record for the entity (or the field maps
nothing there): the other system decides alone; `always-X` without X's record behaves the
same way; with no record on either side the previous value stays (winner "none").
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from syncd.mapping import FieldMapping
from syncd.model import utc

__all__ = ["PLACEHOLDER", "Decision", "Observed", "Seen", "Winner", "decide", "is_blank", "settle"]

PLACEHOLDER = "[not provided]"
Winner = Literal["hubspot", "salesforce", "none"]


@dataclass(frozen=True)
class Observed:
    """One system's value for one field, and when that system last changed the record."""

    value: Any
    changed_at: datetime | None


@dataclass(frozen=True)
class Decision:
    """The unified value, which system it came from ("none": kept from before), and the rule."""

    value: Any
    winner: Winner
    rule: str


def is_blank(value: Any) -> bool:
    """True for None, empty or whitespace-only text, and syncd's `[not provided]` placeholder."""
    if value is None:
        return True
    if isinstance(value, str):
        text = value.strip()
        # Case folding never shortens text: anything longer is not the placeholder, and most
        # values are spared folding (a megabyte of text, for one).
        return not text or (len(text) <= len(PLACEHOLDER) and text.casefold() == PLACEHOLDER)
    return False


_ALWAYS: dict[str, Winner] = {"always-hubspot": "hubspot", "always-salesforce": "salesforce"}
_PREFER: dict[str, Winner] = {"prefer-hubspot": "hubspot", "prefer-salesforce": "salesforce"}
_OTHER: dict[Winner, Winner] = {"hubspot": "salesforce", "salesforce": "hubspot"}

# One system's value for one field and when it changed it, as `settle` reads it: an
# `Observed` without the object (reconcile decides every field of every entity).
Seen = tuple[Any, datetime | None]


def decide(
    field: FieldMapping,
    hubspot: Observed | None,
    salesforce: Observed | None,
    previous: Any = None,
) -> Decision:
    """The unified value of `field` given each system's observation and the previous value."""
    value, winner = settle(
        field.rule,
        field.blank == "clear",
        None if hubspot is None else (hubspot.value, hubspot.changed_at),
        None if salesforce is None else (salesforce.value, salesforce.changed_at),
        previous,
    )
    return Decision(value, winner, field.rule)


def settle(
    rule: str, clear: bool, hubspot: Seen | None, salesforce: Seen | None, previous: Any
) -> tuple[Any, Winner]:
    """`decide` as (value, winner), from a field's rule and blank policy (`clear`)."""
    if hubspot is None or salesforce is None:
        # At most one system holds a value: it decides, unless its blank would replace one
        # (`always-X` with X's record present takes X's blank).
        alone: Winner = "hubspot" if hubspot is not None else "salesforce"
        seen = hubspot if hubspot is not None else salesforce
        if seen is None:
            return (None if is_blank(previous) else previous), "none"
        blank = is_blank(seen[0])
        if blank and not clear and _ALWAYS.get(rule) != alone and not is_blank(previous):
            return previous, "none"
        return (None if blank else seen[0]), alone
    hubspot_blank, salesforce_blank = is_blank(hubspot[0]), is_blank(salesforce[0])
    winner = _ALWAYS.get(rule)
    if winner is None:
        if not clear and hubspot_blank and salesforce_blank and not is_blank(previous):
            return previous, "none"
        first = _PREFER.get(rule)
        if first is not None:
            first_blank = hubspot_blank if first == "hubspot" else salesforce_blank
            winner = first if clear or not first_blank else _OTHER[first]
        else:  # two-way and none
            winner = _two_way(hubspot, salesforce, previous, clear, hubspot_blank, salesforce_blank)
    if winner == "hubspot":
        return (None if hubspot_blank else hubspot[0]), winner
    return (None if salesforce_blank else salesforce[0]), winner


def _later(hubspot: Seen, salesforce: Seen) -> Winner:
    """The side changed last; no time is the oldest; a tie goes to Salesforce."""
    hubspot_at, salesforce_at = hubspot[1], salesforce[1]
    if hubspot_at is None:
        return "salesforce"
    if salesforce_at is None:
        return "hubspot"
    if hubspot_at.tzinfo is None or salesforce_at.tzinfo is None:
        hubspot_at, salesforce_at = utc(hubspot_at), utc(salesforce_at)
    return "hubspot" if hubspot_at > salesforce_at else "salesforce"


def _equal(left: Any, left_blank: bool, right: Any, right_blank: bool) -> bool:
    """Equal, counting two blanks as equal (and a blank as equal to nothing else), for values
    whose blankness is known already."""
    if left_blank or right_blank:
        return left_blank and right_blank
    return bool(left == right)


def _two_way(
    hubspot: Seen,
    salesforce: Seen,
    previous: Any,
    clear: bool,
    hubspot_blank: bool,
    salesforce_blank: bool,
) -> Winner:
    if not clear and hubspot_blank != salesforce_blank:
        return "salesforce" if hubspot_blank else "hubspot"
    if not _equal(hubspot[0], hubspot_blank, salesforce[0], salesforce_blank):
        previous_blank = is_blank(previous)
        hubspot_moved = not _equal(hubspot[0], hubspot_blank, previous, previous_blank)
        salesforce_moved = not _equal(salesforce[0], salesforce_blank, previous, previous_blank)
        if hubspot_moved != salesforce_moved:
            return "hubspot" if hubspot_moved else "salesforce"
    return _later(hubspot, salesforce)
