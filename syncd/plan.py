"""Plan: what each CRM must be told so that it shows the unified values (ARCHITECTURE 1, 5).

For each target record, the fields whose desired value differs from the value syncd last saw
there *and* from the value it last wrote there become one outbox row. Creates go through
upserts on an idempotency key (HubSpot `email` or `syncd_id`; Salesforce `Syncd_Id__c`), so a
pass repeated after a crash never creates a record twice. Deleted records are tombstones:
nothing is created again in their place. Here one entity is planned (`plan_entity`);
`Planner` (planner.py) plans a pass's entities a chunk at a time.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from syncd.lifecycle import STAGE
from syncd.mapping import EntityMapping, FieldMapping
from syncd.reconcile import Sides, Written, _same, _same_raw
from syncd.rules import PLACEHOLDER, is_blank
from syncd.stages import LifecycleSettings
from syncd.store.outbox import OutboxRow
from syncd.store.unified import Entity
from syncd.transforms import is_valid_email
from syncd.writeback import (
    PERSON_REVENUE,
    Attributed,
    opportunity_fields,
    revenue_field,
)

SYNCD_ID_PROPERTY = "syncd_id"
SYNCD_ID_FIELD = "Syncd_Id__c"
LIFECYCLE_PROPERTY = "lifecyclestage"
LIFECYCLE_FIELD = "Lifecycle_Stage__c"

HUBSPOT_OBJECT_OF = {"person": "contacts", "account": "companies", "opportunity": "deals"}


@dataclass(frozen=True)
class Target:
    """A field syncd writes on one object: where, whether a blank may clear it, (HubSpot) the
    property's type, and how a value that is not blank goes on the wire (None: as it is)."""

    field_mapping: FieldMapping
    name: str
    may_clear: bool
    hubspot_type: str
    wire: Callable[[Any], Any] | None = None


@dataclass(frozen=True)
class Context:
    """What planning needs beyond one entity: HubSpot property types, and the ids that the
    entity's associations point at on the HubSpot side."""

    hubspot_types: Mapping[tuple[str, str], str]
    hubspot_id_of: Callable[[str, str], str | None]  # (kind, entity id) -> HubSpot record id
    deal_associations: Callable[[Entity], list[tuple[str, str]]]  # (kind, entity id) pairs
    lifecycle: LifecycleSettings | None = None
    company_name: Callable[[dict[str, Any]], str | None] = lambda contact: None
    # (mapping, system, object) -> its targets, worked out once per pass, not per entity;
    # (mapping, "create", object) -> the fields a HubSpot create sends
    _targets: dict[tuple[int, str, str], tuple[EntityMapping, list[Target]]] = field(
        default_factory=dict, compare=False, repr=False
    )

    def targets(self, mapping: EntityMapping, system: str, obj: str) -> list[Target]:
        """The fields of `mapping` syncd writes on `obj` in `system`, in file order."""
        found = self._targets.get((id(mapping), system, obj))
        if found is None or found[0] is not mapping:
            found = (mapping, [])
            for field_mapping in mapping.fields.values():
                name = _target(field_mapping, system, obj)
                if name is not None:
                    found[1].append(self._target(field_mapping, name, system, obj))
            self._targets[(id(mapping), system, obj)] = found
        return found[1]

    def creates(self, mapping: EntityMapping, obj: str) -> list[Target]:
        """The fields of `mapping` a HubSpot create on `obj` sends when they are not blank:
        every field with a HubSpot property and a rule but `none`, in file order."""
        found = self._targets.get((id(mapping), "create", obj))
        if found is None or found[0] is not mapping:
            found = (mapping, [])
            for field_mapping in mapping.fields.values():
                if field_mapping.hubspot and field_mapping.rule != "none":
                    name = field_mapping.hubspot
                    found[1].append(self._target(field_mapping, name, "hubspot", obj))
            self._targets[(id(mapping), "create", obj)] = found
        return found[1]

    def lead_fields(self, mapping: EntityMapping) -> list[Target]:
        """The fields of `mapping` a hand-off Lead is created with when they are not blank:
        every field with a Lead field and a rule but `none`, in file order."""
        found = self._targets.get((id(mapping), "lead", "Lead"))
        if found is None or found[0] is not mapping:
            found = (mapping, [])
            for field_mapping in mapping.fields.values():
                name = field_mapping.salesforce.get("Lead")
                if name and field_mapping.rule != "none":
                    found[1].append(self._target(field_mapping, name, "salesforce", "Lead"))
            self._targets[(id(mapping), "lead", "Lead")] = found
        return found[1]

    def _target(self, field_mapping: FieldMapping, name: str, system: str, obj: str) -> Target:
        kind = self.hubspot_types.get((obj, field_mapping.hubspot or ""), "string")
        wire: Callable[[Any], Any] | None = None
        # Without a transform (and, to Salesforce, a value map) `hubspot_value` and
        # `salesforce_value` give the unified value back: most fields skip the calls.
        if system == "hubspot" and field_mapping.transform:
            wire = partial(field_mapping.hubspot_value, property_type=kind)
        elif system != "hubspot" and (field_mapping.transform or field_mapping.values):
            wire = field_mapping.salesforce_value
        return Target(field_mapping, name, _may_clear(field_mapping), kind, wire)


def plan_entity(
    mapping: EntityMapping,
    entity: Entity,
    sides: Sides,
    written: Written,
    context: Context,
    attributed: Attributed | None = None,
) -> list[OutboxRow]:
    """The outbox rows that bring both systems to this entity's unified values: at most one
    row per target record (mapped fields, lifecycle stage, attribution and associations
    together)."""
    rows: dict[tuple[str, str, str], OutboxRow] = {}
    for system, record in (("hubspot", sides.hubspot), ("salesforce", sides.salesforce)):
        if record is not None:
            _merge(rows, _update(mapping, entity, record, system, written, context))
    for row in _stage_rows(entity, sides, written, context):
        _merge(rows, row)
    for row in _attribution_rows(entity, sides, attributed):
        _merge(rows, row)
    planned = list(rows.values())
    create = _hubspot_create(mapping, entity, sides, context)
    if create is not None:
        if attributed is not None:
            create.fields.update(_attribution_fields(entity, "hubspot", attributed, {}))
        planned.append(create)
    lead = _handoff_lead(mapping, entity, sides, context)
    if lead is not None:
        planned.append(lead)
    return planned


def _merge(rows: dict[tuple[str, str, str], OutboxRow], row: OutboxRow | None) -> None:
    """One row per target record: a later row's fields join the first row's."""
    if row is None:
        return
    key = (row.system, row.object, row.record_id or "")
    found = rows.get(key)
    if found is None:
        rows[key] = row
    else:
        found.fields.update(row.fields)
        found.clear_first += row.clear_first


def _attribution_rows(
    entity: Entity, sides: Sides, attributed: Attributed | None
) -> list[OutboxRow]:
    if attributed is None or entity.kind not in ("opportunity", "person"):
        return []
    rows = []
    # A person's attributed revenue goes to HubSpot only (`_attribution_fields`).
    records = (
        (sides.hubspot, sides.salesforce) if entity.kind == "opportunity" else (sides.hubspot,)
    )
    for record in records:
        if record is None:
            continue
        fields = _attribution_fields(entity, record["system"], attributed, record["data"])
        if fields:
            rows.append(
                OutboxRow(
                    record["system"],
                    record["object"],
                    entity.kind,
                    entity.id,
                    "update",
                    fields,
                    record_id=record["id"],
                )
            )
    return rows


def _attribution_fields(
    entity: Entity, system: str, attributed: Attributed, current: Mapping[str, Any]
) -> dict[str, Any]:
    if entity.kind == "opportunity":
        return opportunity_fields(system, attributed.labels.get(entity.id), current)
    if entity.kind == "person" and system == "hubspot":
        return revenue_field(
            PERSON_REVENUE, attributed.revenue.get(entity.id), current.get(PERSON_REVENUE)
        )
    return {}


def _stage_rows(
    entity: Entity, sides: Sides, written: Written, context: Context
) -> list[OutboxRow]:
    """The unified stage to HubSpot `lifecyclestage` and to `Lifecycle_Stage__c` on every live
    unconverted Lead and every Contact (a converted Lead is not live: never written)."""
    settings = context.lifecycle
    if settings is None or entity.kind != "person":
        return []
    stage = settings.stage(entity.fields.get(STAGE))
    if stage is None:
        return []
    rows = []
    targets = [(sides.hubspot, LIFECYCLE_PROPERTY, stage.hubspot)] if sides.hubspot else []
    targets += [(record, LIFECYCLE_FIELD, stage.salesforce) for record in sides.salesforce_all]
    for record, name, value in targets:
        if record["data"].get(name) == value:
            continue
        key = (record["system"], record["object"], record["id"])
        wrote = written.get(key, {}).get(name)
        if wrote is not None and wrote[2] > record["pulled_run"] and wrote[0] == value:
            continue  # written already and the CRM did not change since: nothing new to say
        current = (
            settings.stage(record["data"].get(name)) if record["system"] == "hubspot" else None
        )
        backward = current is not None and current.rank > stage.rank
        rows.append(
            OutboxRow(
                record["system"],
                record["object"],
                entity.kind,
                entity.id,
                "update",
                {name: value},
                record_id=record["id"],
                clear_first=[name] if backward else [],
            )
        )
    return rows


def _handoff_lead(
    mapping: EntityMapping, entity: Entity, sides: Sides, context: Context
) -> OutboxRow | None:
    """A HubSpot contact at the hand-off stage or later with no live Salesforce Lead or
    Contact becomes a Lead, exactly once: an upsert on `Syncd_Id__c`."""
    settings = context.lifecycle
    if settings is None or entity.kind != "person" or sides.hubspot is None:
        return None
    if sides.salesforce is not None or "salesforce" in sides.tombstones:
        return None
    stage, threshold = (
        settings.stage(entity.fields.get(STAGE)),
        settings.stage(settings.handoff_stage),
    )
    if stage is None or threshold is None or stage.rank < threshold.rank:
        return None
    fields: dict[str, Any] = {}
    for target in context.lead_fields(mapping):
        unified = entity.fields.get(target.field_mapping.name)
        if not is_blank(unified):
            fields[target.name] = unified if target.wire is None else target.wire(unified)
    fields["LastName"] = fields.get("LastName") or PLACEHOLDER
    fields["Company"] = context.company_name(sides.hubspot) or PLACEHOLDER
    fields[LIFECYCLE_FIELD] = stage.salesforce
    return OutboxRow(
        "salesforce",
        "Lead",
        entity.kind,
        entity.id,
        "upsert",
        fields,
        key_field=SYNCD_ID_FIELD,
        key=entity.id,
    )


def _update(
    mapping: EntityMapping,
    entity: Entity,
    record: dict[str, Any],
    system: str,
    written: Written,
    context: Context,
) -> OutboxRow | None:
    obj, data, values = record["object"], record["data"], entity.fields
    last_written: Mapping[str, tuple[Any, str | None, int]] | None = None
    changes: dict[str, Any] = {}
    origins: dict[str, str | None] = {}
    for target in context.targets(mapping, system, obj):
        field_mapping = target.field_mapping
        unified = values.get(field_mapping.name)
        current = data.get(target.name)
        if current == unified and target.wire is None:
            # Shown as it would be sent; a blank shown there is blank whether kept or cleared.
            continue
        if is_blank(unified):
            if not target.may_clear:
                continue
            desired = "" if system == "hubspot" else None
        else:
            desired = unified if target.wire is None else target.wire(unified)
        if current == desired or _equivalent(field_mapping, system, current, desired):
            continue
        if last_written is None:
            last_written = written.get((record["system"], obj, record["id"])) or {}
        wrote = last_written.get(target.name)
        if wrote is not None and wrote[2] > record["pulled_run"] and _same_raw(wrote[0], desired):
            # syncd wrote exactly this after the record was last seen changing: the CRM took
            # the write without changing the record (HubSpot ignores a backward lifecycle
            # stage, for one), so writing it again would change nothing either.
            continue
        changes[target.name] = desired
        origins[target.name] = _origin(entity, field_mapping.name)
    associations = _missing_associations(entity, record, context) if system == "hubspot" else []
    if not changes and not associations:
        return None
    return OutboxRow(
        system,
        obj,
        entity.kind,
        entity.id,
        "update",
        changes,
        record_id=record["id"],
        origins=origins,
        associations=associations,
    )


def _hubspot_create(
    mapping: EntityMapping, entity: Entity, sides: Sides, context: Context
) -> OutboxRow | None:
    """Salesforce-only people, accounts and every opportunity are created in HubSpot, unless
    a HubSpot record of theirs was deleted (a tombstone)."""
    if sides.hubspot is not None or sides.salesforce is None or "hubspot" in sides.tombstones:
        return None
    obj = HUBSPOT_OBJECT_OF[entity.kind]
    fields: dict[str, Any] = {SYNCD_ID_PROPERTY: entity.id}
    origins: dict[str, str | None] = {}
    for target in context.creates(mapping, obj):
        unified = entity.fields.get(target.field_mapping.name)
        if not is_blank(unified):
            fields[target.name] = unified if target.wire is None else target.wire(unified)
            origins[target.name] = _origin(entity, target.field_mapping.name)
    stage = context.lifecycle.stage(entity.fields.get(STAGE)) if context.lifecycle else None
    if entity.kind == "person" and stage is not None:
        fields[LIFECYCLE_PROPERTY] = stage.hubspot
    key_field, key = SYNCD_ID_PROPERTY, entity.id
    if entity.kind == "person" and is_valid_email(fields.get("email")):
        key_field, key = "email", str(fields["email"])
    associations: list[list[Any]] = []
    if entity.kind == "opportunity":
        fields.setdefault("pipeline", "default")
        associations = _wanted_associations(entity, context)
    return OutboxRow(
        "hubspot",
        obj,
        entity.kind,
        entity.id,
        "upsert",
        fields,
        key_field=key_field,
        key=key,
        origins=origins,
        associations=associations,
    )


def _wanted_associations(entity: Entity, context: Context) -> list[list[Any]]:
    wanted = []
    for kind, other in context.deal_associations(entity):
        hubspot_id = context.hubspot_id_of(kind, other)
        if hubspot_id is not None:
            wanted.append([HUBSPOT_OBJECT_OF[kind], hubspot_id, 0])
    return wanted


def _missing_associations(
    entity: Entity, record: dict[str, Any], context: Context
) -> list[list[Any]]:
    if entity.kind != "opportunity":
        return []
    have = record["data"].get("associations") or {}
    present = {(obj, str(item.get("id"))) for obj, items in have.items() for item in items or []}
    return [a for a in _wanted_associations(entity, context) if (a[0], a[1]) not in present]


def _target(field_mapping: FieldMapping, system: str, obj: str) -> str | None:
    if system == "hubspot":
        return field_mapping.hubspot if field_mapping.writes_hubspot else None
    return field_mapping.salesforce.get(obj) if field_mapping.writes_salesforce else None


def _may_clear(field_mapping: FieldMapping) -> bool:
    """A blank may overwrite a value only when the rule says so."""
    return field_mapping.blank == "clear" or field_mapping.rule.startswith("always-")


def _equivalent(field_mapping: FieldMapping, system: str, current: Any, desired: Any) -> bool:
    """Whether the CRM already shows the desired value (compared in unified form)."""
    if _same(current, desired):
        return True
    try:
        if system == "hubspot":
            return _same(field_mapping.from_hubspot(current), field_mapping.from_hubspot(desired))
        return _same(field_mapping.from_salesforce(current), field_mapping.from_salesforce(desired))
    except ValueError:
        return False


def _origin(entity: Entity, name: str) -> str | None:
    """When the unified value of a field was decided: the latest change time among the sides
    that show it."""
    unified = entity.fields.get(name)
    # As `_same(seen, unified)`: a value that is not blank equals only what is equal to it.
    blank = is_blank(unified)
    latest = None
    for seen in (entity.sides.get(name) or {}).values():
        if (
            isinstance(seen, list)
            and len(seen) > 1
            and seen[1]
            and (is_blank(seen[0]) if blank else seen[0] == unified)
            and (latest is None or seen[1] > latest)
        ):
            latest = seen[1]
    return latest
