"""How fast syncd reconciles and plans a large org, in full and after 1% (then 2%) of it changed.

Seeds a sandbox org (`connectors.sandbox.Sandbox`, HubSpot limits off), then runs four passes of
`syncd run --once --dry-run` through the real CLI, in this process:

1. the first pass pulls the whole org into a fresh store, then reconciles and plans all of it
   (a dry run: nothing is pushed). The pull is timed apart, so the "full" row is reconcile and
   plan of a store already pulled;
2. a pass with nothing changed: what a pass costs however little changed;
3. 1% of the people, accounts and opportunities are edited in the emulators (half of the people
   in HubSpot, half in Salesforce), and a dry run reconciles and plans what changed;
4. 2% are edited the same way (drawn anew with the next seed, so a few may have been edited
   before), and a last dry run: whether the cost follows what changed.

Each stage is timed by wrapping the pipeline's own functions (the pull, `_Pull.others`, made to
read every stream before the reconcile starts, as a pass does not; `_sync`) and the classes
that do the work (`Reconciler.reconcile`, `Planner.plan`, and the lifecycle stages when the
pipeline has them), so the table also says where the time goes. A pass's total also counts
`Store.close`, where SQLite copies what the pass left in its write-ahead log into the file.
`--profile` prints the cProfile hot spots of the full reconcile and plan (`--profile
incremental`: of the incremental one). `--per-entity` also times the functions that decide one
record or entity at a time (`PER_ENTITY`): about what a pass would still take if its chunks'
reads, writes and JSON took no time. After the full pass, outside its time, its floors (`floor`):
its rows written by SQLite alone, and its source records read and decoded, with what the two
leave of the goal's time for everything else. Prints one Markdown table with the machine.

    python -m benchmarks.bench_reconcile --scale 100000
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import importlib
import io
import json
import os
import pstats
import random
import resource
import shutil
import sqlite3
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from benchmarks.bench_pull import machine
from connectors.sandbox import Sandbox, toml_section
from syncd.cli import run as syncd
from syncd.store import Store

GOAL_RECORDS_PER_SECOND = 20_000
GOAL_INCREMENTAL_SHARE = 0.01  # "about 1% of a full run"
CHANGED_SHARE = 0.01
# The last pass edits twice as many, to show how the cost follows what changed.
MORE_CHANGED_SHARE = 0.02
# (module, class or None, function): the stages timed; those a pipeline lacks are skipped.
STAGES = (
    ("syncd.pipeline", None, "_sync"),
    ("syncd.reconcile", "Reconciler", "reconcile"),
    ("syncd.lifecycle", "StageDeriver", "people_touched_by"),
    ("syncd.lifecycle", "StageDeriver", "derive"),
    ("syncd.planner", "Planner", "plan"),
    ("syncd.handoff", "HandoffTracker", "record_planned"),
    ("syncd.handoff", "HandoffTracker", "refresh"),
    # Closing the store checkpoints what the pass left in the write-ahead log: its cost
    # belongs to the pass, and is counted in its total.
    ("syncd.store.core", "Store", "close"),
)
# `--per-entity`: the functions that decide one record or entity at a time, in Python, given
# what their stage read for the chunk (module, class or None, function, as reported). Their time
# includes what they read on demand (an entity's sides, what syncd wrote to a record, a deal's
# HubSpot associations), not the chunk's reads and writes around them. `choose_sides` is
# imported by three stages, and timed in each.
PER_ENTITY = (
    ("syncd.identity", "Resolver", "_one", "Resolver._one (identity, per record)"),
    ("syncd.reconcile", None, "recompute", "recompute (rules, per entity)"),
    ("syncd.reconcile", "Reconciler", "_structure", "Reconciler._structure"),
    ("syncd.reconcile", None, "choose_sides", "choose_sides"),
    ("syncd.lifecycle", None, "choose_sides", "choose_sides"),
    ("syncd.planner", None, "choose_sides", "choose_sides"),
    ("syncd.lifecycle", "StageDeriver", "_stage", "StageDeriver._stage"),
    ("syncd.lifecycle", None, "_first_entries", "_first_entries (stage history)"),
    ("syncd.planner", None, "plan_entity", "plan_entity (plan, per entity)"),
)
MAPPED = ("Lead", "Contact", "Account", "Opportunity", "OpportunityContactRole", "contacts",
          "companies", "deals")
# Tables the pull fills, or where the store keeps its own books: not what reconcile + plan write
# (`floor`).
NOT_THE_PASS = ("source_record", "cursor", "api_usage", "run", "state", "schema_version")


@dataclass
class Floor:
    """What the full pass's reads and writes cost with no Python deciding anything (`floor`):
    wall and CPU seconds of each, with what they moved."""

    rows: int
    tables: int
    entities: int
    write: tuple[float, float]
    records: int  # the mapped source records read
    read: tuple[float, float]


def floor(store: Path, folder: Path) -> Floor:
    """The least the full pass's I/O can cost, whatever decides its values.

    Write: every row the pass left in the tables it fills is copied by SQLite alone (`INSERT
    ... SELECT`, no Python per row) into an empty store of the same schema and settings (a
    backfill's tables start empty too), in one transaction, and the store closed (its
    checkpoint, as the pass's `Store.close`). Read: the mapped source records are read and
    decoded by orjson, as reconcile must at least do once. The pass writes some rows several
    times (an entity is created, then decided, then given its account) and reads more than
    the records: these are floors, not estimates."""
    with contextlib.closing(sqlite3.connect(store)) as conn:
        names = [name for (name,) in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
            if name not in NOT_THE_PASS]
        counts = {name: int(conn.execute(f"SELECT count(*) FROM {name}").fetchone()[0])
                  for name in names}
        entities = int(conn.execute("SELECT count(*) FROM entity").fetchone()[0])
    tables = [name for name, count in counts.items() if count]
    target = Store(folder / "floor.db")  # migrated: the schema and settings syncd runs with
    try:
        target.db.conn.execute("ATTACH DATABASE ? AS pass", (str(store),))
        began, began_cpu = time.perf_counter(), time.process_time()
        with target.transaction():
            for name in tables:
                target.db.conn.execute(f"INSERT INTO main.{name} SELECT * FROM pass.{name}")
        target.db.conn.execute("DETACH DATABASE pass")
    finally:
        target.close()
    write = (time.perf_counter() - began, time.process_time() - began_cpu)
    marks = ",".join("?" for _ in MAPPED)
    with contextlib.closing(sqlite3.connect(store)) as conn:
        began, began_cpu = time.perf_counter(), time.process_time()
        records = 0
        for (data,) in conn.execute(
                f"SELECT data FROM source_record WHERE object IN ({marks})", MAPPED):
            orjson.loads(data)
            records += 1
        read = (time.perf_counter() - began, time.process_time() - began_cpu)
    return Floor(sum(counts.values()), len(tables), entities, write, records, read)


@dataclass
class Timings:
    """Seconds spent per stage during the current pass (stages may run several times)."""

    seconds: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    # CPU seconds of this process: on a shared machine the wall clock also counts the time
    # other processes held the CPUs (a dry run makes no HTTP call, so the emulator threads
    # idle meanwhile and this is syncd's own work).
    cpu: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    profile: cProfile.Profile | None = None
    # `--per-entity`: seconds in each of the `PER_ENTITY` functions during `_sync`.
    per_entity: dict[str, float] | None = None
    # Resident memory of this process before reconcile + plan and at its peak during it (MiB).
    # The emulators live in this process too: the growth is what reconcile + plan hold.
    rss_before: float = 0.0
    rss_peak: float = 0.0
    # What the pass's run row says it did (`last_run`): entities changed, rows planned.
    outcome: str = ""

    def total(self) -> tuple[float, float]:
        """Wall and CPU seconds of the pass's reconcile and plan, with the store's close."""
        return (self.seconds["_sync"] + self.seconds["Store.close"],
                self.cpu["_sync"] + self.cpu["Store.close"])

    def wrap(self, name: str, function: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            profiling = self.profile is not None and name == "_sync"
            if name == "_sync":
                self.rss_before = memory("VmRSS")
                with contextlib.suppress(OSError):  # the peak (VmHWM) restarts from here
                    Path("/proc/self/clear_refs").write_text("5")
            began, began_cpu = time.perf_counter(), time.process_time()
            if profiling:
                assert self.profile is not None
                self.profile.enable()
            try:
                return function(*args, **kwargs)
            finally:
                if profiling:
                    assert self.profile is not None
                    self.profile.disable()
                self.seconds[name] += time.perf_counter() - began
                self.cpu[name] += time.process_time() - began_cpu
                if name == "_sync":
                    self.rss_peak = memory("VmHWM")

        return timed

    def accumulate(self, name: str, function: Callable[..., Any]) -> Callable[..., Any]:
        """`function`, its seconds added up under `name`. Called once per record or entity,
        so it reads the wall clock only (not the CPU clock, as `wrap` does), to add as little
        as it can to the pass it measures."""
        assert self.per_entity is not None
        spent, clock = self.per_entity, time.perf_counter
        spent.setdefault(name, 0.0)

        def timed(*args: Any, **kwargs: Any) -> Any:
            began = clock()
            try:
                return function(*args, **kwargs)
            finally:
                spent[name] += clock() - began

        return timed


@contextlib.contextmanager
def timed_stages(timings: Timings) -> Iterator[None]:
    """Wrap every stage function the pipeline has; restore them afterwards."""
    restore: list[tuple[Any, str, Any]] = []
    for module_name, class_name, function in STAGES:
        try:
            owner: Any = importlib.import_module(module_name)
        except ImportError:
            continue
        if class_name is not None:
            owner = getattr(owner, class_name, None)
        original = getattr(owner, function, None) if owner is not None else None
        if original is None:
            continue
        name = function if class_name is None else f"{class_name}.{function}"
        restore.append((owner, function, original))
        setattr(owner, function, timings.wrap(name, original))
    per_entity = PER_ENTITY if timings.per_entity is not None else ()
    for module_name, class_name, function, name in per_entity:
        owner = importlib.import_module(module_name)
        if class_name is not None:
            owner = getattr(owner, class_name)
        original = getattr(owner, function)
        restore.append((owner, function, original))
        setattr(owner, function, timings.accumulate(name, original))
    pipeline = importlib.import_module("syncd.pipeline")
    reader = getattr(pipeline, "_Pull", None)
    if reader is not None:
        # A pass reads its activity streams while it reconciles; here every stream is read
        # before the reconcile, so that the reconcile + plan row is theirs alone (in this
        # process the emulators serve those reads, and their CPU would count).
        others = reader.others

        def read_all(pull: Any) -> None:
            others(pull)
            pull.finish()

        restore.append((reader, "others", others))
        reader.others = timings.wrap("_pull", read_all)
    try:
        yield
    finally:
        for owner, function, original in restore:
            setattr(owner, function, original)


def write_config(box: Sandbox, info: Any, folder: Path) -> Path:
    """A config pointing at the sandbox, with no rate limit or budget in the way (the
    benchmark measures syncd, not the pacing)."""
    ca = str(info.ca_path.resolve())
    sections = {
        "store": {"path": str(folder / "syncd.db")},
        "hubspot": {"base_url": info.hubspot_url, "access_token": info.hubspot_token,
                    "ca_bundle": ca, "requests_per_10s": 1000, "daily_budget": 1.0},
        "salesforce": {"instance_url": info.salesforce_url,
                       "api_version": info.salesforce_api_version, "auth": "token",
                       "access_token": info.salesforce_token, "ca_bundle": ca,
                       "daily_budget": 1.0},
        "sync": {"lookback": "10m"},
    }
    config = folder / "config.toml"
    config.write_text("\n".join(toml_section(k, v) for k, v in sections.items()),
                      encoding="utf-8")
    return config


def dry_run(config: Path, timings: Timings) -> None:
    quiet = io.StringIO()
    with timed_stages(timings), contextlib.redirect_stdout(quiet):
        code = syncd(["run", "--once", "--dry-run", "--config", str(config),
                      "--log-level", "warning"])
    if code not in (0, 1):
        raise SystemExit(f"syncd run --once --dry-run exited {code}:\n{quiet.getvalue()}")


def memory(field_name: str) -> float:
    """A line of /proc/self/status in MiB (0 where there is none)."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1]) / 1024
    return 0.0


def source_records(store: Path) -> int:
    """Source records of the synced objects: what reconcile reads."""
    marks = ",".join("?" for _ in MAPPED)
    with contextlib.closing(sqlite3.connect(store)) as conn:
        row = conn.execute(
            f"SELECT count(*) FROM source_record WHERE object IN ({marks})", MAPPED).fetchone()
    return int(row[0])


def change(box: Sandbox, rng: random.Random, share: float = CHANGED_SHARE) -> int:
    """Edit `share` of the people (half in each system), accounts and opportunities."""
    hubspot, salesforce = box.hubspot, box.salesforce
    assert hubspot is not None and salesforce is not None
    edited = 0
    with hubspot.server.app_lock, salesforce.server.app_lock:
        contacts = hubspot.portal.ids("contacts")
        for record_id in rng.sample(contacts, max(1, int(len(contacts) * share / 2))):
            hubspot.portal.update("contacts", record_id, {"jobtitle": f"Edited {record_id}"})
            edited += 1
        people = [("Contact", r["Id"]) for r in salesforce.org.records("Contact")]
        people += [("Lead", r["Id"]) for r in salesforce.org.records("Lead")
                   if not r["IsConverted"]]
        for sobject, record_id in rng.sample(people, max(1, int(len(people) * share / 2))):
            salesforce.org.update(sobject, record_id, {"Title": f"Edited {record_id[-6:]}"})
            edited += 1
        for sobject, values in (("Account", {"Phone": "+1 555 0100"}),
                                ("Opportunity", {"Amount": 1234.5})):
            ids = [r["Id"] for r in salesforce.org.records(sobject)]
            for record_id in rng.sample(ids, max(1, int(len(ids) * share))):
                salesforce.org.update(sobject, record_id, values)
                edited += 1
    return edited


def last_run(store: Path) -> str:
    """What the store's last run says it changed and planned."""
    with contextlib.closing(sqlite3.connect(store)) as conn:
        found = conn.execute("SELECT summary FROM run ORDER BY id DESC LIMIT 1").fetchone()
    summary = json.loads(found[0]) if found else {}
    return (f"{summary.get('entities_changed', 0):,} entities changed, "
            f"{summary.get('planned', 0):,} rows planned")


def row(what: str, records: int, seconds: float, cpu: float | None = None, note: str = "") -> str:
    rate = f"{records / seconds:,.0f}" if seconds and records else "-"
    cpu_text = "-" if cpu is None else f"{cpu:,.2f}"
    cpu_rate = f"{records / cpu:,.0f}" if cpu and records else "-"
    return f"| {what} | {records:,} | {seconds:,.2f} | {rate} | {cpu_text} | {cpu_rate} | {note} |"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=int, default=100_000, help="people in the org")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--touches-per-person", type=float, default=1.0,
                        help="marketing and sales touches per person (pull time only)")
    parser.add_argument("--profile", nargs="?", const="full", choices=("full", "incremental"),
                        help="print the cProfile hot spots of the full (default) or the "
                        "incremental reconcile and plan")
    parser.add_argument("--per-entity", action="store_true",
                        help="also time the functions that work one record or entity at a time "
                        "(identity, rules, stages, plan), apart from the reads and writes of "
                        "their chunks")
    options = parser.parse_args(argv)
    folder = Path(tempfile.mkdtemp(prefix="bench-reconcile-"))
    began = time.perf_counter()
    box = Sandbox(scale=options.scale, seed=options.seed, directory=folder / "ca",
                  hubspot_limits="unlimited", salesforce_daily_limit=100_000_000,
                  touches_per_person=options.touches_per_person)
    info = box.start()
    seeded = time.perf_counter() - began
    try:
        config = write_config(box, info, folder)
        full = Timings(profile=cProfile.Profile() if options.profile == "full" else None,
                       per_entity={} if options.per_entity else None)
        dry_run(config, full)
        records = source_records(folder / "syncd.db")
        least = floor(folder / "syncd.db", folder)
        unchanged = Timings()
        dry_run(config, unchanged)
        unchanged.outcome = last_run(folder / "syncd.db")
        edited = change(box, random.Random(options.seed))
        time.sleep(0.01)  # the edits' stamps fall before the next pass starts
        incremental = Timings(
            profile=cProfile.Profile() if options.profile == "incremental" else None,
            per_entity={} if options.per_entity else None)
        dry_run(config, incremental)
        incremental.outcome = last_run(folder / "syncd.db")
        more_edited = change(box, random.Random(options.seed + 1), MORE_CHANGED_SHARE)
        time.sleep(0.01)
        more = Timings()
        dry_run(config, more)
        more.outcome = last_run(folder / "syncd.db")
    finally:
        box.stop()
        shutil.rmtree(folder, ignore_errors=True)  # a 100,000-people store is a gigabyte
    report(options.scale, seeded, records, full, unchanged, (edited, incremental),
           (more_edited, more), least)
    profiled = full.profile or incremental.profile
    if profiled is not None:
        stats = io.StringIO()
        pstats.Stats(profiled, stream=stats).sort_stats("cumulative").print_stats(40)
        print("\n```\n" + stats.getvalue().strip() + "\n```")


def per_entity_rows(timings: Timings, records: int) -> None:
    """`--per-entity`: the pass's time in the functions that work one record or entity at a
    time, each and together, with their share of the pass."""
    if timings.per_entity is None:
        return
    total, _ = timings.total()
    for name, seconds in timings.per_entity.items():
        print(row(f"&nbsp;&nbsp;&nbsp;&nbsp;in {name}", records, seconds))
    spent = sum(timings.per_entity.values())
    print(row("&nbsp;&nbsp;per-entity functions together", records, spent,
              note=f"{spent / total:.0%} of the pass" if total else ""))


def report(scale: int, seeded: float, records: int, full: Timings, unchanged: Timings,
           one: tuple[int, Timings], more: tuple[int, Timings], least: Floor) -> None:
    edited, incremental = one
    full_work, full_cpu = full.total()
    incremental_work, incremental_cpu = incremental.total()
    share = incremental_work / full_work if full_work else 0.0
    cpu_share = incremental_cpu / full_cpu if full_cpu else 0.0
    rate = records / full_work if full_work else 0.0
    cpu_rate = records / full_cpu if full_cpu else 0.0
    met = "met" if max(rate, cpu_rate) >= GOAL_RECORDS_PER_SECOND else "NOT met"
    print(f"\n## Reconcile + plan at {scale:,} people (dry run: no push)\n")
    print("| what | source records | wall s | records/s | CPU s | records/CPU s | note |")
    print("|---|---:|---:|---:|---:|---:|---|")
    print(row("seed the sandbox", scale, seeded, note="people seeded"))
    print(row("first pull", records, full.seconds["_pull"], note="not part of the goal"))
    print(row("**full reconcile + plan**", records, full_work, full_cpu,
              f"goal >= {GOAL_RECORDS_PER_SECOND:,}/s: {met}"))
    for name, seconds in full.seconds.items():
        if name not in ("_pull", "_sync"):
            print(row(f"&nbsp;&nbsp;{name}", records, seconds, full.cpu[name]))
    per_entity_rows(full, records)
    budget = records / GOAL_RECORDS_PER_SECOND
    print(row("floor of the full pass: its rows, written by SQLite alone", records,
              least.write[0], least.write[1],
              f"{least.rows:,} rows into {least.tables} tables, with the close; "
              f"{least.write[0] / budget:.0%} of the goal's {budget:,.2f} s"))
    print(row("floor of the full pass: its source records, read and decoded", records,
              least.read[0], least.read[1], f"{least.read[0] / budget:.0%} of the goal's "
              f"{budget:,.2f} s"))
    unchanged_work, unchanged_cpu = unchanged.total()
    print(row("reconcile + plan, nothing changed", 0, unchanged_work, unchanged_cpu,
              f"{unchanged_work / full_work:.2%} of full; {unchanged.outcome}"))
    print(row("incremental pull", edited, incremental.seconds["_pull"],
              note="not part of the goal"))
    print(row(f"**incremental reconcile + plan** ({edited:,} records edited)", edited,
              incremental_work, incremental_cpu,
              f"{share:.1%} of full (CPU {cpu_share:.1%}; goal about "
              f"{GOAL_INCREMENTAL_SHARE:.0%}); {incremental.outcome}"))
    for name, seconds in incremental.seconds.items():
        if name not in ("_pull", "_sync"):
            print(row(f"&nbsp;&nbsp;{name}", edited, seconds, incremental.cpu[name]))
    per_entity_rows(incremental, edited)
    more_edited, more_timings = more
    more_work, more_cpu = more_timings.total()
    print(row(f"reconcile + plan, {MORE_CHANGED_SHARE:.0%} edited ({more_edited:,} records)",
              more_edited, more_work, more_cpu,
              f"{more_work / full_work:.1%} of full, {more_work / incremental_work:.1f}x the "
              f"{CHANGED_SHARE:.0%} pass for {more_edited / edited:.1f}x the records; "
              f"{more_timings.outcome}"))
    left = budget - least.write[0] - least.read[0]
    each = f"{left / least.entities * 1e6:,.0f} µs" if left > 0 and least.entities else "nothing"
    print(f"\nWithin the goal ({records:,} records in {budget:,.2f} s), the floors leave "
          f"{max(left, 0.0):,.2f} s for all the rest of the full pass, every decision among it: "
          f"{each} for each of its {least.entities:,} entities.")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\nPeak RSS {peak:,.0f} MiB, emulators included. Full reconcile + plan took the "
          f"process from {full.rss_before:,.0f} to at most {full.rss_peak:,.0f} MiB "
          f"({full.rss_peak - full.rss_before:,.0f} MiB held by it). Load average at the end "
          f"{os.getloadavg()[0]:.1f}. Machine: {machine()}.")


if __name__ == "__main__":
    main()
