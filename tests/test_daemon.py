"""The daemon against both emulators (a seeded sandbox of 200 people), on a "1s" interval:
passes run on schedule, /healthz and /metrics answer, a stop mid-pass exits 0 in time and the
next start loses nothing, a failing pass turns /healthz to 503, passes never overlap, and a
second instance on the same store is refused.

`serve()` runs in a thread here (the caller sets the stop event); the SIGTERM test starts a real
process: `python -m syncd run` once the CLI is wired to `syncd.daemon.serve`, until then a
small launcher that calls `serve()` as the CLI will.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from connectors.hubspot.connector import create as hubspot_connector
from connectors.salesforce.connector import create as salesforce_connector
from connectors.sandbox import Sandbox, SandboxInfo
from syncd.config import Settings, load_settings
from syncd.connector import Connector
from syncd.daemon import Daemon, serve
from syncd.errors import ConfigError, StoreError
from syncd.lock import StoreLock
from syncd.pipeline import run_once
from syncd.store import Store, parse_iso

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Org:
    box: Sandbox
    info: SandboxInfo


@pytest.fixture(scope="module")
def org(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Org]:
    # Unlimited: passes a second apart, test after test, would spend an Enterprise portal's
    # 190 calls per 10 s and wait out its 429s; pacing is the connector's tests' business.
    box = Sandbox(scale=200, directory=tmp_path_factory.mktemp("sandbox-ca"),
                  hubspot_limits="unlimited")
    info = box.start()
    try:
        yield Org(box, info)
    finally:
        box.stop()


@pytest.fixture(autouse=True)
def calm(org: Org) -> Iterator[None]:
    """Each test starts with a well-behaved org and leaves it so."""
    yield
    for emulator in (org.box.hubspot, org.box.salesforce):
        assert emulator is not None
        emulator.faults.latency = emulator.faults.latency_rate = 0.0
    assert org.box.hubspot is not None
    org.box.hubspot.access_token = org.info.hubspot_token


def config_for(org: Org, folder: Path, *, interval: str = "1s") -> Path:
    text = org.box.config_text(org.info)
    text = text.replace('schedule = "*/5 * * * *"', f'interval = "{interval}"')
    text = text.replace("port = 9464", "port = 0")
    path = folder / "config.toml"
    path.write_text(text)
    return path


def settings_for(org: Org, folder: Path) -> Settings:
    return load_settings(config_for(org, folder), environ={})


def factory_for(settings: Settings) -> Callable[[], Mapping[str, Connector]]:
    return lambda: {"hubspot": hubspot_connector(settings),
                    "salesforce": salesforce_connector(settings)}


def slow_down(org: Org, seconds: float) -> None:
    for emulator in (org.box.hubspot, org.box.salesforce):
        assert emulator is not None
        emulator.faults.latency, emulator.faults.latency_rate = seconds, 1.0


@dataclass
class Running:
    daemon: Daemon
    stop: threading.Event
    thread: threading.Thread
    result: list[int]

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(self.daemon.url + path, timeout=10) as answer:
                return answer.status, answer.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def health(self) -> tuple[int, dict[str, Any]]:
        code, body = self.get("/healthz")
        return code, json.loads(body)


@contextmanager
def daemon_thread(settings: Settings,
                  factory: Callable[[], Mapping[str, Connector]] | None = None
                  ) -> Iterator[Running]:
    stop = threading.Event()
    ready: list[Daemon] = []
    result: list[int] = []
    arrived = threading.Event()

    def on_ready(daemon: Daemon) -> None:
        ready.append(daemon)
        arrived.set()

    def target() -> None:
        try:
            result.append(serve(settings, connectors_factory=factory or factory_for(settings),
                                stop=stop, host="127.0.0.1", on_ready=on_ready))
        finally:
            arrived.set()

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    assert arrived.wait(30) and ready, "the daemon did not start"
    running = Running(ready[0], stop, thread, result)
    try:
        yield running
    finally:
        stop.set()
        thread.join(15)
        assert not thread.is_alive(), "the daemon did not stop within 15 s"


def wait_until(condition: Callable[[], bool], seconds: float = 30, what: str = "") -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def runs(path: Path) -> list[dict[str, Any]]:
    store = Store(path)
    try:
        return list(reversed(store.runs(1000)))
    finally:
        store.close()


def counts(path: Path) -> list[tuple[str, str, int]]:
    store = Store(path)
    try:
        return [(c["system"], c["object"], c["rows"]) for c in store.source_counts()]
    finally:
        store.close()


def finished(path: Path, status: str = "ok") -> int:
    return sum(1 for run in runs(path) if run["status"] == status)


def reference_counts(org: Org, folder: Path) -> list[tuple[str, str, int]]:
    """What one uninterrupted pass stores, in a store of its own."""
    folder.mkdir()
    settings = settings_for(org, folder)
    store = Store(settings.store.path)
    try:
        report = run_once(store, factory_for(settings)(), clock=lambda: datetime.now(UTC),
                          lookback=timedelta(minutes=10), budgets={})
        assert report.status == "ok"
    finally:
        store.close()
    return counts(settings.store.path)


def metric_samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


# --- tests -------------------------------------------------------------------------------


def test_passes_run_on_the_interval_and_healthz_and_metrics_answer(
    org: Org, tmp_path: Path
) -> None:
    settings = settings_for(org, tmp_path)
    with daemon_thread(settings) as running:
        wait_until(lambda: finished(settings.store.path) >= 3, what="three passes")
        code, health = running.health()
        assert code == 200 and health["status"] == "ok"
        assert health["last_pass"]["status"] in ("ok", "interrupted")
        code, text = running.get("/metrics")
        assert code == 200
        samples = metric_samples(text)
        assert samples[("syncd_passes_total", (("status", "ok"),))] >= 3
        assert samples[("syncd_rows_pulled_total",
                        (("object", "contacts"), ("system", "hubspot")))] >= 149
        assert samples[("syncd_api_calls_total", (("system", "salesforce"),))] > 0
        assert samples[("syncd_budget_remaining", (("system", "salesforce"),))] > 0
        code, page = running.get("/")
        assert code == 200 and "Recent passes" in page and "OpportunityContactRole" in page
    assert running.result == [0]
    history = runs(settings.store.path)
    assert {run["kind"] for run in history} == {"daemon"}
    # The first pass ran at start; the next ones keep to the 1 s grid that starts then.
    starts = [parse_iso(run["started_at"]) for run in history]
    assert all(later - earlier >= timedelta(seconds=0.9) for earlier, later
               in itertools.pairwise(starts[1:]))


def test_stop_mid_pass_exits_0_in_time_and_the_next_start_loses_nothing(
    org: Org, tmp_path: Path
) -> None:
    expected = reference_counts(org, tmp_path / "reference")
    settings = settings_for(org, tmp_path)
    slow_down(org, 0.05)
    with daemon_thread(settings) as running:
        wait_until(lambda: bool(cursors(settings.store.path)), what="the first stored page")
        asked = time.monotonic()
        running.stop.set()
        running.thread.join(10)
        assert not running.thread.is_alive()
        assert time.monotonic() - asked < 10
    assert running.result == [0]
    first = runs(settings.store.path)
    assert [run["status"] for run in first] == ["interrupted"]
    assert counts(settings.store.path) != expected  # it really stopped part-way

    slow_down(org, 0.0)
    with daemon_thread(settings):
        wait_until(lambda: finished(settings.store.path) >= 1, what="the resumed pass")
    assert counts(settings.store.path) == expected


def cursors(path: Path) -> list[dict[str, Any]]:
    store = Store(path)
    try:
        return store.cursors()
    finally:
        store.close()


def test_failing_pass_turns_healthz_503_with_the_reason_and_the_daemon_keeps_going(
    org: Org, tmp_path: Path
) -> None:
    settings = settings_for(org, tmp_path)
    with daemon_thread(settings) as running:
        wait_until(lambda: running.health()[0] == 200 and
                   running.health()[1]["status"] == "ok", what="a healthy daemon")
        assert org.box.hubspot is not None
        org.box.hubspot.access_token = "pat-na1-rotated"
        wait_until(lambda: running.health()[0] == 503, what="a 503")
        _, health = running.health()
        assert health["status"] == "failing"
        assert "stopped" in health["reason"] and "401" in health["reason"]
        org.box.hubspot.access_token = org.info.hubspot_token
        wait_until(lambda: running.health()[0] == 200, what="recovery")
        samples = metric_samples(running.get("/metrics")[1])
        assert samples[("syncd_passes_total", (("status", "stopped"),))] >= 1


def test_pass_that_raises_is_counted_and_the_daemon_keeps_running(
    org: Org, tmp_path: Path
) -> None:
    settings = settings_for(org, tmp_path)
    calls: list[int] = []

    def flaky() -> Mapping[str, Connector]:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("connector factory blew up")
        return factory_for(settings)()

    with daemon_thread(settings, flaky) as running:
        wait_until(lambda: running.health()[1]["status"] == "failing", what="the failure")
        assert running.health()[1]["reason"] == (
            "pass None failed: RuntimeError: connector factory blew up")
        wait_until(lambda: finished(settings.store.path) >= 1, what="a pass after the crash")
        wait_until(lambda: running.health()[0] == 200, what="recovery")
        samples = metric_samples(running.get("/metrics")[1])
        assert samples[("syncd_passes_total", (("status", "failed"),))] == 1


def test_a_pass_longer_than_the_interval_is_never_started_twice(
    org: Org, tmp_path: Path
) -> None:
    settings = settings_for(org, tmp_path)
    # About 25 HubSpot and 15 Salesforce calls a pass: well over the 1 s interval (the push
    # writes both CRMs side by side, so not every call adds to the pass).
    slow_down(org, 0.08)
    with daemon_thread(settings) as running:
        wait_until(lambda: finished(settings.store.path) >= 3, seconds=60, what="three passes")
        running.stop.set()
    history = [run for run in runs(settings.store.path) if run["finished_at"]]
    spans = [(parse_iso(r["started_at"]), parse_iso(r["finished_at"])) for r in history]
    assert all(end - start > timedelta(seconds=1) for start, end in spans[:3])
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert start >= end, "two passes overlapped"


def test_second_daemon_on_the_same_store_is_refused_naming_the_first(
    org: Org, tmp_path: Path
) -> None:
    settings = settings_for(org, tmp_path)
    refused = rf"is in use by pid {os.getpid()} on host .+ \(syncd run, since .+Z\)\. Stop"
    with daemon_thread(settings), pytest.raises(StoreError, match=refused):
        serve(settings, connectors_factory=factory_for(settings), host="127.0.0.1")


# --- the real process --------------------------------------------------------------------

def daemon_command(config: Path) -> list[str]:
    """`syncd run` as users start it."""
    return [sys.executable, "-m", "syncd", "run", "--config", str(config)]


def test_sigterm_mid_pass_exits_0_within_10_seconds(org: Org, tmp_path: Path) -> None:
    config = config_for(org, tmp_path)
    store_path = tmp_path / "syncd.db"
    slow_down(org, 0.05)
    # A file, not a pipe: nobody reads a pipe while the daemon runs, and a full one blocks it.
    log_file = (tmp_path / "daemon.log").open("w")
    process = subprocess.Popen(
        daemon_command(config), stdout=subprocess.PIPE, stderr=log_file, text=True,
        cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT), "SYNCD_SERVER_HOST":
                           "127.0.0.1", "PYTHONUNBUFFERED": "1"},
    )
    try:
        wait_until(lambda: store_path.exists() and bool(cursors(store_path)),
                   what="the first stored page")
        assert process.poll() is None
        asked = time.monotonic()
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=15)
        took = time.monotonic() - asked
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
        log_file.close()
    err = (tmp_path / "daemon.log").read_text()
    assert process.returncode == 0, err
    assert took < 10
    assert "event=stopping signal=SIGTERM" in err and "Traceback" not in err
    assert [run["status"] for run in runs(store_path)] == ["interrupted"]


def test_port_in_use_is_a_config_error_and_frees_the_store(org: Org, tmp_path: Path) -> None:
    settings = settings_for(org, tmp_path)
    with daemon_thread(settings) as running:
        taken = running.daemon.server.port
        other = tmp_path / "other"
        other.mkdir()
        clash = settings.model_copy(update={
            "store": settings.store.model_copy(update={"path": other / "syncd.db"}),
            "server": settings.server.model_copy(update={"port": taken})})
        with pytest.raises(ConfigError, match=rf"cannot listen on port {taken} "):
            serve(clash, connectors_factory=factory_for(clash), host="127.0.0.1")
    with StoreLock(other / "syncd.db") as lock:
        assert lock.held
