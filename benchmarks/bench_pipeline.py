"""The whole pipeline at scale: per-stage time and records/s, API calls, peak RSS, allowance.

Issue 8 part 5. The emulators run in this process (a seeded `connectors.sandbox.Sandbox`);
syncd runs `syncd run --once` in a child process of its own, so that the peak RSS measured
(the child's own `VmHWM`, logged as it ends) is syncd's alone. The child is this module in
`--syncd-pass` mode: it times the stages `syncd/pipeline.py` does not log with a duration
(reconcile, derive, plan, push: it logs `event=pull ... took=` per stream, and the push
counts, but no time for the others) by wrapping those four entry points with a timer that
logs `event=stage stage=... took=...`, then runs the real CLI, `syncd.cli.run(["run",
"--once", ...])`. Nothing else about the pass changes.

Per scale:

1. backfill (empty store; HubSpot limits off; `requests_per_10s = 1000`, the pacer's maximum);
2. the settling run that follows it (it reads back what the backfill wrote: the echo);
3. an incremental run after 1% of HubSpot contacts, Salesforce Leads and Contacts changed;
4. a run with nothing changed;
5. at scales up to `--limited-up-to` (default 100,000) people, a backfill of a freshly seeded
   org with the emulators limited like a HubSpot Enterprise portal (190 requests per 10 s,
   5 searches/s; `requests_per_10s = 190`) and a Salesforce Enterprise org (daily allowance
   200,000 = 100,000 + 1,000 x 100 licences): the share of the allowance used, the 429s
   seen, and the wall time against the time the allowance itself needs.

    python -m benchmarks.bench_pipeline --scale 10000 --scale 100000
    python -m benchmarks.bench_pipeline --scale 1000000 --touches-per-person 2

Lookback is 1s in these configs, as in `bench_pull` (the runs follow each other within
seconds; the default 10m would re-read each previous run's reads and writes).
"""

from __future__ import annotations

import argparse
import functools
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from benchmarks.bench_pull import (
    ENTERPRISE_PER_10S,
    UNPACED_PER_10S,
    Edits,
    Org,
    OrgCounts,
    Pass,
    covered,
    log_peak_rss,
    machine,
    minimum_backfill,
    over_minimum,
    own_peak_rss_mb,
    prepared,
    run_child,
    verdict,
)
from connectors.salesforce.connector import ingest_job_rows
from syncd.config import SalesforceSettings

SALESFORCE_DAILY = 200_000  # Enterprise: 100,000 + 1,000 per licence; 100 licences
SEARCHES_PER_SECOND = 5
RSS_GOAL_MB = 500
SHARE_GOAL = 0.90
ALLOWANCE_SLACK = 0.10
# The limited backfill seeds a second org and its pass is bound by the allowance (HubSpot calls
# / 19 per s): about 28,000 calls at 1,000,000 people, 25 minutes of allowance before any stage
# (`--limited-up-to 1000000` runs it there).
LIMITED_UP_TO = 100_000
STAGES = ("pull", "reconcile", "derive", "plan", "push")
HUBSPOT_BATCH = 100  # batch/upsert, batch/update, v4 associations
SALESFORCE_COLLECTION = 200  # sObject Collections
# The config default: an object's writes above it go by Bulk API 2.0 ingest jobs.
SALESFORCE_BULK_THRESHOLD = SalesforceSettings.model_fields["bulk_threshold"].default
SALESFORCE_JOB_CALLS = 5  # create, upload, close, one status read, successful results

_F = TypeVar("_F", bound=Callable[..., Any])


# -- the child: the real CLI with its stages timed -----------------------------------------


def stage_timer(
    stage: str,
    function: _F,
    count: Callable[[Any, tuple[Any, ...]], int],
    since: Callable[[tuple[Any, ...]], tuple[float, float] | None] = lambda args: None,
) -> _F:
    """`function`, logging `event=stage stage=<stage> took=<s> items=<n> cpu=<s> peak_mb=<MB>`
    after each call: wall and process CPU seconds (what other load on the machine does not
    distort), and the process's peak RSS so far (which stage raised it). `since`: when the
    stage began, if before the call (`perf_counter`, `process_time`)."""
    from syncd.log import event

    log = logging.getLogger("syncd.bench")

    @functools.wraps(function)
    def timed(*args: Any, **kwargs: Any) -> Any:
        started, cpu = since(args) or (time.perf_counter(), time.process_time())
        result = function(*args, **kwargs)
        event(log, "stage", stage=stage, took=round(time.perf_counter() - started, 3),
              items=count(result, args), cpu=round(time.process_time() - cpu, 3),
              peak_mb=round(own_peak_rss_mb(), 1))
        return result

    return timed  # type: ignore[return-value]


def sized(value: Any) -> int:
    try:
        return len(value)
    except TypeError:
        return int(value or 0)


def time_stages() -> None:
    """Wrap reconcile, derive, plan and push where `syncd.pipeline` calls them (the classes
    are patched on themselves, the functions where `syncd.pipeline` imported them)."""
    import syncd.pipeline as pipeline
    from syncd.handoff import HandoffTracker
    from syncd.lifecycle import StageDeriver
    from syncd.planner import Planner
    from syncd.push import Pushing
    from syncd.reconcile import Reconciler

    Reconciler.reconcile = stage_timer(  # type: ignore[method-assign]
        "reconcile", Reconciler.reconcile, lambda kinds, _: sum(k.records for k in kinds))
    StageDeriver.derive = stage_timer(  # type: ignore[method-assign]
        "derive", StageDeriver.derive, lambda _, args: sized(args[1]))
    StageDeriver.people_touched_by = stage_timer(  # type: ignore[method-assign]
        "derive", StageDeriver.people_touched_by, lambda found, _: 0)
    # The hand-off's bookkeeping is derived too: "other" is then the process's own overhead.
    HandoffTracker.record_planned = stage_timer(  # type: ignore[method-assign]
        "derive", HandoffTracker.record_planned, lambda _, __: 0)
    HandoffTracker.refresh = stage_timer(  # type: ignore[method-assign]
        "derive", HandoffTracker.refresh, lambda _, __: 0)
    Planner.plan = stage_timer(  # type: ignore[method-assign]
        "plan", Planner.plan, lambda planned, _: int(planned))
    # Touchpoints and attribution credits are derived data too (ARCHITECTURE section 1).
    for name, count in (("refresh_touchpoints", lambda found, _: found.written + found.dropped),
                        ("compute_credits", lambda found, _: len(found.recomputed)),
                        ("desired_writes", lambda found, _: 0)):
        if hasattr(pipeline, name):
            setattr(pipeline, name, stage_timer("derive", getattr(pipeline, name), count))
    def pushed(report: Any, _: Any) -> int:
        return sum(report.applied.values()) + sum(report.rejected.values())

    # Every push ends in `Pushing.finish` (`push` calls it). The accounts' and people's push
    # starts before (`Pushing.planning`): its stage runs from there to the end of `finish`,
    # beside the plan's.
    planning = Pushing.planning

    def started(pushing: Pushing) -> None:
        pushing.bench_started = (time.perf_counter(), time.process_time())  # type: ignore[attr-defined]
        planning(pushing)

    Pushing.planning = started  # type: ignore[method-assign]
    Pushing.finish = stage_timer(  # type: ignore[method-assign]
        "push", Pushing.finish, pushed, lambda args: getattr(args[0], "bench_started", None))


def syncd_pass(config: Path) -> int:
    from syncd.cli import run

    time_stages()
    try:
        return run(["run", "--once", "--config", str(config), "--log-format", "json"])
    finally:
        log_peak_rss()


def syncd_pass_command(config: Path) -> list[str]:
    import sys

    return [sys.executable, "-m", "benchmarks.bench_pipeline", "--syncd-pass", str(config)]


# -- one pass's figures ---------------------------------------------------------------------


def stage_seconds(run: Pass) -> dict[str, float]:
    seconds = {"pull": run.pull_seconds()}
    for event in run.of("stage"):
        seconds[event["stage"]] = seconds.get(event["stage"], 0.0) + float(event["took"])
    return seconds


def stage_items(run: Pass) -> dict[str, int]:
    items = {"pull": run.pull_rows()}
    for event in run.of("stage"):
        items[event["stage"]] = items.get(event["stage"], 0) + int(event["items"])
    return items


def calls(run: Pass, system: str) -> int:
    """Every call of the pass (pull and push), as the pass summary counts them."""
    return int(run.summary.get(f"calls_{system}", 0))


def pushed(run: Pass) -> dict[str, int]:
    """Records applied per system, from the `event=push` lines."""
    out = {"hubspot": 0, "salesforce": 0}
    for event in run.of("push"):
        out[event["system"]] = out.get(event["system"], 0) + int(event["applied"]) \
            + int(event.get("rejected", 0))
    return out


def minimum(counts: OrgCounts, run: Pass) -> dict[str, int]:
    """The backfill's read minimum plus its writes in full batches: HubSpot 100; Salesforce
    per object, above `bulk_threshold` rows Bulk API 2.0 ingest jobs, else sObject Collections
    of 200, with the Leads created (the hand-off's upserts, which keep to Collections while
    Lead assignment rules are on) by Collections. Writes that need two calls each (HubSpot's
    clear-then-set, deal associations) and the stamp reads before a write are not in the
    minimum: what it leaves out shows as "over"."""
    least = minimum_backfill(counts)
    least["hubspot"] += -(-pushed(run)["hubspot"] // HUBSPOT_BATCH)
    for event in run.of("push"):
        if event["system"] == "salesforce":
            created = int(event.get("created", 0)) if event["object"] == "Lead" else 0
            rest = int(event["applied"]) + int(event.get("rejected", 0)) - created
            least["salesforce"] += -(-created // SALESFORCE_COLLECTION) + salesforce_writes(rest)
    return least


def salesforce_writes(rows: int) -> int:
    """Calls for one object's updates: Collections of 200 up to the threshold, else ingest
    jobs sized as the connector sizes them (`ingest_job_rows`)."""
    if rows <= SALESFORCE_BULK_THRESHOLD:
        return -(-rows // SALESFORCE_COLLECTION)
    size = ingest_job_rows(rows, SALESFORCE_BULK_THRESHOLD)
    return -(-rows // size) * SALESFORCE_JOB_CALLS


def hubspot_seconds(run: Pass) -> float:
    """Time the pass spent on HubSpot: its HubSpot pull streams and the push stage (which
    writes to both systems; Salesforce's writes are few calls)."""
    pushing = sum(float(e["took"]) for e in run.of("stage") if e["stage"] == "push")
    return run.pull_seconds("hubspot") + pushing


# -- the benchmark --------------------------------------------------------------------------


@dataclass
class LimitedRun:
    run: Pass
    hubspot_active: float
    searches: int


@dataclass
class ScaleResult:
    scale: int
    touches_per_person: float
    seeding_seconds: float
    counts: OrgCounts
    edits: Edits
    backfill: Pass
    settle: Pass
    incremental: Pass
    unchanged: Pass
    limited: LimitedRun | None


def measure(scale: int, seed: int, touches: float, workdir: Path,
            limited: bool) -> ScaleResult:
    org = Org(scale, seed, touches, workdir, salesforce_daily_limit=SALESFORCE_DAILY).start()
    try:
        counts = org.counts()
        config, store = org.config("pipeline", requests_per_10s=UNPACED_PER_10S), \
            org.store("pipeline")

        def run(label: str, log: str) -> Pass:
            return run_child(label, syncd_pass_command(config), org.clocks, workdir / log,
                             store)

        backfill = run("backfill", "backfill.log")
        settle = run("settling run (reads its own writes back)", "settle.log")
        edits = org.edit(0.01)
        incremental = run("incremental (1% changed)", "incremental.log")
        unchanged = run("nothing changed", "unchanged.log")
    finally:
        org.stop()
    enterprise = measure_limited(scale, seed, touches, workdir) if limited else None
    return ScaleResult(scale, touches, org.seeding_seconds, counts, edits, backfill, settle,
                       incremental, unchanged, enterprise)


def measure_limited(scale: int, seed: int, touches: float, workdir: Path) -> LimitedRun:
    """A backfill of a fresh org, HubSpot limited like an Enterprise portal."""
    org = Org(scale, seed, touches, workdir, salesforce_daily_limit=SALESFORCE_DAILY).start()
    try:
        org.limit_hubspot(enterprise=True)
        config = org.config("enterprise", requests_per_10s=ENTERPRISE_PER_10S)
        clock = org.clocks["hubspot"]
        mark = clock.mark()
        run = run_child("enterprise backfill", syncd_pass_command(config), org.clocks,
                        workdir / "enterprise.log", org.store("enterprise"))
        searches = sum(1 for e in clock.entries[mark:] if e.endpoint.endswith("/search"))
        return LimitedRun(run, hubspot_seconds(run), searches)
    finally:
        org.stop()


# -- the tables -----------------------------------------------------------------------------


def stages_table(results: Sequence[ScaleResult]) -> str:
    rows = ["| people | run | exit | " + " | ".join(f"{s} s (records/s)" for s in STAGES)
            + " | other s | process s |",
            "|---:|---|---:|" + "---:|" * (len(STAGES) + 2)]
    for result in results:
        for run in (result.backfill, result.settle, result.incremental, result.unchanged):
            seconds, items = stage_seconds(run), stage_items(run)
            cells = [f"{seconds.get(s, 0.0):.1f} ({rate(items.get(s, 0), seconds.get(s, 0.0))})"
                     for s in STAGES]
            # The activity streams are read beside the reconcile and the stages: the time in
            # no stage is what no stream or stage covers.
            other = run.seconds - covered(run.intervals("pull") + run.intervals("stage"))
            rows.append(f"| {people(result)} | {run.label} | {run.exit_code} | "
                        + " | ".join(cells) + f" | {other:.1f} | {run.seconds:.1f} |")
    return "\n".join(rows)


def rate(items: int, seconds: float) -> str:
    return f"{items / seconds:,.0f}/s" if seconds > 0 else "-"


def people(result: ScaleResult) -> str:
    note = "" if result.touches_per_person == 10.0 else \
        f" ({result.touches_per_person:g} touches/person)"
    return f"{result.scale:,}{note}"


def calls_table(results: Sequence[ScaleResult]) -> str:
    rows = ["| people | run | HubSpot calls / minimum (over) | Salesforce calls / minimum "
            "(over) | records written (HubSpot, Salesforce) | peak RSS MB | RSS < 500 MB |",
            "|---:|---|---|---|---|---:|---|"]
    for result in results:
        least = minimum(result.counts, result.backfill)
        for run in (result.backfill, result.settle, result.incremental, result.unchanged):
            wrote = pushed(run)
            shown = [f"{calls(run, s):,}" for s in ("hubspot", "salesforce")]
            if run is result.backfill:
                shown = [against(calls(run, s), least[s]) for s in ("hubspot", "salesforce")]
            rows.append(f"| {people(result)} | {run.label} | {shown[0]} | {shown[1]} "
                        f"| {wrote['hubspot']:,}, {wrote['salesforce']:,} "
                        f"| {run.peak_rss_mb:,.0f} | {verdict(run.peak_rss_mb < RSS_GOAL_MB)} |")
    return "\n".join(rows)


def against(measured: int, least: int) -> str:
    return f"{measured:,} / {least:,} ({over_minimum(measured, least)})"


def incremental_table(results: Sequence[ScaleResult]) -> str:
    rows = ["| people | records changed | calls (both) | process s | backfill calls "
            "| backfill s | calls: incremental / backfill | time: incremental / backfill |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for result in results:
        inc, full = result.incremental, result.backfill
        inc_calls = calls(inc, "hubspot") + calls(inc, "salesforce")
        full_calls = calls(full, "hubspot") + calls(full, "salesforce")
        rows.append(f"| {people(result)} | {result.edits.total:,} | {inc_calls:,} "
                    f"| {inc.seconds:.1f} | {full_calls:,} | {full.seconds:.1f} "
                    f"| {inc_calls / max(1, full_calls):.1%} "
                    f"| {inc.seconds / max(0.001, full.seconds):.1%} |")
    return "\n".join(rows)


def limited_table(results: Sequence[ScaleResult]) -> str:
    rows = ["| people | HubSpot calls | of them searches | HubSpot calling s "
            "| share of 190/10 s while calling | >= 90% | 429s (HubSpot, Salesforce) | 0 429s "
            "| Salesforce calls / daily 200,000 | allowance-bound s | process s "
            "| within +10% |",
            "|---:|---:|---:|---:|---:|---|---|---|---:|---:|---:|---|"]
    for result in results:
        if result.limited is None:
            continue
        limited = result.limited
        run = limited.run
        hs_calls = calls(run, "hubspot")
        share = hs_calls / (ENTERPRISE_PER_10S / 10 * limited.hubspot_active) \
            if limited.hubspot_active else 0.0
        throttled = (run.served["hubspot"].throttled, run.served["salesforce"].throttled)
        bound = max(hs_calls / (ENTERPRISE_PER_10S / 10), limited.searches / SEARCHES_PER_SECOND)
        sf_calls = calls(run, "salesforce")
        rows.append(
            f"| {people(result)} | {hs_calls:,} | {limited.searches:,} "
            f"| {limited.hubspot_active:.1f} | {share:.1%} | {verdict(share >= SHARE_GOAL)} "
            f"| {throttled[0]}, {throttled[1]} | {verdict(sum(throttled) == 0)} "
            f"| {sf_calls:,} ({sf_calls / SALESFORCE_DAILY:.2%}) | {bound:.0f} "
            f"| {run.seconds:.0f} | {verdict(run.seconds <= bound * (1 + ALLOWANCE_SLACK))} |")
    return "\n".join(rows)


def report(results: Sequence[ScaleResult], argv: Sequence[str]) -> str:
    seeded = ", ".join(f"{people(r)} people in {r.seeding_seconds:.0f} s" for r in results)
    return "\n\n".join([
        f"Whole passes (`syncd run --once`, each in its own process); org seeded: {seeded}. "
        f"HubSpot limits off and `requests_per_10s = {UNPACED_PER_10S}` except in the "
        f"Enterprise run; Salesforce daily allowance {SALESFORCE_DAILY:,}; lookback 1s.",
        "Per stage. Pull: the wall time during which a stream was read (each `event=pull` "
        "line's own `took`, ending at its time; overlaps counted once), records = rows read. "
        "The activity streams (touches) are read beside the next connector's streams, the "
        "reconcile and the stages, so the stages' times add up to more than the process's. "
        "Reconcile, "
        "derive, plan and push are not logged with a duration by `syncd/pipeline.py`: the "
        "benchmark's child times the calls `run_once` makes to `Reconciler.reconcile` "
        "(records = source records reconciled), `StageDeriver.people_touched_by` + `.derive`, "
        "`refresh_touchpoints`, `compute_credits`, `desired_writes` and the hand-off's "
        "`HandoffTracker.record_planned` + `.refresh` (records = people whose stage was "
        "derived, touchpoints written or dropped, opportunities whose credits were "
        "recomputed), `Planner.plan` (records = outbox rows planned) "
        "and `push` (records = records applied or rejected). Other: the time in no stream "
        "and no stage (process start, imports, store open, exit).",
        stages_table(results),
        "API calls (pull and push) against the minimum the page and batch sizes allow (the "
        "backfill: reads as in `bench_pull`, plus writes: HubSpot's in full batches of 100; "
        "Salesforce's per object, above `bulk_threshold` in Bulk API 2.0 ingest jobs of "
        "10,001 to 20,002 rows (5 calls each), else sObject Collections of 200, the Leads "
        "created by Collections), records written and peak RSS:",
        calls_table(results),
        "Incremental run after 1% of HubSpot contacts, Salesforce Leads and Contacts changed:",
        incremental_table(results),
        "Backfill of a fresh org with the emulators limited like a HubSpot Enterprise portal "
        "(190 requests per 10 s, 5 searches/s; `requests_per_10s = 190`) and a Salesforce "
        f"Enterprise org (daily allowance {SALESFORCE_DAILY:,}, chosen as 100,000 + 1,000 x 100 "
        "licences; Salesforce has no per-second limit, so its share is of the day). HubSpot "
        "calling s: the wall time of the HubSpot pull streams plus the push stage's. "
        "Allowance-bound s: the time the allowance alone needs for these calls, max(HubSpot "
        "calls / 19 per s, searches / 5 per s); the goal is the whole pass within it plus 10%.",
        limited_table(results) if any(r.limited for r in results)
        else f"(not run at this scale: the Enterprise-limited backfill runs at scales up to "
             f"`--limited-up-to` people, here {', '.join(str(r.scale) for r in results)} "
             "is above it; it seeds a second org and its pass is bound by the allowance)",
        f"Measured on: {machine()}. Command: `python -m benchmarks.bench_pipeline "
        f"{' '.join(argv)}`.",
    ])


def arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--scale", type=int, action="append",
                        help="people in the org; repeat for several (default 10,000 and 100,000)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--touches-per-person", type=float, default=10.0)
    parser.add_argument("--limited-up-to", type=int, default=LIMITED_UP_TO, metavar="N",
                        help="run the Enterprise-limited backfill (a second org, seeded "
                        "afresh) only at scales up to N people (default 100,000; 0: never)")
    parser.add_argument("--workdir", type=Path, help="where stores, configs and logs go")
    parser.add_argument("--syncd-pass", type=Path, metavar="CONFIG", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = arguments(argv)
    if args.syncd_pass is not None:
        return syncd_pass(args.syncd_pass)
    scales: list[int] = args.scale or [10_000, 100_000]
    results = [measure(scale, args.seed, args.touches_per_person,
                       prepared(args.workdir, f"pipeline-{scale}"), scale <= args.limited_up_to)
               for scale in scales]
    shown = [f"--scale {s}" for s in scales]
    if args.touches_per_person != 10.0:
        shown.append(f"--touches-per-person {args.touches_per_person:g}")
    if args.limited_up_to != LIMITED_UP_TO:
        shown.append(f"--limited-up-to {args.limited_up_to}")
    print(report(results, shown))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
