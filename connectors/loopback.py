"""The loopback HTTPS server both CRM emulators stand on.

An emulator is an *app*: a callable taking a `Request` and returning a `Response`, holding its
in-memory org. `LoopbackServer` serves such an app over HTTPS on 127.0.0.1 with a certificate
from a throwaway CA (`trustme`), logs and counts every request by endpoint, and injects faults
(error answers, latency, dropped connections, a kill hook after request N), seeded so that a
failing test can be replayed exactly.
"""

from __future__ import annotations

import json
import random
import re
import ssl
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qs, unquote, urlsplit

import trustme

JSON = "application/json;charset=UTF-8"

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Text of each day (`2024-04-25T`) and each second of a day (`15:50:37`) met so far: the
# emulators write a timestamp for every record they seed or serve, and `isoformat` costs
# several times these two lookups.
_DAY_TEXT: dict[int, str] = {}
_SECOND_TEXT = [f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}" for s in range(86_400)]


def utc_millis(moment: datetime, zone: str) -> str:
    """`2024-04-25T15:50:37.123` in UTC (a naive datetime is UTC), then `zone`: HubSpot writes
    `Z`, Salesforce `+0000`."""
    delta = (moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)) - _EPOCH
    day = _DAY_TEXT.get(delta.days)
    if day is None:
        day = _DAY_TEXT[delta.days] = (_EPOCH + timedelta(days=delta.days)).date().isoformat() + "T"
    micros = delta.microseconds
    if not micros:
        return f"{day}{_SECOND_TEXT[delta.seconds]}.000{zone}"
    return f"{day}{_SECOND_TEXT[delta.seconds]}.{micros // 1000:03d}{zone}"


@dataclass(frozen=True)
class Request:
    """One HTTP request as an app sees it. `path` is percent-decoded except for `raw_path`."""

    method: str
    raw_path: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body.decode("utf-8")) if self.body else None

    def text(self) -> str:
        return self.body.decode("utf-8")

    def header(self, name: str, default: str = "") -> str:
        return self.headers.get(name.lower(), default)

    def arg(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[0] if values else default

    def args(self, name: str) -> list[str]:
        """A repeated or comma-joined list parameter (`?p=a&p=b` or `?p=a,b`)."""
        out: list[str] = []
        for value in self.query.get(name, []):
            out.extend(v for v in value.split(",") if v)
        return out


@dataclass
class Response:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = JSON

    def encoded(self) -> bytes:
        if self.body is None:
            return b""
        if isinstance(self.body, bytes):
            return self.body
        if isinstance(self.body, str):
            return self.body.encode("utf-8")
        return json.dumps(self.body, separators=(",", ":")).encode("utf-8")


Handler = Callable[..., Response]


class Router:
    """Routes `(method, path)` to handlers; `{name}` in a pattern matches one path segment."""

    def __init__(self) -> None:
        self._routes: list[tuple[str, re.Pattern[str], str, Handler]] = []

    def add(self, method: str, pattern: str, handler: Handler) -> None:
        regex = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", pattern.rstrip("/"))
        self._routes.append((method, re.compile(f"^{regex}/?$"), pattern, handler))

    def match(self, method: str, path: str) -> tuple[str, Handler, dict[str, str]] | None:
        """The endpoint name, handler and decoded path parameters, or None."""
        allowed = False
        for route_method, regex, pattern, handler in self._routes:
            found = regex.match(path)
            if found:
                if route_method == method:
                    params = {k: unquote(v) for k, v in found.groupdict().items()}
                    return f"{method} {pattern}", handler, params
                allowed = True
        if allowed:
            return f"{method} (method not allowed)", _method_not_allowed, {}
        return None


def _method_not_allowed(request: Request) -> Response:
    return Response(
        405, [{"errorCode": "METHOD_NOT_ALLOWED", "message": "HTTP Method not allowed"}]
    )


@dataclass
class Faults:
    """Seeded, deterministic fault injection. Mutable: tests change it between requests.

    `error_rate` of requests are answered by the app's own error envelope for a status drawn
    from `error_statuses`; `latency_rate` of requests wait `latency` seconds first;
    `drop_rate` of connections are closed with no answer; `reject_rate` is read by the apps
    to refuse that share of records in writes (and `reject_record(object, fields)` to refuse
    chosen ones); `exempt(request)` spares requests from the generic faults; after request
    number `kill_after` has been handled (its effects applied) and before its answer is sent,
    `on_kill` is called.
    """

    seed: int = 0
    error_rate: float = 0.0
    error_statuses: tuple[int, ...] = (429, 503)
    latency: float = 0.0
    latency_rate: float = 0.0
    drop_rate: float = 0.0
    reject_rate: float = 0.0
    kill_after: int | None = None
    on_kill: Callable[[], None] | None = None
    exempt: Callable[[Request], bool] | None = None
    reject_record: Callable[[str, Mapping[str, Any]], bool] | None = None
    _rng: random.Random = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    def roll(self, share: float) -> bool:
        return share > 0 and self._rng.random() < share

    def pick(self, choices: tuple[int, ...]) -> int:
        return self._rng.choice(choices)

    def rejects(self, object_name: str, fields: Mapping[str, Any]) -> bool:
        """Whether an app should refuse this record in a write (targeted, else by share)."""
        if self.reject_record is not None and self.reject_record(object_name, fields):
            return True
        return self.roll(self.reject_rate)


class ThrowawayCA:
    """A certificate authority made for this process: its PEM file is what clients trust."""

    def __init__(self, directory: Path | None = None) -> None:
        # ECDSA keys: generated in milliseconds, where RSA would slow every test that starts one.
        self._ca = trustme.CA(organization_name="syncd loopback CA", key_type=trustme.KeyType.ECDSA)
        self._cert = self._ca.issue_cert("127.0.0.1", "localhost", key_type=trustme.KeyType.ECDSA)
        if directory is None:
            # Removed when this CA is garbage-collected or the process exits.
            self._temporary = tempfile.TemporaryDirectory(prefix="syncd-ca-")
            directory = Path(self._temporary.name)
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self.ca_path = self.directory / "loopback-ca.pem"
        self._ca.cert_pem.write_to_path(str(self.ca_path))

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._cert.configure_cert(context)
        return context


@dataclass(frozen=True)
class LoggedRequest:
    number: int
    method: str
    path: str
    endpoint: str
    status: int
    took: float


App = Callable[[Request], tuple[str, Response]]


class LoopbackServer:
    """Serves an app over HTTPS on 127.0.0.1; counts, logs and injects faults.

    `app(request)` returns `(endpoint, response)`; `error_answer(status, request)` builds the
    app's own envelope for an injected error status.
    """

    def __init__(
        self,
        app: App,
        error_answer: Callable[[int, Request], Response],
        *,
        faults: Faults | None = None,
        ca: ThrowawayCA | None = None,
        port: int = 0,
        host: str = "127.0.0.1",
    ) -> None:
        self.app = app
        self.error_answer = error_answer
        self.faults = faults or Faults()
        self.ca = ca or ThrowawayCA()
        self.log: list[LoggedRequest] = []
        self.counts: Counter[str] = Counter()
        self.delayed = 0  # requests held back `Faults.latency` seconds
        self._count_lock = threading.Lock()
        self._app_lock = threading.RLock()
        self._number = 0
        handler = _handler_class(self)
        self._httpd = _QuietServer((host, port), handler)
        self._httpd.daemon_threads = True
        self._httpd.socket = self.ca.server_context().wrap_socket(
            self._httpd.socket, server_side=True
        )
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def app_lock(self) -> threading.RLock:
        """Held while the app handles a request; hold it to read or seed the org safely."""
        return self._app_lock

    def start(self) -> LoopbackServer:
        # A short poll interval: stop() returns in 50 ms, not the default 0.5 s.
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def serve_forever(self) -> None:
        self._httpd.serve_forever()

    def reset_counts(self) -> None:
        with self._count_lock:
            self.counts.clear()
            self.log.clear()
            self.delayed = 0

    def calls(self, endpoint_prefix: str = "") -> int:
        """Requests counted so far whose endpoint starts with the given text."""
        with self._count_lock:
            return sum(n for name, n in self.counts.items() if name.startswith(endpoint_prefix))

    def next_number(self) -> int:
        with self._count_lock:
            self._number += 1
            return self._number

    def record(self, entry: LoggedRequest) -> None:
        with self._count_lock:
            self.log.append(entry)
            self.counts[entry.endpoint] += 1

    def dispatch(self, request: Request) -> tuple[str, Response, bool]:
        """Apply faults, then the app. Returns endpoint, response and whether to drop."""
        faults = self.faults
        exempt = faults.exempt is not None and faults.exempt(request)
        if not exempt and faults.roll(faults.latency_rate):
            with self._count_lock:
                self.delayed += 1
            time.sleep(faults.latency)
        if not exempt and faults.roll(faults.drop_rate):
            return "(dropped)", Response(0), True
        if not exempt and faults.roll(faults.error_rate):
            status = faults.pick(faults.error_statuses)
            return "(injected)", self.error_answer(status, request), False
        with self._app_lock:
            endpoint, response = self.app(request)
        return endpoint, response, False


class Emulator:
    """What both emulators share: one `LoopbackServer`, started and stopped with them (also as
    a context manager), and its address, CA, faults and request counts."""

    server: LoopbackServer

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

    def start(self) -> Self:
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.stop()


class _QuietServer(ThreadingHTTPServer):
    """A client that goes away mid-answer (killed by a test, timed out, dropped by an injected
    fault) is routine here: not worth the traceback `socketserver` prints for it."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        error = sys.exc_info()[1]
        if isinstance(error, (ConnectionError, ssl.SSLError, TimeoutError)):
            return
        super().handle_error(request, client_address)


def _handler_class(server: LoopbackServer) -> type[BaseHTTPRequestHandler]:
    class _Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body go out in separate writes; without TCP_NODELAY, Nagle's algorithm
        # holds every body back ~40 ms behind the client's delayed ACK.
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: Any) -> None:
            pass  # the server keeps its own log

        def _serve(self) -> None:
            started = time.perf_counter()
            number = server.next_number()
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            parts = urlsplit(self.path)
            request = Request(
                method=self.command,
                raw_path=parts.path,
                path=parts.path,
                query=parse_qs(parts.query, keep_blank_values=True),
                headers={k.lower(): v for k, v in self.headers.items()},
                body=body,
            )
            endpoint, response, dropped = server.dispatch(request)
            faults = server.faults
            if faults.kill_after is not None and number == faults.kill_after and faults.on_kill:
                faults.on_kill()
            server.record(
                LoggedRequest(
                    number,
                    self.command,
                    parts.path,
                    endpoint,
                    response.status,
                    time.perf_counter() - started,
                )
            )
            if dropped:
                self.close_connection = True
                return
            payload = response.encoded()
            self.send_response(response.status)
            if payload or response.status not in (204, 304):
                self.send_header("Content-Type", response.content_type)
            for name, value in response.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if payload:
                self.wfile.write(payload)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

    return _Handler


def utc_now() -> datetime:
    """The default clock of both emulators (tests inject their own)."""
    return datetime.now(UTC)


def iter_chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
