"""Reconcile: from linked source records to unified values, field by field (ARCHITECTURE 1, 5).

For each entity whose records changed, the mapping file's rule decides every field from what
each system shows and when it changed it. Change times are kept per field (`sides`), so that a
record edited in one field does not win every other field under `two-way`, and a value syncd
wrote itself (its echo) keeps the time of the change it carried. Every changed unified value
gets an audit row.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import lru_cache
from itertools import islice
from typing import Any

from syncd.identity import KindSpec, resolve_all, spec_for
from syncd.mapping import EntityMapping, Mappings
from syncd.rules import Seen, is_blank, settle
from syncd.store import Store, iso, parse_iso
from syncd.store.dirty import DirtyIds
from syncd.store.unified import AuditRow, Entity, Link, SourceKey, UnifiedStore
from syncd.transforms import TRANSFORMS

Written = Mapping[SourceKey, Mapping[str, tuple[Any, str | None, int]]]


@contextmanager
def collector_paused() -> Iterator[None]:
    """Python's cycle collector off for a stage of the pass, as it was afterwards.

    A stage makes millions of short-lived objects and next to no cycles, and the records and
    entities of a chunk live long enough to be promoted: the collector would walk the whole
    heap again and again in a pass, for nothing to free (`bench_reconcile --profile` shows
    what a pass spends where)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


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
        state = link.state
        if state == "live":
            record = records.get((link.system, link.object, link.record_id))
            if record is None:
                # Created by syncd's upsert, not pulled yet: creating it again would duplicate
                # it, or bring it back if someone deleted it before syncd saw it.
                sides.tombstones.add(link.system)
            elif not record["deleted"]:
                live[link.system].append(link)
        elif state in ("deleted", "merged"):
            sides.tombstones.add(link.system)
    for system, found in live.items():
        if not found:
            continue
        if len(found) > 1:
            found.sort(key=spec.precedence)
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


# How one side reads a field's raw value into the unified form (None: as it is).
Convert = Callable[[Any], Any] | None
# The fields one object holds, as (index in the plan, field name, its name there, converter).
Reads = tuple[tuple[int, str, str, Convert], ...]


class FieldPlan:
    """A mapping's fields as `recompute` walks them, worked out once per pass: per field its
    name, rule and blank policy, and per system and object the fields it holds, under which
    names, and how their values convert (`FieldMapping.from_hubspot` / `from_salesforce`)."""

    def __init__(self, mapping: EntityMapping) -> None:
        self.mapping = mapping
        self.fields = tuple(
            (name, f.rule, f.blank == "clear") for name, f in mapping.fields.items()
        )
        self.names = tuple(mapping.fields)
        self.unseen: tuple[None, ...] = (None,) * len(self.fields)
        self._reads: dict[tuple[str, str], Reads] = {}

    def reads(self, system: str, object_name: str) -> Reads:
        found = self._reads.get((system, object_name))
        if found is None:
            found = self._reads[(system, object_name)] = _reads(self.mapping, system, object_name)
        return found


def _reads(mapping: EntityMapping, system: str, object_name: str) -> Reads:
    found: list[tuple[int, str, str, Convert]] = []
    for index, f in enumerate(mapping.fields.values()):
        normalize = TRANSFORMS[f.transform].normalize if f.transform else None
        name = f.hubspot if system == "hubspot" else f.salesforce.get(object_name)
        if name:
            hubspot = system == "hubspot"
            found.append(
                (index, f.name, name, normalize if hubspot or not f.values else f.from_salesforce)
            )
    return tuple(found)


def recompute(
    mapping: EntityMapping,
    entity: Entity,
    sides: Sides,
    written: Written,
    run: int,
    plan: FieldPlan | None = None,
) -> Outcome:
    """Decide every field of one entity; keep per-field change times for next time."""
    plan = plan or FieldPlan(mapping)
    old_fields, old_sides = entity.fields, entity.sides
    fields, new_sides = dict(old_fields), dict(old_sides)
    audit: list[AuditRow] = []
    problems: list[tuple[SourceKey, str, str]] = []
    befores = [old_sides.get(name) for name in plan.names]
    states: list[dict[str, Any]] = [dict(before) if before else {} for before in befores]
    hubspot = _observe(plan, "hubspot", sides.hubspot, written, states, problems)
    salesforce = _observe(plan, "salesforce", sides.salesforce, written, states, problems)
    changed = False
    for index, (name, rule, clear) in enumerate(plan.fields):
        previous = old_fields.get(name)
        value, winner = settle(rule, clear, hubspot[index], salesforce[index], previous)
        # A decided value is None or not blank: `not _same(value, previous)`.
        if (not is_blank(previous)) if value is None else value != previous:
            audit.append(AuditRow(entity.kind, entity.id, name, previous, value, winner, rule))
        state = states[index]
        if not changed and (
            name not in old_fields
            or value != previous
            or befores[index] is None
            or state != befores[index]
        ):
            changed = True
        fields[name] = value
        new_sides[name] = state
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
            entity.account_id,
        )
    return Outcome(entity, audit, problems, changed)


def _observe(
    plan: FieldPlan,
    system: str,
    record: dict[str, Any] | None,
    written: Written,
    states: list[dict[str, Any]],
    problems: list[tuple[SourceKey, str, str]],
) -> Sequence[Seen | None]:
    """What one system's primary record shows for each field of the plan, and when it
    changed it (None where the field maps nothing there or its value does not convert).
    Each field seen gets its state for this system: [value, change time, record id].

    A field's change time is kept while its value stays; a value syncd wrote there (its
    echo) carries the time of the change it copied; otherwise it is the record's."""
    if record is None:
        return plan.unseen
    seen: list[Seen | None] = [None] * len(plan.fields)
    data, updated_at, record_id = record["data"], record["updated_at"], record["id"]
    key: SourceKey = (record["system"], record["object"], record_id)
    wrote_here = written.get(key) or {}
    for index, field_name, name, convert in plan.reads(system, key[1]):
        raw = data.get(name)
        try:
            value = raw if convert is None else convert(raw)
        except ValueError as exc:
            problems.append((key, field_name, str(exc)))
            continue
        if value is not None and type(value) is not str:
            value = _storable(value)
        state = states[index]
        before = state.get(system)
        if before is not None and before[2] == record_id and _same(before[0], value):
            at = str(before[1]) if before[1] else updated_at
        else:
            wrote = wrote_here.get(name)
            at = wrote[1] if wrote and wrote[1] and _same_raw(wrote[0], raw) else updated_at
        moment, text = _time(at)
        state[system] = [value, text, record_id]
        seen[index] = (value, moment)
    return seen


def _storable(value: Any) -> Any:
    """The unified form kept in the store: dates as ISO text, so that a value read back from
    the store compares equal to the same value observed again."""
    if value is None or type(value) is str:
        return value
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


@lru_cache(maxsize=1 << 16)
def _time(text: str) -> tuple[datetime, str]:
    """A change time, and its text as the store keeps it. Read for every field of a record,
    and most records of a pass share a few stamps: each is parsed and formatted once."""
    moment = parse_iso(text)
    return moment, iso(moment)


def _person_account(sides: Sides, accounts: Mapping[str, str]) -> str | None:
    """A person's account: their Salesforce Contact's Account (ARCHITECTURE 5: an
    opportunity without contact roles reaches "every Contact of its account")."""
    for record in sides.salesforce_all:
        if record["object"] == "Contact" and record["data"].get("AccountId"):
            return _account_of(record["data"], accounts)
    return None


def _account_of(data: Mapping[str, Any], accounts: Mapping[str, str]) -> str | None:
    """The entity of the Account a Salesforce record names (`Reconciler._accounts`)."""
    account = data.get("AccountId")
    return accounts.get(str(account)) if account else None


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
        self,
        store: Store,
        mappings: Mappings,
        run: int,
        at: str,
        batch: int = 2000,
        between: Callable[[], None] = lambda: None,
    ) -> None:
        self.store, self.mappings, self.run, self.at, self.batch = store, mappings, run, at, batch
        # Called between chunks (the pass stores pages there): outside their transactions,
        # but inside the resolve's, which is one for all its batches.
        self.between = between
        # Per kind, in a temporary table: a backfill's dirty entities are all of them.
        self.dirty: dict[str, DirtyIds] = {
            kind: DirtyIds.fresh(store.db.conn, kind)
            for kind in ("account", "person", "opportunity")
        }
        self.problems: dict[str, list[tuple[SourceKey, str, str]]] = {}
        self._plans: dict[str, FieldPlan] = {}

    def reconcile(self, after_run: int) -> list[KindReport]:
        self.store.forget_decoded()  # what the last pass decoded is mostly not read again
        with collector_paused():
            return self._reconcile(after_run)

    def _reconcile(self, after_run: int) -> list[KindReport]:
        reports = []
        # Accounts first: people and opportunities name their account.
        for mapping in (self.mappings.account, self.mappings.person, self.mappings.opportunity):
            spec = spec_for(mapping)
            dirty = self.dirty[mapping.entity]
            with self.store.transaction():
                # One transaction (a pass stopped midway resolves it all again), with pages
                # stored in it between its batches: a backfill's people are long to resolve,
                # and the activity streams' read-ahead would fill and hold HubSpot back.
                resolve_all(self.store, spec, self.run, after_run, self.batch, dirty,
                            between=self.between)
            reports.append(self._recompute(mapping, spec, dirty))
        with self.store.transaction():
            self._contact_roles(after_run)
        return reports

    def _recompute(self, mapping: EntityMapping, spec: KindSpec, dirty: DirtyIds) -> KindReport:
        report = KindReport(mapping.entity, entities=len(dirty))
        unified = self.store.unified
        for chunk in dirty.chunks(self.batch):
            with self.store.transaction():
                self._recompute_chunk(mapping, spec, chunk, report, unified)
            self.between()
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
        accounts = self._accounts(mapping.entity, records.values())
        saved: list[tuple[Entity, Entity]] = []
        audit: list[AuditRow] = []
        duplicates: list[tuple[SourceKey, str, str, str]] = []
        plan = self._plans.get(mapping.entity)
        if plan is None or plan.mapping is not mapping:
            plan = self._plans[mapping.entity] = FieldPlan(mapping)
        problems = self.problems.setdefault(mapping.entity, [])
        for entity_id in chunk:
            stored = entities.get(entity_id)
            if stored is None or stored.merged_into:
                continue
            found = links.get(entity_id, [])
            sides = choose_sides(spec, found, records)
            outcome = recompute(mapping, stored, sides, written, self.run, plan)
            entity = self._structure(mapping, outcome.entity, sides, accounts)
            if outcome.changed or entity is not outcome.entity:
                saved.append((stored, entity))
            audit += outcome.audit
            if sides.duplicates:
                duplicates += [
                    (key, mapping.entity, entity_id, why) for key, why in sides.duplicates
                ]
            if outcome.problems:
                problems += outcome.problems
            report.records += len(found)
        unified.update_entities(saved)
        unified.audit(self.run, self.at, audit)
        unified.clear_duplicates(mapping.entity, chunk)
        unified.report_duplicates(self.run, duplicates)
        report.changed += len(saved)
        report.audit += len(audit)

    def _structure(
        self, mapping: EntityMapping, entity: Entity, sides: Sides, accounts: Mapping[str, str]
    ) -> Entity:
        """What the entity is besides its mapped fields: its match key (from the unified
        values), its account, and an opportunity's state as Salesforce says it."""
        match_key = entity.match_key
        if mapping.match_keys:
            value = entity.fields.get(mapping.match_keys[0])
            match_key = None if is_blank(value) else str(value)
        fields = entity.fields
        account_id = entity.account_id
        record = sides.salesforce
        if mapping.entity == "opportunity" and record is not None:
            data = record["data"]
            account_id = _account_of(data, accounts)
            fields = {
                **fields,
                "_created": data.get("CreatedDate"),
                "_close_date": data.get("CloseDate"),
                "_is_closed": bool(data.get("IsClosed")),
                "_is_won": bool(data.get("IsWon")),
            }
        elif mapping.entity == "person":
            account_id = _person_account(sides, accounts)
        if (match_key, fields, account_id) == (entity.match_key, entity.fields, entity.account_id):
            return entity
        return entity.sharing_sides(
            match_key=match_key, fields=fields, updated_run=self.run, account_id=account_id
        )

    def _accounts(self, kind: str, records: Iterable[dict[str, Any]]) -> dict[str, str]:
        """Salesforce Account id -> its entity, for the accounts these records name."""
        if kind not in ("person", "opportunity"):
            return {}
        wanted = {
            ("salesforce", "Account", str(record["data"]["AccountId"]))
            for record in records
            if record["system"] == "salesforce"
            and record["object"] in ("Contact", "Opportunity")
            and record["data"].get("AccountId")
        }
        return {key[2]: lk.entity_id for key, lk in self.store.unified.links(wanted).items()}

    def _contact_roles(self, after_run: int) -> None:
        """Contact roles changed since the last pass: kept as opportunity_person rows, a batch
        at a time (a backfill of a million people reads over a hundred thousand of them);
        their opportunities are dirty."""
        changed = self.store.changed_records([("salesforce", "OpportunityContactRole")], after_run)
        while roles := list(islice(changed, self.batch)):
            self.dirty["opportunity"] |= self._save_roles(roles)

    def _save_roles(self, roles: list[dict[str, Any]]) -> set[str]:
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
