"""`syncd report ... --format csv`: one tidy table per report of `syncd.report`, numbers
unformatted."""

from __future__ import annotations

import csv
import io

from syncd.report import Attribution, Funnel, HandoffReport, touch_kind
from syncd.store import iso


def funnel_csv(report: Funnel) -> str:
    rows: list[list[object]] = [
        [
            "stage",
            "all",
            line.stage,
            line.label,
            line.people,
            line.reached,
            _ratio(line.conversion),
            _ratio(line.median_days, 2),
            line.timed,
        ]
        for line in report.stages
    ]
    for section, slices in (("month", report.cohorts), ("source", report.sources)):
        for group in slices:
            for k, line in enumerate(report.stages):
                rows.append(
                    [
                        section,
                        group.group,
                        line.stage,
                        line.label,
                        group.at_stage[k],
                        group.reached[k],
                        _ratio(group.conversion(k)),
                        "",
                        "",
                    ]
                )
    header = [
        "section",
        "group",
        "stage",
        "label",
        "people_now",
        "reached",
        "conversion_to_next",
        "median_days_to_next",
        "timed",
    ]
    return _csv(header, rows)


def handoff_csv(report: HandoffReport) -> str:
    header = [
        "person_id",
        "email",
        "lead_id",
        "owner",
        "qualified_at",
        "due_at",
        "first_touch_at",
        "first_touch",
        "hours_to_first_touch",
        "state",
        "breached",
    ]
    rows: list[list[object]] = [
        [
            line.person_id,
            line.email or "",
            line.lead_id or "",
            line.owner,
            iso(line.qualified_at),
            iso(line.due_at),
            iso(line.first_touch_at) if line.first_touch_at else "",
            line.first_touch or "",
            _ratio(line.hours_to_first_touch, 2),
            line.state,
            int(line.breached),
        ]
        for line in report.lines
    ]
    return _csv(header, rows)


def attribution_csv(report: Attribution) -> str:
    header = ["label", "touch", "model", "pipeline", "revenue"]
    rows: list[list[object]] = [
        [line.label, touch_kind(line), model, f"{line.pipeline[i]:.2f}", f"{line.revenue[i]:.2f}"]
        for line in report.lines
        for i, model in enumerate(report.models)
    ]
    return _csv(header, rows)


def _ratio(value: float | None, digits: int = 4) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def _csv(header: list[str], rows: list[list[object]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()
