"""The HubSpot connector against the loopback HubSpot, through hubspot-api-client 12.0.0.

Backfill paging and call counts, delta windows, the 10,000-result search cap (split in time,
then by id within one instant), short pages, deletes and merges, nothing-changed costs,
429 and DAILY handling with a fake clock, pacing under Enterprise limits, and batch pushes
with per-record rejections.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from connectors.hubspot.connector import create
from connectors.hubspot.emulator import HubSpotEmulator, HubSpotLimits
from connectors.loopback import Faults, Request, Response, ThrowawayCA
from syncd.config import load_settings
from syncd.connector import Connector, Window
from syncd.errors import BudgetError
from syncd.model import Change, Page, Record

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
LOOKBACK = timedelta(minutes=10)
LIST = "GET /crm/v3/objects/{object_type}"
SEARCH = "POST /crm/v3/objects/{object_type}/search"


@dataclass
class Clock:
    """The emulator's wall clock (record times) and a fake monotonic clock whose sleeps
    only advance it, shared by the connector's pacers and the emulator's rate limiter."""

    now: datetime = T0
    ticks: float = 1000.0
    pauses: list[float] = field(default_factory=list)

    def __call__(self) -> datetime:
        return self.now

    def monotonic(self) -> float:
        return self.ticks

    def sleep(self, seconds: float) -> None:
        self.pauses.append(seconds)
        self.ticks += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def emulator(loopback_ca: ThrowawayCA, clock: Clock) -> Iterator[HubSpotEmulator]:
    with HubSpotEmulator(ca=loopback_ca, clock=clock, monotonic=clock.monotonic,
                         limits=HubSpotLimits.unlimited()) as running:
        yield running


@pytest.fixture
def connect(emulator: HubSpotEmulator, clock: Clock,
            tmp_path: Path) -> Iterator[Callable[..., Connector]]:
    made: list[Connector] = []

    def make(requests_per_10s: int = 1000, daily_budget: float = 1.0) -> Connector:
        path = tmp_path / "config.toml"
        path.write_text(f"""
[hubspot]
base_url = "{emulator.url}"
access_token = "{emulator.access_token}"
ca_bundle = "{emulator.ca_path}"
requests_per_10s = {requests_per_10s}
daily_budget = {daily_budget}
[salesforce]
access_token = "unused"
""", encoding="utf-8")
        settings = load_settings(path, environ={})
        connector = create(settings, sleep=clock.sleep, monotonic=clock.monotonic)
        made.append(connector)
        return connector

    yield make
    for connector in made:
        connector.close()


def window(run_start: datetime, **extra: Any) -> Window:
    return Window(run_start=run_start, lookback=LOOKBACK, **extra)


def records(pages: list[Page], kind: str | None = None) -> list[Record]:
    return [r for page in pages for r in page.records if kind is None or r.object == kind]


def seed_contacts(emulator: HubSpotEmulator, count: int, start: datetime,
                  step: timedelta = timedelta(seconds=1)) -> list[str]:
    with emulator.server.app_lock:
        return [emulator.portal.create("contacts", {"email": f"p{n}@example.com",
                                                    "firstname": f"P{n}"}, at=start + step * n)
                for n in range(count)]


def backfilled(connector: Connector, stream: str = "contacts") -> str:
    """The cursor a completed backfill at T0 leaves."""
    return list(connector.pull(stream, None, window(T0)))[-1].cursor


def statuses(emulator: HubSpotEmulator) -> list[int]:
    return [entry.status for entry in emulator.server.log]


# -- backfill ------------------------------------------------------------------------------


def test_a_backfill_lists_one_hundred_per_page_to_the_end_with_one_call_per_page(
    emulator: HubSpotEmulator, connect: Callable[..., Connector]
) -> None:
    ids = seed_contacts(emulator, 250, T0 - timedelta(days=3))
    company = emulator.portal.create("companies", {"name": "Acme", "domain": "acme.com"})
    emulator.portal.associate("contacts", ids[0], "companies", company, 1)
    pages = list(connect().pull("contacts", None, window(T0)))
    assert [len(page.records) for page in pages] == [100, 100, 50]
    assert [r.id for r in records(pages)] == ids
    assert emulator.calls(LIST) == 4  # three live pages and one (empty) archived page
    assert sum(page.calls for page in pages) == 4
    assert records(pages)[0].fields["associations"] == {
        "companies": [{"id": company, "types": [1, 279]}]}
    assert records(pages)[0].fields["email"] == "p0@example.com"
    assert pages[-1].watermark == T0


def test_a_backfill_brings_archived_records_and_merge_losers_with_their_survivor(
    emulator: HubSpotEmulator, connect: Callable[..., Connector], clock: Clock
) -> None:
    ids = seed_contacts(emulator, 5, T0 - timedelta(days=1))
    emulator.portal.archive("contacts", ids[1], at=T0 - timedelta(hours=2))
    emulator.portal.merge("contacts", ids[2], ids[3], at=T0 - timedelta(hours=1))
    found = {r.id: r for r in records(list(connect().pull("contacts", None, window(T0))))}
    assert found[ids[1]].deleted and found[ids[1]].merged_into is None
    assert found[ids[3]].deleted and found[ids[3]].merged_into == ids[2]
    assert not found[ids[2]].deleted and not found[ids[0]].deleted


# -- deltas --------------------------------------------------------------------------------


def test_a_delta_reads_what_changed_inside_the_window_and_not_after_it(
    emulator: HubSpotEmulator, connect: Callable[..., Connector]
) -> None:
    ids = seed_contacts(emulator, 20, T0 - timedelta(days=2))
    company = emulator.portal.create("companies", {"name": "Acme"}, at=T0 - timedelta(days=2))
    connector = connect()
    cursor = backfilled(connector)
    emulator.portal.update("contacts", ids[3], {"jobtitle": "CTO"}, at=T0 + timedelta(minutes=1))
    emulator.portal.associate("contacts", ids[3], "companies", company, 1)
    emulator.portal.update("contacts", ids[4], {"jobtitle": "CFO"}, at=T0 + timedelta(minutes=7))
    before = emulator.calls("POST /crm/v4/associations")
    pages = list(connector.pull("contacts", cursor, window(T0 + timedelta(minutes=5))))
    (changed,) = records(pages)
    assert changed.id == ids[3] and changed.fields["jobtitle"] == "CTO"
    assert changed.fields["associations"] == {"companies": [{"id": company, "types": [1, 279]}]}
    assert emulator.calls("POST /crm/v4/associations") - before == 1
    assert pages[-1].watermark == T0 + timedelta(minutes=5)


def test_a_delta_reads_associations_once_per_thousand_changes_and_resumes_between_pages(
    emulator: HubSpotEmulator, connect: Callable[..., Connector]
) -> None:
    ids = seed_contacts(emulator, 1_300, T0 - timedelta(days=2))
    company = emulator.portal.create("companies", {"name": "Acme"}, at=T0 - timedelta(days=2))
    emulator.portal.associate("contacts", ids[1_250], "companies", company, 1)
    connector = connect()
    cursor = backfilled(connector)
    for number, record_id in enumerate(ids):
        emulator.portal.update("contacts", record_id, {"jobtitle": f"T{number}"},
                               at=T0 + timedelta(seconds=1 + number // 2))
    searches, links = emulator.calls(SEARCH), emulator.calls("POST /crm/v4/associations")
    later = window(T0 + timedelta(hours=1))
    pages = list(connector.pull("contacts", cursor, later))
    # Seven search answers (200 each, the last 100): five make the first page, two the second.
    assert [len(page.records) for page in pages if page.records] == [1_000, 300]
    assert emulator.calls(SEARCH) - searches == 7
    assert emulator.calls("POST /crm/v4/associations") - links == 2  # 1,300 ids: two reads
    assert sum(page.calls for page in pages) == 7 + 2 + 1  # and one archived sweep
    (linked,) = [r for r in records(pages) if r.id == ids[1_250]]
    assert linked.fields["associations"] == {"companies": [{"id": company, "types": [1, 279]}]}
    # Stopped after the first page, the read resumes after its last instant, none lost.
    first = next(page for page in pages if page.records)
    again = list(connect().pull("contacts", first.cursor, later))
    assert {r.id for r in records(pages)} == {r.id for p in [first, *again] for r in p.records}


def test_more_than_ten_thousand_changes_in_one_window_are_read_by_halving_it(
    emulator: HubSpotEmulator, connect: Callable[..., Connector]
) -> None:
    connector = connect()
    cursor = backfilled(connector)  # an empty portal: the watermark is T0
    ids = seed_contacts(emulator, 10_050, T0, step=timedelta(milliseconds=300))
    pages = list(connector.pull("contacts", cursor, window(T0 + timedelta(hours=1))))
    read = [r.id for r in records(pages)]
    assert sorted(read, key=int) == ids  # every one, none twice
    assert all(status in (200, 207) for status in statuses(emulator))
    assert emulator.calls(SEARCH) <= 10_050 // 200 + 4  # a few probes over the minimum
    watermarks = [page.watermark for page in pages]
    assert watermarks == sorted(watermarks)  # type: ignore[type-var]


def test_more_than_ten_thousand_changes_at_one_instant_are_paged_by_numeric_id(
    emulator: HubSpotEmulator, connect: Callable[..., Connector]
) -> None:
    connector = connect()
    cursor = backfilled(connector)
    # Ids from 999,995,000 up: nine digits, then ten, which sort wrongly as text.
    emulator.portal._ids = itertools.count(999_995_000)
    instant = T0 + timedelta(minutes=3)
    ids = seed_contacts(emulator, 10_100, instant, step=timedelta(0))
    assert {len(i) for i in ids} == {9, 10}
    pages = list(connector.pull("contacts", cursor, window(T0 + timedelta(minutes=5))))
    read = [r.id for r in records(pages)]
    assert read == ids  # in numeric id order, each once
    assert all(status in (200, 207) for status in statuses(emulator))


def test_short_pages_with_a_next_cursor_are_followed_to_the_end(
    emulator: HubSpotEmulator, connect: Callable[..., Connector]
) -> None:
    ids = seed_contacts(emulator, 250, T0 - timedelta(days=2))
    app = emulator.server.app

    def short_pages(request: Request) -> tuple[str, Response]:
        """HubSpot may answer fewer rows than asked and still say there are more."""
        endpoint, answer = app(request)
        body = answer.body
        if endpoint in (LIST, SEARCH) and len(body.get("results", [])) > 40 \
                and body.get("paging"):
            kept, rest = body["results"][:37], body["results"][37:]
            after = rest[0]["id"] if endpoint == LIST else str(
                int((request.json() or {}).get("after") or 0) + 37)
            answer.body = {**body, "results": kept, "paging": {"next": {"after": after}}}
        return endpoint, answer

    emulator.server.app = short_pages
    connector = connect()
    backfill = list(connector.pull("contacts", None, window(T0)))
    assert [r.id for r in records(backfill)] == ids
    for number, record_id in enumerate(ids):
        emulator.portal.update("contacts", record_id, {"jobtitle": "x"},
                               at=T0 + timedelta(seconds=number))
    delta = list(connector.pull("contacts", backfill[-1].cursor, window(T0 + timedelta(hours=1))))
    assert [r.id for r in records(delta)] == ids
    assert emulator.calls(SEARCH) == 3  # 37 + 163 (a short first page), then 50


# -- nothing changed -----------------------------------------------------------------------


def test_a_run_with_nothing_changed_costs_one_call_per_stream_and_one_per_form(
    emulator: HubSpotEmulator, connect: Callable[..., Connector]
) -> None:
    seed_contacts(emulator, 120, T0 - timedelta(days=2))
    portal = emulator.portal
    for name in ("Demo request", "Newsletter"):
        form = portal.add_form(name)
        portal.add_submission(form, {"email": "p1@example.com"},
                              submitted_at=T0 - timedelta(days=1))
    campaign = portal.add_email_campaign("Spring launch")
    portal.add_click(campaign, "p1@example.com", created=T0 - timedelta(days=1))
    connector = connect()
    cursors = {}
    for stream in connector.streams():
        cursors[stream.name] = list(connector.pull(stream.name, None, window(T0)))[-1].cursor
    later = window(T0 + timedelta(hours=1))
    for stream in connector.streams():
        before = emulator.calls()
        pages = list(connector.pull(stream.name, cursors[stream.name], later))
        spent = emulator.calls() - before
        # Submissions: one call per form; the forms stream has just read the list this run.
        expected = {"properties": 3, "form_submissions": 2}.get(stream.name, 1)
        assert (stream.name, spent) == (stream.name, expected)
        assert sum(page.calls for page in pages) == spent
        if stream.incremental:
            assert records(pages) == []
    alone = connect()  # read on its own, the stream pays for the forms list too
    before = emulator.calls()
    list(alone.pull("form_submissions", cursors["form_submissions"], later))
    assert emulator.calls() - before == 1 + 2


def test_marketing_streams_carry_form_names_values_and_campaign_names(
    emulator: HubSpotEmulator, connect: Callable[..., Connector]
) -> None:
    portal = emulator.portal
    form = portal.add_form("Demo request")
    old = portal.add_submission(form, {"email": "old@example.com"},
                                submitted_at=T0 - timedelta(hours=3))
    new = portal.add_submission(form, {"email": "ann@example.com", "firstname": "Ann"},
                                submitted_at=T0 - timedelta(minutes=5), page_url="https://x.io/")
    campaign = portal.add_email_campaign("Spring launch")
    for minutes in (30, 20):
        portal.add_click(campaign, "ann@example.com", created=T0 - timedelta(minutes=minutes))
    connector = connect()
    first = list(connector.pull("form_submissions", None, window(T0 - timedelta(hours=1))))
    assert [r.id for r in records(first)] == [old]
    second = list(connector.pull("form_submissions", first[-1].cursor, window(T0)))
    (submission,) = records(second)
    assert submission.id == new and submission.updated_at == T0 - timedelta(minutes=5)
    assert submission.fields["form_name"] == "Demo request"
    assert submission.fields["values"] == {"email": "ann@example.com", "firstname": "Ann"}
    assert submission.fields["email"] == "ann@example.com"
    events = records(list(connector.pull("email_events", None, window(T0))))
    assert [r.object for r in events] == ["email_campaigns", "email_events", "email_events"]
    assert {r.fields["campaign_name"] for r in events[1:]} == {"Spring launch"}
    assert emulator.calls("GET /email/public/v1/campaigns/") == 1


# -- rate limits and budgets ---------------------------------------------------------------


def fail_first(emulator: HubSpotEmulator, status: int, retry_after: str | None) -> None:
    """Answer the next request only with `status` (and a Retry-After, when given)."""
    answered = itertools.count()
    emulator.faults = Faults(error_rate=1.0, error_statuses=(status,),
                             exempt=lambda request: next(answered) > 0)
    if retry_after is not None:
        build = emulator.server.error_answer

        def with_retry_after(code: int, request: Request) -> Response:
            answer = build(code, request)
            answer.headers["Retry-After"] = retry_after
            return answer

        emulator.server.error_answer = with_retry_after


@pytest.mark.parametrize(("retry_after", "pause"), [(None, 10.0), ("3", 3.0)])
def test_a_ten_secondly_429_is_retried_after_retry_after_or_ten_seconds(
    emulator: HubSpotEmulator, connect: Callable[..., Connector], clock: Clock,
    retry_after: str | None, pause: float
) -> None:
    ids = seed_contacts(emulator, 3, T0 - timedelta(days=1))
    connector = connect()
    fail_first(emulator, 429, retry_after)
    pages = list(connector.pull("contacts", None, window(T0)))
    assert [r.id for r in records(pages)] == ids
    assert clock.pauses == [pause]
    usage = connector.usage()
    assert (usage.retries, usage.throttled, usage.calls) == (1, 1, 3)


def test_a_server_error_is_retried_with_backoff(
    emulator: HubSpotEmulator, connect: Callable[..., Connector], clock: Clock
) -> None:
    seed_contacts(emulator, 3, T0 - timedelta(days=1))
    connector = connect()
    fail_first(emulator, 503, None)
    assert len(records(list(connector.pull("contacts", None, window(T0))))) == 3
    assert len(clock.pauses) == 1 and 0 <= clock.pauses[0] <= 60
    assert connector.usage().throttled == 0


def test_a_daily_429_stops_with_budget_error_and_the_last_cursor_resumes(
    emulator: HubSpotEmulator, connect: Callable[..., Connector], clock: Clock
) -> None:
    ids = seed_contacts(emulator, 350, T0 - timedelta(days=1))
    connector = connect()
    got: list[Page] = []
    with pytest.raises(BudgetError, match="DAILY"):
        for page in connector.pull("contacts", None, window(T0)):
            got.append(page)
            # Another integration spends the portal's day while syncd reads.
            emulator.limits = HubSpotLimits(per_10s=1000, daily=1, search_per_second=100)
    assert [r.id for r in records(got)] == ids[:200]
    assert clock.pauses == [] and connector.usage().throttled == 1  # not retried
    emulator.limits = HubSpotLimits.unlimited()  # the next day, the next run
    rest = list(connect().pull("contacts", got[-1].cursor, window(T0 + timedelta(days=1))))
    assert [r.id for r in records(rest)] == ids[200:]
    assert rest[-1].watermark == T0  # the backfill's own start


def test_enterprise_limits_see_no_429_when_paced_at_190_per_10_seconds(
    emulator: HubSpotEmulator, connect: Callable[..., Connector], clock: Clock
) -> None:
    seed_contacts(emulator, 20_000, T0 - timedelta(days=5), step=timedelta(seconds=5))
    emulator.limits = HubSpotLimits(per_10s=190, daily=1_000_000, search_per_second=5)
    connector = connect(requests_per_10s=190)
    backfill = list(connector.pull("contacts", None, window(T0)))
    for number in range(1_300):  # seven search pages and their association reads
        emulator.portal.update("contacts", str(1001 + number), {"jobtitle": "x"},
                               at=T0 + timedelta(seconds=number))
    delta = list(connector.pull("contacts", backfill[-1].cursor,
                                window(T0 + timedelta(hours=1))))
    assert len(records(delta)) == 1_300
    assert 429 not in statuses(emulator)
    assert connector.usage().throttled == 0
    assert emulator.calls(LIST) >= 200 + 1 and emulator.calls(SEARCH) >= 7
    assert clock.ticks - 1000.0 >= 10.0  # the pacers did wait


# -- push ----------------------------------------------------------------------------------


def change(ref: str, operation: str, fields: dict[str, Any], **extra: Any) -> Change:
    return Change(system="hubspot", object="contacts", ref=ref,
                  operation=operation, fields=fields, **extra)  # type: ignore[arg-type]


def test_push_applies_a_partial_batch_and_reports_each_rejection_in_order(
    emulator: HubSpotEmulator, connect: Callable[..., Connector]
) -> None:
    portal = emulator.portal
    ids = seed_contacts(emulator, 3, T0 - timedelta(days=1))
    company = portal.create("companies", {"name": "Acme"})
    emulator.faults = Faults(reject_record=lambda kind, fields: fields.get("jobtitle") == "no")
    changes = [
        change("a", "update", {"jobtitle": "CTO"}, id=ids[0]),
        change("b", "update", {"jobtitle": "no"}, id=ids[1]),
        change("c", "upsert", {"firstname": "New"}, key_field="email", key="new@example.com",
               associations=(("companies", company, 1),)),
        change("d", "upsert", {"jobtitle": "CEO"}, key_field="email", key="P2@example.com"),
        change("e", "update", {"nosuchproperty": "1"}, id=ids[2]),
    ]
    connector = connect()
    results = connector.push(changes)
    assert [r.ref for r in results] == ["a", "b", "c", "d", "e"]
    assert [r.ok for r in results] == [True, False, True, True, False]
    assert results[1].error_code == "VALIDATION_ERROR"
    assert results[4].error_code == "VALIDATION_ERROR" and "nosuchproperty" in results[4].message
    assert results[2].created and not results[3].created and results[3].id == ids[2]
    assert portal.properties("contacts", ids[0])["jobtitle"] == "CTO"
    assert portal.properties("contacts", ids[2])["jobtitle"] == "CEO"
    created = results[2].id
    assert created is not None
    assert portal.associations("contacts", created, "companies") == [(company, [1, 279])]
    again = connector.push(changes)
    assert [r.ok for r in again] == [True, False, True, True, False]
    assert again[2].id == created and not again[2].created
    assert len(portal.ids("contacts")) == 4


def test_push_refuses_a_create_without_an_idempotency_key_without_calling(
    emulator: HubSpotEmulator, connect: Callable[..., Connector]
) -> None:
    (result,) = connect().push([change("x", "create", {"firstname": "Nobody"})])
    assert not result.ok and result.error_code == "INVALID_CHANGE"
    assert emulator.calls() == 0


def test_describe_reads_property_definitions_with_unique_and_read_only_flags(
    emulator: HubSpotEmulator, connect: Callable[..., Connector]
) -> None:
    emulator.portal.add_property("contacts", "syncd_id", has_unique_value=True)
    schema = connect().describe("contacts")
    assert schema.fields["syncd_id"].unique
    assert not schema.fields["hs_object_id"].updateable
    assert "customer" in schema.fields["lifecyclestage"].options
