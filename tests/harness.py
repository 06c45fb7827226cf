"""End-to-end harness: both emulators, a config pointing at them, and passes of syncd run the
way `syncd run --once` runs them (the real connectors through their entry points, the real
client libraries, the store on disk). Tests seed the emulators, run passes and assert on the
state of the emulators and the store."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from connectors.hubspot.emulator import HubSpotEmulator, HubSpotLimits
from connectors.loopback import ThrowawayCA
from connectors.salesforce.emulator import SalesforceEmulator
from syncd.cli import _connectors
from syncd.config import Settings, load_settings
from syncd.definitions import Definitions, load_definitions
from syncd.pipeline import RunOptions, RunReport, run_once
from syncd.store import Store

SALESFORCE_TOKEN = "00D000000000001!AQharness.token"
SYNCD_PROPERTIES = {
    "contacts": ["syncd_id", "syncd_attributed_revenue"],
    "companies": ["syncd_id"],
    "deals": ["syncd_id", "syncd_first_touch_campaign", "syncd_last_touch_campaign"],
}


@dataclass
class Clock:
    """The time both emulators stamp records with, and the pass start times; tests move it."""

    now: datetime = field(default_factory=lambda: datetime(2026, 6, 1, 12, 0, tzinfo=UTC))

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


@dataclass
class World:
    hubspot: HubSpotEmulator
    salesforce: SalesforceEmulator
    clock: Clock
    config: Path
    settings: Settings
    definitions: Definitions
    reports: list[RunReport] = field(default_factory=list)

    @property
    def mappings(self) -> Any:
        return self.definitions.mappings

    @property
    def portal(self) -> Any:
        return self.hubspot.portal

    @property
    def org(self) -> Any:
        return self.salesforce.org

    def store(self) -> Store:
        return Store(self.settings.store.path)

    def sync(self, *, dry_run: bool = False, advance_minutes: float = 5) -> RunReport:
        """One pass, as `syncd run --once` makes it, a few minutes after the last."""
        self.clock.advance(minutes=advance_minutes)
        store = self.store()
        connectors = _connectors(self.settings, self.definitions.mappings)
        try:
            report = run_once(
                store, connectors, clock=self.clock,
                lookback=timedelta(seconds=self.settings.sync.lookback_seconds),
                budgets={"hubspot": 1.0, "salesforce": 1.0}, definitions=self.definitions,
                options=RunOptions(kind="dry-run" if dry_run else "once", dry_run=dry_run),
            )
        finally:
            for connector in connectors.values():
                connector.close()
            store.close()
        self.reports.append(report)
        assert report.status in ("ok", "rejected"), report.error
        return report

    def writes(self) -> int:
        """Write calls both emulators have answered since they were last reset."""
        hubspot = sum(n for name, n in self.hubspot.counts.items()
                      if name.startswith(("POST /crm/v3/objects/{object_type}/batch/",
                                          "POST /crm/v4/", "PATCH ", "PUT ", "DELETE "))
                      and "batch/read" not in name)
        salesforce = sum(n for name, n in self.salesforce.counts.items()
                         if name.startswith(("PATCH ", "POST /services/data/v{version}/composite",
                                             "PUT ", "DELETE ")))
        return hubspot + salesforce

    def reset_counts(self) -> None:
        self.hubspot.server.reset_counts()
        self.salesforce.server.reset_counts()


def make_world(tmp_path: Path, ca: ThrowawayCA, mappings_folder: Path | None = None,
               extra_config: str = "", salesforce_config: str = "") -> Iterator[World]:
    """`extra_config` goes at the end (after `[sync]`), `salesforce_config` in `[salesforce]`."""
    clock = Clock()
    hubspot = HubSpotEmulator(ca=ca, clock=clock, limits=HubSpotLimits.unlimited()).start()
    salesforce = SalesforceEmulator(ca=ca, clock=clock, access_token=SALESFORCE_TOKEN).start()
    for object_type, names in SYNCD_PROPERTIES.items():
        for name in names:
            kind = "number" if name == "syncd_attributed_revenue" else "string"
            hubspot.portal.add_property(object_type, name, type=kind,
                                        field_type="number" if kind == "number" else "text",
                                        has_unique_value=name == "syncd_id")
    config = tmp_path / "config.toml"
    config.write_text(f"""
[store]
path = "syncd.db"
[hubspot]
base_url = "{hubspot.url}"
access_token = "{hubspot.access_token}"
ca_bundle = "{ca.ca_path}"
requests_per_10s = 1000
[salesforce]
instance_url = "{salesforce.url}"
access_token = "{SALESFORCE_TOKEN}"
ca_bundle = "{ca.ca_path}"
{salesforce_config}
[sync]
lookback = "10m"
{f'mappings = "{mappings_folder}"' if mappings_folder else ""}
{extra_config}
""", encoding="utf-8")
    settings = load_settings(config, environ={})
    world = World(hubspot, salesforce, clock, config, settings,
                  load_definitions(settings.sync.mappings))
    try:
        yield world
    finally:
        hubspot.stop()
        salesforce.stop()
