"""SQL for `syncd report`: the rows the funnel, hand-off and attribution reports are computed
from. Reads only; each method is one query over the whole store, so a report costs a few
scans whatever the size of the org. Attribution is summed in SQL (credits run to millions of
rows); the funnel and the hand-off need per-person rows, which stay in the hundreds of
thousands."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

__all__ = ["AttributionSum", "HandoffRow", "PersonRow", "ReportStore", "StageEntry"]


@dataclass(frozen=True, slots=True)
class PersonRow:
    """A live unified person: current stage (HubSpot value, None when unknown) and original
    source (HubSpot `hs_analytics_source`, None when absent or no HubSpot contact)."""

    id: str
    stage: str | None
    source: str | None


@dataclass(frozen=True, slots=True)
class StageEntry:
    """When a person first entered a stage: the store's ISO 8601 UTC text, and the same
    instant as a Julian day number (SQLite's `julianday`), so that the days between two
    stages are a subtraction rather than two date parses per pair."""

    person_id: str
    stage: str
    entered_at: str
    day: float


@dataclass(frozen=True)
class HandoffRow:
    person_id: str
    email: str | None
    qualified_at: str
    lead_id: str | None
    created_by_syncd: bool
    owner_id: str | None
    owner_name: str | None  # the Salesforce User's Name, when Users were pulled
    first_touch_at: str | None
    first_touch: str | None


@dataclass(frozen=True)
class AttributionSum:
    """Credited amounts of one model to one label and kind of touch, for opportunities in one
    state: `open`, `won` or `lost`."""

    model: str
    label: str
    sales: bool
    state: str
    amount: float
    opportunities: int


# The person's oldest live HubSpot contact that carries a source (a contact merged into another
# or archived is no one, ARCHITECTURE section 5); "oldest" because that record saw the person
# first, so its original source is the person's.
_SOURCE = """
    SELECT json_extract(s.data, '$.hs_analytics_source')
    FROM link l JOIN source_record s
      ON s.system = l.system AND s.object = l.object AND s.id = l.record_id
    WHERE l.kind = 'person' AND l.entity_id = e.id AND l.system = 'hubspot'
      AND l.object = 'contacts' AND l.state = 'live' AND s.deleted = 0 AND s.merged_into IS NULL
    ORDER BY json_extract(s.data, '$.hs_analytics_source') IS NULL, l.created_at, l.record_id
    LIMIT 1
"""

# Won: Salesforce IsWon as reconcile keeps it (`_is_won`), else the unified stage; closed
# likewise. The same test as syncd/store/attribution.py uses for the write-back.
_STATE = """
    CASE
      WHEN coalesce(json_extract(o.fields, '$._is_won'),
                    json_extract(o.fields, '$.stage') = 'closedwon') THEN 'won'
      WHEN coalesce(json_extract(o.fields, '$._is_closed'),
                    json_extract(o.fields, '$.stage') IN ('closedwon', 'closedlost')) THEN 'lost'
      ELSE 'open'
    END
"""


class ReportStore:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def people(self) -> list[PersonRow]:
        """Every unified person not merged into another."""
        return [
            PersonRow(row[0], row[1], row[2])
            for row in self.conn.execute(
                f"SELECT e.id, json_extract(e.fields, '$._stage'), ({_SOURCE})"
                " FROM entity e WHERE e.kind = 'person' AND e.merged_into IS NULL"
            )
        ]

    def stage_entries(self) -> list[StageEntry]:
        return [
            StageEntry(*row)
            for row in self.conn.execute(
                "SELECT person_id, stage, entered_at, julianday(entered_at) FROM stage_history"
            )
        ]

    def handoffs(self) -> list[HandoffRow]:
        """Every hand-off, with the person's email and the owner's name where known."""
        return [
            HandoffRow(r[0], r[1], r[2], r[3], bool(r[4]), r[5], r[6], r[7], r[8])
            for r in self.conn.execute(
                "SELECT h.person_id, json_extract(e.fields, '$.email'), h.qualified_at,"
                " h.lead_id, h.created_by_syncd, h.owner_id, json_extract(u.data, '$.Name'),"
                " h.first_touch_at, h.first_touch"
                " FROM handoff h"
                " LEFT JOIN entity e ON e.kind = 'person' AND e.id = h.person_id"
                " LEFT JOIN source_record u ON u.system = 'salesforce' AND u.object = 'User'"
                "   AND u.id = h.owner_id"
                " ORDER BY h.qualified_at, h.person_id"
            )
        ]

    def attribution_sums(self, model: str | None = None) -> list[AttributionSum]:
        """Credited amounts by model, touch label, marketing or sales, and opportunity state."""
        where, params = ("WHERE c.model = ?", [model]) if model else ("", [])
        return [
            AttributionSum(r[0], r[1], bool(r[2]), r[3], float(r[4] or 0.0), int(r[5]))
            for r in self.conn.execute(
                f"SELECT c.model, t.label, t.sales, {_STATE} AS state, sum(c.amount),"
                " count(DISTINCT c.opportunity_id)"
                " FROM credit c JOIN touchpoint t ON t.id = c.touchpoint_id"
                " JOIN entity o ON o.kind = 'opportunity' AND o.id = c.opportunity_id"
                "   AND o.merged_into IS NULL"
                f" {where} GROUP BY c.model, t.label, t.sales, state",
                params,
            )
        ]
