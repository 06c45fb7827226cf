"""SQL for lifecycle stages (the date each stage was first entered) and for the hand-off of
marketing-qualified people to sales."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from syncd.store.unified import _chunks


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

    def handoffs(self, people: Iterable[str] | None = None) -> dict[str, Handoff]:
        columns = (
            "person_id, qualified_at, lead_id, created_by_syncd, owner_id,"
            " first_touch_at, first_touch"
        )
        if people is None:
            rows = list(self.conn.execute(f"SELECT {columns} FROM handoff"))
        else:
            rows = []
            for chunk in _chunks(list(set(people))):
                marks = ",".join("?" for _ in chunk)
                rows += list(
                    self.conn.execute(
                        f"SELECT {columns} FROM handoff WHERE person_id IN ({marks})", list(chunk)
                    )
                )
        return {
            row[0]: Handoff(row[0], row[1], row[2], bool(row[3]), row[4], row[5], row[6])
            for row in rows
        }

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
