"""A loopback HubSpot: the CRM v3/v4, properties, pipelines, forms and legacy email APIs over
HTTPS, answering the real hubspot-api-client 12.0.0 exactly as production does
(`/work/shared/reference/crm-wire-reference.md`, sections 0.1 and 1).

`HubSpotEmulator` wires a `Portal` (the in-memory data, `portal.py`) and the endpoints
(`emulator_objects.py` with the search evaluator of `search.py`, `emulator_associations.py`,
`emulator_schema.py`, `emulator_marketing.py`) to a `LoopbackServer`; this module holds what
every request passes through: bearer-token auth, the private-app rate limits with their
headers, HubSpot's error envelopes and the injected faults of `Faults`. Run it by hand with
`python -m connectors.hubspot.emulator [--port N] [--token T]`.
"""

from __future__ import annotations

import argparse
import bisect
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from connectors.hubspot.emulator_associations import AssociationsApi
from connectors.hubspot.emulator_marketing import MarketingApi
from connectors.hubspot.emulator_objects import ObjectsApi
from connectors.hubspot.emulator_schema import SchemaApi
from connectors.hubspot.emulator_wire import HubSpotError
from connectors.hubspot.portal import Portal
from connectors.loopback import (
    Emulator,
    Faults,
    LoopbackServer,
    Request,
    Response,
    Router,
    ThrowawayCA,
    utc_now,
)

AUTH_MESSAGE = ("Authentication credentials not found. This API supports OAuth 2.0 "
                "authentication and you can find more details at "
                "https://developers.hubspot.com/docs/methods/auth/oauth-overview")


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


class HubSpotEmulator(Emulator):
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
        objects = ObjectsApi(self.portal, self.clock, lambda: self.server.faults)
        self._router = Router()
        for api in (objects, AssociationsApi(objects), SchemaApi(self.portal, objects.table),
                    MarketingApi(self.portal)):
            api.routes(self._router)
        self.server = LoopbackServer(self._app, self.error_answer, faults=faults, ca=ca, port=port)
        self.portal.lock = self.server.app_lock

    # -- lifecycle and inspection ---------------------------------------------------------

    @property
    def limits(self) -> HubSpotLimits:
        return self._limiter.limits

    @limits.setter
    def limits(self, value: HubSpotLimits) -> None:
        self._limiter.limits = value

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
