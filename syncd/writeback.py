"""Closed-loop write-back (ARCHITECTURE section 5, Attribution): what the credits say, as
outbox rows.

- Opportunities with at least one touch in their window: the first and the latest touch's label
  to Salesforce `First_Touch_Campaign__c`/`Last_Touch_Campaign__c` and to the HubSpot deal's
  `syncd_first_touch_campaign`/`syncd_last_touch_campaign` (left untouched without touches).
- Salesforce `Campaign.Attributed_Revenue__c`: won revenue credited under the written model to
  touches labelled with the Campaign's name.
- HubSpot contact `syncd_attributed_revenue`: won revenue credited to that person's touches.
Amounts are rounded to cents; a computed 0 is not written over a blank, and a revenue that falls
to 0 is written as 0.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from syncd.attribution import AttributionSettings
from syncd.rules import is_blank
from syncd.store import Store
from syncd.store.outbox import OutboxRow

CENT = Decimal("0.01")
OPPORTUNITY_FIELDS = {
    "salesforce": ("First_Touch_Campaign__c", "Last_Touch_Campaign__c"),
    "hubspot": ("syncd_first_touch_campaign", "syncd_last_touch_campaign"),
}
PERSON_REVENUE = "syncd_attributed_revenue"
CAMPAIGN_REVENUE = "Attributed_Revenue__c"


@dataclass(frozen=True)
class Attributed:
    """The write-back values of the entities being planned."""

    labels: Mapping[str, tuple[str, str]]  # opportunity -> (first label, latest label)
    revenue: Mapping[str, Decimal]  # person -> won revenue credited to their touches

    @classmethod
    def of(
        cls, store: Store, settings: AttributionSettings, kind: str, ids: list[str]
    ) -> Attributed:
        attribution = store.attribution
        if kind == "opportunity":
            ends = attribution.end_labels(set(ids))
            labels = {
                opp: (e["first_touch"], e["last_touch"])
                for opp, e in ends.items()
                if "first_touch" in e and "last_touch" in e
            }
            return cls(labels, {})
        if kind == "person":
            found = in_cents(attribution.won_by_person(settings.written_model, set(ids)))
            return cls({}, {person: found.get(person, Decimal(0)) for person in ids})
        return cls({}, {})


def opportunity_fields(
    system: str, labels: tuple[str, str] | None, current: Mapping[str, Any]
) -> dict[str, str]:
    """The label fields that differ from what the record shows."""
    if labels is None:
        return {}
    return {
        name: value
        for name, value in zip(OPPORTUNITY_FIELDS[system], labels, strict=True)
        if current.get(name) != value
    }


def revenue_field(name: str, revenue: Decimal | None, current: Any) -> dict[str, Any]:
    """The revenue to write, if it differs from what the record shows (0 not over a blank)."""
    if revenue is None:
        return {}
    revenue = revenue.quantize(CENT)
    if is_blank(current):
        return {} if revenue == 0 else {name: _wire(name, revenue)}
    try:
        if Decimal(str(current)).quantize(CENT) == revenue:
            return {}
    except InvalidOperation:
        pass
    return {name: _wire(name, revenue)}


def _wire(name: str, revenue: Decimal) -> Any:
    # HubSpot number properties are strings on the wire; Salesforce currency is a number.
    return f"{revenue:.2f}" if name == PERSON_REVENUE else float(revenue)


def campaign_rows(store: Store, revenue: Mapping[str, Decimal]) -> list[OutboxRow]:
    """Outbox rows for the Salesforce Campaigns whose attributed revenue moved."""
    current = store.records(("salesforce", "Campaign", cid) for cid in revenue)
    rows = []
    for campaign_id, amount in sorted(revenue.items()):
        record = current.get(("salesforce", "Campaign", campaign_id))
        if record is None or record["deleted"]:
            continue
        fields = revenue_field(CAMPAIGN_REVENUE, amount, record["data"].get(CAMPAIGN_REVENUE))
        if fields:
            rows.append(
                OutboxRow(
                    "salesforce",
                    "Campaign",
                    "campaign",
                    campaign_id,
                    "update",
                    fields,
                    record_id=campaign_id,
                )
            )
    return rows


def in_cents(totals: Mapping[str, int]) -> dict[str, Decimal]:
    """Whole cents per key as amounts."""
    return {key: Decimal(total).scaleb(-2) for key, total in totals.items()}
