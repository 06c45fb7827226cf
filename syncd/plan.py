"""Plan: what each CRM must be told so that it shows the unified values (ARCHITECTURE 1, 5).

For each target record, the fields whose desired value differs from the value syncd last saw
there *and* from the value it last wrote there become one outbox row. Creates go through
upserts on an idempotency key (HubSpot `email` or `syncd_id`; Salesforce `Syncd_Id__c`), so a
pass repeated after a crash never creates a record twice. Deleted records are tombstones:
nothing is created again in their place.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from functools import partial
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
from syncd.store.unified import Entity, SourceKey
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


def _company_of(contact: dict[str, Any]) -> str | None:
    """A HubSpot contact's primary associated company, else the one with the lowest id."""
    companies = (contact["data"].get("associations") or {}).get("companies") or []
    ids = [str(c["id"]) for c in companies if 1 in (c.get("types") or [])]
    ids = ids or sorted((str(c["id"]) for c in companies), key=lambda i: (len(i), i))
    return ids[0] if ids else None


class _WrittenOnDemand(Mapping[SourceKey, Mapping[str, tuple[Any, str | None, int]]]):
    """What syncd last wrote to a chunk's records (`Written`), read when first asked for:
    planning asks only once it finds a value to write, so a chunk whose CRMs already show
    the unified values (a settled org) reads none of it."""

    def __init__(self, store: Store, keys: list[SourceKey]) -> None:
        self._store, self._keys = store, keys
        self._found: Mapping[SourceKey, Mapping[str, tuple[Any, str | None, int]]] | None = None

    def _read(self) -> Mapping[SourceKey, Mapping[str, tuple[Any, str | None, int]]]:
        if self._found is None:
            self._found = self._store.outbox.written(self._keys)
        return self._found

    def __getitem__(self, key: SourceKey) -> Mapping[str, tuple[Any, str | None, int]]:
        return self._read()[key]

    def __iter__(self) -> Iterator[SourceKey]:
        return iter(self._read())

    def __len__(self) -> int:
        return len(self._read())


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
        # HubSpot company id -> its name, for hand-off Leads: kept for the pass (a few per
        # person), each company read once; those of the chunk's records are read together
        # when its first hand-off asks (a settled org hands nobody off: none are read).
        self._company_names: dict[str, str | None] = {}
        self._unread_companies: list[dict[str, Any]] = []
        # The chunk's deals: their contact roles, and the HubSpot records of the accounts and
        # people they are to be associated with, read with the chunk, not per deal.
        self._roles: dict[str, list[tuple[str, bool]]] = {}
        self._hubspot_ids: dict[tuple[str, str], str | None] = {}
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
        written = _WrittenOnDemand(self.store, keys)
        entities = unified.entities(mapping.entity, chunk)
        handing_off = mapping.entity == "person" and self.context.lifecycle is not None
        self._unread_companies = list(records.values()) if handing_off else []
        if mapping.entity == "opportunity":
            self._read_associations(entities.values())
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
        if company_id not in self._company_names and self._unread_companies:
            self._read_companies(self._unread_companies)
            self._unread_companies = []
        if company_id not in self._company_names:
            self._read_company_names({company_id})
        return self._company_names[company_id]

    def _read_companies(self, records: Iterable[dict[str, Any]]) -> None:
        """The companies these records' people may be handed to sales with, read at once."""
        self._read_company_names(
            {
                company_id
                for record in records
                if record["system"] == "hubspot"
                and (company_id := _company_of(record)) is not None
                and company_id not in self._company_names
            }
        )

    def _read_company_names(self, company_ids: set[str]) -> None:
        found = self.store.records(("hubspot", "companies", i) for i in company_ids)
        for company_id in company_ids:
            record = found.get(("hubspot", "companies", company_id))
            name = record["data"].get("name") if record else None
            self._company_names[company_id] = None if is_blank(name) else str(name)

    def _read_associations(self, deals: Iterable[Entity]) -> None:
        """The contact roles of these deals and the HubSpot records of their accounts and
        people, read at once."""
        deals = list(deals)
        self._roles = {deal.id: [] for deal in deals}
        self._roles.update(self.store.unified.roles_of(self._roles))
        wanted = {
            "account": {deal.account_id for deal in deals if deal.account_id},
            "person": {person for roles in self._roles.values() for person, _ in roles},
        }
        self._hubspot_ids = {}
        for kind, ids in wanted.items():
            found = self.store.unified.hubspot_records(kind, ids)
            self._hubspot_ids.update({(kind, i): found.get(i) for i in ids})

    def _hubspot_id_of(self, kind: str, entity_id: str) -> str | None:
        if (kind, entity_id) in self._hubspot_ids:
            return self._hubspot_ids[(kind, entity_id)]
        return self.store.unified.hubspot_records(kind, [entity_id]).get(entity_id)

    def _deal_associations(self, entity: Entity) -> list[tuple[str, str]]:
        wanted: list[tuple[str, str]] = []
        if entity.account_id:
            wanted.append(("account", entity.account_id))
        roles = self._roles.get(entity.id)
        if roles is None:
            roles = self.store.unified.roles_of([entity.id]).get(entity.id, [])
        wanted += [("person", person) for person, _ in roles]
        return wanted
