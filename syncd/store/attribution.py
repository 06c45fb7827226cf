"""SQL for attribution: touchpoints, credits per opportunity and model, the digest of what each
opportunity's credits were computed from, and the sums the write-back needs. Batched: every
method takes or returns many rows at once."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, NamedTuple

__all__ = ["AttributionStore", "CreditRow", "TouchBuild", "TouchRow"]

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


class TouchBuild(NamedTuple):
    """What the set-based first build did: touchpoints inserted, and the ids of the live
    records of each (system, object) it left to the Python builders."""

    inserted: int
    unusual: dict[tuple[str, str], list[str]]


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

    def touchpoints_between(
        self, spans: Iterable[tuple[str, str, str, str]]
    ) -> dict[str, list[TouchRow]]:
        """Key -> the touchpoints of a person from one instant to another (ISO text, both
        included), for spans (key, person, start, end): an opportunity's window and people."""
        found: dict[str, list[TouchRow]] = {}
        for chunk in _chunks(spans):
            for row in self.conn.execute(
                "WITH span (owner, person, since, until) AS (VALUES"
                f" {','.join('(?, ?, ?, ?)' for _ in chunk)})"
                f" SELECT span.owner, {', '.join(f't.{c}' for c in _TOUCH_COLUMNS.split(', '))}"
                " FROM span CROSS JOIN touchpoint t ON t.person_id = span.person"
                " AND t.at BETWEEN span.since AND span.until",
                [value for span in chunk for value in span],
            ):
                found.setdefault(row[0], []).append(_touch(row[1:]))
        return found

    def touch_keys(
        self, people: set[str] | None, *, scan: bool = False
    ) -> Iterator[list[tuple[str, str | None, str, str | None]]]:
        """(touchpoint id, its person, its kind, the key its person is found by) of these
        people's touchpoints (None: of those without a person), some thousands at a time,
        read from their source records in SQL: the email of a HubSpot touch (as stored, not
        normalized), the Lead or Contact id of a Salesforce one. The key is None where a
        record's fields have an unusual shape (or the record is gone): the Python builders in
        `syncd.touchpoints` judge those.

        `scan`: walk every touch record in key order and keep these people's, for when they
        are most of the org (a search per person reads the records in no order: twice the
        time for a million touches). It finds the touches whose record is in the store, as
        every record pulled stays there (a deleted one is marked deleted)."""
        if people is not None and scan:
            for system, obj, key in _TOUCH_KEYS.values():
                cursor = self.conn.execute(
                    f"SELECT t.id, t.person_id, t.kind, {key} FROM source_record s"
                    " JOIN touchpoint t ON t.id = ? || s.id WHERE s.system = ? AND s.object = ?",
                    (f"{system}:{obj}:", system, obj),
                )
                while rows := cursor.fetchmany(5000):
                    yield [row for row in rows if row[1] in people]
            return
        chunks: Iterable[list[str]] = [[]] if people is None else _chunks(people)
        for chunk in chunks:
            whose = "t.person_id IS NULL" if people is None else f"t.person_id IN ({_marks(chunk)})"
            found: list[tuple[str, str | None, str, str | None]] = []
            for kind, (system, obj, key) in _TOUCH_KEYS.items():
                found += self.conn.execute(
                    f"SELECT t.id, t.person_id, t.kind, {key} FROM touchpoint t"
                    " LEFT JOIN source_record s"
                    " ON s.system = ? AND s.object = ? AND s.id = t.source_id"
                    f" WHERE {whose} AND t.kind = ?",
                    [system, obj, *chunk, kind],
                ).fetchall()
            yield found

    def live_people(self) -> int:
        """How many people are live (counted in the index of live entities' match keys)."""
        row = self.conn.execute(
            "SELECT count(*) FROM entity INDEXED BY entity_match"
            " WHERE kind = 'person' AND merged_into IS NULL"
        ).fetchone()
        return int(row[0])

    def orphan_touchpoints(self) -> list[str]:
        """Touchpoints whose person is not known yet (the index on person_id finds them)."""
        return [
            r[0] for r in self.conn.execute("SELECT id FROM touchpoint WHERE person_id IS NULL")
        ]

    def people_touched_after(self, run: int) -> set[str]:
        """People with touchpoints saved by passes after `run`."""
        # Left to itself, SQLite walks the whole index on person_id for the DISTINCT.
        return {
            row[0]
            for row in self.conn.execute(
                "SELECT DISTINCT person_id FROM touchpoint INDEXED BY touchpoint_run"
                " WHERE run > ? AND person_id IS NOT NULL",
                (run,),
            )
        }

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

    # the first build, set-based (see `_SET_BUILDS`) ------------------------------------------

    def has_touchpoints(self, objects: Iterable[tuple[str, str]]) -> bool:
        """Whether a touchpoint of any of these objects is kept (ids begin `system:object:`)."""
        return any(
            self.conn.execute(
                "SELECT 1 FROM touchpoint WHERE id >= ? AND id < ? LIMIT 1",
                (f"{system}:{obj}:", f"{system}:{obj};"),  # ';' sorts right after ':'
            ).fetchone()
            is not None
            for system, obj in objects
        )

    def build_touchpoints(
        self,
        run: int,
        campaign_names: Mapping[str, str],
        email: Callable[[Any], str | None],
        objects: Collection[tuple[str, str]],
    ) -> TouchBuild:
        """Insert the touchpoints of every usual touch record of these objects (pulled by any
        pass) in SQL; the person of a Salesforce touch is the entity its link names, merged or
        not (see `unsettled_people`). The unusual records are named, not built."""
        self.conn.create_function("syncd_email", 1, email, deterministic=True)
        self.conn.create_function("syncd_strip", 1, _strip, deterministic=True)
        unusual: list[str] = []
        # Called once for each record the WHERE finds unusual (and for no other): the same
        # reading of the records that builds the usual ones names the rest.
        self.conn.create_function("syncd_unusual", 1, _collect(unusual), deterministic=False)
        self.conn.execute(
            "CREATE TEMP TABLE IF NOT EXISTS touch_campaign (id TEXT PRIMARY KEY, name TEXT)"
        )
        self.conn.execute("DELETE FROM temp.touch_campaign")
        self.conn.execute(
            "CREATE TEMP TABLE IF NOT EXISTS touch_email (key TEXT PRIMARY KEY, person TEXT)"
            " WITHOUT ROWID"
        )
        self.conn.execute("DELETE FROM temp.touch_email")
        self.conn.execute(_EMAIL_PEOPLE)
        self.conn.executemany(
            "INSERT INTO temp.touch_campaign (id, name) VALUES (?, ?)", campaign_names.items()
        )
        inserted, left = 0, dict[tuple[str, str], list[str]]()
        with self.indexes_deferred("touchpoint"):
            for build in (b for b in _SET_BUILDS if (b.system, b.obj) in objects):
                inserted += self._insert_usual(build, run)
                left[(build.system, build.obj)] = unusual[:]
                unusual.clear()
        self.conn.execute("DELETE FROM temp.touch_campaign")
        self.conn.execute("DELETE FROM temp.touch_email")
        return TouchBuild(inserted, left)

    def _insert_usual(self, build: _SetBuild, run: int) -> int:
        before = self.conn.total_changes
        self.conn.execute(
            "INSERT INTO touchpoint (id, person_id, at, kind, label, sales, source_id, run)"
            f" SELECT ? || x.id, {build.person}, x.at, ?, x.label, ?, x.id, ?"
            f" FROM (SELECT r.id AS id, {build.columns} FROM {_fields_of(build)}"
            f" WHERE CASE WHEN coalesce({build.usual}, 0) THEN coalesce({build.touch}, 0)"
            f" ELSE syncd_unusual(r.id) END {_ONCE}) x WHERE x.touch_key IS NOT NULL",
            (f"{build.system}:{build.obj}:", build.kind, build.sales, run, build.system,
             build.obj),
        )
        return self.conn.total_changes - before

    @contextmanager
    def indexes_deferred(self, table: str) -> Iterator[None]:
        """Drop `table`'s indexes and make them again afterwards, inside the caller's
        transaction: filling a table with a million rows costs half as much when each index
        is sorted once at the end instead of kept up to date row by row."""
        if not self.conn.in_transaction:
            # DDL opens no transaction by itself: a drop must not commit before the rows do.
            self.conn.execute("BEGIN")
        indexes = self.conn.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ?"
            " AND sql IS NOT NULL ORDER BY name",
            (table,),
        ).fetchall()
        for name, _ in indexes:
            self.conn.execute(f'DROP INDEX "{name}"')
        yield
        for _, sql in indexes:
            self.conn.execute(sql)

    def unsettled_people(self) -> set[str]:
        """Person ids of touchpoints that are not a live person (merged away, or unknown)."""
        return {
            row[0]
            for row in self.conn.execute(
                # Each person once (the index on person_id), then whether they are live.
                "SELECT t.person_id FROM (SELECT DISTINCT person_id FROM touchpoint"
                " WHERE person_id IS NOT NULL) t WHERE NOT EXISTS (SELECT 1 FROM entity e"
                " WHERE e.kind = 'person' AND e.id = t.person_id AND e.merged_into IS NULL)"
            )
        }

    def repoint_touchpoints(self, people: Mapping[str, str | None]) -> None:
        """Move touchpoints from each person to another (None: to no one)."""
        self.conn.executemany(
            "UPDATE touchpoint SET person_id = ? WHERE person_id = ?",
            [(new, old) for old, new in people.items()],
        )

    def touched_people(self) -> set[str]:
        return {
            row[0]
            for row in self.conn.execute(
                "SELECT DISTINCT person_id FROM touchpoint WHERE person_id IS NOT NULL"
            )
        }

    def campaign_names(self) -> dict[str, str]:
        """Every stored Campaign's Name as a response's label (deleted ones included)."""
        return {
            r["id"]: str(r["data"].get("Name") or "")
            for r in self.source_rows("salesforce", "Campaign", self._campaign_ids())
        }

    def _campaign_ids(self) -> list[str]:
        return [
            row[0]
            for row in self.conn.execute(
                "SELECT id FROM source_record WHERE system = 'salesforce' AND object = 'Campaign'"
            )
        ]

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

    def relabelled_responses(self, labels: Mapping[str, str]) -> list[str]:
        """CampaignMember ids of the responses (touchpoints) of these Campaigns whose label is
        not the Campaign's label given (Campaign id -> label): one walk of the members, and
        only the responses of a renamed Campaign to rebuild, not those of every Campaign that
        changed (syncd writes each Campaign's revenue back, so most passes change some)."""
        found: list[str] = []
        for chunk in _chunks(labels.items()):
            found += [
                row[0]
                for row in self.conn.execute(
                    f"WITH c (id, label) AS (VALUES {','.join('(?, ?)' for _ in chunk)})"
                    " SELECT s.id FROM source_record s"
                    " JOIN c ON c.id = json_extract(s.data, '$.CampaignId')"
                    " JOIN touchpoint t ON t.id = 'salesforce:CampaignMember:' || s.id"
                    " WHERE s.system = 'salesforce' AND s.object = 'CampaignMember'"
                    " AND t.label IS NOT c.label",
                    [value for pair in chunk for value in pair],
                )
            ]
        return found

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

    def computed_but_gone(self) -> set[str]:
        """Opportunities with credits computed that are no live opportunity now (merged away
        or no longer stored): found in SQL, not by two sets of every opportunity each pass."""
        return {
            row[0]
            for row in self.conn.execute(
                "SELECT a.opportunity_id FROM attribution_input a WHERE NOT EXISTS (SELECT 1"
                " FROM entity e WHERE e.kind = 'opportunity' AND e.id = a.opportunity_id"
                " AND e.merged_into IS NULL)"
            )
        }

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

    def credited_labels(self, opportunity_ids: Iterable[str], model: str) -> set[str]:
        """The lower-cased labels these opportunities' won credit under `model` went to."""
        found: set[str] = set()
        for chunk in _chunks(set(opportunity_ids)):
            found |= {
                row[0]
                for row in self.conn.execute(
                    "SELECT label FROM credit_label WHERE model = ?"
                    f" AND opportunity_id IN ({_marks(chunk)})",
                    [model, *chunk],
                )
            }
        return found

    def replace_credits(
        self,
        opportunity_ids: Iterable[str],
        credits: Iterable[tuple[str, str, str, float, float]],
        digests: Iterable[tuple[str, str]],
        run: int,
        won_labels: Iterable[tuple[str, str, str, int]] = (),
        won_people: Iterable[tuple[str, str, str, int]] = (),
    ) -> None:
        """Replace these opportunities' credits, input digests, and won credit per label
        (opportunity, model, lower-cased label, cents) and per person (opportunity, model,
        person, cents); one transaction is the caller's."""
        for chunk in _chunks(set(opportunity_ids)):
            marks = _marks(chunk)
            for table in ("credit", "attribution_input", "credit_label", "credit_person"):
                self.conn.execute(f"DELETE FROM {table} WHERE opportunity_id IN ({marks})", chunk)
        # Rows as they come (CreditRows or plain tuples in that order): a full computation
        # writes over a million, so no copy per row; the run is one literal.
        self.conn.executemany(
            "INSERT INTO credit (opportunity_id, model, touchpoint_id, share, amount, run)"
            f" VALUES (?, ?, ?, ?, ?, {int(run)})",
            credits,
        )
        self.conn.executemany(
            "INSERT INTO attribution_input (opportunity_id, digest, run) VALUES (?, ?, ?)",
            [(opp, digest, run) for opp, digest in digests],
        )
        self.conn.executemany(
            "INSERT INTO credit_label (opportunity_id, model, label, cents) VALUES (?, ?, ?, ?)",
            won_labels,
        )
        self.conn.executemany(
            "INSERT INTO credit_person (opportunity_id, model, person_id, cents)"
            " VALUES (?, ?, ?, ?)",
            won_people,
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
        # Every computed opportunity from attribution_input, then its two credits by the
        # primary key: a scan of credit would read every model's rows.
        query = (
            "SELECT c.opportunity_id, c.model, t.label FROM attribution_input a"
            " CROSS JOIN credit c ON c.opportunity_id = a.opportunity_id"
            " AND c.model IN ('first_touch', 'last_touch')"
            " CROSS JOIN touchpoint t ON t.id = c.touchpoint_id WHERE c.share > 0"
        )
        found: dict[str, dict[str, str]] = {}
        for rows in self._filtered(query, "a.opportunity_id", [], opportunity_ids):
            for opp, model, label in rows:
                found.setdefault(opp, {})[model] = label
        return found

    def won_by_label(self, model: str, labels: Iterable[str] | None) -> dict[str, int]:
        """Lower-cased label -> cents of won opportunities' credits under `model`, for these
        lower-cased labels (None: every label)."""
        query = "SELECT label, sum(cents) FROM credit_label WHERE model = ?"
        found: dict[str, int] = {}
        for rows in self._filtered(query, "label", [model], labels, " GROUP BY label"):
            found.update(rows)
        return found

    def won_by_person(self, model: str, people: Iterable[str] | None) -> dict[str, int]:
        """Person -> cents of won opportunities' credits under `model` to their touches, for
        these people (None: everyone)."""
        query = "SELECT person_id, sum(cents) FROM credit_person WHERE model = ?"
        found: dict[str, int] = {}
        for rows in self._filtered(query, "person_id", [model], people, " GROUP BY person_id"):
            found.update(rows)
        return found

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
        self,
        query: str,
        column: str,
        params: list[Any],
        values: Iterable[str] | None,
        tail: str = "",
    ) -> Iterator[list[Any]]:
        if values is None:
            yield self.conn.execute(query + tail, params).fetchall()
            return
        for chunk in _chunks(set(values)):
            yield self.conn.execute(
                f"{query} AND {column} IN ({_marks(chunk)}){tail}", [*params, *chunk]
            ).fetchall()


def _strip(value: Any) -> str | None:
    return None if value is None else str(value).strip()


def _collect(into: list[str]) -> Callable[[str], int]:
    """An SQL function that keeps its argument and is false."""

    def collect(value: str) -> int:
        into.append(value)
        return 0

    return collect

# -- the first build of touchpoints, set-based -------------------------------------------------
# A first pass turns every touch record into a touchpoint: done in SQL, one INSERT ... SELECT per
# object, for the records whose fields have the usual shapes (`_SetBuild.usual`); the rest go
# through the Python builders (`syncd.touchpoints`), which stay the reference. Each object's SQL
# must give exactly what its Python builder gives for the records it takes.
#
# Each JSON field is read once per record, in the innermost query `r` (a record's JSON type and
# value of a field are `r.t_<field>` and `r.v_<field>`), and each derived column once in `x`:
# `_ONCE` keeps SQLite from folding a subquery into the one around it, which would repeat the
# reading wherever a column is used (a million records and some twenty uses each).

_ONCE = "LIMIT -1 OFFSET 0"


def _j(path: str) -> str:
    return f"r.v_{path}"


def _t(path: str) -> str:
    return f"r.t_{path}"


def _fields_of(build: _SetBuild) -> str:
    """The subquery `r`: one object's live records pulled by any pass, and their fields."""
    columns = "".join(
        f", json_type(s.data, '$.{f}') AS t_{f}, json_extract(s.data, '$.{f}') AS v_{f}"
        for f in build.fields
    )
    # `+s.pulled_run`: walk the key of one object, not the index on pulled_run.
    return (
        f"(SELECT s.id AS id{columns} FROM source_record s WHERE s.system = ? AND s.object = ?"
        f" AND +s.pulled_run > 0 AND {_LIVE_RECORD} {_ONCE}) r"
    )


def _text_or_null(path: str) -> str:
    return f"coalesce({_t(path)} IN ('null', 'text'), 1)"


def _epoch_ms_usual(path: str, nullable: bool) -> str:
    integer = f"({_t(path)} = 'integer' AND {_j(path)} BETWEEN 0 AND 253402300799999)"
    return f"({integer} OR coalesce({_t(path)} = 'null', 1))" if nullable else integer


def _epoch_ms_iso(path: str) -> str:
    # Integer arithmetic: the seconds through strftime, the milliseconds printed.
    return (
        f"strftime('%Y-%m-%dT%H:%M:%S', {_j(path)} / 1000, 'unixepoch')"
        f" || printf('.%03dZ', {_j(path)} % 1000)"
    )


def _salesforce_time_usual(path: str) -> str:
    value = _j(path)
    return (
        f"(coalesce({_t(path)} = 'null', 1) OR ({_t(path)} = 'text' AND ({value} = ''"
        f" OR (length({value}) = 28 AND substr({value}, 24) = '+0000'"
        f" AND substr({value}, 20, 1) = '.'))))"
    )


_LIVE_RECORD = "s.deleted = 0 AND coalesce(s.merged_into, '') = ''"


def _text_key(path: str) -> str:
    return (
        f"CASE WHEN json_type(s.data, '$.{path}') = 'text' AND json_extract(s.data, '$.{path}')"
        f" != '' THEN json_extract(s.data, '$.{path}') END"
    )


def _who_key(*paths: str) -> str:
    """The first non-empty of these text fields, as Python's `a or b` picks (None if one is
    not text or null)."""
    texts = " AND ".join(
        f"coalesce(json_type(s.data, '$.{p}') IN ('text', 'null'), 1)" for p in paths
    )
    values = ", ".join(f"nullif(json_extract(s.data, '$.{p}'), '')" for p in paths)
    return f"CASE WHEN {texts} THEN coalesce({values}) END"


# Touchpoint kind -> (system, object, SQL for the key its person is found by), as the builders
# of `syncd.touchpoints` read it from a record of the usual shape.
_TOUCH_KEYS = {
    "form_submission": ("hubspot", "form_submissions", _text_key("email")),
    "email_click": ("hubspot", "email_events", _text_key("recipient")),
    "campaign_response": ("salesforce", "CampaignMember", _who_key("ContactId", "LeadId")),
    "task": ("salesforce", "Task", _text_key("WhoId")),
    "event": ("salesforce", "Event", _text_key("WhoId")),
}
# The oldest live person holding each match key (as `UnifiedStore.by_match_key` picks), in a
# temporary table filled once per build: a correlated ORDER BY per touch costs a sort each.
_EMAIL_PEOPLE = (
    "INSERT INTO temp.touch_email (key, person) SELECT match_key, id FROM (SELECT match_key, id,"
    " row_number() OVER (PARTITION BY match_key ORDER BY created_run, id) AS n FROM entity"
    " WHERE kind = 'person' AND merged_into IS NULL AND match_key IS NOT NULL) WHERE n = 1"
)
_BY_EMAIL = "(SELECT m.person FROM temp.touch_email m WHERE m.key = x.touch_key)"


def _linked(obj: str) -> str:
    return (
        "(SELECT l.entity_id FROM link l WHERE l.system = 'salesforce'"
        f" AND l.object = '{obj}' AND l.record_id = x.touch_key"
        " AND l.state IN ('live', 'converted', 'merged'))"
    )


# The id's prefix names the object (003 Contact, 00Q Lead); others are tried as both, a Lead
# winning (as `syncd.touchpoints._people` does). Merged people are followed afterwards.
_BY_WHO = (
    f"CASE substr(x.touch_key, 1, 3) WHEN '003' THEN {_linked('Contact')}"
    f" WHEN '00Q' THEN {_linked('Lead')} ELSE coalesce({_linked('Lead')}, {_linked('Contact')})"
    " END"
)


class _SetBuild(NamedTuple):
    """One object's set-based build: the JSON fields it reads (into `r`), which records it
    takes (`usual`), which of those are touches (`touch`), and the columns of `x` (id, email or
    who, at, label) it selects."""

    system: str
    obj: str
    kind: str
    fields: tuple[str, ...]
    usual: str
    touch: str
    columns: str
    person: str
    sales: int


def _activity_build(obj: str, kind: str, when: str) -> _SetBuild:
    return _SetBuild(
        "salesforce", obj, kind, ("WhoId", when, "Type"),
        f"{_text_or_null('WhoId')} AND {_salesforce_time_usual(when)}"
        f" AND {_text_or_null('Type')}",
        f"nullif({_j('WhoId')}, '') IS NOT NULL AND nullif({_j(when)}, '') IS NOT NULL",
        f"{_j('WhoId')} AS touch_key, substr({_j(when)}, 1, 23) || 'Z' AS at,"
        f" 'Sales: ' || coalesce(nullif({_j('Type')}, ''), '{kind.title()}') AS label",
        _BY_WHO, 1,
    )


_RESPONDED = _j("FirstRespondedDate")
_SET_BUILDS = (
    _SetBuild(
        "hubspot", "form_submissions", "form_submission",
        ("email", "submittedAt", "form_name", "form_id"),
        f"{_t('email')} = 'text' AND {_j('email')} != ''"
        f" AND {_epoch_ms_usual('submittedAt', False)}"
        f" AND {_text_or_null('form_name')} AND {_text_or_null('form_id')}",
        "1",
        f"syncd_email({_j('email')}) AS touch_key, {_epoch_ms_iso('submittedAt')} AS at,"
        f" coalesce(nullif({_j('form_name')}, ''), nullif({_j('form_id')}, ''), 'Form')"
        " AS label",
        _BY_EMAIL, 0,
    ),
    _SetBuild(
        "hubspot", "email_events", "email_click",
        ("recipient", "created", "campaign_name", "type"),
        f"{_text_or_null('recipient')} AND {_epoch_ms_usual('created', True)}"
        f" AND {_t('campaign_name')} = 'text' AND {_j('campaign_name')} != ''",
        f"coalesce({_t('type')} = 'text' AND {_j('type')} = 'CLICK', {_t('type')} IS NULL)"
        f" AND {_j('created')} IS NOT NULL",
        f"syncd_email({_j('recipient')}) AS touch_key, {_epoch_ms_iso('created')} AS at,"
        f" syncd_strip({_j('campaign_name')}) AS label",
        _BY_EMAIL, 0,
    ),
    _SetBuild(
        "salesforce", "CampaignMember", "campaign_response",
        ("ContactId", "LeadId", "HasResponded", "FirstRespondedDate", "CampaignId"),
        f"{_text_or_null('ContactId')} AND {_text_or_null('LeadId')}"
        f" AND coalesce({_t('HasResponded')} IN ('null', 'true', 'false'), 1)"
        f" AND (coalesce({_t('FirstRespondedDate')} = 'null', 1)"
        f" OR ({_t('FirstRespondedDate')} = 'text' AND ({_RESPONDED} = ''"
        # '+0 days': date() alone gives back a day that does not exist (2025-02-30) as it
        # is, where Python refuses it; the modifier moves it (to 03-02), so it is not usual.
        f" OR (substr({_RESPONDED}, 1, 10) = date(substr({_RESPONDED}, 1, 10), '+0 days')"
        f" AND substr({_RESPONDED}, 1, 4) >= '1000'))))"
        f" AND {_t('CampaignId')} = 'text' AND {_j('CampaignId')} != ''",
        f"{_t('HasResponded')} = 'true' AND {_RESPONDED} != ''"
        f" AND coalesce(nullif({_j('ContactId')}, ''), nullif({_j('LeadId')}, '')) IS NOT NULL",
        f"coalesce(nullif({_j('ContactId')}, ''), nullif({_j('LeadId')}, '')) AS touch_key,"
        f" substr({_RESPONDED}, 1, 10) || 'T00:00:00.000Z' AS at,"
        " coalesce((SELECT c.name FROM temp.touch_campaign c"
        f" WHERE c.id = {_j('CampaignId')}), 'Campaign ' || {_j('CampaignId')}) AS label",
        _BY_WHO, 0,
    ),
    _activity_build("Task", "task", "CreatedDate"),
    _activity_build("Event", "event", "StartDateTime"),
)
