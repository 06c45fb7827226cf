"""The lifecycle definition (`mappings/lifecycle.toml`): the ordered stages with their HubSpot
values and Salesforce labels, the signals that imply a stage, the recycle rules and the
hand-off. Loaded and validated like the other mapping files: every problem at once, one line
each, naming file, section and key."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from syncd.errors import MappingError
from syncd.mapping_files import (
    Report,
    display,
    has_control_characters,
    mapping_path,
    read_document,
    shown,
    suggestion,
)

LINK_MODES = ("contact_roles", "account", "hybrid")
SIGNALS = ("lead_or_contact", "converted", "open_opportunity", "won_opportunity")
SECTIONS = ("stages", "signals", "recycle", "handoff")
# A HubSpot lifecycle stage's internal value: a default stage's lowercase name, or a custom
# stage's numeric id (wire reference 1.11). It also names properties (`hs_lifecyclestage_
# {value}_date`) and paths into the store's JSON.
HUBSPOT_STAGE = re.compile(r"[a-z][a-z0-9_]*|[0-9]+")
# Bounds that keep the dates computed from them inside what Python counts: a year to make a
# first touch, ten years of losing.
MAX_SLA_HOURS = 8760
MAX_LOST_AFTER_DAYS = 3650


@dataclass(frozen=True)
class Stage:
    hubspot: str
    salesforce: str
    rank: int


@dataclass(frozen=True)
class RecycleRule:
    name: str
    to: str
    lead_status: tuple[str, ...] = ()
    lost_after_days: int | None = None


@dataclass(frozen=True)
class LifecycleSettings:
    path: Path
    stages: tuple[Stage, ...]
    signals: Mapping[str, str]  # signal name -> HubSpot stage value
    lead_status: Mapping[str, str]  # Lead Status -> HubSpot stage value
    link_mode: str
    recycle: tuple[RecycleRule, ...]
    handoff_stage: str
    sla_hours: float
    initial_status: str

    def stage(self, hubspot_value: Any) -> Stage | None:
        """The stage of a HubSpot value; None for `other`, blanks and values not listed."""
        return self._by_hubspot.get(str(hubspot_value)) if hubspot_value else None

    def stage_of_label(self, label: Any) -> Stage | None:
        """The stage of a Salesforce Lifecycle_Stage__c label (case and spaces ignored)."""
        return self._by_label.get(str(label).strip().casefold()) if label else None

    @cached_property  # asked for every person, every pass
    def _by_hubspot(self) -> dict[str, Stage]:
        return {stage.hubspot: stage for stage in self.stages}

    @cached_property
    def _by_label(self) -> dict[str, Stage]:
        return {stage.salesforce.casefold(): stage for stage in self.stages}


def load_lifecycle(folder: Path | None) -> LifecycleSettings:
    """`lifecycle.toml` from the mappings folder (else the installed default)."""
    path = mapping_path(folder, "lifecycle")
    report = Report(display(path))
    document = read_document(path, report)
    settings = None if document is None else _settings(path, document, report)
    if report.problems or settings is None:
        raise MappingError(report.problems)
    return settings


def _settings(path: Path, doc: dict[str, Any], report: Report) -> LifecycleSettings | None:
    for name in doc:
        if name not in SECTIONS:
            report.add(None, None, f"unknown section [{name}].{suggestion(name, SECTIONS, '[{}]')}")
    stages, values = _stages(doc.get("stages"), report)
    signals = _table(doc.get("signals"), "signals", report)
    handoff = _table(doc.get("handoff"), "handoff", report)
    found: dict[str, str | None] = dict.fromkeys(SIGNALS)
    if "signals" in doc:
        misspelt = _unknown(signals, (*SIGNALS, "link_mode", "lead_status"), "signals", report)
        found = {
            name: _stage_value(signals.get(name), "signals", name, values, report)
            for name in SIGNALS
            if name not in misspelt
        }
    elif not any(k not in SECTIONS and suggestion(k, ["signals"]) for k in doc):
        # One line for the missing table, not one per signal it would have named.
        report.add("signals", None, "missing: which stage does each signal imply?")
    lead_status = {
        str(k): v
        for k, raw in _table(signals.get("lead_status"), "signals.lead_status", report).items()
        if (v := _stage_value(raw, "signals.lead_status", k, values, report))
        and _plain(k, "signals.lead_status", None, report)
    }
    link_mode = signals.get("link_mode", "hybrid")
    if link_mode not in LINK_MODES:
        report.add(
            "signals",
            "link_mode",
            f'"{link_mode}" is not a link mode; use one of '
            f"{', '.join(LINK_MODES)}.{suggestion(str(link_mode), LINK_MODES)}",
        )
    recycle = _recycle(_table(doc.get("recycle"), "recycle", report), values, report)
    handoff_stage = _stage_value(
        handoff.get("stage", "marketingqualifiedlead"), "handoff", "stage", values, report
    )
    sla = handoff.get("sla_hours", 24)
    if isinstance(sla, bool) or not isinstance(sla, (int, float)) or sla <= 0:
        report.add("handoff", "sla_hours", f"expected a positive number of hours, got {sla!r}.")
    elif not sla <= MAX_SLA_HOURS:  # also NaN
        report.add(
            "handoff", "sla_hours", f"expected at most {MAX_SLA_HOURS} hours (a year), got {sla!r}."
        )
    initial = handoff.get("initial_status", "Open - Not Contacted")
    if not isinstance(initial, str) or not initial.strip():
        report.add("handoff", "initial_status", "expected the Lead Status new Leads start with.")
    else:
        _plain(initial, "handoff", "initial_status", report)
    _unknown(handoff, ("stage", "sla_hours", "initial_status"), "handoff", report)
    if report.problems:
        return None
    return LifecycleSettings(
        path,
        tuple(stages),
        {k: v for k, v in found.items() if v},
        lead_status,
        str(link_mode),
        recycle,
        str(handoff_stage),
        float(sla),
        str(initial),
    )


def _stages(raw: Any, report: Report) -> tuple[list[Stage], list[str]]:
    """The stages, and every HubSpot value listed (also those of stages with another
    problem, so that one mistake in a stage is not reported again where it is named)."""
    if not isinstance(raw, list) or not raw:
        report.add("stages", None, "expected one [[stages]] table per stage, lowest first.")
        return [], []
    stages: list[Stage] = []
    values: list[str] = []
    for index, item in enumerate(raw):
        where = f"stages.{index + 1}"
        if not isinstance(item, dict):
            report.add(where, None, "expected a table with hubspot and salesforce.")
            continue
        misspelt = _unknown(item, ("hubspot", "salesforce"), where, report)
        hubspot, salesforce = item.get("hubspot"), item.get("salesforce")
        for key, value in (("hubspot", hubspot), ("salesforce", salesforce)):
            if (not isinstance(value, str) or not value.strip()) and key not in misspelt:
                report.add(where, key, "expected the stage's name as text.")
            elif key == "hubspot" and isinstance(value, str) and not HUBSPOT_STAGE.fullmatch(value):
                report.add(
                    where,
                    key,
                    f"{shown(value)} is not a HubSpot stage's internal value: a default stage's "
                    f'lowercase name such as "lead", or a custom stage\'s numeric id '
                    f"(Settings > Properties > Lifecycle Stage).",
                )
            elif key == "salesforce" and isinstance(value, str):
                _plain(value, where, key, report)
        if isinstance(hubspot, str) and hubspot in values:
            report.add(where, "hubspot", f'"{hubspot}" is listed twice.')
        elif isinstance(hubspot, str):
            values.append(hubspot)
        if isinstance(salesforce, str) and any(
            s.salesforce.casefold() == salesforce.casefold() for s in stages
        ):
            # Lifecycle_Stage__c is read back by its label: two stages cannot share one.
            report.add(where, "salesforce", f'"{salesforce}" is listed twice.')
        elif isinstance(hubspot, str) and isinstance(salesforce, str):
            stages.append(Stage(hubspot, salesforce, len(stages)))
    return stages, values


def _recycle(raw: dict[str, Any], values: list[str], report: Report) -> tuple[RecycleRule, ...]:
    rules = []
    for name, body in raw.items():
        where = f"recycle.{name}"
        if not isinstance(body, dict):
            report.add(where, None, "expected a table with to and lead_status or lost_after_days.")
            continue
        misspelt = _unknown(body, ("to", "lead_status", "lost_after_days"), where, report)
        to = None if "to" in misspelt else _stage_value(body.get("to"), where, "to", values, report)
        statuses = body.get("lead_status", [])
        days = body.get("lost_after_days")
        if not isinstance(statuses, list) or not all(isinstance(s, str) for s in statuses):
            report.add(where, "lead_status", "expected a list of Lead Status values.")
            statuses = []
        statuses = [s for s in statuses if _plain(s, where, "lead_status", report)]
        if days is not None and (isinstance(days, bool) or not isinstance(days, int) or days < 0):
            report.add(where, "lost_after_days", f"expected a whole number of days, got {days!r}.")
            days = None
        elif days is not None and days > MAX_LOST_AFTER_DAYS:
            report.add(
                where,
                "lost_after_days",
                f"expected at most {MAX_LOST_AFTER_DAYS} days (ten years), got {days!r}.",
            )
            days = None
        if "lead_status" not in body and "lost_after_days" not in body:
            report.add(where, None, "give lead_status or lost_after_days: when does it apply?")
        elif body.get("lead_status") == [] and days is None:
            report.add(where, "lead_status", "expected at least one Lead Status value.")
        if to:
            rules.append(RecycleRule(name, to, tuple(statuses), days))
    return tuple(rules)


def _stage_value(raw: Any, section: str, key: str, values: list[str], report: Report) -> str | None:
    if raw is None:
        report.add(section, key, "missing: name a stage by its HubSpot value.")
        return None
    if not values:
        return None  # no usable [[stages]]: said once there, not again for every name
    if raw not in values:
        report.add(
            section, key, f'"{raw}" is not one of the [[stages]].{suggestion(str(raw), values)}'
        )
        return None
    return str(raw)


def _plain(value: str, section: str, key: str | None, report: Report) -> bool:
    """A Salesforce picklist value (a stage label, a Lead Status) is text on one line."""
    if has_control_characters(value):
        report.add(
            section,
            key,
            f"{shown(value)} holds a control character; write the Salesforce picklist value "
            f"as plain text.",
        )
        return False
    return True


def _table(raw: Any, section: str, report: Report) -> dict[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        report.add(section, None, f"expected a table [{section}].")
        return {}
    return raw


def _unknown(
    table: Mapping[str, Any], allowed: tuple[str, ...], section: str, report: Report
) -> set[str]:
    """Report unknown keys; the allowed keys they look like misspellings of."""
    misspelt: set[str] = set()
    for key in table:
        if key not in allowed:
            hint = suggestion(key, allowed)
            report.add(section, key, f"unknown key.{hint}")
            misspelt.update(a for a in allowed if hint == suggestion(key, [a]) and hint)
    return misspelt
