"""What a HubSpot portal stores: one `ObjectTable` of `CrmRecord`s per object type, and the
forms and marketing-email campaigns with their events (`EventLog`s of `Submission`s and
`Click`s).

Built for scale: a record is one small object holding a plain `dict` of string values, ids
are increasing integers kept in sorted lists so that list paging resumes by bisection, and
unique values (email, `syncd_id`) are indexed.
"""

from __future__ import annotations

import bisect
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Generic, NamedTuple, TypeVar

from connectors.hubspot.portal_schema import _builtin


@dataclass(slots=True)
class CrmRecord:
    """One contact, company or deal. `properties` holds only non-blank string values."""

    id: str
    properties: dict[str, str]
    created_at: datetime
    updated_at: datetime
    archived_at: datetime | None = None
    merged_into: str | None = None

    @property
    def archived(self) -> bool:
        return self.archived_at is not None


def stored_value(name: str, value: str) -> str:
    """A value as HubSpot keeps it, and as a unique property matches it: contact emails
    lower-cased (matched case-insensitively), other values exactly as given."""
    return value.strip().lower() if name == "email" else value


class ObjectTable:
    """One object type: records by id, ids in order (live and archived), unique indexes."""

    def __init__(self, object_type: str) -> None:
        self.object_type = object_type
        self.schema = _builtin(object_type)
        self.records: dict[str, CrmRecord] = {}
        self.live: list[int] = []
        self.archived: list[int] = []
        self.unique: dict[str, dict[str, str]] = {"email": {}} if object_type == "contacts" else {}
        self.version = 0  # bumped on every write: search caches key on it

    def unique_names(self) -> list[str]:
        return list(self.unique)

    def find(self, key: str, id_property: str | None = None) -> CrmRecord | None:
        """The record whose id (or unique `id_property` value) is `key`, archived included."""
        if id_property in (None, "", "hs_object_id"):
            return self.records.get(key)
        index = self.unique.get(id_property or "")
        if index is None:
            return None
        found = index.get(stored_value(id_property or "", key))
        return self.records.get(found) if found else None

    def page(self, after: int, limit: int, archived: bool) -> tuple[list[CrmRecord], int | None]:
        """Up to `limit` records with id >= `after`, and the cursor of the next page."""
        ids = self.archived if archived else self.live
        start = bisect.bisect_left(ids, after)
        chosen = ids[start : start + limit]
        following = ids[start + limit] if start + limit < len(ids) else None
        return [self.records[str(n)] for n in chosen], following

    def index_unique(self, record: CrmRecord) -> None:
        for name, index in self.unique.items():
            value = record.properties.get(name)
            if value:
                index[stored_value(name, value)] = record.id

    def unindex_unique(self, record: CrmRecord) -> None:
        for name, index in self.unique.items():
            value = record.properties.get(name)
            if value and index.get(stored_value(name, value)) == record.id:
                del index[stored_value(name, value)]

    def owner_of(self, name: str, value: str) -> str | None:
        """Id of the record already holding this unique value, if any."""
        index = self.unique.get(name)
        return index.get(stored_value(name, value)) if index is not None else None

    def iter_live(self) -> Iterator[CrmRecord]:
        records = self.records
        return (records[str(n)] for n in self.live)


EventKey = tuple[int, int]  # (epoch ms, sequence): the order events are read in
_E = TypeVar("_E")


class EventLog(Generic[_E]):
    """Events in ascending key order, read newest first by the emulator's paging.

    Seeding adds events in whatever order people touch things; a sorted insert per event made
    a large seeding quadratic, so events are appended and the log sorts itself once, on the
    first read after an out-of-order add.
    """

    __slots__ = ("_events", "_keys", "_ordered")

    def __init__(self) -> None:
        self._keys: list[EventKey] = []
        self._events: list[_E] = []
        self._ordered = True

    def __len__(self) -> int:
        return len(self._keys)

    def add(self, key: EventKey, event: _E) -> None:
        if self._keys and key < self._keys[-1]:
            self._ordered = False
        self._keys.append(key)
        self._events.append(event)

    def ordered(self) -> tuple[list[EventKey], list[_E]]:
        """The keys and the events, both ascending by key (sorted here if need be)."""
        if not self._ordered:
            keys = self._keys
            order = sorted(range(len(keys)), key=keys.__getitem__)
            self._keys = [keys[i] for i in order]
            self._events = [self._events[i] for i in order]
            self._ordered = True
        return self._keys, self._events


class Submission(NamedTuple):
    """One form submission, compact: `wire()` builds the legacy API's JSON when it is read."""

    conversion_id: str
    submitted_at: int  # epoch ms
    page_url: str
    values: tuple[tuple[str, str], ...]

    def wire(self) -> dict[str, object]:
        return {"conversionId": self.conversion_id, "submittedAt": self.submitted_at,
                "pageUrl": self.page_url,
                "values": [{"name": name, "value": value} for name, value in self.values]}


class Click(NamedTuple):
    """One email CLICK event, compact: `wire()` builds the Email Events API's JSON."""

    id: str
    created: int  # epoch ms
    recipient: str
    campaign_id: int
    app_id: int
    url: str
    type: str = "CLICK"

    def wire(self, portal_id: int) -> dict[str, object]:
        sent_by = uuid.uuid5(uuid.NAMESPACE_URL, f"{self.campaign_id}/{self.recipient}")
        return {
            "id": self.id, "created": self.created, "type": self.type,
            "recipient": self.recipient, "emailCampaignId": self.campaign_id,
            "portalId": portal_id, "appId": self.app_id, "appName": "Batch", "url": self.url,
            "sentBy": {"id": str(sent_by), "created": self.created},
            "browser": {"name": "Google Chrome", "family": "Google Chrome", "type": "Browser"},
            "location": {"country": "UNITED STATES", "state": "", "city": ""},
            "userAgent": "Mozilla/5.0", "deviceType": "COMPUTER", "filteredEvent": False,
        }


@dataclass(slots=True)
class Form:
    id: str
    name: str
    created_at: datetime
    submissions: EventLog[Submission] = field(default_factory=EventLog)


@dataclass(slots=True)
class EmailCampaign:
    """A marketing email, with the click counters its campaign endpoint reports (kept as
    clicks are added, so that reading a campaign does not scan every click)."""

    id: int
    name: str
    subject: str
    app_id: int = 113
    clicks: int = 0
    recipients: set[str] = field(default_factory=set)
    last_click: int = 0
