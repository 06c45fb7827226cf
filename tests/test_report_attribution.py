"""`syncd report attribution`: credited pipeline (open) and revenue (won) per label, per model
side by side, marketing against sales touches, checked against sums computed here from the
credits the test writes."""

from __future__ import annotations

import csv
import io
import json
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from syncd.errors import UsageError
from syncd.report import Attribution, attribution, report_command
from syncd.stages import LifecycleSettings, load_lifecycle
from syncd.store import Store
from syncd.store.reports import ReportStore

NOW = datetime(2026, 6, 1, tzinfo=UTC)
SCRIPT = "<script>alert(1)</script>"

# opportunity -> (its fields, whether it counts, and as what)
OPPORTUNITIES: dict[str, tuple[dict[str, Any], str | None]] = {
    "o1": ({"amount": 1000, "stage": "closedwon", "_is_closed": True, "_is_won": True}, "won"),
    "o2": ({"amount": 500, "stage": "contractsent", "_is_closed": False, "_is_won": False}, "open"),
    "o3": ({"amount": 300, "stage": "closedlost", "_is_closed": True, "_is_won": False}, None),
    # A HubSpot-only deal: no Salesforce IsWon, its stage says won.
    "o4": ({"amount": 200, "stage": "closedwon"}, "won"),
}
TOUCHES = {  # touchpoint -> (label, sales)
    "t1": ("Webinar Q3", False),
    "t2": ("Spring Newsletter", False),
    "t3": ("Sales: Task", True),
    "t4": (SCRIPT, False),
    "t5": ("Webinar Q3", False),  # a second touch with the same label
}
CREDITS = [  # (opportunity, model, touchpoint, share)
    ("o1", "first_touch", "t1", 1.0),
    ("o2", "first_touch", "t2", 1.0),
    ("o3", "first_touch", "t1", 1.0),
    ("o4", "first_touch", "t4", 1.0),
    ("o1", "linear", "t1", 0.5),
    ("o1", "linear", "t3", 0.5),
    ("o2", "linear", "t2", 0.5),
    ("o2", "linear", "t5", 0.5),
    ("o3", "linear", "t1", 0.5),
    ("o3", "linear", "t3", 0.5),
    ("o4", "linear", "t4", 0.5),
    ("o4", "linear", "t5", 0.5),
    ("o1", "w_shaped", "t1", 0.3),
    ("o1", "w_shaped", "t5", 0.3),
    ("o1", "w_shaped", "t3", 0.4),
    ("o2", "w_shaped", "t2", 0.7),
    ("o2", "w_shaped", "t3", 0.3),
    ("o5", "w_shaped", "t1", 1.0),  # o5 was merged into o1: no one
]


@pytest.fixture(scope="module")
def lifecycle() -> LifecycleSettings:
    return load_lifecycle(None)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    store = Store(tmp_path / "s.db")
    conn = store.db.conn
    amounts = {opp: fields["amount"] for opp, (fields, _) in OPPORTUNITIES.items()}
    with store.transaction():
        for opp, (fields, _) in OPPORTUNITIES.items():
            conn.execute(
                "INSERT INTO entity (kind, id, fields, created_run, updated_run)"
                " VALUES ('opportunity', ?, ?, 1, 1)",
                (opp, json.dumps(fields)),
            )
        conn.execute(
            "INSERT INTO entity (kind, id, fields, merged_into, created_run, updated_run)"
            " VALUES ('opportunity', 'o5', ?, 'o1', 1, 1)",
            (json.dumps({"amount": 999, "_is_won": True, "_is_closed": True}),),
        )
        amounts["o5"] = 999
        conn.executemany(
            "INSERT INTO touchpoint (id, person_id, at, kind, label, sales, source_id, run)"
            " VALUES (?, 'p1', '2026-01-01T00:00:00.000Z', ?, ?, ?, ?, 1)",
            [
                (t, "task" if sales else "form_submission", label, int(sales), t)
                for t, (label, sales) in TOUCHES.items()
            ],
        )
        conn.executemany(
            "INSERT INTO credit (opportunity_id, model, touchpoint_id, share, amount, run)"
            " VALUES (?, ?, ?, ?, ?, 1)",
            [(opp, model, t, share, share * amounts[opp]) for opp, model, t, share in CREDITS],
        )
    yield store
    store.close()


def expected(measure: str) -> dict[tuple[str, str], float]:
    """(label, model) -> credited amount of the opportunities in state `measure`, summed here
    from the test's own data."""
    sums: dict[tuple[str, str], float] = defaultdict(float)
    for opp, model, touch, share in CREDITS:
        if opp in OPPORTUNITIES and OPPORTUNITIES[opp][1] == measure:
            sums[(TOUCHES[touch][0], model)] += share * OPPORTUNITIES[opp][0]["amount"]
    return dict(sums)


def measured(report: Attribution, measure: str) -> dict[tuple[str, str], float]:
    return {
        (line.label, model): value
        for line in report.lines
        for model, value in zip(
            report.models, line.revenue if measure == "won" else line.pipeline, strict=True
        )
        if value
    }


def built(store: Store, model: str | None = None) -> Attribution:
    return attribution(ReportStore(store.db.conn).attribution_sums(model), NOW, model)


def test_revenue_per_campaign_per_model_sums_credits_of_won_opportunities(store: Store) -> None:
    report = built(store)
    assert report.models == ("first_touch", "linear", "w_shaped")
    assert measured(report, "won") == pytest.approx(expected("won"))
    webinar = next(line for line in report.lines if line.label == "Webinar Q3")
    assert webinar.revenue == (1000.0, 600.0, 600.0)  # lost o3 and merged o5 leave no trace


def test_pipeline_per_campaign_per_model_sums_credits_of_open_opportunities(
    store: Store,
) -> None:
    report = built(store)
    assert measured(report, "open") == pytest.approx(expected("open"))
    newsletter = next(line for line in report.lines if line.label == "Spring Newsletter")
    assert newsletter.pipeline == (500.0, 250.0, 350.0)
    assert newsletter.revenue == (0.0, 0.0, 0.0)


def test_marketing_and_sales_touches_are_totalled_apart(store: Store) -> None:
    report = built(store)
    marketing, sales = report.total(False), report.total(True)
    assert marketing.revenue == (1200.0, 700.0, 600.0)
    assert sales.revenue == (0.0, 500.0, 400.0)
    assert marketing.pipeline == (500.0, 500.0, 350.0)
    assert sales.pipeline == (0.0, 0.0, 150.0)
    # Every won dollar is credited once per model (o4 has no w_shaped credits here).
    assert [m + s for m, s in zip(marketing.revenue, sales.revenue, strict=True)] == [
        1200.0,
        1200.0,
        1000.0,
    ]


def test_model_option_shows_one_model(store: Store, lifecycle: LifecycleSettings) -> None:
    report = built(store, "linear")
    assert report.models == ("linear",)
    assert {line.label: line.revenue for line in report.lines} == {
        "Webinar Q3": (600.0,),
        "Sales: Task": (500.0,),
        SCRIPT: (100.0,),
        "Spring Newsletter": (0.0,),
    }
    text = report_command(
        store, "attribution", model="linear", fmt="table", out=None, lifecycle=lifecycle, now=NOW
    )
    assert "linear" in text and "first_touch" not in text and "w_shaped" not in text


def test_an_unknown_model_is_refused_with_a_suggestion(
    store: Store, lifecycle: LifecycleSettings
) -> None:
    with pytest.raises(UsageError, match='Did you mean "w_shaped"'):
        report_command(
            store,
            "attribution",
            model="w-shaped",
            fmt="table",
            out=None,
            lifecycle=lifecycle,
            now=NOW,
        )


def test_attribution_csv_parses_and_holds_the_same_numbers(
    store: Store, lifecycle: LifecycleSettings
) -> None:
    text = report_command(
        store, "attribution", model=None, fmt="csv", out=None, lifecycle=lifecycle, now=NOW
    )
    rows = list(csv.DictReader(io.StringIO(text)))
    revenue = {(r["label"], r["model"]): float(r["revenue"]) for r in rows if float(r["revenue"])}
    pipeline = {
        (r["label"], r["model"]): float(r["pipeline"]) for r in rows if float(r["pipeline"])
    }
    assert revenue == pytest.approx(expected("won"))
    assert pipeline == pytest.approx(expected("open"))
    assert {r["touch"] for r in rows if r["label"] == "Sales: Task"} == {"sales"}


def test_attribution_table_puts_the_models_side_by_side(
    store: Store, lifecycle: LifecycleSettings
) -> None:
    text = report_command(
        store, "attribution", model=None, fmt="table", out=None, lifecycle=lifecycle, now=NOW
    )
    header = next(line for line in text.splitlines() if "first_touch" in line)
    assert header.index("first_touch") < header.index("linear") < header.index("w_shaped")
    webinar = next(line for line in text.splitlines() if "Webinar Q3" in line)
    assert [c.strip() for c in webinar.split("│")[3:6]] == ["1,000.00", "600.00", "600.00"]
    assert "Marketing touches" in text and "Sales touches" in text


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


def test_attribution_html_draws_models_side_by_side_and_escapes_labels(
    store: Store, lifecycle: LifecycleSettings, tmp_path: Path
) -> None:
    out = tmp_path / "attribution.html"
    report_command(
        store, "attribution", model=None, fmt="html", out=out, lifecycle=lifecycle, now=NOW
    )
    html = out.read_text(encoding="utf-8")
    page = Tags()
    page.feed(html)
    assert page.tags.count("svg") == 3 and "script" not in page.tags
    assert not any(link.startswith(("http://", "https://")) for link in page.links)
    assert "http://" not in html and "https://" not in html
    assert SCRIPT not in html and "&lt;script&gt;" in html and SCRIPT in page.text
    # one bar per model in each campaign's group: Webinar Q3 has three in the revenue chart
    assert html.count("Webinar Q3, first_touch: 1,000.00") == 1
    assert "Webinar Q3, w_shaped: 600.00" in html


def test_attribution_without_credits_says_what_to_run(
    tmp_path: Path, lifecycle: LifecycleSettings
) -> None:
    empty = Store(tmp_path / "empty.db")
    try:
        text = report_command(
            empty, "attribution", model=None, fmt="table", out=None, lifecycle=lifecycle, now=NOW
        )
    finally:
        empty.close()
    assert text.startswith("No attribution credits yet")
