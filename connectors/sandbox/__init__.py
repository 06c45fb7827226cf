"""A seeded synthetic org across both emulators: what `syncd sandbox`, `syncd demo`, the tests
and the benchmarks run against.

Two halves. `plan.py` draws the org (`OrgPlan`) from `random.Random(seed)` as a stream of
small frozen records; `seeder.py` applies that stream to a HubSpot and a Salesforce emulator
through their Python seeding APIs. `Sandbox` (here) starts both emulators on one CA, seeds
them and describes them (`SandboxInfo`), and writes a syncd config pointing at them.
"""

from __future__ import annotations

import gc
import json
import random
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from connectors.sandbox.plan import (
    DEFAULT_ANCHOR,
    HUBSPOT_STAGES,
    HubSpotSide,
    OrgPlan,
    PlannedAccount,
    PlannedCampaign,
    PlannedCompany,
    PlannedForm,
    PlannedOpportunity,
    PlannedPerson,
    PlannedTouch,
    SalesforceSide,
    Step,
)
from connectors.sandbox.seeder import SYNCD_PROPERTIES, Seeder

if TYPE_CHECKING:
    from connectors.hubspot.emulator import HubSpotEmulator
    from connectors.salesforce.emulator import SalesforceEmulator

__all__ = [
    "DEFAULT_ANCHOR", "HUBSPOT_STAGES", "SYNCD_PROPERTIES", "HubSpotSide", "OrgPlan",
    "PlannedAccount", "PlannedCampaign", "PlannedCompany", "PlannedForm", "PlannedOpportunity",
    "PlannedPerson", "PlannedTouch", "SalesforceSide", "Sandbox", "SandboxInfo", "Seeder",
    "Step", "toml_section",
]

@dataclass(frozen=True)
class SandboxInfo:
    """Where a started sandbox listens and what it holds."""

    hubspot_url: str
    hubspot_token: str
    salesforce_url: str
    salesforce_token: str
    salesforce_api_version: str
    ca_path: Path
    counts: Mapping[str, int]


class Sandbox:
    """Both emulators, one CA, one seeded org: `start()`, use, `stop()`."""

    def __init__(self, *, scale: int = 1000, seed: int = 7, directory: Path | None = None,
                 hubspot_limits: str = "enterprise", salesforce_daily_limit: int = 1_000_000,
                 port_hubspot: int = 0, port_salesforce: int = 0,
                 anchor: datetime = DEFAULT_ANCHOR, touches_per_person: float = 10.0) -> None:
        if hubspot_limits not in ("enterprise", "unlimited"):
            raise ValueError(f"hubspot_limits must be 'enterprise' or 'unlimited', "
                             f"got {hubspot_limits!r}")
        self.plan = OrgPlan(scale=scale, seed=seed, anchor=anchor,
                            touches_per_person=touches_per_person)
        self.directory = directory
        self.hubspot_limits = hubspot_limits
        self.salesforce_daily_limit = salesforce_daily_limit
        self.port_hubspot = port_hubspot
        self.port_salesforce = port_salesforce
        self.hubspot: HubSpotEmulator | None = None
        self.salesforce: SalesforceEmulator | None = None

    @property
    def hubspot_token(self) -> str:
        """A private-app-shaped token derived from the seed: a sandbox restarted with the same
        seed accepts the config printed before (it serves loopback only, so no secret)."""
        rng = random.Random(f"syncd-sandbox-hubspot:{self.plan.seed}")
        return f"pat-na1-{uuid.UUID(int=rng.getrandbits(128), version=4)}"

    @property
    def salesforce_token(self) -> str:
        """A session-id-shaped token (`00D…!AQ…`) derived from the seed, as hubspot_token."""
        rng = random.Random(f"syncd-sandbox-salesforce:{self.plan.seed}")
        alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._"
        return "00D000000000001!AQ" + "".join(rng.choice(alphabet) for _ in range(96))

    def start(self) -> SandboxInfo:
        """Start both emulators on one CA (written under `directory`), seed them, describe them."""
        from connectors.hubspot.emulator import HubSpotEmulator, HubSpotLimits
        from connectors.loopback import ThrowawayCA
        from connectors.salesforce.emulator import SalesforceEmulator

        ca = ThrowawayCA(self.directory)
        unlimited = self.hubspot_limits == "unlimited"
        limits = HubSpotLimits.unlimited() if unlimited else HubSpotLimits()
        self.hubspot = HubSpotEmulator(access_token=self.hubspot_token, ca=ca,
                                       port=self.port_hubspot, limits=limits).start()
        self.salesforce = SalesforceEmulator(ca=ca, port=self.port_salesforce,
                                             access_token=self.salesforce_token,
                                             daily_limit=self.salesforce_daily_limit).start()
        counts = self.seed_into(self.hubspot, self.salesforce)
        return SandboxInfo(self.hubspot.url, self.hubspot.access_token, self.salesforce.url,
                           self.salesforce_token, self.salesforce.api_version, ca.ca_path, counts)

    def seed_into(self, hubspot: HubSpotEmulator, salesforce: SalesforceEmulator
                  ) -> dict[str, int]:
        """Seed already-running emulators; returns what was seeded, by kind."""
        seeder = Seeder(hubspot.portal, salesforce.org)
        # Held for the whole seeding: no request sees a half-seeded org, and one acquisition
        # is cheaper than one per record.
        with hubspot.server.app_lock, salesforce.server.app_lock, _collector_paused():
            seeder.install_properties()
            # One pass: each person's touches follow their records, so the plan is drawn
            # once and never held whole.
            for step in self.plan.steps():
                seeder.apply(step)
        return dict(sorted(seeder.counts.items()))

    def config_text(self, info: SandboxInfo, *, store_path: str = "syncd.db") -> str:
        """A complete syncd config (ARCHITECTURE section 4) pointing at this sandbox."""
        ca_bundle = str(info.ca_path.resolve())
        sections: dict[str, dict[str, Any]] = {
            "store": {"path": store_path},
            "hubspot": {"base_url": info.hubspot_url, "access_token": info.hubspot_token,
                        "ca_bundle": ca_bundle, "requests_per_10s": 150, "daily_budget": 0.5},
            "salesforce": {"instance_url": info.salesforce_url,
                           "api_version": info.salesforce_api_version, "auth": "token",
                           "access_token": info.salesforce_token, "ca_bundle": ca_bundle,
                           "daily_budget": 0.25, "bulk_threshold": 10000},
            "sync": {"schedule": "*/5 * * * *", "lookback": "10m"},
            "server": {"port": 9464},
        }
        header = (f"# syncd sandbox: scale {self.plan.scale}, seed {self.plan.seed}. "
                  "The tokens are valid only for this sandbox.\n")
        return header + "\n".join(toml_section(name, keys) for name, keys in sections.items())

    def stop(self) -> None:
        for emulator in (self.hubspot, self.salesforce):
            if emulator is not None:
                emulator.stop()
        self.hubspot = self.salesforce = None


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Seeding makes millions of long-lived containers and no garbage cycles: the cyclic
    collector would traverse all of them again and again (a share of the time that grows with
    the org), so it waits until the org is seeded."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def toml_section(name: str, keys: Mapping[str, Any]) -> str:
    """One TOML table. JSON string escapes are valid TOML basic-string escapes."""
    lines = [f"[{name}]"]
    lines.extend(f"{key} = {json.dumps(value, ensure_ascii=False)}" for key, value in keys.items())
    return "\n".join(lines) + "\n"
