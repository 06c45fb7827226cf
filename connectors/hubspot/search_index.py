"""Sorted property indexes for the HubSpot emulator's CRM search
(`POST /crm/v3/objects/{type}/search`, reference 1.4).

A search whose every filter group holds an ordered filter (EQ, LT, LTE, GT, GTE, BETWEEN)
takes its candidates from a sorted index of one such property per group instead of scanning
the table. The index only narrows: candidates still go through the query's full predicate, so
every other filter applies exactly as in a scan. syncd's incremental pull asks one window of
the modification date after another; with an index, each window costs a bisection, not a scan
of the whole table.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from connectors.hubspot.portal import ObjectTable

Converter = Callable[[str], Any]
ORDERED_OPERATORS = ("EQ", "LT", "LTE", "GT", "GTE")
# Where each operator's matches start and stop among the sorted values.
_START = {"EQ": bisect_left, "GTE": bisect_left, "GT": bisect_right}
_STOP = {"EQ": bisect_right, "LTE": bisect_right, "LT": bisect_left}


@dataclass(frozen=True)
class Bound:
    """One ordered filter, as an index reads it: `value` is already converted."""

    name: str
    convert: Converter
    operator: str  # one of ORDERED_OPERATORS (BETWEEN arrives as GTE and LTE)
    value: Any


class SortedIndex:
    """The live records' (converted value, numeric id) of one property, ordered by value.

    Records without the value, or whose value does not convert (`_number` gives None, or NaN),
    are left out: no ordered filter matches them.
    """

    __slots__ = ("ids", "values")

    def __init__(self, table: ObjectTable, name: str, convert: Converter) -> None:
        records = table.records
        values: list[Any] = []
        ids: list[int] = []
        for number in table.live:
            text = records[str(number)].properties.get(name)
            value = convert(text) if text is not None else None
            if value is not None and value == value:  # value != value only for NaN
                values.append(value)
                ids.append(number)
        order = sorted(range(len(values)), key=values.__getitem__)
        self.values = [values[i] for i in order]
        self.ids = [ids[i] for i in order]

    def span(self, bounds: Sequence[Bound]) -> tuple[int, int]:
        """Positions [start, stop) of the values meeting every bound (all on this property)."""
        start, stop = 0, len(self.values)
        for bound in bounds:
            if bound.value != bound.value:
                return 0, 0  # NaN: nothing compares true to it
            if bound.operator in _START:
                start = max(start, _START[bound.operator](self.values, bound.value))
            if bound.operator in _STOP:
                stop = min(stop, _STOP[bound.operator](self.values, bound.value))
        return start, max(start, stop)


class SearchIndexes:
    """Sorted indexes by (object type, property, converter), each for one table version and
    rebuilt on first use after a write; the `size` most recently used are kept."""

    def __init__(self, size: int = 4) -> None:
        self._size = size
        self._entries: OrderedDict[tuple[str, str, Converter], tuple[int, SortedIndex]] = (
            OrderedDict())

    def index(self, table: ObjectTable, name: str, convert: Converter) -> SortedIndex:
        key = (table.object_type, name, convert)
        entry = self._entries.get(key)
        if entry is None or entry[0] != table.version:
            entry = (table.version, SortedIndex(table, name, convert))
            self._entries[key] = entry
        self._entries.move_to_end(key)
        if len(self._entries) > self._size:
            self._entries.popitem(last=False)
        return entry[1]

    def candidates(self, table: ObjectTable, groups: Sequence[Sequence[Bound]]) -> list[int]:
        """Ascending numeric ids of the records that may match: every record meeting all the
        bounds of some group is among them. Each group takes the narrowest of its properties."""
        chosen = [self._narrowest(table, bounds) for bounds in groups]
        if len(chosen) == 1:
            return sorted(chosen[0])
        return sorted(set().union(*chosen))

    def _narrowest(self, table: ObjectTable, bounds: Sequence[Bound]) -> list[int]:
        by_property: dict[str, list[Bound]] = {}
        for bound in bounds:
            by_property.setdefault(bound.name, []).append(bound)
        best: tuple[int, int, SortedIndex] | None = None
        for same in by_property.values():
            index = self.index(table, same[0].name, same[0].convert)
            start, stop = index.span(same)
            if best is None or stop - start < best[1] - best[0]:
                best = (start, stop, index)
        if best is None:
            raise ValueError("a group without ordered filters cannot use an index")
        start, stop, index = best
        return index.ids[start:stop]
