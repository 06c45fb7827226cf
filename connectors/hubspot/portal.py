"""The in-memory HubSpot portal behind the emulator: CRM records, property definitions,
associations, forms with their submissions, and marketing-email campaigns with click events.

`Portal` is both the emulator's data and the seeding/inspection API used by the sandbox and
by tests. It is built for scale (1,000,000 contacts in memory, seeded in seconds). Its schema
and value formats live in `portal_schema.py`, its record tables and event logs in
`portal_tables.py` (the names other modules use are re-exported here); wire formats in
`emulator.py` and its `emulator_*.py` endpoint modules; filter evaluation in `search.py`.
"""

from __future__ import annotations

import bisect
import functools
import itertools
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Concatenate, ParamSpec, TypeVar

from connectors.hubspot.portal_schema import (
    DEAL_STAGES,
    DEFAULT_PROPERTIES,
    INVERSE_TYPE,
    LIFECYCLE_STAGES,
    MODIFIED_PROPERTY,
    OBJECT_TYPE_IDS,
    PRIMARY_TYPE,
    SINGULAR,
    UNLABELED_TYPE,
    PropertyDef,
    _label_of,
    canonical_date,
    canonical_datetime,
    canonical_type,
    epoch_ms,
    iso_ms,
)
from connectors.hubspot.portal_tables import (
    Click,
    CrmRecord,
    EmailCampaign,
    EventLog,
    Form,
    ObjectTable,
    Submission,
    stored_value,
)

# The names other modules import from here (they moved to portal_schema / portal_tables).
__all__ = [
    "DEAL_STAGES",
    "DEFAULT_PROPERTIES",
    "LIFECYCLE_STAGES",
    "MODIFIED_PROPERTY",
    "OBJECT_TYPE_IDS",
    "PRIMARY_TYPE",
    "SINGULAR",
    "UNLABELED_TYPE",
    "Click",
    "CrmRecord",
    "ObjectTable",
    "Portal",
    "PropertyDef",
    "canonical_date",
    "canonical_datetime",
    "canonical_type",
    "iso_ms",
]


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
            values["email"] = stored_value("email", values["email"])
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
                values[name] = stored_value(name, str(value))
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
                table.unique[name][stored_value(name, value)] = primary_id
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
        table.version += 1  # searches compare by the property's type: cached answers are stale

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


def _remove_sorted(ids: list[int], number: int) -> None:
    position = bisect.bisect_left(ids, number)
    if position < len(ids) and ids[position] == number:
        del ids[position]
