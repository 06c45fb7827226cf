"""A loopback Salesforce: the REST API, sObject Collections, Bulk API 2.0 and OAuth over HTTPS.

The real simple-salesforce 1.12.10 drives it exactly as it drives production (wire reference
0.2): every URL in 0.2's list routes, with or without a trailing slash, under
`/services/data/v{version}/`. Bearer tokens are checked on every call but the token endpoint;
each authenticated call counts against DailyApiRequests, reported in `Sforce-Limit-Info`.
The in-memory org lives in `org.py` (with `tables.py`, `ids.py`, `values.py`), Bulk API 2.0
in `bulk.py`, SOQL in `soql.py` (with `soql_parser.py`, `soql_binding.py`,
`soql_predicates.py`).

Run it alone with `python -m connectors.salesforce.emulator [--port N]`.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import secrets
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, unquote_plus

from connectors.loopback import (
    Faults,
    LoopbackServer,
    Request,
    Response,
    Router,
    ThrowawayCA,
)

from .bulk import BulkApi
from .ids import to_id18
from .org import Org
from .tables import Selection
from .values import OrgError, parse_datetime, wire_datetime

DATA = "/services/data/v{version}"
TOKEN_PATH = "/services/oauth2/token"
MAX_COLLECTION = 200
MAX_RETRIEVE = 2000  # ids in one POST composite/sobjects/{Obj} retrieve
MAX_REPLICATION_IDS = 600_000
_LOCATORS_KEPT = 50
_NOT_FOUND = "The requested resource does not exist"
_ROLLED_BACK = {
    "statusCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK",
    "message": "Record rolled back because not all records were valid and the request was "
               "using AllOrNone header",
    "fields": [],
}
_AUDIENCES = ("https://login.salesforce.com", "https://test.salesforce.com")


def generate_jwt_key_pair() -> tuple[bytes, bytes]:
    """A fresh RSA key pair for the JWT bearer flow: (private PEM, public PEM)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, public


def errors(code: str, message: str, status: int = 400, fields: list[str] | None = None) -> Response:
    """Salesforce's top-level error envelope: a JSON array (reference 2.8)."""
    entry: dict[str, Any] = {"message": message, "errorCode": code}
    if fields:
        entry["fields"] = fields
    return Response(status, [entry])


@dataclass
class Locator:
    """A query evaluated once: its rows are paged from here, never re-run (performance)."""

    selection: Selection
    version: str


class SalesforceEmulator:
    """An in-memory Salesforce org served over HTTPS on 127.0.0.1."""

    def __init__(
        self,
        *,
        faults: Faults | None = None,
        ca: ThrowawayCA | None = None,
        port: int = 0,
        clock: Callable[[], datetime] | None = None,
        api_version: str = "59.0",
        daily_limit: int = 100_000,
        access_token: str | None = None,
        consumer_key: str = "syncd-emulator-consumer-key",
        jwt_public_key_pem: bytes | None = None,
        client_id: str = "syncd-emulator-client",
        client_secret: str = "syncd-emulator-secret",
        username: str = "integration@syncd.example",
        password: str = "syncd-emulator-password",
    ) -> None:
        self.org = Org(clock=clock)
        self.org.set_username(username)
        self.api_version = api_version
        self.daily_limit = daily_limit
        self.api_usage = 0
        self.consumer_key = consumer_key
        self.jwt_public_key_pem = jwt_public_key_pem
        self.client_id, self.client_secret = client_id, client_secret
        self.username, self.password = username, password
        self._tokens: set[str] = {access_token} if access_token else set()
        self._locators: OrderedDict[str, Locator] = OrderedDict()
        self._created = self.org.clock()
        self.bulk = BulkApi(self.org, lambda: self.server.faults.rejects)
        self._router = Router()
        self._add_routes()
        self.server = LoopbackServer(self._app, self.error_answer, faults=faults, ca=ca, port=port)

    # -- lifecycle and test hooks --

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def ca_path(self) -> Path:
        return self.server.ca.ca_path

    @property
    def faults(self) -> Faults:
        return self.server.faults

    @faults.setter
    def faults(self, value: Faults) -> None:
        self.server.faults = value

    @property
    def counts(self) -> Counter[str]:
        return self.server.counts

    def calls(self, prefix: str = "") -> int:
        """Requests served so far whose endpoint name starts with prefix."""
        return self.server.calls(prefix)

    def start(self) -> SalesforceEmulator:
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop()

    def __enter__(self) -> SalesforceEmulator:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.stop()

    def issue_token(self) -> str:
        """A fresh valid session id, org-id prefixed like Salesforce's (`00D...!AQ...`)."""
        token = f"{self.org.org_id[:15]}!AQ{secrets.token_urlsafe(72)}"
        with self.server.app_lock:
            self._tokens.add(token)
        return token

    def expire_tokens(self) -> None:
        """Every token issued so far now answers 401 INVALID_SESSION_ID."""
        with self.server.app_lock:
            self._tokens.clear()

    @staticmethod
    def make_jwt_key_pair() -> tuple[bytes, bytes]:
        """(private PEM, public PEM) for `jwt_public_key_pem` and a client's assertion."""
        return generate_jwt_key_pair()

    # -- the app --

    def _app(self, request: Request) -> tuple[str, Response]:
        if request.path.rstrip("/") == TOKEN_PATH:
            return f"POST {TOKEN_PATH}", self._token(request)
        matched = self._router.match(request.method, request.path)
        endpoint = matched[0] if matched else f"{request.method} (not found)"
        response = self._authorized(request)
        if response is None:
            self.api_usage += 1
            response = self._handle(request, matched)
        response.headers["Sforce-Limit-Info"] = self._limit_info()
        return endpoint, response

    def _authorized(self, request: Request) -> Response | None:
        """None when the call may proceed; else the 401 or 403 Salesforce answers."""
        scheme, _, token = request.header("authorization").partition(" ")
        if scheme.lower() not in ("bearer", "oauth") or token.strip() not in self._tokens:
            return errors("INVALID_SESSION_ID", "Session expired or invalid", 401)
        if self.api_usage >= self.daily_limit:
            return errors("REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.", 403)
        return None

    def _handle(
        self, request: Request, matched: tuple[str, Callable[..., Response], dict[str, str]] | None
    ) -> Response:
        if matched is None:
            return errors("NOT_FOUND", _NOT_FOUND, 404)
        _, handler, params = matched
        version = params.get("version")
        if version is not None and not _is_version(version):
            return errors("NOT_FOUND", _NOT_FOUND, 404)
        try:
            return handler(request, **params)
        except OrgError as error:
            return errors(error.error_code, error.message, error.status, error.fields)
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            return errors("JSON_PARSER_ERROR", f"Unexpected character: {error}")

    def _limit_info(self) -> str:
        return f"api-usage={self.api_usage}/{self.daily_limit}"

    def error_answer(self, status: int, request: Request) -> Response:
        """Salesforce's envelope for an injected error status."""
        if request.path.rstrip("/") == TOKEN_PATH:
            response = Response(status, {"error": "temporarily_unavailable",
                                         "error_description": "service unavailable"})
        elif status == 429:
            # Salesforce REST never answers 429 (reference 2.8): a throttling storm shows as
            # 503 SERVER_UNAVAILABLE, its closest real answer to "slow down and retry".
            response = errors("SERVER_UNAVAILABLE", "Server temporarily unavailable", 503)
        elif status == 403:
            response = errors("REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.", 403)
        elif status == 401:
            response = errors("INVALID_SESSION_ID", "Session expired or invalid", 401)
        elif status == 503:
            response = errors("SERVER_UNAVAILABLE", "Server temporarily unavailable", 503)
        else:
            response = errors(
                "UNKNOWN_EXCEPTION",
                "An unexpected error occurred. Please include this ErrorId if you contact "
                f"support: {secrets.randbelow(10**9)}-{secrets.randbelow(10**5)} (-1)", status,
            )
        response.headers["Sforce-Limit-Info"] = self._limit_info()
        return response

    def _add_routes(self) -> None:
        add, data = self._router.add, DATA
        add("GET", "/services/data", self._versions)
        add("GET", data, self._resources)
        add("GET", f"{data}/limits", self._limits)
        add("GET", f"{data}/sobjects", self._describe_global)
        for kind in ("query", "queryAll"):
            add("GET", f"{data}/{kind}", self._query)
            add("GET", f"{data}/{kind}/{{locator}}", self._query_more)
        collections = f"{data}/composite/sobjects"
        add("POST", collections, self._collection_create)
        add("PATCH", collections, self._collection_update)
        add("DELETE", collections, self._collection_delete)
        add("GET", collections + "/{sobject}", self._collection_retrieve)
        add("POST", collections + "/{sobject}", self._collection_retrieve_body)
        add("PATCH", collections + "/{sobject}/{field}", self._collection_upsert)
        self.bulk.routes(self._router, data)
        sobject = f"{data}/sobjects/{{sobject}}"
        add("GET", sobject, self._basic_info)
        add("POST", sobject, self._create)
        add("GET", f"{sobject}/describe", self._describe)
        add("GET", f"{sobject}/updated", self._updated)
        add("GET", f"{sobject}/deleted", self._deleted)
        add("GET", sobject + "/{record_id}", self._retrieve)
        add("PATCH", sobject + "/{record_id}", self._update)
        add("DELETE", sobject + "/{record_id}", self._delete)
        add("GET", sobject + "/{field}/{value}", self._retrieve_by_external_id)
        add("PATCH", sobject + "/{field}/{value}", self._upsert)

    # -- resources, limits, describe --

    def _versions(self, request: Request) -> Response:
        return Response(200, [
            {"label": "Winter '24", "url": "/services/data/v59.0", "version": "59.0"},
            {"label": "Spring '24", "url": "/services/data/v60.0", "version": "60.0"},
            {"label": "Summer '24", "url": "/services/data/v61.0", "version": "61.0"},
            {"label": "Winter '25", "url": "/services/data/v62.0", "version": "62.0"},
        ])

    def _resources(self, request: Request, version: str) -> Response:
        base = f"/services/data/v{version}"
        names = ("sobjects", "query", "queryAll", "limits", "composite", "jobs")
        return Response(200, {name: f"{base}/{name}" for name in names})

    def _limits(self, request: Request, version: str) -> Response:
        """`GET limits/` in the shape of reference 2.9."""
        def entry(maximum: int, used: int = 0) -> dict[str, int]:
            return {"Max": maximum, "Remaining": max(0, maximum - used)}

        jobs = self.bulk.query_jobs_created
        return Response(200, {
            "ActiveScratchOrgs": entry(3), "ConcurrentAsyncGetReportInstances": entry(200),
            "ConcurrentSyncReportRuns": entry(20), "DailyAnalyticsDataflowJobExecutions":
                entry(60), "DailyApiRequests": entry(self.daily_limit, self.api_usage),
            "DailyAsyncApexExecutions": entry(250_000), "DailyBulkApiBatches": entry(15_000),
            "DailyBulkApiRequests": entry(10_000), "DailyBulkV2QueryFileStorageMB":
                entry(976_562), "DailyBulkV2QueryJobs": entry(10_000, jobs),
            "DailyDurableGenericStreamingApiEvents": entry(10_000),
            "DailyDurableStreamingApiEvents": entry(10_000), "DailyGenericStreamingApiEvents":
                entry(10_000), "DailyStandardVolumePlatformEvents": entry(10_000),
            "DailyStreamingApiEvents": entry(10_000), "DailyWorkflowEmails": entry(2_000),
            "DataStorageMB": entry(1_024), "FileStorageMB": entry(20_480),
            "HourlyAsyncReportRuns": entry(1_200), "HourlyDashboardRefreshes": entry(200),
            "HourlyDashboardResults": entry(5_000), "HourlyDashboardStatuses": entry(999_999_999),
            "HourlyODataCallout": entry(20_000), "HourlySyncReportRuns": entry(500),
            "HourlyTimeBasedWorkflow": entry(1_000), "MassEmail": entry(5_000),
            "SingleEmail": entry(5_000), "StreamingApiConcurrentClients": entry(2_000),
        })

    def _describe_global(self, request: Request, version: str) -> Response:
        return Response(200, {
            "encoding": "UTF-8", "maxBatchSize": MAX_COLLECTION,
            "sobjects": [self.org.spec(n).summary(version) for n in self.org.sobject_names()],
        })

    def _sobject(self, name: str) -> str:
        """The canonical name of an sObject in a URL; unknown ones are 404 NOT_FOUND."""
        canonical = self.org.resolve(name)
        if canonical is None:
            raise OrgError("NOT_FOUND", _NOT_FOUND)
        return canonical

    def _describe(self, request: Request, version: str, sobject: str) -> Response:
        return Response(200, self.org.describe(self._sobject(sobject), version))

    def _basic_info(self, request: Request, version: str, sobject: str) -> Response:
        summary = self.org.spec(self._sobject(sobject)).summary(version)
        return Response(200, {"objectDescribe": summary, "recentItems": []})

    # -- query --

    def _query(self, request: Request, version: str) -> Response:
        soql = request.arg("q")
        if not soql:
            return errors("MALFORMED_QUERY", "The q parameter is required")
        include_deleted = "/queryAll" in request.path
        selection = self.org.select(soql, include_deleted=include_deleted, version=version)
        if selection.count_only:
            return Response(200, {"totalSize": len(selection.rows), "done": True, "records": []})
        locator_id = self.org.new_id("01g")
        self._locators[locator_id] = Locator(selection, version)
        while len(self._locators) > _LOCATORS_KEPT:
            # Salesforce also caps open cursors per user and drops the oldest [reported].
            self._locators.popitem(last=False)
        return self._page(locator_id, 0, _batch_size(request))

    def _query_more(self, request: Request, version: str, locator: str) -> Response:
        locator_id, _, offset = locator.rpartition("-")
        if locator_id not in self._locators or not offset.isdigit():
            return errors("INVALID_QUERY_LOCATOR", "invalid query locator")
        self._locators.move_to_end(locator_id)
        return self._page(locator_id, int(offset), _batch_size(request))

    def _page(self, locator_id: str, offset: int, size: int) -> Response:
        locator = self._locators[locator_id]
        selection, version = locator.selection, locator.version
        rows = selection.rows[offset : offset + size]
        total = len(selection.rows)
        done = offset + len(rows) >= total
        body: dict[str, Any] = {"totalSize": total, "done": done}
        if not done:
            body["nextRecordsUrl"] = (
                f"/services/data/v{version}/query/{locator_id}-{offset + len(rows)}"
            )
        project, sobject = selection.project, selection.sobject
        body["records"] = [
            {"attributes": _attributes(sobject, row["Id"], version), **project(row)}
            for row in rows
        ]
        return Response(200, body)

    # -- single records --

    def _create(self, request: Request, version: str, sobject: str) -> Response:
        name = self._sobject(sobject)
        record_id = self.org.insert(name, _object(request.json()), screen=self.faults.rejects)
        return Response(201, {"id": record_id, "success": True, "errors": []})

    def _retrieve(self, request: Request, version: str, sobject: str, record_id: str) -> Response:
        name = self._sobject(sobject)
        canonical = to_id18(record_id)
        if canonical is None or not canonical.startswith(self.org.spec(name).key_prefix):
            # Salesforce reads a non-id segment as an external id field name.
            raise OrgError(
                "NOT_FOUND",
                f"Provided external ID field does not exist or is not accessible: {record_id}",
            )
        row = self.org.row(name, canonical)
        return Response(200, self._record(name, row, request.args("fields"), version))

    def _record(
        self, sobject: str, row: Mapping[str, Any], fields: list[str], version: str
    ) -> dict[str, Any]:
        spec = self.org.spec(sobject)
        names = []
        for field_name in fields or list(spec.fields):
            canonical = spec.canonical(field_name)
            if canonical is None:
                raise OrgError(
                    "INVALID_FIELD", f"No such column '{field_name}' on entity '{sobject}'. "
                    "If you are attempting to use a custom field, be sure to append the '__c' "
                    "after the custom field name. Please reference your WSDL or the describe "
                    "call for the appropriate names.",
                )
            names.append(canonical)
        answer: dict[str, Any] = {"attributes": _attributes(sobject, row["Id"], version)}
        answer.update((name, row.get(name)) for name in names)
        return answer

    def _update(self, request: Request, version: str, sobject: str, record_id: str) -> Response:
        name = self._sobject(sobject)
        fields = _object(request.json())
        if str(fields.get("Id", "")) in (record_id, to_id18(record_id)):
            fields.pop("Id")
        self.org.update(name, record_id, fields, screen=self.faults.rejects)
        return Response(204)

    def _delete(self, request: Request, version: str, sobject: str, record_id: str) -> Response:
        self.org.delete(self._sobject(sobject), record_id)
        return Response(204)

    def _external_field(self, sobject: str, field_name: str) -> str:
        spec = self.org.spec(sobject)
        canonical = spec.canonical(field_name)
        usable = canonical is not None and (
            spec.fields[canonical].indexed or spec.fields[canonical].type == "id"
        )
        if canonical is None or not usable:
            raise OrgError(
                "NOT_FOUND",
                f"Provided external ID field does not exist or is not accessible: {field_name}",
            )
        return canonical

    def _retrieve_by_external_id(
        self, request: Request, version: str, sobject: str, field: str, value: str
    ) -> Response:
        name = self._sobject(sobject)
        external = self._external_field(name, field)
        # simple-salesforce quote_plus-encodes this value, so a '+' here is a space.
        raw = unquote_plus(request.raw_path.rstrip("/").rsplit("/", 1)[-1])
        matches = self.org.find(name, external, raw)
        if not matches:
            raise OrgError("NOT_FOUND", _NOT_FOUND)
        if len(matches) > 1:
            return Response(300, [_url(name, match, version) for match in matches])
        row = self.org.row(name, matches[0])
        return Response(200, self._record(name, row, request.args("fields"), version))

    def _upsert(
        self, request: Request, version: str, sobject: str, field: str, value: str
    ) -> Response:
        """Upsert by external id. `value` is the path segment as sent: simple-salesforce does
        not encode it, so a literal '+' stays a '+' (reference 0.2)."""
        name = self._sobject(sobject)
        external = self._external_field(name, field)
        fields = _object(request.json())
        spec = self.org.spec(name)
        for key in fields:
            if spec.canonical(key) in ("Id", external):
                # Reference 2.5: neither the external id field nor Id may be in the body.
                return errors(
                    "INVALID_FIELD",
                    f"The field {spec.canonical(key)} can not be specified in the request body "
                    "of an upsert by external id", 400, [str(spec.canonical(key))],
                )
        matches = self.org.find(name, external, value)
        if len(matches) > 1:
            return Response(300, [_url(name, match, version) for match in matches])
        if matches:
            self.org.update(name, matches[0], fields, screen=self.faults.rejects)
            return Response(200, {"id": matches[0], "success": True, "errors": [],
                                  "created": False})
        if request.arg("updateOnly") == "true" or external == "Id":
            raise OrgError("NOT_FOUND", _NOT_FOUND)
        record_id = self.org.insert(name, {**fields, external: value},
                                    screen=self.faults.rejects)
        return Response(201, {"id": record_id, "success": True, "errors": [], "created": True})

    # -- replication --

    def _window(self, request: Request, days: int) -> tuple[datetime, datetime]:
        """The start and latestDateCovered of a getUpdated/getDeleted call, minute-floored."""
        moments = []
        for name in ("start", "end"):
            text = (request.arg(name) or "").replace(" ", "+").rstrip(":")
            moment = parse_datetime(text)
            if moment is None:
                raise OrgError("INVALID_REPLICATION_DATE", f"Invalid {name} date: {text}")
            moments.append(moment.replace(second=0, microsecond=0))
        start, end = moments
        now = self.org.clock().astimezone(UTC).replace(second=0, microsecond=0)
        if end < start:
            raise OrgError("INVALID_REPLICATION_DATE", "end date must not be before start date")
        # Documented windows (reference 2.3); the exact error for older starts is [verify].
        if start < now - timedelta(days=days):
            raise OrgError(
                "INVALID_REPLICATION_DATE", f"start date cannot be more than {days} days ago"
            )
        return start, min(end, now)

    def _updated(self, request: Request, version: str, sobject: str) -> Response:
        name = self._sobject(sobject)
        start, latest = self._window(request, 30)
        low, high = wire_datetime(start), wire_datetime(latest)
        ids = [
            row["Id"] for row in self.org.rows(name)
            if not row["IsDeleted"] and low <= row["SystemModstamp"] < high
        ]
        if len(ids) > MAX_REPLICATION_IDS:
            raise OrgError("EXCEEDED_ID_LIMIT", "record limit reached: narrow the date range")
        return Response(200, {"ids": ids, "latestDateCovered": high})

    def _deleted(self, request: Request, version: str, sobject: str) -> Response:
        name = self._sobject(sobject)
        start, latest = self._window(request, 30)
        low, high = wire_datetime(start), wire_datetime(latest)
        # The emulator never purges its recycle bin; the log reaches back 15 days at most.
        now = self.org.clock().astimezone(UTC).replace(second=0, microsecond=0)
        earliest = max(self._created.astimezone(UTC).replace(second=0, microsecond=0),
                       now - timedelta(days=15))
        deleted = [
            {"id": record_id, "deletedDate": when}
            for record_id, when in self.org.deleted_log(name) if low <= when < high
        ]
        return Response(200, {
            "deletedRecords": deleted, "earliestDateAvailable": wire_datetime(earliest),
            "latestDateCovered": high,
        })

    # -- sObject Collections --

    def _collection_records(self, request: Request) -> tuple[list[Any], bool]:
        body = request.json()
        if not isinstance(body, dict) or not isinstance(body.get("records"), list):
            raise OrgError("JSON_PARSER_ERROR", "The request body must hold a records array")
        records = body["records"]
        if len(records) > MAX_COLLECTION:
            # The limit is documented; the message is Salesforce's as reported by users.
            raise OrgError(
                "EXCEEDED_ID_LIMIT",
                "record limit reached. cannot submit more than 200 records into this call",
            )
        return records, bool(body.get("allOrNone"))

    def _save_each(
        self, operations: list[Callable[[], dict[str, Any]]], ids: list[str | None],
        all_or_none: bool,
    ) -> Response:
        """Run each record's write; with allOrNone one failure rolls every write back."""
        results: list[dict[str, Any]] = []
        with self.org.atomic() as rollback:
            for operation, record_id in zip(operations, ids, strict=True):
                try:
                    results.append(operation())
                except OrgError as error:
                    failure: dict[str, Any] = {"success": False, "errors": [{
                        "statusCode": error.error_code, "message": error.message,
                        "fields": error.fields,
                    }]}
                    if record_id:
                        failure = {"id": record_id, **failure}
                    results.append(failure)
            if all_or_none and any(not result["success"] for result in results):
                rollback()
                results = [
                    r if not r["success"] else
                    {"id": None, "success": False, "errors": [dict(_ROLLED_BACK)]}
                    for r in results
                ]
        return Response(200, results)

    def _record_type(self, record: Any) -> tuple[str, dict[str, Any]]:
        if not isinstance(record, dict):
            raise OrgError("JSON_PARSER_ERROR", "Each record must be a JSON object")
        attributes = record.get("attributes")
        kind = attributes.get("type") if isinstance(attributes, dict) else None
        name = self.org.resolve(str(kind or ""))
        if name is None:
            raise OrgError("INVALID_TYPE", "Must send a concrete entity type.")
        return name, {k: v for k, v in record.items() if k != "attributes"}

    def _collection_create(self, request: Request, version: str) -> Response:
        records, all_or_none = self._collection_records(request)

        def create(record: Any) -> dict[str, Any]:
            name, fields = self._record_type(record)
            if any(key.lower() == "id" for key in fields):
                raise OrgError("INVALID_FIELD", "cannot specify Id in an insert call", ["Id"])
            record_id = self.org.insert(name, fields, screen=self.faults.rejects)
            return {"id": record_id, "success": True, "errors": []}

        operations = [_bound(create, record) for record in records]
        return self._save_each(operations, [None] * len(records), all_or_none)

    def _collection_update(self, request: Request, version: str) -> Response:
        records, all_or_none = self._collection_records(request)

        def update(record: Any) -> dict[str, Any]:
            name, fields = self._record_type(record)
            record_id = next((fields.pop(k) for k in list(fields) if k.lower() == "id"), None)
            if not record_id:
                raise OrgError("MISSING_ARGUMENT", "Id not specified in an update call", ["Id"])
            self.org.update(name, str(record_id), fields, screen=self.faults.rejects)
            return {"id": to_id18(record_id), "success": True, "errors": []}

        ids = [_record_id(record) for record in records]
        return self._save_each([_bound(update, r) for r in records], ids, all_or_none)

    def _collection_delete(self, request: Request, version: str) -> Response:
        ids = request.args("ids")
        if len(ids) > MAX_COLLECTION:
            raise OrgError(
                "EXCEEDED_ID_LIMIT",
                "record limit reached. cannot submit more than 200 records into this call",
            )

        def delete(record_id: str) -> dict[str, Any]:
            name = self._type_of(record_id)
            self.org.delete(name, record_id)
            return {"id": to_id18(record_id), "success": True, "errors": []}

        all_or_none = (request.arg("allOrNone") or "").lower() == "true"
        operations = [_bound(delete, record_id) for record_id in ids]
        return self._save_each(operations, list(ids), all_or_none)

    def _type_of(self, record_id: str) -> str:
        canonical = to_id18(record_id)
        for name in self.org.sobject_names():
            if canonical and canonical.startswith(self.org.spec(name).key_prefix):
                return name
        raise OrgError("MALFORMED_ID", f"malformed id {record_id}")

    def _collection_retrieve(self, request: Request, version: str, sobject: str) -> Response:
        name = self._sobject(sobject)
        ids = request.args("ids")
        if len(ids) > MAX_COLLECTION:
            raise OrgError("EXCEEDED_ID_LIMIT", "record limit reached. cannot retrieve more "
                           "than 200 records in this call")
        return self._retrieve_each(name, ids, request.args("fields"), version)

    def _collection_retrieve_body(
        self, request: Request, version: str, sobject: str
    ) -> Response:
        """The POST form of the retrieve: ids and fields in the body, up to 2,000 ids (the
        documented limit; the wire reference lists only the GET form, whose URL holds ~800)."""
        name = self._sobject(sobject)
        body = request.json()
        ids, fields = (body.get("ids"), body.get("fields")) if isinstance(body, dict) else ([], [])
        if not (isinstance(ids, list) and ids and isinstance(fields, list) and fields):
            raise OrgError("JSON_PARSER_ERROR", "The request body must hold ids and fields arrays")
        if len(ids) > MAX_RETRIEVE:
            raise OrgError("EXCEEDED_ID_LIMIT", "record limit reached. cannot retrieve more "
                           f"than {MAX_RETRIEVE} records in this call")
        return self._retrieve_each(name, [str(i) for i in ids], [str(f) for f in fields], version)

    def _retrieve_each(
        self, name: str, ids: list[str], fields: list[str], version: str
    ) -> Response:
        """One record per id in order; null where the id is malformed, unknown or deleted."""
        answers: list[dict[str, Any] | None] = []
        for record_id in ids:
            try:
                row = self.org.row(name, record_id)
            except OrgError:
                answers.append(None)
                continue
            answers.append(self._record(name, row, fields, version))
        return Response(200, answers)

    def _collection_upsert(
        self, request: Request, version: str, sobject: str, field: str
    ) -> Response:
        name = self._sobject(sobject)
        external = self._external_field(name, field)
        records, all_or_none = self._collection_records(request)

        def upsert(record: Any) -> dict[str, Any]:
            kind, fields = self._record_type(record)
            if kind != name:
                raise OrgError("INVALID_TYPE", f"Record type {kind} does not match {name}")
            key = next((k for k in fields if self.org.spec(name).canonical(k) == external), None)
            if key is None or fields[key] in (None, ""):
                raise OrgError("MISSING_ARGUMENT", f"{external} not specified", [external])
            return self._upsert_one(name, external, fields, key)

        operations = [_bound(upsert, record) for record in records]
        return self._save_each(operations, [None] * len(records), all_or_none)

    def _upsert_one(
        self, name: str, external: str, fields: dict[str, Any], key: str
    ) -> dict[str, Any]:
        matches = self.org.find(name, external, fields[key])
        if len(matches) > 1:
            raise OrgError(
                "DUPLICATE_EXTERNAL_ID",
                f"{external}: more than one record found for external id field: {matches}",
                [external],
            )
        if matches:
            changes = {k: v for k, v in fields.items() if k != key}
            self.org.update(name, matches[0], changes, screen=self.faults.rejects)
            return {"id": matches[0], "success": True, "errors": [], "created": False}
        record_id = self.org.insert(name, fields, screen=self.faults.rejects)
        return {"id": record_id, "success": True, "errors": [], "created": True}

    # -- OAuth 2.0 token endpoint --

    def _token(self, request: Request) -> Response:
        if request.method != "POST":
            return Response(405, {"error": "invalid_request", "error_description":
                                  "must use HTTP POST"})
        form = {k: v[0] for k, v in parse_qs(request.text(), keep_blank_values=True).items()}
        grant = form.get("grant_type", "")
        if grant == "urn:ietf:params:oauth:grant-type:jwt-bearer":
            refusal = self._jwt_refusal(form.get("assertion", ""))
        elif grant == "client_credentials":
            refusal = self._client_refusal(request, form)
        elif grant == "password":
            refusal = self._client_refusal(request, form) or self._password_refusal(form)
        else:
            return _oauth_error("unsupported_grant_type", "grant type not supported")
        return refusal or self._token_answer()

    def _jwt_refusal(self, assertion: str) -> Response | None:
        import jwt

        if self.jwt_public_key_pem is None:
            return _oauth_error("invalid_client", "no certificate is configured for JWT bearer")
        try:
            claims = jwt.decode(
                assertion, self.jwt_public_key_pem, algorithms=["RS256"],
                options={"verify_exp": False, "verify_aud": False},
            )
        except jwt.PyJWTError:
            return _oauth_error("invalid_grant", "invalid assertion")
        if claims.get("iss") != self.consumer_key:
            return _oauth_error("invalid_client_id", "client identifier invalid")
        if claims.get("sub") != self.username:
            return _oauth_error("invalid_grant", "user hasn't approved this consumer")
        audiences = {*_AUDIENCES, self.url}
        if str(claims.get("aud", "")).rstrip("/") not in audiences:
            return _oauth_error("invalid_grant", "audience is invalid")
        # simple-salesforce sends `exp` as a string of seconds; accept either form.
        try:
            expires = float(claims.get("exp", 0))
        except (TypeError, ValueError):
            return _oauth_error("invalid_grant", "invalid assertion")
        if expires <= self.org.clock().timestamp():
            return _oauth_error("invalid_grant", "expired authorization code")
        return None

    def _client_refusal(self, request: Request, form: Mapping[str, str]) -> Response | None:
        client_id, secret = form.get("client_id"), form.get("client_secret")
        scheme, _, encoded = request.header("authorization").partition(" ")
        if scheme.lower() == "basic":
            client_id, _, secret = base64.b64decode(encoded).decode().partition(":")
        if client_id != self.client_id:
            return _oauth_error("invalid_client_id", "client identifier invalid")
        if secret != self.client_secret:
            return _oauth_error("invalid_client", "invalid client credentials")
        return None

    def _password_refusal(self, form: Mapping[str, str]) -> Response | None:
        if form.get("username") != self.username or form.get("password") != self.password:
            return _oauth_error("invalid_grant", "authentication failure")
        return None

    def _token_answer(self) -> Response:
        token = f"{self.org.org_id[:15]}!AQ{secrets.token_urlsafe(72)}"
        self._tokens.add(token)
        issued = str(int(time.time() * 1000))
        signature = hmac.new(self.client_secret.encode(), f"{self.url}{issued}".encode(),
                             hashlib.sha256).digest()
        return Response(200, {
            "access_token": token, "instance_url": self.url,
            "id": f"https://login.salesforce.com/id/{self.org.org_id}/{self.org.user_id}",
            "token_type": "Bearer", "issued_at": issued,
            "signature": base64.b64encode(signature).decode(), "scope": "api",
        })


# -- small pieces --


def _is_version(text: str) -> bool:
    head, _, tail = text.partition(".")
    return head.isdigit() and tail.isdigit() and 20 <= int(head) <= 99


def _batch_size(request: Request) -> int:
    """`Sforce-Query-Options: batchSize=n`, held to Salesforce's 200..2000."""
    for option in request.header("sforce-query-options").split(","):
        key, _, value = option.strip().partition("=")
        if key.strip().lower() == "batchsize" and value.strip().isdigit():
            return min(2000, max(200, int(value)))
    return 2000


def _url(sobject: str, record_id: str, version: str) -> str:
    return f"/services/data/v{version}/sobjects/{sobject}/{record_id}"


def _attributes(sobject: str, record_id: str, version: str) -> dict[str, str]:
    return {"type": sobject, "url": _url(sobject, record_id, version)}


def _object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise OrgError("JSON_PARSER_ERROR", "The request body must be a JSON object")
    return {k: v for k, v in body.items() if k != "attributes"}


def _record_id(record: Any) -> str | None:
    if not isinstance(record, dict):
        return None
    return next((str(v) for k, v in record.items() if k.lower() == "id"), None)


def _bound(function: Callable[[Any], dict[str, Any]], item: Any) -> Callable[[], dict[str, Any]]:
    return lambda: function(item)


def _oauth_error(error: str, description: str) -> Response:
    return Response(400, {"error": error, "error_description": description})


def main(argv: list[str] | None = None) -> None:
    """Serve an empty org until Ctrl-C, printing what a client needs to reach it."""
    parser = argparse.ArgumentParser(description="A loopback Salesforce org over HTTPS.")
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: any)")
    options = parser.parse_args(argv)
    with SalesforceEmulator(port=options.port) as emulator:
        print(f"url={emulator.url}")
        print(f"ca_path={emulator.ca_path}")
        print(f"access_token={emulator.issue_token()}")
        print(f"api_version={emulator.api_version}", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
