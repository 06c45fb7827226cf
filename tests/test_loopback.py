"""The loopback server under both emulators: TLS from the throwaway CA, counting, and seeded
fault injection, exercised with a plain requests client."""

from __future__ import annotations

import gc
import socket
import ssl
import threading
import time
from collections.abc import Iterator

import pytest
import requests

from connectors.loopback import Faults, LoopbackServer, Request, Response, Router, ThrowawayCA
from tests.conftest import trusting_session


def echo_app() -> tuple[Router, list[str]]:
    router = Router()
    applied: list[str] = []

    def write(request: Request, name: str) -> Response:
        applied.append(name)
        return Response(201, {"name": name})

    router.add("GET", "/things/{name}", lambda request, name: Response(200, {"name": name}))
    router.add("POST", "/things/{name}", write)
    return router, applied


@pytest.fixture
def served(loopback_ca: ThrowawayCA) -> Iterator[tuple[LoopbackServer, list[str]]]:
    router, applied = echo_app()

    def app(request: Request) -> tuple[str, Response]:
        found = router.match(request.method, request.path)
        if found is None:
            return "(unknown)", Response(404, {"error": "no route"})
        endpoint, handler, params = found
        return endpoint, handler(request, **params)

    server = LoopbackServer(
        app, lambda status, _: Response(status, {"injected": status}), ca=loopback_ca
    ).start()
    yield server, applied
    server.stop()


def test_serves_https_trusted_only_through_the_throwaway_ca(
    served: tuple[LoopbackServer, list[str]],
) -> None:
    server, _ = served
    answer = trusting_session(server.ca.ca_path).get(f"{server.url}/things/a%40b.c")
    assert answer.status_code == 200 and answer.json() == {"name": "a@b.c"}
    untrusting = requests.Session()
    untrusting.trust_env = False
    with pytest.raises(requests.exceptions.SSLError):
        untrusting.get(f"{server.url}/things/x")


def test_counts_requests_by_endpoint(served: tuple[LoopbackServer, list[str]]) -> None:
    server, _ = served
    session = trusting_session(server.ca.ca_path)
    for name in ("a", "b", "c"):
        session.get(f"{server.url}/things/{name}")
    session.post(f"{server.url}/things/d")
    assert server.counts["GET /things/{name}"] == 3
    assert server.calls("POST ") == 1
    assert [entry.number for entry in server.log] == [1, 2, 3, 4]


def test_method_not_allowed_is_told_apart_from_unknown_paths(
    served: tuple[LoopbackServer, list[str]],
) -> None:
    server, _ = served
    session = trusting_session(server.ca.ca_path)
    assert session.delete(f"{server.url}/things/a").status_code == 405
    assert session.get(f"{server.url}/nothing").status_code == 404


def test_injected_errors_are_seeded_and_repeatable(loopback_ca: ThrowawayCA) -> None:
    def statuses(seed: int) -> list[int]:
        server = LoopbackServer(
            lambda r: ("x", Response(200, {})),
            lambda status, _: Response(status, {}),
            faults=Faults(seed=seed, error_rate=0.5, error_statuses=(429, 503)),
            ca=loopback_ca,
        ).start()
        try:
            session = trusting_session(server.ca.ca_path)
            return [session.get(f"{server.url}/x").status_code for _ in range(30)]
        finally:
            server.stop()

    first = statuses(3)
    assert first == statuses(3)
    assert {429, 503, 200} == set(first)
    assert first != statuses(4)


def test_dropped_connection_answers_nothing(served: tuple[LoopbackServer, list[str]]) -> None:
    server, applied = served
    server.faults = Faults(drop_rate=1.0)
    with pytest.raises(requests.exceptions.ConnectionError):
        trusting_session(server.ca.ca_path).post(f"{server.url}/things/lost")
    assert applied == []


def test_kill_hook_runs_after_request_n_is_applied_and_before_its_answer(
    served: tuple[LoopbackServer, list[str]],
) -> None:
    server, applied = served
    seen_at_kill: list[list[str]] = []
    server.faults = Faults(kill_after=2, on_kill=lambda: seen_at_kill.append(list(applied)))
    session = trusting_session(server.ca.ca_path)
    for name in ("one", "two", "three"):
        session.post(f"{server.url}/things/{name}")
    assert seen_at_kill == [["one", "two"]]


def test_exempt_requests_escape_the_faults(served: tuple[LoopbackServer, list[str]]) -> None:
    server, _ = served
    server.faults = Faults(error_rate=1.0, exempt=lambda request: request.method == "GET")
    session = trusting_session(server.ca.ca_path)
    assert session.get(f"{server.url}/things/a").status_code == 200
    assert session.post(f"{server.url}/things/a").status_code in (429, 503)


def test_a_client_gone_mid_request_leaves_no_traceback(
    served: tuple[LoopbackServer, list[str]], loopback_ca: ThrowawayCA,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """A killed client is routine in the fault suites: the server stays quiet and serving."""
    server, _ = served
    context = ssl.create_default_context(cafile=str(loopback_ca.ca_path))
    for _ in range(3):
        with socket.create_connection(("127.0.0.1", server.port)) as raw:
            tls = context.wrap_socket(raw, server_hostname="127.0.0.1")
            tls.sendall(b"POST /things/x HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\n\r\nab")
            tls.close()  # no close_notify, body short: the server reads an unexpected EOF
    with trusting_session(loopback_ca.ca_path) as session:
        assert session.get(f"{server.url}/things/ok", timeout=5).status_code == 200
    # Every handler thread has finished (and so said whatever it had to say) before stderr is
    # read: a sleep would let a slow one speak after the check.
    deadline = time.monotonic() + 10
    while any("process_request" in t.name for t in threading.enumerate()):
        assert time.monotonic() < deadline, "a handler thread never finished"
        time.sleep(0.01)
    assert "Traceback" not in capfd.readouterr().err


def test_a_throwaway_ca_without_a_folder_cleans_up_after_itself() -> None:
    ca = ThrowawayCA()
    folder = ca.directory
    assert ca.ca_path.is_file()
    del ca
    gc.collect()
    assert not folder.exists()
