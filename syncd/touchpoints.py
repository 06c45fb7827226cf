"""Touchpoints (ARCHITECTURE section 5, "Touchpoints"): the `touchpoint` rows built from the
source records of both CRMs and tied to unified people, kept up to date incrementally.

Marketing touches: HubSpot form submissions and marketing-email clicks, Salesforce campaign
responses (responded CampaignMembers). Sales touches: Salesforce Tasks and Events on a person
(`WhoId`). A HubSpot touch belongs to the person whose email (normalized) it carries; a
Salesforce touch to the person linked to its Lead or Contact (a converted Lead's link points at
its person, so its touches stay with them). A touch whose person is unknown keeps a NULL person
and is tried again on every pass.

`refresh_touchpoints(store, after_run, run)` rebuilds only what can have changed since the pass
`after_run`: touches of source records pulled since, responses of renamed Campaigns, and the
touches of people whose entity or links changed, or still without a person once someone's did,
whose person is another now (checked in SQL first, rebuilt only where it moved).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import islice
from typing import Any, NamedTuple

from syncd.log import event
from syncd.store import Store, iso
from syncd.store.attribution import AttributionStore, TouchRow
from syncd.store.unified import SourceKey
from syncd.transforms import transform_named

__all__ = ["TOUCH_OBJECTS", "TouchReport", "refresh_touchpoints", "touch_id", "touch_of"]

TOUCH_OBJECTS: tuple[tuple[str, str], ...] = (
    ("hubspot", "form_submissions"),
    ("hubspot", "email_events"),
    ("salesforce", "CampaignMember"),
    ("salesforce", "Task"),
    ("salesforce", "Event"),
)
log = logging.getLogger("syncd.touchpoints")
_BATCH = 5000
_EMAIL = transform_named("email")
# Link states whose entity still carries the record's touches: a converted Lead's and a merge
# loser's link point at the person who carries them now; a deleted record is no one.
_CARRIED = frozenset({"live", "converted", "merged"})
_WHO_OBJECT = {"003": "Contact", "00Q": "Lead"}
_BY_EMAIL = frozenset({"form_submission", "email_click"})  # HubSpot touches: found by email
# From this many people changed (and if they are most of the org), their touches' keys are
# read by walking every touch record rather than person by person.
_SCAN_FROM = 5000


@dataclass
class TouchReport:
    written: int = 0
    dropped: int = 0
    # Everyone whose touches changed (the person before and after): their opportunities'
    # credits may change.
    people: set[str] = field(default_factory=set)
    # A first build touched everyone with a touch: `people` does not hold them (in a backfill
    # that is most people, and the credits of such a pass are computed in full anyway).
    everyone: bool = False

    def add(self, other: TouchReport) -> None:
        self.written += other.written
        self.dropped += other.dropped
        self.people |= other.people
        self.everyone = self.everyone or other.everyone


class _Built(NamedTuple):
    """A touch read from its source record, before its person is known."""

    row: TouchRow
    email: str | None = None  # HubSpot touches: the person's email
    who: str | None = None  # Salesforce touches: the Lead or Contact id


# (touchpoint id, source id, the record's fields, Campaign names) -> the touch, or None.
_Builder = Callable[[str, str, dict[str, Any], dict[str, str]], "_Built | None"]


def touch_id(key: SourceKey) -> str:
    return ":".join(key)


def _source_key(touchpoint_id: str) -> SourceKey:
    system, object_name, record_id = touchpoint_id.split(":", 2)
    return (system, object_name, record_id)


def refresh_touchpoints(
    store: Store,
    after_run: int,
    run: int,
    objects: Collection[tuple[str, str]] = TOUCH_OBJECTS,
) -> TouchReport:
    """Bring `touchpoint` up to date with what changed after pass `after_run` (0: everything),
    in one transaction; only the touches of `objects` (a backfill builds those whose streams
    are read first while the others are still being read)."""
    touches = AttributionStore(store.db.conn)
    report = TouchReport()
    with store.transaction():
        if after_run == 0 and not touches.has_touchpoints(objects):
            _first_build(store, touches, run, report, objects)
            return report
        done: set[SourceKey] = set()
        changed = store.changed_records(list(objects), after_run)
        for batch in _batches(changed):
            _rebuild(store, touches, batch, run, report)
            done.update((r["system"], r["object"], r["id"]) for r in batch)
        again = {k for k in _to_recheck(store, touches, after_run) - done if k[:2] in objects}
        for keys in _batches(sorted(again)):
            _rebuild(store, touches, _records(touches, keys), run, report)
    return report


def _first_build(
    store: Store,
    touches: AttributionStore,
    run: int,
    report: TouchReport,
    objects: Collection[tuple[str, str]],
) -> None:
    """Every touch record of these objects into `touchpoint`, which has none of theirs: the
    usual records set-based in SQL (a million touches in seconds), the unusual ones through
    the builders below (a deleted or merged record is no touch, and there are none of its
    object's to drop)."""
    built = touches.build_touchpoints(run, touches.campaign_names(), _EMAIL.normalize, objects)
    report.written += built.inserted
    # SQL took the entity a Salesforce touch's link names: follow merges to the survivor.
    unsettled = touches.unsettled_people()
    touches.repoint_touchpoints(touches.survivors("person", unsettled))
    for (system, obj), unusual in built.unusual.items():
        for ids in _batches(unusual):
            _rebuild(store, touches, touches.source_rows(system, obj, ids), run, report)
    report.everyone = True


def _to_recheck(store: Store, touches: AttributionStore, after_run: int) -> set[SourceKey]:
    """Touches whose record did not change but whose label or person may have."""
    keys: set[SourceKey] = set()
    campaigns = {
        r["id"]: str(r["data"].get("Name") or "")
        for r in store.changed_records([("salesforce", "Campaign")], after_run)
    }
    keys |= {("salesforce", "CampaignMember", m) for m in touches.relabelled_responses(campaigns)}
    if after_run <= 0:
        return keys | {_source_key(t) for t in touches.orphan_touchpoints()}
    people = touches.entities_updated("person", after_run)
    people |= touches.entities_relinked("person", after_run)
    keys |= {_source_key(t) for t in _moved(store, touches, people)}
    if people:
        # A touch without a person finds one only through a person saved or linked since.
        keys |= {_source_key(t) for t in _moved(store, touches, None)}
    return keys


def _moved(store: Store, touches: AttributionStore, people: set[str] | None) -> list[str]:
    """The touchpoints of these people (None: of no one yet) whose person may be another now.
    Each touch's key is read in SQL and its person found again as `_rebuild` finds it; only
    the touches whose person differs, or whose key SQL could not read, are rebuilt (a pass
    that saved every person, as the one reading back a backfill's writes does, would
    otherwise rebuild every touch of the org from its record)."""
    if people is not None and not people:
        return []
    moved = []
    scan = (
        people is not None
        and len(people) >= _SCAN_FROM
        and len(people) * 2 > touches.live_people()
    )
    for found in touches.touch_keys(people, scan=scan):
        emails = {raw: _EMAIL.normalize(raw) for _, _, kind, raw in found if kind in _BY_EMAIL}
        whos = {raw for _, _, kind, raw in found if raw and kind not in _BY_EMAIL}
        now = _people_of(store, touches, {e for e in emails.values() if e}, whos)
        for touch, person, kind, raw in found:
            key = emails.get(raw) if kind in _BY_EMAIL else raw
            if key is None or now.get(key) != person:
                moved.append(touch)
    return moved


def _records(touches: AttributionStore, keys: list[SourceKey]) -> list[dict[str, Any]]:
    found: dict[SourceKey, dict[str, Any]] = {}
    for system, obj in {(key[0], key[1]) for key in keys}:
        ids = [key[2] for key in keys if key[:2] == (system, obj)]
        found.update({(system, obj, r["id"]): r for r in touches.source_rows(system, obj, ids)})
    # A key without a record (a touch whose record vanished from the store) is dropped.
    return [
        found.get(key)
        or {"system": key[0], "object": key[1], "id": key[2], "deleted": True, "data": {}}
        for key in keys
    ]


def _batches(items: Iterable[Any]) -> Iterator[list[Any]]:
    iterator = iter(items)
    while batch := list(islice(iterator, _BATCH)):
        yield batch


def _rebuild(
    store: Store,
    touches: AttributionStore,
    records: list[dict[str, Any]],
    run: int,
    report: TouchReport,
) -> None:
    names = _campaign_names(touches, records)
    built = {touch_id(_key(r)): touch_of(r, names) for r in records}
    people = _people(store, touches, [b for b in built.values() if b is not None])
    before = touches.touchpoints(built)
    wanted = {
        tid: _with_person(b.row, people.get(b.email or b.who or ""))
        for tid, b in built.items()
        if b is not None
    }
    changed = [row for tid, row in wanted.items() if before.get(tid) != row]
    gone = [tid for tid in before if tid not in wanted]
    touches.save_touchpoints(changed, run)
    touches.drop_touchpoints(gone)
    report.written += len(changed)
    report.dropped += len(gone)
    for row in changed:
        report.people.add(row.person_id or "")
        report.people.add((before[row.id].person_id or "") if row.id in before else "")
    report.people |= {before[tid].person_id or "" for tid in gone}
    report.people.discard("")


def _key(record: dict[str, Any]) -> SourceKey:
    return (record["system"], record["object"], record["id"])


def _with_person(row: TouchRow, person: str | None) -> TouchRow:
    return row._replace(person_id=person)


def touch_of(record: dict[str, Any], campaign_names: dict[str, str]) -> _Built | None:
    """The touch a source record is, or None (deleted, merged away, not a touch). A record
    whose values cannot place a touch (a date that does not exist, an id that is not text) is
    no touch either: it is logged with the reason (`event=touch_skipped`), and the pass goes
    on."""
    if record.get("deleted") or record.get("merged_into"):
        return None
    data = record["data"]
    builder = _BUILDERS[(record["system"], record["object"])]
    try:
        return builder(touch_id(_key(record)), record["id"], data, campaign_names)
    except (ValueError, TypeError, OverflowError, AttributeError) as error:
        event(log, "touch_skipped", logging.WARNING, system=record["system"],
              object=record["object"], id=record["id"], reason=str(error))
        return None


def _form_submission(
    tid: str, source_id: str, data: dict[str, Any], _: dict[str, str]
) -> _Built | None:
    email = _EMAIL.normalize(data.get("email") or _value(data.get("values"), "email"))
    at = _epoch_ms(data.get("submittedAt"))
    if email is None or at is None:
        return None
    label = str(data.get("form_name") or data.get("form_id") or "Form")
    return _Built(TouchRow(tid, None, at, "form_submission", label, False, source_id), email=email)


def _email_click(
    tid: str, source_id: str, data: dict[str, Any], _: dict[str, str]
) -> _Built | None:
    if data.get("type", "CLICK") != "CLICK":
        return None
    email = _EMAIL.normalize(data.get("recipient"))
    at = _epoch_ms(data.get("created"))
    if email is None or at is None:
        return None
    label = str(data.get("campaign_name") or f"Email campaign {data.get('emailCampaignId', '')}")
    return _Built(TouchRow(tid, None, at, "email_click", label.strip(), False, source_id), email)


def _campaign_response(
    tid: str, source_id: str, data: dict[str, Any], names: dict[str, str]
) -> _Built | None:
    who = data.get("ContactId") or data.get("LeadId")
    responded = data.get("FirstRespondedDate")
    if not data.get("HasResponded") or not responded or not who:
        return None
    if not isinstance(who, str):
        raise TypeError(f"ContactId/LeadId {who!r} is not a record id")
    # FirstRespondedDate is a date: the response counts at 00:00 UTC that day.
    at = iso(datetime.fromisoformat(str(responded)[:10]).replace(tzinfo=UTC))

    label = names.get(str(data.get("CampaignId")), f"Campaign {data.get('CampaignId')}")
    return _Built(TouchRow(tid, None, at, "campaign_response", label, False, source_id), who=who)


def _activity(kind: str, time_field: str) -> _Builder:
    def build(
        tid: str, source_id: str, data: dict[str, Any], _: dict[str, str]
    ) -> _Built | None:
        who, when = data.get("WhoId"), data.get(time_field)
        if not who or not when:
            return None  # not on a person, or not placed in time: no touch
        if not isinstance(who, str):
            raise TypeError(f"WhoId {who!r} is not a record id")
        at = _salesforce_time(str(when))
        label = f"Sales: {data.get('Type') or kind.title()}"
        return _Built(TouchRow(tid, None, at, kind, label, True, source_id), who=str(who))

    return build


_BUILDERS: dict[tuple[str, str], _Builder] = {
    ("hubspot", "form_submissions"): _form_submission,
    ("hubspot", "email_events"): _email_click,
    ("salesforce", "CampaignMember"): _campaign_response,
    ("salesforce", "Task"): _activity("task", "CreatedDate"),
    ("salesforce", "Event"): _activity("event", "StartDateTime"),
}


_EPOCH = datetime(1970, 1, 1)


def _epoch_ms(value: Any) -> str | None:
    """HubSpot's milliseconds since the epoch as the store's ISO text (a million touches go
    through here: timedelta arithmetic and isoformat are several times faster than strftime)."""
    if value is None or value == "":
        return None
    at = _EPOCH + timedelta(milliseconds=int(value))
    return at.isoformat(timespec="milliseconds") + "Z"


def _salesforce_time(text: str) -> str:
    """Salesforce's `2026-08-07T09:53:52.696+0000` as the store's ISO text."""
    if len(text) == 28 and text.endswith("+0000") and text[19] == ".":
        return text[:23] + "Z"  # already UTC with milliseconds: no parsing needed
    return iso(datetime.fromisoformat(text))


def _value(values: Any, name: str) -> Any:
    """A field of a form submission's `values` (a list of {name, value} or a table)."""
    if isinstance(values, dict):
        return values.get(name)
    if isinstance(values, list):
        return next((v.get("value") for v in values if v.get("name") == name), None)
    return None


def _campaign_names(touches: AttributionStore, records: list[dict[str, Any]]) -> dict[str, str]:
    ids = {
        str(r["data"].get("CampaignId"))
        for r in records
        if r["object"] == "CampaignMember" and r["data"].get("CampaignId")
    }
    found = touches.source_rows("salesforce", "Campaign", ids)
    return {r["id"]: str(r["data"].get("Name") or "") for r in found}


def _people(
    store: Store, touches: AttributionStore, built: list[_Built]
) -> dict[str, str | None]:
    """Email or Lead/Contact id -> the live person carrying it."""
    emails = {b.email for b in built if b.email}
    return _people_of(store, touches, emails, {b.who for b in built if b.who})


def _people_of(
    store: Store, touches: AttributionStore, emails: set[str], whos: set[str]
) -> dict[str, str | None]:
    found: dict[str, str | None] = dict(store.unified.by_match_key("person", emails))
    carried: dict[str, str] = {}
    for obj in ("Contact", "Lead"):
        # The id's prefix names the object (003 Contact, 00Q Lead); others are tried as both.
        ids = [w for w in whos if _WHO_OBJECT.get(w[:3], obj) == obj]
        for who, (entity, state) in touches.linked("salesforce", obj, ids).items():
            if state in _CARRIED:
                carried[who] = entity
    survivors = touches.survivors("person", carried.values())
    found.update({who: survivors.get(entity) for who, entity in carried.items()})
    return found
