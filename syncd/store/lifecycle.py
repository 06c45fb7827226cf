"""SQL for lifecycle stages (the date each stage was first entered) and for the hand-off of
marketing-qualified people to sales."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from syncd.store.codec import loads
from syncd.store.unified import Link, SourceKey, _chunks

# What deriving a stage reads of a person's records (`syncd.lifecycle`): HubSpot's stage and
# the date it was entered, Salesforce's stage label, creation, Lead Status and conversion.
_SALESFORCE_FIELDS = ("Lifecycle_Stage__c", "CreatedDate", "Status", "ConvertedDate")
# A hand-off is open while it still misses its Lead or its first sales touch.
_OPEN_HANDOFF = "(lead_id IS NULL OR first_touch_at IS NULL)"


@dataclass
class Handoff:
    person_id: str
    qualified_at: str
    lead_id: str | None = None
    created_by_syncd: bool = False
    owner_id: str | None = None
    first_touch_at: str | None = None
    first_touch: str | None = None


class LifecycleStore:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def history(self, people: Iterable[str]) -> dict[str, dict[str, str]]:
        """person -> stage -> when it was first entered."""
        found: dict[str, dict[str, str]] = {}
        for chunk in _chunks(list(set(people))):
            marks = ",".join("?" for _ in chunk)
            for person, stage, at in self.conn.execute(
                f"SELECT person_id, stage, entered_at FROM stage_history"
                f" WHERE person_id IN ({marks})",
                list(chunk),
            ):
                found.setdefault(person, {})[stage] = at
        return found

    def person_records(
        self, people: Iterable[str], stages: Iterable[str]
    ) -> tuple[dict[str, list[Link]], dict[SourceKey, dict[str, Any]]]:
        """These people's links, and their linked records shaped like `Store.records` rows
        but holding in `data` only the fields a stage is derived from (`hs_lifecyclestage_
        <stage>_date` for these stages): SQLite picks them out of each record's JSON, so the
        Python side decodes a few values, not a whole record. Stage values must not contain
        a double quote (they are JSON path labels)."""
        # At least two paths each (there is a stage): json_extract answers an array then.
        hubspot = ["lifecyclestage", *(f"hs_lifecyclestage_{stage}_date" for stage in stages)]
        paths = [f'$."{name}"' for name in (*hubspot, *_SALESFORCE_FIELDS)]
        hubspot_marks = ",".join("?" for _ in hubspot)
        salesforce_marks = ",".join("?" for _ in _SALESFORCE_FIELDS)
        links: dict[str, list[Link]] = {}
        records: dict[SourceKey, dict[str, Any]] = {}
        for chunk in _chunks(list(set(people))):
            rows = self.conn.execute(
                "SELECT l.system, l.object, l.record_id, l.kind, l.entity_id, l.state,"
                " l.created_at, s.updated_at, s.deleted, s.merged_into, s.pulled_run,"
                f" CASE l.system WHEN 'hubspot' THEN json_extract(s.data, {hubspot_marks})"
                f" ELSE json_extract(s.data, {salesforce_marks}) END FROM link l"
                " LEFT JOIN source_record s ON s.system = l.system AND s.object = l.object"
                f" AND s.id = l.record_id WHERE l.kind = 'person' AND l.entity_id IN"
                f" ({','.join('?' for _ in chunk)})"
                " ORDER BY l.entity_id, l.system, l.object, l.record_id",
                [*paths, *chunk],
            )
            for row in rows:
                link = Link(*row[:7])
                links.setdefault(link.entity_id, []).append(link)
                if row[7] is None:
                    continue  # linked, not pulled yet
                names = hubspot if link.system == "hubspot" else _SALESFORCE_FIELDS
                records[link.key] = {
                    "system": link.system,
                    "object": link.object,
                    "id": link.record_id,
                    "updated_at": row[7],
                    "deleted": bool(row[8]),
                    "merged_into": row[9],
                    "data": dict(zip(names, loads(row[11]), strict=True)),
                    "pulled_run": row[10],
                }
        return links, records

    def record_entries(self, rows: Iterable[tuple[str, str, str, str]], run: int) -> None:
        """(person, stage, entered at, signal): kept only the first time (never moved)."""
        self.conn.executemany(
            "INSERT INTO stage_history (person_id, stage, entered_at, run, signal)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT (person_id, stage) DO NOTHING",
            [(p, s, at, run, signal) for p, s, at, signal in rows],
        )

    def lost_opportunities(self, closed_after: str | None, closed_through: str) -> list[str]:
        """Live opportunities closed and lost with a close date (`YYYY-MM-DD`) after the first
        date (if given) and up to the second, both as the reconciler stored them."""
        lower = "" if closed_after is None else " AND json_extract(fields, '$._close_date') > ?"
        return [
            row[0]
            for row in self.conn.execute(
                "SELECT id FROM entity WHERE kind = 'opportunity' AND merged_into IS NULL"
                " AND json_extract(fields, '$._is_closed')"
                " AND NOT json_extract(fields, '$._is_won')"
                f" AND json_extract(fields, '$._close_date') <= ?{lower}",
                [closed_through] if closed_after is None else [closed_through, closed_after],
            )
        ]

    def run_started_at(self, run: int) -> str | None:
        row = self.conn.execute("SELECT started_at FROM run WHERE id = ?", (run,)).fetchone()
        return None if row is None else str(row[0])

    def all_history(self) -> list[dict[str, Any]]:
        cursor = self.conn.execute(
            "SELECT person_id, stage, entered_at, signal FROM stage_history"
            " ORDER BY person_id, entered_at"
        )
        names = [c[0] for c in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor]

    # hand-off ------------------------------------------------------------------------------

    def handoffs(
        self, people: Iterable[str] | None = None, open_only: bool = False
    ) -> dict[str, Handoff]:
        """The hand-offs of these people (None: of everyone); `open_only`: those still missing
        their Lead or their first sales touch."""
        select = (
            "SELECT person_id, qualified_at, lead_id, created_by_syncd, owner_id,"
            " first_touch_at, first_touch FROM handoff WHERE "
            + (_OPEN_HANDOFF if open_only else "1")
        )
        if people is None:
            rows = list(self.conn.execute(select))
        else:
            rows = []
            for chunk in _chunks(list(set(people))):
                marks = ",".join("?" for _ in chunk)
                rows += list(
                    self.conn.execute(f"{select} AND person_id IN ({marks})", list(chunk))
                )
        return {
            row[0]: Handoff(row[0], row[1], row[2], bool(row[3]), row[4], row[5], row[6])
            for row in rows
        }

    def unrecorded_handoffs(self, among: Sequence[str] | None = None) -> list[str]:
        """People (`among` these) with a Salesforce Lead upsert planned (pending or parked)
        and no hand-off row yet: found in SQL, so a pass's cost follows its plan, not the
        Leads still queued."""
        query = (
            "SELECT DISTINCT entity_id FROM outbox WHERE system = 'salesforce'"
            " AND object = 'Lead' AND operation = 'upsert'"
            " AND entity_id NOT IN (SELECT person_id FROM handoff)"
        )
        if among is None:
            return [row[0] for row in self.conn.execute(query)]
        found: list[str] = []
        for chunk in _chunks(list(among)):
            marks = ",".join("?" for _ in chunk)
            found += [
                row[0]
                for row in self.conn.execute(
                    f"{query} AND kind = 'person' AND entity_id IN ({marks})", chunk
                )
            ]
        return found

    def open_handoff_people(self) -> set[str]:
        """The people whose hand-off is still missing its Lead or its first sales touch."""
        return {
            row[0]
            for row in self.conn.execute(
                f"SELECT person_id FROM handoff WHERE {_OPEN_HANDOFF}"
            )
        }

    def handoffs_moved_after(self, run: int) -> set[str]:
        """People whose hand-off may have moved since pass `run`: hand-offs saved since, people
        whose Lead link was saved since, and people linked to a Lead that was pulled since or
        is the WhoId of a Task or Event pulled since (the changed rows are found through
        source_record_changed and link_linked, not by reading every hand-off's Lead)."""
        queries = (
            "SELECT person_id FROM handoff WHERE run > ?",
            "SELECT entity_id FROM link WHERE kind = 'person' AND linked_run > ?"
            " AND +system = 'salesforce' AND +object = 'Lead'",
            "SELECT l.entity_id FROM source_record s JOIN link l ON l.system = 'salesforce'"
            " AND l.object = 'Lead' AND l.record_id = s.id WHERE +s.system = 'salesforce'"
            " AND +s.object = 'Lead' AND s.pulled_run > ? AND l.kind = 'person'",
            "SELECT l.entity_id FROM source_record s JOIN link l ON l.system = 'salesforce'"
            " AND l.object = 'Lead' AND l.record_id = json_extract(s.data, '$.WhoId')"
            " WHERE +s.system = 'salesforce' AND +s.object IN ('Task', 'Event')"
            " AND s.pulled_run > ? AND l.kind = 'person'",
        )
        return {row[0] for query in queries for row in self.conn.execute(query, (run,))}

    def first_activities(self, who_ids: Iterable[str]) -> dict[str, tuple[str, str]]:
        """For each Lead or Contact id, its earliest live Task or Event: (CreatedDate, what).

        Named: left to itself (no statistics) SQLite reads every Task and Event through the
        key for each chunk of ids, not the few rows source_record_who points at; at 100,000
        people that made every pass pay minutes for the hand-offs still open."""
        found: dict[str, tuple[str, str]] = {}
        for chunk in _chunks(list(set(who_ids))):
            marks = ",".join("?" for _ in chunk)
            for who, created, obj, kind in self.conn.execute(
                "SELECT json_extract(data, '$.WhoId'), json_extract(data, '$.CreatedDate'),"
                " object, json_extract(data, '$.Type') FROM source_record"
                " INDEXED BY source_record_who WHERE system = 'salesforce'"
                " AND object IN ('Task', 'Event') AND deleted = 0"
                f" AND json_extract(data, '$.WhoId') IN ({marks}) ORDER BY object, id",
                chunk,
            ):
                # Of two at one instant, the first in key order (Event, then Task) is kept.
                if created and (who not in found or created < found[who][0]):
                    found[who] = (created, f"{obj}{': ' + kind if kind else ''}")
        return found

    def save_handoffs(self, handoffs: Iterable[Handoff], run: int) -> None:
        self.conn.executemany(
            "INSERT INTO handoff (person_id, qualified_at, lead_id, created_by_syncd, owner_id,"
            " first_touch_at, first_touch, run) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (person_id) DO UPDATE SET lead_id = excluded.lead_id,"
            " created_by_syncd = excluded.created_by_syncd, owner_id = excluded.owner_id,"
            " first_touch_at = excluded.first_touch_at, first_touch = excluded.first_touch,"
            " run = excluded.run",
            [
                (
                    h.person_id,
                    h.qualified_at,
                    h.lead_id,
                    int(h.created_by_syncd),
                    h.owner_id,
                    h.first_touch_at,
                    h.first_touch,
                    run,
                )
                for h in handoffs
            ],
        )
