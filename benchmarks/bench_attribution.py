"""Attribution at scale: touchpoints and credits (every model) for a synthetic org of 100,000
people, about 10,000 opportunities and 1,000,000 touch records, built by direct inserts through
the store (not through the emulators). Measures a full computation, then incremental ones
after 0.1%, 1% and 10% of the opportunities changed (`--changes`). Prints a Markdown table, in
wall and CPU seconds (the CPU seconds are what other processes on the machine do not distort).

    PYTHONPATH=. .venv/bin/python benchmarks/bench_attribution.py [--people 100000]
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

from benchmarks.bench_pull import machine
from syncd.attribution import MODELS, AttributionSettings
from syncd.credits import CreditReport, Desired, compute_credits, desired_writes
from syncd.model import Page, Record
from syncd.store import Store
from syncd.store.attribution import AttributionStore
from syncd.store.unified import Entity, Link
from syncd.touchpoints import TouchReport, refresh_touchpoints

T = TypeVar("T")
NOW = datetime(2026, 6, 1, tzinfo=UTC)
KINDS = ("form_submissions", "email_events", "CampaignMember", "Task", "Event")
STAGES = ("closedwon", "closedwon", "closedlost", "qualifiedtobuy", "contractsent")


def _ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


def _sf(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%S.000+0000")


def _chunks(items: list[T], size: int = 20000) -> Iterator[list[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class Org:
    """The synthetic org: people in accounts, opportunities on accounts, touch records."""

    def __init__(self, store: Store, people: int, seed: int = 7) -> None:
        self.store, self.people, self.random = store, people, random.Random(seed)
        self.accounts = max(1, people // 10)
        self.opportunities = max(1, people // 10)

    def build(self, touches: int) -> None:
        self._people_and_accounts()
        self._opportunities()
        self._touches(touches)

    def _save(self, system: str, obj: str, records: list[Record]) -> None:
        for chunk in _chunks(records):
            self.store.save_page(1, system, Page(obj, chunk, cursor="bench"))

    def _people_and_accounts(self) -> None:
        unified = self.store.unified
        accounts = [Entity("account", f"acc{a}", None, {"name": f"Account {a}"}, {}, None, 1, 1)
                    for a in range(self.accounts)]
        people = [Entity("person", f"per{p}", f"p{p}@example.com", {"email": f"p{p}@example.com"},
                         {}, None, 1, 1, f"acc{p % self.accounts}") for p in range(self.people)]
        links = [Link("salesforce", "Contact", f"003{p:015d}", "person", f"per{p}")
                 for p in range(self.people)]
        contacts = [Record("salesforce", "Contact", f"003{p:015d}", NOW,
                           {"Id": f"003{p:015d}", "AccountId": f"001{p % self.accounts:015d}",
                            "Email": f"p{p}@example.com"}) for p in range(self.people)]
        with self.store.transaction():
            unified.save_entities(accounts)
            unified.save_entities(people)
            unified.save_links(links, 1)
        self._save("salesforce", "Contact", contacts)
        campaigns = [Record("salesforce", "Campaign", f"701{c:015d}", NOW,
                            {"Id": f"701{c:015d}", "Name": f"Campaign {c}"}) for c in range(50)]
        self._save("salesforce", "Campaign", campaigns)

    def _opportunities(self) -> None:
        rnd, unified = self.random, self.store.unified
        entities, links, roles = [], [], []
        for o in range(self.opportunities):
            account = rnd.randrange(self.accounts)
            created = NOW - timedelta(days=rnd.uniform(0, 700))
            close = created + timedelta(days=rnd.uniform(10, 120))
            stage = rnd.choice(STAGES)
            entities.append(Entity("opportunity", f"opp{o}", None, {
                "name": f"Deal {o}", "amount": Decimal(rnd.randrange(1000, 500000)),
                "closedate": close.date().isoformat(), "stage": stage,
                "_created": _sf(created), "_is_closed": stage.startswith("closed"),
                "_is_won": stage == "closedwon"}, {}, None, 1, 1, f"acc{account}"))
            links.append(Link("salesforce", "Opportunity", f"006{o:015d}", "opportunity",
                              f"opp{o}"))
            if rnd.random() < 0.6:  # the others fall back to their account's people
                members = range(account, self.people, self.accounts)
                for person in rnd.sample(list(members)[:30], k=min(2, len(members))):
                    roles.append((f"opp{o}", f"per{person}", None, False, f"00K{o}_{person}"))
        with self.store.transaction():
            unified.save_entities(entities)
            unified.save_links(links, 1)
            unified.save_roles(roles)

    def _touches(self, count: int) -> None:
        rnd = self.random
        batches: dict[str, list[Record]] = {kind: [] for kind in KINDS}
        for t in range(count):
            person = rnd.randrange(self.people)
            at = NOW - timedelta(days=rnd.uniform(0, 1100))
            kind = KINDS[t % len(KINDS)]
            batches[kind].append(self._record(kind, t, person, at))
            if len(batches[kind]) >= 20000:
                self._flush(kind, batches)
        for kind in KINDS:
            self._flush(kind, batches)

    def _flush(self, kind: str, batches: dict[str, list[Record]]) -> None:
        system = "hubspot" if kind in ("form_submissions", "email_events") else "salesforce"
        self._save(system, kind, batches[kind])
        batches[kind] = []

    def _record(self, kind: str, t: int, person: int, at: datetime) -> Record:
        contact, email = f"003{person:015d}", f"p{person}@example.com"
        data: dict[str, Any]
        if kind == "form_submissions":
            data = {"email": email, "form_name": f"Campaign {t % 50}", "submittedAt": _ms(at)}
        elif kind == "email_events":
            data = {"recipient": email, "campaign_name": f"Campaign {t % 50}",
                    "created": _ms(at), "type": "CLICK"}
        elif kind == "CampaignMember":
            data = {"CampaignId": f"701{t % 50:015d}", "ContactId": contact,
                    "HasResponded": True, "FirstRespondedDate": at.date().isoformat()}
        else:
            when = "CreatedDate" if kind == "Task" else "StartDateTime"
            data = {"WhoId": contact, "Type": "Call" if t % 3 else None, when: _sf(at)}
        system = "hubspot" if kind in ("form_submissions", "email_events") else "salesforce"
        return Record(system, kind, f"{kind[:3]}{t:012d}", at, data)


class Took(float):
    """Wall seconds of one step, carrying its CPU seconds (`process_time`, which the load of
    other processes on the machine does not distort)."""

    cpu: float

    def __new__(cls, wall: float, cpu: float) -> Took:
        took = super().__new__(cls, wall)
        took.cpu = cpu
        return took


def timed(step: Callable[[], T]) -> tuple[T, Took]:
    began, began_cpu = time.perf_counter(), time.process_time()
    result = step()
    return result, Took(time.perf_counter() - began, time.process_time() - began_cpu)


def _cells(*steps: Took) -> str:
    wall, cpu = sum(steps), sum(s.cpu for s in steps)
    return f"{wall:.2f} | {cpu:.2f}"


def change_opportunities(store: Store, share: float, run: int) -> int:
    """Raise the amount of `share` of the opportunities, as reconcile would save it."""
    ids = list(store.unified.entity_ids("opportunity"))  # streamed by the store
    chosen = ids[:: max(1, int(1 / share))]
    entities = store.unified.entities("opportunity", chosen)
    for entity in entities.values():
        entity.fields["amount"] = entity.fields["amount"] + 1
        entity.updated_run = run
    with store.transaction():
        store.unified.save_entities(entities.values())
    return len(entities)


class Incremental(NamedTuple):
    """One incremental computation after `changed` opportunities changed."""

    changed: int
    touches: TouchReport
    credits: CreditReport
    desired: Desired
    took: tuple[Took, Took, Took]


def incremental(store: Store, settings: AttributionSettings, share: float, run: int
                ) -> Incremental:
    changed = change_opportunities(store, share, run)
    touches, touch_took = timed(lambda: refresh_touchpoints(store, run - 1, run))
    credits, credit_took = timed(lambda: compute_credits(store, settings, NOW, run))
    desired, desired_took = timed(lambda: desired_writes(store, settings, credits))
    return Incremental(changed, touches, credits, desired, (touch_took, credit_took,
                                                           desired_took))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--people", type=int, default=100_000)
    parser.add_argument("--touches", type=int, default=0, help="default: 10 per person")
    parser.add_argument("--changes", default="0.001,0.01,0.1",
                        help="shares of the opportunities changed before each incremental "
                             "computation, in turn (default: 0.001,0.01,0.1)")
    args = parser.parse_args(argv)
    touches = args.touches or args.people * 10
    shares = [float(share) for share in args.changes.split(",") if share]
    settings = AttributionSettings()
    with tempfile.TemporaryDirectory() as folder:
        store = Store(Path(folder) / "bench.db")
        org = Org(store, args.people)
        _, build = timed(lambda: org.build(touches))
        made, full_touch = timed(lambda: refresh_touchpoints(store, 0, 2))
        credits, full_credit = timed(lambda: compute_credits(store, settings, NOW, 2))
        desired, full_desired = timed(lambda: desired_writes(store, settings))
        rows = AttributionStore(store.db.conn).credit_count()
        passes = [incremental(store, settings, share, run)
                  for run, share in enumerate(shares, start=3)]
        store.close()
    print(f"Machine: {machine()}")
    print(f"Org: {args.people:,} people, {org.opportunities:,} opportunities, "
          f"{touches:,} touch records (built in {build:.1f}s)\n")
    print("| step | work | seconds | CPU seconds |")
    print("|---|---|---:|---:|")
    print(f"| full: touchpoints | {made.written:,} touchpoints | {_cells(full_touch)} |")
    print(f"| full: credits, all {len(MODELS)} models | {len(credits.recomputed):,} "
          f"opportunities, {rows:,} credit rows | {_cells(full_credit)} |")
    print(f"| full: write-back values | {len(desired.touch_labels):,} opportunities, "
          f"{len(desired.person_revenue):,} people | {_cells(full_desired)} |")
    print(f"| **full total** | | {_cells(full_touch, full_credit, full_desired)} |")
    for again in passes:
        touch_took, credit_took, desired_took = again.took
        print(f"| incremental ({again.changed:,} opportunities changed): touchpoints | "
              f"{again.touches.written:,} touchpoints | {_cells(touch_took)} |")
        print(f"| incremental ({again.changed:,}): credits | "
              f"{len(again.credits.recomputed):,} recomputed of {again.credits.considered:,} "
              f"considered | {_cells(credit_took)} |")
        print(f"| incremental ({again.changed:,}): write-back values | "
              f"{len(again.desired.touch_labels):,} opportunities, "
              f"{len(again.desired.campaign_revenue):,} Campaigns, "
              f"{len(again.desired.person_revenue):,} people | {_cells(desired_took)} |")
        print(f"| **incremental total ({again.changed:,})** | | {_cells(*again.took)} |")


if __name__ == "__main__":
    main()
