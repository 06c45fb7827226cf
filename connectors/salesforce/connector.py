"""The Salesforce connector: pulls sObjects by `SystemModstamp` and pushes sObject Collections.

Reads go through simple-salesforce's `queryAll` (deletes and merge losers included) ordered by
`SystemModstamp, Id` inside a bounded window `[watermark - lookback, run_start)`, paging by
`nextRecordsUrl`. When the first page's `totalSize` says the window holds more than
`bulk_threshold` rows, the rest of the window is read by a Bulk API 2.0 `queryAll` job, whose
CSV is typed back by the object's describe. Writes use sObject Collections (200 records a call,
`allOrNone` false) for updates by id and upserts by external id, and Bulk API 2.0 ingest jobs
for a group above `bulk_threshold` (push hands such a group over whole, in jobs of up to
`ingest_job_rows`: `push_chunk`), except Lead upserts while assignment rules run. Every call is
retried with `syncd.pacing.retrying()` on 5xx, 429 and dropped connections; an expired session
is renewed once where the auth flow allows it.

The cursor (JSON) holds the watermark (everything modified before it is stored) and, while a
read is under way, that read's bounds, the last stamp stored and where to go on (the query
locator, or the bulk job, its results locator and how many of that call's rows are stored: a
results call is stored in pages of REST's size), so a run stopped after any page resumes
there; if the locator has expired it re-queries from the last stamp stored.

Beside this module: `cursor.py` (that cursor and its instants), `wire.py` (the HTTP session,
the call ledger, naming calls in errors), `bulk_csv.py` (Bulk API 2.0 CSV, read and written)
and `writes.py` (what a push sends and how its answers become results).
"""

from __future__ import annotations

import csv
import difflib
import io
import itertools
import logging
import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any, TypeVar

import requests
from simple_salesforce.api import Salesforce
from simple_salesforce.exceptions import (
    SalesforceError,
    SalesforceExpiredSession,
    SalesforceGeneralError,
    SalesforceOperationError,
    SalesforceRefusedRequest,
)

from connectors.salesforce.auth import SYSTEM, TokenSource
from connectors.salesforce.bulk_csv import _ingest_csv, _typed_rows
from connectors.salesforce.cursor import _Cursor, _iso, _parse_instant, _Read, _soql_instant
from connectors.salesforce.wire import _first_error, _Ledger, _Session, _Where
from connectors.salesforce.writes import (
    _collection_record,
    _ingest_result,
    _kind,
    _malformed,
    _push_result,
)
from syncd.config import Settings
from syncd.connector import Window
from syncd.errors import (
    AuthError,
    BudgetError,
    ConfigError,
    ConnectorError,
    RetryableError,
)
from syncd.log import event
from syncd.model import (
    Change,
    FieldInfo,
    ObjectSchema,
    Page,
    PushResult,
    Record,
    Stream,
    Usage,
    utc,
)
from syncd.pacing import retrying

T = TypeVar("T")
logger = logging.getLogger(__name__)

_CONVERSION_FIELDS = (
    "IsConverted", "ConvertedDate", "ConvertedContactId", "ConvertedAccountId",
    "ConvertedOpportunityId",
)
_PERSON = ("FirstName", "LastName", "Email", "Title", "Phone", "LeadSource", "OwnerId",
           "Lifecycle_Stage__c", "Syncd_Id__c")

DEFAULT_FIELDS: dict[str, tuple[str, ...]] = {
    "Lead": (*_PERSON, "Company", "Website", "Status", "MasterRecordId", *_CONVERSION_FIELDS),
    "Contact": ("AccountId", *_PERSON, "MasterRecordId"),
    "Account": ("Name", "Website", "Industry", "Type", "OwnerId", "MasterRecordId"),
    "Opportunity": (
        "Name", "AccountId", "StageName", "CloseDate", "Amount", "Probability", "IsClosed",
        "IsWon", "CampaignId", "LeadSource", "Type", "OwnerId", "First_Touch_Campaign__c",
        "Last_Touch_Campaign__c",
    ),
    "OpportunityContactRole": ("OpportunityId", "ContactId", "Role", "IsPrimary"),
    "OpportunityStage": (
        "ApiName", "MasterLabel", "IsActive", "IsClosed", "IsWon", "DefaultProbability",
        "SortOrder",
    ),
    "Campaign": ("Name", "Type", "Status", "StartDate", "EndDate", "IsActive", "ParentId",
                 "Attributed_Revenue__c"),
    "CampaignMember": ("CampaignId", "LeadId", "ContactId", "Status", "HasResponded",
                       "FirstRespondedDate"),
    "Task": ("WhoId", "WhatId", "Subject", "Type", "Status", "ActivityDate"),
    "Event": ("WhoId", "WhatId", "Subject", "Type", "StartDateTime", "EndDateTime",
              "ActivityDate"),
}
"""What each stream requests by default: identity, the default field rules, lifecycle signals,
touchpoints and attribution (ARCHITECTURE section 5), plus the system fields every read needs."""

STREAMS = tuple(DEFAULT_FIELDS)
_MERGEABLE = frozenset({"Lead", "Contact", "Account"})
COLLECTION_SIZE = 200  # sObject Collections take at most 200 records a call [doc]
STAMP_BATCH = 2_000  # ids per stamp read: the most one Collections retrieve takes [doc]
BULK_PAGE_SIZE = 10_000  # rows per Bulk results call
# Rows per Bulk API 2.0 ingest job, unless `bulk_threshold` needs more (every job must be above
# it): push holds one job's rows at a time, and a job whose CSV would pass the upload limit goes
# in halves (`_ingest`). `bench_pipeline --scale 1000000 --touches-per-person 2`: the backfill's
# peak RSS was 288 MB before these jobs (e4c9c92) and 387 MB, in the push, with them (0a00878).
BULK_JOB_ROWS = 20_000
# simple-salesforce refuses to upload more than 100 MB to one job (bulk2.MAX_INGEST_JOB_FILE_SIZE).
UPLOAD_LIMIT = 100 * 1024 * 1024
# Rows per stored page of a Bulk results call: REST's own page size. A results call's CSV is
# typed and stored this many rows at a time (its later pages resume at the same locator, past
# the rows already stored), so what a page holds in memory does not grow with the width of
# the object read: a flat RSS whatever the org.
BULK_SLICE = 2_000
BULK_POLL_MAX = 10.0  # seconds between job status reads, at most
BULK_WAIT_LIMIT = 3600.0  # a job not done after an hour is reported, not waited on forever


def ingest_job_rows(pending: int, threshold: int) -> int:
    """Rows per ingest job for a group of `pending` writes above `threshold`: jobs of about
    equal size, each above the threshold (or the group would go by Collections) and of at most
    BULK_JOB_ROWS rows, or 2 x threshold + 2 where that is more (what keeps every job above
    it: 20,002 at the default threshold of 10,000)."""
    jobs = -(-pending // max(BULK_JOB_ROWS, 2 * threshold + 2))
    return -(-pending // jobs)


class SalesforceCallError(ConnectorError):
    """A call Salesforce refused for a reason retrying cannot fix (400, 404, ...)."""

    def __init__(self, message: str, *, error_code: str = "", **where: str) -> None:
        super().__init__(message, **where)
        self.error_code = error_code


# -- the connector -------------------------------------------------------------------------


class SalesforceConnector:
    """Reads and writes one Salesforce org through simple-salesforce (see the module doc)."""

    system = SYSTEM

    def __init__(
        self,
        settings: Settings,
        *,
        fields: Mapping[str, Sequence[str]] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
        auto_assign_leads: bool = True,
        bulk_page_size: int = BULK_PAGE_SIZE,
        bulk_slice: int = BULK_SLICE,
        timeout: float = 120.0,
    ) -> None:
        self.settings = settings.salesforce
        self.auto_assign_leads = auto_assign_leads
        self.bulk_page_size = bulk_page_size
        self.bulk_slice = bulk_slice
        self._sleep = sleep
        self._monotonic = monotonic
        self._fields = _requested_fields(fields)
        ca = self.settings.ca_bundle
        self._session = _Session(str(ca) if ca is not None else None, timeout)
        self._ledger = _Ledger(clock=monotonic)
        self._session.hooks["response"].append(self._ledger.hear)
        self._tokens = TokenSource(self.settings, self._session, timeout=timeout)
        self._sf: Salesforce | None = None
        self._described: dict[str, dict[str, Any]] = {}

    # -- the Connector protocol --

    def streams(self) -> Sequence[Stream]:
        return [Stream(name, self._fields[name]) for name in STREAMS]

    def describe(self, object_name: str) -> ObjectSchema:
        """The object's live schema; ConfigError if a requested field is not on it."""
        raw = self._describe(object_name)
        self._check_fields(object_name, raw)
        return ObjectSchema(SYSTEM, object_name, {
            f["name"]: FieldInfo(
                name=f["name"], type=f["type"], label=f.get("label", ""),
                updateable=bool(f.get("updateable")), createable=bool(f.get("createable")),
                options=tuple(p["value"] for p in f.get("picklistValues") or []
                              if p.get("active", True)),
                unique=bool(f.get("unique")),
            )
            for f in raw["fields"]
        })

    def pull(self, stream: str, cursor: str | None, window: Window) -> Iterator[Page]:
        if stream not in self._fields:
            raise ConfigError([f"Salesforce has no stream {stream!r}; streams: "
                               f"{', '.join(STREAMS)}."])
        started, calls_before = self._monotonic(), self._ledger.calls
        pages = rows = 0
        for page in self._pages(stream, cursor, window):
            pages, rows = pages + 1, rows + len(page.records)
            event(logger, "page", logging.DEBUG, system=SYSTEM, stream=stream,
                  rows=len(page.records), calls=page.calls, watermark=_iso(page.watermark))
            yield page
        event(logger, "stream_read", logging.DEBUG, system=SYSTEM, stream=stream, pages=pages,
              rows=rows,
              calls=self._ledger.calls - calls_before,
              took=f"{self._monotonic() - started:.1f}s")

    def create_field(self, object_name: str, field: FieldInfo, description: str) -> None:
        """Custom fields are an admin's job in Salesforce (Setup, Object Manager): syncd does
        not deploy metadata."""
        raise ConnectorError(
            f"Salesforce field {object_name}.{field.name} must be created by an admin: Setup > "
            f"Object Manager > {object_name} > Fields & Relationships > New ({description}).",
            system=SYSTEM, object_name=object_name)

    def stamps(self, object_name: str, ids: Sequence[str]) -> dict[str, datetime]:
        """`SystemModstamp` by Id, as the reads stamp records: one sObject Collections retrieve
        per 2,000 ids (`POST composite/sobjects/{Obj}` with the ids in the body; a deleted,
        unknown or malformed id answers null and is left out)."""
        found: dict[str, datetime] = {}
        path = f"composite/sobjects/{object_name}"
        for start in range(0, len(ids), STAMP_BATCH):
            body = {"ids": list(ids[start : start + STAMP_BATCH]),
                    "fields": ["Id", "SystemModstamp"]}
            answers = self._retrieve(_Where(object_name, "POST", path), path, body)
            for row in answers:
                if row is not None:
                    found[str(row["Id"])] = _parse_instant(str(row["SystemModstamp"]))
        return found

    def _retrieve(self, where: _Where, path: str, body: dict[str, Any]) -> list[Any]:
        """A Collections retrieve: one record or null per id, in the order asked."""
        answers = self._call(where, lambda sf: sf.restful(path, method="POST", json=body))
        return list(answers or [])

    def _query(self, sobject: str, soql: str) -> dict[str, Any]:
        """One `GET query` answer (a single page: the callers ask for fewer rows than one)."""
        answer: dict[str, Any] = self._call(_Where(sobject, "GET", "query"),
                                            lambda sf: sf.query(soql))
        return answer

    def push(self, changes: Sequence[Change]) -> list[PushResult]:
        results: list[PushResult | None] = [None] * len(changes)
        groups: dict[tuple[str, str, str], list[int]] = defaultdict(list)
        for index, change in enumerate(changes):
            problem = _malformed(change)
            if problem:
                results[index] = PushResult(change.ref, False, error_code="INVALID_CHANGE",
                                            message=problem)
            else:
                groups[(change.object, _kind(change), change.key_field or "")].append(index)
        for (sobject, kind, key_field), indexes in groups.items():
            batch = [changes[i] for i in indexes]
            if len(batch) > self.settings.bulk_threshold and self._by_bulk(sobject, kind):
                answers = self._ingest(sobject, kind, key_field, batch)
            else:
                answers = self._collections(sobject, kind, key_field, batch)
            for index, answer in zip(indexes, answers, strict=True):
                results[index] = answer
        return [r for r in results if r is not None]

    def push_chunk(self, object_name: str, operation: str, pending: int) -> int | None:
        """A group above `bulk_threshold` comes in Bulk API 2.0 ingest jobs (`ingest_job_rows`)."""
        kind = "update" if operation == "update" else "upsert"
        threshold = self.settings.bulk_threshold
        if pending <= threshold or not self._by_bulk(object_name, kind):
            return None
        return ingest_job_rows(pending, threshold)

    def _by_bulk(self, sobject: str, kind: str) -> bool:
        """Whether a large group of these writes goes by a Bulk API 2.0 ingest job. Not Lead
        upserts while Lead assignment rules are on: Bulk API 2.0 runs them only given an
        `assignmentRuleId` (not `Sforce-Auto-Assign`), which syncd does not look up, so those
        go by sObject Collections with the header. Not plain creates, which syncd never
        sends (it creates by upserting on `Syncd_Id__c`)."""
        if kind == "create":
            return False
        return not (sobject == "Lead" and kind == "upsert" and self.auto_assign_leads)

    def usage(self) -> Usage:
        ledger = self._ledger
        remaining = None
        if ledger.limit is not None and ledger.used is not None:
            remaining = max(0, ledger.limit - ledger.used)
        return Usage(SYSTEM, ledger.calls, ledger.limit, remaining, ledger.retries,
                     ledger.throttled, dict(ledger.details))

    def close(self) -> None:
        self._session.close()

    # -- reading --

    def _pages(self, stream: str, cursor: str | None, window: Window) -> Iterator[Page]:
        state = _Cursor.parse(cursor)
        run_start = utc(window.run_start)
        if cursor is None or window.full:
            state.read = _Read(lower=None, upper=run_start)
        elif window.since is not None:
            state.read = _Read(lower=utc(window.since), upper=run_start)
        elif state.read is None:
            state.read = _Read(lower=self._lower(state, window), upper=run_start)
        resumed = state.read.upper
        yield from self._read(stream, state)
        if resumed < run_start:
            # A read resumed from an earlier run ends at that run's start: read on to this one.
            state.read = _Read(lower=self._lower(state, window), upper=run_start)
            yield from self._read(stream, state)

    @staticmethod
    def _lower(state: _Cursor, window: Window) -> datetime | None:
        """An incremental read starts `lookback` before the watermark (None: from the start)."""
        return None if state.watermark is None else state.watermark - window.lookback

    def _read(self, stream: str, state: _Cursor) -> Iterator[Page]:
        """Every page of `state.read`, REST first, then Bulk when the window is large."""
        read = state.read
        assert read is not None
        while True:
            if read.job is not None:
                yield from self._bulk_pages(stream, state)
                return
            yield self._rest_step(stream, state)
            if state.read is None:  # done
                return

    def _rest_step(self, stream: str, state: _Cursor) -> Page:
        """One REST page of `state.read` (a method of its own, so that the answer is not
        held while the read goes on by Bulk)."""
        read = state.read
        assert read is not None
        before = self._ledger.calls
        answer = self._rest_page(stream, read)
        records = self._records(stream, answer.get("records") or [])
        done = bool(answer.get("done", True))
        read.total = answer.get("totalSize", read.total)
        read.next_url = None if done else answer.get("nextRecordsUrl")
        if records:
            read.after = records[-1].updated_at
        if not done and read.total is not None and read.total > self.settings.bulk_threshold:
            read.next_url, read.job, read.locator = None, "", ""  # go on by Bulk
        return self._page(stream, state, records, done, before)

    def _page(
        self, stream: str, state: _Cursor, records: list[Record], done: bool, before: int
    ) -> Page:
        read = state.read
        assert read is not None
        total = read.total
        if done:
            state.advance(read.upper)
            state.read = None
        else:
            state.advance(read.after)
        return Page(stream, records, state.dump(), state.watermark,
                    calls=self._ledger.calls - before, total=total)

    def _rest_page(self, stream: str, read: _Read) -> dict[str, Any]:
        """One REST answer: the next locator page, else the window's first page."""
        if read.next_url:
            where = _Where(stream, "GET", read.next_url.split("?")[0])
            url = read.next_url
            try:
                return self._call(where, lambda sf: sf.query_more(url, identifier_is_url=True))
            except SalesforceCallError as error:
                if error.error_code not in ("INVALID_QUERY_LOCATOR", "NOT_FOUND"):
                    raise
                read.next_url = None  # the locator expired: query again from the last stamp
        soql = self._soql(stream, read)
        where = _Where(stream, "GET", "queryAll")
        try:
            return self._call(where, lambda sf: sf.query(soql, include_deleted=True))
        except SalesforceCallError as error:
            if error.error_code == "INVALID_FIELD":
                self.describe(stream)  # raises the clear one-line ConfigError
            raise

    def _soql(self, stream: str, read: _Read) -> str:
        bounds = []
        if read.since is not None:
            bounds.append(f"SystemModstamp >= {_soql_instant(read.since)}")
        bounds.append(f"SystemModstamp < {_soql_instant(read.upper)}")
        return (f"SELECT {', '.join(self._fields[stream])} FROM {stream} "
                f"WHERE {' AND '.join(bounds)} ORDER BY SystemModstamp, Id")

    def _records(self, stream: str, rows: Sequence[Mapping[str, Any]]) -> list[Record]:
        return [self._record(stream, row) for row in rows]

    def _record(self, stream: str, row: Mapping[str, Any]) -> Record:
        values = {k: v for k, v in row.items() if k != "attributes"}
        master = values.get("MasterRecordId")
        return Record(
            system=SYSTEM, object=stream, id=str(values["Id"]),
            updated_at=_parse_instant(str(values["SystemModstamp"])), fields=values,
            deleted=bool(values.get("IsDeleted")),
            merged_into=str(master) if master else None,
        )

    # -- reading by Bulk API 2.0 --

    def _bulk_pages(self, stream: str, state: _Cursor) -> Iterator[Page]:
        """The rest of the window by a Bulk `queryAll` job: per results call, pages of at most
        `bulk_slice` rows (the last one moves on to the next results locator).

        simple-salesforce's `bulk2.<Obj>.query_all()` would do this, but it waits with the
        real `time.sleep` (5 s at least) and hides the job id and locator, so a page could not
        carry a cursor to resume from; its job calls are used one by one instead.
        """
        read = state.read
        assert read is not None
        before = self._ledger.calls  # the describe that types the CSV counts with a page too
        types = self._types(stream)
        while True:
            if not read.job:
                read.job, read.locator, read.skip = self._start_query_job(stream, read), "", 0
            try:
                chunk = self._bulk_results(stream, read.job, read.locator or "")
            except SalesforceCallError as error:
                if error.error_code not in ("NOT_FOUND", "INVALIDLOCATOR", "INVALID_LOCATOR"):
                    raise
                read.job = ""  # the job is gone: start another from the last stamp stored
                continue
            yield from self._slices(stream, state, chunk, types, before)
            if state.read is None:  # done
                return
            before = self._ledger.calls

    def _slices(self, stream: str, state: _Cursor, chunk: dict[str, Any],
                types: Mapping[str, str], before: int) -> Iterator[Page]:
        """The pages of one results call, `bulk_slice` rows each, past the rows an earlier page
        of it stored; the last one moves the read on to the next results locator."""
        read = state.read
        assert read is not None
        following = chunk["locator"]
        rows = _typed_rows(chunk.pop("records"), types)
        for _ in range(read.skip):
            next(rows, None)
        while True:
            records = self._records(stream, list(itertools.islice(rows, self.bulk_slice)))
            last = len(records) < self.bulk_slice or rows.exhausted()
            if records:
                read.after = records[-1].updated_at
            if last:
                read.locator, read.skip = following, 0
            else:
                read.skip += len(records)
            yield self._page(stream, state, records, last and not following, before)
            if last:
                return
            before = self._ledger.calls

    def _start_query_job(self, stream: str, read: _Read) -> str:
        soql = self._soql(stream, read)
        where = _Where(stream, "POST", "jobs/query")
        info = self._call(where, lambda sf: _bulk(sf, stream).create_job("queryAll", soql))
        job = str(info["id"])
        self._wait_for_job(stream, job, query=True)
        return job

    def _wait_for_job(self, sobject: str, job: str, *, query: bool) -> dict[str, Any]:
        """Poll the job until it completes, sleeping (injected) longer between reads."""
        kind = "query" if query else "ingest"
        where = _Where(sobject, "GET", f"jobs/{kind}/{job}")
        started, pause = self._monotonic(), 0.5
        while True:
            info: dict[str, Any] = self._call(
                where, lambda sf: _bulk(sf, sobject).get_job(job, query)
            )
            state = info.get("state")
            if state == "JobComplete":
                return info
            if state in ("Failed", "Aborted"):
                raise SalesforceCallError(
                    f"Salesforce Bulk API {kind} job {job} for {sobject} ended {state}: "
                    f"{info.get('errorMessage') or 'no reason given'}.",
                    error_code=f"JOB_{str(state).upper()}", **where.fields(),
                )
            if self._monotonic() - started > BULK_WAIT_LIMIT:
                raise RetryableError(
                    f"Salesforce Bulk API {kind} job {job} for {sobject} is still {state} "
                    f"after {BULK_WAIT_LIMIT:.0f}s.", retry_after=None, **where.fields(),
                )
            self._sleep(pause)
            pause = min(pause * 2, BULK_POLL_MAX)

    def _bulk_results(self, stream: str, job: str, locator: str) -> dict[str, Any]:
        where = _Where(stream, "GET", f"jobs/query/{job}/results")
        size = self.bulk_page_size
        result: dict[str, Any] = self._call(
            where, lambda sf: dict(_bulk(sf, stream).get_query_results(job, locator, size))
        )
        return result

    def _types(self, stream: str) -> dict[str, str]:
        return {f["name"]: f["type"] for f in self._describe(stream)["fields"]}

    # -- describing --

    def _describe(self, object_name: str) -> dict[str, Any]:
        """`GET sobjects/{Obj}/describe`, once per object for this connector's life."""
        if object_name not in self._described:
            where = _Where(object_name, "GET", f"sobjects/{object_name}/describe")
            raw = self._call(where, lambda sf: getattr(sf, object_name).describe())
            self._described[object_name] = dict(raw)
        return self._described[object_name]

    def _check_fields(self, object_name: str, raw: Mapping[str, Any]) -> None:
        known = [str(f["name"]) for f in raw["fields"]]
        lowered = {name.lower() for name in known}
        problems = []
        for name in self._fields.get(object_name, ()):
            if name.lower() not in lowered:
                close = difflib.get_close_matches(name, known, n=1)
                hint = f' Did you mean "{close[0]}"?' if close else ""
                problems.append(
                    f'Salesforce {object_name} has no field "{name}" (requested for the '
                    f"{object_name} stream).{hint}"
                )
        if problems:
            raise ConfigError(problems)

    # -- writing --

    def _collections(
        self, sobject: str, kind: str, key_field: str, batch: Sequence[Change]
    ) -> list[PushResult]:
        """sObject Collections, 200 records a call, each record answered on its own."""
        out: list[PushResult] = []
        for start in range(0, len(batch), COLLECTION_SIZE):
            chunk = batch[start : start + COLLECTION_SIZE]
            out.extend(self._collection_call(sobject, kind, key_field, chunk))
        return out

    def _collection_call(
        self, sobject: str, kind: str, key_field: str, chunk: Sequence[Change]
    ) -> list[PushResult]:
        path, method = "composite/sobjects", "PATCH" if kind != "create" else "POST"
        if kind == "upsert":
            path = f"composite/sobjects/{sobject}/{key_field}"
        body = {"allOrNone": False, "records": [_collection_record(c) for c in chunk]}
        headers = self._write_headers(sobject, kind)
        where = _Where(sobject, method, path)
        try:
            answers = self._call(
                where, lambda sf: sf.restful(path, method=method, json=body, headers=headers)
            )
        except SalesforceCallError as error:
            # The whole request was refused (400): every record in it carries the reason.
            return [PushResult(c.ref, False, error_code=error.error_code, message=str(error))
                    for c in chunk]
        return [_push_result(change, answer, kind)
                for change, answer in zip(chunk, answers or [], strict=True)]

    def _write_headers(self, sobject: str, kind: str) -> dict[str, str]:
        if sobject == "Lead" and kind in ("upsert", "create"):
            # Lead assignment rules run on creates only when asked; syncd asks by default.
            return {"Sforce-Auto-Assign": "TRUE" if self.auto_assign_leads else "FALSE"}
        return {}

    def _ingest(
        self, sobject: str, kind: str, key_field: str, batch: Sequence[Change]
    ) -> list[PushResult]:
        """A Bulk API 2.0 ingest job for a group larger than `bulk_threshold`."""
        key_column = "Id" if kind == "update" else key_field
        columns = [key_column, *sorted({f for c in batch for f in c.fields} - {key_column})]
        data = _ingest_csv(batch, key_column, columns)
        if len(data.encode("utf-8")) > UPLOAD_LIMIT:
            # Long values: the rows go in two jobs, and a row too large alone is refused.
            if len(batch) == 1:
                return [PushResult(batch[0].ref, False, error_code="BULK_UPLOAD_TOO_LARGE",
                                   message=f"Salesforce {sobject}: this record's values make a "
                                   "Bulk API upload over 100 MB; shorten them.")]
            half = len(batch) // 2
            return (self._ingest(sobject, kind, key_field, batch[:half])
                    + self._ingest(sobject, kind, key_field, batch[half:]))
        try:
            job, final = self._run_ingest_job(sobject, kind, key_field, data)
        except SalesforceCallError as error:
            # The job was refused or failed as a whole (as a refused Collections request):
            # every record in it carries the reason.
            return [PushResult(c.ref, False, error_code=error.error_code, message=str(error))
                    for c in batch]
        outcome: dict[str, deque[tuple[bool, str, str, str]]] = defaultdict(deque)
        self._ingest_outcome(sobject, job, "successfulResults", key_column, outcome)
        if int(final.get("numberRecordsFailed") or 0):
            self._ingest_outcome(sobject, job, "failedResults", key_column, outcome)
        return [_ingest_result(change, key_column, outcome) for change in batch]

    def _run_ingest_job(
        self, sobject: str, kind: str, key_field: str, data: str
    ) -> tuple[str, dict[str, Any]]:
        """Create the job, upload the CSV, close it and wait: its id and final state."""
        jobs = "jobs/ingest"
        external = key_field if kind == "upsert" else None
        info = self._call(_Where(sobject, "POST", jobs), lambda sf: _bulk(sf, sobject).create_job(
            kind, external_id_field=external))
        job = str(info["id"])
        self._call(_Where(sobject, "PUT", f"{jobs}/{job}/batches"),
                   lambda sf: _bulk(sf, sobject).upload_job_data(job, data))
        self._call(_Where(sobject, "PATCH", f"{jobs}/{job}"),
                   lambda sf: _bulk(sf, sobject).close_job(job))
        return job, self._wait_for_job(sobject, job, query=False)

    def _ingest_outcome(
        self, sobject: str, job: str, kind: str, key_column: str,
        outcome: dict[str, deque[tuple[bool, str, str, str]]],
    ) -> None:
        where = _Where(sobject, "GET", f"jobs/ingest/{job}/{kind}")
        text = self._call(where, lambda sf: _bulk(sf, sobject).get_ingest_results(job, kind))
        for row in csv.DictReader(io.StringIO(text)):
            key = row.get(key_column, "")
            if "sf__Error" in row:
                code, _, message = row["sf__Error"].partition(":")
                outcome[key].append((False, row.get("sf__Id", ""), code, message.rstrip(" -")))
            else:
                created = row.get("sf__Created", "").lower() == "true"
                outcome[key].append((True, row.get("sf__Id", ""), str(created), ""))

    # -- calling --

    def _client(self) -> Salesforce:
        """The simple-salesforce client, logging in first where the auth flow needs to."""
        if self._sf is None:
            grant = self._tokens.grant()
            # Built from a session id, simple-salesforce never re-logs in by itself: the one
            # renewal on 401 below is syncd's, so it can be counted and bounded.
            self._sf = Salesforce(
                instance_url=grant.instance_url, session_id=grant.access_token,
                version=self.settings.api_version, session=self._session,
            )
        return self._sf

    def _call(self, where: _Where, action: Callable[[Salesforce], T]) -> T:
        """One API call with retries on 5xx/429/dropped connections and errors in syncd's words."""
        policy = retrying(sleep=self._sleep, before_sleep=self._count_retry)
        for attempt in policy:
            with attempt:
                return self._attempt(where, action)
        raise AssertionError("retrying() re-raises the last error")  # pragma: no cover

    def _count_retry(self, state: Any) -> None:
        self._ledger.retries += 1
        error = state.outcome.exception() if state.outcome is not None else None
        event(logger, "retry", logging.WARNING, system=SYSTEM, attempt=state.attempt_number,
              error=str(error))

    def _attempt(self, where: _Where, action: Callable[[Salesforce], T]) -> T:
        try:
            return self._renewing(action)
        except SalesforceError as error:
            raise self._translated(where, error) from None
        except SalesforceOperationError as error:
            # A Bulk API step the client itself found wrong (e.g. an upload not answered 201).
            raise SalesforceCallError(f"Salesforce Bulk API refused {where}: {error}",
                                      error_code="BULK_OPERATION", **where.fields()) from None
        except (requests.ConnectionError, requests.Timeout) as error:
            if not isinstance(error, requests.exceptions.SSLError):
                self._ledger.count("(no answer)")
                raise RetryableError(
                    f"Salesforce did not answer {where}: {type(error).__name__}.",
                    retry_after=None, **where.fields(),
                ) from None
            raise ConnectorError(f"Salesforce TLS check failed on {where}: the certificate "
                                 "is not trusted (see salesforce.ca_bundle).",
                                 **where.fields()) from None

    def _renewing(self, action: Callable[[Salesforce], T]) -> T:
        """Run the action; on an expired session renew the token once and run it again."""
        try:
            return action(self._client())
        except SalesforceExpiredSession:
            if not self._tokens.refreshable:
                raise
            self._sf = None
            event(logger, "token_renewed", system=SYSTEM, flow=self.settings.auth)
            return action(self._client())

    def _translated(self, where: _Where, error: SalesforceError) -> ConnectorError:
        """A simple-salesforce exception in syncd's words (STYLE.md, Errors)."""
        code, message = _first_error(getattr(error, "content", None))
        status = int(getattr(error, "status", 0) or 0)
        seen = f"Salesforce answered {status} {code or ''} to {where}".replace("  ", " ")
        fields = where.fields(str(getattr(error, "url", "") or ""))
        if isinstance(error, SalesforceExpiredSession):
            return AuthError(f"{seen}: the session is expired or invalid and "
                             f"auth = \"{self.settings.auth}\" cannot be renewed (again). "
                             "Check the salesforce credentials.", **fields)
        if isinstance(error, SalesforceRefusedRequest):
            if code == "REQUEST_LIMIT_EXCEEDED" and "ConcurrentPerOrg" in message:
                return RetryableError(f"{seen}: {message}", retry_after=self._ledger.retry_after,
                                      **fields)
            if code == "REQUEST_LIMIT_EXCEEDED":
                return BudgetError(f"{seen}: the org's daily API limit is spent ({message}). "
                                   "Run again later; cursors are kept.", **fields)
            return AuthError(f"{seen}: {message}. Check the integration user's permissions.",
                             **fields)
        if isinstance(error, SalesforceGeneralError) and (status == 429 or status >= 500):
            if status == 429:
                self._ledger.throttled += 1
            return RetryableError(f"{seen}; retrying.", retry_after=self._ledger.retry_after,
                                  **fields)
        return SalesforceCallError(f"{seen}: {message}", error_code=code or str(status),
                                   **fields)


# -- small pieces --------------------------------------------------------------------------


def _requested_fields(overrides: Mapping[str, Sequence[str]] | None) -> dict[str, tuple[str, ...]]:
    """Per stream, the fields to request: the defaults and the mapping files' fields (on top),
    plus what reading needs."""
    out = {}
    for stream, defaults in DEFAULT_FIELDS.items():
        chosen = [*defaults, *(overrides or {}).get(stream, ())]
        needed = ["Id", "SystemModstamp"]
        if stream != "OpportunityStage":
            needed.append("IsDeleted")
        if stream in _MERGEABLE:
            needed.append("MasterRecordId")
        if stream == "Lead":
            needed.extend(_CONVERSION_FIELDS)
        if stream != "OpportunityStage":
            needed.extend(("CreatedDate", "LastModifiedDate"))
        ordered = dict.fromkeys([*needed, *chosen])
        out[stream] = tuple(ordered)
    return out


def _bulk(sf: Salesforce, sobject: str) -> Any:
    """simple-salesforce's Bulk API 2.0 client for one object, built on the current token."""
    return getattr(sf.bulk2, sobject)._client



def create(
    settings: Settings,
    *,
    fields: Mapping[str, Sequence[str]] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    monotonic: Callable[[], float] = time.monotonic,
    auto_assign_leads: bool | None = None,
) -> SalesforceConnector:
    """The `syncd.connectors` entry point: a connector for `settings.salesforce`. Leads it
    creates go through the org's assignment rules unless `lead_assignment_rules = false`."""
    assign = (settings.salesforce.lead_assignment_rules if auto_assign_leads is None
              else auto_assign_leads)
    return SalesforceConnector(settings, fields=fields, sleep=sleep, monotonic=monotonic,
                               auto_assign_leads=assign)


__all__ = ["DEFAULT_FIELDS", "STREAMS", "SalesforceCallError", "SalesforceConnector", "create"]
