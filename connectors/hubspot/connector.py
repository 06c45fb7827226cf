"""The HubSpot connector: syncd's `Connector` over hubspot-api-client 12.0.0.

`create(settings)` is the `syncd.connectors` entry point. Streams, in the order a run reads
them: `properties` and `pipelines` (schemas, read whole every run), `companies`, `contacts`,
`deals` (`crm.py`: list backfill, windowed search deltas), `forms`, `form_submissions`,
`email_events` (`marketing.py`). Every call goes through `transport.py` (pacing, retries,
error mapping, usage); writes through `writer.py`; cursors are `cursors.py`'s JSON.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from connectors.hubspot.crm import CrmReader, parse_time, stamps
from connectors.hubspot.cursors import Cursor, settle, starting
from connectors.hubspot.marketing import MarketingReader
from connectors.hubspot.transport import SYSTEM, Call, HubSpotTransport
from connectors.hubspot.writer import BatchWriter
from syncd.config import Settings
from syncd.connector import Connector, Window
from syncd.errors import ConfigError, ConnectorError
from syncd.log import event, register_secret
from syncd.model import (
    Change,
    FieldInfo,
    ObjectSchema,
    Page,
    PushResult,
    Record,
    Stream,
    Usage,
)

log = logging.getLogger(__name__)

CRM_OBJECTS = ("companies", "contacts", "deals")
# What ARCHITECTURE section 5 needs from each object when no mapping says otherwise:
# identity, the default field rules, lifecycle signals, attribution, and the keys syncd owns.
# The modification, merge and id properties are always added (crm.ALWAYS).
DEFAULT_FIELDS: Mapping[str, tuple[str, ...]] = {
    "contacts": (
        "email", "firstname", "lastname", "jobtitle", "phone", "company", "lifecyclestage",
        "hs_lead_status", "hubspot_owner_id", "syncd_id", "syncd_attributed_revenue",
        *(f"hs_lifecyclestage_{stage}_date" for stage in (
            "subscriber", "lead", "marketingqualifiedlead", "salesqualifiedlead",
            "opportunity", "customer", "evangelist", "other")),
        "hs_analytics_source", "hs_analytics_source_data_1", "hs_analytics_source_data_2",
        "hs_analytics_first_touch_converting_campaign",
        "hs_analytics_last_touch_converting_campaign", "first_conversion_event_name",
        "first_conversion_date", "recent_conversion_event_name", "recent_conversion_date",
    ),
    "companies": ("name", "domain", "website", "lifecyclestage", "hubspot_owner_id",
                  "syncd_id"),
    "deals": ("dealname", "amount", "closedate", "dealstage", "pipeline", "hs_is_closed",
              "hs_is_closed_won", "hubspot_owner_id", "syncd_id",
              "syncd_first_touch_campaign", "syncd_last_touch_campaign"),
}
STREAMS = ("properties", "pipelines", *CRM_OBJECTS, "forms", "form_submissions",
           "email_events")
WHOLE = frozenset({"properties", "pipelines", "forms"})  # read whole every run
# Deletes are invisible to search; the archived list is read at least this often (and in
# every run that found changes), see crm.py.
ARCHIVE_SWEEP_EVERY = timedelta(hours=6)


def create(
    settings: Settings,
    *,
    fields: Mapping[str, Sequence[str]] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    monotonic: Callable[[], float] = time.monotonic,
) -> Connector:
    """The HubSpot connector for these settings (the `syncd.connectors` entry point)."""
    hubspot = settings.hubspot
    token = hubspot.access_token.get_secret_value() if hubspot.access_token else ""
    if not token:
        raise ConfigError([f"Missing hubspot.access_token. Set it in {settings.source} "
                           "[hubspot] or in SYNCD_HUBSPOT__ACCESS_TOKEN."])
    register_secret(token)
    transport = HubSpotTransport(
        base_url=hubspot.base_url, access_token=token, ca_bundle=hubspot.ca_bundle,
        requests_per_10s=hubspot.requests_per_10s,
        sleep=sleep, monotonic=monotonic)
    return HubSpotConnector(transport, fields=fields, monotonic=monotonic)


class HubSpotConnector:
    """Pulls HubSpot's streams page by page and pushes changes in batches."""

    system = SYSTEM

    def __init__(self, transport: HubSpotTransport, *,
                 fields: Mapping[str, Sequence[str]] | None = None,
                 monotonic: Callable[[], float] = time.monotonic,
                 sweep_every: timedelta = ARCHIVE_SWEEP_EVERY) -> None:
        self.transport = transport
        # The mapping files' properties come on top of what the connector itself needs.
        self._fields = {name: tuple(dict.fromkeys([*DEFAULT_FIELDS[name],
                                                   *(fields or {}).get(name, ())]))
                        for name in CRM_OBJECTS}
        self._monotonic = monotonic
        self._sweep_every = sweep_every
        self._marketing = MarketingReader(transport)
        self._writer = BatchWriter(transport)
        self._schemas: dict[str, ObjectSchema] = {}

    def streams(self) -> Sequence[Stream]:
        return [Stream(name, self._fields.get(name, ()), incremental=name not in WHOLE)
                for name in STREAMS]

    # -- pull -------------------------------------------------------------------------------

    def pull(self, stream: str, cursor: str | None, window: Window) -> Iterator[Page]:
        if stream not in STREAMS:
            raise ConnectorError(f"HubSpot has no stream {stream!r}; streams: "
                                 f"{', '.join(STREAMS)}.", system=SYSTEM, object_name=stream)
        started = self._monotonic()
        pages = rows = calls = 0
        try:
            for page in self._pages(stream, cursor, window):
                pages, rows, calls = pages + 1, rows + len(page.records), calls + page.calls
                event(log, "page", logging.DEBUG, system=SYSTEM, stream=stream,
                      rows=len(page.records), calls=page.calls, watermark=page.watermark)
                yield page
        finally:
            event(log, "stream_read", logging.DEBUG, system=SYSTEM, stream=stream, pages=pages,
                  rows=rows,
                  calls=calls, took=f"{self._monotonic() - started:.1f}s")

    def _pages(self, stream: str, text: str | None, window: Window) -> Iterator[Page]:
        cursor = Cursor.load(text, stream)
        if stream == "properties":
            return self._property_pages(window)
        if stream == "pipelines":
            return iter([self._pipeline_page(window)])
        if stream == "forms":
            return settle(stream, self._marketing.forms(cursor, window.run_start))
        if stream in CRM_OBJECTS:
            start = starting(cursor, window, backfill=True)
            reader = CrmReader(self.transport, stream, self._fields[stream],
                               sweep_every=self._sweep_every)
            read = reader.backfill(start) if start.mode == "backfill" else reader.delta(start)
            return settle(stream, read)
        start = starting(cursor, window, backfill=False)
        if stream == "form_submissions":
            return settle(stream, self._marketing.submissions(start))
        return settle(stream, self._marketing.email_events(start))

    def _property_pages(self, window: Window) -> Iterator[Page]:
        """One page per object type (`GET /crm/v3/properties/{type}`, one call each)."""
        cursor = Cursor(watermark=window.run_start).dump()
        for object_type in CRM_OBJECTS:
            definitions = self._definitions(object_type)
            records = [_property(object_type, item, window) for item in definitions]
            yield Page(stream="properties", records=records, cursor=cursor,
                       watermark=window.run_start, calls=1)

    def _definitions(self, object_type: str) -> list[dict[str, Any]]:
        answer = self.transport.send(
            Call("GET", f"/crm/v3/properties/{object_type}", object_type),
            self.transport.properties.get_all_with_http_info, object_type)
        definitions = list((answer.body or {}).get("results") or [])
        self._schemas[object_type] = _schema(object_type, definitions)
        return definitions

    def _pipeline_page(self, window: Window) -> Page:
        """Deal pipelines and their stages (`GET /crm/v3/pipelines/deals`)."""
        answer = self.transport.send(Call("GET", "/crm/v3/pipelines/deals", "deals"),
                                     self.transport.pipelines.get_all_with_http_info, "deals")
        records = []
        for item in (answer.body or {}).get("results") or []:
            stamp = parse_time(item.get("updatedAt")) or window.run_start
            records.append(Record(system=SYSTEM, object="pipelines", id=str(item["id"]),
                                  updated_at=stamp, fields={**item, "objectType": "deals"},
                                  deleted=bool(item.get("archived"))))
        return Page(stream="pipelines", records=records,
                    cursor=Cursor(watermark=window.run_start).dump(),
                    watermark=window.run_start, calls=1)

    # -- schema, push, usage ----------------------------------------------------------------

    def describe(self, object_name: str) -> ObjectSchema:
        """The properties of contacts, companies or deals (one call, then remembered)."""
        if object_name not in CRM_OBJECTS:
            raise ConnectorError(f"HubSpot cannot describe {object_name!r}; objects: "
                                 f"{', '.join(CRM_OBJECTS)}.", system=SYSTEM,
                                 object_name=object_name)
        if object_name not in self._schemas:
            self._definitions(object_name)
        return self._schemas[object_name]

    def create_field(self, object_name: str, field: FieldInfo, description: str) -> None:
        """A custom property (`POST /crm/v3/properties/{objectType}`), in syncd's own group."""
        body = {"name": field.name, "label": field.label or field.name, "type": field.type,
                "fieldType": "number" if field.type == "number" else "text",
                "groupName": "contactinformation" if object_name == "contacts"
                else "companyinformation" if object_name == "companies" else "dealinformation",
                "description": description, "hasUniqueValue": field.unique}
        self.transport.send(Call("POST", f"/crm/v3/properties/{object_name}", object_name),
                            self.transport.properties.create_with_http_info, object_name, body)
        self._schemas.pop(object_name, None)

    def stamps(self, object_name: str, ids: Sequence[str]) -> dict[str, datetime]:
        """`lastmodifieddate` (contacts) or `hs_lastmodifieddate`, as the deltas read it."""
        if object_name not in CRM_OBJECTS:
            raise ConnectorError(f"HubSpot has no modification stamps for {object_name!r}; "
                                 f"objects: {', '.join(CRM_OBJECTS)}.", system=SYSTEM,
                                 object_name=object_name)
        return stamps(self.transport, object_name, ids)

    def push(self, changes: Sequence[Change]) -> list[PushResult]:
        return self._writer.push(changes)

    def push_chunk(self, object_name: str, operation: str, pending: int) -> int | None:
        """None: HubSpot's CRM objects have no bulk write besides the batch endpoints (100
        inputs a call) the writer already uses for any chunk."""
        return None

    def usage(self) -> Usage:
        return self.transport.usage()

    def close(self) -> None:
        self.transport.close()


def _property(object_type: str, item: dict[str, Any], window: Window) -> Record:
    stamp = parse_time(item.get("updatedAt")) or window.run_start
    return Record(system=SYSTEM, object="properties", id=f"{object_type}.{item['name']}",
                  updated_at=stamp, fields={**item, "objectType": object_type},
                  deleted=bool(item.get("archived")))


def _schema(object_type: str, definitions: list[dict[str, Any]]) -> ObjectSchema:
    fields = {}
    for item in definitions:
        meta = item.get("modificationMetadata") or {}
        writable = not meta.get("readOnlyValue") and not item.get("calculated")
        fields[str(item["name"])] = FieldInfo(
            name=str(item["name"]), type=str(item.get("type") or "string"),
            label=str(item.get("label") or ""), updateable=writable, createable=writable,
            options=tuple(str(o.get("value")) for o in item.get("options") or []),
            unique=bool(item.get("hasUniqueValue")))
    return ObjectSchema(system=SYSTEM, object=object_type, fields=fields)
