"""`reconcile.recompute` on one entity: what it keeps besides the values it decides."""

from __future__ import annotations

from pathlib import Path

from syncd.mapping_loader import load_mappings
from syncd.reconcile import Sides, recompute
from syncd.store.unified import Entity

SHIPPED = Path(__file__).resolve().parent.parent / "mappings"


def test_an_opportunity_seen_only_in_hubspot_keeps_its_account_when_its_values_change() -> None:
    """Its account comes from its Salesforce record; with that record gone (a tombstone), a
    changed deal name must not drop the account along with the old values."""
    mapping = load_mappings(SHIPPED).opportunity
    stored = Entity("opportunity", "opp_s006A", None, {"name": "Old deal"}, {}, None, 1, 1,
                    account_id="acc_s001A")
    deal = {"system": "hubspot", "object": "deals", "id": "77", "deleted": False,
            "updated_at": "2026-05-01T10:00:00.000Z", "data": {"dealname": "Renamed deal"}}
    outcome = recompute(mapping, stored, Sides(hubspot=deal, tombstones={"salesforce"}), {}, 2)
    assert outcome.changed and outcome.entity.fields["name"] == "Renamed deal"
    assert outcome.entity.account_id == "acc_s001A"
    assert outcome.entity.updated_run == 2
