"""Reconcile: from linked source records to unified values, field by field (ARCHITECTURE 1, 5).

For each entity whose records changed, the mapping file's rule decides every field from what
each system shows and when it changed it. Change times are kept per field (`sides`), so that a
record edited in one field does not win every other field under `two-way`, and a value syncd
wrote itself (its echo) keeps the time of the change it carried. Every changed unified value
gets an audit row.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import lru_cache
from typing import Any

from syncd.identity import KindSpec, resolve_all, spec_for
from syncd.mapping import EntityMapping, FieldMapping, Mappings
from syncd.rules import Decision, Observed, decide, is_blank
from syncd.store import Store, iso, parse_iso
from syncd.store.unified import AuditRow, Entity, Link, SourceKey, UnifiedStore

Written = Mapping[SourceKey, Mapping[str, tuple[Any, str | None, int]]]


@dataclass
class Sides:
    """One entity's records, chosen per system: the primary (whose values count) and the rest."""

    hubspot: dict[str, Any] | None = None
    salesforce: dict[str, Any] | None = None
    duplicates: list[tuple[SourceKey, str]] = field(default_factory=list)
    salesforce_all: list[dict[str, Any]] = field(default_factory=list)
    # Systems where syncd must create nothing for this entity: a record of its was deleted
    # there, or syncd created one there that no pull has read back yet.
    tombstones: set[str] = field(default_factory=set)

    def record(self, system: str) -> dict[str, Any] | None:
        return self.hubspot if system == "hubspot" else self.salesforce


def choose_sides(
    spec: KindSpec, links: Iterable[Link], records: Mapping[SourceKey, dict[str, Any]]
) -> Sides:
    """The primary live record on each side; the others are duplicates (ARCHITECTURE 5: a
    Contact wins over a Lead sharing its email; where several share a key, the oldest)."""
    sides = Sides()
    live: dict[str, list[Link]] = {"hubspot": [], "salesforce": []}
    for link in links:
        record = records.get(link.key)
        if link.state in ("deleted", "merged"):
            sides.tombstones.add(link.system)
        elif link.state != "live":
            continue
        elif record is None:
            # Created by syncd's upsert, not pulled yet: creating it again would duplicate it,
            # or bring it back if someone deleted it before syncd saw it.
            sides.tombstones.add(link.system)
        elif not record["deleted"]:
            live[link.system].append(link)
    for system, found in live.items():
        found.sort(key=spec.precedence)
        if not found:
            continue
        primary = records[found[0].key]
        if system == "hubspot":
            sides.hubspot = primary
        else:
            sides.salesforce = primary
            sides.salesforce_all = [records[lk.key] for lk in found]
        for other in found[1:]:
            sides.duplicates.append(
                (other.key, f"same {spec.kind} as {found[0].object} {found[0].record_id}")
            )
    return sides


@dataclass
class Outcome:
    """What recomputing one entity gives: its new values, audit rows and value problems."""

    entity: Entity
    audit: list[AuditRow]
    problems: list[tuple[SourceKey, str, str]]  # record, field, message
    changed: bool


def recompute(
    mapping: EntityMapping, entity: Entity, sides: Sides, written: Written, run: int
) -> Outcome:
    """Decide every field of one entity; keep per-field change times for next time."""
    fields, new_sides = dict(entity.fields), dict(entity.sides)
    audit: list[AuditRow] = []
    problems: list[tuple[SourceKey, str, str]] = []
    for name, field_mapping in mapping.fields.items():
        state = dict(new_sides.get(name, {}))
        observed = {}
        for system in ("hubspot", "salesforce"):
            seen, trouble = _observe(
                system, sides.record(system), field_mapping, state.get(system), written
            )
            if trouble is not None:
                problems.append(trouble)
            if seen is not None:
                observed[system] = seen
                state[system] = [seen[0].value, _text_time(seen[0].changed_at), seen[1]]
        decision = decide(
            field_mapping,
            observed.get("hubspot", (None,))[0],
            observed.get("salesforce", (None,))[0],
            entity.fields.get(name),
        )
        if not _same(decision.value, entity.fields.get(name)):
            audit.append(_audit(entity, name, decision, entity.fields.get(name)))
        fields[name] = decision.value
        new_sides[name] = state
    changed = fields != entity.fields or new_sides != entity.sides
    if changed:
        entity = Entity(
            entity.kind,
            entity.id,
            entity.match_key,
            fields,
            new_sides,
            entity.merged_into,
            entity.created_run,
            run,
        )
    return Outcome(entity, audit, problems, changed)


def _observe(
    system: str,
    record: dict[str, Any] | None,
    field_mapping: FieldMapping,
    before: list[Any] | None,
    written: Written,
) -> tuple[tuple[Observed, str] | None, tuple[SourceKey, str, str] | None]:
    """What one system shows for a field, when it changed, and the record it came from."""
    if record is None:
        return None, None
    name = (
        field_mapping.hubspot
        if system == "hubspot"
        else field_mapping.salesforce.get(record["object"])
    )
    if not name:
        return None, None
    key: SourceKey = (record["system"], record["object"], record["id"])
    raw = record["data"].get(name)
    try:
        value = _storable(
            field_mapping.from_hubspot(raw)
            if system == "hubspot"
            else field_mapping.from_salesforce(raw)
        )
    except ValueError as exc:
        return None, (key, field_mapping.name, str(exc))
    return (
        Observed(value, _changed_at(record, name, value, before, written.get(key, {}))),
        record["id"],
    ), None


def _changed_at(
    record: dict[str, Any],
    name: str,
    value: Any,
    before: list[Any] | None,
    written: Mapping[str, tuple[Any, str | None, int]],
) -> datetime:
    """When this system last changed this field: kept while the value stays; a value syncd
    wrote there (its echo) carries the time of the change it copied."""
    if before is not None and before[2] == record["id"] and _same(before[0], value):
        return _moment(before[1]) if before[1] else _moment(record["updated_at"])
    wrote = written.get(name)
    if wrote is not None and wrote[1] and _same_raw(wrote[0], record["data"].get(name)):
        return _moment(wrote[1])
    return _moment(record["updated_at"])


def _storable(value: Any) -> Any:
    """The unified form kept in the store: dates as ISO text, so that a value read back from
    the store compares equal to the same value observed again."""
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, date):
        return value.isoformat()
    return value


def _same(left: Any, right: Any) -> bool:
    if is_blank(left) or is_blank(right):
        return is_blank(left) and is_blank(right)
    return bool(left == right)


def _same_raw(left: Any, right: Any) -> bool:
    return _same(left, right) or str(left).strip() == str(right).strip()


# A record's change time is read for every field of it, and most records of a pass share a
# few stamps: parsing and formatting each once saves a fifth of `recompute`.
_moment = lru_cache(maxsize=1 << 16)(parse_iso)


@lru_cache(maxsize=1 << 16)
def _text_time(moment: datetime | None) -> str | None:
    return iso(moment) if moment is not None else None


def _audit(entity: Entity, name: str, decision: Decision, old: Any) -> AuditRow:
    return AuditRow(
        entity.kind, entity.id, name, old, decision.value, decision.winner, decision.rule
    )


@dataclass
class KindReport:
    kind: str
    records: int = 0
    entities: int = 0
    changed: int = 0
    audit: int = 0
    problems: int = 0


class Reconciler:
    """Runs reconcile for a pass: resolve identities, recompute changed entities, keep roles.

    Works from the source records changed since the last reconciled pass, in batches, each in
    one transaction; `dirty` keeps, per kind, the entities the plan must look at.
    """

    def __init__(
        self, store: Store, mappings: Mappings, run: int, at: str, batch: int = 2000
    ) -> None:
        self.store, self.mappings, self.run, self.at, self.batch = store, mappings, run, at, batch
        self.dirty: dict[str, set[str]] = {}
        self.problems: dict[str, list[tuple[SourceKey, str, str]]] = {}

    def reconcile(self, after_run: int) -> list[KindReport]:
        reports = []
        # Accounts first: people and opportunities name their account.
        for mapping in (self.mappings.account, self.mappings.person, self.mappings.opportunity):
            spec = spec_for(mapping)
            with self.store.transaction():
                resolution = resolve_all(self.store, spec, self.run, after_run)
            dirty = self.dirty.setdefault(mapping.entity, set())
            dirty |= resolution.dirty
            reports.append(self._recompute(mapping, spec, dirty))
        with self.store.transaction():
            self.dirty["opportunity"] |= self._contact_roles(after_run)
        return reports

    def _recompute(self, mapping: EntityMapping, spec: KindSpec, dirty: set[str]) -> KindReport:
        report = KindReport(mapping.entity, entities=len(dirty))
        unified = self.store.unified
        ids = sorted(dirty)
        for start in range(0, len(ids), self.batch):
            chunk = ids[start : start + self.batch]
            with self.store.transaction():
                self._recompute_chunk(mapping, spec, chunk, report, unified)
        return report

    def _recompute_chunk(
        self,
        mapping: EntityMapping,
        spec: KindSpec,
        chunk: list[str],
        report: KindReport,
        unified: UnifiedStore,
    ) -> None:
        links = unified.links_of(mapping.entity, chunk)
        keys = [lk.key for found in links.values() for lk in found]
        records = self.store.records(keys)
        written = self.store.outbox.written(keys)
        entities = unified.entities(mapping.entity, chunk)
        saved, audit, duplicates = [], [], []
        for entity_id in chunk:
            entity = entities.get(entity_id)
            if entity is None or entity.merged_into:
                continue
            sides = choose_sides(spec, links.get(entity_id, []), records)
            outcome = recompute(mapping, entity, sides, written, self.run)
            entity = outcome.entity
            entity = self._structure(mapping, entity, sides)
            if outcome.changed or entity is not outcome.entity:
                saved.append(entity)
            audit += outcome.audit
            duplicates += [(key, mapping.entity, entity_id, why) for key, why in sides.duplicates]
            self.problems.setdefault(mapping.entity, []).extend(outcome.problems)
            report.records += len(links.get(entity_id, []))
        unified.save_entities(saved)
        unified.audit(self.run, self.at, audit)
        unified.clear_duplicates(mapping.entity, chunk)
        unified.report_duplicates(self.run, duplicates)
        report.changed += len(saved)
        report.audit += len(audit)

    def _structure(self, mapping: EntityMapping, entity: Entity, sides: Sides) -> Entity:
        """What the entity is besides its mapped fields: its match key (from the unified
        values), its account, and an opportunity's state as Salesforce says it."""
        match_key = entity.match_key
        if mapping.match_keys:
            value = entity.fields.get(mapping.match_keys[0])
            match_key = None if is_blank(value) else str(value)
        fields = dict(entity.fields)
        account_id = entity.account_id
        record = sides.salesforce
        if mapping.entity == "opportunity" and record is not None:
            data = record["data"]
            account_id = self._entity_of("Account", data.get("AccountId"))
            fields.update(
                {
                    "_created": data.get("CreatedDate"),
                    "_close_date": data.get("CloseDate"),
                    "_is_closed": bool(data.get("IsClosed")),
                    "_is_won": bool(data.get("IsWon")),
                }
            )
        elif mapping.entity == "person":
            account_id = self._person_account(sides)
        if (match_key, fields, account_id) == (entity.match_key, entity.fields, entity.account_id):
            return entity
        return Entity(
            entity.kind,
            entity.id,
            match_key,
            fields,
            entity.sides,
            entity.merged_into,
            entity.created_run,
            self.run,
            account_id,
        )

    def _person_account(self, sides: Sides) -> str | None:
        """A person's account: their Salesforce Contact's Account (ARCHITECTURE 5: an
        opportunity without contact roles reaches "every Contact of its account")."""
        for record in sides.salesforce_all:
            if record["object"] == "Contact" and record["data"].get("AccountId"):
                return self._entity_of("Account", record["data"]["AccountId"])
        return None

    def _entity_of(self, sobject: str, record_id: Any) -> str | None:
        if not record_id:
            return None
        found = self.store.unified.links([("salesforce", sobject, str(record_id))])
        return next((lk.entity_id for lk in found.values()), None)

    def _contact_roles(self, after_run: int) -> set[str]:
        """Contact roles changed since the last pass: kept as opportunity_person rows."""
        roles = list(
            self.store.changed_records([("salesforce", "OpportunityContactRole")], after_run)
        )
        keys = [
            k
            for r in roles
            for k in (
                ("salesforce", "Opportunity", r["data"].get("OpportunityId") or ""),
                ("salesforce", "Contact", r["data"].get("ContactId") or ""),
            )
        ]
        links = self.store.unified.links(keys)
        keep, drop, dirty = [], [], set()
        for role in roles:
            data = role["data"]
            opp = links.get(("salesforce", "Opportunity", data.get("OpportunityId") or ""))
            person = links.get(("salesforce", "Contact", data.get("ContactId") or ""))
            if role["deleted"] or opp is None or person is None:
                drop.append(role["id"])
            else:
                keep.append(
                    (
                        opp.entity_id,
                        person.entity_id,
                        data.get("Role"),
                        bool(data.get("IsPrimary")),
                        role["id"],
                    )
                )
            if opp is not None:
                dirty.add(opp.entity_id)
        self.store.unified.drop_roles(drop)
        self.store.unified.save_roles(keep)
        return dirty
