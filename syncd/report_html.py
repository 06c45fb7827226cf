"""The reports as one self-contained HTML page each: inline CSS, bar charts drawn here as
inline SVG, no script, no font or image to fetch, so the page opens offline and can be mailed.
Every value that comes from the data (labels, names, emails, groups) is escaped."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from html import escape

from syncd.report import (
    BREACH_COLUMNS,
    Attribution,
    CampaignLine,
    Funnel,
    HandoffReport,
    Slice,
    StageLine,
    breach_cells,
    latest_breaches,
    money,
    number,
    percent,
    stamp,
)

# Colour-blind-safe (Okabe-Ito), one per attribution model.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")
CHART_WIDTH = 760
LABEL_WIDTH = 210
BAR_SPACE = 420
LEGEND_PER_ROW = 4
TOP_CAMPAIGNS = 12  # charts show the largest; the tables below them show every label
PAGE_BREACHES = 500  # breaches listed on the page; the CSV holds every hand-off

CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
       color: #1d2330; margin: 2rem auto; max-width: 1100px; padding: 0 1rem; }
h1 { font-size: 1.6rem; margin-bottom: .2rem; } h2 { font-size: 1.15rem; margin-top: 2rem; }
.meta { color: #5b6478; margin-top: 0; }
table { border-collapse: collapse; margin: .5rem 0 1rem; font-variant-numeric: tabular-nums; }
th, td { border-bottom: 1px solid #e3e6ee; padding: .3rem .7rem; text-align: right; }
th.text, td.text { text-align: left; }
th { background: #f4f6fa; font-weight: 600; }
.tiles { display: flex; gap: 1rem; flex-wrap: wrap; }
.tile { background: #f4f6fa; border-radius: 8px; padding: .7rem 1rem; min-width: 10rem; }
.tile b { display: block; font-size: 1.5rem; }
svg text { font: 12px system-ui, sans-serif; fill: #1d2330; }
svg .value { fill: #5b6478; }
.muted { color: #5b6478; }
"""


def _e(value: object) -> str:
    return escape(str(value), quote=True)


# pages -----------------------------------------------------------------------------------------


def funnel_page(report: Funnel) -> str:
    labels = [line.label for line in report.stages]
    parts = [
        _tiles((("People with a stage", report.people), ("Without a stage", report.without_stage))),
        bar_chart(
            "People per stage (now)",
            [(line.label, line.people, f"{line.people:,}") for line in report.stages],
        ),
        bar_chart(
            "People who reached each stage, and the share who went on",
            [(line.label, line.reached, _reached(line)) for line in report.stages],
        ),
        "<h2>Stages</h2>",
        _table(
            ["Stage", "People now", "Reached", "To next stage", "Median days to next", "Timed"],
            [
                [
                    line.label,
                    line.people,
                    line.reached,
                    percent(line.conversion),
                    number(line.median_days),
                    line.timed,
                ]
                for line in report.stages
            ],
        ),
        "<h2>By month of entry</h2>",
        _slices_table("Month", labels, report.cohorts),
        "<h2>By original source</h2>",
        _slices_table("Source", labels, report.sources),
    ]
    return _page("Funnel", report.as_of, parts)


def _reached(line: StageLine) -> str:
    if line.conversion is None:
        return f"{line.reached:,}"
    return f"{line.reached:,} · {percent(line.conversion)} went on"


def _slices_table(heading: str, labels: Sequence[str], slices: Sequence[Slice]) -> str:
    """Per group: people who reached each stage, and their share of the group."""
    rows: list[list[object]] = [
        [group.group, group.people]
        + [f"{n:,} ({percent(n / group.people if group.people else None)})" for n in group.reached]
        for group in slices
    ]
    return _table([heading, "People", *labels], rows)


def handoff_page(report: HandoffReport) -> str:
    states = ("in time", "late", "overdue", "waiting")
    counted = {state: sum(1 for line in report.lines if line.state == state) for state in states}
    shown = latest_breaches(report, PAGE_BREACHES)
    parts = [
        _tiles(
            (
                ("MQLs handed off", report.handed_off),
                ("First touch made", report.touched),
                ("Median hours to first touch", number(report.median_hours)),
                (f"SLA breaches ({number(report.sla_hours, 0)} h)", len(report.breaches)),
            )
        ),
        bar_chart(
            "Hand-offs by state",
            [(state, counted[state], f"{counted[state]:,}") for state in states],
        ),
        bar_chart(
            "SLA breaches by owner",
            [(o.owner, o.breaches, f"{o.breaches:,} of {o.handed_off:,}") for o in report.owners],
        ),
        "<h2>By owner</h2>",
        _table(
            ["Owner", "Handed off", "Touched", "Breaches"],
            [[o.owner, o.handed_off, o.touched, o.breaches] for o in report.owners],
        ),
        f"<h2>SLA breaches, latest {len(shown)} of {len(report.breaches)}</h2>",
        _table(
            list(BREACH_COLUMNS),
            [breach_cells(line) for line in shown],
            text_columns=6,
        ),
    ]
    return _page("Hand-off to sales", report.as_of, parts)


def attribution_page(report: Attribution) -> str:
    if not report.models:
        parts = ["<p>No attribution credits yet: run <code>syncd run --once</code> first.</p>"]
        return _page("Attribution", report.as_of, parts)
    top_revenue = [line for line in report.lines if any(line.revenue)][:TOP_CAMPAIGNS]
    top_pipeline = sorted(report.lines, key=lambda line: -sum(line.pipeline))[:TOP_CAMPAIGNS]
    totals = (report.total(False), report.total(True))
    parts = [
        grouped_chart(
            "Revenue (won) by campaign, per model",
            report.models,
            [(_named(line), line.revenue) for line in top_revenue],
        ),
        grouped_chart(
            "Pipeline (open) by campaign, per model",
            report.models,
            [(_named(line), line.pipeline) for line in top_pipeline if any(line.pipeline)],
        ),
        grouped_chart(
            "Marketing against sales touches",
            report.models,
            [(f"{t.label}: revenue", t.revenue) for t in totals]
            + [(f"{t.label}: pipeline", t.pipeline) for t in totals],
        ),
        "<h2>Revenue (won) by campaign</h2>",
        _money_table(report, report.lines, lambda line: line.revenue),
        "<h2>Pipeline (open) by campaign</h2>",
        _money_table(report, report.lines, lambda line: line.pipeline),
        "<h2>Marketing against sales touches: revenue</h2>",
        _money_table(report, totals, lambda line: line.revenue),
        "<h2>Marketing against sales touches: pipeline</h2>",
        _money_table(report, totals, lambda line: line.pipeline),
    ]
    return _page("Attribution", report.as_of, parts)


def _named(line: CampaignLine) -> str:
    return f"{line.label} (sales)" if line.sales else line.label


def _money_table(
    report: Attribution,
    lines: Sequence[CampaignLine],
    measure: Callable[[CampaignLine], tuple[float, ...]],
) -> str:
    rows: list[list[object]] = [
        [line.label, "sales" if line.sales else "marketing", *(money(v) for v in measure(line))]
        for line in lines
    ]
    return _table(["Campaign / label", "Touch", *report.models], rows, text_columns=2)


# building blocks -------------------------------------------------------------------------------


def _page(title: str, as_of: datetime, parts: Sequence[str]) -> str:
    body = "\n".join(parts)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>syncd report: {_e(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n"
        f"<h1>{_e(title)}</h1>\n"
        f'<p class="meta">syncd report, as of {_e(stamp(as_of))}</p>\n'
        f"{body}\n</body>\n</html>\n"
    )


def _tiles(items: Sequence[tuple[str, object]]) -> str:
    tiles = "".join(
        f'<div class="tile"><b>{_e(value)}</b>{_e(name)}</div>' for name, value in items
    )
    return f'<div class="tiles">{tiles}</div>'


def _table(headers: Sequence[str], rows: Sequence[Sequence[object]], text_columns: int = 1) -> str:
    """A table; the first `text_columns` columns are text (left), the rest numbers (right)."""
    head = "".join(
        f'<th class="text">{_e(h)}</th>' if i < text_columns else f"<th>{_e(h)}</th>"
        for i, h in enumerate(headers)
    )
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="text">{_e(cell)}</td>' if i < text_columns else f"<td>{_e(cell)}</td>"
            for i, cell in enumerate(row)
        )
        + "</tr>\n"
        for row in rows
    )
    if not rows:
        body = f'<tr><td class="muted" colspan="{len(headers)}">none</td></tr>'
    return f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}</tbody>\n</table>"


def _short(label: str, limit: int = 30) -> str:
    return label if len(label) <= limit else label[: limit - 1] + "…"


def bar_chart(title: str, bars: Sequence[tuple[str, float, str]]) -> str:
    """Horizontal bars: (label, value, the text shown after the bar)."""
    row, top = 26, 30
    height = top + row * max(len(bars), 1) + 10
    largest = max((value for _, value, _ in bars), default=0) or 1
    shapes = [f'<text x="0" y="18" font-weight="600">{_e(title)}</text>']
    for index, (label, value, shown) in enumerate(bars):
        y = top + index * row
        width = max(value, 0) / largest * BAR_SPACE
        shapes.append(
            f"<g><title>{_e(label)}: {_e(shown)}</title>"
            f'<text x="{LABEL_WIDTH - 8}" y="{y + 15}" text-anchor="end">{_e(_short(label))}</text>'
            f'<rect x="{LABEL_WIDTH}" y="{y + 3}" width="{width:.1f}" height="16" rx="2"'
            f' fill="{PALETTE[0]}"/>'
            f'<text class="value" x="{LABEL_WIDTH + width + 6:.1f}" y="{y + 15}">{_e(shown)}'
            "</text></g>"
        )
    return _svg(title, height, shapes)


def grouped_chart(
    title: str, series: Sequence[str], groups: Sequence[tuple[str, Sequence[float]]]
) -> str:
    """Per group (a campaign), one bar per series (a model), side by side, with a legend."""
    bar, gap = 11, 12
    top = 30 + 20 * -(-len(series) // LEGEND_PER_ROW) + 6
    group_height = bar * len(series) + gap
    height = top + group_height * max(len(groups), 1) + 10
    values = [v for _, row in groups for v in row]
    largest = max(values, default=0) or 1
    shapes = [f'<text x="0" y="18" font-weight="600">{_e(title)}</text>', *_legend(series)]
    for g, (label, row) in enumerate(groups):
        y0 = top + g * group_height
        shapes.append(
            f'<text x="{LABEL_WIDTH - 8}" y="{y0 + group_height / 2 + 2:.0f}"'
            f' text-anchor="end">{_e(_short(label))}<title>{_e(label)}</title></text>'
        )
        for s, value in enumerate(row):
            width = max(value, 0) / largest * BAR_SPACE
            y = y0 + s * bar
            shapes.append(
                f'<rect x="{LABEL_WIDTH}" y="{y}" width="{width:.1f}" height="{bar - 2}"'
                f' fill="{_colour(s)}"><title>{_e(label)}, {_e(series[s])}: {_e(money(value))}'
                "</title></rect>"
            )
    if not groups:
        shapes.append(f'<text class="value" x="{LABEL_WIDTH}" y="{top + 14}">nothing yet</text>')
    return _svg(title, height, shapes)


def _legend(series: Sequence[str]) -> list[str]:
    items = []
    for index, name in enumerate(series):
        line, column = divmod(index, LEGEND_PER_ROW)
        x, y = LABEL_WIDTH + column * 110, 30 + line * 20
        items.append(
            f'<rect x="{x}" y="{y}" width="12" height="12" fill="{_colour(index)}"/>'
            f'<text x="{x + 16}" y="{y + 10}">{_e(name)}</text>'
        )
    return items


def _colour(index: int) -> str:
    return PALETTE[index % len(PALETTE)]


def _svg(title: str, height: int, shapes: Sequence[str]) -> str:
    # No xmlns: inline SVG in HTML needs none, and the page then names no URL at all.
    return (
        f'<figure><svg role="img" aria-label="{_e(title)}" width="{CHART_WIDTH}"'
        f' height="{height}" viewBox="0 0 {CHART_WIDTH} {height}">'
        + "".join(shapes)
        + "</svg></figure>"
    )
