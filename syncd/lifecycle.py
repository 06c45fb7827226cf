"""Unified lifecycle stages (ARCHITECTURE section 5, Lifecycle; `mappings/lifecycle.toml`).

A person's stage is the highest of what the signals say: HubSpot's `lifecyclestage`,
Salesforce's `Lifecycle_Stage__c` on live unconverted Leads and Contacts, any live Lead or
Contact, Lead Status values, conversion, contact roles on open and won opportunities, and the
person's stage before: stages move forward only, unless a recycle rule fires (once, when its
condition starts to hold). A person whose HubSpot stage is `other` or unlisted keeps both stage
fields as they are. The date each stage was first entered is kept in `stage_history`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from itertools import chain
from typing import Any

from syncd.identity import KindSpec
from syncd.reconcile import Sides, choose_sides, collector_paused
from syncd.rules import is_blank
from syncd.stages import LifecycleSettings, RecycleRule, Stage
from syncd.store import Store, iso, parse_iso
from syncd.store.dirty import DirtyIds, sorted_chunks
from syncd.store.unified import Entity, Link, SourceKey

STAGE = "_stage"  # entity field: the unified stage (HubSpot value), None when excluded
EXCLUDED = "_stage_excluded"  # HubSpot says `other` or a stage the file does not list
RECYCLED = "_recycled"  # rule name -> the condition it fired on
RECYCLED_AT = "_recycled_at"
RECONCILED_THROUGH = "reconciled_through_run"  # the pipeline's watermark: last complete pass


class Signal:
    """A stage a person's data implies, since when and why. `at` (the ISO time the signal
    started to hold) is worked out from the CRM's value when first asked for: most passes
    never ask, the stages the person reached being in `stage_history` already."""

    __slots__ = ("_at", "_default", "_raw", "source", "stage", "stage_field")

    def __init__(
        self,
        stage: Stage,
        raw: Any,
        source: str,
        stage_field: bool = False,  # a stored stage value (can be stale), not a live fact
        default: str = "",  # `at` when `raw` is no time
    ) -> None:
        self.stage, self.source, self.stage_field = stage, source, stage_field
        self._raw, self._default = raw, default
        self._at: str | None = None

    @classmethod
    def known(cls, stage: Stage, at: str, source: str) -> Signal:
        """A signal whose ISO time is known already."""
        signal = cls(stage, None, source)
        signal._at = at
        return signal

    @property
    def at(self) -> str:
        if self._at is None:
            self._at = crm_instant(self._raw) or self._default
        return self._at


@dataclass(frozen=True)
class Opportunity:
    id: str
    is_closed: bool
    is_won: bool
    created: str | None
    close_date: str | None


class StageDeriver:
    """Recomputes the stage of the people it is given; returns those whose stage moved."""

    def __init__(
        self, store: Store, settings: LifecycleSettings, spec: KindSpec, run: int, now: datetime
    ) -> None:
        self.store, self.settings, self.spec, self.run, self.now = store, settings, spec, run, now
        self._now = iso(now)

    def people_touched_by(self, opportunities: Iterable[str], into: DirtyIds | set[str]) -> None:
        """Add to `into` the people whose opportunity signals may have changed with these
        opportunities, or with time alone: a lost opportunity that has just grown old enough
        for a `lost_after_days` rule changes no record, so no pull would make its people
        dirty. A batch of opportunities at a time: a backfill's opportunities name nearly every
        person."""
        seen: set[str] = set()  # accounts whose people are in already
        lost = self._lost_long_enough()
        batches = chain(sorted_chunks(opportunities, 2000), sorted_chunks(lost, 2000))
        for batch in batches:
            into.update(self._people_of(batch, seen))

    def _lost_long_enough(self) -> set[str]:
        """Lost opportunities whose close date passed a rule's N days since the last complete
        pass (all of them on the first pass). Measured from the last *complete* pass, so a
        pass stopped before planning finds the same ones again."""
        lifecycle = self.store.lifecycle
        through = int(self.store.unified.get_state(RECONCILED_THROUGH) or 0)
        before = lifecycle.run_started_at(through) if through else None
        found: set[str] = set()
        for rule in self.settings.recycle:
            if rule.lost_after_days is None:
                continue
            age = timedelta(days=rule.lost_after_days)
            after = (parse_iso(before) - age).date().isoformat() if before else None
            found.update(lifecycle.lost_opportunities(after, (self.now - age).date().isoformat()))
        return found

    def _people_of(self, opportunities: list[str], seen: set[str]) -> set[str]:
        unified = self.store.unified
        # Their accounts only, not their fields: a backfill names every opportunity.
        opps = unified.account_ids("opportunity", opportunities)
        roles = unified.roles_of(opps)
        people = {person for found in roles.values() for person, _ in found}
        if self.settings.link_mode != "contact_roles":
            accounts = {account for account in opps.values() if account} - seen
            seen |= accounts
            people |= {
                p for found in unified.of_accounts("person", accounts).values() for p in found
            }
        return people

    def derive(
        self,
        people: Iterable[str],
        batch: int = 2000,
        between: Callable[[], None] = lambda: None,
    ) -> int:
        """Derive these people's stages; how many of them moved. A pass's dirty people (a
        million in a backfill) are read a batch at a time, and the moved ones are not kept.
        `between` is called after each batch's transaction."""
        moved = 0
        with collector_paused():
            for chunk in sorted_chunks(people, batch):
                with self.store.transaction():
                    moved += len(self._derive_chunk(chunk))
                between()
        return moved

    def _derive_chunk(self, chunk: list[str]) -> set[str]:
        unified = self.store.unified
        entities = unified.entities("person", chunk)
        links, records = self._person_records(chunk)
        opportunities = self._opportunities(entities)
        history = self.store.lifecycle.history(chunk)
        saved, entered, moved = [], [], set()
        for person_id, entity in entities.items():
            if entity.merged_into:
                continue
            sides = choose_sides(self.spec, links.get(person_id, []), records)
            converted = [
                records[lk.key]
                for lk in links.get(person_id, [])
                if lk.state == "converted" and lk.key in records
            ]
            result = self._stage(entity, sides, converted, opportunities.get(person_id, []))
            fields, signals = result
            if fields != entity.fields:
                if fields.get(STAGE) != entity.fields.get(STAGE):
                    moved.add(person_id)
                saved.append(entity.sharing_sides(fields=fields, updated_run=self.run))
            entered += _first_entries(
                person_id, fields.get(STAGE), signals, history.get(person_id, {}), self.settings
            )
        unified.save_fields(saved)  # only fields moved (merged entities were skipped)
        self.store.lifecycle.record_entries(entered, self.run)
        return moved

    def _person_records(
        self, chunk: list[str]
    ) -> tuple[dict[str, list[Link]], Mapping[SourceKey, dict[str, Any]]]:
        """The people's links and linked records: only the fields a stage is derived from,
        picked out in SQLite (decoding whole records was two thirds of deriving), unless a
        stage's HubSpot value cannot name a JSON field there."""
        values = [stage.hubspot for stage in self.settings.stages]
        if any('"' in value for value in values):
            links = self.store.unified.links_of("person", chunk)
            return links, self.store.records(lk.key for found in links.values() for lk in found)
        return self.store.lifecycle.person_records(chunk, values)

    def _stage(
        self,
        entity: Entity,
        sides: Sides,
        converted: list[dict[str, Any]],
        opportunities: list[Opportunity],
    ) -> tuple[dict[str, Any], list[Signal]]:
        fields = dict(entity.fields)
        hubspot_value = sides.hubspot["data"].get("lifecyclestage") if sides.hubspot else None
        if not is_blank(hubspot_value) and self.settings.stage(hubspot_value) is None:
            fields.update({STAGE: None, EXCLUDED: True})
            return fields, []
        fields.pop(EXCLUDED, None)
        signals = self._signals(sides, converted, opportunities)
        recycled = dict(fields.get(RECYCLED) or {})
        fired = self._recycle(sides, opportunities, recycled)
        since = fields.get(RECYCLED_AT)
        if fired is not None:
            since = self._now
            fields.update({RECYCLED: recycled, RECYCLED_AT: since})
        previous = self.settings.stage(fields.get(STAGE))
        if previous is not None and fired is None:
            signals.append(Signal.known(previous, self._now, "previous stage"))
        counted = [s for s in signals if not (s.stage_field and since and s.at <= since)]
        if fired is not None:
            counted.append(Signal.known(fired, since or self._now, "recycled"))
        best = max(counted, key=lambda s: s.stage.rank, default=None)
        fields[STAGE] = best.stage.hubspot if best else None
        return fields, counted

    def _signals(
        self, sides: Sides, converted: list[dict[str, Any]], opportunities: list[Opportunity]
    ) -> list[Signal]:
        found: list[Signal] = []
        settings = self.settings

        def add(stage_value: str | None, at: Any, source: str, stage_field: bool = False) -> None:
            stage = settings.stage(stage_value)
            if stage is not None:
                found.append(Signal(stage, at, source, stage_field, self._now))

        if sides.hubspot is not None:
            data = sides.hubspot["data"]
            value = data.get("lifecyclestage")
            if not is_blank(value):
                add(
                    value,
                    data.get(f"hs_lifecyclestage_{value}_date") or sides.hubspot["updated_at"],
                    "HubSpot lifecyclestage",
                    stage_field=True,
                )
        for record in sides.salesforce_all:
            data = record["data"]
            label = settings.stage_of_label(data.get("Lifecycle_Stage__c"))
            if label is not None:
                add(
                    label.hubspot,
                    record["updated_at"],
                    "Salesforce Lifecycle_Stage__c",
                    stage_field=True,
                )
            add(
                settings.signals.get("lead_or_contact"),
                data.get("CreatedDate"),
                f"a Salesforce {record['object']}",
            )
            status = settings.lead_status.get(str(data.get("Status")))
            if record["object"] == "Lead" and status:
                add(status, record["updated_at"], f"Lead Status {data.get('Status')}")
        for lead in converted:
            add(
                settings.signals.get("converted"),
                lead["data"].get("ConvertedDate") or lead["updated_at"],
                "a converted Lead",
            )
        for opp in opportunities:
            if not opp.is_closed:
                add(settings.signals.get("open_opportunity"), opp.created, "an open opportunity")
            if opp.is_won:
                add(settings.signals.get("won_opportunity"), opp.close_date, "a won opportunity")
        return found

    def _recycle(
        self, sides: Sides, opportunities: list[Opportunity], recycled: dict[str, Any]
    ) -> Stage | None:
        """The stage a recycle rule sends the person back to, if one starts to hold now."""
        for rule in self.settings.recycle:
            condition = self._condition(rule, sides, opportunities)
            if condition is None:
                recycled.pop(rule.name, None)  # it stopped holding: it may fire again later
            elif recycled.get(rule.name) != condition:
                recycled[rule.name] = condition
                return self.settings.stage(rule.to)
        return None

    def _condition(
        self, rule: RecycleRule, sides: Sides, opportunities: list[Opportunity]
    ) -> str | None:
        record = sides.salesforce
        if rule.lead_status and record is not None and record["object"] == "Lead":
            status = str(record["data"].get("Status"))
            if status in rule.lead_status:
                return f"{record['id']}:{status}"
        if rule.lost_after_days is not None and opportunities:
            if any(o.is_won or not o.is_closed for o in opportunities):
                return None
            last = max(opportunities, key=lambda o: (o.close_date or "", o.id))
            closed = crm_instant(last.close_date)
            if closed and parse_iso(closed) <= self.now - timedelta(days=rule.lost_after_days):
                return f"{last.id}:{last.close_date}"
        return None

    def _opportunities(self, people: dict[str, Entity]) -> dict[str, list[Opportunity]]:
        """Each person's opportunities under the link mode."""
        unified = self.store.unified
        by_person: dict[str, set[str]] = {}
        roles = unified.opportunities_by_person(people)
        for person, opps in roles.items():
            by_person.setdefault(person, set()).update(opps)
        if self.settings.link_mode != "contact_roles":
            accounts = {e.account_id: pid for pid, e in people.items() if e.account_id}
            by_account = unified.of_accounts("opportunity", accounts)
            with_roles = unified.opportunities_with_roles(
                {o for found in by_account.values() for o in found}
            )
            for person_id, entity in people.items():
                for opp in by_account.get(entity.account_id or "", []):
                    if self.settings.link_mode == "account" or opp not in with_roles:
                        by_person.setdefault(person_id, set()).add(opp)
        wanted = {o for found in by_person.values() for o in found}
        known = unified.entities("opportunity", wanted)
        return {
            person: [_opportunity(known[o]) for o in sorted(found) if o in known]
            for person, found in by_person.items()
        }


def _opportunity(entity: Entity) -> Opportunity:
    fields = entity.fields
    return Opportunity(
        entity.id,
        bool(fields.get("_is_closed")),
        bool(fields.get("_is_won")),
        fields.get("_created"),
        fields.get("_close_date"),
    )


def crm_instant(value: Any) -> str | None:
    """An ISO UTC instant from a CRM's date, date-time or epoch-ms value; None for a blank or
    a value that is not one."""
    if value is None or value == "":
        return None
    text = str(value)
    # Salesforce's `2026-08-07T09:53:52.696+0000` and the store's own `...52.696Z` are that
    # instant already, once checked (too many distinct ones for the memo at scale).
    if len(text) in (24, 28) and text[23:] in ("Z", "+0000") and _PLAIN_INSTANT.match(text):
        try:
            datetime.fromisoformat(text[:23])
        except ValueError:
            return None
        return text[:23] + "Z"
    return _instant_of(text)


_PLAIN_INSTANT = re.compile(r"[1-9]\d{3}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}")


@lru_cache(maxsize=1 << 16)  # the same dates come back for each signal and each pass
def _instant_of(text: str) -> str | None:
    if text.isdigit():
        return iso(datetime.fromtimestamp(int(text) / 1000, tz=UTC))
    if len(text) == 10:
        text += "T00:00:00Z"
    try:
        return iso(parse_iso(text.replace("+0000", "+00:00")))
    except ValueError:
        return None


def _first_entries(
    person_id: str,
    stage_value: Any,
    signals: list[Signal],
    known: dict[str, str],
    settings: LifecycleSettings,
) -> list[tuple[str, str, str, str]]:
    """(person, stage, entered at, signal) for stages the person reaches for the first time:
    each stage a signal names, up to the current one, at the earliest time a signal said so -
    and no later than a higher stage was entered (a person who was SQL in 2024 was a lead by
    then, even if the Salesforce Lead syncd made for them is from today)."""
    current = settings.stage(stage_value)
    if current is None:
        return []
    earliest: dict[str, Signal] = {}
    for signal in signals:
        if signal.stage.rank <= current.rank and signal.stage.hubspot not in known:
            seen = earliest.get(signal.stage.hubspot)
            if seen is None or signal.at < seen.at:
                earliest[signal.stage.hubspot] = signal
    entries = []
    ceiling = ""  # a person was at a stage no later than they entered a higher one
    for stage in reversed(settings.stages[: current.rank + 1]):
        if stage.hubspot in known:
            ceiling = min(ceiling, known[stage.hubspot]) if ceiling else known[stage.hubspot]
        elif stage.hubspot in earliest:
            signal = earliest[stage.hubspot]
            at = min(signal.at, ceiling) if ceiling else signal.at
            entries.append((person_id, stage.hubspot, at, signal.source))
            ceiling = at
    return entries
