"""`syncd report funnel|handoff|attribution`: the figures both teams share, computed from the
unified dataset by pure functions over the rows `syncd.store.reports` reads, returned as plain
frozen dataclasses, and rendered as a terminal table (`syncd.report_table`), CSV
(`syncd.report_csv`) or a self-contained HTML page (`syncd.report_html`).

- funnel: people per current stage; of the people who entered a stage, how many entered the
  next one or a later one (a jump from lead to customer passes through every stage between);
  median days between consecutive stages; the same by month of entry and by original source.
- handoff: the MQLs syncd handed to sales, the median hours to the first sales touch and the
  SLA breaches of `[handoff] sla_hours`, with their owner.
- attribution: credited pipeline (open opportunities) and revenue (won) per touch label, per
  model side by side, marketing touches against sales touches.
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TypeVar

from syncd.attribution import MODELS
from syncd.cli_options import write_atomically
from syncd.errors import UsageError
from syncd.mapping_files import suggestion
from syncd.stages import LifecycleSettings
from syncd.store import Store, parse_iso
from syncd.store.reports import AttributionSum, HandoffRow, PersonRow, StageEntry

REPORTS = ("funnel", "handoff", "attribution")
FORMATS = ("table", "csv", "html")
UNKNOWN = "unknown"

# funnel ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StageLine:
    stage: str  # the HubSpot value
    label: str  # the Salesforce label, as people read it
    people: int  # currently at this stage
    reached: int  # entered this stage or a later one
    conversion: float | None  # reached of the next stage / reached of this one
    median_days: float | None  # to the next stage, over people with both dates
    timed: int  # how many people that median is over


@dataclass(frozen=True)
class Slice:
    """One group of people (a month of entry, an original source): counts per stage."""

    group: str
    people: int
    at_stage: tuple[int, ...]
    reached: tuple[int, ...]

    def conversion(self, index: int) -> float | None:
        """Of those who reached stage `index`, the share that reached the next one."""
        if index + 1 >= len(self.reached) or not self.reached[index]:
            return None
        return self.reached[index + 1] / self.reached[index]


@dataclass(frozen=True)
class Funnel:
    as_of: datetime
    stages: tuple[StageLine, ...]
    people: int  # people with a stage
    without_stage: int  # HubSpot `other` or a value the stage list does not hold
    cohorts: tuple[Slice, ...]  # by month of entry, oldest first
    sources: tuple[Slice, ...]  # by original source, largest first


def funnel(
    people: Iterable[PersonRow],
    entries: Iterable[StageEntry],
    lifecycle: LifecycleSettings,
    as_of: datetime,
) -> Funnel:
    ranks = {stage.hubspot: stage.rank for stage in lifecycle.stages}
    everyone = list(people)
    staged = [p for p in everyone if p.stage in ranks]
    history = _history(entries, ranks, {p.id for p in staged})
    # The highest stage a person ever entered: a recycled person still passed through it.
    tops = {p.id: max([ranks[p.stage or ""], *history.get(p.id, {})]) for p in staged}
    overall = _slice("all", staged, ranks, tops)
    lines = tuple(
        StageLine(
            stage.hubspot,
            stage.salesforce,
            overall.at_stage[k],
            overall.reached[k],
            overall.conversion(k),
            *_median_days(history.values(), k),
        )
        for k, stage in enumerate(lifecycle.stages)
    )
    by_month = _grouped(staged, lambda p: _cohort(history.get(p.id)), ranks, tops)
    by_source = _grouped(staged, lambda p: p.source or UNKNOWN, ranks, tops)
    return Funnel(
        as_of,
        lines,
        len(staged),
        len(everyone) - len(staged),
        tuple(sorted(by_month, key=lambda s: (s.group == UNKNOWN, s.group))),
        tuple(sorted(by_source, key=lambda s: (-s.people, s.group))),
    )


def _history(
    entries: Iterable[StageEntry], ranks: dict[str, int], people: set[str]
) -> dict[str, dict[int, StageEntry]]:
    """person -> stage rank -> its entry, for the given people and known stages."""
    history: dict[str, dict[int, StageEntry]] = defaultdict(dict)
    for entry in entries:
        if entry.person_id in people and entry.stage in ranks:
            history[entry.person_id][ranks[entry.stage]] = entry
    return history


def _slice(
    group: str, members: Sequence[PersonRow], ranks: dict[str, int], tops: dict[str, int]
) -> Slice:
    size = len(ranks)
    current = Counter(ranks[p.stage or ""] for p in members)
    highest = Counter(tops[p.id] for p in members)
    reached, running = [0] * size, 0
    for rank in reversed(range(size)):
        running += highest[rank]
        reached[rank] = running
    return Slice(group, len(members), tuple(current[k] for k in range(size)), tuple(reached))


def _grouped(
    members: Sequence[PersonRow],
    key: Callable[[PersonRow], str],
    ranks: dict[str, int],
    tops: dict[str, int],
) -> list[Slice]:
    groups: dict[str, list[PersonRow]] = defaultdict(list)
    for person in members:
        groups[key(person)].append(person)
    return [_slice(group, rows, ranks, tops) for group, rows in groups.items()]


def _cohort(history: dict[int, StageEntry] | None) -> str:
    """The month the person first entered the lowest stage they have ("2026-03")."""
    if not history:
        return UNKNOWN
    return history[min(history)].entered_at[:7]


def _median_days(histories: Iterable[dict[int, StageEntry]], rank: int) -> tuple[float | None, int]:
    days = [h[rank + 1].day - h[rank].day for h in histories if rank in h and rank + 1 in h]
    # Rounded to a tenth of a second: Julian day numbers carry float noise below that.
    return (round(statistics.median(days), 6) if days else None), len(days)


# hand-off ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HandoffLine:
    person_id: str
    email: str | None
    lead_id: str | None
    owner: str  # the User's name where Users were pulled, else the owner id
    qualified_at: datetime
    due_at: datetime  # qualified_at + sla_hours
    first_touch_at: datetime | None
    first_touch: str | None
    breached: bool  # touched after due_at, or untouched and now past it

    @property
    def hours_to_first_touch(self) -> float | None:
        if self.first_touch_at is None:
            return None
        return (self.first_touch_at - self.qualified_at) / timedelta(hours=1)

    @property
    def state(self) -> str:
        if self.first_touch_at is not None:
            return "late" if self.breached else "in time"
        return "overdue" if self.breached else "waiting"


@dataclass(frozen=True)
class OwnerLine:
    owner: str
    handed_off: int
    touched: int
    breaches: int


@dataclass(frozen=True)
class HandoffReport:
    as_of: datetime
    sla_hours: float
    lines: tuple[HandoffLine, ...]  # every hand-off syncd made, oldest qualification first
    owners: tuple[OwnerLine, ...]  # most breaches first

    @property
    def handed_off(self) -> int:
        return len(self.lines)

    @property
    def touched(self) -> int:
        return sum(1 for line in self.lines if line.first_touch_at is not None)

    @property
    def median_hours(self) -> float | None:
        hours = [h for line in self.lines if (h := line.hours_to_first_touch) is not None]
        return statistics.median(hours) if hours else None

    @property
    def breaches(self) -> tuple[HandoffLine, ...]:
        return tuple(line for line in self.lines if line.breached)


def handoff(rows: Iterable[HandoffRow], sla_hours: float, as_of: datetime) -> HandoffReport:
    """The hand-offs syncd made (a Lead it created); Leads found in Salesforce are not sales'
    answer to a hand-off, so they are left out."""
    sla = timedelta(hours=sla_hours)
    lines = tuple(_handoff_line(row, sla, as_of) for row in rows if row.created_by_syncd)
    by_owner: dict[str, list[HandoffLine]] = defaultdict(list)
    for line in lines:
        by_owner[line.owner].append(line)
    owners = [
        OwnerLine(
            owner,
            len(mine),
            sum(1 for line in mine if line.first_touch_at is not None),
            sum(1 for line in mine if line.breached),
        )
        for owner, mine in by_owner.items()
    ]
    owners.sort(key=lambda o: (-o.breaches, -o.handed_off, o.owner))
    return HandoffReport(as_of, sla_hours, lines, tuple(owners))


def _handoff_line(row: HandoffRow, sla: timedelta, now: datetime) -> HandoffLine:
    qualified = parse_iso(row.qualified_at)
    due = qualified + sla
    touched = parse_iso(row.first_touch_at) if row.first_touch_at else None
    breached = touched > due if touched is not None else now > due
    owner = row.owner_name or row.owner_id or "unassigned"
    return HandoffLine(
        row.person_id,
        row.email,
        row.lead_id,
        owner,
        qualified,
        due,
        touched,
        row.first_touch,
        breached,
    )


# attribution ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class CampaignLine:
    """Credited amounts to one touch label, per model (in `Attribution.models` order)."""

    label: str
    sales: bool
    pipeline: tuple[float, ...]  # credited from open opportunities
    revenue: tuple[float, ...]  # credited from won opportunities


@dataclass(frozen=True)
class Attribution:
    as_of: datetime
    models: tuple[str, ...]
    lines: tuple[CampaignLine, ...]  # most revenue first

    def total(self, sales: bool) -> CampaignLine:
        """Marketing (False) or sales (True) touches, summed over their labels."""
        mine = [line for line in self.lines if line.sales == sales]
        return CampaignLine(
            "Sales touches" if sales else "Marketing touches",
            sales,
            _columns_sum(line.pipeline for line in mine),
            _columns_sum(line.revenue for line in mine),
        )


def attribution(
    sums: Iterable[AttributionSum], as_of: datetime, model: str | None = None
) -> Attribution:
    rows = [s for s in sums if model is None or s.model == model]
    found = {s.model for s in rows}
    models = (model,) if model else tuple(sorted(found, key=_model_order))
    column = {name: index for index, name in enumerate(models)}
    amounts: dict[tuple[str, bool], dict[str, list[float]]] = {}
    for row in rows:
        if row.state == "lost":
            continue
        cell = amounts.setdefault(
            (row.label, row.sales), {"open": [0.0] * len(models), "won": [0.0] * len(models)}
        )
        cell[row.state][column[row.model]] += row.amount
    lines = [
        CampaignLine(label, sales, _cents(cell["open"]), _cents(cell["won"]))
        for (label, sales), cell in amounts.items()
    ]
    lines.sort(key=lambda line: (-sum(line.revenue), -sum(line.pipeline), line.label))
    return Attribution(as_of, models, tuple(lines))


def _model_order(name: str) -> tuple[int, str]:
    return (MODELS.index(name) if name in MODELS else len(MODELS), name)


def _cents(values: Iterable[float]) -> tuple[float, ...]:
    return tuple(round(value, 2) for value in values)


def _columns_sum(rows: Iterable[tuple[float, ...]]) -> tuple[float, ...]:
    return _cents(sum(column) for column in zip(*rows, strict=True))


# formatting, shared by the renderers -------------------------------------------------------


def percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def number(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def money(value: float) -> str:
    return f"{value:,.2f}"


def stamp(value: datetime | None) -> str:
    return "-" if value is None else value.strftime("%Y-%m-%d %H:%M UTC")


def latest_breaches(report: HandoffReport, limit: int) -> list[HandoffLine]:
    """The breaches of the most recently qualified people: the ones sales can still act on.
    A list of thousands helps nobody on a terminal or a page; the CSV holds them all."""
    return sorted(report.breaches, key=lambda line: line.qualified_at, reverse=True)[:limit]


BREACH_COLUMNS = ("Person", "Owner", "Qualified", "Due", "First touch", "State")


def breach_cells(line: HandoffLine) -> list[str]:
    """A breach as the terminal and the page show it, in `BREACH_COLUMNS` order."""
    return [line.email or line.person_id, line.owner, stamp(line.qualified_at),
            stamp(line.due_at), stamp(line.first_touch_at), line.state]


def touch_kind(line: CampaignLine) -> str:
    return "sales" if line.sales else "marketing"


# the command ---------------------------------------------------------------------------------

R = TypeVar("R")


def report_command(
    store: Store,
    name: str,
    *,
    model: str | None,
    fmt: str,
    out: Path | None,
    lifecycle: LifecycleSettings,
    now: datetime,
) -> str:
    """`syncd report NAME`: what to print (the table or the CSV or the HTML), or, with
    `out`, the path the report was written to."""
    _check(name, fmt, model)
    # Imported here: the renderers draw this module's dataclasses, so they import this module.
    from syncd import report_csv, report_html, report_table

    reports = store.reports
    if name == "funnel":
        built = funnel(reports.people(), reports.stage_entries(), lifecycle, now)
        text = _format(
            built, fmt, report_table.funnel_table, report_csv.funnel_csv, report_html.funnel_page
        )
    elif name == "handoff":
        handoffs = handoff(reports.handoffs(), lifecycle.sla_hours, now)
        text = _format(
            handoffs,
            fmt,
            report_table.handoff_table,
            report_csv.handoff_csv,
            report_html.handoff_page,
        )
    else:
        credited = attribution(reports.attribution_sums(model), now, model)
        text = _format(
            credited,
            fmt,
            report_table.attribution_table,
            report_csv.attribution_csv,
            report_html.attribution_page,
        )
    if out is None:
        return text
    write_atomically(out, text)
    return str(out)


def _format(report: R, fmt: str, *renderers: Callable[[R], str]) -> str:
    return dict(zip(FORMATS, renderers, strict=True))[fmt](report)


def _check(name: str, fmt: str, model: str | None) -> None:
    if name not in REPORTS:
        raise UsageError(
            f'"{name}" is not a report; use one of {", ".join(REPORTS)}.{suggestion(name, REPORTS)}'
        )
    if fmt not in FORMATS:
        raise UsageError(
            f'--format "{fmt}" is not a format; use one of {", ".join(FORMATS)}.'
            f"{suggestion(fmt, FORMATS)}"
        )
    if model is not None and name != "attribution":
        raise UsageError(f"--model applies to `syncd report attribution`, not to {name}.")
    if model is not None and model not in MODELS:
        raise UsageError(
            f'--model "{model}" is not an attribution model; use one of {", ".join(MODELS)}.'
            f"{suggestion(model, MODELS)}"
        )
