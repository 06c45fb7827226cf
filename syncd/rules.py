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

__all__ = ["PLACEHOLDER", "Decision", "Observed", "Winner", "decide", "is_blank"]

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


def _same(left: Any, right: Any) -> bool:
    if is_blank(left) or is_blank(right):
        return is_blank(left) and is_blank(right)
    return bool(left == right)


def _keep(previous: Any, rule: str) -> Decision:
    return Decision(None if is_blank(previous) else previous, "none", rule)


def _later(hubspot: Observed, salesforce: Observed) -> Winner:
    """The side changed last; no time is the oldest; a tie goes to Salesforce."""
    hubspot_at, salesforce_at = hubspot.changed_at, salesforce.changed_at
    if hubspot_at is None:
        return "salesforce"
    if salesforce_at is None:
        return "hubspot"
    if hubspot_at.tzinfo is None or salesforce_at.tzinfo is None:
        hubspot_at, salesforce_at = utc(hubspot_at), utc(salesforce_at)
    return "hubspot" if hubspot_at > salesforce_at else "salesforce"


def _equal(left: Any, left_blank: bool, right: Any, right_blank: bool) -> bool:
    """`_same` for values whose blankness is known already."""
    if left_blank or right_blank:
        return left_blank and right_blank
    return bool(left == right)


def _two_way(
    hubspot: Observed, salesforce: Observed, previous: Any, clear: bool, blanks: tuple[bool, bool]
) -> Winner:
    hubspot_blank, salesforce_blank = blanks
    if not clear and hubspot_blank != salesforce_blank:
        return "salesforce" if hubspot_blank else "hubspot"
    if not _equal(hubspot.value, hubspot_blank, salesforce.value, salesforce_blank):
        previous_blank = is_blank(previous)
        hubspot_moved = not _equal(hubspot.value, hubspot_blank, previous, previous_blank)
        salesforce_moved = not _equal(salesforce.value, salesforce_blank, previous, previous_blank)
        if hubspot_moved != salesforce_moved:
            return "hubspot" if hubspot_moved else "salesforce"
    return _later(hubspot, salesforce)


_ALWAYS: dict[str, Winner] = {"always-hubspot": "hubspot", "always-salesforce": "salesforce"}
_PREFER: dict[str, Winner] = {"prefer-hubspot": "hubspot", "prefer-salesforce": "salesforce"}
_OTHER: dict[Winner, Winner] = {"hubspot": "salesforce", "salesforce": "hubspot"}


def decide(
    field: FieldMapping,
    hubspot: Observed | None,
    salesforce: Observed | None,
    previous: Any = None,
) -> Decision:
    """The unified value of `field` given each system's observation and the previous value."""
    rule = field.rule
    if hubspot is None and salesforce is None:
        return _keep(previous, rule)
    # Each observation's blankness, worked out once (for "every system shows a blank", a
    # system without a record counts as showing one).
    blank = {
        "hubspot": hubspot is None or is_blank(hubspot.value),
        "salesforce": salesforce is None or is_blank(salesforce.value),
    }
    seen: dict[Winner, Observed | None] = {"hubspot": hubspot, "salesforce": salesforce}
    winner = _ALWAYS.get(rule)
    clear = field.blank == "clear"
    if winner is None or seen[winner] is None:
        if not clear and blank["hubspot"] and blank["salesforce"] and not is_blank(previous):
            return _keep(previous, rule)
        if hubspot is None or salesforce is None:
            winner = "hubspot" if hubspot is not None else "salesforce"
        elif rule in _PREFER:
            first = _PREFER[rule]
            winner = first if clear or not blank[first] else _OTHER[first]
        else:  # two-way, none, and always-X whose own system is absent (handled above)
            blanks = (blank["hubspot"], blank["salesforce"])
            winner = _two_way(hubspot, salesforce, previous, clear, blanks)
    taken = seen[winner]
    return Decision(None if blank[winner] or taken is None else taken.value, winner, rule)
