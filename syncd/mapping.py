"""The mapping model the reconcile engine reads: one `FieldMapping` per `[fields.NAME]`
table, one `EntityMapping` per file (`person.toml`, `account.toml`, `opportunity.toml`), the
three together as `Mappings`. Loading and offline validation live in `mapping_loader.py`, the
check against the live schemas in `mapping_online.py`.

A mapping file says which objects sync (`[objects]`), how records match (`[match]`), and per
field (`[fields.NAME]`) the HubSpot property, the Salesforce field(s), the rule, the blank
policy, a named transform and a picklist value map.

Unified values of a field with a value map are in HubSpot's vocabulary: `from_salesforce`
maps a Salesforce value through the map, `salesforce_value` maps it back.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal, get_args

from syncd.mapping_files import shown
from syncd.transforms import TRANSFORMS

__all__ = [
    "BLANKS",
    "RULES",
    "WRITES_HUBSPOT",
    "WRITES_SALESFORCE",
    "Blank",
    "EntityMapping",
    "FieldMapping",
    "Mappings",
    "Rule",
    "ValueMapMiss",
]

Rule = Literal[
    "two-way", "prefer-salesforce", "prefer-hubspot", "always-salesforce", "always-hubspot", "none"
]
Blank = Literal["keep", "clear"]
RULES: tuple[str, ...] = get_args(Rule)
BLANKS: tuple[str, ...] = get_args(Blank)
# Which rules may put a value into each system (a `prefer-X` rule fills X from the other side
# when X is blank, so it writes both ways).
WRITES_HUBSPOT = frozenset({"two-way", "prefer-salesforce", "prefer-hubspot", "always-salesforce"})
WRITES_SALESFORCE = frozenset({"two-way", "prefer-salesforce", "prefer-hubspot", "always-hubspot"})


class ValueMapMiss(ValueError):
    """A picklist value the field's value map does not hold: park the record, fix the map."""

    def __init__(self, field_name: str, value: Any, system: str) -> None:
        self.field_name, self.value, self.system = field_name, value, system
        super().__init__(
            f"{system} value {shown(value)} of [fields.{field_name}] has no entry in "
            f"[fields.{field_name}.values]; add it to the mapping file."
        )


@dataclass(frozen=True)
class FieldMapping:
    """One `[fields.NAME]` table: where the field lives on each side and how it is decided."""

    name: str
    hubspot: str | None
    salesforce: Mapping[str, str]
    rule: Rule
    blank: Blank = "keep"
    transform: str | None = None
    values: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def writes_hubspot(self) -> bool:
        return self.rule in WRITES_HUBSPOT and self.hubspot is not None

    @property
    def writes_salesforce(self) -> bool:
        return self.rule in WRITES_SALESFORCE and bool(self.salesforce)

    @cached_property
    def _folded(self) -> Mapping[str, str]:
        return {key.strip().casefold(): value for key, value in self.values.items()}

    @cached_property
    def _inverse(self) -> Mapping[str, str]:
        # The first Salesforce value in file order for each HubSpot value: only
        # `always-salesforce` fields may map several values to one (validation), and those
        # are never written to Salesforce.
        inverse: dict[str, str] = {}
        for salesforce_value, hubspot_value in self.values.items():
            inverse.setdefault(hubspot_value, salesforce_value)
        return inverse

    def to_hubspot(self, salesforce_value: Any) -> Any:
        """A Salesforce value in HubSpot's vocabulary through the value map.

        Blank values and fields without a map pass unchanged. A value the map lacks raises
        `ValueMapMiss` (never None, which an `always-*` rule would write as a blank); a map
        key matches exactly first, then ignoring case and outer spaces.
        """
        if not self.values or _is_empty(salesforce_value):
            return salesforce_value
        key = str(salesforce_value)
        found = self.values.get(key, self._folded.get(key.strip().casefold()))
        if found is None:
            raise ValueMapMiss(self.name, salesforce_value, "Salesforce")
        return found

    def to_salesforce(self, hubspot_value: Any) -> Any:
        """A HubSpot value in Salesforce's vocabulary; `ValueMapMiss` when the map lacks it."""
        if not self.values or _is_empty(hubspot_value):
            return hubspot_value
        found = self._inverse.get(str(hubspot_value))
        if found is None:
            raise ValueMapMiss(self.name, hubspot_value, "HubSpot")
        return found

    def from_hubspot(self, raw: Any) -> Any:
        """The unified form of what HubSpot sent (the transform's `normalize`)."""
        return TRANSFORMS[self.transform].normalize(raw) if self.transform else raw

    def from_salesforce(self, raw: Any) -> Any:
        """The unified form of what Salesforce sent: through the value map, then normalized."""
        return self.from_hubspot(self.to_hubspot(raw))

    def hubspot_value(self, unified: Any, property_type: str = "string") -> Any:
        """What to send HubSpot for a unified value (`property_type` from the schema)."""
        if self.transform:
            return TRANSFORMS[self.transform].to_hubspot(unified, property_type)
        return unified

    def salesforce_value(self, unified: Any) -> Any:
        """What to send Salesforce for a unified value."""
        value = self.to_salesforce(unified)
        return TRANSFORMS[self.transform].to_salesforce(value) if self.transform else value


def _is_empty(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


@dataclass(frozen=True)
class EntityMapping:
    """One mapping file: the objects on each side, the match keys and the fields."""

    entity: str
    path: Path
    hubspot_object: str
    salesforce_objects: tuple[str, ...]
    match_keys: tuple[str, ...]
    fields: Mapping[str, FieldMapping]

    def hubspot_properties(self) -> tuple[str, ...]:
        """The HubSpot properties the connector must request, in file order."""
        return tuple(dict.fromkeys(f.hubspot for f in self.fields.values() if f.hubspot))

    def salesforce_fields(self, sobject: str) -> tuple[str, ...]:
        """The fields of `sobject` the connector must request, in file order."""
        return tuple(
            dict.fromkeys(
                f.salesforce[sobject] for f in self.fields.values() if sobject in f.salesforce
            )
        )


@dataclass(frozen=True)
class Mappings:
    """The three entity mappings in use, and the folder they came from (None: the defaults)."""

    person: EntityMapping
    account: EntityMapping
    opportunity: EntityMapping
    folder: Path | None

    def all(self) -> tuple[EntityMapping, ...]:
        return (self.person, self.account, self.opportunity)

