"""The business state of both emulators in a form two worlds can be compared in.

Two worlds seeded alike and synced differently (one pass, or a pass killed at request N and run
again, or a pass through a storm of 429s) must end in the same state. Record ids, timestamps
and the order records were created in legitimately differ between such worlds, so the snapshot
keys every record by its natural key (HubSpot: `email`, else `syncd_id`; Salesforce: `Email`,
`Syncd_Id__c` or `Name`), drops the properties a CRM stamps by itself (dates of creation and
modification, `hs_object_id`, `hs_lifecyclestage_*_date`) and writes every reference to another
record as that record's natural key. Records without any natural key were seeded, not created by
syncd, so their ids are the same in every world seeded alike and serve as their key.

syncd's own ids embed the id of the record an entity was first seen through (`per_s003...`,
`acc_h1042`, `syncd.identity.entity_id_for`); a record a test inserts between passes gets an id
that depends on how many ids the org handed out before, so those ids are written as the natural
key of that record too (`per_s{email=...}`).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from connectors.hubspot.emulator import HubSpotEmulator
from connectors.loopback import ThrowawayCA
from connectors.salesforce.emulator import SalesforceEmulator
from connectors.sandbox import Sandbox
from syncd import cli
from syncd.config import load_settings
from syncd.store import Store
from tests.harness import World, make_world

HUBSPOT_OBJECTS = ("contacts", "companies", "deals")
SALESFORCE_OBJECTS = ("Lead", "Contact", "Account", "Opportunity", "Campaign")
# Read only to resolve references (a role's contact, a Contact's Account ...) and counted.
SALESFORCE_REFERENCED = ("OpportunityContactRole",)

# Stamped by HubSpot itself: differ between worlds by when (and in which order) things ran.
_HUBSPOT_VOLATILE = re.compile(
    r"^(hs_object_id|createdate|lastmodifieddate|hs_lastmodifieddate|hs_createdate"
    r"|hs_lifecyclestage_\w+_date)$"
)
# Stamped by Salesforce itself; references are rewritten, not dropped (see `_salesforce`).
_SALESFORCE_VOLATILE = frozenset({
    "Id", "CreatedDate", "LastModifiedDate", "SystemModstamp", "CreatedById",
    "LastModifiedById", "LastActivityDate", "LastViewedDate", "LastReferencedDate",
})
# The properties holding syncd's idempotency key, per system and object.
SYNCD_KEYS = {
    ("hubspot", "contacts"): "syncd_id",
    ("hubspot", "companies"): "syncd_id",
    ("hubspot", "deals"): "syncd_id",
    ("salesforce", "Lead"): "Syncd_Id__c",
    ("salesforce", "Contact"): "Syncd_Id__c",
}

# Worlds compared with each other hold the same sandbox org: same scale, seed and anchor. The
# anchor is a fixed instant (not "now"), so that worlds seeded seconds apart are alike.
SANDBOX_SCALE = 200
SANDBOX_SEED = 7
SANDBOX_ANCHOR = datetime(2026, 6, 1, 11, 0, tzinfo=UTC)

Key = tuple[str, str]
Snapshot = dict[str, dict[Key, list[dict[str, Any]]]]


@dataclass
class OrgState:
    """Both emulators' records by object and natural key (a key holding several records is a
    duplicate), and the number of records per object."""

    hubspot: Snapshot = field(default_factory=dict)
    salesforce: Snapshot = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)

    def duplicates(self) -> dict[str, list[Key]]:
        """Per `system.object`, the natural keys more than one live record shares."""
        found: dict[str, list[Key]] = {}
        for system, snapshot in (("hubspot", self.hubspot), ("salesforce", self.salesforce)):
            for object_name, records in snapshot.items():
                shared = sorted(
                    key for key, held in records.items()
                    if sum(1 for r in held if not r.get("_deleted")) > 1
                )
                if shared:
                    found[f"{system}.{object_name}"] = shared
        return found

    def syncd_key_duplicates(self) -> dict[str, list[str]]:
        """Per `system.object`, syncd idempotency keys held by more than one live record: a
        record created twice. Must always be empty."""
        found: dict[str, list[str]] = {}
        for (system, object_name), name in SYNCD_KEYS.items():
            snapshot = self.hubspot if system == "hubspot" else self.salesforce
            held = Counter(
                str(record[name])
                for records in snapshot.get(object_name, {}).values()
                for record in records
                if record.get(name) and not record.get("_deleted")
            )
            shared = sorted(key for key, n in held.items() if n > 1)
            if shared:
                found[f"{system}.{object_name}"] = shared
        return found

    def differences(self, other: OrgState, limit: int = 20) -> list[str]:
        """Readable lines naming what differs from `other` (empty when equal), at most `limit`."""
        lines: list[str] = []
        for name in sorted(set(self.counts) | set(other.counts)):
            if self.counts.get(name) != other.counts.get(name):
                lines.append(f"count {name}: {self.counts.get(name)} != {other.counts.get(name)}")
        for system, mine, theirs in (
            ("hubspot", self.hubspot, other.hubspot),
            ("salesforce", self.salesforce, other.salesforce),
        ):
            for object_name in sorted(set(mine) | set(theirs)):
                lines += _record_differences(
                    f"{system}.{object_name}", mine.get(object_name, {}),
                    theirs.get(object_name, {}),
                )
        return lines[:limit]


def org_state(hubspot: HubSpotEmulator, salesforce: SalesforceEmulator) -> OrgState:
    """Snapshot both emulators (each under its app lock, so no request is half applied)."""
    with hubspot.server.app_lock, salesforce.server.app_lock:
        hubspot_records = {t: list(hubspot.portal.table(t).records.values())
                           for t in HUBSPOT_OBJECTS}
        salesforce_records = {
            name: salesforce.org.records(name, include_deleted=True)
            for name in (*SALESFORCE_OBJECTS, *SALESFORCE_REFERENCED)
        }
        ids = _SyncdIds(hubspot_records, salesforce_records)
        hubspot_snapshot, hubspot_counts = _hubspot(hubspot, hubspot_records, ids)
        salesforce_snapshot, salesforce_counts = _salesforce(salesforce, salesforce_records, ids)
    return OrgState(hubspot_snapshot, salesforce_snapshot, {**hubspot_counts, **salesforce_counts})


class _SyncdIds:
    """Rewrites syncd entity ids (`per_s<Salesforce id>`, `acc_h<HubSpot id>`) with the base
    key of the record they were derived from: its email (an Account's or Opportunity's
    name), else its id."""

    _PATTERN = re.compile(r"^(per|acc|opp)_([hs])(.+)$")
    _HUBSPOT_TYPE = {"per": "contacts", "acc": "companies", "opp": "deals"}

    def __init__(self, hubspot: Mapping[str, list[Any]],
                 salesforce: Mapping[str, list[dict[str, Any]]]) -> None:
        self.hubspot = {
            (object_type, record.id): _base_key(record.properties.get("email"), record.id)
            for object_type, records in hubspot.items()
            for record in records
        }
        self.salesforce = {
            record["Id"]: f"{sobject}:{_salesforce_base_key(sobject, record)}"
            for sobject, records in salesforce.items()
            for record in records
        }

    def __call__(self, value: str | None) -> str | None:
        found = self._PATTERN.match(value or "")
        if found is None:
            return value
        kind, system, record_id = found.groups()
        if system == "h":
            base = self.hubspot.get((self._HUBSPOT_TYPE[kind], record_id))
        else:
            base = self.salesforce.get(record_id)
        return f"{kind}_{system}{{{base}}}" if base else value


def _salesforce_base_key(sobject: str, record: Mapping[str, Any]) -> str:
    if sobject in ("Account", "Opportunity", "Campaign") and record.get("Name"):
        return f"name={record['Name']}"
    return _base_key(record.get("Email"), record["Id"])


def _base_key(email: Any, record_id: str) -> str:
    text = str(email or "").strip().lower()
    return f"email={text}" if text else f"id={record_id}"


# -- worlds seeded alike ----------------------------------------------------------------------


@contextmanager
def seeded_world(directory: Path, ca: ThrowawayCA, scale: int = SANDBOX_SCALE) -> Iterator[World]:
    """A harness world (`tests/harness.py`) holding the sandbox org, the same every time."""
    directory.mkdir(parents=True, exist_ok=True)
    with contextmanager(make_world)(directory, ca) as world:
        Sandbox(scale=scale, seed=SANDBOX_SEED, anchor=SANDBOX_ANCHOR).seed_into(
            world.hubspot, world.salesforce
        )
        yield world


def set_config(world: World, section: str, **values: Any) -> None:
    """Add keys to one section of the world's config file (TOML forbids reopening a table,
    so they go right under its header) and reload the world's settings from it."""
    header = f"[{section}]\n"
    text = world.config.read_text(encoding="utf-8")
    assert header in text, f"the harness config has no [{section}]"
    # JSON scalars are valid TOML scalars (strings, numbers, true/false).
    lines = "".join(f"{key} = {json.dumps(value)}\n" for key, value in values.items())
    world.config.write_text(text.replace(header, header + lines, 1), encoding="utf-8")
    world.settings = load_settings(world.config, environ={})


def cli_pass(world: World) -> int:
    """`syncd run --once` through the CLI's entry point, in this process. The CLI stamps its
    pass with the real clock, so the emulators' clock is set to it too: what the pass writes
    then falls inside the next pass's lookback, as against the real CRMs."""
    world.clock.now = datetime.now(UTC)
    return cli.run(["run", "--once", "--config", str(world.config), "--log-level", "warning"])


def outbox_counts(world: World) -> dict[str, int]:
    """Outbox rows by status (`pending`, `error`) in the world's store."""
    store = Store(world.settings.store.path)
    try:
        return store.outbox.counts()
    finally:
        store.close()


# -- HubSpot --------------------------------------------------------------------------------


def _hubspot(emulator: HubSpotEmulator, records: Mapping[str, list[Any]],
             ids: _SyncdIds) -> tuple[Snapshot, dict[str, int]]:
    portal = emulator.portal
    names = {
        (object_type, record.id): _hubspot_key(object_type, record.properties, record.id, ids)
        for object_type, held in records.items()
        for record in held
    }
    snapshot: Snapshot = {}
    counts: dict[str, int] = {}
    for object_type in HUBSPOT_OBJECTS:
        table = portal.table(object_type)
        held: dict[Key, list[dict[str, Any]]] = {}
        for record in records[object_type]:
            entry: dict[str, Any] = {
                name: value for name, value in record.properties.items()
                if not _HUBSPOT_VOLATILE.match(name)
            }
            if "syncd_id" in entry:
                entry["syncd_id"] = ids(entry["syncd_id"])
            if record.archived:
                entry["_deleted"] = True
            if record.merged_into is not None:
                entry["_merged_into"] = names.get((object_type, record.merged_into),
                                                  record.merged_into)
            entry["_associations"] = _hubspot_links(portal, object_type, record.id, names)
            held.setdefault(_as_key(names[(object_type, record.id)]), []).append(entry)
        snapshot[object_type] = _sorted(held)
        counts[f"hubspot.{object_type}"] = len(table.live)
        counts[f"hubspot.{object_type}.archived"] = len(table.archived)
    return snapshot, counts


def _hubspot_key(object_type: str, properties: Mapping[str, str], record_id: str,
                 ids: _SyncdIds) -> str:
    email = properties.get("email", "").strip().lower() if object_type == "contacts" else ""
    if email:
        return f"email={email}"
    if properties.get("syncd_id"):
        return f"syncd_id={ids(properties['syncd_id'])}"
    return f"seeded={record_id}"


def _hubspot_links(portal: Any, object_type: str, record_id: str,
                   names: Mapping[tuple[str, str], str]) -> list[str]:
    """Associations to the other CRM objects as `type:natural key:association type ids`."""
    links = []
    for other in HUBSPOT_OBJECTS:
        if other == object_type:
            continue
        for to_id, type_ids in portal.associations(object_type, record_id, other):
            target = names.get((other, to_id), f"unknown={to_id}")
            links.append(f"{other}:{target}:{','.join(str(t) for t in type_ids)}")
    return sorted(links)


# -- Salesforce -----------------------------------------------------------------------------


def _salesforce(emulator: SalesforceEmulator, records: Mapping[str, list[dict[str, Any]]],
                ids: _SyncdIds) -> tuple[Snapshot, dict[str, int]]:
    org = emulator.org
    names = {
        record["Id"]: f"{sobject}:{_salesforce_key(sobject, record, ids)}"
        for sobject, held in records.items()
        for record in held
    }
    snapshot: Snapshot = {}
    counts: dict[str, int] = {}
    for sobject, every in records.items():
        live = [r for r in every if not r.get("IsDeleted")]
        counts[f"salesforce.{sobject}"] = len(live)
        counts[f"salesforce.{sobject}.deleted"] = len(every) - len(live)
        if sobject not in SALESFORCE_OBJECTS:
            continue
        held: dict[Key, list[dict[str, Any]]] = {}
        for record in every:
            entry = _salesforce_entry(org, sobject, record, names, ids)
            held.setdefault(_as_key(_salesforce_key(sobject, record, ids)), []).append(entry)
        snapshot[sobject] = _sorted(held)
    return snapshot, counts


def _salesforce_key(sobject: str, record: Mapping[str, Any], ids: _SyncdIds) -> str:
    if sobject in ("Lead", "Contact"):
        email = str(record.get("Email") or "").strip().lower()
        if email:
            return f"Email={email}"
    if record.get("Syncd_Id__c"):
        return f"Syncd_Id__c={ids(record['Syncd_Id__c'])}"
    if sobject in ("Lead", "Contact"):
        return f"seeded={record['Id']}"
    return f"Name={record.get('Name')}"


def _salesforce_entry(org: Any, sobject: str, record: Mapping[str, Any],
                      names: Mapping[str, str], ids: _SyncdIds) -> dict[str, Any]:
    fields = org.spec(sobject).fields
    entry: dict[str, Any] = {}
    for name, value in record.items():
        if name in _SALESFORCE_VOLATILE or value in (None, "", False):
            continue
        spec = fields.get(name)
        if spec is not None and spec.type == "reference":
            # Users (owners) are seeded once and alike; other references by natural key.
            entry[name] = names.get(str(value), str(value))
        elif name == "Syncd_Id__c":
            entry[name] = ids(str(value))
        else:
            entry[name] = value
    if record.get("IsDeleted"):
        entry["_deleted"] = True
    return entry


# -- both -----------------------------------------------------------------------------------


def _as_key(text: str) -> Key:
    kind, _, value = text.partition("=")
    return kind, value


def _sorted(held: dict[Key, list[dict[str, Any]]]) -> dict[Key, list[dict[str, Any]]]:
    """Records sharing a key in a stable order, so two worlds' lists compare equal."""
    return {key: sorted(records, key=repr) for key, records in sorted(held.items())}


def _record_differences(where: str, mine: Mapping[Key, list[dict[str, Any]]],
                        theirs: Mapping[Key, list[dict[str, Any]]]) -> Iterable[str]:
    for key in sorted(set(mine) | set(theirs)):
        left, right = mine.get(key), theirs.get(key)
        if left == right:
            continue
        if left is None or right is None:
            yield f"{where} {key}: only in {'the other' if left is None else 'this'} world"
        elif len(left) != len(right):
            yield f"{where} {key}: {len(left)} records != {len(right)}"
        else:
            for a, b in zip(left, right, strict=True):
                changed = sorted(n for n in set(a) | set(b) if a.get(n) != b.get(n))
                yield f"{where} {key}: " + ", ".join(
                    f"{n}={a.get(n)!r} != {b.get(n)!r}" for n in changed
                )
