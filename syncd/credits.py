"""Attribution credits per opportunity and model (ARCHITECTURE section 5, "Attribution"), and
the values the write-back needs.

`compute_credits` gathers, for each opportunity that may have changed, its inputs: its people
(contact roles and/or every live Contact of its account, per the link mode), its window, the
touches of its people inside the window, its amount, dates and stage, and the model settings.
A digest of those inputs is kept in `attribution_input`; an opportunity is recomputed only when
its digest changed, and then every model's credits are rewritten. Which opportunities "may have
changed" is worked out from what changed since the last computation (entities, links, touches,
contact roles, Contacts' accounts, touches that an open window grew to take in), so the cost of
a pass follows the number of changed opportunities, not the size of the org.

`desired_writes` gives the values for the write-back: first and latest touch labels per
opportunity, won revenue per Salesforce Campaign and per person under the written model. A
Campaign's revenue is a sum of `credit_label` rows (each won opportunity's credit per model and
label, written with its credits), so re-summing the Campaigns a change touches reads a few rows
per opportunity, not every credit of every touch of their names.

Won and closed are Salesforce's `IsWon`/`IsClosed` (derived from the stage's OpportunityStage
row, kept on the entity by reconcile), or, for an opportunity without a Salesforce record, the
unified stage: `closedwon` is won, `closedwon` and `closedlost` are closed.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable, Mapping
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from syncd.attribution import (
    SALES_KINDS,
    AttributionSettings,
    Touch,
    Window,
    credits_of_ordered,
    ordered,
    window_for,
)
from syncd.store import Store, iso, parse_iso
from syncd.store.attribution import AttributionStore, CreditRow, TouchRow
from syncd.store.unified import Entity
from syncd.writeback import in_cents

__all__ = [
    "CreditReport",
    "Desired",
    "OpportunityInputs",
    "compute_credits",
    "desired_writes",
    "opportunity_inputs",
]

THROUGH = "attribution_through_run"
COMPUTED_AT = "attribution_computed_at"
SETTINGS = "attribution_settings"
_BATCH = 500
_CENT = Decimal("0.01")
_CLOSED = frozenset({"closedwon", "closedlost"})


@dataclass(frozen=True)
class OpportunityInputs:
    """Everything an opportunity's credits are computed from."""

    id: str
    created: datetime
    close: date | None
    stage: str
    is_closed: bool
    is_won: bool
    amount: Decimal | None
    people: tuple[str, ...]
    window: Window
    touches: tuple[Touch, ...]  # inside the window, ordered
    person_of: Mapping[str, str]  # touch id -> person

    def digest(self, settings: AttributionSettings) -> str:
        # The window's end is left out on purpose: no model's shares depend on it except
        # through which touches are inside, and those are in the digest.
        parts = [
            settings.fingerprint(),
            iso(self.created),
            str(self.close),
            f"{self.stage}|{self.is_closed}|{self.is_won}",
            str(self.amount),
            ",".join(self.people),
            *(
                f"{t.id}|{t.at.isoformat()}|{t.kind}|{t.label}|{t.sales}|{self.person_of[t.id]}"
                for t in self.touches
            ),
        ]
        return hashlib.sha256("\n".join(parts).encode()).hexdigest()


@dataclass
class CreditReport:
    considered: int = 0
    recomputed: set[str] = field(default_factory=set)  # credits rewritten (or dropped)
    dropped: set[str] = field(default_factory=set)  # gone: merged, deleted, no creation date
    labels: set[str] = field(default_factory=set)  # lower-cased labels whose revenue may move
    people: set[str] = field(default_factory=set)  # people whose revenue may move
    full: bool = False
    credits: int = 0


@dataclass(frozen=True)
class Desired:
    """Write-back values. `full`: every entry (a person or Campaign absent has 0 revenue);
    otherwise only those the last computation may have changed, zeros included."""

    touch_labels: dict[str, tuple[str, str]]  # opportunity -> (first label, latest label)
    campaign_revenue: dict[str, Decimal]  # Salesforce Campaign id -> won revenue
    person_revenue: dict[str, Decimal]  # person -> won revenue credited to their touches
    full: bool


def compute_credits(
    store: Store,
    settings: AttributionSettings,
    run_start: datetime,
    run: int,
    *,
    touched: Iterable[str] = (),
    everyone_touched: bool = False,
    full: bool = False,
) -> CreditReport:
    """Recompute the credits of every opportunity whose inputs changed since the last
    computation, in one transaction. `touched`: people whose touches `refresh_touchpoints`
    changed (TouchReport.people), `everyone_touched`: and everyone with a touch (its
    `everyone`). `full`: consider every opportunity (digests still decide).

    A full computation leaves `people` empty: every person's revenue may move, and the
    write-back takes them all (a backfill would otherwise hold every person's id here)."""
    attribution = AttributionStore(store.db.conn)
    unified = store.unified
    after = int(unified.get_state(THROUGH) or 0)
    full = full or after == 0 or unified.get_state(SETTINGS) != settings.fingerprint()
    report = CreditReport(full=full)
    if not full:
        report.people |= set(touched)
        if everyone_touched:
            report.people |= attribution.touched_people()
    with store.transaction():
        if full:
            candidates = set(unified.entity_ids("opportunity"))
        else:
            since = unified.get_state(COMPUTED_AT) or iso(run_start)
            candidates = _candidates(store, attribution, after, since, run_start, report.people)
        candidates |= attribution.computed_but_gone()
        queue = sorted(candidates)
        # Every opportunity at once: credit's index is sorted once at the end, not kept up
        # to date through a million and more rows.
        with attribution.indexes_deferred("credit") if full else nullcontext():
            for start in range(0, len(queue), _BATCH):
                batch = queue[start : start + _BATCH]
                _compute(store, attribution, settings, run_start, run, batch, report)
        unified.set_state(THROUGH, str(run))
        unified.set_state(COMPUTED_AT, iso(run_start))
        unified.set_state(SETTINGS, settings.fingerprint())
    return report


def _candidates(
    store: Store,
    attribution: AttributionStore,
    after: int,
    since: str,
    run_start: datetime,
    touched: set[str],
) -> set[str]:
    """Opportunities whose inputs may have changed after pass `after`."""
    people = set(touched) | attribution.entities_updated("person", after)
    people |= attribution.entities_relinked("person", after)
    people |= attribution.people_touched_after(after)
    # Touches an open window took in as time passed (an Event scheduled ahead, say).
    grown = attribution.people_touched_between(since, iso(run_start))
    accounts = attribution.entities_updated("account", after)
    accounts |= _accounts_of(store, people | grown)
    opportunities = attribution.entities_updated("opportunity", after)
    opportunities |= attribution.entities_relinked("opportunity", after)
    opportunities |= _opportunities_of_changed_roles(store, after)
    opportunities |= store.unified.opportunities_of(people | grown, accounts)
    # People who left an opportunity (a Contact moved to another account) are found through
    # the credits that still name their touches.
    opportunities |= attribution.credited_opportunities(people)
    return opportunities


def _opportunities_of_changed_roles(store: Store, after: int) -> set[str]:
    objects = [("salesforce", "OpportunityContactRole"), ("salesforce", "Opportunity")]
    ids: set[str] = set()
    for record in store.changed_records(objects, after):
        opp = record["id"] if record["object"] == "Opportunity" else record["data"].get(
            "OpportunityId"
        )
        if opp:
            ids.add(str(opp))
    linked = AttributionStore(store.db.conn).linked("salesforce", "Opportunity", ids)
    return {entity for entity, _ in linked.values()}


def _accounts_of(store: Store, people: set[str]) -> set[str]:
    """The accounts these people belong to (their fields are not read: a pass after a
    backfill names nearly everyone)."""
    return {account for account in store.unified.account_ids("person", people).values() if account}


def _compute(
    store: Store,
    attribution: AttributionStore,
    settings: AttributionSettings,
    run_start: datetime,
    run: int,
    batch: list[str],
    report: CreditReport,
) -> None:
    inputs = opportunity_inputs(store, settings, run_start, batch)
    stored = attribution.digests(batch)
    digests = {opp: i.digest(settings) for opp, i in inputs.items()}
    gone = [opp for opp in batch if opp not in inputs and opp in stored]
    redo = [opp for opp in inputs if stored.get(opp) != digests[opp]]
    report.considered += len(batch)
    if not redo and not gone:
        return
    # What the credits being replaced gave: the people and the labels whose revenue moves.
    before = [opp for opp in redo + gone if opp in stored]
    model = settings.written_model
    if not report.full:
        report.people |= {p for _, _, p in attribution.credited_touches(before, model) if p}
    report.labels |= attribution.credited_labels(before, model)
    rows: list[tuple[str, str, str, float, float]] = []
    labels: list[tuple[str, str, str, int]] = []
    people: list[tuple[str, str, str, int]] = []
    for opp in redo:
        found = inputs[opp]
        credits = credits_of_ordered(found.touches, found.created, settings.custom, found.amount)
        rows += [(opp, *credit) for credit in credits]
        if found.is_won:
            labels += _won_sums(opp, {t.id: t.label.lower() for t in found.touches}, credits)
            people += _won_sums(opp, found.person_of, credits)
        if not report.full:
            report.people |= set(found.person_of.values())
    report.labels |= {label for _, m, label, _ in labels if m == model}
    digested = [(opp, digests[opp]) for opp in redo]
    attribution.replace_credits(redo + gone, rows, digested, run, labels, people)
    report.recomputed |= set(redo) | set(gone)
    report.dropped |= set(gone)
    report.credits += len(rows)


def _won_sums(
    opp: str, key_of: Mapping[str, str], credits: Iterable[tuple[str, str, float, float]]
) -> list[tuple[str, str, str, int]]:
    """(opportunity, model, key, cents) of a won opportunity's credits, summed per model and
    the key of each touch (its lower-cased label, or its person; none: left out)."""
    cents: defaultdict[tuple[str, str], int] = defaultdict(int)
    for model, touch, _, amount in credits:
        # Amounts are whole cents: round() undoes the binary float's last digit.
        cents[model, key_of[touch]] += round(amount * 100)
    return [(opp, model, key, total) for (model, key), total in cents.items() if key]


def credit_rows(inputs: OpportunityInputs, settings: AttributionSettings) -> list[CreditRow]:
    """Every model's credits of one opportunity (touches with a share of 0 get no row)."""
    return [
        CreditRow(inputs.id, *credit)
        for credit in credits_of_ordered(
            inputs.touches, inputs.created, settings.custom, inputs.amount
        )
    ]


# -- inputs --


def opportunity_inputs(
    store: Store, settings: AttributionSettings, run_start: datetime, ids: list[str]
) -> dict[str, OpportunityInputs]:
    """The inputs of these opportunities; an opportunity merged away, without a live record or
    without a creation time is left out."""
    unified = store.unified
    attribution = AttributionStore(store.db.conn)
    entities = {
        e.id: e for e in unified.entities("opportunity", ids).values() if e.merged_into is None
    }
    created = _created(store, entities)
    people = _people(store, attribution, settings.link_mode, entities)
    # (close date, closed, won) of each opportunity with a creation time, and its window.
    states = {
        opp: (_date(e.fields.get("closedate") or e.fields.get("_close_date")), *_state(e.fields))
        for opp, e in entities.items()
        if opp in created
    }
    windows = {
        opp: window_for(created[opp], close, closed, run_start, settings.lookback_days)
        for opp, (close, closed, _) in states.items()
    }
    # Only the touches inside each window are read (an opportunity's people touch far more).
    spans = {opp: (iso(window.start), iso(window.end)) for opp, window in windows.items()}
    touches = attribution.touchpoints_between(
        (opp, person, *spans[opp]) for opp in windows for person in people[opp]
    )
    made: dict[str, Touch] = {}  # a touch of several opportunities' people is parsed once
    found: dict[str, OpportunityInputs] = {}
    for opp, window in windows.items():
        fields = entities[opp].fields
        stage = str(fields.get("stage") or "")
        close, closed, won = states[opp]
        inside = [
            row
            for row in touches.get(opp, [])
            if settings.include_sales_touches or row.kind not in SALES_KINDS
        ]
        amount = fields.get("amount")
        found[opp] = OpportunityInputs(
            opp,
            created[opp],
            close,
            stage,
            closed,
            won,
            None if amount is None else Decimal(str(amount)),
            tuple(people[opp]),
            window,
            tuple(ordered(made.get(row.id) or _touch(row, made) for row in inside)),
            {row.id: row.person_id or "" for row in inside},
        )
    return found


def _touch(row: TouchRow, made: dict[str, Touch]) -> Touch:
    # `parse_iso` without rewriting the store's `Z`, which Python 3.11 reads as it is (a
    # quarter of a million touches per 10,000 opportunities).
    at = datetime.fromisoformat(row.at)
    if at.tzinfo is not UTC:
        at = parse_iso(row.at)
    touch = Touch(row.id, at, row.kind, row.label, row.sales, row.source_id)
    made[row.id] = touch
    return touch


def _state(fields: Mapping[str, Any]) -> tuple[bool, bool]:
    """(closed, won): Salesforce's IsClosed/IsWon where the opportunity has an Opportunity
    (reconcile keeps them as `_is_closed`/`_is_won`), else the unified stage."""
    stage = fields.get("stage")
    closed = fields.get("_is_closed")
    won = fields.get("_is_won")
    return (
        bool(closed) if closed is not None else stage in _CLOSED,
        bool(won) if won is not None else stage == "closedwon",
    )


def _date(value: Any) -> date | None:
    if value is None or value == "":
        return None
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


def _created(store: Store, entities: Mapping[str, Entity]) -> dict[str, datetime]:
    """The Salesforce CreatedDate (kept by reconcile as `_created`), else `createdate` of the
    opportunity's live HubSpot deal."""
    created = {
        opp: _instant(entity.fields["_created"])
        for opp, entity in entities.items()
        if entity.fields.get("_created")
    }
    rest = [opp for opp in entities if opp not in created]
    links = store.unified.links_of("opportunity", rest)
    deals = {
        lk.record_id: opp
        for opp, found in links.items()
        for lk in found
        if lk.state == "live" and lk.system == "hubspot" and lk.object == "deals"
    }
    for record in AttributionStore(store.db.conn).source_rows("hubspot", "deals", deals):
        when = record["data"].get("createdate")
        if when:
            created[deals[record["id"]]] = _instant(when)
    return created


def _instant(text: Any) -> datetime:
    return datetime.fromisoformat(str(text).replace("Z", "+00:00")).astimezone(UTC)


def _people(
    store: Store,
    attribution: AttributionStore,
    link_mode: str,
    entities: Mapping[str, Entity],
) -> dict[str, list[str]]:
    """Each opportunity's people: contact roles and/or the people of its account (a person's
    account is their Salesforce Contact's Account, kept on the entity by reconcile)."""
    roles = store.unified.roles_of(entities) if link_mode != "account" else {}
    raw = {opp: [person for person, _ in roles.get(opp, [])] for opp in entities}
    by_account = link_mode == "account"
    fallback = {
        opp: entity.account_id
        for opp, entity in entities.items()
        if entity.account_id and (by_account or (link_mode == "hybrid" and not raw[opp]))
    }
    of_account = store.unified.of_accounts("person", set(fallback.values()))
    for opp, account in fallback.items():
        raw[opp] = of_account.get(str(account), [])
    survivors = attribution.survivors("person", {p for ps in raw.values() for p in ps})
    return {
        opp: sorted({s for p in ps if (s := survivors.get(p)) is not None})
        for opp, ps in raw.items()
    }


# -- write-back values --


def desired_writes(
    store: Store, settings: AttributionSettings, changes: CreditReport | None = None
) -> Desired:
    """The write-back values: all of them (`changes` None or a full computation), or only the
    entries the computation `changes` may have moved."""
    attribution = AttributionStore(store.db.conn)
    full = changes is None or changes.full
    model = settings.written_model
    opps = None if full or changes is None else changes.recomputed
    labels = {
        opp: (ends["first_touch"], ends["last_touch"])
        for opp, ends in attribution.end_labels(opps).items()
        if "first_touch" in ends and "last_touch" in ends
    }
    campaigns = attribution.campaigns()
    wanted = None if full or changes is None else changes.labels
    if wanted is not None:
        campaigns = [(cid, name) for cid, name in campaigns if name.lower() in wanted]
    by_label = in_cents(attribution.won_by_label(model, {n.lower() for _, n in campaigns}))
    people = None if full or changes is None else changes.people
    by_person = in_cents(attribution.won_by_person(model, people))
    return Desired(
        touch_labels=labels,
        campaign_revenue={cid: by_label.get(name.lower(), Decimal("0.00")) for cid, name in
                          campaigns},
        person_revenue={p: by_person.get(p, Decimal("0.00")) for p in (people or by_person)},
        full=full,
    )
