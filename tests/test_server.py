"""The daemon's HTTP face: /healthz follows the passes, /metrics carries what a pass did, and
the status page shows the store, escaped. The health state is driven directly (no scheduler),
with a hand-moved clock."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from syncd.metrics import Health, Metrics, PassOutcome
from syncd.model import Page, Record, Usage
from syncd.pipeline import RunReport, StreamReport
from syncd.push import PushReport
from syncd.server import StatusServer, StatusSources, bar_chart_svg
from syncd.store import Store

START = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)
EVIL = '<script>alert("pwned")</script>'


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def outcome(run: int, status: str, finished: datetime, error: str | None = None) -> PassOutcome:
    return PassOutcome(run, finished - timedelta(seconds=30), finished, status, error)


# --- health verdicts ---------------------------------------------------------------------


def test_starting_daemon_answers_200_starting_for_one_interval_then_503() -> None:
    health = Health(started_at=START, interval=5 * MINUTE)
    assert (health.verdict(START + 5 * MINUTE).code, health.verdict(START).state) == (
        200, "starting")
    late = health.verdict(START + 6 * MINUTE)
    assert late.code == 503
    assert late.reason.startswith("no pass has finished since the daemon started")


def test_first_pass_still_storing_pages_keeps_the_daemon_starting() -> None:
    health = Health(started_at=START, interval=5 * MINUTE)
    health.pass_started(START)
    health.page_stored(START + 30 * MINUTE)
    assert health.verdict(START + 35 * MINUTE).state == "starting"
    # A first pass that has stored nothing for two intervals is stuck.
    assert health.verdict(START + 41 * MINUTE).code == 503


def test_healthz_is_ok_within_twice_the_interval_of_a_successful_pass_then_stale() -> None:
    health = Health(started_at=START, interval=5 * MINUTE)
    health.pass_finished(outcome(1, "ok", START + MINUTE))
    assert health.verdict(START + 11 * MINUTE).code == 200
    stale = health.verdict(START + 11 * MINUTE + timedelta(seconds=1))
    assert (stale.code, stale.state) == (503, "stale")
    assert "more than twice the schedule interval (600s) ago" in stale.reason


def test_failed_pass_turns_health_503_with_its_error_and_the_next_success_heals_it() -> None:
    health = Health(started_at=START, interval=5 * MINUTE)
    health.pass_finished(outcome(1, "ok", START + MINUTE))
    health.pass_finished(outcome(2, "stopped", START + 6 * MINUTE,
                                 "HubSpot answered 401 to GET /crm/v3/objects/contacts"))
    failing = health.verdict(START + 6 * MINUTE)
    assert (failing.code, failing.state) == (503, "failing")
    assert failing.reason == "pass 2 stopped: HubSpot answered 401 to GET /crm/v3/objects/contacts"
    health.pass_finished(outcome(3, "ok", START + 11 * MINUTE))
    assert health.verdict(START + 11 * MINUTE).code == 200


def test_interrupted_pass_leaves_the_verdict_to_the_pass_before() -> None:
    health = Health(started_at=START, interval=5 * MINUTE)
    health.pass_finished(outcome(1, "ok", START + MINUTE))
    health.pass_finished(outcome(2, "interrupted", START + 2 * MINUTE))
    verdict = health.verdict(START + 3 * MINUTE)
    assert (verdict.code, verdict.reason) == (200, f"pass 1 succeeded at "
                                                   f"{(START + MINUTE).isoformat()}")
    assert verdict.last is not None and verdict.last.run == 2


def test_long_pass_still_storing_pages_keeps_a_healthy_daemon_ok() -> None:
    health = Health(started_at=START, interval=5 * MINUTE)
    health.pass_finished(outcome(1, "ok", START + MINUTE))
    health.pass_started(START + 5 * MINUTE)
    health.page_stored(START + 20 * MINUTE)
    assert health.verdict(START + 25 * MINUTE).code == 200
    assert health.verdict(START + 31 * MINUTE).code == 503


# --- the HTTP server ---------------------------------------------------------------------


def seeded_store(path: Path) -> None:
    store = Store(path)
    try:
        run = store.begin_run(START, "daemon", {})
        records = [Record("hubspot", "contacts", str(n), START - timedelta(days=n),
                          {"email": f"p{n}@example.com", "firstname": EVIL}) for n in range(1, 4)]
        store.save_page(run, "hubspot", Page("contacts", records, cursor='{"after": "3"}',
                                             watermark=START - timedelta(days=1)))
        store.record_usage(run, Usage("hubspot", calls=7, limit=1000, remaining=993,
                                      retries=2, throttled=1))
        store.finish_run(run, START + MINUTE, "stopped", 3,
                         {"rows": 3, "changed": 3, "pages": 1, "calls_hubspot": 7},
                         f"Salesforce answered 500: {EVIL}")
        again = store.begin_run(START + 2 * MINUTE, "daemon", {})
        store.finish_run(again, START + 3 * MINUTE, "stopped", 3,
                         {"rows": 0, "changed": 0, "pages": 0, "calls_hubspot": 2},
                         f"Salesforce answered 502: {EVIL}")
    finally:
        store.close()


@pytest.fixture
def status(tmp_path: Path) -> Iterator[tuple[StatusServer, Health, Metrics, Clock]]:
    path = tmp_path / "syncd.db"
    seeded_store(path)
    clock = Clock(START)
    health = Health(started_at=START, interval=MINUTE)
    metrics = Metrics()
    sources = StatusSources(path, health, metrics, {"hubspot": 0.5}, clock)
    server = StatusServer(sources, port=0, host="127.0.0.1").start()
    try:
        yield server, health, metrics, clock
    finally:
        server.stop()


def get(url: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:
            return answer.status, answer.headers["Content-Type"], answer.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["Content-Type"], exc.read().decode()


def test_healthz_answers_200_then_503_with_the_reason_as_the_passes_go(
    status: tuple[StatusServer, Health, Metrics, Clock],
) -> None:
    server, health, _, clock = status
    health.pass_finished(outcome(1, "ok", START))
    code, kind, body = get(server.url + "/healthz")
    assert (code, kind) == (200, "application/json")
    answer = json.loads(body)
    assert answer["status"] == "ok"
    assert answer["last_pass"]["run"] == 1 and answer["last_pass"]["status"] == "ok"
    health.pass_finished(outcome(2, "stopped", START + MINUTE, "budget spent"))
    clock.now = START + MINUTE
    code, _, body = get(server.url + "/healthz")
    assert code == 503
    assert json.loads(body)["reason"] == "pass 2 stopped: budget spent"


def test_metrics_parse_and_carry_what_a_pass_did(
    status: tuple[StatusServer, Health, Metrics, Clock],
) -> None:
    server, _, metrics, _ = status
    report = RunReport(run=4, started_at=START, status="ok")
    report.streams = [StreamReport("hubspot", "contacts", pages=2, rows=150),
                      StreamReport("salesforce", "Lead", pages=1, rows=40)]
    report.usage = [Usage("hubspot", calls=12, remaining=249_988, retries=3, throttled=2),
                    Usage("salesforce", calls=5, limit=100_000, remaining=99_000)]
    report.pushed = PushReport(applied={("hubspot", "contacts"): 7},
                               rejected={("salesforce", "Lead"): 2})
    metrics.observe(report, 42.0, START + MINUTE)
    metrics.observe(RunReport(run=5, started_at=START, status="stopped"), 1.0, START + MINUTE)
    code, kind, body = get(server.url + "/metrics")
    assert code == 200 and kind.startswith("text/plain")
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(body) for s in family.samples}
    families = {family.name for family in text_string_to_metric_families(body)}
    assert {"syncd_passes", "syncd_rows_pulled", "syncd_rows_pushed", "syncd_api_calls",
            "syncd_api_throttled", "syncd_api_retries", "syncd_rejected_records",
            "syncd_pass_duration_seconds", "syncd_last_pass_timestamp_seconds",
            "syncd_budget_remaining"} <= families
    assert samples[("syncd_passes_total", (("status", "ok"),))] == 1
    assert samples[("syncd_passes_total", (("status", "stopped"),))] == 1
    assert samples[("syncd_rows_pulled_total",
                    (("object", "contacts"), ("system", "hubspot")))] == 150
    assert samples[("syncd_rows_pulled_total", (("object", "Lead"), ("system", "salesforce")))] \
        == 40
    assert samples[("syncd_api_calls_total", (("system", "hubspot"),))] == 12
    assert samples[("syncd_api_throttled_total", (("system", "hubspot"),))] == 2
    assert samples[("syncd_api_retries_total", (("system", "hubspot"),))] == 3
    assert samples[("syncd_rejected_records_total", (("system", "salesforce"),))] == 2
    assert samples[("syncd_rows_pushed_total",
                    (("object", "contacts"), ("system", "hubspot")))] == 7
    assert samples[("syncd_budget_remaining", (("system", "salesforce"),))] == 99_000
    assert samples[("syncd_pass_duration_seconds_count", ())] == 2
    assert samples[("syncd_pass_duration_seconds_sum", ())] == 43.0
    assert samples[("syncd_last_pass_timestamp_seconds", ())] == (START + MINUTE).timestamp()


def test_status_page_renders_the_store_with_error_texts_escaped(
    status: tuple[StatusServer, Health, Metrics, Clock],
) -> None:
    server, health, _, _ = status
    health.pass_finished(outcome(2, "stopped", START + 3 * MINUTE, f"boom {EVIL}"))
    code, kind, page = get(server.url + "/")
    assert (code, kind) == (200, "text/html; charset=utf-8")
    assert '<meta http-equiv="refresh" content="30">' in page
    assert "<script" not in page
    assert "&lt;script&gt;alert(&quot;pwned&quot;)&lt;/script&gt;" in page
    # Both 5xx errors are one category, counted twice, shown by the latest wording.
    errors = page.split("Errors by category")[1].split("</section>")[0]
    assert "<td>2</td>" in errors and "answered 502" in errors and "answered 500" not in errors
    assert "contacts" in page and '{&quot;after&quot;: &quot;3&quot;}' not in page
    assert "2026-04-30T12:00:00.000Z" in page  # the cursor's watermark
    assert "500 (0.5 of 1,000)" in page  # syncd's daily budget: share x the CRM's limit
    assert page.count("<svg") == 2 and "API calls per pass" in page
    assert "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")


def test_unknown_paths_answer_404(status: tuple[StatusServer, Health, Metrics, Clock]) -> None:
    server, *_ = status
    assert get(server.url + "/admin")[0] == 404


def test_bar_chart_stacks_each_bar_by_system_and_escapes_labels() -> None:
    svg = bar_chart_svg("Calls", [("run 1", [("hubspot", 30.0), ("salesforce", 10.0)]),
                                  ("<b>run 2</b>", [("hubspot", 20.0)])])
    assert svg.count("<rect") == 3
    assert 'width="420.0"' not in svg  # stacked: no single part spans the whole width
    assert 'width="315.0"' in svg and 'width="105.0"' in svg  # 30 and 10 of 40 over 420 px
    assert "&lt;b&gt;run 2&lt;/b&gt;" in svg and "<b>" not in svg
