"""How the org stores an sObject's records: `Row`, the lookup indexes, the `Table`, and the
`Selection` a query evaluates to.

A stored record (`Row`) is keyed by canonical API names; it holds only the fields that were set
plus the system fields, and reads absent fields as None, so that a million people fit in memory.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .schema import SObjectSpec

Rule = Callable[[Mapping[str, Any]], str | None]


class Row(dict[str, Any]):
    """A stored record in wire form; fields that were never set read as None."""

    __slots__ = ()

    def __missing__(self, key: str) -> None:
        return None


# -- indexes -------------------------------------------------------------------------------


# Objects whose records' children are indexed (`Org._children`): the mergeable ones (merge
# reparents their children), and opportunities (one primary contact role each).
PARENT_OBJECTS = frozenset({"Lead", "Contact", "Account", "Opportunity"})


class LookupIndex:
    """Record ids by a field's value, case-insensitively (external ids and idLookup fields).

    A value held by one record maps to its id, not to a list: most values are unique, and a
    million one-element lists would cost more memory than the records.
    """

    def __init__(self) -> None:
        self._ids: dict[str, str | list[str]] = {}

    @staticmethod
    def key(value: object) -> str:
        return value.lower() if isinstance(value, str) else str(value)

    def add(self, value: object, record_id: str) -> None:
        key = self.key(value)
        held = self._ids.get(key)
        if held is None:
            self._ids[key] = record_id
        elif isinstance(held, str):
            self._ids[key] = [held, record_id]
        else:
            held.append(record_id)

    def remove(self, value: object, record_id: str) -> None:
        key = self.key(value)
        held = self._ids.get(key)
        if held == record_id:
            del self._ids[key]
        elif isinstance(held, list) and record_id in held:
            held.remove(record_id)
            if len(held) == 1:
                self._ids[key] = held[0]

    def find(self, value: object) -> list[str]:
        held = self._ids.get(self.key(value))
        if held is None:
            return []
        return [held] if isinstance(held, str) else list(held)


@dataclass
class Table:
    """One sObject's rows (in id order), lookup indexes and delete log."""

    spec: SObjectSpec
    rows: dict[str, Row] = field(default_factory=dict)
    indexes: dict[str, LookupIndex] = field(default_factory=dict)
    deleted_log: list[tuple[str, str]] = field(default_factory=list)
    rules: list[Rule] = field(default_factory=list)

    child_fields: tuple[str, ...] = ()
    """Lookups that `Org._children` indexes: those a merge, a conversion or a primary contact
    role follows from the parent (see `PARENT_OBJECTS`)."""

    def __post_init__(self) -> None:
        for spec in self.spec.fields.values():
            if spec.indexed:
                self.indexes[spec.name] = LookupIndex()
        self.refresh_child_fields()

    def refresh_child_fields(self) -> None:
        self.child_fields = tuple(
            spec.name for spec in self.spec.fields.values()
            if spec.reparented_on_merge and PARENT_OBJECTS.intersection(spec.reference_to)
        )

    def reparented(self, sobject: str) -> list[str]:
        """The lookups to `sobject` that a merge of one of its records moves to the master."""
        return [spec.name for spec in self.spec.fields.values()
                if sobject in spec.reference_to and spec.reparented_on_merge]


@dataclass
class Selection:
    """A query evaluated once: its object, its rows in answer order, and how to project them."""

    sobject: str
    rows: list[Mapping[str, Any]]
    count_only: bool
    columns: list[str]
    project: Callable[[Mapping[str, Any]], dict[str, Any]]
