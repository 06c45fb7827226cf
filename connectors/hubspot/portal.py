"""The in-memory HubSpot portal behind the emulator: CRM records, property definitions,
associations, forms with their submissions, and marketing-email campaigns with click events.

`Portal` is both the emulator's data and the seeding/inspection API used by the sandbox and
by tests. It is built for scale (1,000,000 contacts in memory, seeded in seconds): a record is
one small object holding a plain `dict` of string values, ids are increasing integers kept in
sorted lists so that list paging resumes by bisection, and unique values (email, `syncd_id`)
are indexed. Wire formats live in `emulator.py` and its `emulator_*.py` endpoint modules; filter
evaluation in `search.py`.
"""

from __future__ import annotations

import bisect
import functools
import itertools
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Concatenate, Generic, NamedTuple, ParamSpec, TypeVar

from connectors.loopback import utc_millis

OBJECT_TYPE_IDS = {"contacts": "0-1", "companies": "0-2", "deals": "0-3"}
SINGULAR = {"contacts": "contact", "companies": "company", "deals": "deal"}
_ALIASES = {
    **{name: name for name in OBJECT_TYPE_IDS},
    **{type_id: name for name, type_id in OBJECT_TYPE_IDS.items()},
    **{singular: name for name, singular in SINGULAR.items()},
}

# Contacts keep the legacy name; companies and deals use the hs_ one (reference 1.2).
MODIFIED_PROPERTY = {
    "contacts": "lastmodifieddate",
    "companies": "hs_lastmodifieddate",
    "deals": "hs_lastmodifieddate",
}
# Returned when a read names no `properties` (reference 1.2).
DEFAULT_PROPERTIES = {
    "contacts": ("createdate", "email", "firstname", "hs_object_id", "lastmodifieddate",
                 "lastname"),
    "companies": ("createdate", "domain", "hs_lastmodifieddate", "hs_object_id", "name"),
    "deals": ("amount", "closedate", "createdate", "dealname", "dealstage",
              "hs_lastmodifieddate", "hs_object_id", "pipeline"),
}
LIFECYCLE_STAGES = ("subscriber", "lead", "marketingqualifiedlead", "salesqualifiedlead",
                    "opportunity", "customer", "evangelist", "other")
ANALYTICS_SOURCES = ("ORGANIC_SEARCH", "PAID_SEARCH", "EMAIL_MARKETING", "SOCIAL_MEDIA",
                     "REFERRALS", "OTHER_CAMPAIGNS", "DIRECT_TRAFFIC", "OFFLINE", "PAID_SOCIAL")
DEAL_STAGES = (("appointmentscheduled", "Appointment Scheduled", "0.2", False),
               ("qualifiedtobuy", "Qualified To Buy", "0.4", False),
               ("presentationscheduled", "Presentation Scheduled", "0.6", False),
               ("decisionmakerboughtin", "Decision Maker Bought-In", "0.8", False),
               ("contractsent", "Contract Sent", "0.9", False),
               ("closedwon", "Closed Won", "1.0", True),
               ("closedlost", "Closed Lost", "0.0", True))

# HubSpot-defined association type ids (reference 1.5): (from, to) -> unlabeled, primary.
UNLABELED_TYPE = {
    ("contacts", "companies"): 279, ("companies", "contacts"): 280,
    ("deals", "companies"): 341, ("companies", "deals"): 342,
    ("contacts", "deals"): 4, ("deals", "contacts"): 3,
    ("contacts", "contacts"): 449, ("companies", "companies"): 450, ("deals", "deals"): 451,
}
PRIMARY_TYPE = {("contacts", "companies"): 1, ("companies", "contacts"): 2,
                ("deals", "companies"): 5, ("companies", "deals"): 6}
_INVERSE_PAIRS = ((279, 280), (1, 2), (341, 342), (5, 6), (4, 3), (449, 449), (450, 450),
                  (451, 451), (13, 14))
INVERSE_TYPE = {a: b for a, b in _INVERSE_PAIRS} | {b: a for a, b in _INVERSE_PAIRS}


_P = ParamSpec("_P")
_R = TypeVar("_R")


def _locked(method: Callable[Concatenate[Portal, _P], _R]) -> Callable[Concatenate[Portal, _P], _R]:
    """Seeding from a test while the server answers requests: hold the app lock (re-entrant,
    so the emulator's handlers, which already hold it, call these freely)."""

    @functools.wraps(method)
    def wrapper(self: Portal, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        with self.lock:
            return method(self, *args, **kwargs)

    return wrapper


def canonical_type(name: str) -> str | None:
    """`contacts`, `0-1` and `contact` all name the contacts object; None for others."""
    return _ALIASES.get(name.lower())


def iso_ms(moment: datetime) -> str:
    """HubSpot's timestamp text: UTC, milliseconds, `Z` (`2024-01-02T03:04:05.678Z`).
    Naive datetimes are taken as UTC."""
    return utc_millis(moment, "Z")


def epoch_ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def parse_moment(text: str) -> datetime | None:
    """A datetime from epoch milliseconds or ISO 8601 (both accepted by HubSpot), else None."""
    text = text.strip()
    try:
        if text.lstrip("-").isdigit():
            return datetime.fromtimestamp(int(text) / 1000, UTC)
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except (ValueError, OverflowError):
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def canonical_datetime(text: str) -> str:
    """A datetime value as HubSpot stores it (ISO with ms and Z); unparseable text unchanged."""
    if len(text) == 24 and text[10] == "T" and text[-1] == "Z":
        return text  # already canonical: the hot path of every search comparison
    moment = parse_moment(text)
    return iso_ms(moment) if moment else text


def canonical_date(text: str) -> str:
    """A date value as `YYYY-MM-DD` (epoch ms of midnight UTC is also accepted)."""
    moment = parse_moment(text)
    return moment.date().isoformat() if moment else text


@dataclass(slots=True)
class PropertyDef:
    """One property definition as the Properties API describes it (reference 1.6)."""

    name: str
    label: str
    type: str = "string"
    field_type: str = "text"
    group_name: str = "contactinformation"
    options: tuple[str, ...] = ()
    has_unique_value: bool = False
    read_only: bool = False
    hubspot_defined: bool = True
    calculated: bool = False
    display_order: int = -1
    description: str = ""
    created_at: datetime = field(default_factory=lambda: datetime(2019, 8, 6, tzinfo=UTC))

    def wire(self) -> dict[str, object]:
        stamp = iso_ms(self.created_at)
        return {
            "name": self.name, "label": self.label, "type": self.type,
            "fieldType": self.field_type, "groupName": self.group_name,
            "description": self.description,
            "options": [
                {"label": _label_of(value), "value": value, "displayOrder": order,
                 "hidden": False, "description": ""}
                for order, value in enumerate(self.options)
            ],
            "displayOrder": self.display_order, "calculated": self.calculated,
            "externalOptions": False, "hasUniqueValue": self.has_unique_value,
            "hidden": False, "hubspotDefined": self.hubspot_defined,
            "formField": not self.read_only,
            "modificationMetadata": {
                "archivable": not self.hubspot_defined, "readOnlyDefinition": self.hubspot_defined,
                "readOnlyValue": self.read_only, "readOnlyOptions": self.hubspot_defined,
            },
            "createdAt": stamp, "updatedAt": stamp, "archived": False,
            "dataSensitivity": "non_sensitive",
        }


def _label_of(value: str) -> str:
    return value.replace("_", " ").title()


def _builtin(object_type: str) -> dict[str, PropertyDef]:
    """The standard properties of a fresh portal (the `syncd_*` ones are created later)."""
    group = {"contacts": "contactinformation", "companies": "companyinformation",
             "deals": "dealinformation"}[object_type]
    modified = MODIFIED_PROPERTY[object_type]
    common = [
        PropertyDef("hs_object_id", "Record ID", "number", "number", group, read_only=True),
        PropertyDef("createdate", "Create Date", "datetime", "date", group, read_only=True),
        PropertyDef(modified, "Last Modified Date", "datetime", "date", group, read_only=True),
        PropertyDef("hs_merged_object_ids", "Merged Record IDs", "enumeration", "checkbox",
                    group, read_only=True),
        PropertyDef("hubspot_owner_id", "Owner", "enumeration", "select", group),
    ]
    specific = {
        "contacts": [
            PropertyDef("email", "Email", group_name=group),
            PropertyDef("firstname", "First Name", group_name=group),
            PropertyDef("lastname", "Last Name", group_name=group),
            PropertyDef("jobtitle", "Job Title", group_name=group),
            PropertyDef("phone", "Phone Number", "string", "phonenumber", group),
            PropertyDef("company", "Company Name", group_name=group),
            PropertyDef("website", "Website URL", group_name=group),
            PropertyDef("lifecyclestage", "Lifecycle Stage", "enumeration", "radio", group,
                        LIFECYCLE_STAGES),
            PropertyDef("hs_lead_status", "Lead Status", "enumeration", "radio", group,
                        ("NEW", "OPEN", "IN_PROGRESS", "OPEN_DEAL", "UNQUALIFIED",
                         "ATTEMPTED_TO_CONTACT", "CONNECTED", "BAD_TIMING")),
            PropertyDef("hs_analytics_source", "Original Source", "enumeration", "select",
                        "analyticsinformation", ANALYTICS_SOURCES, read_only=True),
            PropertyDef("hs_analytics_source_data_1", "Original Source Drill-Down 1",
                        group_name="analyticsinformation", read_only=True),
            PropertyDef("hs_analytics_source_data_2", "Original Source Drill-Down 2",
                        group_name="analyticsinformation", read_only=True),
            *(PropertyDef(f"hs_lifecyclestage_{stage}_date", f"Became a {stage} Date",
                          "datetime", "date", group, read_only=True)
              for stage in LIFECYCLE_STAGES),
        ],
        "companies": [
            PropertyDef("name", "Company name", group_name=group),
            PropertyDef("domain", "Company Domain Name", group_name=group),
            PropertyDef("website", "Website URL", group_name=group),
            PropertyDef("industry", "Industry", group_name=group),
            PropertyDef("phone", "Phone Number", "string", "phonenumber", group),
            PropertyDef("lifecyclestage", "Lifecycle Stage", "enumeration", "radio", group,
                        LIFECYCLE_STAGES),
        ],
        "deals": [
            PropertyDef("dealname", "Deal Name", group_name=group),
            PropertyDef("amount", "Amount", "number", "number", group),
            PropertyDef("closedate", "Close Date", "datetime", "date", group),
            PropertyDef("dealstage", "Deal Stage", "enumeration", "radio", group,
                        tuple(stage for stage, *_ in DEAL_STAGES)),
            PropertyDef("pipeline", "Pipeline", "enumeration", "select", group, ("default",)),
            PropertyDef("hs_is_closed", "Is Deal Closed?", "bool", "booleancheckbox", group,
                        ("true", "false"), read_only=True, calculated=True),
        ],
    }[object_type]
    return {prop.name: prop for prop in common + specific}


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


def _unique_key(name: str, value: str) -> str:
    # Emails are matched case-insensitively; other unique values exactly.
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
        found = index.get(_unique_key(id_property or "", key))
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
                index[_unique_key(name, value)] = record.id

    def unindex_unique(self, record: CrmRecord) -> None:
        for name, index in self.unique.items():
            value = record.properties.get(name)
            if value and index.get(_unique_key(name, value)) == record.id:
                del index[_unique_key(name, value)]

    def owner_of(self, name: str, value: str) -> str | None:
        """Id of the record already holding this unique value, if any."""
        index = self.unique.get(name)
        return index.get(_unique_key(name, value)) if index is not None else None

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


class Portal:
    """The in-memory portal: seed it, inspect it; the emulator serves it over HTTPS."""

    def __init__(self, *, clock: Callable[[], datetime], portal_id: int = 62515) -> None:
        self.clock = clock
        self.portal_id = portal_id
        # The emulator swaps in its server's app lock so that seeding and requests serialise.
        self.lock: threading.RLock = threading.RLock()
        self.tables = {name: ObjectTable(name) for name in OBJECT_TYPE_IDS}
        self._ids = itertools.count(1001)
        self._links: dict[tuple[str, str], dict[str, dict[str, list[int]]]] = {}
        self.forms: dict[str, Form] = {}
        self.campaigns: dict[int, EmailCampaign] = {}
        self.clicks: EventLog[Click] = EventLog()
        self._sequence = itertools.count(1)

    # -- records --------------------------------------------------------------------------

    def table(self, object_type: str) -> ObjectTable:
        name = canonical_type(object_type)
        if name is None:
            raise KeyError(f"unknown HubSpot object type {object_type!r}")
        return self.tables[name]

    def record(self, object_type: str, object_id: str) -> CrmRecord:
        found = self.table(object_type).records.get(object_id)
        if found is None:
            raise KeyError(f"no {object_type} with id {object_id}")
        return found

    @_locked
    def create(self, object_type: str, properties: Mapping[str, str | None], *,
               at: datetime | None = None) -> str:
        """Add a record (no validation: this is seeding) and return its new numeric id."""
        table = self.table(object_type)
        moment = at or self.clock()
        number = next(self._ids)
        record_id = str(number)
        stamp = iso_ms(moment)
        values = {k: v for k, v in properties.items() if v}
        if "email" in values:
            values["email"] = _stored("email", values["email"])
        values["hs_object_id"] = record_id
        values.setdefault("createdate", stamp)
        values[MODIFIED_PROPERTY[table.object_type]] = stamp
        record = CrmRecord(record_id, values, moment, moment)
        table.records[record_id] = record
        if table.live and table.live[-1] > number:
            bisect.insort(table.live, number)
        else:
            table.live.append(number)
        table.index_unique(record)
        table.version += 1
        return record_id

    @_locked
    def update(self, object_type: str, object_id: str, properties: Mapping[str, str | None], *,
               at: datetime | None = None) -> None:
        """Set values ("" or None clears); stamps the modification date."""
        table = self.table(object_type)
        self.write(table, self.record(object_type, object_id), properties, at or self.clock())

    def write(self, table: ObjectTable, record: CrmRecord, properties: Mapping[str, str | None],
              moment: datetime) -> None:
        """Apply values to a record, keeping unique indexes and the modification date right."""
        touches_unique = any(name in properties for name in table.unique)
        if touches_unique:
            table.unindex_unique(record)
        values = record.properties
        for name, value in properties.items():
            if value in (None, ""):
                values.pop(name, None)
            else:
                values[name] = _stored(name, str(value))
        values[MODIFIED_PROPERTY[table.object_type]] = iso_ms(moment)
        record.updated_at = moment
        if touches_unique:
            table.index_unique(record)
        table.version += 1

    @_locked
    def archive(self, object_type: str, object_id: str, *, at: datetime | None = None) -> None:
        table = self.table(object_type)
        record = self.record(object_type, object_id)
        if record.archived:
            return
        moment = at or self.clock()
        table.unindex_unique(record)
        _remove_sorted(table.live, int(object_id))
        bisect.insort(table.archived, int(object_id))
        record.archived_at = moment
        record.updated_at = moment
        table.version += 1

    @_locked
    def merge(self, object_type: str, primary_id: str, merged_id: str, *,
              at: datetime | None = None) -> None:
        """Merge `merged_id` into `primary_id`: the loser is archived and points at the survivor;
        the survivor lists it in `hs_merged_object_ids` and takes over its associations."""
        table = self.table(object_type)
        primary, loser = self.record(object_type, primary_id), self.record(object_type, merged_id)
        moment = at or self.clock()
        merged = [i for i in primary.properties.get("hs_merged_object_ids", "").split(";") if i]
        merged += [merged_id] + [
            i for i in loser.properties.get("hs_merged_object_ids", "").split(";") if i
        ]
        self._move_links(table.object_type, merged_id, primary_id)
        loser_unique = {n: loser.properties.get(n) for n in table.unique}
        self.archive(object_type, merged_id, at=moment)
        loser.merged_into = primary_id
        for name, value in loser_unique.items():
            # The loser's email (or syncd_id) now finds the survivor, as in HubSpot.
            if value and table.owner_of(name, value) is None:
                table.unique[name][_unique_key(name, value)] = primary_id
        self.write(table, primary, {"hs_merged_object_ids": ";".join(merged)}, moment)

    @_locked
    def purge(self, object_type: str, object_id: str) -> None:
        """GDPR delete: the record and its associations are gone for good."""
        table = self.table(object_type)
        record = table.records.pop(object_id)
        table.unindex_unique(record)
        _remove_sorted(table.archived if record.archived else table.live, int(object_id))
        for (from_type, to_type), links in list(self._links.items()):
            if from_type == table.object_type:
                for to_id in list(links.get(object_id, {})):
                    self.disassociate(from_type, object_id, to_type, to_id)
        table.version += 1

    def resolve(self, object_type: str, record: CrmRecord) -> CrmRecord:
        """Follow merges: reads of a merged-away id answer with the survivor [reported]."""
        table = self.table(object_type)
        seen = 0
        while record.merged_into and seen < 10:
            record = table.records.get(record.merged_into, record)
            seen += 1
        return record

    @_locked
    def properties(self, object_type: str, object_id: str) -> dict[str, str | None]:
        return dict(self.record(object_type, object_id).properties)

    @_locked
    def is_archived(self, object_type: str, object_id: str) -> bool:
        return self.record(object_type, object_id).archived

    @_locked
    def ids(self, object_type: str, *, archived: bool = False) -> list[str]:
        table = self.table(object_type)
        return [str(n) for n in (table.archived if archived else table.live)]

    # -- schema ---------------------------------------------------------------------------

    @_locked
    def add_property(self, object_type: str, name: str, *, type: str = "string",
                     field_type: str = "text", label: str | None = None,
                     options: Sequence[str] = (), has_unique_value: bool = False) -> None:
        table = self.table(object_type)
        table.schema[name] = PropertyDef(
            name, label or _label_of(name), type, field_type,
            f"{SINGULAR[table.object_type]}information", tuple(options), has_unique_value,
            hubspot_defined=False, created_at=self.clock(),
        )
        if has_unique_value and name not in table.unique:
            table.unique[name] = {}
            for record in table.iter_live():
                table.index_unique(record)

    # -- associations ---------------------------------------------------------------------

    @_locked
    def associate(self, from_type: str, from_id: str, to_type: str, to_id: str,
                  type_id: int | None = None) -> None:
        """Link two records (default: the unlabeled type) and keep the inverse link too."""
        source, target = self._pair(from_type, to_type)
        chosen = type_id if type_id is not None else UNLABELED_TYPE.get((source, target), 0)
        if chosen == PRIMARY_TYPE.get((source, target)):
            self._drop_primary(source, from_id, target, chosen)
        self._add_link(source, from_id, target, to_id, chosen)
        inverse = INVERSE_TYPE.get(chosen)
        if inverse is not None:
            self._add_link(target, to_id, source, from_id, inverse)

    @_locked
    def disassociate(self, from_type: str, from_id: str, to_type: str, to_id: str) -> bool:
        """Remove every association between two records (both directions); False if none."""
        source, target = self._pair(from_type, to_type)
        forward = self._links.get((source, target), {}).get(from_id, {})
        found = forward.pop(to_id, None) is not None
        self._links.get((target, source), {}).get(to_id, {}).pop(from_id, None)
        return found

    @_locked
    def associations(self, from_type: str, from_id: str,
                     to_type: str) -> list[tuple[str, list[int]]]:
        source, target = self._pair(from_type, to_type)
        links = self._links.get((source, target), {}).get(from_id, {})
        return sorted(((k, sorted(v)) for k, v in links.items()), key=lambda kv: int(kv[0]))

    def _pair(self, from_type: str, to_type: str) -> tuple[str, str]:
        return self.table(from_type).object_type, self.table(to_type).object_type

    def _add_link(self, source: str, from_id: str, target: str, to_id: str, type_id: int) -> None:
        types = self._links.setdefault((source, target), {}).setdefault(from_id, {})
        held = types.setdefault(to_id, [])
        unlabeled = UNLABELED_TYPE.get((source, target))
        # A labelled association always comes with the unlabeled one (HubSpot lists both).
        for wanted in (type_id, unlabeled):
            if wanted is not None and wanted not in held:
                held.append(wanted)

    def _drop_primary(self, source: str, from_id: str, target: str, primary: int) -> None:
        """A record has at most one primary company: setting one demotes the previous."""
        inverse = INVERSE_TYPE[primary]
        for other_id, held in self._links.get((source, target), {}).get(from_id, {}).items():
            if primary in held:
                held.remove(primary)
                back = self._links.get((target, source), {}).get(other_id, {}).get(from_id)
                if back and inverse in back:
                    back.remove(inverse)

    def _move_links(self, object_type: str, loser: str, survivor: str) -> None:
        for (source, target), links in list(self._links.items()):
            if source != object_type:
                continue
            for to_id, held in list(links.get(loser, {}).items()):
                self.disassociate(source, loser, target, to_id)
                if to_id != survivor:
                    for type_id in held:
                        self.associate(source, survivor, target, to_id, type_id)

    # -- forms and email ------------------------------------------------------------------

    @_locked
    def add_form(self, name: str, *, guid: str | None = None) -> str:
        form_id = guid or str(uuid.uuid4())
        self.forms[form_id] = Form(form_id, name, self.clock())
        return form_id

    @_locked
    def add_submission(self, form_guid: str, values: Mapping[str, str], *,
                       submitted_at: datetime, conversion_id: str | None = None,
                       page_url: str = "") -> str:
        form = self.forms[form_guid]
        conversion = conversion_id or str(uuid.uuid4())
        key = (epoch_ms(submitted_at), next(self._sequence))
        form.submissions.add(key, Submission(conversion, key[0], page_url,
                                             tuple(values.items())))
        return conversion

    @_locked
    def add_email_campaign(self, name: str, *, campaign_id: int | None = None) -> int:
        chosen = campaign_id if campaign_id is not None else next(self._ids)
        self.campaigns[chosen] = EmailCampaign(chosen, name, subject=name)
        return chosen

    @_locked
    def add_click(self, campaign_id: int, recipient: str, *, created: datetime,
                  event_id: str | None = None, url: str = "https://example.com/") -> str:
        campaign = self.campaigns[campaign_id]
        chosen = event_id or str(uuid.uuid4())
        key = (epoch_ms(created), next(self._sequence))
        self.clicks.add(key, Click(chosen, key[0], recipient, campaign_id, campaign.app_id, url))
        campaign.clicks += 1
        campaign.recipients.add(recipient)
        campaign.last_click = max(campaign.last_click, key[0])
        return chosen


def _stored(name: str, value: str) -> str:
    """HubSpot keeps contact emails lower-cased."""
    return value.strip().lower() if name == "email" else value


def _remove_sorted(ids: list[int], number: int) -> None:
    position = bisect.bisect_left(ids, number)
    if position < len(ids) and ids[position] == number:
        del ids[position]
