"""A loopback HubSpot: the CRM v3/v4, properties, pipelines, forms and legacy email APIs over
HTTPS, answering the real hubspot-api-client 12.0.0 exactly as production does
(`/work/shared/reference/crm-wire-reference.md`, sections 0.1 and 1).

`HubSpotEmulator` wires a `Portal` (the in-memory data, `portal.py`) and the search evaluator
(`search.py`) to a `LoopbackServer`: bearer-token auth, the private-app rate limits with their
headers, HubSpot's error envelopes and the injected faults of `Faults`. Run it by hand with
`python -m connectors.hubspot.emulator [--port N] [--token T]`.
"""

from __future__ import annotations

import argparse
import base64
import bisect
import json
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

from connectors.hubspot.portal import (
    DEAL_STAGES,
    DEFAULT_PROPERTIES,
    LIFECYCLE_STAGES,
    MODIFIED_PROPERTY,
    OBJECT_TYPE_IDS,
    PRIMARY_TYPE,
    SINGULAR,
    UNLABELED_TYPE,
    Click,
    CrmRecord,
    ObjectTable,
    Portal,
    PropertyDef,
    canonical_date,
    canonical_datetime,
    canonical_type,
    iso_ms,
)
from connectors.hubspot.search import MAX_LIMIT, MAX_RESULTS, SearchCache, SearchError
from connectors.loopback import (
    Faults,
    LoopbackServer,
    Request,
    Response,
    Router,
    ThrowawayCA,
    utc_now,
)

OBJECT_BATCH_LIMIT = 100  # "Object API batch endpoints are limited to 100 inputs" [doc]
# Association batches: reads are reported to take 1,000 inputs; the create/archive limit is
# unconfirmed (reference 1.5 [verify]), so the emulator holds all of them to 1,000.
ASSOCIATION_BATCH_LIMIT = 1000
LIST_MAX_LIMIT = 100
ASSOCIATION_MAX_LIMIT = 500
SUBMISSIONS_MAX_LIMIT = 50
EMAIL_EVENTS_MAX_LIMIT = 1000
AUTH_MESSAGE = ("Authentication credentials not found. This API supports OAuth 2.0 "
                "authentication and you can find more details at "
                "https://developers.hubspot.com/docs/methods/auth/oauth-overview")
# The labels HubSpot shows for its defined association types; unlabeled ones carry null.
PRIMARY_LABEL = "Primary"
_TYPE_TARGET = {(pair[0], type_id): pair[1]
                for table in (UNLABELED_TYPE, PRIMARY_TYPE) for pair, type_id in table.items()}


@dataclass
class HubSpotLimits:
    """The portal's API allowance (reference 1.10); mutable while the emulator runs."""

    per_10s: int = 190  # private app burst limit (Enterprise)
    daily: int = 1_000_000  # per account per day
    search_per_second: int = 5
    enforce: bool = True

    @classmethod
    def unlimited(cls) -> HubSpotLimits:
        return cls(enforce=False)


class HubSpotError(Exception):
    """An error answer: HTTP status, HubSpot category, message and extra envelope fields."""

    def __init__(self, status: int, category: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status, self.category, self.message, self.extra = status, category, message, extra


def _envelope(category: str | None, message: str, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"status": "error", "message": message,
                            "correlationId": str(uuid.uuid4())}
    if category:
        body["category"] = category
    body.update(extra)
    return body


def _rate_limit_body(policy: str | None, message: str) -> dict[str, Any]:
    body: dict[str, Any] = {"status": "error", "message": message, "errorType": "RATE_LIMIT",
                            "correlationId": str(uuid.uuid4())}
    if policy:
        body["policyName"] = policy
        body["requestId"] = str(uuid.uuid4())
    return body


def ten_secondly_answer() -> Response:
    # HubSpot documents no Retry-After on 429s; clients back off on `policyName` instead.
    return Response(429, _rate_limit_body(
        "TEN_SECONDLY_ROLLING", "You have reached your ten_secondly_rolling limit."))


class RateLimiter:
    """Rolling 10 s burst window, daily allowance and the search per-second limit.

    Only admitted requests count: a 429 does not spend budget. Search has its own
    per-second window and is left out of the 10 s window, as its responses carry no
    rate-limit headers (reference 1.4); it does spend the daily allowance. The day rolls
    over at midnight UTC of the emulator clock (HubSpot uses the account time zone).
    """

    def __init__(self, limits: HubSpotLimits, monotonic: Callable[[], float],
                 clock: Callable[[], datetime]) -> None:
        self.limits = limits
        self._monotonic, self._clock = monotonic, clock
        self._window: deque[float] = deque()
        self._searches: deque[float] = deque()
        self._day: date | None = None
        self.daily_used = 0

    def admit(self, search: bool) -> Response | None:
        """None when the request may proceed (and is counted), else the 429 answer."""
        now, limits = self._monotonic(), self.limits
        self._roll_day()
        self._prune(now)
        window = self._searches if search else self._window
        if limits.enforce and self.daily_used >= limits.daily:
            return Response(429, _rate_limit_body("DAILY", "You have reached your daily limit."))
        if limits.enforce and search and len(window) >= limits.search_per_second:
            return Response(429, _rate_limit_body(None, "You have reached your secondly limit."))
        if limits.enforce and not search and len(window) >= limits.per_10s:
            return ten_secondly_answer()
        window.append(now)
        self.daily_used += 1
        return None

    def headers(self) -> dict[str, str]:
        limits, now = self.limits, self._monotonic()
        self._prune(now)
        secondly = max(1, limits.per_10s // 10)
        last_second = len(self._window) - bisect.bisect_right(self._window, now - 1.0)
        return {
            "X-HubSpot-RateLimit-Daily": str(limits.daily),
            "X-HubSpot-RateLimit-Daily-Remaining": str(max(0, limits.daily - self.daily_used)),
            "X-HubSpot-RateLimit-Interval-Milliseconds": "10000",
            "X-HubSpot-RateLimit-Max": str(limits.per_10s),
            "X-HubSpot-RateLimit-Remaining": str(max(0, limits.per_10s - len(self._window))),
            "X-HubSpot-RateLimit-Secondly": str(secondly),
            "X-HubSpot-RateLimit-Secondly-Remaining": str(max(0, secondly - last_second)),
        }

    def _prune(self, now: float) -> None:
        _prune(self._window, now - 10.0)
        _prune(self._searches, now - 1.0)

    def _roll_day(self) -> None:
        today = self._clock().date()
        if today != self._day:
            self._day, self.daily_used = today, 0


def _prune(window: deque[float], horizon: float) -> None:
    while window and window[0] <= horizon:
        window.popleft()


def _int_arg(raw: Any, name: str) -> int:
    try:
        return int(str(raw))
    except ValueError:
        raise HubSpotError(400, "VALIDATION_ERROR", f"Invalid {name}: {raw!r} is not a number.")\
            from None


def _limit(request: Request, default: int, maximum: int) -> int:
    """The `limit` query parameter. Above the maximum HubSpot's behaviour is unconfirmed
    (reference 1.2 [verify]); the emulator serves the maximum, as reports describe."""
    raw = request.arg("limit")
    if raw in (None, ""):
        return default
    value = _int_arg(raw, "limit")
    if value < 1:
        raise HubSpotError(400, "VALIDATION_ERROR", f"limit must be positive, got {value}.")
    return min(value, maximum)


def _flag(request: Request, name: str) -> bool:
    return (request.arg(name) or "false").lower() == "true"


def _text(value: Any) -> str | None:
    """A JSON property value as HubSpot stores it: always text (booleans lower-cased)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _cursor(key: tuple[int, int]) -> str:
    return base64.urlsafe_b64encode(f"{key[0]}:{key[1]}".encode()).decode().rstrip("=")


def _uncursor(token: str) -> tuple[int, int]:
    try:
        text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        first, second = text.split(":")
        return int(first), int(second)
    except (ValueError, UnicodeDecodeError):
        raise HubSpotError(400, "VALIDATION_ERROR", f"Invalid paging cursor {token!r}.")\
            from None


def _invalid(name: str, code: str, message: str, portal_id: int) -> dict[str, Any]:
    return {"isValid": False, "message": message, "error": code, "name": name,
            "localizedErrorMessage": message, "portalId": portal_id}


def _value_problem(prop: PropertyDef, value: str) -> tuple[str, str] | None:
    """(error code, message) when a value does not fit its property, else None."""
    if prop.type == "enumeration" and prop.options:
        for part in value.split(";"):
            if part not in prop.options:
                return "INVALID_OPTION", (f"{part} was not one of the allowed options: "
                                          f"[{', '.join(prop.options)}]")
    if prop.name == "email" and "@" not in value:
        return "INVALID_EMAIL", f"Email address {value} is invalid"
    if prop.type == "number":
        try:
            float(value)
        except ValueError:
            return "INVALID_INTEGER", f"{value} was not a valid number."
    if prop.type == "bool" and value.lower() not in ("true", "false"):
        return "INVALID_BOOLEAN", f"{value} was not a valid boolean."
    return None


def _normalized(prop: PropertyDef, value: str) -> str:
    if prop.type == "datetime":
        return canonical_datetime(value)
    if prop.type == "date":
        return canonical_date(value)
    if prop.type == "bool":
        return value.lower()
    return value


def _association_types(type_ids: Iterable[int]) -> list[dict[str, Any]]:
    primaries = set(PRIMARY_TYPE.values())
    return [{"category": "HUBSPOT_DEFINED", "typeId": type_id,
             "label": PRIMARY_LABEL if type_id in primaries else None} for type_id in type_ids]


def _v3_association_name(source: str, target: str, type_id: int) -> str:
    """v3 names: `contact_to_company` for the primary, `..._unlabeled` when one exists."""
    name = f"{SINGULAR[source]}_to_{SINGULAR[target]}"
    has_primary = (source, target) in PRIMARY_TYPE
    return f"{name}_unlabeled" if has_primary and type_id == UNLABELED_TYPE[(source, target)] \
        else name


class HubSpotEmulator:
    """An in-memory HubSpot portal over HTTPS on 127.0.0.1 (see the module docstring)."""

    def __init__(self, *, access_token: str = "pat-na1-00000000-0000-4000-8000-000000000000",
                 faults: Faults | None = None, ca: ThrowawayCA | None = None, port: int = 0,
                 clock: Callable[[], datetime] | None = None,
                 monotonic: Callable[[], float] | None = None,
                 limits: HubSpotLimits | None = None, portal_id: int = 62515) -> None:
        self.access_token = access_token
        self.clock = clock or utc_now
        self.portal = Portal(clock=self.clock, portal_id=portal_id)
        self._limiter = RateLimiter(limits or HubSpotLimits(), monotonic or time.monotonic,
                                    self.clock)
        self._searches = SearchCache()
        self._router = Router()
        self._add_routes()
        self.server = LoopbackServer(self._app, self.error_answer, faults=faults, ca=ca, port=port)
        self.portal.lock = self.server.app_lock

    # -- lifecycle and inspection ---------------------------------------------------------

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
    def limits(self) -> HubSpotLimits:
        return self._limiter.limits

    @limits.setter
    def limits(self, value: HubSpotLimits) -> None:
        self._limiter.limits = value

    @property
    def counts(self) -> Counter[str]:
        return self.server.counts

    def calls(self, prefix: str = "") -> int:
        return self.server.calls(prefix)

    def start(self) -> HubSpotEmulator:
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop()

    def __enter__(self) -> HubSpotEmulator:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.stop()

    # -- dispatch -------------------------------------------------------------------------

    def error_answer(self, status: int, request: Request) -> Response:
        """HubSpot's envelope for an injected error status."""
        if status == 429:
            answer = ten_secondly_answer()
        elif status == 401:
            answer = Response(401, _envelope("INVALID_AUTHENTICATION", AUTH_MESSAGE))
        elif status >= 500:
            answer = Response(status, _envelope(
                "INTERNAL_ERROR", "internal error", subCategory="UNKNOWN"))
        else:
            answer = Response(status, _envelope("VALIDATION_ERROR", f"Injected {status}."))
        answer.headers["X-HubSpot-Correlation-Id"] = str(uuid.uuid4())
        return answer

    def _app(self, request: Request) -> tuple[str, Response]:
        matched = self._router.match(request.method, request.path)
        if matched is None:
            endpoint = "(unrouted)"
            response = Response(404, _envelope("OBJECT_NOT_FOUND", f"Not found: {request.path}"))
        else:
            endpoint, handler, params = matched
            response = self._guarded(request, endpoint, handler, params)
        response.headers.setdefault("X-HubSpot-Correlation-Id", str(uuid.uuid4()))
        return endpoint, response

    def _guarded(self, request: Request, endpoint: str, handler: Callable[..., Response],
                 params: dict[str, str]) -> Response:
        if request.header("authorization") != f"Bearer {self.access_token}":
            return Response(401, _envelope("INVALID_AUTHENTICATION", AUTH_MESSAGE))
        search = endpoint.endswith("/search")
        refused = self._limiter.admit(search)
        if refused is None:
            try:
                refused = handler(request, **params)
            except HubSpotError as error:
                refused = Response(error.status,
                                   _envelope(error.category, error.message, **error.extra))
        if not search:  # search answers carry no X-HubSpot-RateLimit-* headers (1.4)
            refused.headers.update(self._limiter.headers())
        return refused

    def _add_routes(self) -> None:
        objects = "/crm/v3/objects/{object_type}"
        v4 = "/crm/v4/objects/{from_type}/{object_id}/associations"
        batch4 = "/crm/v4/associations/{from_type}/{to_type}/batch"
        routes: list[tuple[str, str, Callable[..., Response]]] = [
            ("GET", objects, self._list), ("POST", objects, self._create),
            ("POST", f"{objects}/search", self._search),
            ("POST", f"{objects}/merge", self._merge),
            ("POST", f"{objects}/gdpr-delete", self._gdpr_delete),
            ("POST", f"{objects}/batch/read", self._batch_read),
            ("POST", f"{objects}/batch/create", self._batch_create),
            ("POST", f"{objects}/batch/update", self._batch_update),
            ("POST", f"{objects}/batch/upsert", self._batch_upsert),
            ("POST", f"{objects}/batch/archive", self._batch_archive),
            ("GET", f"{objects}/{{object_id}}", self._get),
            ("PATCH", f"{objects}/{{object_id}}", self._update),
            ("DELETE", f"{objects}/{{object_id}}", self._archive),
            ("GET", f"{v4}/{{to_type}}", self._v4_list),
            ("PUT", f"{v4}/{{to_type}}/{{to_id}}", self._v4_put_labelled),
            ("DELETE", f"{v4}/{{to_type}}/{{to_id}}", self._v4_delete),
            ("PUT", "/crm/v4/objects/{from_type}/{object_id}/associations/default/{to_type}/"
                    "{to_id}", self._v4_put_default),
            ("POST", f"{batch4}/read", self._v4_batch_read),
            ("POST", f"{batch4}/create", self._v4_batch_create),
            ("POST", f"{batch4}/archive", self._v4_batch_archive),
            ("POST", f"{batch4}/associate/default", self._v4_batch_default),
            ("GET", "/crm/v3/properties/{object_type}", self._properties),
            ("POST", "/crm/v3/properties/{object_type}", self._create_property),
            ("GET", "/crm/v3/properties/{object_type}/{name}", self._property),
            ("GET", "/crm/v3/pipelines/{object_type}", self._pipelines),
            ("GET", "/crm/v3/pipelines/{object_type}/{pipeline_id}", self._pipeline),
            ("GET", "/marketing/v3/forms", self._forms),
            ("GET", "/form-integrations/v1/submissions/forms/{guid}", self._submissions),
            ("GET", "/email/public/v1/events", self._email_events),
            ("GET", "/email/public/v1/campaigns", self._email_campaigns),
            ("GET", "/email/public/v1/campaigns/{campaign_id}", self._email_campaign),
        ]
        for method, pattern, handler in routes:
            self._router.add(method, pattern, handler)

    # -- records: shapes ------------------------------------------------------------------

    def _table(self, object_type: str) -> ObjectTable:
        name = canonical_type(object_type)
        if name is None:
            raise HubSpotError(400, "VALIDATION_ERROR",
                               f"Unable to infer object type from: {object_type}")
        return self.portal.tables[name]

    def _wire(self, table: ObjectTable, record: CrmRecord, requested: list[str] | None,
              history: list[str] | None = None) -> dict[str, Any]:
        values = record.properties
        properties: dict[str, str | None]
        if requested is None:
            properties = dict(values)
        else:
            properties = {name: values.get(name) for name in self._names(table, requested)}
        body: dict[str, Any] = {
            "id": record.id, "properties": properties, "createdAt": iso_ms(record.created_at),
            "updatedAt": iso_ms(record.updated_at), "archived": record.archived,
        }
        if record.archived_at is not None:
            body["archivedAt"] = iso_ms(record.archived_at)
        if history:
            body["propertiesWithHistory"] = self._history(table, record, history)
        return body

    def _names(self, table: ObjectTable, requested: list[str]) -> Iterable[str]:
        """Requested names HubSpot knows (others are ignored), or the defaults (1.2)."""
        kind = table.object_type
        if not requested:
            return DEFAULT_PROPERTIES[kind]
        always = ("createdate", "hs_object_id", MODIFIED_PROPERTY[kind])
        known = [name for name in requested if name in table.schema]
        return dict.fromkeys([*known, *always])

    def _history(self, table: ObjectTable, record: CrmRecord,
                 names: list[str]) -> dict[str, list[dict[str, Any]]]:
        # The emulator keeps current values only: each history holds the latest version.
        stamp = iso_ms(record.updated_at)
        return {name: ([{"value": record.properties[name], "timestamp": stamp,
                         "sourceType": "API"}] if name in record.properties else [])
                for name in names if name in table.schema}

    def _embedded(self, table: ObjectTable, record: CrmRecord,
                  targets: list[str]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for target in targets:
            to_type = canonical_type(target)
            if to_type is None:
                continue
            pairs = self.portal.associations(table.object_type, record.id, to_type)
            if pairs:
                out[target] = {"results": [
                    {"id": to_id, "type": _v3_association_name(table.object_type, to_type, t)}
                    for to_id, types in pairs for t in types
                ]}
        return out

    def _not_found(self, record_id: str) -> HubSpotError:
        return HubSpotError(404, "OBJECT_NOT_FOUND",
                            "Object not found.  objectId are usually numeric.",
                            context={"id": [record_id]})

    def _readable(self, table: ObjectTable, key: str, id_property: str | None,
                  archived: bool) -> CrmRecord | None:
        record = table.find(key, id_property)
        if record is None:
            return None
        if record.archived and record.merged_into and not archived:
            return self.portal.resolve(table.object_type, record)
        return record if record.archived == archived else None

    # -- records: writes ------------------------------------------------------------------

    def _validated(self, table: ObjectTable, properties: Any) -> dict[str, str | None]:
        """Checked, normalised values; any bad one rejects the whole request (1.3)."""
        if not isinstance(properties, dict):
            raise HubSpotError(400, "VALIDATION_ERROR", "`properties` must be an object.")
        errors: list[dict[str, Any]] = []
        clean: dict[str, str | None] = {}
        portal_id = self.portal.portal_id
        for name, raw in properties.items():
            prop, value = table.schema.get(name), _text(raw)
            if prop is None:
                errors.append(_invalid(name, "PROPERTY_DOESNT_EXIST",
                                       f'Property "{name}" does not exist', portal_id))
            elif prop.read_only:
                errors.append(_invalid(name, "READ_ONLY_VALUE",
                                       f'"{name}" is a read only property; its value cannot '
                                       "be set.", portal_id))
            elif value and (problem := _value_problem(prop, value)):
                errors.append(_invalid(name, problem[0], problem[1], portal_id))
            else:
                clean[name] = _normalized(prop, value) if value else value
        if errors:
            raise HubSpotError(400, "VALIDATION_ERROR",
                               "Property values were not valid: " + json.dumps(errors))
        return clean

    def _stage_moves(self, table: ObjectTable, record: CrmRecord | None,
                     clean: dict[str, str | None]) -> dict[str, str | None]:
        """Lifecycle stages only move forward through the API (reference 1.11, documented;
        unconfirmed for v3): a backward write answers 2xx and leaves the value unchanged.
        Clearing with "" first, then setting a lower stage, works."""
        new = clean.get("lifecyclestage")
        old = record.properties.get("lifecyclestage") if record else None
        if new and old and new in LIFECYCLE_STAGES and old in LIFECYCLE_STAGES \
                and LIFECYCLE_STAGES.index(new) < LIFECYCLE_STAGES.index(old):
            clean = {k: v for k, v in clean.items() if k != "lifecyclestage"}
        elif new and new != old and f"hs_lifecyclestage_{new}_date" in table.schema:
            clean = {**clean, f"hs_lifecyclestage_{new}_date": iso_ms(self.clock())}
        return clean

    def _conflict(self, table: ObjectTable, clean: Mapping[str, str | None],
                  claimed: dict[tuple[str, str], str], own_id: str | None = None) -> None:
        """409 when a unique value (email, syncd_id) is held by another record."""
        for name in table.unique_names():
            value = clean.get(name)
            if not value:
                continue
            key = (name, value.lower() if name == "email" else value)
            owner = table.owner_of(name, value) or claimed.get(key)
            if owner is not None and owner != own_id:
                # HubSpot's text for duplicate emails; other unique properties answer the
                # same way here (their exact text is unconfirmed).
                raise HubSpotError(409, "CONFLICT", f"{SINGULAR[table.object_type].title()} "
                                   f"already exists. Existing ID: {owner}")
            claimed[key] = own_id or "(new)"

    def _insert(self, table: ObjectTable, clean: dict[str, str | None]) -> CrmRecord:
        clean = self._stage_moves(table, None, clean)
        record_id = self.portal.create(table.object_type, clean, at=self.clock())
        return table.records[record_id]

    def _apply(self, table: ObjectTable, record: CrmRecord,
               clean: dict[str, str | None]) -> None:
        self.portal.write(table, record, self._stage_moves(table, record, clean), self.clock())

    def _link_on_create(self, table: ObjectTable, record: CrmRecord, links: Any) -> None:
        for link in links or []:
            to_id = str((link.get("to") or {}).get("id", ""))
            for spec in link.get("types") or []:
                type_id = int(spec.get("associationTypeId", 0))
                to_type = _TYPE_TARGET.get((table.object_type, type_id))
                if to_type is None or to_id not in self.portal.tables[to_type].records:
                    raise HubSpotError(400, "VALIDATION_ERROR",
                                       f"Invalid association {type_id} to {to_id}.")
                self.portal.associate(table.object_type, record.id, to_type, to_id, type_id)

    def _rejected(self, table: ObjectTable, properties: Mapping[str, Any],
                  record_id: str | None) -> dict[str, Any] | None:
        """A 207 error entry when the fault plan refuses this record, else None."""
        if not self.faults.rejects(table.object_type, properties):
            return None
        context = {"id": [record_id]} if record_id else {}
        return {"status": "error", "category": "VALIDATION_ERROR",
                "message": "Record rejected by the portal (injected fault).", "context": context}

    def _batch(self, results: list[dict[str, Any]], errors: list[dict[str, Any]],
               ok: int = 200) -> Response:
        stamp = iso_ms(self.clock())
        body: dict[str, Any] = {"status": "COMPLETE", "results": results,
                                "startedAt": stamp, "completedAt": stamp}
        if errors:
            body.update(numErrors=len(errors), errors=errors)
        return Response(207 if errors else ok, body)

    @staticmethod
    def _inputs(request: Request, limit: int = OBJECT_BATCH_LIMIT) -> tuple[Any, list[Any]]:
        body = request.json() or {}
        inputs = body.get("inputs")
        if not isinstance(inputs, list):
            raise HubSpotError(400, "VALIDATION_ERROR", "`inputs` must be a list.")
        if len(inputs) > limit:
            raise HubSpotError(400, "VALIDATION_ERROR",
                               f"Batch input size {len(inputs)} exceeds the limit of {limit}.",
                               context={"inputs": [str(len(inputs))]})
        return body, inputs

    # -- records: endpoints ---------------------------------------------------------------

    def _list(self, request: Request, object_type: str) -> Response:
        table = self._table(object_type)
        limit = _limit(request, 10, LIST_MAX_LIMIT)
        after = _int_arg(request.arg("after") or "0", "after")
        records, following = table.page(after, limit, _flag(request, "archived"))
        requested, history = request.args("properties"), request.args("propertiesWithHistory")
        targets = request.args("associations")
        results = []
        for record in records:
            body = self._wire(table, record, requested, history)
            if targets:
                body["associations"] = self._embedded(table, record, targets)
            results.append(body)
        answer: dict[str, Any] = {"results": results}
        if following is not None:
            answer["paging"] = {"next": {"after": str(following), "link": f"?after={following}"}}
        return Response(200, answer)

    def _get(self, request: Request, object_type: str, object_id: str) -> Response:
        table = self._table(object_type)
        record = self._readable(table, object_id, request.arg("idProperty"),
                                _flag(request, "archived"))
        if record is None:
            raise self._not_found(object_id)
        body = self._wire(table, record, request.args("properties"),
                          request.args("propertiesWithHistory"))
        targets = request.args("associations")
        if targets:
            body["associations"] = self._embedded(table, record, targets)
        return Response(200, body)

    def _create(self, request: Request, object_type: str) -> Response:
        table = self._table(object_type)
        body = request.json() or {}
        clean = self._validated(table, body.get("properties", {}))
        self._conflict(table, clean, {})
        record = self._insert(table, clean)
        self._link_on_create(table, record, body.get("associations"))
        return Response(201, self._wire(table, record, None))

    def _update(self, request: Request, object_type: str, object_id: str) -> Response:
        table = self._table(object_type)
        record = table.find(object_id, request.arg("idProperty"))
        if record is None or record.archived:
            raise self._not_found(object_id)
        clean = self._validated(table, (request.json() or {}).get("properties", {}))
        self._conflict(table, clean, {}, own_id=record.id)
        self._apply(table, record, clean)
        return Response(200, self._wire(table, record, None))

    def _archive(self, request: Request, object_type: str, object_id: str) -> Response:
        table = self._table(object_type)
        if object_id in table.records:  # archiving an unknown id also answers 204
            self.portal.archive(table.object_type, object_id, at=self.clock())
        return Response(204)

    def _merge(self, request: Request, object_type: str) -> Response:
        table = self._table(object_type)
        body = request.json() or {}
        primary_id, loser_id = str(body.get("primaryObjectId")), str(body.get("objectIdToMerge"))
        for record_id in (primary_id, loser_id):
            found = table.records.get(record_id)
            if found is None or found.archived:
                raise self._not_found(record_id)
        if primary_id == loser_id:
            raise HubSpotError(400, "VALIDATION_ERROR", "Cannot merge an object with itself.")
        self.portal.merge(table.object_type, primary_id, loser_id, at=self.clock())
        return Response(200, self._wire(table, table.records[primary_id], None))

    def _gdpr_delete(self, request: Request, object_type: str) -> Response:
        table = self._table(object_type)
        body = request.json() or {}
        record = table.find(str(body.get("objectId", "")), body.get("idProperty"))
        if record is None:
            raise self._not_found(str(body.get("objectId", "")))
        self.portal.purge(table.object_type, record.id)
        return Response(204)

    def _batch_read(self, request: Request, object_type: str) -> Response:
        table = self._table(object_type)
        body, inputs = self._inputs(request)
        archived, id_property = _flag(request, "archived"), body.get("idProperty")
        requested, history = body.get("properties") or [], body.get("propertiesWithHistory")
        results, missing = [], []
        for item in inputs:
            key = str(item.get("id", ""))
            record = self._readable(table, key, id_property, archived)
            if record is None:
                missing.append(key)
            else:
                results.append(self._wire(table, record, requested, history))
        return self._batch(results, self._missing_error(table, missing))

    def _missing_error(self, table: ObjectTable, missing: list[str]) -> list[dict[str, Any]]:
        if not missing:
            return []
        kind = SINGULAR[table.object_type].upper()
        return [{"status": "error", "category": "OBJECT_NOT_FOUND",
                 "message": f"Could not get some {kind} objects, they may be deleted or not "
                            "exist. Check that ids are valid.",
                 "context": {"ids": missing}}]

    def _batch_create(self, request: Request, object_type: str) -> Response:
        table = self._table(object_type)
        _, inputs = self._inputs(request)
        cleaned = [self._validated(table, item.get("properties", {})) for item in inputs]
        claimed: dict[tuple[str, str], str] = {}
        for clean in cleaned:
            self._conflict(table, clean, claimed)
        results, errors = [], []
        for item, clean in zip(inputs, cleaned, strict=True):
            refused = self._rejected(table, clean, None)
            if refused:
                errors.append(refused)
                continue
            record = self._insert(table, clean)
            self._link_on_create(table, record, item.get("associations"))
            results.append(self._wire(table, record, None))
        return self._batch(results, errors, ok=201)

    def _batch_update(self, request: Request, object_type: str) -> Response:
        table = self._table(object_type)
        _, inputs = self._inputs(request)
        found: list[tuple[CrmRecord, dict[str, str | None]]] = []
        missing: list[str] = []
        for item in inputs:
            key = str(item.get("id", ""))
            record = table.find(key, item.get("idProperty"))
            clean = self._validated(table, item.get("properties", {}))
            if record is None or record.archived:
                missing.append(key)
            else:
                found.append((record, clean))
        for record, clean in found:
            self._conflict(table, clean, {}, own_id=record.id)
        results, errors = [], self._missing_error(table, missing)
        for record, clean in found:
            refused = self._rejected(table, clean, record.id)
            if refused:
                errors.append(refused)
                continue
            self._apply(table, record, clean)
            results.append(self._wire(table, record, None))
        return self._batch(results, errors)

    def _batch_upsert(self, request: Request, object_type: str) -> Response:
        table = self._table(object_type)
        _, inputs = self._inputs(request)
        plans: list[tuple[CrmRecord | None, dict[str, str | None]]] = []
        claimed: dict[tuple[str, str], str] = {}
        for item in inputs:
            id_property = str(item.get("idProperty") or "")
            if id_property not in table.unique:
                raise HubSpotError(400, "VALIDATION_ERROR", f"Property {id_property!r} is not "
                                   "a unique identifier property and cannot be an idProperty.")
            clean = self._validated(table, item.get("properties", {}))
            clean.setdefault(id_property, _text(item.get("id")))
            record = table.find(str(item.get("id", "")), id_property)
            self._conflict(table, clean, claimed, own_id=record.id if record else None)
            plans.append((record, clean))
        results, errors = [], []
        for record, clean in plans:
            refused = self._rejected(table, clean, record.id if record else None)
            if refused:
                errors.append(refused)
                continue
            if record is None:
                body = {**self._wire(table, self._insert(table, clean), None), "new": True}
            else:
                self._apply(table, record, clean)
                body = {**self._wire(table, record, None), "new": False}
            results.append(body)
        return self._batch(results, errors)

    def _batch_archive(self, request: Request, object_type: str) -> Response:
        table = self._table(object_type)
        _, inputs = self._inputs(request)
        for item in inputs:
            record_id = str(item.get("id", ""))
            if record_id in table.records:
                self.portal.archive(table.object_type, record_id, at=self.clock())
        return Response(204)

    def _search(self, request: Request, object_type: str) -> Response:
        table = self._table(object_type)
        body = request.json() or {}
        limit = _int_arg(body.get("limit") or 10, "limit")
        after = _int_arg(body.get("after") or 0, "after")
        if not 1 <= limit <= MAX_LIMIT:
            raise HubSpotError(400, "VALIDATION_ERROR",
                               f"limit must be between 1 and {MAX_LIMIT}, got {limit}.")
        if after + limit > MAX_RESULTS:
            # The exact production text is unconfirmed (reference 4); the rule is not.
            raise HubSpotError(400, "VALIDATION_ERROR",
                               f"Search results are limited to {MAX_RESULTS} records: after "
                               f"({after}) + limit ({limit}) exceeds it. Narrow the filters.")
        try:
            ids = self._searches.results(table, body)
        except SearchError as error:
            raise HubSpotError(400, "VALIDATION_ERROR", str(error)) from None
        requested = [str(p) for p in body.get("properties") or []]
        results = [self._wire(table, table.records[i], requested) for i in ids[after:after + limit]]
        answer: dict[str, Any] = {"total": len(ids), "results": results}
        if after + limit < len(ids):
            answer["paging"] = {"next": {"after": str(after + limit)}}
        return Response(200, answer)

    # -- associations v4 ------------------------------------------------------------------

    def _ends(self, from_type: str, to_type: str) -> tuple[ObjectTable, ObjectTable]:
        return self._table(from_type), self._table(to_type)

    def _live(self, table: ObjectTable, record_id: str) -> bool:
        record = table.records.get(record_id)
        return record is not None and not record.archived

    def _v4_list(self, request: Request, from_type: str, object_id: str,
                 to_type: str) -> Response:
        source, target = self._ends(from_type, to_type)
        if not self._live(source, object_id):
            raise self._not_found(object_id)
        limit = _limit(request, ASSOCIATION_MAX_LIMIT, ASSOCIATION_MAX_LIMIT)
        start = _int_arg(request.arg("after") or "0", "after")
        pairs = self.portal.associations(source.object_type, object_id, target.object_type)
        chosen = pairs[start:start + limit]
        answer: dict[str, Any] = {"results": [
            {"toObjectId": int(to_id), "associationTypes": _association_types(types)}
            for to_id, types in chosen
        ]}
        if start + limit < len(pairs):
            answer["paging"] = {"next": {"after": str(start + limit),
                                         "link": f"?after={start + limit}"}}
        return Response(200, answer)

    def _check_pair(self, source: ObjectTable, from_id: str, target: ObjectTable,
                    to_id: str) -> None:
        for table, record_id in ((source, from_id), (target, to_id)):
            if not self._live(table, record_id):
                raise self._not_found(record_id)

    def _v4_put_labelled(self, request: Request, from_type: str, object_id: str, to_type: str,
                         to_id: str) -> Response:
        source, target = self._ends(from_type, to_type)
        self._check_pair(source, object_id, target, to_id)
        for spec in request.json() or []:
            self.portal.associate(source.object_type, object_id, target.object_type, to_id,
                                  int(spec.get("associationTypeId", 0)))
        return Response(201, self._labels_pair(source, object_id, target, to_id))

    def _labels_pair(self, source: ObjectTable, from_id: str, target: ObjectTable,
                     to_id: str) -> dict[str, Any]:
        held = dict(self.portal.associations(source.object_type, from_id, target.object_type))
        labels = [t["label"] for t in _association_types(held.get(to_id, [])) if t["label"]]
        return {"fromObjectTypeId": OBJECT_TYPE_IDS[source.object_type],
                "fromObjectId": int(from_id),
                "toObjectTypeId": OBJECT_TYPE_IDS[target.object_type],
                "toObjectId": int(to_id), "labels": labels}

    def _default_link(self, source: ObjectTable, from_id: str, target: ObjectTable,
                      to_id: str) -> list[dict[str, Any]]:
        """Create the unlabeled association; answer both directions, as HubSpot does."""
        pair = (source.object_type, target.object_type)
        self.portal.associate(pair[0], from_id, pair[1], to_id)
        return [
            {"from": {"id": a}, "to": {"id": b}, "associationSpec": {
                "associationCategory": "HUBSPOT_DEFINED",
                "associationTypeId": UNLABELED_TYPE.get((x, y), 0)}}
            for a, b, x, y in ((from_id, to_id, *pair), (to_id, from_id, pair[1], pair[0]))
        ]

    def _v4_put_default(self, request: Request, from_type: str, object_id: str, to_type: str,
                        to_id: str) -> Response:
        source, target = self._ends(from_type, to_type)
        self._check_pair(source, object_id, target, to_id)
        return self._batch(self._default_link(source, object_id, target, to_id), [])

    def _v4_delete(self, request: Request, from_type: str, object_id: str, to_type: str,
                   to_id: str) -> Response:
        source, target = self._ends(from_type, to_type)
        self.portal.disassociate(source.object_type, object_id, target.object_type, to_id)
        return Response(204)

    def _v4_batch_read(self, request: Request, from_type: str, to_type: str) -> Response:
        source, target = self._ends(from_type, to_type)
        _, inputs = self._inputs(request, ASSOCIATION_BATCH_LIMIT)
        results, errors = [], []
        for item in inputs:
            from_id = str(item.get("id", ""))
            pairs = self.portal.associations(source.object_type, from_id, target.object_type)
            if not pairs or not self._live(source, from_id):
                errors.append(self._no_associations(source, from_id, target))
                continue
            results.append({"from": {"id": from_id}, "to": [
                {"toObjectId": int(to_id), "associationTypes": _association_types(types)}
                for to_id, types in pairs
            ]})
        return self._batch(results, errors)

    @staticmethod
    def _no_associations(source: ObjectTable, from_id: str,
                         target: ObjectTable) -> dict[str, Any]:
        source_name = SINGULAR[source.object_type].upper()
        target_name = SINGULAR[target.object_type].upper()
        return {"status": "error", "category": "OBJECT_NOT_FOUND",
                "subCategory": "crm.associations.NO_ASSOCIATIONS_FOUND",
                "message": f"No {target_name} is associated with {source_name} {from_id}.",
                "context": {"fromObjectId": [from_id], "toObjectType": [target_name]}}

    def _v4_batch_create(self, request: Request, from_type: str, to_type: str) -> Response:
        source, target = self._ends(from_type, to_type)
        _, inputs = self._inputs(request, ASSOCIATION_BATCH_LIMIT)
        results, errors = [], []
        for item in inputs:
            from_id = str((item.get("from") or {}).get("id", ""))
            to_id = str((item.get("to") or {}).get("id", ""))
            if not (self._live(source, from_id) and self._live(target, to_id)):
                errors.append({"status": "error", "category": "VALIDATION_ERROR",
                               "message": f"Invalid object ids: {from_id} -> {to_id}.",
                               "context": {"fromObjectId": [from_id], "toObjectId": [to_id]}})
                continue
            for spec in item.get("types") or []:
                self.portal.associate(source.object_type, from_id, target.object_type, to_id,
                                      int(spec.get("associationTypeId", 0)))
            results.append(self._labels_pair(source, from_id, target, to_id))
        return self._batch(results, errors, ok=201)

    def _v4_batch_archive(self, request: Request, from_type: str, to_type: str) -> Response:
        source, target = self._ends(from_type, to_type)
        _, inputs = self._inputs(request, ASSOCIATION_BATCH_LIMIT)
        for item in inputs:
            from_id = str((item.get("from") or {}).get("id", ""))
            for to in item.get("to") or []:
                self.portal.disassociate(source.object_type, from_id, target.object_type,
                                         str(to.get("id", "")))
        return Response(204)

    def _v4_batch_default(self, request: Request, from_type: str, to_type: str) -> Response:
        source, target = self._ends(from_type, to_type)
        _, inputs = self._inputs(request, ASSOCIATION_BATCH_LIMIT)
        results: list[dict[str, Any]] = []
        for item in inputs:
            from_id = str((item.get("from") or {}).get("id", ""))
            to_id = str((item.get("to") or {}).get("id", ""))
            self._check_pair(source, from_id, target, to_id)
            results.extend(self._default_link(source, from_id, target, to_id))
        return self._batch(results, [])

    # -- properties and pipelines ---------------------------------------------------------

    def _properties(self, request: Request, object_type: str) -> Response:
        table = self._table(object_type)
        return Response(200, {"results": [prop.wire() for prop in table.schema.values()]})

    def _property(self, request: Request, object_type: str, name: str) -> Response:
        prop = self._table(object_type).schema.get(name)
        if prop is None:
            raise HubSpotError(404, "OBJECT_NOT_FOUND",
                               f"Unable to find property with name {name}.")
        return Response(200, prop.wire())

    def _create_property(self, request: Request, object_type: str) -> Response:
        table = self._table(object_type)
        body = request.json() or {}
        absent = [k for k in ("name", "label", "type", "fieldType") if not body.get(k)]
        if absent:
            raise HubSpotError(400, "VALIDATION_ERROR",
                               f"Missing required fields: {', '.join(absent)}.")
        name = str(body["name"])
        if name in table.schema:
            raise HubSpotError(409, "OBJECT_ALREADY_EXISTS",
                               f"Property named '{name}' already exists.")
        options = [str(o.get("value")) for o in body.get("options") or []]
        self.portal.add_property(table.object_type, name, type=str(body["type"]),
                                 field_type=str(body["fieldType"]), label=str(body["label"]),
                                 options=options,
                                 has_unique_value=bool(body.get("hasUniqueValue")))
        prop = table.schema[name]
        prop.group_name = str(body.get("groupName") or prop.group_name)
        prop.description = str(body.get("description") or "")
        return Response(201, prop.wire())

    def _pipeline_body(self) -> dict[str, Any]:
        stamp = "2019-08-06T00:00:00.000Z"
        stages = [
            {"id": stage, "label": label, "displayOrder": order,
             "metadata": {"isClosed": "true" if closed else "false", "probability": chance},
             "createdAt": stamp, "updatedAt": stamp, "archived": False,
             "writePermissions": "CRM_PERMISSIONS_ENFORCEMENT"}
            for order, (stage, label, chance, closed) in enumerate(DEAL_STAGES)
        ]
        return {"id": "default", "label": "Sales Pipeline", "displayOrder": 0, "stages": stages,
                "createdAt": stamp, "updatedAt": stamp, "archived": False}

    def _pipelines(self, request: Request, object_type: str) -> Response:
        kind = canonical_type(object_type)
        return Response(200, {"results": [self._pipeline_body()] if kind == "deals" else []})

    def _pipeline(self, request: Request, object_type: str, pipeline_id: str) -> Response:
        if canonical_type(object_type) != "deals" or pipeline_id != "default":
            raise HubSpotError(404, "OBJECT_NOT_FOUND", f"Pipeline {pipeline_id} not found.")
        return Response(200, self._pipeline_body())

    # -- forms and email ------------------------------------------------------------------

    def _forms(self, request: Request) -> Response:
        limit = _limit(request, 20, LIST_MAX_LIMIT)
        start = _int_arg(request.arg("after") or "0", "after")
        forms = list(self.portal.forms.values())
        results = []
        for form in forms[start:start + limit]:
            stamp = iso_ms(form.created_at)
            results.append({
                "id": form.id, "name": form.name, "createdAt": stamp, "updatedAt": stamp,
                "archived": False, "formType": "hubspot", "fieldGroups": [],
                "configuration": {"language": "en", "cloneable": True, "editable": True,
                                  "archivable": True, "createNewContactForNewEmail": False,
                                  "allowLinkToResetKnownValues": False,
                                  "lifecycleStages": [], "postSubmitAction": {
                                      "type": "thank_you", "value": ""},
                                  "prePopulateKnownValues": True, "notifyRecipients": [],
                                  "recaptchaEnabled": False, "notifyContactOwner": False},
                "displayOptions": {"renderRawHtml": False, "theme": "default_style",
                                   "submitButtonText": "Submit", "style": {}, "cssClass": ""},
                "legalConsentOptions": {"type": "none"},
            })
        answer: dict[str, Any] = {"results": results}
        if start + limit < len(forms):
            answer["paging"] = {"next": {"after": str(start + limit),
                                         "link": f"?after={start + limit}"}}
        return Response(200, answer)

    def _submissions(self, request: Request, guid: str) -> Response:
        form = self.portal.forms.get(guid)
        if form is None:
            raise HubSpotError(404, "OBJECT_NOT_FOUND", f"Form {guid} does not exist.")
        limit = _limit(request, 20, SUBMISSIONS_MAX_LIMIT)
        token = request.arg("after")
        keys, submissions = form.submissions.ordered()
        end = bisect.bisect_left(keys, _uncursor(token)) if token else len(keys)
        begin = max(0, end - limit)
        # Newest first: walk the ascending list backwards from the cursor.
        results = [submission.wire() for submission in reversed(submissions[begin:end])]
        answer: dict[str, Any] = {"results": results}
        if begin > 0:
            after = _cursor(keys[begin])
            answer["paging"] = {"next": {"after": after, "link": f"?after={after}"}}
        return Response(200, answer)

    def _email_events(self, request: Request) -> Response:
        limit = _limit(request, 100, EMAIL_EVENTS_MAX_LIMIT)
        keys, clicks = self.portal.clicks.ordered()
        low = bisect.bisect_left(keys, (_int_arg(request.arg("startTimestamp") or 0, "start"), 0))
        high = bisect.bisect_left(keys, (_int_arg(
            request.arg("endTimestamp") or 2**62, "end") + 1, 0))
        token = request.arg("offset")
        if token:
            high = min(high, bisect.bisect_left(keys, _uncursor(token)))
        wanted = self._event_filter(request)
        events: list[dict[str, object]] = []
        position = high
        while position > low and len(events) < limit:
            position -= 1
            click = clicks[position]
            if wanted(click):
                events.append(click.wire(self.portal.portal_id))
        has_more = any(wanted(clicks[i]) for i in range(position - 1, low - 1, -1))
        offset = _cursor(keys[position]) if position < len(keys) else ""
        return Response(200, {"events": events, "offset": offset, "hasMore": has_more})

    @staticmethod
    def _event_filter(request: Request) -> Callable[[Click], bool]:
        kind, campaign = request.arg("eventType"), request.arg("campaignId")
        recipient = request.arg("recipient")

        def wanted(event: Click) -> bool:
            return ((not kind or event.type == kind.upper())
                    and (not campaign or str(event.campaign_id) == campaign)
                    and (not recipient or event.recipient == recipient))

        return wanted

    def _email_campaigns(self, request: Request) -> Response:
        campaigns = [{"id": c.id, "appId": c.app_id, "appName": "Batch",
                      "lastUpdatedTime": 0} for c in self.portal.campaigns.values()]
        return Response(200, {"campaigns": campaigns, "hasMore": False, "offset": ""})

    def _email_campaign(self, request: Request, campaign_id: str) -> Response:
        campaign = self.portal.campaigns.get(_int_arg(campaign_id, "campaign id"))
        if campaign is None:
            raise HubSpotError(404, "OBJECT_NOT_FOUND", f"Campaign {campaign_id} not found.")
        recipients = len(campaign.recipients)
        return Response(200, {
            "id": campaign.id, "appId": campaign.app_id, "appName": "Batch",
            "contentId": campaign.id, "name": campaign.name, "subject": campaign.subject,
            "type": "BATCH_EMAIL", "numIncluded": recipients, "numQueued": 0,
            "counters": {"click": campaign.clicks, "sent": recipients, "delivered": recipients},
            "lastProcessingFinishedAt": campaign.last_click,
            "processingState": "DONE",
        })


def main(argv: list[str] | None = None) -> None:
    """Serve an empty portal until Ctrl-C; prints the URL and the CA file to trust."""
    parser = argparse.ArgumentParser(description="A loopback HubSpot emulator over HTTPS.")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--token", default="pat-na1-00000000-0000-4000-8000-000000000000")
    args = parser.parse_args(argv)
    emulator = HubSpotEmulator(port=args.port, access_token=args.token).start()
    print(f"HubSpot emulator at {emulator.url}\nCA: {emulator.ca_path}\ntoken: {args.token}",
          flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        emulator.stop()


if __name__ == "__main__":
    main()
