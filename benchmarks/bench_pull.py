"""The pull stage at scale: API calls against the minimum, wall time, rows/s and peak RSS.

Issue 3's "Must show" for `benchmarks/`. The emulators run in this process (a seeded
`connectors.sandbox.Sandbox`, served from threads); syncd runs in a child process of its own,
so the peak RSS measured (the child's own `VmHWM`, which it logs as it ends) is syncd's alone.
The child is this module again in `--pull-pass` mode: syncd's own `run_once` wired exactly as
`syncd run --once` wires it (settings, mapping-driven field lists, both connectors found by
entry point, JSON log lines), but with no definitions, so that the pass ends after the pull
stage and every figure belongs to the pull.

Per scale, against one org:

1. a backfill (empty store; the HubSpot emulator's limits off, syncd's pacer at its maximum);
2. a run with nothing changed (one call per stream read, one per form for submissions, no row
   written);
3. an incremental run after 1% of HubSpot contacts, Salesforce Leads and Contacts changed;
4. a backfill into a fresh store with the HubSpot emulator limited like an Enterprise portal
   (190 requests per 10 s, 5 searches/s) and `requests_per_10s = 190`: the 429s it saw and the
   share of the allowance it used over the HubSpot part of the pull.

    python -m benchmarks.bench_pull --scale 10000 --scale 100000

The lookback is 1s in these configs (the default 10m would make each run re-read what the
previous one, seconds earlier, already read: the runs here follow each other immediately).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import sqlite3
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from connectors.loopback import LoggedRequest, LoopbackServer
from connectors.sandbox import Sandbox, SandboxInfo, toml_section

ROOT = Path(__file__).resolve().parent.parent
HUBSPOT_LIST_PAGE = 100
HUBSPOT_SEARCH_PAGE = 200
HUBSPOT_ASSOCIATION_BATCH = 1000
HUBSPOT_SUBMISSIONS_PAGE = 50
HUBSPOT_EVENTS_PAGE = 1000
SALESFORCE_REST_PAGE = 2000
SALESFORCE_BULK_PAGE = 10_000  # connectors/salesforce/connector.py BULK_PAGE_SIZE
ENTERPRISE_PER_10S = 190
ROLLING_WINDOW = 10.0  # seconds HubSpot's burst limit looks back
UNPACED_PER_10S = 1000  # the largest `requests_per_10s` syncd's config accepts
CALLS_GOAL = 0.05  # within 5% of the minimum
RSS_GOAL_MB = 300
SHARE_GOAL = 0.90
# What the HubSpot connector reads per CRM object besides the object itself (crm.py).
ASSOCIATED = {"contacts": 1, "companies": 0, "deals": 2}
PERSON_OBJECTS = ("Lead", "Contact")


# -- the machine and the commit, for every table --------------------------------------------


def machine() -> str:
    """What a figure was measured on: CPUs, CPU model, memory, Python, date, commit, and the
    load average (other work on the machine slows every figure: the load says how much)."""
    load = ", ".join(f"{n:.1f}" for n in os.getloadavg())
    return (f"{os.cpu_count()} CPUs (nproc), {cpu_model()}, {memory_gb():.0f} GB RAM, "
            f"load average {load} when the table was written, "
            f"Python {platform.python_version()} ({platform.system()} {platform.machine()}), "
            f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, commit {git_commit()}")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def memory_gb() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    return 0.0


def git_commit() -> str:
    """HEAD, and whether tracked files differ from it: not counting `docs/benchmarks.md`, which
    `run_all` itself rewrites after each benchmark."""
    try:
        found = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, text=True,
                               capture_output=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--",
                                ".", ":(exclude)docs/benchmarks.md"],
                               cwd=ROOT, text=True, capture_output=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{found} + uncommitted changes" if dirty else found


# -- one syncd process ----------------------------------------------------------------------


@dataclass(frozen=True)
class StreamFigures:
    """One `event=pull` log line."""

    system: str
    stream: str
    pages: int
    rows: int
    changed: int
    calls: int
    took: float


@dataclass
class Served:
    """What one emulator answered during one syncd process."""

    requests: int = 0
    throttled: int = 0  # 429 answers
    busy_seconds: float = 0.0  # first to last request


@dataclass
class Pass:
    """One syncd process: its exit, wall time, peak RSS, log events and what was served."""

    label: str
    exit_code: int
    seconds: float
    peak_rss_mb: float
    cpu_seconds: float  # the child's own CPU time (user + system): what other load leaves be
    events: list[dict[str, Any]]
    served: dict[str, Served] = field(default_factory=dict)
    usage: dict[str, dict[str, int]] = field(default_factory=dict)  # the store's api_usage

    def of(self, name: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e.get("event") == name]

    @property
    def streams(self) -> list[StreamFigures]:
        return [StreamFigures(e["system"], e["stream"], int(e["pages"]), int(e["rows"]),
                              int(e["changed"]), int(e["calls"]), seconds_of(e["took"]))
                for e in self.of("pull")]

    @property
    def summary(self) -> dict[str, Any]:
        runs = self.of("run")
        return runs[-1] if runs else {}

    def pull_calls(self, system: str) -> int:
        return sum(s.calls for s in self.streams if s.system == system)

    def pull_seconds(self, system: str | None = None) -> float:
        """One system's pull time, or the stage's: the wall time during which any of its
        streams was being read. Streams overlap (a connector's activity streams are read
        beside the next connector's pull and the reconcile), so their times do not add up."""
        return covered(self.intervals("pull", system))

    def intervals(self, name: str, system: str | None = None) -> list[tuple[float, float]]:
        """(start, end) in seconds of the events `name` (`pull`: streams; `stage`: the stages
        `bench_pipeline` times) of this system, from each line's time and its `took`."""
        return [(end - seconds_of(e["took"]), end)
                for e in self.of(name) if system in (None, e.get("system"))
                for end in (_stamp(e["ts"]),)]

    def pull_rows(self) -> int:
        return sum(s.rows for s in self.streams)

    def pull_changed(self) -> int:
        return sum(s.changed for s in self.streams)


def seconds_of(text: Any) -> float:
    return float(str(text).rstrip("s"))


def _stamp(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def covered(intervals: Iterable[tuple[float, float]]) -> float:
    """The time some interval covers (overlaps counted once)."""
    total, reach = 0.0, float("-inf")
    for start, end in sorted(intervals):
        if end > reach:
            total += end - max(start, reach)
            reach = end
    return total


class RequestClock:
    """Stamps every request an emulator logs, so a pass's busy span and 429s can be read
    after it (the loopback log has no times). Wraps the server's `record` on this instance."""

    def __init__(self, server: LoopbackServer) -> None:
        self.server = server
        self.stamps: list[float] = []
        self.entries: list[LoggedRequest] = []
        original = server.record

        def record(entry: LoggedRequest) -> None:
            self.stamps.append(time.monotonic())
            self.entries.append(entry)
            original(entry)

        server.record = record  # type: ignore[method-assign]

    def mark(self) -> int:
        return len(self.entries)

    def since(self, mark: int) -> Served:
        entries, stamps = self.entries[mark:], self.stamps[mark:]
        busy = stamps[-1] - stamps[0] if len(stamps) > 1 else 0.0
        return Served(len(entries), sum(1 for e in entries if e.status == 429), busy)


def own_peak_rss_mb() -> float:
    """This process's peak RSS since its `exec`: `VmHWM` of /proc/self/status.

    Not `getrusage` or `wait4`: on Linux a child's `ru_maxrss` also holds the high-water mark
    of the image it was forked from (the kernel folds the old memory map's peak in at `exec`),
    so a syncd child forked from this benchmark would report the emulators' RSS as its own."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def log_peak_rss() -> None:
    """The child's last log line: its own peak RSS and CPU seconds, read by `run_child`."""
    import logging

    from syncd.log import event

    event(logging.getLogger("syncd.bench"), "peak_rss", mb=round(own_peak_rss_mb(), 1),
          cpu=round(time.process_time(), 2))


def run_child(label: str, command: Sequence[str], clocks: Mapping[str, RequestClock],
              log_path: Path, store: Path) -> Pass:
    """Run one syncd process to its end; its peak RSS is the one it logs (`log_peak_rss`)."""
    marks = {name: clock.mark() for name, clock in clocks.items()}
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    started = time.perf_counter()
    with log_path.open("w") as log, open(os.devnull, "w") as quiet:
        child = subprocess.Popen(command, cwd=ROOT, env=env, stdout=quiet, stderr=log)
        status = child.wait()
    seconds = time.perf_counter() - started
    events = [json.loads(line) for line in log_path.read_text().splitlines()
              if line.startswith("{")]
    peaks = [e for e in events if e.get("event") == "peak_rss"]
    peak = float(peaks[-1]["mb"]) if peaks else float("nan")
    cpu = float(peaks[-1].get("cpu", "nan")) if peaks else float("nan")
    return Pass(label, status, seconds, peak, cpu, events,
                {name: clocks[name].since(mark) for name, mark in marks.items()},
                last_usage(store))


def last_usage(store: Path) -> dict[str, dict[str, int]]:
    """calls, retries and throttled per system, as the store recorded them for its last run."""
    if not store.exists():
        return {}
    with sqlite3.connect(f"file:{store}?mode=ro", uri=True) as db:
        rows = db.execute("SELECT system, calls, retries, throttled FROM api_usage "
                          "WHERE run = (SELECT max(id) FROM run)").fetchall()
    return {str(system): {"calls": calls, "retries": retries, "throttled": throttled}
            for system, calls, retries, throttled in rows}


def pull_pass_command(config: Path) -> list[str]:
    return [sys.executable, "-m", "benchmarks.bench_pull", "--pull-pass", str(config)]


def pull_pass(config: Path) -> int:
    """The child: syncd's pass as `syncd run --once` wires it, ending after the pull stage."""
    from syncd.cli import _connectors  # the CLI's own wiring of the two connectors
    from syncd.config import load_settings
    from syncd.console import LogProgress
    from syncd.definitions import load_definitions
    from syncd.log import configure
    from syncd.pipeline import run_once
    from syncd.store import Store

    settings = load_settings(config)
    configure("info", "json", settings.secrets())
    definitions = load_definitions(settings.sync.mappings)
    store = Store(settings.store.path)
    connectors = _connectors(settings, definitions.mappings)
    try:
        report = run_once(store, connectors, clock=lambda: datetime.now(UTC),
                          lookback=timedelta(seconds=settings.sync.lookback_seconds),
                          budgets={"hubspot": settings.hubspot.daily_budget,
                                   "salesforce": settings.salesforce.daily_budget},
                          definitions=None, progress=LogProgress())
    finally:
        for connector in connectors.values():
            connector.close()
        store.close()
        log_peak_rss()
    return report.exit_code


# -- the org in this process ----------------------------------------------------------------


@dataclass(frozen=True)
class OrgCounts:
    """What the emulators hold, read directly: the ground truth the minimum is computed from."""

    hubspot_live: dict[str, int]
    hubspot_archived: dict[str, int]
    submissions: list[int]  # per form
    clicks: int
    campaigns_clicked: int
    salesforce_rows: dict[str, int]  # every row, deleted ones too (queryAll)


@dataclass(frozen=True)
class Edits:
    """Records changed between two passes, per object."""

    hubspot: dict[str, int]
    salesforce: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.hubspot.values()) + sum(self.salesforce.values())


class Org:
    """The sandbox in this process, its request clocks, and syncd configs pointing at it."""

    def __init__(self, scale: int, seed: int, touches_per_person: float, workdir: Path,
                 salesforce_daily_limit: int = 10_000_000) -> None:
        self.sandbox = Sandbox(scale=scale, seed=seed, directory=workdir,
                               hubspot_limits="unlimited",
                               salesforce_daily_limit=salesforce_daily_limit,
                               touches_per_person=touches_per_person)
        self.scale = scale
        self.workdir = workdir
        self.info: SandboxInfo | None = None
        self.clocks: dict[str, RequestClock] = {}
        self.seeding_seconds = 0.0

    def start(self) -> Org:
        started = time.perf_counter()
        self.info = self.sandbox.start()
        self.seeding_seconds = time.perf_counter() - started
        assert self.sandbox.hubspot is not None and self.sandbox.salesforce is not None
        self.clocks = {"hubspot": RequestClock(self.sandbox.hubspot.server),
                       "salesforce": RequestClock(self.sandbox.salesforce.server)}
        return self

    def stop(self) -> None:
        self.sandbox.stop()

    def limit_hubspot(self, enterprise: bool) -> None:
        """HubSpot Enterprise limits (190 per 10 s, 5 searches/s) on, or every limit off."""
        from connectors.hubspot.emulator import HubSpotLimits

        assert self.sandbox.hubspot is not None
        self.sandbox.hubspot.limits = HubSpotLimits() if enterprise else HubSpotLimits.unlimited()

    def config(self, name: str, *, requests_per_10s: int, lookback: str = "1s") -> Path:
        """A syncd config for this org with its own fresh store under the work folder."""
        assert self.info is not None
        store = self.store(name)
        for stale in self.workdir.glob(f"{name}.db*"):
            stale.unlink()
        sections = tomllib.loads(self.sandbox.config_text(self.info, store_path=str(store)))
        sections["hubspot"]["requests_per_10s"] = requests_per_10s
        sections["sync"]["lookback"] = lookback
        path = self.workdir / f"{name}.toml"
        path.write_text("\n".join(toml_section(k, v) for k, v in sections.items()))
        return path

    def store(self, name: str) -> Path:
        return self.workdir / f"{name}.db"

    def counts(self) -> OrgCounts:
        hubspot, salesforce = self.sandbox.hubspot, self.sandbox.salesforce
        assert hubspot is not None and salesforce is not None
        portal, org = hubspot.portal, salesforce.org
        with hubspot.server.app_lock, salesforce.server.app_lock:
            live = {name: len(portal.ids(name)) for name in ASSOCIATED}
            archived = {name: len(portal.ids(name, archived=True)) for name in ASSOCIATED}
            submissions = [len(form.submissions) for form in portal.forms.values()]
            clicked = sum(1 for c in portal.campaigns.values() if c.clicks)
            rows = {sobject: sum(1 for _ in org.rows(sobject)) for sobject in SALESFORCE_STREAMS}
            return OrgCounts(live, archived, submissions, len(portal.clicks), clicked, rows)

    def edit(self, share: float, seed: int = 11) -> Edits:
        """Change `share` of the live HubSpot contacts and of the live, unconverted Leads and
        the live Contacts: a job title, as a person would."""
        hubspot, salesforce = self.sandbox.hubspot, self.sandbox.salesforce
        assert hubspot is not None and salesforce is not None
        rng = random.Random(seed)
        with hubspot.server.app_lock, salesforce.server.app_lock:
            ids = hubspot.portal.ids("contacts")
            chosen = rng.sample(ids, math.ceil(len(ids) * share))
            for number, contact in enumerate(chosen):
                hubspot.portal.update("contacts", contact, {"jobtitle": f"Bench title {number}"})
            edited = {}
            for sobject in PERSON_OBJECTS:
                live = [str(r["Id"]) for r in salesforce.org.rows(sobject)
                        if not r["IsDeleted"] and not r.get("IsConverted")]
                picked = rng.sample(live, math.ceil(len(live) * share))
                for number, record in enumerate(picked):
                    salesforce.org.update(sobject, record, {"Title": f"Bench title {number}"})
                edited[sobject] = len(picked)
        return Edits({"contacts": len(chosen)}, edited)


SALESFORCE_STREAMS = ("Lead", "Contact", "Account", "Opportunity", "OpportunityContactRole",
                      "OpportunityStage", "Campaign", "CampaignMember", "Task", "Event")


# -- the minimum calls the page sizes allow -------------------------------------------------


def pages(rows: int, size: int) -> int:
    """Calls to read `rows` at `size` per page: an empty read still costs one call."""
    return max(1, math.ceil(rows / size))


def salesforce_read(rows: int, bulk_threshold: int = 10_000) -> int:
    """REST pages of 2,000; past `bulk_threshold` rows the connector goes on by Bulk API 2.0
    (describe the object, whose field types turn the CSV back into REST's values; create the
    job, read its status once, 10,000-row result pages)."""
    if rows <= bulk_threshold:
        return pages(rows, SALESFORCE_REST_PAGE)
    return 1 + 1 + 2 + pages(rows - SALESFORCE_REST_PAGE, SALESFORCE_BULK_PAGE)


def hubspot_fixed(counts: OrgCounts) -> int:
    """Read whole every run: properties of three objects, the deal pipelines, the forms."""
    return 3 + 1 + pages(len(counts.submissions), 100)


def minimum_backfill(counts: OrgCounts) -> dict[str, int]:
    hubspot = hubspot_fixed(counts)
    for name in ASSOCIATED:  # archived list, then live list; associations come embedded
        hubspot += pages(counts.hubspot_archived[name], HUBSPOT_LIST_PAGE)
        hubspot += pages(counts.hubspot_live[name], HUBSPOT_LIST_PAGE)
    hubspot += sum(pages(n, HUBSPOT_SUBMISSIONS_PAGE) for n in counts.submissions) or 1
    hubspot += pages(counts.clicks, HUBSPOT_EVENTS_PAGE) + counts.campaigns_clicked
    salesforce = sum(salesforce_read(n) for n in counts.salesforce_rows.values())
    return {"hubspot": hubspot, "salesforce": salesforce}


def minimum_incremental(counts: OrgCounts, edits: Edits) -> dict[str, int]:
    """Nothing changed is one call per stream (per form for submissions); a changed CRM
    object costs its search pages, its associations (v4 batch read of 1,000 ids per target)
    and one sweep of the archived list (deletes are invisible to search)."""
    hubspot = hubspot_fixed(counts) + max(1, len(counts.submissions)) + 1
    for name, targets in ASSOCIATED.items():
        changed = edits.hubspot.get(name, 0)
        hubspot += pages(changed, HUBSPOT_SEARCH_PAGE)
        if changed:
            hubspot += targets * pages(changed, HUBSPOT_ASSOCIATION_BATCH)
            hubspot += pages(counts.hubspot_archived[name], HUBSPOT_LIST_PAGE)
    salesforce = sum(pages(edits.salesforce.get(s, 0), SALESFORCE_REST_PAGE)
                     for s in counts.salesforce_rows)
    return {"hubspot": hubspot, "salesforce": salesforce}


NO_EDITS = Edits({}, {})


# -- the benchmark --------------------------------------------------------------------------


@dataclass
class ScaleResult:
    scale: int
    seeding_seconds: float
    counts: OrgCounts
    edits: Edits
    backfill: Pass
    unchanged: Pass
    incremental: Pass
    enterprise: Pass


def measure(scale: int, seed: int, touches_per_person: float, workdir: Path) -> ScaleResult:
    org = Org(scale, seed, touches_per_person, workdir).start()
    try:
        counts = org.counts()
        config = org.config("pull", requests_per_10s=UNPACED_PER_10S)
        store = org.store("pull")

        def run(label: str, config: Path, store: Path, log: str) -> Pass:
            return run_child(label, pull_pass_command(config), org.clocks, workdir / log, store)

        backfill = run("backfill", config, store, "backfill.log")
        unchanged = run("nothing changed", config, store, "unchanged.log")
        edits = org.edit(0.01)
        incremental = run("incremental", config, store, "incremental.log")
        org.limit_hubspot(enterprise=True)
        # The emulator's rolling window counts every request, limited or not: the runs just
        # before would share the first 10 s with this one, which its own pacer cannot know.
        time.sleep(ROLLING_WINDOW + 1)
        limited = org.config("enterprise", requests_per_10s=ENTERPRISE_PER_10S)
        enterprise = run("enterprise backfill", limited, org.store("enterprise"),
                         "enterprise.log")
    finally:
        org.stop()
    return ScaleResult(scale, org.seeding_seconds, counts, edits, backfill, unchanged,
                       incremental, enterprise)


# -- the tables -----------------------------------------------------------------------------


def verdict(met: bool) -> str:
    return "met" if met else "**NOT met**"


def over_minimum(calls: int, minimum: int) -> str:
    return f"{(calls - minimum) / minimum:+.1%}" if minimum else "n/a"


def calls_cell(run: Pass, minimum: Mapping[str, int]) -> str:
    parts = []
    for system in ("hubspot", "salesforce"):
        calls, least = run.pull_calls(system), minimum[system]
        parts.append(f"{system} {calls:,} / {least:,} ({over_minimum(calls, least)})")
    return "<br>".join(parts)


def calls_met(run: Pass, minimum: Mapping[str, int]) -> bool:
    return all(run.pull_calls(s) <= minimum[s] * (1 + CALLS_GOAL) for s in minimum)


def run_row(result: ScaleResult, run: Pass, minimum: Mapping[str, int]) -> str:
    took = run.pull_seconds()
    rate = run.pull_rows() / took if took else 0.0
    return (f"| {result.scale:,} | {run.label} | {run.exit_code} | {calls_cell(run, minimum)} "
            f"| {verdict(calls_met(run, minimum))} | {run.pull_rows():,} | {run.pull_changed():,} "
            f"| {took:.1f} | {run.seconds:.1f} | {run.cpu_seconds:.1f} | {rate:,.0f} "
            f"| {run.peak_rss_mb:,.0f} | {verdict(run.peak_rss_mb < RSS_GOAL_MB)} |")


def runs_table(results: Sequence[ScaleResult]) -> str:
    rows = [
        "| people | run | exit | API calls: measured / minimum (over) | calls within 5% "
        "| rows read | rows written | pull s | process s | process CPU s | rows/s | peak RSS MB "
        "| RSS < 300 MB |",
        "|---:|---|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for result in results:
        rows.append(run_row(result, result.backfill, minimum_backfill(result.counts)))
        rows.append(run_row(result, result.unchanged, minimum_incremental(result.counts,
                                                                          NO_EDITS)))
        rows.append(run_row(result, result.incremental,
                            minimum_incremental(result.counts, result.edits)))
    return "\n".join(rows)


def unchanged_table(results: Sequence[ScaleResult]) -> str:
    """The nothing-changed run stream by stream: one call each, per form for submissions."""
    rows = ["| people | stream | calls | expected | rows written |", "|---:|---|---:|---:|---:|"]
    for result in results:
        forms = max(1, len(result.counts.submissions))
        for s in result.unchanged.streams:
            expected = 3 if s.stream == "properties" else forms if s.stream == "form_submissions" \
                else 1
            mark = "" if s.calls <= expected else " **over**"
            rows.append(f"| {result.scale:,} | {s.system} {s.stream} | {s.calls}{mark} "
                        f"| {expected} | {s.changed:,} |")
    return "\n".join(rows)


def incremental_table(results: Sequence[ScaleResult]) -> str:
    """The incremental run's cost against the changes and against the backfill."""
    rows = ["| people | records changed | calls (both systems) | calls per change "
            "| backfill calls | rows read | pull s | follows the changes |",
            "|---:|---:|---:|---:|---:|---:|---:|---|"]
    for result in results:
        run, full = result.incremental, result.backfill
        calls = run.pull_calls("hubspot") + run.pull_calls("salesforce")
        full_calls = full.pull_calls("hubspot") + full.pull_calls("salesforce")
        minimum = sum(minimum_incremental(result.counts, result.edits).values())
        follows = calls <= minimum * (1 + CALLS_GOAL)
        rows.append(f"| {result.scale:,} | {result.edits.total:,} | {calls:,} "
                    f"| {calls / max(1, result.edits.total):.3f} | {full_calls:,} "
                    f"| {run.pull_rows():,} | {run.pull_seconds():.1f} | {verdict(follows)} |")
    return "\n".join(rows)


def enterprise_table(results: Sequence[ScaleResult]) -> str:
    rows = ["| people | HubSpot calls | HubSpot pull s | allowance in that time (190/10 s) "
            "| share used | >= 90% | 429s seen | 0 429s | retries |",
            "|---:|---:|---:|---:|---:|---|---:|---|---:|"]
    for result in results:
        run = result.enterprise
        calls, seconds = run.pull_calls("hubspot"), run.pull_seconds("hubspot")
        allowance = ENTERPRISE_PER_10S * seconds / 10
        share = calls / allowance if allowance else 0.0
        throttled = run.served["hubspot"].throttled
        rows.append(f"| {result.scale:,} | {calls:,} | {seconds:.1f} | {allowance:,.0f} "
                    f"| {share:.1%} | {verdict(share >= SHARE_GOAL)} | {throttled} "
                    f"| {verdict(throttled == 0)} | {usage_of(run, 'hubspot', 'retries')} |")
    return "\n".join(rows)


def usage_of(run: Pass, system: str, key: str) -> str:
    """A figure from syncd's own usage count (the store's `api_usage` of that pass)."""
    return str(run.usage.get(system, {}).get(key, "?"))


def slowest_streams(results: Sequence[ScaleResult], count: int = 4) -> str:
    """Where the backfill's pull time went: the slowest streams at the largest scale."""
    result = results[-1]
    streams = sorted(result.backfill.streams, key=lambda s: s.took, reverse=True)[:count]
    rows = ["| stream (backfill, largest scale) | rows | calls | s | rows/s |",
            "|---|---:|---:|---:|---:|"]
    rows += [f"| {s.system} {s.stream} | {s.rows:,} | {s.calls:,} | {s.took:.1f} "
             f"| {s.rows / s.took if s.took else 0:,.0f} |" for s in streams]
    return "\n".join(rows)


def report(results: Sequence[ScaleResult], argv: Sequence[str]) -> str:
    seeded = ", ".join(f"{r.scale:,} people in {r.seeding_seconds:.0f} s" for r in results)
    return "\n\n".join([
        "Pull stage only (`run_once` with no definitions, in its own process); "
        f"org seeded: {seeded}. HubSpot limits off and `requests_per_10s = {UNPACED_PER_10S}` "
        "(the pacer's maximum) except in the Enterprise run; lookback 1s.",
        runs_table(results),
        "Minimum: HubSpot lists 100/page (archived then live, per object), search 200/page "
        "plus one v4 association read per 1,000 ids per associated type and one sweep of the "
        "archived list when an object changed, submissions 50/page per form, click events "
        "1,000/page plus one read per clicked campaign, properties (3), pipelines, forms; "
        "Salesforce 2,000/page by REST, or past 10,000 rows one REST page, one describe (the "
        "field types that read the CSV), job create, one status read and 10,000-row Bulk "
        "result pages. Rows read include HubSpot merge losers "
        "named by survivors.",
        "Nothing changed, stream by stream:",
        unchanged_table(results),
        "Incremental run after 1% of HubSpot contacts, Salesforce Leads and Contacts changed:",
        incremental_table(results),
        "Backfill with the HubSpot emulator limited like an Enterprise portal and "
        "`requests_per_10s = 190` (share: HubSpot calls / allowance over the HubSpot streams' "
        "own pull time):",
        enterprise_table(results),
        slowest_streams(results),
        f"Measured on: {machine()}. Command: `python -m benchmarks.bench_pull "
        f"{' '.join(argv)}`.",
    ])


def arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--scale", type=int, action="append",
                        help="people in the org; repeat for several (default 10,000 and 100,000)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--touches-per-person", type=float, default=10.0)
    parser.add_argument("--workdir", type=Path, help="where stores, configs and logs go")
    parser.add_argument("--pull-pass", type=Path, metavar="CONFIG", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = arguments(argv)
    if args.pull_pass is not None:
        return pull_pass(args.pull_pass)
    scales: list[int] = args.scale or [10_000, 100_000]
    results = []
    for scale in scales:
        workdir = prepared(args.workdir, f"pull-{scale}")
        results.append(measure(scale, args.seed, args.touches_per_person, workdir))
    shown = [f"--scale {s}" for s in scales]
    if args.touches_per_person != 10.0:
        shown.append(f"--touches-per-person {args.touches_per_person:g}")
    print(report(results, shown))
    return 0


def prepared(root: Path | None, name: str) -> Path:
    base = root if root is not None else Path(tempfile.gettempdir()) / "syncd-bench"
    folder = base / name
    folder.mkdir(parents=True, exist_ok=True)
    return folder


if __name__ == "__main__":
    raise SystemExit(main())
