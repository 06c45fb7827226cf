"""The Salesforce connector's HTTP side: its session, the calls it counts, how it names them.

`_Session` is the requests session every call goes through (the configured CA bundle, a
timeout); `_Ledger`, its response hook, counts calls per endpoint (`_endpoint`) and reads the
org's usage headers. `_Where` names a call for error messages with a `_sanitized` URL, and
`_first_error` reads Salesforce's error envelope.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import requests

from connectors.salesforce.auth import SYSTEM


@dataclass
class _Ledger:
    """Every HTTP exchange with the org, counted from a response hook on the session."""

    calls: int = 0
    retries: int = 0
    throttled: int = 0
    used: int | None = None
    limit: int | None = None
    retry_after: float | None = None
    details: Counter[str] = field(default_factory=Counter)
    clock: Callable[[], float] = time.monotonic

    def hear(self, response: requests.Response, *args: Any, **kwargs: Any) -> requests.Response:
        """The session's response hook: count the call, read the usage headers."""
        self.count(_endpoint(response.request.method or "", response.request.url or ""))
        info = response.headers.get("Sforce-Limit-Info", "")
        found = re.search(r"(?:^|[^-])api-usage=(\d+)/(\d+)", info)
        if found:
            self.used, self.limit = int(found.group(1)), int(found.group(2))
        self.retry_after = _seconds(response.headers.get("Retry-After"))
        return response

    def count(self, endpoint: str) -> None:
        self.calls += 1
        self.details[endpoint] += 1


_ID_SEGMENT = re.compile(r"^(?=[^/]*\d)[A-Za-z0-9]{15,18}(-\d+)?$")


def _endpoint(method: str, url: str) -> str:
    """`GET queryAll`, `PATCH composite/sobjects`, `GET jobs/query/{id}/results`, ..."""
    path = re.sub(r"^/services/(data/v[\d.]+/)?", "", urlsplit(url).path).strip("/")
    parts = ["{id}" if _ID_SEGMENT.match(part) else part for part in path.split("/")]
    return f"{method} {'/'.join(parts)}"


def _seconds(text: str | None) -> float | None:
    try:
        return None if text is None else max(0.0, float(text))
    except ValueError:
        return None


class _Session(requests.Session):
    """A requests session that always verifies against the configured CA bundle, whatever
    REQUESTS_CA_BUNDLE says (requests lets that variable override `session.verify`, so the
    bundle is passed per request), and never waits forever on a stalled server."""

    def __init__(self, ca_bundle: str | None, timeout: float) -> None:
        super().__init__()
        self.ca_bundle = ca_bundle
        self.timeout = timeout

    def request(
        self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any
    ) -> requests.Response:
        kwargs.setdefault("timeout", self.timeout)
        if self.ca_bundle is not None:
            kwargs["verify"] = self.ca_bundle
        return super().request(method, url, *args, **kwargs)


@dataclass(frozen=True)
class _Where:
    """What a call is, for error messages: object, method and a sanitized path."""

    object_name: str
    method: str
    path: str

    def fields(self, url: str = "") -> dict[str, str]:
        return {"system": SYSTEM, "object_name": self.object_name, "method": self.method,
                "url": _sanitized(url) if url else self.path}

    def __str__(self) -> str:
        return f"{self.method} {self.path} ({self.object_name})"


def _sanitized(url: str) -> str:
    """The URL without its query string (SOQL, emails) and without any credentials."""
    parts = urlsplit(url)
    if not parts.scheme:
        return parts.path
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname}{port}{parts.path}"


def _first_error(content: Any) -> tuple[str, str]:
    """The errorCode and message of Salesforce's error envelope (an array of errors)."""
    if isinstance(content, list) and content and isinstance(content[0], Mapping):
        first = content[0]
        return str(first.get("errorCode") or ""), str(first.get("message") or "").strip()
    if isinstance(content, Mapping):
        return str(content.get("errorCode") or content.get("error") or ""), str(
            content.get("message") or content.get("error_description") or "")
    return "", str(content or "")[:200]
