"""`syncd report ... --format table`: the reports of `syncd.report` as terminal tables (rich),
rendered to text so the command prints them whole."""

from __future__ import annotations

import io

from rich.console import Console
from rich.table import Table

from syncd.report import (
    BREACH_COLUMNS,
    Attribution,
    Funnel,
    HandoffReport,
    breach_cells,
    latest_breaches,
    money,
    number,
    percent,
    touch_kind,
)

TABLE_BREACHES = 50  # breaches listed on a terminal


def funnel_table(report: Funnel) -> str:
    stages = Table(title=f"Funnel: {report.people} people with a stage", title_justify="left")
    for heading in ("Stage", "People now", "Reached", "To next", "Median days to next"):
        stages.add_column(heading, justify="left" if heading == "Stage" else "right")
    for line in report.stages:
        stages.add_row(
            line.label,
            str(line.people),
            str(line.reached),
            percent(line.conversion),
            f"{number(line.median_days)} (n={line.timed})" if line.timed else "-",
        )
    note = f"{report.without_stage} people have no stage in the list (HubSpot `other`)."
    return _rendered(
        stages,
        _slices_table("By month of entry: people who reached each stage", "Month", report),
        _slices_table("By original source: people who reached each stage", "Source", report),
        note,
    )


def _slices_table(title: str, heading: str, report: Funnel) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column(heading)
    table.add_column("People", justify="right")
    for line in report.stages:
        table.add_column(line.label, justify="right")
    slices = report.cohorts if heading == "Month" else report.sources
    for group in slices:
        table.add_row(group.group, str(group.people), *(str(n) for n in group.reached))
    return table


def handoff_table(report: HandoffReport) -> str:
    summary = Table(title="Hand-off to sales", title_justify="left", show_header=False)
    for name, value in (
        ("MQLs handed off", str(report.handed_off)),
        ("First sales touch made", str(report.touched)),
        ("Median hours to first touch", number(report.median_hours)),
        (f"SLA breaches ({number(report.sla_hours, 0)} h)", str(len(report.breaches))),
    ):
        summary.add_row(name, value)
    owners = Table(title="By owner", title_justify="left")
    for heading in ("Owner", "Handed off", "Touched", "Breaches"):
        owners.add_column(heading, justify="left" if heading == "Owner" else "right")
    for owner in report.owners:
        owners.add_row(owner.owner, str(owner.handed_off), str(owner.touched), str(owner.breaches))
    shown = latest_breaches(report, TABLE_BREACHES)
    breaches = Table(title=f"SLA breaches, latest {len(shown)}", title_justify="left")
    breaches.add_column(BREACH_COLUMNS[0], overflow="fold")
    for heading in BREACH_COLUMNS[1:]:
        breaches.add_column(heading)
    for line in shown:
        breaches.add_row(*breach_cells(line))
    more = len(report.breaches) - len(shown)
    note = f"{more} earlier breaches not shown; `--format csv` lists every hand-off." * bool(more)
    return _rendered(summary, owners, breaches, note, width=140)


def attribution_table(report: Attribution) -> str:
    if not report.models:
        return "No attribution credits yet: run `syncd run --once` first.\n"
    return _rendered(
        _money_table("Revenue (won) by campaign", report, "revenue"),
        _money_table("Pipeline (open) by campaign", report, "pipeline"),
        _money_table("Marketing against sales touches", report, "both"),
        width=max(120, 40 + 16 * len(report.models)),
    )


def _money_table(title: str, report: Attribution, measure: str) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column("Campaign / label")
    table.add_column("Touch")
    for model in report.models:
        table.add_column(model, justify="right")
    if measure == "both":
        for total in (report.total(False), report.total(True)):
            table.add_row(total.label, "revenue", *(money(v) for v in total.revenue))
            table.add_row(total.label, "pipeline", *(money(v) for v in total.pipeline))
        return table
    for line in report.lines:
        values = line.revenue if measure == "revenue" else line.pipeline
        table.add_row(line.label, touch_kind(line), *(money(v) for v in values))
    return table


def _rendered(*parts: Table | str, width: int = 120) -> str:
    # Labels and names are data, not markup: "[Webinar] Q3" must print as typed.
    console = Console(
        file=io.StringIO(),
        width=width,
        color_system=None,
        highlight=False,
        markup=False,
        emoji=False,
    )
    for part in parts:
        console.print(part)
    text = console.file.getvalue()  # type: ignore[attr-defined]
    return str(text)
