"""SQL for the unified dataset: entities, links to source records, contact roles, the audit
trail and reported duplicates. Batched: every method takes or returns many rows at once."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from syncd.store.codec import dumps, loads_exact
from syncd.store.dirty import sorted_chunks

SourceKey = tuple[str, str, str]  # system, object, record id
_CHUNK = 500  # SQLite allows 32,766 parameters; stay far below with a few per row


@dataclass(slots=True)
class Link:
    system: str
    object: str
    record_id: str
    kind: str
    entity_id: str
    state: str = "live"
    created_at: str | None = None

    @property
    def key(self) -> SourceKey:
        return (self.system, self.object, self.record_id)


class Entity:
    """One unified entity. `sides` (what each system last showed for each field, and since
    when) is read from the store only when asked for: deriving stages and most of planning
    never look at it, and an entity saved with its sides untouched writes them back as read."""

    __slots__ = (
        "_sides",
        "_sides_text",
        "account_id",
        "created_run",
        "fields",
        "id",
        "kind",
        "match_key",
        "merged_into",
        "updated_run",
    )

    def __init__(
        self,
        kind: str,
        id: str,
        match_key: str | None,
        fields: dict[str, Any],
        sides: dict[str, Any] | None,
        merged_into: str | None,
        created_run: int,
        updated_run: int,
        account_id: str | None = None,  # a person's or an opportunity's account entity
        *,
        sides_text: str | None = None,
    ) -> None:
        self.kind, self.id, self.match_key = kind, id, match_key
        self.fields, self.merged_into = fields, merged_into
        self.created_run, self.updated_run, self.account_id = created_run, updated_run, account_id
        self._sides = sides if sides is not None or sides_text is None else None
        self._sides_text = sides_text if sides is None else None
        if self._sides is None and self._sides_text is None:
            self._sides = {}

    @property
    def sides(self) -> dict[str, Any]:
        if self._sides is None:
            self._sides = loads_exact(self._sides_text or "{}")
            self._sides_text = None
        return self._sides

    @sides.setter
    def sides(self, value: dict[str, Any]) -> None:
        self._sides, self._sides_text = value, None

    def sides_json(self) -> str:
        """The sides as the store keeps them (as read, when nobody asked for them)."""
        return self._sides_text if self._sides is None and self._sides_text else dumps(self.sides)

    def sharing_sides(self, **changes: Any) -> Entity:
        """A copy with these attributes changed and the same sides, still unread if unread."""
        copy = Entity(
            self.kind,
            self.id,
            self.match_key,
            self.fields,
            self._sides,
            self.merged_into,
            self.created_run,
            self.updated_run,
            self.account_id,
            sides_text=self._sides_text,
        )
        for name, value in changes.items():
            setattr(copy, name, value)
        return copy

    def _state(self) -> tuple[Any, ...]:
        return (
            self.kind,
            self.id,
            self.match_key,
            self.fields,
            self.sides,
            self.merged_into,
            self.created_run,
            self.updated_run,
            self.account_id,
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Entity) and self._state() == other._state()

    __hash__ = None  # type: ignore[assignment]  # mutable, like the dataclass it was

    def __repr__(self) -> str:
        return (
            f"Entity(kind={self.kind!r}, id={self.id!r}, match_key={self.match_key!r}, "
            f"fields={self.fields!r}, sides={self.sides!r}, merged_into={self.merged_into!r}, "
            f"created_run={self.created_run!r}, updated_run={self.updated_run!r}, "
            f"account_id={self.account_id!r})"
        )


class AuditRow(NamedTuple):
    """Why a unified value changed. A named tuple: reconcile makes one per changed field."""

    kind: str
    entity_id: str
    field: str
    old_value: Any
    new_value: Any
    winner: str
    rule: str


def _chunks(items: Sequence[Any]) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]


def by_object(keys: Iterable[SourceKey]) -> Iterator[tuple[str, str, Sequence[str]]]:
    """Keys grouped as (system, object, chunk of ids). Queried as `system = ? AND object = ?
    AND id IN (...)`, SQLite searches the primary key; `(system, object, id) IN (VALUES ...)`
    would scan the whole table for every chunk, which made a full pass quadratic."""
    grouped: dict[tuple[str, str], set[str]] = {}
    for system, object_, record_id in keys:
        grouped.setdefault((system, object_), set()).add(record_id)
    for (system, object_), ids in grouped.items():
        for chunk in _chunks(sorted(ids)):
            yield system, object_, chunk


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return dumps(value)


class UnifiedStore:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    # links --------------------------------------------------------------------------------

    def links(self, keys: Iterable[SourceKey]) -> dict[SourceKey, Link]:
        found: dict[SourceKey, Link] = {}
        for system, object_, chunk in by_object(keys):
            marks = ",".join("?" for _ in chunk)
            rows = self.conn.execute(
                f"SELECT system, object, record_id, kind, entity_id, state, created_at FROM link "
                f"WHERE system = ? AND object = ? AND record_id IN ({marks})",
                [system, object_, *chunk],
            )
            for row in rows:
                link = Link(*row)
                found[link.key] = link
        return found

    def links_of(self, kind: str, entity_ids: Iterable[str]) -> dict[str, list[Link]]:
        found: dict[str, list[Link]] = {}
        for chunk in _chunks(list(set(entity_ids))):
            marks = ",".join("?" for _ in chunk)
            rows = self.conn.execute(
                f"SELECT system, object, record_id, kind, entity_id, state, created_at FROM link "
                f"WHERE kind = ? AND entity_id IN ({marks})",
                [kind, *chunk],
            )
            for row in rows:
                link = Link(*row)
                found.setdefault(link.entity_id, []).append(link)
        return found

    def save_links(self, links: Iterable[Link], run: int) -> None:
        self.conn.executemany(
            "INSERT INTO link (system, object, record_id, kind, entity_id, state, created_at,"
            " linked_run) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (system, object, record_id)"
            " DO UPDATE SET kind = excluded.kind, entity_id = excluded.entity_id,"
            " state = excluded.state, created_at = coalesce(excluded.created_at, created_at),"
            " linked_run = excluded.linked_run",
            [
                (
                    lk.system,
                    lk.object,
                    lk.record_id,
                    lk.kind,
                    lk.entity_id,
                    lk.state,
                    lk.created_at,
                    run,
                )
                for lk in links
            ],
        )

    def syncd_leads(self, people: Iterable[str]) -> dict[str, str]:
        """person -> the Salesforce Lead linked to them, the oldest where there are several."""
        found: dict[str, str] = {}
        for chunk in _chunks(list(set(people))):
            marks = ",".join("?" for _ in chunk)
            # `+system`, `+object`: searched by person (link_entity), not through every Lead
            # link once per chunk (the primary key), which grew with the square of the org.
            for person, lead in self.conn.execute(
                "SELECT entity_id, record_id FROM link WHERE kind = 'person' AND +system ="
                f" 'salesforce' AND +object = 'Lead' AND entity_id IN ({marks})"
                " AND state IN ('live', 'converted') ORDER BY created_at DESC",
                list(chunk),
            ):
                found[person] = lead
        return found

    def hubspot_records(self, kind: str, entity_ids: Iterable[str]) -> dict[str, str]:
        """The id of each entity's live HubSpot record (the oldest, then the lowest id, where
        there are several; one syncd created and no pull has read yet counts as the oldest)."""
        found: dict[str, str] = {}
        for chunk in _chunks(list(set(entity_ids))):
            marks = ",".join("?" for _ in chunk)
            # `+system`: searched by entity (link_entity); on the key, SQLite would read every
            # HubSpot link once per chunk.
            for entity_id, record_id in self.conn.execute(
                "SELECT entity_id, record_id FROM link WHERE kind = ? AND +system = 'hubspot'"
                f" AND state = 'live' AND entity_id IN ({marks})"
                " ORDER BY created_at DESC, record_id DESC",
                [kind, *chunk],
            ):
                found[entity_id] = str(record_id)  # later rows are older: the oldest stays
        return found

    def move_links(self, kind: str, from_entity: str, to_entity: str) -> None:
        self.conn.execute(
            "UPDATE link SET entity_id = ? WHERE kind = ? AND entity_id = ?",
            (to_entity, kind, from_entity),
        )
        if kind == "person":
            self.conn.execute(
                "UPDATE opportunity_person SET person_id = ? WHERE person_id = ?",
                (to_entity, from_entity),
            )
        self.conn.execute(
            "DELETE FROM outbox WHERE kind = ? AND entity_id = ? AND status = 'pending'",
            (kind, from_entity),
        )

    # entities -----------------------------------------------------------------------------

    def entities(self, kind: str, ids: Iterable[str]) -> dict[str, Entity]:
        found: dict[str, Entity] = {}
        for chunk in _chunks(list(set(ids))):
            marks = ",".join("?" for _ in chunk)
            rows = self.conn.execute(
                f"SELECT kind, id, match_key, fields, sides, merged_into, created_run,"
                f" updated_run, account_id FROM entity WHERE kind = ? AND id IN ({marks})",
                [kind, *chunk],
            )
            for row in rows:
                found[row[1]] = Entity(
                    row[0],
                    row[1],
                    row[2],
                    loads_exact(row[3]),
                    None,
                    row[5],
                    row[6],
                    row[7],
                    row[8],
                    sides_text=row[4],
                )
        return found

    def by_match_key(self, kind: str, keys: Iterable[str]) -> dict[str, str]:
        """The live entity holding each match key; where several do, the oldest."""
        found: dict[str, str] = {}
        for chunk in _chunks(list(set(keys))):
            marks = ",".join("?" for _ in chunk)
            rows = self.conn.execute(
                # Named: without statistics SQLite reads every entity of the kind instead
                # (here and for accounts below), a fixed cost in every incremental pass.
                f"SELECT match_key, id FROM entity INDEXED BY entity_match WHERE kind = ?"
                f" AND merged_into IS NULL AND match_key IN ({marks})"
                " ORDER BY created_run DESC, id DESC",
                [kind, *chunk],
            )
            for key, entity_id in rows:
                found[key] = entity_id  # later rows are older: the oldest stays
        return found

    def save_entities(self, entities: Iterable[Entity]) -> None:
        self.conn.executemany(
            "INSERT INTO entity (kind, id, match_key, fields, sides, merged_into, created_run,"
            " updated_run, account_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (kind, id) DO UPDATE SET match_key = excluded.match_key,"
            " fields = excluded.fields, sides = excluded.sides,"
            " merged_into = excluded.merged_into, updated_run = excluded.updated_run,"
            " account_id = excluded.account_id",
            [
                (
                    e.kind,
                    e.id,
                    e.match_key,
                    dumps(e.fields),
                    e.sides_json(),
                    e.merged_into,
                    e.created_run,
                    e.updated_run,
                    e.account_id,
                )
                for e in entities
            ],
        )

    def update_entities(self, changes: Iterable[tuple[Entity, Entity]]) -> None:
        """Stored entities rewritten, as (read, to store) pairs: their values and sides, and
        of the indexed columns only those that changed, so that SQLite leaves the match,
        account and run indexes alone where their columns did not move."""
        groups: dict[tuple[bool, bool, bool, bool], list[list[Any]]] = {}
        for old, new in changes:
            moved = (
                new.match_key != old.match_key,
                new.account_id != old.account_id,
                new.merged_into != old.merged_into,
                new.updated_run != old.updated_run,
            )
            row: list[Any] = [dumps(new.fields), new.sides_json()]
            if moved[0]:
                row.append(new.match_key)
            if moved[1]:
                row.append(new.account_id)
            if moved[2]:
                row.append(new.merged_into)
            if moved[3]:
                row.append(new.updated_run)
            row += (new.kind, new.id)
            groups.setdefault(moved, []).append(row)
        columns = ("match_key", "account_id", "merged_into", "updated_run")
        for moved, rows in groups.items():
            sets = "".join(
                f", {c} = ?" for c, changed in zip(columns, moved, strict=True) if changed
            )
            self.conn.executemany(
                f"UPDATE entity SET fields = ?, sides = ?{sets} WHERE kind = ? AND id = ?", rows
            )

    def save_fields(self, entities: Iterable[Entity]) -> None:
        """Stored entities whose fields changed, nothing else (and their `updated_run`): the
        sides and the match and account indexes stay as they are, where `save_entities`
        writes every column again."""
        self.conn.executemany(
            "UPDATE entity SET fields = ?, updated_run = ? WHERE kind = ? AND id = ?",
            [(dumps(e.fields), e.updated_run, e.kind, e.id) for e in entities],
        )

    def account_ids(self, kind: str, ids: Iterable[str]) -> dict[str, str | None]:
        """The account of each of these entities that exists (None: it has none); their
        fields are not read."""
        found: dict[str, str | None] = {}
        for chunk in _chunks(list(set(ids))):
            marks = ",".join("?" for _ in chunk)
            found.update(self.conn.execute(
                f"SELECT id, account_id FROM entity WHERE kind = ? AND id IN ({marks})",
                [kind, *chunk],
            ))
        return found

    def of_accounts(self, kind: str, accounts: Iterable[str]) -> dict[str, list[str]]:
        """Live entities of `kind` by the account they belong to."""
        found: dict[str, list[str]] = {}
        for chunk in _chunks(list(set(accounts))):
            marks = ",".join("?" for _ in chunk)
            for account, entity_id in self.conn.execute(
                f"SELECT account_id, id FROM entity INDEXED BY entity_account WHERE kind = ?"
                f" AND merged_into IS NULL AND account_id IN ({marks}) ORDER BY id",
                [kind, *chunk],
            ):
                found.setdefault(account, []).append(entity_id)
        return found

    def survivor(self, kind: str, entity_id: str) -> str | None:
        """Follow `merged_into` to the entity that carries this one now (None: unknown id)."""
        seen = set()
        current: str | None = entity_id
        while current is not None and current not in seen:
            seen.add(current)
            row = self.conn.execute(
                "SELECT merged_into FROM entity WHERE kind = ? AND id = ?", (kind, current)
            ).fetchone()
            if row is None:
                return None
            if row[0] is None:
                return current
            current = row[0]
        return current

    def merged_into(self, kind: str, ids: Iterable[str]) -> dict[str, str | None]:
        """For each of these entities that exists, the entity it was merged into (or None)."""
        found: dict[str, str | None] = {}
        for chunk in _chunks(list(set(ids))):
            marks = ",".join("?" for _ in chunk)
            found.update(
                self.conn.execute(
                    f"SELECT id, merged_into FROM entity WHERE kind = ? AND id IN ({marks})",
                    [kind, *chunk],
                ).fetchall()
            )
        return found

    def count(self, kind: str) -> int:
        row = self.conn.execute(
            "SELECT count(*) FROM entity WHERE kind = ? AND merged_into IS NULL", (kind,)
        ).fetchone()
        return int(row[0])

    def entity_ids(self, kind: str) -> Iterator[str]:
        """The live entities of a kind, streamed: a million people need not be held twice."""
        for row in self.conn.execute(
            "SELECT id FROM entity WHERE kind = ? AND merged_into IS NULL ORDER BY id", (kind,)
        ):
            yield row[0]

    # contact roles ------------------------------------------------------------------------

    def save_roles(self, rows: Iterable[tuple[str, str, str | None, bool, str]]) -> None:
        """(opportunity id, person id, role, is primary, OpportunityContactRole Id) rows."""
        self.conn.executemany(
            "INSERT INTO opportunity_person (opportunity_id, person_id, role, is_primary,"
            " source_id) VALUES (?, ?, ?, ?, ?) ON CONFLICT (source_id) DO UPDATE SET"
            " opportunity_id = excluded.opportunity_id, person_id = excluded.person_id,"
            " role = excluded.role, is_primary = excluded.is_primary",
            [(o, p, r, int(primary), s) for o, p, r, primary, s in rows],
        )

    def drop_roles(self, source_ids: Iterable[str]) -> None:
        self.conn.executemany(
            "DELETE FROM opportunity_person WHERE source_id = ?", [(s,) for s in source_ids]
        )

    def opportunities_of(self, people: Iterable[str], accounts: Iterable[str]) -> set[str]:
        """Opportunities with a contact role held by these people or on these accounts."""
        found: set[str] = set()
        for chunk in sorted_chunks(people, _CHUNK):
            marks = ",".join("?" for _ in chunk)
            found |= {
                row[0]
                for row in self.conn.execute(
                    f"SELECT opportunity_id FROM opportunity_person WHERE person_id IN ({marks})",
                    list(chunk),
                )
            }
        for chunk in sorted_chunks(accounts, _CHUNK):
            marks = ",".join("?" for _ in chunk)
            found |= {
                row[0]
                for row in self.conn.execute(
                    "SELECT id FROM entity INDEXED BY entity_account WHERE kind = 'opportunity'"
                    f" AND merged_into IS NULL AND account_id IN ({marks})",
                    list(chunk),
                )
            }
        return found

    def opportunities_by_person(self, people: Iterable[str]) -> dict[str, list[str]]:
        """The opportunities on which each person holds a contact role."""
        found: dict[str, list[str]] = {}
        for chunk in _chunks(list(set(people))):
            marks = ",".join("?" for _ in chunk)
            for person, opp in self.conn.execute(
                f"SELECT person_id, opportunity_id FROM opportunity_person"
                f" WHERE person_id IN ({marks})",
                list(chunk),
            ):
                found.setdefault(person, []).append(opp)
        return found

    def opportunities_with_roles(self, opportunities: Iterable[str]) -> set[str]:
        found: set[str] = set()
        for chunk in _chunks(list(set(opportunities))):
            marks = ",".join("?" for _ in chunk)
            found |= {
                row[0]
                for row in self.conn.execute(
                    f"SELECT DISTINCT opportunity_id FROM opportunity_person"
                    f" WHERE opportunity_id IN ({marks})",
                    list(chunk),
                )
            }
        return found

    def roles_of(self, opportunity_ids: Iterable[str]) -> dict[str, list[tuple[str, bool]]]:
        found: dict[str, list[tuple[str, bool]]] = {}
        for chunk in _chunks(list(set(opportunity_ids))):
            marks = ",".join("?" for _ in chunk)
            for opp, person, primary in self.conn.execute(
                f"SELECT opportunity_id, person_id, is_primary FROM opportunity_person"
                f" WHERE opportunity_id IN ({marks}) ORDER BY source_id",
                list(chunk),
            ):
                found.setdefault(opp, []).append((person, bool(primary)))
        return found

    # audit and duplicates -----------------------------------------------------------------

    def audit(self, run: int, at: str, rows: Iterable[AuditRow]) -> None:
        self.conn.executemany(
            "INSERT INTO audit (run, kind, entity_id, field, old_value, new_value, winner, rule,"
            " at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (run, kind, entity_id, name, _text(old), _text(new), winner, rule, at)
                for kind, entity_id, name, old, new, winner, rule in rows
            ],
        )

    def audit_of(self, kind: str, entity_id: str) -> list[dict[str, Any]]:
        cursor = self.conn.execute(
            "SELECT run, field, old_value, new_value, winner, rule, at FROM audit"
            " WHERE kind = ? AND entity_id = ? ORDER BY id",
            (kind, entity_id),
        )
        names = [c[0] for c in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor]

    def report_duplicates(self, run: int, rows: Iterable[tuple[SourceKey, str, str, str]]) -> None:
        """(source key, kind, entity id, reason) rows; a record no longer duplicate is dropped
        by `clear_duplicates` first."""
        self.conn.executemany(
            "INSERT INTO duplicate (system, object, record_id, kind, entity_id, reason, run)"
            " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (system, object, record_id) DO UPDATE SET"
            " kind = excluded.kind, entity_id = excluded.entity_id, reason = excluded.reason,"
            " run = excluded.run",
            [(k[0], k[1], k[2], kind, entity, reason, run) for k, kind, entity, reason in rows],
        )

    def clear_duplicates(self, kind: str, entity_ids: Iterable[str]) -> None:
        # A statement per chunk, searched through duplicate_entity (migration 4).
        for chunk in _chunks(list(set(entity_ids))):
            marks = ",".join("?" for _ in chunk)
            self.conn.execute(
                f"DELETE FROM duplicate WHERE kind = ? AND entity_id IN ({marks})", [kind, *chunk]
            )

    def duplicates(self) -> list[dict[str, Any]]:
        cursor = self.conn.execute("SELECT * FROM duplicate ORDER BY kind, entity_id")
        names = [c[0] for c in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor]

    # state --------------------------------------------------------------------------------

    def get_state(self, key: str, default: str | None = None) -> str | None:
        row = self.conn.execute("SELECT value FROM state WHERE key = ?", (key,)).fetchone()
        return default if row is None else str(row[0])

    def set_state(self, key: str, value: str) -> None:
        self.conn.execute(
            "INSERT INTO state (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET"
            " value = excluded.value",
            (key, value),
        )

    def counts(self) -> Mapping[str, int]:
        return {kind: self.count(kind) for kind in ("person", "account", "opportunity")}
