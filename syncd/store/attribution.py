"""SQL for attribution: touchpoints, credits per opportunity and model, the digest of what each
opportunity's credits were computed from, and the sums the write-back needs. Batched: every
method takes or returns many rows at once."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, NamedTuple

__all__ = ["AttributionStore", "CreditRow", "TouchRow"]

_CHUNK = 500


class TouchRow(NamedTuple):
    """One `touchpoint` row; `at` is ISO 8601 UTC text (sorts in time order). A named tuple:
    a full build makes a million of them."""

    id: str
    person_id: str | None
    at: str
    kind: str
    label: str
    sales: bool
    source_id: str


class CreditRow(NamedTuple):
    opportunity_id: str
    model: str
    touchpoint_id: str
    share: float
    amount: float


def _chunks(items: Iterable[Any]) -> Iterator[list[Any]]:
    batch = list(items)
    for start in range(0, len(batch), _CHUNK):
        yield batch[start : start + _CHUNK]


def _marks(chunk: Sequence[Any]) -> str:
    return ",".join("?" for _ in chunk)


_TOUCH_COLUMNS = "id, person_id, at, kind, label, sales, source_id"


def _touch(row: tuple[Any, ...]) -> TouchRow:
    return TouchRow(row[0], row[1], row[2], row[3], row[4], bool(row[5]), row[6])



# A won opportunity: Salesforce's IsWon (kept by reconcile as `_is_won`), or for an opportunity
# without a Salesforce record, its unified stage (HubSpot's vocabulary) being closedwon.
_WON = (
    "CROSS JOIN entity e ON e.kind = 'opportunity' AND e.id = c.opportunity_id"
    " AND coalesce(json_extract(e.fields, '$._is_won'),"
    " json_extract(e.fields, '$.stage') = 'closedwon')"
)


class AttributionStore:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    # touchpoints --------------------------------------------------------------------------

    def touchpoints(self, ids: Iterable[str]) -> dict[str, TouchRow]:
        found: dict[str, TouchRow] = {}
        for chunk in _chunks(set(ids)):
            for row in self.conn.execute(
                f"SELECT {_TOUCH_COLUMNS} FROM touchpoint WHERE id IN ({_marks(chunk)})", chunk
            ):
                found[row[0]] = _touch(row)
        return found

    def touchpoints_of(self, people: Iterable[str]) -> dict[str, list[TouchRow]]:
        """Each person's touchpoints, oldest first."""
        found: dict[str, list[TouchRow]] = {}
        for chunk in _chunks(set(people)):
            for row in self.conn.execute(
                f"SELECT {_TOUCH_COLUMNS} FROM touchpoint WHERE person_id IN ({_marks(chunk)})"
                " ORDER BY person_id, at",
                chunk,
            ):
                found.setdefault(row[1], []).append(_touch(row))
        return found

    def orphan_touchpoints(self) -> list[str]:
        """Touchpoints whose person is not known yet (the index on person_id finds them)."""
        return [
            r[0] for r in self.conn.execute("SELECT id FROM touchpoint WHERE person_id IS NULL")
        ]

    def people_touched_between(self, after: str, through: str) -> set[str]:
        """People with a touch in (after, through]: open windows that grew to take it in."""
        return {
            row[0]
            for row in self.conn.execute(
                "SELECT DISTINCT person_id FROM touchpoint WHERE at > ? AND at <= ?"
                " AND person_id IS NOT NULL",
                (after, through),
            )
        }

    def save_touchpoints(self, rows: Iterable[TouchRow], run: int) -> None:
        self.conn.executemany(
            "INSERT INTO touchpoint (id, person_id, at, kind, label, sales, source_id, run)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET"
            " person_id = excluded.person_id, at = excluded.at, kind = excluded.kind,"
            " label = excluded.label, sales = excluded.sales, source_id = excluded.source_id,"
            " run = excluded.run",
            [
                (r.id, r.person_id, r.at, r.kind, r.label, int(r.sales), r.source_id, run)
                for r in rows
            ],
        )

    def drop_touchpoints(self, ids: Iterable[str]) -> None:
        self.conn.executemany("DELETE FROM touchpoint WHERE id = ?", [(i,) for i in ids])

    def touchpoint_count(self) -> int:
        return int(self.conn.execute("SELECT count(*) FROM touchpoint").fetchone()[0])

    # source records and links, by id ----------------------------------------------------------
    # `(system, object, id) IN (VALUES ...)` makes SQLite scan the whole table; one object at a
    # time with `id IN (...)` searches the primary key.

    def source_rows(self, system: str, obj: str, ids: Iterable[str]) -> list[dict[str, Any]]:
        """Source records of one object by id, shaped like `Store.changed_records` rows."""
        found: list[dict[str, Any]] = []
        for chunk in _chunks(set(ids)):
            for row in self.conn.execute(
                "SELECT id, deleted, merged_into, data, pulled_run FROM source_record"
                f" WHERE system = ? AND object = ? AND id IN ({_marks(chunk)})",
                [system, obj, *chunk],
            ):
                found.append({
                    "system": system, "object": obj, "id": row[0], "deleted": bool(row[1]),
                    "merged_into": row[2], "data": json.loads(row[3]), "pulled_run": row[4],
                })
        return found

    def linked(self, system: str, obj: str, ids: Iterable[str]) -> dict[str, tuple[str, str]]:
        """Record id -> (entity id, link state) of one object's links."""
        found: dict[str, tuple[str, str]] = {}
        for chunk in _chunks(set(ids)):
            for record_id, entity_id, state in self.conn.execute(
                "SELECT record_id, entity_id, state FROM link"
                f" WHERE system = ? AND object = ? AND record_id IN ({_marks(chunk)})",
                [system, obj, *chunk],
            ):
                found[record_id] = (entity_id, state)
        return found

    # what changed -------------------------------------------------------------------------

    def entities_updated(self, kind: str, after_run: int) -> set[str]:
        """Entities of `kind` saved by passes after `after_run`, merged-away ones included."""
        return {
            row[0]
            for row in self.conn.execute(
                "SELECT id FROM entity WHERE kind = ? AND updated_run > ?", (kind, after_run)
            )
        }

    def entities_relinked(self, kind: str, after_run: int) -> set[str]:
        """Entities of `kind` whose links were saved by passes after `after_run`."""
        return {
            row[0]
            for row in self.conn.execute(
                "SELECT DISTINCT entity_id FROM link WHERE kind = ? AND linked_run > ?",
                (kind, after_run),
            )
        }

    def survivors(self, kind: str, ids: Iterable[str]) -> dict[str, str | None]:
        """Each id -> the live entity carrying it now (following merges); None if unknown."""
        result: dict[str, str | None] = {}
        pending = {i: i for i in set(ids)}
        for _ in range(20):  # merge chains are short; the bound only guards against a cycle
            if not pending:
                break
            merged: dict[str, str | None] = {}
            for chunk in _chunks(set(pending.values())):
                for entity_id, into in self.conn.execute(
                    f"SELECT id, merged_into FROM entity WHERE kind = ? AND id IN"
                    f" ({_marks(chunk)})",
                    [kind, *chunk],
                ):
                    merged[entity_id] = into
            following = {}
            for origin, current in pending.items():
                if current not in merged:
                    result[origin] = None
                elif merged[current] is None:
                    result[origin] = current
                else:
                    following[origin] = str(merged[current])
            pending = following
        result.update({origin: current for origin, current in pending.items()})
        return result

    def members_of_campaigns(self, campaign_ids: Iterable[str]) -> list[str]:
        """CampaignMember ids of these Campaigns (a renamed Campaign relabels its responses)."""
        found: list[str] = []
        for chunk in _chunks(set(campaign_ids)):
            found += [
                row[0]
                for row in self.conn.execute(
                    "SELECT id FROM source_record WHERE system = 'salesforce'"
                    " AND object = 'CampaignMember'"
                    f" AND json_extract(data, '$.CampaignId') IN ({_marks(chunk)})",
                    chunk,
                )
            ]
        return found

    # credits and their inputs -------------------------------------------------------------

    def digests(self, opportunity_ids: Iterable[str]) -> dict[str, str]:
        found: dict[str, str] = {}
        for chunk in _chunks(set(opportunity_ids)):
            found.update(
                self.conn.execute(
                    "SELECT opportunity_id, digest FROM attribution_input"
                    f" WHERE opportunity_id IN ({_marks(chunk)})",
                    chunk,
                ).fetchall()
            )
        return found

    def computed_opportunities(self) -> set[str]:
        return {r[0] for r in self.conn.execute("SELECT opportunity_id FROM attribution_input")}

    def credited_opportunities(self, people: Iterable[str]) -> set[str]:
        """Opportunities whose credits name a touch of these people."""
        found: set[str] = set()
        for chunk in _chunks(set(people)):
            found |= {
                row[0]
                for row in self.conn.execute(
                    "SELECT DISTINCT c.opportunity_id FROM touchpoint t"
                    " JOIN credit c ON c.touchpoint_id = t.id"
                    f" WHERE t.person_id IN ({_marks(chunk)})",
                    chunk,
                )
            }
        return found

    def credited_touches(
        self, opportunity_ids: Iterable[str], model: str
    ) -> list[tuple[str, str, str | None]]:
        """(opportunity id, touch label, touch person) of the credits under `model`."""
        found: list[tuple[str, str, str | None]] = []
        for chunk in _chunks(set(opportunity_ids)):
            found += self.conn.execute(
                "SELECT c.opportunity_id, t.label, t.person_id FROM credit c"
                " JOIN touchpoint t ON t.id = c.touchpoint_id"
                f" WHERE c.model = ? AND c.opportunity_id IN ({_marks(chunk)})",
                [model, *chunk],
            ).fetchall()
        return found

    def replace_credits(
        self,
        opportunity_ids: Iterable[str],
        credits: Iterable[CreditRow],
        digests: Iterable[tuple[str, str]],
        run: int,
    ) -> None:
        """Replace these opportunities' credits and input digests (one transaction is the
        caller's)."""
        for chunk in _chunks(set(opportunity_ids)):
            marks = _marks(chunk)
            self.conn.execute(f"DELETE FROM credit WHERE opportunity_id IN ({marks})", chunk)
            self.conn.execute(
                f"DELETE FROM attribution_input WHERE opportunity_id IN ({marks})", chunk
            )
        self.conn.executemany(
            "INSERT INTO credit (opportunity_id, model, touchpoint_id, share, amount, run)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            [(c.opportunity_id, c.model, c.touchpoint_id, c.share, c.amount, run) for c in credits],
        )
        self.conn.executemany(
            "INSERT INTO attribution_input (opportunity_id, digest, run) VALUES (?, ?, ?)",
            [(opp, digest, run) for opp, digest in digests],
        )

    def credits(self, opportunity_id: str, model: str | None = None) -> list[CreditRow]:
        rows = self.conn.execute(
            "SELECT opportunity_id, model, touchpoint_id, share, amount FROM credit"
            " WHERE opportunity_id = ? AND (? IS NULL OR model = ?)"
            " ORDER BY model, touchpoint_id",
            (opportunity_id, model, model),
        )
        return [CreditRow(*row) for row in rows]

    def credit_count(self) -> int:
        return int(self.conn.execute("SELECT count(*) FROM credit").fetchone()[0])

    # what the write-back needs -------------------------------------------------------------

    def end_labels(self, opportunity_ids: Iterable[str] | None) -> dict[str, dict[str, str]]:
        """Opportunity -> {"first_touch": label, "last_touch": label} (None: every one)."""
        query = (
            "SELECT c.opportunity_id, c.model, t.label FROM credit c"
            " JOIN touchpoint t ON t.id = c.touchpoint_id"
            " WHERE c.model IN ('first_touch', 'last_touch') AND c.share > 0"
        )
        found: dict[str, dict[str, str]] = {}
        for rows in self._filtered(query, "c.opportunity_id", [], opportunity_ids):
            for opp, model, label in rows:
                found.setdefault(opp, {})[model] = label
        return found

    def won_by_label(self, model: str, labels: Iterable[str] | None) -> list[tuple[str, float]]:
        """(lower-cased label, credited amount) of won opportunities' credits under `model`,
        for these lower-cased labels (None: every label)."""
        # CROSS JOIN keeps this order: the touches first (few, for a few labels), then their
        # credits through the credit_touchpoint index.
        query = (
            "SELECT lower(t.label), c.amount FROM touchpoint t"
            f" CROSS JOIN credit c ON c.touchpoint_id = t.id {_WON} WHERE c.model = ?"
        )
        return [
            row for rows in self._filtered(query, "lower(t.label)", [model], labels) for row in rows
        ]

    def won_by_person(self, model: str, people: Iterable[str] | None) -> list[tuple[str, float]]:
        """(person, credited amount) of won opportunities' credits under `model`."""
        query = (
            "SELECT t.person_id, c.amount FROM touchpoint t"
            f" CROSS JOIN credit c ON c.touchpoint_id = t.id {_WON}"
            " WHERE c.model = ? AND t.person_id IS NOT NULL"
        )
        return [
            row for rows in self._filtered(query, "t.person_id", [model], people) for row in rows
        ]

    def campaigns(self) -> list[tuple[str, str]]:
        """(Campaign id, Name) of the live Salesforce Campaigns."""
        return [
            (row[0], row[1] or "")
            for row in self.conn.execute(
                "SELECT id, json_extract(data, '$.Name') FROM source_record"
                " WHERE system = 'salesforce' AND object = 'Campaign' AND deleted = 0"
                " AND merged_into IS NULL ORDER BY id"
            )
        ]

    def _filtered(
        self, query: str, column: str, params: list[Any], values: Iterable[str] | None
    ) -> Iterator[list[Any]]:
        if values is None:
            yield self.conn.execute(query, params).fetchall()
            return
        for chunk in _chunks(set(values)):
            yield self.conn.execute(
                f"{query} AND {column} IN ({_marks(chunk)})", [*params, *chunk]
            ).fetchall()
