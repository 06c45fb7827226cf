"""Every HubSpot call goes through `HubSpotTransport`: pacing, retries, error mapping, usage.

The calls themselves are the hubspot-api-client 12.0.0 API objects (`*_with_http_info` with
`_preload_content=False`, so the raw urllib3 response comes back with its headers and the JSON
is parsed once, here). Legacy endpoints the SDK has no method for go through the same SDK
`ApiClient.call_api`, so they share its TLS settings: `client.api_request` would use the
`requests` module with the environment's CA bundle, which `ca_bundle` must override
(ARCHITECTURE section 4).

Rate limits (reference 1.9, 1.10): one pacer keeps every non-search call under
`requests_per_10s` per 10 s (each call counted from its answer), another keeps search under
5 per second; search is not counted in the 10 s burst window (reference 1.4: its answers carry
no rate-limit headers). A 429 is retried after `Retry-After`, else 10 s for
TEN_SECONDLY_ROLLING and 1 s for the search "secondly" limit, as HubSpot's own SDK does; a
DAILY 429 raises `BudgetError` (syncd's own `daily_budget` is the pipeline's to enforce).
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hubspot
import tenacity
import urllib3

from syncd.errors import AuthError, BudgetError, ConnectorError, RetryableError
from syncd.log import event
from syncd.model import Usage
from syncd.pacing import Pacer, retrying

SYSTEM = "hubspot"
TEN_SECONDS = 10.0
# The server counts a call when it arrives; the pacer counts it from when its answer came back
# (`Pacer.slot`), never earlier, so latency needs no margin: this one only keeps a hair of room
# for the server's own clock.
BURST_MARGIN = 0.05
SEARCHES_PER_SECOND = 5
SEARCH_WINDOW = 1.05  # 5 searches per 1.05 s from their answers: a second never holds 6
TEN_SECONDLY_PAUSE = 10.0
SECONDLY_PAUSE = 1.0
TIMEOUT = (10.0, 60.0)  # connect, read (seconds)
ATTEMPTS = 6
# Daily figures older than this are not trusted to refuse a call: the day may have reset.

log = logging.getLogger(__name__)


class AnswerError(ConnectorError):
    """HubSpot refused a call outright (a 4xx other than 401/403/429): not worth retrying.
    `category` is HubSpot's (VALIDATION_ERROR, CONFLICT, OBJECT_NOT_FOUND ...)."""

    def __init__(self, message: str, *, status: int, category: str, **where: str) -> None:
        super().__init__(message, **where)
        self.status = status
        self.category = category


@dataclass(frozen=True)
class Answer:
    """One HTTP answer: status, parsed JSON body (None when empty) and headers."""

    status: int
    body: Any
    headers: Mapping[str, str]


@dataclass(frozen=True)
class Call:
    """What a call is, for pacing, messages and usage: `POST /crm/v3/objects/contacts/search`."""

    method: str
    path: str
    object_name: str = ""

    @property
    def endpoint(self) -> str:
        return f"{self.method} {self.path}"

    @property
    def search(self) -> bool:
        return self.path.endswith("/search")


class HubSpotTransport:
    """The SDK client, its API objects (built once: each holds a connection pool) and the
    policy every call goes through."""

    def __init__(
        self,
        *,
        base_url: str,
        access_token: str,
        ca_bundle: Path | None,
        requests_per_10s: int,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        options: dict[str, Any] = {"access_token": access_token, "host": base_url,
                                   "retry": False, "verify_ssl": True}
        if ca_bundle is not None:
            options["ssl_ca_cert"] = str(ca_bundle)
        self.client = hubspot.Client.create(**options)
        crm = self.client.crm
        self.objects = crm.objects.basic_api
        self.search_api = crm.objects.search_api
        self.batch = crm.objects.batch_api
        self.associations = crm.associations.v4.batch_api
        self.properties = crm.properties.core_api
        self.pipelines = crm.pipelines.pipelines_api
        self.forms = self.client.marketing.forms.forms_api
        self._sleep = sleep
        self._burst = Pacer(requests_per_10s, TEN_SECONDS + BURST_MARGIN, clock=monotonic,
                            sleep=sleep)
        self._searches = Pacer(SEARCHES_PER_SECOND, SEARCH_WINDOW, clock=monotonic, sleep=sleep)
        self._details: Counter[str] = Counter()
        self._calls = 0
        self._retries = 0
        self._throttled = 0
        self._limit: int | None = None
        self._remaining: int | None = None
        self._monotonic = monotonic

    # -- calling ----------------------------------------------------------------------------

    def send(self, call: Call, operation: Callable[..., Any], *args: Any, **kwargs: Any) -> Answer:
        """Run one SDK `*_with_http_info` operation under the pacing and retry policy."""

        def once() -> Any:
            return operation(*args, _preload_content=False, _request_timeout=TIMEOUT, **kwargs)

        return self._with_retries(call, once)

    def get_legacy(self, call: Call, query: list[tuple[str, Any]]) -> Answer:
        """A GET the SDK has no method for (legacy email events, form submissions)."""
        api_client = self.objects.api_client

        def once() -> Any:
            return api_client.call_api(
                call.path, "GET", query_params=query,
                header_params={"Accept": "application/json"}, response_types_map={},
                auth_settings=["oauth2"], _return_http_data_only=False,
                _preload_content=False, _request_timeout=TIMEOUT)

        return self._with_retries(call, once)

    def _with_retries(self, call: Call, once: Callable[[], Any]) -> Answer:
        policy = retrying(attempts=ATTEMPTS, sleep=self._sleep,
                          before_sleep=lambda state: self._note_retry(call, state))
        answer: Answer = policy(self._paced, call, once)
        return answer

    def _paced(self, call: Call, once: Callable[[], Any]) -> Answer:
        with (self._searches if call.search else self._burst).slot():
            return self._attempt(call, once)

    def _attempt(self, call: Call, once: Callable[[], Any]) -> Answer:
        self._calls += 1
        self._details[call.endpoint] += 1
        try:
            response = once()
            data = response.data
            response.release_conn()
        except urllib3.exceptions.HTTPError as error:
            raise _retryable(f"HubSpot did not answer {call.endpoint} "
                             f"({type(error).__name__}).", call, None) from None
        except Exception as error:  # the SDK raises one ApiException class per API package
            status = getattr(error, "status", None)
            if not type(error).__module__.startswith("hubspot.") or not isinstance(status, int):
                raise
            if status == 0:  # the SDK's way of saying TLS failed
                raise ConnectorError(
                    f"HubSpot could not be reached securely for {call.endpoint}: "
                    f"{getattr(error, 'reason', '')}. Check hubspot.base_url and "
                    "hubspot.ca_bundle.", **_where(call)) from None
            raise self._failure(call, status, getattr(error, "body", None),
                                getattr(error, "headers", None) or {}) from None
        headers = response.headers
        self._note_limits(headers)
        return Answer(response.status, _parsed(data), headers)

    # -- errors -----------------------------------------------------------------------------

    def _failure(self, call: Call, status: int, raw: Any,
                 headers: Mapping[str, str]) -> ConnectorError:
        """The syncd error for a HubSpot error answer (reference 1.9)."""
        self._note_limits(headers)
        body = _parsed(raw) if raw else None
        envelope = body if isinstance(body, dict) else {}
        policy = str(envelope.get("policyName") or "")
        message = str(envelope.get("message") or "")
        label = policy or str(envelope.get("category") or "") or "no category"
        text = f"HubSpot answered {status} ({label}) to {call.endpoint}: {message}".rstrip(": ")
        where = _where(call)
        if status == 429:
            self._throttled += 1
            if policy == "DAILY":
                return BudgetError(f"{text}. The portal's daily API limit is spent; run again "
                                   "after it resets (midnight, the portal's time zone).", **where)
            return _retryable(text, call, _pause(policy, message, headers))
        if status >= 500:
            return _retryable(text, call, _retry_after(headers))
        if status in (401, 403):
            return AuthError(f"{text}. Check hubspot.access_token and the private app's "
                             "scopes.", **where)
        category = str(envelope.get("category") or "")
        return AnswerError(text, status=status, category=category or f"HTTP_{status}", **where)

    def _note_retry(self, call: Call, state: tenacity.RetryCallState) -> None:
        self._retries += 1
        outcome = state.outcome
        error = outcome.exception() if outcome is not None else None
        pause = state.next_action.sleep if state.next_action is not None else 0.0
        event(log, "retry", level=logging.WARNING, system=SYSTEM, endpoint=call.endpoint,
              error=str(error), pause=round(pause, 3),
              attempt=f"{state.attempt_number + 1} of {ATTEMPTS}")

    # -- usage ------------------------------------------------------------------------------

    def _note_limits(self, headers: Mapping[str, str]) -> None:
        limit = headers.get("X-HubSpot-RateLimit-Daily")
        remaining = headers.get("X-HubSpot-RateLimit-Daily-Remaining")
        if limit is not None and remaining is not None:
            # A malformed header leaves the last known figures in place.
            with contextlib.suppress(ValueError):
                self._limit, self._remaining = int(limit), int(remaining)

    def usage(self) -> Usage:
        return Usage(system=SYSTEM, calls=self._calls, limit=self._limit,
                     remaining=self._remaining, retries=self._retries,
                     throttled=self._throttled, details=dict(self._details))

    def close(self) -> None:
        for api in (self.objects, self.search_api, self.batch, self.associations,
                    self.properties, self.pipelines, self.forms):
            pool = getattr(api.api_client.rest_client, "pool_manager", None)
            if pool is not None:
                pool.clear()


def _where(call: Call) -> dict[str, str]:
    return {"system": SYSTEM, "object_name": call.object_name, "method": call.method,
            "url": call.path}


def _retryable(text: str, call: Call, retry_after: float | None) -> RetryableError:
    return RetryableError(text, retry_after=retry_after, system=SYSTEM,
                          object_name=call.object_name, method=call.method, url=call.path)


def _parsed(raw: Any) -> Any:
    if raw in (None, b"", ""):
        return None
    text = raw.decode("utf-8") if isinstance(raw, bytes) else str(raw)
    try:
        return json.loads(text)
    except ValueError:
        return text


def _retry_after(headers: Mapping[str, str]) -> float | None:
    value = headers.get("Retry-After")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None  # an HTTP-date Retry-After: fall back to backoff


def _pause(policy: str, message: str, headers: Mapping[str, str]) -> float | None:
    """How long to wait after a 429: the server's word, else what its policy implies."""
    told = _retry_after(headers)
    if told is not None:
        return told
    if policy == "TEN_SECONDLY_ROLLING":
        return TEN_SECONDLY_PAUSE
    if "secondly" in message.lower():
        return SECONDLY_PAUSE
    return None
