"""Identity: which unified entity each source record is (ARCHITECTURE section 5).

Stored links first; then the record's own syncd id (HubSpot `syncd_id`, Salesforce
`Syncd_Id__c`, written by syncd on the records it created); then the match key (normalized email
for people, normalized domain for accounts). A converted Lead hands its link to its Contact; a
merge loser hands its entity to the survivor (two entities found to be one are merged); a
deleted record is unlinked but remembered as a tombstone, so syncd never recreates it; a Lead
and a Contact sharing an email are one person.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from syncd.mapping import EntityMapping
from syncd.store import Store
from syncd.store.dirty import DirtyIds
from syncd.store.unified import Entity, Link, SourceKey, UnifiedStore

SYNCD_ID = {"hubspot": "syncd_id", "salesforce": "Syncd_Id__c"}
CREATED = {"hubspot": ("createdate", "createdAt"), "salesforce": ("CreatedDate",)}


@dataclass(frozen=True)
class KindSpec:
    """Where one kind of entity lives on each side, and how its records are matched."""

    kind: str
    hubspot_object: str
    salesforce_objects: tuple[str, ...]
    match_key: Callable[[dict[str, Any]], str | None]
    # Whether a HubSpot record syncd cannot place makes an entity of its own. Deals do not:
    # syncd makes deals from Opportunities, and leaves the portal's other deals alone.
    hubspot_makes_entities: bool = True

    def objects(self) -> list[tuple[str, str]]:
        """In the order records are resolved: Salesforce by precedence, then HubSpot."""
        ordered = [("salesforce", name) for name in self.salesforce_objects]
        return [*ordered, ("hubspot", self.hubspot_object)]

    def precedence(self, link: Link) -> tuple[int, str]:
        """Sort key among one side's records: object precedence, then the oldest first."""
        rank = (
            self.salesforce_objects.index(link.object)
            if link.system == "salesforce" and link.object in self.salesforce_objects
            else 0
        )
        return (rank, link.created_at or "")


def spec_for(mapping: EntityMapping, *, salesforce_only_key: bool = False) -> KindSpec:
    """The identity spec of a mapping file: its objects and its match key fields."""
    keys = [mapping.fields[name] for name in mapping.match_keys if name in mapping.fields]

    def match_key(record: dict[str, Any]) -> str | None:
        for field_mapping in keys:
            if record["system"] == "hubspot":
                raw = record["data"].get(field_mapping.hubspot or "")
                value = field_mapping.from_hubspot(raw) if raw not in (None, "") else None
            else:
                name = field_mapping.salesforce.get(record["object"])
                raw = record["data"].get(name) if name else None
                try:
                    value = field_mapping.from_salesforce(raw) if raw not in (None, "") else None
                except ValueError:
                    value = None
            if value not in (None, ""):
                return str(value)
        return None

    return KindSpec(
        mapping.entity,
        mapping.hubspot_object,
        mapping.salesforce_objects,
        match_key,
        hubspot_makes_entities=mapping.entity != "opportunity",
    )


def entity_id_for(kind: str, record: dict[str, Any]) -> str:
    """The id of an entity first seen through this record: derived from the record, so that a
    store rebuilt from scratch gives every entity the id it had, and upserts keyed on it
    (`syncd_id`, `Syncd_Id__c`) find the records syncd created before instead of duplicating
    them."""
    return f"{kind[:3]}_{record['system'][0]}{record['id']}"


def created_at(record: dict[str, Any]) -> str | None:
    for name in CREATED[record["system"]]:
        value = record["data"].get(name)
        if value:
            return str(value)
    return None


@dataclass
class Resolution:
    """What resolving a batch changed: entities to recompute, and entity merges done."""

    dirty: DirtyIds
    merged: dict[str, str] = field(default_factory=dict)


class Resolver:
    """Links source records of one kind to entities, in batches, within the caller's
    transaction."""

    def __init__(
        self, store: Store, spec: KindSpec, run: int, dirty: DirtyIds | None = None
    ) -> None:
        self.store = store
        self.unified: UnifiedStore = store.unified
        self.spec = spec
        self.run = run
        self.result = Resolution(
            dirty if dirty is not None else DirtyIds.fresh(store.db.conn, spec.kind)
        )
        # What the batch knows besides the store: its match keys' entities, and which entity
        # ids exist (merged or not). Started afresh for each batch, once the one before has
        # saved its entities, so what a pass holds follows its batch, not its size (a backfill
        # resolves every record). `_moved` is what the store would not say: the match keys of
        # entities merged away in this pass, and their survivors.
        self._keys: dict[str, str] = {}
        self._moved: dict[str, str] = {}
        self._match_keys: dict[int, str | None] = {}  # the batch's records' own match keys
        # entity id -> the entity it was merged into (None: live), as stored or made this batch;
        # an id looked up and missing from it is no entity
        self._merged_into: dict[str, str | None] = {}
        self._looked_up: set[str] = set()
        self._new: list[Entity] = []  # entities made in this batch, not saved yet

    def resolve(self, records: list[dict[str, Any]]) -> None:
        """Resolve one batch of changed records (all of one object, oldest first)."""
        self._keys, self._merged_into, self._looked_up = dict(self._moved), {}, set()
        wanted: list[SourceKey] = [(r["system"], r["object"], r["id"]) for r in records]
        wanted += [
            ("salesforce", "Contact", r["data"]["ConvertedContactId"])
            for r in records
            if _converted_contact(r)
        ]
        wanted += [
            (r["system"], r["object"], r["merged_into"]) for r in records if r["merged_into"]
        ]
        links = self.unified.links(wanted)
        match_key = self.spec.match_key
        match_keys = {id(r): match_key(r) for r in records if not r["deleted"]}
        keys = {k for k in match_keys.values() if k}
        by_key = self.unified.by_match_key(self.spec.kind, keys - self._keys.keys())
        self._keys.update(by_key)
        self._match_keys = match_keys
        # The entities this batch may name (their own syncd ids, the ids new ones would get),
        # read in one query rather than one per record.
        kind = self.spec.kind
        self._look_up(
            candidate
            for r, key in zip(records, wanted, strict=False)
            if not r["deleted"] and _placed(links.get(key)) is None
            for candidate in _candidates(kind, r)
        )
        changed: dict[SourceKey, Link] = {}
        for record in records:
            self._one(record, links, changed)
        self._save_new()
        for link in changed.values():
            # A merge later in the batch moved the stored links; these copies must follow, or
            # saving them would point a loser's record back at the entity merged away.
            link.entity_id = self._survivor(link.entity_id)
        self.unified.save_links(changed.values(), self.run)

    def _one(
        self, record: dict[str, Any], links: dict[SourceKey, Link], changed: dict[SourceKey, Link]
    ) -> None:
        key = _key(record)
        link = links.get(key)
        if record["deleted"]:
            self._gone(record, link, links, changed)
            return
        placed = _placed(link)
        if placed is not None:
            self._known(record, placed, links, changed)
            return
        entity_id = self._find(record, links)
        if entity_id is None:
            return
        converted = _converted_contact(record)
        new = Link(
            *key,
            kind=self.spec.kind,
            entity_id=entity_id,
            state="converted" if converted else "live",
            created_at=created_at(record),
        )
        links[key] = changed[key] = new
        self.result.dirty.add(entity_id)
        if converted:
            self._hand_over(record, new, links, changed)

    def _known(
        self,
        record: dict[str, Any],
        link: Link,
        links: dict[SourceKey, Link],
        changed: dict[SourceKey, Link],
    ) -> None:
        link.entity_id = self._survivor(link.entity_id)
        self.result.dirty.add(link.entity_id)
        if _converted_contact(record) and link.state != "converted":
            link.state = "converted"
            changed[link.key] = link
            self._hand_over(record, link, links, changed)

    def _find(self, record: dict[str, Any], links: dict[SourceKey, Link]) -> str | None:
        """The entity an unlinked live record belongs to, made if there is none (None: the
        record is not one syncd keeps in step)."""
        if _converted_contact(record):
            contact = links.get(("salesforce", "Contact", record["data"]["ConvertedContactId"]))
            if contact is not None:
                return self._survivor(contact.entity_id)
        own = record["data"].get(SYNCD_ID[record["system"]])
        if own:
            survivor = self._stored_survivor(str(own))
            if survivor is not None:
                return survivor
        match = self._match_keys.get(id(record))
        if match and match in self._keys:
            return self._survivor(self._keys[match])
        if record["system"] == "hubspot" and not self.spec.hubspot_makes_entities:
            return None
        entity_id = entity_id_for(self.spec.kind, record)
        existing = self._stored_survivor(entity_id)
        if existing is not None:
            return existing
        # Saved with the batch's links: until then `_merged_into` says the entity exists.
        self._new.append(Entity(self.spec.kind, entity_id, match, {}, {}, None, self.run, self.run))
        self._merged_into[entity_id] = None
        self._looked_up.add(entity_id)
        if match:
            self._keys[match] = entity_id
        return entity_id

    def _look_up(self, entity_ids: Iterable[str]) -> None:
        wanted = set(entity_ids) - self._looked_up
        self._merged_into.update(self.unified.merged_into(self.spec.kind, wanted))
        self._looked_up |= wanted

    def _stored_survivor(self, entity_id: str) -> str | None:
        """`UnifiedStore.survivor` from what this pass read and wrote (None: no such entity)."""
        seen = set()
        current = entity_id
        while current not in seen:
            seen.add(current)
            if current not in self._looked_up:
                self._look_up([current])
            if current not in self._merged_into:
                return None
            following = self._merged_into[current]
            if following is None:
                return current
            current = following
        return current

    def _save_new(self) -> None:
        self.unified.save_entities(self._new)
        self._new = []

    def _hand_over(
        self,
        lead: dict[str, Any],
        link: Link,
        links: dict[SourceKey, Link],
        changed: dict[SourceKey, Link],
    ) -> None:
        """A converted Lead's person is its Contact: one entity for both."""
        contact_key = ("salesforce", "Contact", lead["data"]["ConvertedContactId"])
        contact = links.get(contact_key)
        if contact is None:
            contact = Link(*contact_key, kind=self.spec.kind, entity_id=link.entity_id)
            links[contact_key] = changed[contact_key] = contact
        elif self._survivor(contact.entity_id) != link.entity_id:
            self._merge(link.entity_id, self._survivor(contact.entity_id))
            link.entity_id = self._survivor(contact.entity_id)
            changed[link.key] = link

    def _gone(
        self,
        record: dict[str, Any],
        link: Link | None,
        links: dict[SourceKey, Link],
        changed: dict[SourceKey, Link],
    ) -> None:
        """Deleted or merged away: a tombstone; a merge hands the entity to the survivor."""
        if link is None:
            return  # never linked: nobody is carried by it
        state = "merged" if record["merged_into"] else "deleted"
        link.entity_id = self._survivor(link.entity_id)
        if link.state != state:
            link.state = state
            changed[link.key] = link
        self.result.dirty.add(link.entity_id)
        if not record["merged_into"]:
            return
        survivor_key = (record["system"], record["object"], record["merged_into"])
        survivor = links.get(survivor_key)
        if survivor is None:
            survivor = Link(*survivor_key, kind=self.spec.kind, entity_id=link.entity_id)
            links[survivor_key] = changed[survivor_key] = survivor
        elif self._survivor(survivor.entity_id) != link.entity_id:
            self._merge(link.entity_id, self._survivor(survivor.entity_id))

    def _merge(self, loser: str, survivor: str) -> None:
        """Two entities turn out to be one: the loser's links move to the survivor."""
        if loser == survivor:
            return
        self._save_new()  # the loser may be new in this batch
        self.unified.move_links(self.spec.kind, loser, survivor)
        found = self.unified.entities(self.spec.kind, [loser])
        if loser in found:
            entity = found[loser]
            entity.merged_into, entity.updated_run = survivor, self.run
            self.unified.save_entities([entity])
            if entity.match_key:  # the only key the store could have given the loser
                self._moved[entity.match_key] = survivor
        self._merged_into[loser] = survivor
        self.result.merged[loser] = survivor
        self.result.dirty.discard(loser)
        self.result.dirty.add(survivor)
        for key, entity_id in list(self._keys.items()):
            if entity_id == loser:
                self._keys[key] = survivor

    def _survivor(self, entity_id: str) -> str:
        while entity_id in self.result.merged:
            entity_id = self.result.merged[entity_id]
        return entity_id


def _candidates(kind: str, record: dict[str, Any]) -> list[str]:
    """The stored entities an unlinked record may turn out to be: its own syncd id's, and the
    one it would make."""
    own = record["data"].get(SYNCD_ID[record["system"]])
    return [str(own), entity_id_for(kind, record)] if own else [entity_id_for(kind, record)]


def _placed(link: Link | None) -> Link | None:
    """The link if it still places its record on an entity (not a tombstone)."""
    return link if link is not None and link.state in ("live", "converted") else None


def _key(record: dict[str, Any]) -> SourceKey:
    return (record["system"], record["object"], record["id"])


def _converted_contact(record: dict[str, Any]) -> bool:
    data = record["data"]
    return (
        record["system"] == "salesforce"
        and record["object"] == "Lead"
        and bool(data.get("IsConverted"))
        and bool(data.get("ConvertedContactId"))
    )


def resolve_all(
    store: Store,
    spec: KindSpec,
    run: int,
    after_run: int,
    batch: int = 2000,
    dirty: DirtyIds | None = None,
    between: Callable[[], None] = lambda: None,
) -> Resolution:
    """Resolve every record of this kind changed after `after_run`, object by object; the
    entities to recompute go to `dirty` (else to a fresh set). `between` is called after
    each batch, inside the caller's transaction."""
    resolver = Resolver(store, spec, run, dirty)
    for system, object_name in spec.objects():
        chunk: list[dict[str, Any]] = []
        changed = store.changed_records(
            [(system, object_name)], after_run, oldest_first=True, keep=True
        )
        for record in changed:
            chunk.append(record)
            if len(chunk) >= batch:
                resolver.resolve(chunk)
                chunk = []
                between()
        if chunk:
            resolver.resolve(chunk)
            between()
    resolver.result.dirty.flush()  # within the caller's transaction
    return resolver.result
