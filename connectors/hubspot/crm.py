"""Reading HubSpot CRM objects (contacts, companies, deals) into pages of `Record`s.

A backfill lists every record through `GET /crm/v3/objects/{type}` (100 per page, archived
ones first so that what the live survivors say about merges is read last), associations
embedded. A delta searches `POST /crm/v3/objects/{type}/search` for the window `[low, high)` on
the modification property, ascending, 200 per page, following `paging.next.after`. Search
stops at 10,000 results, so a window whose first page reports more is halved in time, and an
instant holding more than 10,000 rows is paged by `hs_object_id` (numerically, as HubSpot
compares number properties). Records found by search get their associations from the v4 batch
read, one call per associated type per page; a page holds as many search answers as one such
call takes (five: 1,000 ids), so that associations cost no more calls than the ids need.
Deletes are invisible to search: the archived list is swept in a delta that found changes, or
when the last sweep is older than `sweep_every`, and only records archived since the last
sweep are emitted.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

from connectors.hubspot.cursors import Cursor, ceil_ms, from_ms, to_ms
from connectors.hubspot.transport import SYSTEM, Answer, Call, HubSpotTransport
from syncd.model import Page, Record

LIST_LIMIT = 100
SEARCH_LIMIT = 200
SEARCH_CAP = 10_000  # paging past 10,000 search results answers 400 (reference 1.4)
BATCH_LIMIT = 100
ASSOCIATION_BATCH_LIMIT = 1000  # v4 batch read takes 1,000 inputs [reported]
URL_LIMIT = 2000  # longer URLs risk 414: long property lists go in a batch read body
MODIFIED = {"contacts": "lastmodifieddate", "companies": "hs_lastmodifieddate",
            "deals": "hs_lastmodifieddate"}
ALWAYS = ("hs_object_id", "createdate", "hs_merged_object_ids")
ASSOCIATED = {"contacts": ("companies",), "companies": (), "deals": ("companies", "contacts")}
# v3 embedded association names -> HubSpot-defined type ids (reference 1.5).
V3_TYPE_IDS = {
    "contact_to_company": 1, "contact_to_company_unlabeled": 279,
    "deal_to_company": 5, "deal_to_company_unlabeled": 341, "deal_to_contact": 3,
    "company_to_contact": 2, "company_to_contact_unlabeled": 280,
    "company_to_deal": 6, "company_to_deal_unlabeled": 342, "contact_to_deal": 4,
}

Links = dict[str, list[dict[str, Any]]]


@dataclass(frozen=True)
class Found:
    """One search answer: the objects, HubSpot's total for the query, the next offset."""

    objects: list[dict[str, Any]]
    total: int
    after: str | None


def parse_time(text: Any) -> datetime | None:
    """A HubSpot datetime value: ISO 8601 (`...Z`) or epoch milliseconds."""
    if text in (None, ""):
        return None
    value = str(text)
    if value.isdigit():
        return from_ms(int(value))
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def stamps(transport: HubSpotTransport, object_type: str,
           ids: Sequence[str]) -> dict[str, datetime]:
    """The modification property of records by id (`POST /crm/v3/objects/{type}/batch/read`,
    100 ids a call). A record not found, or merged away (HubSpot answers with its survivor),
    is left out."""
    modified = MODIFIED[object_type]
    found: dict[str, datetime] = {}
    for start in range(0, len(ids), BATCH_LIMIT):
        body = {"inputs": [{"id": i} for i in ids[start:start + BATCH_LIMIT]],
                "properties": [modified], "propertiesWithHistory": []}
        answer = transport.send(Call("POST", f"/crm/v3/objects/{object_type}/batch/read",
                                     object_type),
                                transport.batch.read_with_http_info, object_type, body)
        for item in (answer.body or {}).get("results") or []:
            stamp = parse_time((item.get("properties") or {}).get(modified))
            if stamp is not None:
                found[str(item["id"])] = stamp
    return found


class CrmReader:
    """Pages of one CRM object type, from a `Cursor`; generators return the final cursor."""

    def __init__(self, transport: HubSpotTransport, object_type: str,
                 properties: Sequence[str], *, sweep_every: timedelta) -> None:
        self.transport = transport
        self.object_type = object_type
        self.modified = MODIFIED[object_type]
        self.properties = list(dict.fromkeys([*properties, *ALWAYS, self.modified]))
        self.targets = ASSOCIATED[object_type]
        self.sweep_every = sweep_every
        self._spent = 0
        self._total: int | None = None

    # -- backfill through the list endpoint -------------------------------------------------

    def backfill(self, cursor: Cursor) -> Generator[Page, None, Cursor]:
        phases = ("archived", "live")
        start = phases.index(cursor.phase) if cursor.phase in phases else 0
        for phase in phases[start:]:
            after = cursor.after if phase == cursor.phase else None
            while True:
                objects, after = self._list_page(after, archived=phase == "archived")
                state = replace(cursor, phase=phase, after=after)
                records = self._records(objects, deleted=phase == "archived")
                yield self._page(records, state, cursor.watermark)
                if after is None:
                    break
        assert cursor.high is not None
        return replace(cursor.finished(cursor.high), swept=cursor.high)

    def _list_page(self, after: str | None,
                   archived: bool) -> tuple[list[dict[str, Any]], str | None]:
        """One list page (`GET /crm/v3/objects/{type}`); properties by batch read if long."""
        long = self._url_too_long()
        targets = [] if archived else list(self.targets)
        kwargs: dict[str, Any] = {"limit": LIST_LIMIT, "archived": archived,
                                  "properties": [self.modified] if long else self.properties}
        if after is not None:
            kwargs["after"] = after
        if targets:
            kwargs["associations"] = targets
        answer = self._send("GET", f"/crm/v3/objects/{self.object_type}",
                            self.transport.objects.get_page_with_http_info, self.object_type,
                            **kwargs)
        body = answer.body or {}
        objects = list(body.get("results") or [])
        for item in objects:
            item["_links"] = _embedded(item.get("associations") or {}, targets)
        if long and objects:
            objects = self._with_properties(objects, archived)
        return objects, _next_after(body)

    def _url_too_long(self) -> bool:
        base = len(self.transport.objects.api_client.configuration.host) + 80
        size = base + sum(len("&properties=") + len(quote(name)) for name in self.properties)
        return size > URL_LIMIT

    def _with_properties(self, objects: list[dict[str, Any]],
                         archived: bool) -> list[dict[str, Any]]:
        """The objects again, read by id with every property in the body (batch read)."""
        links = {str(item["id"]): item.get("_links", {}) for item in objects}
        fresh: dict[str, dict[str, Any]] = {}
        ids = list(links)
        for start in range(0, len(ids), BATCH_LIMIT):
            body = {"inputs": [{"id": i} for i in ids[start:start + BATCH_LIMIT]],
                    "properties": self.properties, "propertiesWithHistory": []}
            answer = self._send("POST", f"/crm/v3/objects/{self.object_type}/batch/read",
                                self.transport.batch.read_with_http_info, self.object_type,
                                body, archived=archived)
            for item in (answer.body or {}).get("results") or []:
                fresh[str(item["id"])] = item
        # A record gone between the two calls is left out: the next read finds it.
        return [{**fresh[i], "_links": links[i]} for i in ids if i in fresh]

    # -- deltas through search --------------------------------------------------------------

    def delta(self, cursor: Cursor) -> Generator[Page, None, Cursor]:
        assert cursor.high is not None and cursor.low is not None
        end = cursor.high
        high, low = ceil_ms(end), cursor.low
        first: Found | None = None
        if cursor.phase == "" and not self._sweep_due(cursor):
            # A sweep costs a call per 100 archived records: only a run that finds changes
            # pays it early (the first search page says so; it is not read twice).
            first = self._search(low, high) if cursor.last_id is None else None
            if first is not None and first.total == 0:
                yield self._page([], cursor, None)
                return cursor.finished(cursor.high)
        if cursor.phase in ("", "sweep"):
            start = cursor if cursor.phase == "sweep" else replace(cursor, phase="sweep")
            cursor = yield from self._sweep(start)
        cursor = replace(cursor, phase="search")
        if cursor.last_id is not None:
            yield from self._instant(cursor, low, high, cursor.last_id)
            low += 1
        if low < high:
            yield from self._span(cursor, low, high, first)
        return cursor.finished(end)

    def _sweep_due(self, cursor: Cursor) -> bool:
        """Whether the archived list must be read whatever the window holds."""
        assert cursor.high is not None
        return cursor.swept is None or cursor.high - cursor.swept >= self.sweep_every

    def _sweep(self, cursor: Cursor) -> Generator[Page, None, Cursor]:
        assert cursor.high is not None and cursor.low is not None
        since = to_ms(cursor.swept) if cursor.swept is not None else 0
        since = min(since, cursor.low)  # the lookback applies to deletes too
        after = cursor.after
        while True:
            objects, after = self._list_page(after, archived=True)
            fresh = [o for o in objects if _archived_ms(o) >= since]
            state = replace(cursor, after=after)
            yield self._page(self._records(fresh, deleted=True), state, cursor.watermark)
            if after is None:
                return replace(cursor, phase="search", after=None, swept=cursor.high)

    def _span(self, cursor: Cursor, low: int, high: int,
              first: Found | None = None) -> Generator[Page, None, None]:
        """Every record modified in `[low, high)`, in modification order (`first`: the
        answer to its first search, when already asked)."""
        found = first if first is not None else self._search(low, high)
        if self._total is None:  # the whole window's count, for progress
            self._total = found.total
        if found.total > SEARCH_CAP:
            if high - low > 1:
                middle = (low + high) // 2
                yield from self._span(cursor, low, middle)
                yield from self._span(cursor, middle, high)
            else:
                yield from self._instant(cursor, low, high, None)
            return
        anchor = low
        held: list[dict[str, Any]] = []
        while True:
            held += found.objects
            if found.objects:
                anchor = self._stamp(found.objects[-1]) or anchor
            if found.after is None or self._full(held):
                yield self._searched_page(replace(cursor, low=anchor, last_id=None), held,
                                          anchor)
                held = []
            if found.after is None:
                return
            following = self._search(low, high, after=found.after)
            if following.total != found.total:
                # The window changed under us (a record was modified again, so it left it):
                # offsets shifted, so start again from the last instant read.
                if held:
                    yield self._searched_page(replace(cursor, low=anchor, last_id=None), held,
                                              anchor)
                yield from self._span(cursor, anchor, high)
                return
            found = following

    def _instant(self, cursor: Cursor, low: int, high: int,
                 last_id: str | None) -> Generator[Page, None, None]:
        """More than 10,000 rows share the instant `low`: page them by id, keyset style."""
        instant = min(high, low + 1)
        held: list[dict[str, Any]] = []
        while True:
            found = self._search(low, instant, after_id=last_id)
            held += found.objects
            if found.objects:
                last_id = str(max(int(o["id"]) for o in found.objects))
            if found.after is None or self._full(held):
                yield self._searched_page(replace(cursor, low=low, last_id=last_id), held, low)
                held = []
            if found.after is None:
                return

    def _full(self, held: list[dict[str, Any]]) -> bool:
        """Whether the search answers held make a page: another answer would not fit in one
        v4 association batch read per type (a page of search answers costs one association
        call per type, not one per answer). Without associations, every answer is a page."""
        return not self.targets or len(held) + SEARCH_LIMIT > ASSOCIATION_BATCH_LIMIT

    def _searched_page(self, state: Cursor, objects: list[dict[str, Any]], mark: int) -> Page:
        return self._page(self._searched(objects), state, from_ms(mark))

    def _search(self, low: int, high: int, *, after: str | None = None,
                after_id: str | None = None, limit: int = SEARCH_LIMIT) -> Found:
        filters = [{"propertyName": self.modified, "operator": "GTE", "value": str(low)},
                   {"propertyName": self.modified, "operator": "LT", "value": str(high)}]
        sort = self.modified
        if after_id is not None or high - low == 1:
            sort = "hs_object_id"
            if after_id is not None:
                filters.append({"propertyName": "hs_object_id", "operator": "GT",
                                "value": after_id})
        long = self._url_too_long()  # a long list would also break search's 3,000-char body
        body = {"filterGroups": [{"filters": filters}],
                "sorts": [{"propertyName": sort, "direction": "ASCENDING"}],
                "properties": [self.modified, "hs_merged_object_ids"] if long
                else self.properties,
                "limit": limit, "after": after or "0"}
        answer = self._send("POST", f"/crm/v3/objects/{self.object_type}/search",
                            self.transport.search_api.do_search_with_http_info,
                            self.object_type, body)
        data = answer.body or {}
        objects = list(data.get("results") or [])
        if long and objects:
            objects = self._with_properties(objects, archived=False)
        return Found(objects, int(data.get("total") or 0), _next_after(data))

    def _searched(self, objects: list[dict[str, Any]]) -> list[Record]:
        if objects:
            links = self._links([str(o["id"]) for o in objects])
            for item in objects:
                item["_links"] = {t: links.get(t, {}).get(str(item["id"]), [])
                                  for t in self.targets}
        return self._records(objects, deleted=False)

    def _links(self, ids: list[str]) -> dict[str, Links]:
        """Associations of `ids` to each associated type (v4 batch read)."""
        out: dict[str, Links] = {}
        for target in self.targets:
            found: Links = {}
            pending: list[dict[str, str]] = [{"id": i} for i in ids]
            while pending:  # follow each id's own paging when it holds more than a page
                chunk, pending = pending[:ASSOCIATION_BATCH_LIMIT], \
                    pending[ASSOCIATION_BATCH_LIMIT:]
                answer = self._send(
                    "POST", f"/crm/v4/associations/{self.object_type}/{target}/batch/read",
                    self.transport.associations.get_page_with_http_info, self.object_type,
                    target, {"inputs": chunk})
                pending += _collect_links(answer.body or {}, found)
            out[target] = found
        return out

    # -- records and pages ------------------------------------------------------------------

    def _records(self, objects: list[dict[str, Any]], *, deleted: bool) -> list[Record]:
        records: list[Record] = []
        for item in objects:
            record = self._record(item, deleted)
            records.append(record)
            if not deleted:
                records.extend(_losers(record))
        return records

    def _record(self, item: dict[str, Any], deleted: bool) -> Record:
        properties = dict(item.get("properties") or {})
        fields: dict[str, Any] = {**properties, "associations": item.get("_links", {})}
        stamp = parse_time(item.get("archivedAt")) if deleted else None
        stamp = stamp or parse_time(properties.get(self.modified)) \
            or parse_time(item.get("updatedAt"))
        assert stamp is not None, f"HubSpot {self.object_type} {item.get('id')} has no time"
        return Record(system=SYSTEM, object=self.object_type, id=str(item["id"]),
                      updated_at=stamp, fields=fields, deleted=deleted)

    def _stamp(self, item: dict[str, Any]) -> int | None:
        moment = parse_time((item.get("properties") or {}).get(self.modified))
        return to_ms(moment) if moment is not None else None

    def _page(self, records: list[Record], state: Cursor, mark: datetime | None) -> Page:
        calls, self._spent = self._spent, 0
        watermark = state.floor(mark) if mark is not None else state.watermark
        return Page(stream=self.object_type, records=records, cursor=state.dump(),
                    watermark=watermark, calls=calls, total=self._total)

    def _send(self, method: str, path: str, operation: Any, *args: Any,
              **kwargs: Any) -> Answer:
        self._spent += 1
        return self.transport.send(Call(method, path, self.object_type), operation, *args,
                                   **kwargs)


def _next_after(body: dict[str, Any]) -> str | None:
    after = ((body.get("paging") or {}).get("next") or {}).get("after")
    return str(after) if after not in (None, "") else None


def _embedded(associations: dict[str, Any], targets: Sequence[str]) -> Links:
    """v3 embedded associations as `{"companies": [{"id": "12", "types": [1, 279]}]}`."""
    out: Links = {}
    for target in targets:
        types: dict[str, set[int]] = {}
        for item in (associations.get(target) or {}).get("results") or []:
            held = types.setdefault(str(item["id"]), set())
            type_id = V3_TYPE_IDS.get(str(item.get("type")))
            if type_id is not None:
                held.add(type_id)
        out[target] = [{"id": i, "types": sorted(t)} for i, t in
                       sorted(types.items(), key=lambda kv: int(kv[0]))]
    return out


def _collect_links(body: dict[str, Any], found: Links) -> list[dict[str, str]]:
    """Add a v4 batch read answer to `found`; the inputs still to read (paged ids)."""
    more: list[dict[str, str]] = []
    for result in body.get("results") or []:
        from_id = str(result["from"]["id"])
        held = found.setdefault(from_id, [])
        for link in result.get("to") or []:
            types = sorted(int(t["typeId"]) for t in link.get("associationTypes") or [])
            held.append({"id": str(link["toObjectId"]), "types": types})
        held.sort(key=lambda link: int(link["id"]))
        after = _next_after(result)
        if after is not None:
            more.append({"id": from_id, "after": after})
    # Ids without associations come back as 207 NO_ASSOCIATIONS_FOUND errors: nothing to add.
    return more


def _losers(survivor: Record) -> Iterator[Record]:
    """Merge losers named by a survivor's `hs_merged_object_ids` (reference 1.11)."""
    merged = str(survivor.fields.get("hs_merged_object_ids") or "")
    for loser in (i.strip() for i in merged.split(";")):
        if loser and loser != survivor.id:
            yield Record(system=SYSTEM, object=survivor.object, id=loser,
                         updated_at=survivor.updated_at, fields={"hs_object_id": loser},
                         deleted=True, merged_into=survivor.id)


def _archived_ms(item: dict[str, Any]) -> int:
    moment = parse_time(item.get("archivedAt")) or parse_time(item.get("updatedAt"))
    return to_ms(moment) if moment is not None else 0
