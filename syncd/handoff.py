"""The marketing-to-sales hand-off: which people syncd handed to sales as Salesforce Leads,
when they qualified, who owns them, and when sales first touched them (a Task or Event on the
Lead, or its Status leaving the initial value), so that `syncd report handoff` can measure the
SLA of `[handoff] sla_hours`."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from syncd.lifecycle import crm_instant
from syncd.stages import LifecycleSettings
from syncd.store import Store, iso
from syncd.store.dirty import sorted_chunks
from syncd.store.lifecycle import Handoff

_INITIAL_STATUS = "handoff_initial_status"  # the Lead Status the open hand-offs were read with
_BATCH = 2000


class HandoffTracker:
    def __init__(self, store: Store, settings: LifecycleSettings, run: int, now: datetime) -> None:
        self.store, self.settings, self.run, self.now = store, settings, run, now

    def record_planned(self, among: Sequence[str] | None = None) -> int:
        """A hand-off row for every person (`among` these) a Lead is planned for (once; kept
        afterwards)."""
        people = self.store.lifecycle.unrecorded_handoffs(among)
        # The SLA clock starts when sales gets the Lead: now, whenever the person qualified
        # (someone who was an MQL before syncd was installed is not overdue from day one).
        new = [Handoff(person, iso(self.now), created_by_syncd=True) for person in people]
        with self.store.transaction():
            self.store.lifecycle.save_handoffs(new, self.run)
        return len(new)

    def refresh(self, after_run: int | None = None) -> None:
        """Fill in each open hand-off's Lead, owner and first sales touch from what was pulled:
        every open one, or (`after_run`) those whose person, Lead or Lead's activities changed
        after that pass, so that a pass's cost follows what it pulled, not the hand-offs kept."""
        lifecycle, unified = self.store.lifecycle, self.store.unified
        # A new initial status can move a hand-off whose Lead did not change: look at all.
        if unified.get_state(_INITIAL_STATUS) != self.settings.initial_status:
            after_run = None
        people = (
            lifecycle.open_handoff_people()
            if after_run is None
            else lifecycle.handoffs_moved_after(after_run)
        )
        with self.store.transaction():
            # A batch of hand-offs and their Leads at a time: the pass after a backfill reads
            # back every person it handed to sales, a large share of a large org.
            for chunk in sorted_chunks(people, _BATCH):
                open_ = list(lifecycle.handoffs(chunk, open_only=True).values())
                lifecycle.save_handoffs(self._refreshed(open_), self.run)
            unified.set_state(_INITIAL_STATUS, self.settings.initial_status)

    def _refreshed(self, open_: list[Handoff]) -> list[Handoff]:
        """These open hand-offs, brought up to date: the ones that changed."""
        leads = self.store.unified.syncd_leads([h.person_id for h in open_])
        lead_records = self.store.records(("salesforce", "Lead", lead) for lead in leads.values())
        touches = self.store.lifecycle.first_activities(leads.values())
        changed = []
        for handoff in open_:
            lead_id = leads.get(handoff.person_id)
            record = lead_records.get(("salesforce", "Lead", lead_id or ""))
            if lead_id is None or record is None:
                continue
            data = record["data"]
            before = (handoff.lead_id, handoff.owner_id, handoff.first_touch_at)
            handoff.lead_id, handoff.owner_id = lead_id, data.get("OwnerId")
            first = touches.get(lead_id)
            first_at = crm_instant(first[0]) if first is not None else None
            if first is not None and first_at is not None and first_at >= handoff.qualified_at:
                handoff.first_touch_at, handoff.first_touch = first_at, first[1]
            elif data.get("Status") not in (None, self.settings.initial_status):
                handoff.first_touch_at = handoff.first_touch_at or record["updated_at"]
                handoff.first_touch = handoff.first_touch or f"Status {data.get('Status')}"
            if (handoff.lead_id, handoff.owner_id, handoff.first_touch_at) != before:
                changed.append(handoff)
        return changed
