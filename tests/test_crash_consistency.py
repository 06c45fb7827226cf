"""Crash consistency (issue 8, part 1; ARCHITECTURE section 5, "Every stage is idempotent").

The real CLI (`python -m syncd run --once`) runs as a subprocess against both emulators of a
seeded world; one emulator's kill hook SIGKILLs it right after request N has been applied and
before its answer leaves. The world then runs again until a pass finishes, and its end state
must equal that of an identically seeded world that was never interrupted: every record by its
natural key with the same values (`tests/org_state.py`), no record created twice, no update
lost, nothing left in the outbox.

A scenario is a backfill of a sandbox org, then incremental passes, each after a round of edits
in both systems (hand-offs, stage moves, new records, a won opportunity). `make test` kills a
two-pass scenario at five points (in the pull, after the push read its targets' stamps, in the
HubSpot push, in the Salesforce push, after the last request), and a backfill whose Salesforce
writes go by Bulk API 2.0 ingest jobs (a low `bulk_threshold`) at three points inside a job;
`make test-all` a three-pass one at 100 points drawn from every request the uninterrupted
scenario makes, with the seed printed (replay with `SYNCD_CRASH_SEED=<seed>`).

Clocks: the CLI stamps its passes with the real clock; the emulators stamp records with the
world's clock, which is set to the real time before every pass and every round of edits, so
what a pass writes falls inside the next pass's lookback just as it does against the real CRMs.
The state comparison ignores timestamps.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from connectors.loopback import Faults, LoopbackServer, ThrowawayCA
from tests.harness import World
from tests.org_state import (
    OrgState,
    cli_pass,
    org_state,
    outbox_counts,
    seeded_world,
    set_config,
)

REPO = Path(__file__).resolve().parent.parent
PASS_TIMEOUT = 120.0  # seconds; a pass of this scenario takes one or two
SLOW_KILL_POINTS = 100


@dataclass(frozen=True)
class KillPoint:
    """Kill the pass numbered `run` (0: the backfill) right after its `request`-th request
    (1-based) to the `system` emulator was applied."""

    run: int
    system: str
    request: int

    def __str__(self) -> str:
        return f"pass {self.run + 1}, {self.system} request {self.request}"


@dataclass
class Reference:
    """The uninterrupted scenario: its end state and, per pass, the endpoints each emulator
    answered, in order (what kill points are chosen from)."""

    state: OrgState
    endpoints: list[dict[str, list[str]]]
    outbox: dict[str, int]

    def kill_points(self) -> list[KillPoint]:
        return [
            KillPoint(run, system, number)
            for run, by_system in enumerate(self.endpoints)
            for system, names in sorted(by_system.items())
            for number in range(1, len(names) + 1)
        ]

    def first(self, run: int, system: str, endpoint_part: str, occurrence: int = 1) -> KillPoint:
        """The kill point right after the `occurrence`-th request whose endpoint contains
        `endpoint_part`."""
        seen = 0
        for number, name in enumerate(self.endpoints[run][system], start=1):
            if endpoint_part in name:
                seen += 1
                if seen == occurrence:
                    return KillPoint(run, system, number)
        raise AssertionError(f"pass {run + 1} made no {endpoint_part} request to {system}")


# -- the world and its passes -----------------------------------------------------------------


def killed_pass(world: World, kill: KillPoint) -> subprocess.CompletedProcess[str]:
    """`python -m syncd run --once` in a subprocess, SIGKILLed by the `kill.system` emulator's
    hook right after the `kill.request`-th request of this pass was applied."""
    world.clock.now = datetime.now(UTC)
    server = _server(world, kill.system)
    victim: dict[str, int] = {}
    server.faults = Faults(
        kill_after=len(server.log) + kill.request, on_kill=lambda: _kill_and_wait(victim["pid"])
    )
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "syncd", "run", "--once", "--config", str(world.config)],
            cwd=world.config.parent, env={**os.environ, "PYTHONPATH": str(REPO)},
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        # The child needs far longer to import than this line takes: the hook cannot fire first.
        victim["pid"] = process.pid
        out, err = process.communicate(timeout=PASS_TIMEOUT)
    finally:
        server.faults = Faults()
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


def _kill_and_wait(pid: int) -> None:
    """SIGKILL, then wait until the process is gone (a zombie), so that it cannot act on the
    answer this request is about to get."""
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return
        if stat.rsplit(")", 1)[1].split()[0] in ("Z", "X"):
            return
        time.sleep(0.001)


def _server(world: World, system: str) -> LoopbackServer:
    return world.hubspot.server if system == "hubspot" else world.salesforce.server


def finish(world: World, attempts: int = 3) -> list[int]:
    """Run passes until one finishes (exit 0); returns every exit code seen."""
    codes = []
    for _ in range(attempts):
        codes.append(cli_pass(world))
        if codes[-1] == 0:
            break
    return codes


# -- edits between passes (deterministic: the org is seeded alike) ----------------------------


def edit_round(world: World, round_: int) -> None:
    """Changes in both systems before incremental pass `round_` (1 or 2): a stage move and a
    title in HubSpot, a new MQL contact (a hand-off), a Lead's name and status, a won
    opportunity, a new Account with a website and a new Contact on it in Salesforce."""
    world.clock.now = datetime.now(UTC)
    portal, org = world.portal, world.org
    with world.hubspot.server.app_lock, world.salesforce.server.app_lock:
        early = [i for i in portal.ids("contacts")
                 if portal.properties("contacts", i).get("lifecyclestage") in ("subscriber", "lead")
                 and portal.properties("contacts", i).get("email")]
        portal.update("contacts", early[round_], {
            "lifecyclestage": "marketingqualifiedlead", "jobtitle": f"Head of Crash Tests {round_}",
        })
        portal.create("contacts", {
            "email": f"newcomer{round_}@crash.example", "firstname": "Nova", "lastname": "Crash",
            "lifecyclestage": "marketingqualifiedlead",
        })
        leads = sorted(r["Id"] for r in org.records("Lead")
                       if not r["IsConverted"] and r.get("Email"))
        org.update("Lead", leads[round_], {"FirstName": f"Renamed{round_}",
                                           "Status": "Working - Contacted"})
        open_deals = sorted(r["Id"] for r in org.records("Opportunity") if not r["IsClosed"])
        org.update("Opportunity", open_deals[round_], {"StageName": "Closed Won"})
        account = org.insert("Account", {"Name": f"Crashworthy {round_}",
                                         "Website": f"https://www.crashworthy{round_}.example"})
        org.insert("Contact", {"LastName": "Durable", "FirstName": f"Dana{round_}",
                               "Email": f"dana{round_}@crashworthy{round_}.example",
                               "AccountId": account})


def run_scenario(world: World, passes: int, kill: KillPoint | None = None) -> list[int]:
    """The scenario's passes, the one named by `kill` killed and then finished again; returns
    the exit codes of the passes after the kill."""
    codes: list[int] = []
    for run in range(passes):
        if run:
            edit_round(world, run)
        if kill is not None and kill.run == run:
            done = killed_pass(world, kill)
            assert done.returncode == -signal.SIGKILL, (
                f"{kill}: the pass was not killed (exit {done.returncode}); stderr:\n"
                f"{done.stderr[-2000:]}"
            )
            codes += finish(world)
        else:
            assert cli_pass(world) == 0, f"pass {run + 1} did not finish"
    return codes


def reference_of(directory: Path, ca: ThrowawayCA, passes: int,
                 bulk_threshold: int | None = None) -> Reference:
    with seeded_world(directory, ca) as world:
        if bulk_threshold is not None:
            set_config(world, "salesforce", bulk_threshold=bulk_threshold)
        endpoints = []
        for run in range(passes):
            if run:
                edit_round(world, run)
            before = {s: len(_server(world, s).log) for s in ("hubspot", "salesforce")}
            assert cli_pass(world) == 0
            endpoints.append({
                s: [entry.endpoint for entry in _server(world, s).log[before[s]:]]
                for s in ("hubspot", "salesforce")
            })
        return Reference(org_state(world.hubspot, world.salesforce), endpoints,
                         outbox_counts(world))


def assert_same_end_state(world: World, reference: Reference, kill: KillPoint,
                          codes: list[int], replay: str = "") -> None:
    where = f"{kill} {replay}".rstrip()
    assert codes and codes[-1] == 0, f"{where}: the passes after the kill exited {codes}"
    state = org_state(world.hubspot, world.salesforce)
    assert state.syncd_key_duplicates() == {}, f"{where}: a record was created twice"
    assert state.duplicates() == reference.state.duplicates(), f"{where}: duplicate records"
    differences = state.differences(reference.state)
    assert not differences, f"{where}: end states differ:\n" + "\n".join(differences)
    assert outbox_counts(world) == reference.outbox, f"{where}: the outbox was left different"


# -- make test: five kill points --------------------------------------------------------------


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory, loopback_ca: ThrowawayCA) -> Reference:
    return reference_of(tmp_path_factory.mktemp("reference"), loopback_ca, passes=2)


def stamp_read(ref: Reference) -> KillPoint:
    """Right after the stamp read (a Collections retrieve) that precedes the first Salesforce
    write: the push has read its targets' modification stamps and written nothing yet."""
    write = ref.first(0, "salesforce", "PATCH ")
    before = ref.endpoints[0]["salesforce"][write.request - 2]
    assert before.startswith("POST ") and before.endswith("/composite/sobjects/{sobject}"), (
        f"the first write follows {before}, not a stamp read"
    )
    return KillPoint(0, "salesforce", write.request - 1)


STAGES: dict[str, Callable[[Reference], KillPoint]] = {
    # The second page of HubSpot contacts: the first page and its cursor are committed.
    "pull": lambda ref: ref.first(0, "hubspot", "GET /crm/v3/objects/", occurrence=2),
    "stamp read": stamp_read,
    "hubspot push": lambda ref: ref.first(0, "hubspot", "/batch/upsert"),
    "salesforce push": lambda ref: ref.first(0, "salesforce", "PATCH "),
    # The deals' associations close every pass: the last request of the incremental pass.
    "last request": lambda ref: KillPoint(1, "hubspot", len(ref.endpoints[1]["hubspot"])),
}


@pytest.mark.parametrize("stage", list(STAGES))
def test_a_pass_killed_then_run_again_ends_as_an_uninterrupted_pass(
    stage: str, reference: Reference, tmp_path: Path, loopback_ca: ThrowawayCA
) -> None:
    kill = STAGES[stage](reference)
    with seeded_world(tmp_path / "world", loopback_ca) as world:
        codes = run_scenario(world, len(reference.endpoints), kill)
        assert_same_end_state(world, reference, kill, codes)


# A backfill whose Salesforce writes above a low `bulk_threshold` go by Bulk API 2.0 ingest jobs,
# killed inside one: the job created and empty, its rows uploaded, or closed (the emulator
# applies the rows then) with no result read.
BULK_THRESHOLD = 5
BULK_STAGES = {
    "ingest job created": "POST /services/data/v{version}/jobs/ingest",
    "ingest rows uploaded": "PUT /services/data/v{version}/jobs/ingest/",
    "ingest job closed": "PATCH /services/data/v{version}/jobs/ingest/",
}


@pytest.fixture(scope="module")
def bulk_reference(tmp_path_factory: pytest.TempPathFactory,
                   loopback_ca: ThrowawayCA) -> Reference:
    return reference_of(tmp_path_factory.mktemp("bulk"), loopback_ca, passes=1,
                        bulk_threshold=BULK_THRESHOLD)


@pytest.mark.parametrize("stage", list(BULK_STAGES))
def test_a_pass_killed_inside_an_ingest_job_then_run_again_ends_as_an_uninterrupted_pass(
    stage: str, bulk_reference: Reference, tmp_path: Path, loopback_ca: ThrowawayCA
) -> None:
    kill = bulk_reference.first(0, "salesforce", BULK_STAGES[stage])
    with seeded_world(tmp_path / "world", loopback_ca) as world:
        set_config(world, "salesforce", bulk_threshold=BULK_THRESHOLD)
        codes = run_scenario(world, 1, kill)
        assert_same_end_state(world, bulk_reference, kill, codes)


# -- make test-all: a hundred kill points drawn at random -------------------------------------


@pytest.fixture(scope="module")
def random_kill_points(
    tmp_path_factory: pytest.TempPathFactory, loopback_ca: ThrowawayCA,
    pytestconfig: pytest.Config,
) -> tuple[Reference, list[KillPoint], int]:
    """The three-pass scenario's reference, 100 of its requests drawn at random, and the seed
    they were drawn with (printed, and named by every failure)."""
    reference = reference_of(tmp_path_factory.mktemp("reference3"), loopback_ca, passes=3)
    seed = int(os.environ.get("SYNCD_CRASH_SEED") or random.SystemRandom().randrange(10**6))
    capture: Any = pytestconfig.pluginmanager.get_plugin("capturemanager")
    with capture.global_and_fixture_disabled():  # printed past pytest's output capture
        print(f"\ncrash consistency: SYNCD_CRASH_SEED={seed}", flush=True)
    candidates = reference.kill_points()
    assert len(candidates) >= SLOW_KILL_POINTS, f"only {len(candidates)} requests to kill after"
    chosen = random.Random(seed).sample(candidates, SLOW_KILL_POINTS)
    return reference, sorted(chosen, key=lambda k: (k.run, k.system, k.request)), seed


@pytest.mark.slow
@pytest.mark.parametrize("draw", range(SLOW_KILL_POINTS))
def test_a_pass_killed_at_a_random_request_then_run_again_ends_as_an_uninterrupted_run(
    draw: int, random_kill_points: tuple[Reference, list[KillPoint], int], tmp_path: Path,
    loopback_ca: ThrowawayCA,
) -> None:
    reference, chosen, seed = random_kill_points
    kill = chosen[draw]
    with seeded_world(tmp_path / "world", loopback_ca) as world:
        codes = run_scenario(world, 3, kill)
        assert_same_end_state(world, reference, kill, codes, replay=f"SYNCD_CRASH_SEED={seed}")


def test_the_scenario_kills_a_pass_that_wrote_to_both_systems(reference: Reference) -> None:
    """The kill points above cover what they claim: the backfill writes to both CRMs."""
    backfill: dict[str, Any] = reference.endpoints[0]
    assert any("/batch/upsert" in name for name in backfill["hubspot"])
    assert any(name.startswith("PATCH ") for name in backfill["salesforce"])
    assert reference.outbox == {}
