"""API faults (issue 8, part 2): a pass through 429/503 storms, slow answers, dropped
connections and expired Salesforce sessions completes and ends in the state a fault-free pass
reaches; a daily allowance spent mid-run stops the pass with exit 3 and the next pass, the
allowance raised, resumes from the kept cursors and outbox and converges.

The storms run passes in this process with the real connectors, built through their entry
points as `syncd run` builds them, with one difference: their `sleep` is injected (both
factories take one), so a retry that asks for HubSpot's 10 s TEN_SECONDLY pause is recorded
and the test moves on after 5 ms. The daily-limit passes go through the CLI itself
(`syncd.cli.run`), which is where exit 3 comes from.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Hashable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from connectors.hubspot.emulator import HubSpotLimits
from connectors.loopback import Faults, LoggedRequest, Request, ThrowawayCA
from syncd import registry
from syncd.connector import Connector
from syncd.pipeline import RunOptions, RunReport, run_once
from tests.harness import World
from tests.org_state import (
    OrgState,
    cli_pass,
    org_state,
    outbox_counts,
    seeded_world,
    set_config,
)

# The in-process passes run on the harness clock, well after the sandbox's anchor, so that
# every seeded record (some closed opportunities are stamped at their close date, after the
# anchor) is older than the first pass.
CLOCK_START = datetime(2026, 9, 1, 12, 0, tzinfo=UTC)
SCALE = 100  # people: a small org makes as many kinds of requests as a large one
MOST_FAULTS_IN_A_ROW = 3  # below tenacity's 6 attempts: the storm tests retrying, not luck
TOKEN = "POST /services/oauth2/token"
CLIENT = {"client_id": "syncd-emulator-client", "client_secret": "syncd-emulator-secret"}


class Pauses:
    """The `sleep` handed to the connectors: records every pause asked for, waits 5 ms."""

    def __init__(self) -> None:
        self.asked: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.asked.append(seconds)
        time.sleep(min(seconds, 0.005))


class SparedAfter:
    """`Faults.exempt`: a request seen `limit` times already (its retries) is spared, so that
    no call can fail all of tenacity's attempts by chance."""

    def __init__(self, limit: int = MOST_FAULTS_IN_A_ROW) -> None:
        self.limit = limit
        self.seen: Counter[Hashable] = Counter()

    def __call__(self, request: Request) -> bool:
        query = tuple(sorted((k, tuple(v)) for k, v in request.query.items()))
        key = (request.method, request.path, query, request.body)
        self.seen[key] += 1
        return self.seen[key] > self.limit


def connectors_sleeping_with(world: World, sleep: Callable[[float], None]) -> dict[str, Any]:
    """Both connectors as `syncd.cli._connectors` builds them (entry points, the mapping
    files' fields), with `sleep` injected."""
    fields: dict[str, dict[str, list[str]]] = {"hubspot": {}, "salesforce": {}}
    for mapping in world.mappings.all():
        fields["hubspot"].setdefault(mapping.hubspot_object, []).extend(
            mapping.hubspot_properties()
        )
        for sobject in mapping.salesforce_objects:
            fields["salesforce"].setdefault(sobject, []).extend(mapping.salesforce_fields(sobject))
    return {
        name: registry.load(registry.CONNECTORS, name)(
            world.settings, fields=fields[name], sleep=sleep
        )
        for name in ("hubspot", "salesforce")
    }


def sync(world: World, pauses: Pauses) -> RunReport:
    """One pass five minutes after the last, as `World.sync` makes it, sleeping with `pauses`."""
    world.clock.advance(minutes=5)
    store = world.store()
    connectors: dict[str, Connector] = connectors_sleeping_with(world, pauses)
    try:
        report = run_once(
            store, connectors, clock=world.clock,
            lookback=timedelta(seconds=world.settings.sync.lookback_seconds),
            budgets={"hubspot": 1.0, "salesforce": 1.0}, definitions=world.definitions,
            options=RunOptions(),
        )
    finally:
        for connector in connectors.values():
            connector.close()
        store.close()
    return report


def injected(world: World) -> int:
    """Requests the emulators answered with an injected fault or dropped."""
    return sum(w.server.counts[name] for w in (world.hubspot, world.salesforce)
               for name in ("(injected)", "(dropped)"))


def assert_same_state(world: World, reference: OrgState) -> None:
    state = org_state(world.hubspot, world.salesforce)
    assert state.syncd_key_duplicates() == {}
    differences = state.differences(reference)
    assert not differences, "end states differ:\n" + "\n".join(differences)


@pytest.fixture(scope="module")
def fault_free(tmp_path_factory: pytest.TempPathFactory, loopback_ca: ThrowawayCA) -> OrgState:
    """The end state of one fault-free in-process pass over the sandbox org."""
    with seeded_world(tmp_path_factory.mktemp("fault-free"), loopback_ca, SCALE) as world:
        world.clock.now = CLOCK_START
        report = sync(world, Pauses())
        assert report.status == "ok", report.error
        return org_state(world.hubspot, world.salesforce)


@pytest.fixture
def world(tmp_path: Path, loopback_ca: ThrowawayCA) -> Any:
    with seeded_world(tmp_path / "world", loopback_ca, SCALE) as seeded:
        seeded.clock.now = CLOCK_START
        yield seeded


def faults_on_both(world: World, **settings: Any) -> None:
    for seed, server in enumerate((world.hubspot.server, world.salesforce.server), start=1):
        server.faults = Faults(seed=seed, exempt=SparedAfter(), **settings)


# -- storms -----------------------------------------------------------------------------------


def test_a_pass_through_thirty_percent_429_and_503_answers_completes_and_converges(
    world: World, fault_free: OrgState
) -> None:
    faults_on_both(world, error_rate=0.3, error_statuses=(429, 503))
    pauses = Pauses()
    report = sync(world, pauses)
    assert report.status == "ok", report.error
    answered = sum(w.server.calls() for w in (world.hubspot, world.salesforce))
    assert 0.2 * answered <= injected(world) <= 0.4 * answered
    assert sum(u.retries for u in report.usage) >= injected(world)
    # HubSpot's TEN_SECONDLY_ROLLING 429 carries no Retry-After: the connector waits 10 s.
    assert 10.0 in pauses.asked
    assert_same_state(world, fault_free)
    faults_on_both(world)
    world.reset_counts()
    assert sync(world, pauses).status == "ok"
    assert world.writes() == 0, "the pass through the storm left something unwritten"


def test_a_pass_with_slow_answers_completes_and_converges(
    world: World, fault_free: OrgState
) -> None:
    faults_on_both(world, latency=0.05, latency_rate=0.3)
    report = sync(world, Pauses())
    assert report.status == "ok", report.error
    answered = sum(w.server.calls() for w in (world.hubspot, world.salesforce))
    delayed = sum(w.server.delayed for w in (world.hubspot, world.salesforce))
    assert 0.2 * answered <= delayed <= 0.4 * answered, "the answers were not slowed"
    assert_same_state(world, fault_free)


def test_a_pass_through_dropped_connections_completes_and_converges(
    world: World, fault_free: OrgState
) -> None:
    faults_on_both(world, drop_rate=0.1)
    report = sync(world, Pauses())
    assert report.status == "ok", report.error
    assert injected(world) > 0
    assert_same_state(world, fault_free)


def test_a_pass_through_every_fault_at_once_completes_and_converges(
    world: World, fault_free: OrgState
) -> None:
    set_config(world, "salesforce", auth="client_credentials", **CLIENT)
    faults_on_both(world, error_rate=0.3, error_statuses=(429, 503), latency=0.05,
                   latency_rate=0.1, drop_rate=0.1)
    expire_salesforce_sessions_after(world, 4, 12)
    report = sync(world, Pauses())
    assert report.status == "ok", report.error
    assert_same_state(world, fault_free)


# -- expired Salesforce sessions --------------------------------------------------------------


def expire_salesforce_sessions_after(world: World, *requests: int) -> None:
    """Expire every Salesforce session right after each of these requests (numbered from
    now, 1-based) has been answered: the kill hook, used as a clock of requests."""
    faults = world.salesforce.server.faults
    base = len(world.salesforce.server.log)
    pending = sorted(base + n for n in requests)

    def expire() -> None:
        world.salesforce.expire_tokens()
        pending.pop(0)
        faults.kill_after = pending[0] if pending else None

    faults.kill_after, faults.on_kill = pending[0], expire


def statuses(log: list[LoggedRequest], endpoint: str) -> list[int]:
    return [entry.status for entry in log if entry.endpoint == endpoint]


def test_sessions_expiring_mid_pull_and_mid_push_are_renewed_and_the_pass_converges(
    world: World, fault_free: OrgState
) -> None:
    set_config(world, "salesforce", auth="client_credentials", **CLIENT)
    # Request 1 is the token; 2-11 read the ten streams; 12 and later write.
    expire_salesforce_sessions_after(world, 5, 12)
    report = sync(world, Pauses())
    assert report.status == "ok", report.error
    log = world.salesforce.server.log
    assert statuses(log, TOKEN) == [200, 200, 200]
    assert sum(1 for entry in log if entry.status == 401) == 2
    assert_same_state(world, fault_free)


def test_a_session_expired_between_passes_is_renewed_by_the_next_pass(
    world: World, fault_free: OrgState
) -> None:
    set_config(world, "salesforce", auth="client_credentials", **CLIENT)
    assert sync(world, Pauses()).status == "ok"
    world.salesforce.expire_tokens()
    world.org.update("Lead", sorted(r["Id"] for r in world.org.records("Lead")
                                    if not r["IsConverted"])[0], {"Title": "Renewed"})
    report = sync(world, Pauses())
    assert report.status == "ok", report.error
    assert statuses(world.salesforce.server.log, TOKEN) == [200, 200]


def test_an_expired_fixed_token_stops_the_pass_with_exit_3(world: World) -> None:
    world.salesforce.expire_tokens()
    report = sync(world, Pauses())
    assert (report.status, report.exit_code) == ("stopped", 3)
    assert "expired or invalid" in (report.error or "")


# -- daily allowance spent mid-run ------------------------------------------------------------


@pytest.fixture(scope="module")
def cli_fault_free(tmp_path_factory: pytest.TempPathFactory, loopback_ca: ThrowawayCA) -> Any:
    """One fault-free pass through the CLI: its end state and the requests it made."""
    with seeded_world(tmp_path_factory.mktemp("cli-fault-free"), loopback_ca, SCALE) as world:
        assert cli_pass(world) == 0
        return org_state(world.hubspot, world.salesforce), {
            "hubspot": [e.endpoint for e in world.hubspot.server.log],
            "salesforce": [e.endpoint for e in world.salesforce.server.log],
        }


def cursors_kept(world: World) -> int:
    store = world.store()
    try:
        return len(store.cursors())
    finally:
        store.close()


@pytest.mark.parametrize("where", ["pull", "push"])
def test_hubspot_daily_limit_spent_mid_run_stops_with_exit_3_and_the_next_run_resumes(
    where: str, tmp_path: Path, loopback_ca: ThrowawayCA, cli_fault_free: Any
) -> None:
    reference, requests = cli_fault_free
    hubspot = requests["hubspot"]
    reads = [i for i, name in enumerate(hubspot) if name == "GET /crm/v3/objects/{object_type}"]
    writes = [i for i, name in enumerate(hubspot) if name.startswith("POST /crm/v3/objects/")]
    # The portal allows every request before the second CRM page read (or the second batch
    # written) and refuses that one with a DAILY 429: mid-stream, where no checkpoint of
    # syncd's own budget stands between the two.
    allowed = reads[1] if where == "pull" else writes[1]
    with seeded_world(tmp_path / "world", loopback_ca, scale=SCALE) as world:
        set_config(world, "hubspot", daily_budget=1.0)
        world.hubspot.limits = HubSpotLimits(per_10s=10_000, daily=allowed, search_per_second=100)
        assert cli_pass(world) == 3
        refused = [e.number for e in world.hubspot.server.log if e.status == 429]
        assert refused == [allowed + 1], "one DAILY 429, not retried"
        kept = cursors_kept(world), outbox_counts(world).get("pending", 0)
        assert kept[0] > 0, "the cursors of the pages read are kept"
        if where == "push":
            assert kept[1] > 0, "the rows not pushed are kept"
        world.hubspot.limits = HubSpotLimits.unlimited()
        world.reset_counts()
        assert cli_pass(world) == 0
        assert outbox_counts(world) == {}
        assert_same_state(world, reference)


def test_salesforce_request_limit_spent_mid_push_stops_with_exit_3_and_the_next_run_resumes(
    tmp_path: Path, loopback_ca: ThrowawayCA, cli_fault_free: Any
) -> None:
    reference, requests = cli_fault_free
    writes = [i for i, name in enumerate(requests["salesforce"]) if name.startswith("PATCH ")]
    assert len(writes) >= 2, "the reference pass writes to Salesforce in several calls"
    with seeded_world(tmp_path / "world", loopback_ca, scale=SCALE) as world:
        set_config(world, "salesforce", daily_budget=1.0)
        # Everything up to the first write is allowed: the second write is refused.
        world.salesforce.daily_limit = writes[0] + 1
        assert cli_pass(world) == 3
        log = world.salesforce.server.log
        assert [e.status for e in log if e.status >= 400] == [403]
        assert outbox_counts(world).get("pending", 0) > 0, "the unpushed rows are kept"
        world.salesforce.daily_limit = 100_000
        world.reset_counts()
        assert cli_pass(world) == 0
        assert world.salesforce.calls("PATCH ") <= len(writes)
        assert outbox_counts(world) == {}
        assert_same_state(world, reference)


def test_a_pass_stopped_mid_push_still_writes_campaign_revenue_in_the_next_pass(
    tmp_path: Path, loopback_ca: ThrowawayCA, cli_fault_free: Any
) -> None:
    reference, requests = cli_fault_free
    writes = [i for i, name in enumerate(requests["hubspot"])
              if name.startswith("POST /crm/v3/objects/")]
    with seeded_world(tmp_path / "world", loopback_ca, scale=SCALE) as world:
        set_config(world, "hubspot", daily_budget=1.0)
        world.hubspot.limits = HubSpotLimits(per_10s=10_000, daily=writes[0] + 1,
                                             search_per_second=100)
        assert cli_pass(world) == 3
        world.hubspot.limits = HubSpotLimits.unlimited()
        assert cli_pass(world) == 0
        revenue = {
            name: [r.get("Attributed_Revenue__c") for r in held]
            for (_, name), held in org_state(world.hubspot, world.salesforce)
            .salesforce["Campaign"].items()
        }
        expected = {name: [r.get("Attributed_Revenue__c") for r in held]
                    for (_, name), held in reference.salesforce["Campaign"].items()}
        assert any(v != [None] for v in expected.values()), "the reference writes revenue"
        assert revenue == expected
