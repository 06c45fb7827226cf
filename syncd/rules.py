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
        return not text or text.casefold() == PLACEHOLDER
    return False


def _same(left: Any, right: Any) -> bool:
    if is_blank(left) or is_blank(right):
        return is_blank(left) and is_blank(right)
    return bool(left == right)


def _take(side: Winner, observed: Observed, rule: str) -> Decision:
    value = None if is_blank(observed.value) else observed.value
    return Decision(value, side, rule)


def _keep(previous: Any, rule: str) -> Decision:
    return Decision(None if is_blank(previous) else previous, "none", rule)


def _later(hubspot: Observed, salesforce: Observed) -> Winner:
    """The side changed last; no time is the oldest; a tie goes to Salesforce."""
    if hubspot.changed_at is None:
        return "salesforce"
    if salesforce.changed_at is None:
        return "hubspot"
    return "hubspot" if utc(hubspot.changed_at) > utc(salesforce.changed_at) else "salesforce"


def _two_way(hubspot: Observed, salesforce: Observed, previous: Any, clear: bool) -> Winner:
    if not clear and is_blank(hubspot.value) != is_blank(salesforce.value):
        return "salesforce" if is_blank(hubspot.value) else "hubspot"
    if not _same(hubspot.value, salesforce.value):
        hubspot_moved = not _same(hubspot.value, previous)
        salesforce_moved = not _same(salesforce.value, previous)
        if hubspot_moved != salesforce_moved:
            return "hubspot" if hubspot_moved else "salesforce"
    return _later(hubspot, salesforce)


def _prefer(first: Winner, hubspot: Observed, salesforce: Observed, clear: bool) -> Winner:
    chosen = hubspot if first == "hubspot" else salesforce
    if clear or not is_blank(chosen.value):
        return first
    other: Winner = "salesforce" if first == "hubspot" else "hubspot"
    return other


_ALWAYS: dict[str, Winner] = {"always-hubspot": "hubspot", "always-salesforce": "salesforce"}
_PREFER: dict[str, Winner] = {"prefer-hubspot": "hubspot", "prefer-salesforce": "salesforce"}


def decide(
    field: FieldMapping,
    hubspot: Observed | None,
    salesforce: Observed | None,
    previous: Any = None,
) -> Decision:
    """The unified value of `field` given each system's observation and the previous value."""
    rule, clear = field.rule, field.blank == "clear"
    sides: tuple[tuple[Winner, Observed | None], ...] = (
        ("hubspot", hubspot),
        ("salesforce", salesforce),
    )
    observed = {side: seen for side, seen in sides if seen is not None}
    own = _ALWAYS.get(rule)
    if own is not None and own in observed:
        return _take(own, observed[own], rule)
    if not observed or (
        not clear
        and not is_blank(previous)
        and all(is_blank(seen.value) for seen in observed.values())
    ):
        return _keep(previous, rule)
    if hubspot is None or salesforce is None:
        side, seen = next(iter(observed.items()))
        return _take(side, seen, rule)
    if rule in _PREFER:
        winner = _prefer(_PREFER[rule], hubspot, salesforce, clear)
    else:  # two-way, none, and always-X whose own system is absent (handled above)
        winner = _two_way(hubspot, salesforce, previous, clear)
    return _take(winner, hubspot if winner == "hubspot" else salesforce, rule)
