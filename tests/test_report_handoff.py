"""`syncd report handoff`: MQLs handed off, median hours to the first sales touch, SLA breaches
with their owner, checked against a store with known hand-offs and against a synced sandbox."""

from __future__ import annotations

import csv
import io
import json
import statistics
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from syncd.report import HandoffReport, handoff, report_command
from syncd.stages import LifecycleSettings, load_lifecycle
from syncd.store import Store, iso, parse_iso
from syncd.store.reports import ReportStore

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
ADA = "005000000000001AAA"
BOB = "005000000000002AAA"
SCRIPT = "<script>alert(1)</script>"


@pytest.fixture(scope="module")
def lifecycle() -> LifecycleSettings:
    return load_lifecycle(None)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    store = Store(tmp_path / "s.db")
    yield store
    store.close()


def add_handoff(
    store: Store,
    person: str,
    qualified: str,
    touched: str | None = None,
    owner: str | None = None,
    by_syncd: bool = True,
) -> None:
    with store.transaction():
        store.db.conn.execute(
            "INSERT INTO entity (kind, id, match_key, fields, created_run, updated_run)"
            " VALUES ('person', ?, ?, ?, 1, 1)",
            (
                person,
                f"{person}@example.com",
                json.dumps({"_stage": "marketingqualifiedlead", "email": f"{person}@example.com"}),
            ),
        )
        store.db.conn.execute(
            "INSERT INTO handoff (person_id, qualified_at, lead_id, created_by_syncd, owner_id,"
            " first_touch_at, first_touch, run) VALUES (?, ?, ?, ?, ?, ?, ?, 1)",
            (
                person,
                qualified,
                f"00Q{person}",
                int(by_syncd),
                owner,
                touched,
                "Task" if touched else None,
            ),
        )


def add_user(store: Store, user_id: str, name: str) -> None:
    with store.transaction():
        store.db.conn.execute(
            "INSERT INTO source_record (system, object, id, updated_at, data, pulled_run)"
            " VALUES ('salesforce', 'User', ?, '2026-01-01T00:00:00.000Z', ?, 1)",
            (user_id, json.dumps({"Id": user_id, "Name": name})),
        )


@pytest.fixture
def known(store: Store) -> Store:
    """SLA 24 h, now 2026-03-10 12:00 UTC."""
    add_user(store, ADA, "Ada Lovelace")
    add_handoff(store, "h1", "2026-03-01T00:00:00.000Z", "2026-03-01T10:00:00.000Z", ADA)  # 10 h
    add_handoff(store, "h2", "2026-03-01T00:00:00.000Z", "2026-03-02T06:00:00.000Z", ADA)  # 30 h
    add_handoff(store, "h3", "2026-03-09T18:00:00.000Z", None, BOB)  # 18 h so far: waiting
    add_handoff(store, "h4", "2026-03-05T00:00:00.000Z", None, None)  # overdue, no owner
    add_handoff(store, "h5", "2026-03-01T00:00:00.000Z", None, BOB, by_syncd=False)  # found
    add_handoff(store, "h6", "2026-03-03T00:00:00.000Z", "2026-03-04T00:00:00.000Z", BOB)  # 24 h
    return store


def built(store: Store, sla_hours: float = 24) -> HandoffReport:
    return handoff(ReportStore(store.db.conn).handoffs(), sla_hours, NOW)


def test_handoff_counts_the_leads_syncd_created_and_the_median_hours_to_first_touch(
    known: Store,
) -> None:
    report = built(known)
    assert report.handed_off == 5  # h5's Lead was found in Salesforce, not handed off
    assert report.touched == 3
    assert report.median_hours == 24.0  # of 10, 30 and 24 hours


def test_sla_breaches_are_late_touches_and_untouched_handoffs_past_due(known: Store) -> None:
    report = built(known)
    assert {line.person_id: line.state for line in report.lines} == {
        "h1": "in time",
        "h2": "late",
        "h3": "waiting",
        "h4": "overdue",
        "h6": "in time",  # touched exactly at the deadline
    }
    assert [line.person_id for line in report.breaches] == ["h2", "h4"]


def test_a_longer_sla_turns_a_late_touch_into_one_in_time(known: Store) -> None:
    assert [line.person_id for line in built(known, sla_hours=48).breaches] == ["h4"]


def test_breaches_name_the_owner_by_user_name_when_users_were_pulled(known: Store) -> None:
    report = built(known)
    assert [(o.owner, o.handed_off, o.touched, o.breaches) for o in report.owners] == [
        ("Ada Lovelace", 2, 2, 1),
        ("unassigned", 1, 0, 1),
        (BOB, 2, 1, 0),
    ]
    assert {line.owner for line in report.breaches} == {"Ada Lovelace", "unassigned"}


def test_handoff_csv_parses_and_holds_the_same_numbers(
    known: Store, lifecycle: LifecycleSettings
) -> None:
    text = report_command(
        known, "handoff", model=None, fmt="csv", out=None, lifecycle=lifecycle, now=NOW
    )
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == 5
    assert sum(int(row["breached"]) for row in rows) == 2
    hours = [float(row["hours_to_first_touch"]) for row in rows if row["hours_to_first_touch"]]
    assert statistics.median(hours) == 24.0
    h2 = next(row for row in rows if row["person_id"] == "h2")
    assert (h2["owner"], h2["due_at"], h2["state"]) == (
        "Ada Lovelace",
        "2026-03-02T00:00:00.000Z",
        "late",
    )


def test_handoff_table_lists_each_breach_with_its_owner(
    known: Store, lifecycle: LifecycleSettings
) -> None:
    text = report_command(
        known, "handoff", model=None, fmt="table", out=None, lifecycle=lifecycle, now=NOW
    )
    assert "MQLs handed off" in text and "SLA breaches (24 h)" in text
    breach_rows = [line for line in text.splitlines() if "│ overdue" in line or "│ late" in line]
    assert len(breach_rows) == 2
    assert any("h4@example.com" in row and "unassigned" in row for row in breach_rows)
    assert "not shown" not in text


def test_handoff_table_lists_only_the_latest_breaches_and_points_to_the_csv(
    store: Store, lifecycle: LifecycleSettings
) -> None:
    for day in range(1, 61):  # 60 untouched hand-offs, a day apart, all past due
        qualified = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(days=day)
        add_handoff(store, f"x{day:02d}", iso(qualified))
    text = report_command(
        store, "handoff", model=None, fmt="table", out=None, lifecycle=lifecycle, now=NOW
    )
    listed = [line for line in text.splitlines() if "│ overdue" in line]
    assert len(listed) == 50
    assert "x60@example.com" in listed[0] and "x11@example.com" in listed[-1]
    assert "10 earlier breaches not shown" in text
    csv_rows = list(
        csv.DictReader(
            io.StringIO(
                report_command(
                    store, "handoff", model=None, fmt="csv", out=None, lifecycle=lifecycle, now=NOW
                )
            )
        )
    )
    assert sum(int(row["breached"]) for row in csv_rows) == 60


class Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.links: list[str] = []
        self.text = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.links += [v or "" for k, v in attrs if k in ("src", "href")]

    def handle_data(self, data: str) -> None:
        self.text += data


def test_handoff_html_has_charts_and_escapes_an_owner_name(
    known: Store, lifecycle: LifecycleSettings
) -> None:
    add_user(known, BOB, SCRIPT)
    html = report_command(
        known, "handoff", model=None, fmt="html", out=None, lifecycle=lifecycle, now=NOW
    )
    page = Tags()
    page.feed(html)
    assert page.tags.count("svg") == 2 and "script" not in page.tags
    assert not any(link.startswith(("http://", "https://")) for link in page.links)
    assert "https://" not in html and "http://" not in html
    assert SCRIPT not in html and SCRIPT in page.text
    assert "SLA breaches by owner" in page.text


def test_handoff_on_a_synced_sandbox_matches_counts_from_the_store(
    world: Any, lifecycle: LifecycleSettings
) -> None:
    from connectors.sandbox import Sandbox

    Sandbox(scale=300).seed_into(world.hubspot, world.salesforce)
    world.sync()
    world.sync()  # the second pass reads back the Leads the first created, and their owners
    store = world.store()
    leads = [
        row[0]
        for row in store.db.conn.execute(
            "SELECT lead_id FROM handoff WHERE lead_id IS NOT NULL ORDER BY person_id LIMIT 3"
        )
    ]
    store.close()
    with world.salesforce.server.app_lock:  # sales calls three of them
        for lead in leads:
            world.org.insert(
                "Task",
                {"Subject": "Call", "WhoId": lead, "Status": "Completed"},
                at=world.clock.now,
            )
    world.sync()
    now = world.clock.now
    store = world.store()
    try:
        report = handoff(ReportStore(store.db.conn).handoffs(), lifecycle.sla_hours, now)
        rows = store.db.conn.execute(
            "SELECT person_id, qualified_at, first_touch_at, owner_id FROM handoff"
            " WHERE created_by_syncd = 1"
        ).fetchall()
    finally:
        store.close()
    sla = timedelta(hours=lifecycle.sla_hours)
    breached = {
        person
        for person, qualified, touched, _ in rows
        if (parse_iso(touched) if touched else now) > parse_iso(qualified) + sla
    }
    assert len(rows) > 10  # the sandbox really hands people off
    assert report.handed_off == len(rows)
    assert report.touched == sum(1 for row in rows if row[2]) == 3
    assert {line.person_id for line in report.breaches} == breached
    assert report.median_hours == pytest.approx(
        statistics.median(
            (parse_iso(touched) - parse_iso(qualified)) / timedelta(hours=1)
            for _, qualified, touched, _ in rows
            if touched
        )
    )
    owners = {row[3] or "unassigned" for row in rows}
    assert {o.owner for o in report.owners} == owners
    assert sum(o.breaches for o in report.owners) == len(breached)
    assert all(line.due_at - line.qualified_at == sla for line in report.lines)


def test_an_untouched_handoff_breaches_once_the_clock_passes_its_deadline(known: Store) -> None:
    rows = ReportStore(known.db.conn).handoffs()
    waiting = next(row for row in rows if row.person_id == "h3")
    before = handoff([waiting], 24, NOW)
    after = handoff([replace(waiting)], 24, NOW + timedelta(hours=6, minutes=1))
    assert (len(before.breaches), len(after.breaches)) == (0, 1)
