"""Planner: plans a pass's dirty entities into the outbox, kind by kind, a chunk at a time.

Per chunk it reads together what `plan_entity` (plan.py) asks of the store: the linked records,
what syncd last wrote to them (only once a value is to be written), the companies people are
handed off with, and the HubSpot records deals are associated with.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from decimal import Decimal
from typing import Any

from syncd.attribution import AttributionSettings
from syncd.identity import KindSpec, spec_for
from syncd.mapping import EntityMapping, Mappings
from syncd.plan import Context, plan_entity
from syncd.reconcile import choose_sides, collector_paused
from syncd.rules import is_blank
from syncd.stages import LifecycleSettings
from syncd.store import Store
from syncd.store.dirty import sorted_chunks
from syncd.store.outbox import OutboxRow
from syncd.store.unified import Entity, SourceKey
from syncd.writeback import Attributed, campaign_rows


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

    def plan(
        self,
        kind: str,
        entity_ids: Iterable[str],
        batch: int = 2000,
        *,
        planned: Callable[[list[str]], None] = lambda chunk: None,
    ) -> int:
        """Replace the plan of these entities; the number of rows planned. `planned` is
        told each chunk of entities once its plan is committed (the push may take it)."""
        mapping = getattr(self.mappings, kind)
        spec = spec_for(mapping)
        rows = 0
        with collector_paused():
            # A pass's dirty entities (a million people in a backfill) a batch at a time.
            for chunk in sorted_chunks(entity_ids, batch):
                with self.store.transaction():
                    rows += self._plan_chunk(mapping, spec, chunk)
                planned(chunk)
        return rows

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
