"""Plan: what each CRM must be told so that it shows the unified values (ARCHITECTURE 1, 5).

For each target record, the fields whose desired value differs from the value syncd last saw
there *and* from the value it last wrote there become one outbox row. Creates go through
upserts on an idempotency key (HubSpot `email` or `syncd_id`; Salesforce `Syncd_Id__c`), so a
pass repeated after a crash never creates a record twice. Deleted records are tombstones:
nothing is created again in their place.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from syncd.attribution import AttributionSettings
from syncd.identity import KindSpec, spec_for
from syncd.lifecycle import STAGE
from syncd.mapping import EntityMapping, FieldMapping, Mappings
from syncd.reconcile import (
    Sides,
    Written,
    _same,
    _same_raw,
    choose_sides,
    collector_paused,
)
from syncd.rules import PLACEHOLDER, is_blank
from syncd.stages import LifecycleSettings
from syncd.store import Store
from syncd.store.outbox import OutboxRow
from syncd.store.unified import Entity
from syncd.transforms import is_valid_email
from syncd.writeback import (
    PERSON_REVENUE,
    Attributed,
    campaign_rows,
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
    """A field syncd writes on one object: where, whether a blank may clear it, and (HubSpot)
    the property's type."""

    field_mapping: FieldMapping
    name: str
    may_clear: bool
    hubspot_type: str


@dataclass(frozen=True)
class Context:
    """What planning needs beyond one entity: HubSpot property types, and the ids that the
    entity's associations point at on the HubSpot side."""

    hubspot_types: Mapping[tuple[str, str], str]
    hubspot_id_of: Callable[[str, str], str | None]  # (kind, entity id) -> HubSpot record id
    deal_associations: Callable[[Entity], list[tuple[str, str]]]  # (kind, entity id) pairs
    lifecycle: LifecycleSettings | None = None
    company_name: Callable[[dict[str, Any]], str | None] = lambda contact: None
    # (mapping, system, object) -> its targets, worked out once per pass, not per entity
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
                    kind = self.hubspot_types.get((obj, field_mapping.hubspot or ""), "string")
                    found[1].append(Target(field_mapping, name, _may_clear(field_mapping), kind))
            self._targets[(id(mapping), system, obj)] = found
        return found[1]


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

    def merge(row: OutboxRow) -> None:
        key = (row.system, row.object, row.record_id or "")
        if key in rows:
            rows[key].fields.update(row.fields)
            rows[key].clear_first += row.clear_first
        else:
            rows[key] = row

    for system in ("hubspot", "salesforce"):
        row = _update(mapping, entity, sides, system, written, context)
        if row is not None:
            merge(row)
    for row in [
        *_stage_rows(entity, sides, written, context),
        *_attribution_rows(entity, sides, attributed),
    ]:
        merge(row)
    create = _hubspot_create(mapping, entity, sides, context)
    if create is not None and attributed is not None:
        create.fields.update(_attribution_fields(entity, "hubspot", attributed, {}))
    creates = [create, _handoff_lead(mapping, entity, sides, context)]
    return [*rows.values(), *(row for row in creates if row is not None)]


def _attribution_rows(
    entity: Entity, sides: Sides, attributed: Attributed | None
) -> list[OutboxRow]:
    if attributed is None:
        return []
    rows = []
    for system in ("hubspot", "salesforce"):
        record = sides.record(system)
        if record is None:
            continue
        fields = _attribution_fields(entity, system, attributed, record["data"])
        if fields:
            rows.append(
                OutboxRow(
                    system,
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
    stage = (
        settings.stage(entity.fields.get(STAGE)) if settings and entity.kind == "person" else None
    )
    if settings is None or stage is None:
        return []
    rows = []
    targets = [(sides.hubspot, LIFECYCLE_PROPERTY, stage.hubspot)] if sides.hubspot else []
    targets += [(record, LIFECYCLE_FIELD, stage.salesforce) for record in sides.salesforce_all]
    for record, name, value in targets:
        if record is None or record["data"].get(name) == value:
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
    for field_mapping in mapping.fields.values():
        target = field_mapping.salesforce.get("Lead")
        unified = entity.fields.get(field_mapping.name)
        if target and field_mapping.rule != "none" and not is_blank(unified):
            fields[target] = field_mapping.salesforce_value(unified)
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
    sides: Sides,
    system: str,
    written: Written,
    context: Context,
) -> OutboxRow | None:
    record = sides.record(system)
    if record is None:
        return None
    obj, data, values = record["object"], record["data"], entity.fields
    last_written = written.get((record["system"], obj, record["id"])) or {}
    changes: dict[str, Any] = {}
    origins: dict[str, str | None] = {}
    for target in context.targets(mapping, system, obj):
        field_mapping = target.field_mapping
        unified = values.get(field_mapping.name)
        if is_blank(unified):
            if not target.may_clear:
                continue
            desired = "" if system == "hubspot" else None
        elif system == "hubspot":
            desired = field_mapping.hubspot_value(unified, target.hubspot_type)
        else:
            desired = field_mapping.salesforce_value(unified)
        current = data.get(target.name)
        if current == desired or _equivalent(field_mapping, system, current, desired):
            continue
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
    for field_mapping in mapping.fields.values():
        unified = entity.fields.get(field_mapping.name)
        if field_mapping.hubspot and field_mapping.rule != "none" and not is_blank(unified):
            fields[field_mapping.hubspot] = _wire(field_mapping, "hubspot", unified, obj, context)
            origins[field_mapping.hubspot] = _origin(entity, field_mapping.name)
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


def _wire(
    field_mapping: FieldMapping, system: str, unified: Any, obj: str, context: Context
) -> Any:
    if is_blank(unified):
        return "" if system == "hubspot" else None
    if system == "hubspot":
        kind = context.hubspot_types.get((obj, field_mapping.hubspot or ""), "string")
        return field_mapping.hubspot_value(unified, kind)
    return field_mapping.salesforce_value(unified)


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
    """When the unified value of a field was decided: the winning side's change time."""
    state = entity.sides.get(name) or {}
    times = [
        seen[1]
        for seen in state.values()
        if isinstance(seen, list) and len(seen) > 1 and _same(seen[0], entity.fields.get(name))
    ]
    return max((t for t in times if t), default=None)


def _company_of(contact: dict[str, Any]) -> str | None:
    """A HubSpot contact's primary associated company, else the one with the lowest id."""
    companies = (contact["data"].get("associations") or {}).get("companies") or []
    ids = [str(c["id"]) for c in companies if 1 in (c.get("types") or [])]
    ids = ids or sorted((str(c["id"]) for c in companies), key=lambda i: (len(i), i))
    return ids[0] if ids else None


class Planner:
    """Plans a pass's dirty entities into the outbox, kind by kind."""

    def __init__(
        self,
        store: Store,
        mappings: Mappings,
        run: int,
        at: str,
        lifecycle: LifecycleSettings | None = None,
        attribution: AttributionSettings | None = None,
    ) -> None:
        self.store, self.mappings, self.run, self.at = store, mappings, run, at
        self.attribution = attribution
        self._companies: dict[tuple[str, str, str], dict[str, Any] | None] = {}
        self.context = Context(
            hubspot_types=self._hubspot_types(),
            hubspot_id_of=self._hubspot_id_of,
            deal_associations=self._deal_associations,
            lifecycle=lifecycle,
            company_name=self._company_name,
        )

    def plan(self, kind: str, entity_ids: Iterable[str], batch: int = 2000) -> int:
        """Replace the plan of these entities; the number of rows planned."""
        mapping = getattr(self.mappings, kind)
        spec = spec_for(mapping)
        ids, planned = sorted(set(entity_ids)), 0
        with collector_paused():
            for start in range(0, len(ids), batch):
                chunk = ids[start : start + batch]
                with self.store.transaction():
                    planned += self._plan_chunk(mapping, spec, chunk)
        return planned

    def _plan_chunk(self, mapping: EntityMapping, spec: KindSpec, chunk: list[str]) -> int:
        unified = self.store.unified
        links = unified.links_of(mapping.entity, chunk)
        keys = [lk.key for found in links.values() for lk in found]
        records = self.store.records(keys)
        written = self.store.outbox.written(keys)
        entities = unified.entities(mapping.entity, chunk)
        if mapping.entity == "person" and self.context.lifecycle is not None:
            self._read_companies(records.values())
        attributed = (
            Attributed.of(self.store, self.attribution, mapping.entity, chunk)
            if self.attribution is not None
            else None
        )
        rows: list[OutboxRow] = []
        for entity_id in chunk:
            entity = entities.get(entity_id)
            if entity is None or entity.merged_into:
                continue
            sides = choose_sides(spec, links.get(entity_id, []), records)
            rows += plan_entity(mapping, entity, sides, written, self.context, attributed)
        return self.store.outbox.replace(mapping.entity, chunk, rows, self.run, self.at)

    def plan_campaigns(self, revenue: Mapping[str, Decimal]) -> int:
        """Salesforce Campaigns whose attributed revenue may have moved."""
        with self.store.transaction():
            return self.store.outbox.replace(
                "campaign", list(revenue), campaign_rows(self.store, revenue), self.run, self.at
            )

    def _hubspot_types(self) -> dict[tuple[str, str], str]:
        """HubSpot property types from the `properties` stream (`contacts.email` -> string)."""
        types = {}
        for row in self.store.source_records("hubspot", "properties"):
            obj, _, name = row["id"].partition(".")
            types[(obj, name)] = str(row["data"].get("type") or "string")
        return types

    def _company_name(self, contact: dict[str, Any]) -> str | None:
        """The name of a HubSpot contact's primary associated company, else of its associated
        company with the lowest id (ARCHITECTURE 5: never the free-text `company` property)."""
        company_id = _company_of(contact)
        if company_id is None:
            return None
        key = ("hubspot", "companies", company_id)
        if key not in self._companies:
            self._companies.update(self.store.records([key]))
        record = self._companies.get(key)
        name = record["data"].get("name") if record else None
        return None if is_blank(name) else str(name)

    def _read_companies(self, records: Iterable[dict[str, Any]]) -> None:
        """The companies these records' people may be handed to sales with, read at once."""
        wanted = {
            ("hubspot", "companies", company_id)
            for record in records
            if record["system"] == "hubspot" and (company_id := _company_of(record)) is not None
        }
        self._companies = dict.fromkeys(wanted)
        self._companies.update(self.store.records(wanted))

    def _hubspot_id_of(self, kind: str, entity_id: str) -> str | None:
        return self.store.unified.hubspot_record(kind, entity_id)

    def _deal_associations(self, entity: Entity) -> list[tuple[str, str]]:
        wanted: list[tuple[str, str]] = []
        if entity.account_id:
            wanted.append(("account", entity.account_id))
        roles = self.store.unified.roles_of([entity.id]).get(entity.id, [])
        wanted += [("person", person) for person, _ in roles]
        return wanted
