"""`syncd report funnel`: people per stage, conversion, median days, cohorts and sources, checked
against a small store with known data, and on a synced sandbox against counts computed here
with plain SQL."""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from syncd.errors import UsageError
from syncd.report import Funnel, funnel, report_command
from syncd.stages import LifecycleSettings, load_lifecycle
from syncd.store import Store
from syncd.store.reports import ReportStore

NOW = datetime(2026, 4, 1, tzinfo=UTC)
SCRIPT = "<script>alert(1)</script>"


@pytest.fixture(scope="module")
def lifecycle() -> LifecycleSettings:
    return load_lifecycle(None)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    store = Store(tmp_path / "s.db")
    yield store
    store.close()


def add_person(
    store: Store, person: str, stage: str | None, merged_into: str | None = None, **history: str
) -> None:
    """A person at `stage` now, with the date (YYYY-MM-DD) each stage was first entered."""
    with store.transaction():
        store.db.conn.execute(
            "INSERT INTO entity (kind, id, match_key, fields, merged_into, created_run,"
            " updated_run) VALUES ('person', ?, ?, ?, ?, 1, 1)",
            (
                person,
                f"{person}@example.com",
                json.dumps({"_stage": stage, "email": f"{person}@example.com"}),
                merged_into,
            ),
        )
        store.db.conn.executemany(
            "INSERT INTO stage_history (person_id, stage, entered_at, run, signal)"
            " VALUES (?, ?, ?, 1, 'test')",
            [(person, name, f"{day}T09:00:00.000Z") for name, day in history.items()],
        )


def add_contact(
    store: Store,
    person: str,
    record_id: str,
    source: str | None,
    created: str,
    deleted: bool = False,
) -> None:
    """A HubSpot contact of the person with its original source."""
    with store.transaction():
        store.db.conn.execute(
            "INSERT INTO link (system, object, record_id, kind, entity_id, state, created_at,"
            " linked_run) VALUES ('hubspot', 'contacts', ?, 'person', ?, 'live', ?, 1)",
            (record_id, person, created),
        )
        store.db.conn.execute(
            "INSERT INTO source_record (system, object, id, updated_at, deleted, data, pulled_run)"
            " VALUES ('hubspot', 'contacts', ?, ?, ?, ?, 1)",
            (record_id, created, int(deleted), json.dumps({"hs_analytics_source": source})),
        )


@pytest.fixture
def known(store: Store) -> Store:
    """Five people with a stage, one without, one merged away (see each line)."""
    add_person(store, "p1", "lead", subscriber="2026-01-05", lead="2026-01-10")
    add_contact(store, "p1", "101", "ORGANIC_SEARCH", "2026-01-05T09:00:00.000Z")
    add_contact(store, "p1", "109", "REFERRALS", "2026-02-01T09:00:00.000Z")  # newer: not it
    # Jumped from lead straight to customer.
    add_person(store, "p2", "customer", lead="2026-01-20", customer="2026-03-01")
    add_contact(store, "p2", "102", "PAID_SEARCH", "2026-01-20T09:00:00.000Z")
    add_person(
        store,
        "p3",
        "marketingqualifiedlead",
        subscriber="2026-02-01",
        lead="2026-02-03",
        marketingqualifiedlead="2026-02-07",
    )
    add_contact(store, "p3", "103", "ORGANIC_SEARCH", "2026-02-01T09:00:00.000Z")
    # Reached opportunity, then recycled back to lead; only in Salesforce (no source).
    add_person(
        store,
        "p4",
        "lead",
        lead="2026-02-10",
        marketingqualifiedlead="2026-02-12",
        salesqualifiedlead="2026-02-22",
        opportunity="2026-03-10",
    )
    add_person(store, "p5", "subscriber", subscriber="2026-03-15")
    add_contact(store, "p5", "105", None, "2026-03-15T09:00:00.000Z")
    add_contact(store, "p5", "106", "SOCIAL_MEDIA", "2026-03-01T09:00:00.000Z", deleted=True)
    add_person(store, "p6", "other")
    add_person(
        store, "p7", "customer", merged_into="p1", subscriber="2025-12-01", customer="2025-12-02"
    )
    return store


def built(store: Store, lifecycle: LifecycleSettings) -> Funnel:
    reports = ReportStore(store.db.conn)
    return funnel(reports.people(), reports.stage_entries(), lifecycle, NOW)


def test_people_per_stage_counts_current_stages_and_leaves_out_merged_and_unstaged(
    known: Store, lifecycle: LifecycleSettings
) -> None:
    report = built(known, lifecycle)
    assert report.people == 5
    assert report.without_stage == 1
    assert {line.stage: line.people for line in report.stages} == {
        "subscriber": 1,
        "lead": 2,
        "marketingqualifiedlead": 1,
        "salesqualifiedlead": 0,
        "opportunity": 0,
        "customer": 1,
        "evangelist": 0,
    }
    assert [line.label for line in report.stages][:3] == ["Subscriber", "Lead", "MQL"]


def test_conversion_counts_a_jump_from_lead_to_customer_as_passing_through(
    known: Store, lifecycle: LifecycleSettings
) -> None:
    report = built(known, lifecycle)
    assert [line.reached for line in report.stages] == [5, 4, 3, 2, 2, 1, 0]
    assert [line.conversion for line in report.stages] == pytest.approx(
        [4 / 5, 3 / 4, 2 / 3, 1.0, 1 / 2, 0.0, None]
    )


def test_median_days_between_stages_uses_people_with_both_dates(
    known: Store, lifecycle: LifecycleSettings
) -> None:
    report = built(known, lifecycle)
    # subscriber->lead: p1 5 days, p3 2 days; lead->MQL: p3 4, p4 2; MQL->SQL: p4 10;
    # SQL->opportunity: p4 16; nobody has both opportunity and customer dates (p2 jumped).
    assert [(line.median_days, line.timed) for line in report.stages] == [
        (3.5, 2),
        (3.0, 2),
        (10.0, 1),
        (16.0, 1),
        (None, 0),
        (None, 0),
        (None, 0),
    ]


def test_cohorts_group_people_by_month_they_entered_their_first_stage(
    known: Store, lifecycle: LifecycleSettings
) -> None:
    cohorts = {c.group: (c.people, c.reached) for c in built(known, lifecycle).cohorts}
    assert cohorts == {
        "2026-01": (2, (2, 2, 1, 1, 1, 1, 0)),  # p1, p2
        "2026-02": (2, (2, 2, 2, 1, 1, 0, 0)),  # p3, p4
        "2026-03": (1, (1, 0, 0, 0, 0, 0, 0)),  # p5
    }
    assert [c.group for c in built(known, lifecycle).cohorts] == ["2026-01", "2026-02", "2026-03"]


def test_sources_come_from_the_oldest_live_hubspot_contact_else_unknown(
    known: Store, lifecycle: LifecycleSettings
) -> None:
    sources = built(known, lifecycle).sources
    # p5's archived contact carries a source, but an archived contact is no one.
    assert [(s.group, s.people) for s in sources] == [
        ("ORGANIC_SEARCH", 2),
        ("unknown", 2),
        ("PAID_SEARCH", 1),
    ]
    organic = sources[0]
    assert organic.at_stage == (0, 1, 1, 0, 0, 0, 0)
    assert organic.conversion(0) == 1.0 and organic.conversion(1) == 0.5


def test_funnel_csv_parses_and_holds_the_same_numbers(
    known: Store, lifecycle: LifecycleSettings
) -> None:
    text = report_command(
        known, "funnel", model=None, fmt="csv", out=None, lifecycle=lifecycle, now=NOW
    )
    rows = list(csv.DictReader(io.StringIO(text)))
    stages = [row for row in rows if row["section"] == "stage"]
    assert [int(row["people_now"]) for row in stages] == [1, 2, 1, 0, 0, 1, 0]
    assert [int(row["reached"]) for row in stages] == [5, 4, 3, 2, 2, 1, 0]
    assert [row["conversion_to_next"] for row in stages] == [
        "0.8000",
        "0.7500",
        "0.6667",
        "1.0000",
        "0.5000",
        "0.0000",
        "",
    ]
    assert [row["median_days_to_next"] for row in stages][:4] == ["3.50", "3.00", "10.00", "16.00"]
    february = [row for row in rows if row["section"] == "month" and row["group"] == "2026-02"]
    assert [int(row["reached"]) for row in february] == [2, 2, 2, 1, 1, 0, 0]
    unknown = [row for row in rows if row["section"] == "source" and row["group"] == "unknown"]
    assert sum(int(row["people_now"]) for row in unknown) == 2


def test_funnel_table_shows_stage_labels_rates_and_medians(
    known: Store, lifecycle: LifecycleSettings
) -> None:
    text = report_command(
        known, "funnel", model=None, fmt="table", out=None, lifecycle=lifecycle, now=NOW
    )
    mql = next(line for line in text.splitlines() if "│ MQL " in line)
    assert "66.7%" in mql and "10.0 (n=1)" in mql
    assert "ORGANIC_SEARCH" in text and "2026-02" in text
    assert "1 people have no stage" in text


class Page(HTMLParser):
    """Tags, attributes and text of a page, to check it is well-formed enough to read."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: Counter[str] = Counter()
        self.attributes: list[tuple[str, str | None]] = []
        self.text: list[str] = []
        self.open: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags[tag] += 1
        self.attributes += attrs
        if tag not in ("meta", "br"):  # void elements: no end tag
            self.open.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags[tag] += 1  # <rect .../>: opened and closed at once
        self.attributes += attrs

    def handle_endtag(self, tag: str) -> None:
        assert self.open and self.open[-1] == tag, f"</{tag}> closes <{self.open[-1:]}>"
        self.open.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parsed(html: str) -> Page:
    page = Page()
    page.feed(html)
    page.close()
    assert page.open == []
    return page


def assert_self_contained(html: str) -> Page:
    page = parsed(html)
    assert page.tags["svg"] >= 1 and page.tags["script"] == 0
    for name, value in page.attributes:
        if name in ("src", "href", "xmlns", "action"):
            assert not (value or "").startswith(("http://", "https://", "//")), (name, value)
    assert "http://" not in html and "https://" not in html
    return page


def test_funnel_html_is_self_contained_with_charts_and_escapes_labels(
    known: Store, lifecycle: LifecycleSettings, tmp_path: Path
) -> None:
    add_person(known, "p8", "lead", lead="2026-03-20")
    add_contact(known, "p8", "108", SCRIPT, "2026-03-20T09:00:00.000Z")
    out = tmp_path / "reports" / "funnel.html"
    shown = report_command(
        known, "funnel", model=None, fmt="html", out=out, lifecycle=lifecycle, now=NOW
    )
    assert shown == str(out)
    html = out.read_text(encoding="utf-8")
    page = assert_self_contained(html)
    assert page.tags["svg"] >= 2 and page.tags["table"] >= 3
    assert SCRIPT not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert SCRIPT in "".join(page.text)  # shown as text, exactly as it came
    assert "People per stage" in html and "2026-03" in html


def test_report_command_refuses_a_model_for_the_funnel_and_unknown_formats(
    known: Store, lifecycle: LifecycleSettings
) -> None:
    with pytest.raises(UsageError, match="--model applies to `syncd report attribution`"):
        report_command(
            known, "funnel", model="linear", fmt="table", out=None, lifecycle=lifecycle, now=NOW
        )
    with pytest.raises(UsageError, match='Did you mean "html"'):
        report_command(
            known, "funnel", model=None, fmt="htm", out=None, lifecycle=lifecycle, now=NOW
        )
    with pytest.raises(UsageError, match='Did you mean "funnel"'):
        report_command(
            known, "funel", model=None, fmt="table", out=None, lifecycle=lifecycle, now=NOW
        )


# sandbox -------------------------------------------------------------------------------------


def live_people(alias: str, marks: str) -> str:
    return (
        f"{alias}.kind = 'person' AND {alias}.merged_into IS NULL"
        f" AND json_extract({alias}.fields, '$._stage') IN ({marks})"
    )


def plain_sql_counts(store: Store, lifecycle: LifecycleSettings) -> dict[str, Any]:
    """The funnel's figures straight from entity, stage_history and the HubSpot contacts,
    without syncd.report."""
    conn = store.db.conn
    values = [stage.hubspot for stage in lifecycle.stages]
    marks = ",".join("?" for _ in values)
    live = live_people("e", marks)
    now = dict(
        conn.execute(
            f"SELECT json_extract(e.fields, '$._stage'), count(*) FROM entity e WHERE {live}"
            " GROUP BY 1",
            values,
        ).fetchall()
    )
    reached = []
    for k in range(len(values)):
        later = ",".join("?" for _ in values[k:])
        reached.append(
            conn.execute(
                f"SELECT count(*) FROM entity e WHERE {live} AND"
                f" (json_extract(e.fields, '$._stage') IN ({later}) OR EXISTS (SELECT 1 FROM"
                f" stage_history h WHERE h.person_id = e.id AND h.stage IN ({later})))",
                [*values, *values[k:], *values[k:]],
            ).fetchone()[0]
        )
    ranks = " ".join(f"WHEN '{v}' THEN {k}" for k, v in enumerate(values))
    cohorts = dict(
        conn.execute(
            f"""
        WITH ranked AS (
            SELECT h.person_id, h.entered_at, CASE h.stage {ranks} END AS rank
            FROM stage_history h JOIN entity e ON e.kind = 'person' AND e.id = h.person_id
            WHERE {live} AND h.stage IN ({marks})),
        first AS (
            SELECT entered_at, row_number() OVER (PARTITION BY person_id ORDER BY rank) AS n
            FROM ranked)
        SELECT substr(entered_at, 1, 7), count(*) FROM first WHERE n = 1 GROUP BY 1
        """,
            [*values, *values],
        ).fetchall()
    )
    contacts: dict[str, list[tuple[bool, str, str, str | None]]] = {}
    for person, created, record, source in conn.execute(
        f"SELECT e.id, l.created_at, l.record_id, json_extract(s.data, '$.hs_analytics_source')"
        f" FROM entity e JOIN link l ON l.kind = 'person' AND l.entity_id = e.id"
        f" AND l.system = 'hubspot' AND l.object = 'contacts' AND l.state = 'live'"
        f" JOIN source_record s ON s.system = 'hubspot' AND s.object = 'contacts'"
        f" AND s.id = l.record_id WHERE {live} AND s.deleted = 0 AND s.merged_into IS NULL",
        values,
    ):
        contacts.setdefault(person, []).append((source is None, created, record, source))
    known = Counter(min(found)[3] or "unknown" for found in contacts.values())
    people = sum(now.values())
    sources = dict(known, unknown=known["unknown"] + people - len(contacts))
    return {
        "now": now,
        "reached": reached,
        "cohorts": cohorts,
        "people": people,
        "sources": {k: v for k, v in sources.items() if v},
    }


def test_funnel_on_a_synced_sandbox_matches_counts_from_the_store(
    world: Any, lifecycle: LifecycleSettings
) -> None:
    from connectors.sandbox import Sandbox

    Sandbox(scale=300).seed_into(world.hubspot, world.salesforce)
    world.sync()
    store = world.store()
    try:
        expected = plain_sql_counts(store, lifecycle)
        report = built(store, lifecycle)
        rows = list(
            csv.DictReader(
                io.StringIO(
                    report_command(
                        store,
                        "funnel",
                        model=None,
                        fmt="csv",
                        out=None,
                        lifecycle=lifecycle,
                        now=world.clock.now,
                    )
                )
            )
        )
    finally:
        store.close()
    assert expected["people"] > 200  # the sandbox really is there
    assert report.people == expected["people"]
    assert {line.stage: line.people for line in report.stages if line.people} == expected["now"]
    assert [line.reached for line in report.stages] == expected["reached"]
    cohorts = {c.group: c.people for c in report.cohorts if c.group != "unknown"}
    assert cohorts == expected["cohorts"]
    assert {s.group: s.people for s in report.sources} == expected["sources"]
    assert len(expected["sources"]) > 2
    assert [int(r["reached"]) for r in rows if r["section"] == "stage"] == expected["reached"]
