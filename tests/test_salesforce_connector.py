"""The Salesforce connector against the loopback Salesforce, through simple-salesforce.

Every test drives the real client library over HTTPS and asserts on what the org holds and on
the calls the emulator counted; sleeps are recorded, never slept.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import responses

import connectors.salesforce.connector as salesforce_connector
from connectors.loopback import ThrowawayCA
from connectors.salesforce.connector import SalesforceConnector, create
from connectors.salesforce.emulator import SalesforceEmulator
from syncd.config import Settings, load_settings
from syncd.connector import Window
from syncd.errors import AuthError, BudgetError, ConfigError
from syncd.model import Change, Page, Record

TOKEN = "00D000000000001!AQtesttoken"
T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
LOOKBACK = timedelta(minutes=10)
QUERY = "GET /services/data/v{version}/queryAll"
QUERY_MORE = "GET /services/data/v{version}/query/{locator}"


class Clock:
    """A fake monotonic clock that moves only when a test moves it."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Sleeps(list[float]):
    """A fake `sleep` that remembers every pause asked for."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def org(loopback_ca: ThrowawayCA) -> Iterator[SalesforceEmulator]:
    with SalesforceEmulator(ca=loopback_ca, access_token=TOKEN) as emulator:
        yield emulator


def settings_for(tmp_path: Path, emulator: SalesforceEmulator, extra: str = "") -> Settings:
    body = f"""
[hubspot]
access_token = "unused"
[salesforce]
instance_url = "{emulator.url}"
ca_bundle = "{emulator.ca_path}"
{extra or f'access_token = "{TOKEN}"'}
"""
    path = tmp_path / "config.toml"
    path.write_text(body, encoding="utf-8")
    return load_settings(path, environ={})


def connector_for(
    tmp_path: Path, emulator: SalesforceEmulator, extra: str = "", **options: Any
) -> tuple[SalesforceConnector, Sleeps]:
    sleeps = Sleeps()
    return SalesforceConnector(settings_for(tmp_path, emulator, extra), sleep=sleeps,
                               **options), sleeps


def seed_leads(emulator: SalesforceEmulator, count: int, start: datetime,
               step: timedelta = timedelta(seconds=1)) -> list[str]:
    with emulator.server.app_lock:
        return [
            emulator.org.insert(
                "Lead", {"LastName": f"Person {n}", "Company": "Acme", "Email": f"p{n}@x.test",
                         "Title": None if n % 3 else "VP"},
                at=start + step * n,
            )
            for n in range(count)
        ]


def window(run_start: datetime, **extra: Any) -> Window:
    return Window(run_start=run_start, lookback=LOOKBACK, **extra)


def rows(pages: list[Page]) -> dict[str, Record]:
    """Records by id, the last read winning, as the store keeps them."""
    return {record.id: record for page in pages for record in page.records}


def test_a_backfill_pages_by_two_thousand_with_one_call_a_page(
    org: SalesforceEmulator, tmp_path: Path
) -> None:
    ids = seed_leads(org, 4_500, T0 - timedelta(days=5))
    connector, _ = connector_for(tmp_path, org)
    pages = list(connector.pull("Lead", None, window(T0)))
    assert [len(page.records) for page in pages] == [2_000, 2_000, 500]
    assert [page.calls for page in pages] == [1, 1, 1]
    assert org.calls(QUERY) == 1 and org.calls(QUERY_MORE) == 2 and org.calls() == 3
    assert sorted(rows(pages)) == sorted(ids)
    assert {page.total for page in pages} == {4_500}
    marks = [page.watermark for page in pages if page.watermark is not None]
    assert len(marks) == len(pages) and marks == sorted(marks) and marks[-1] == T0
    usage = connector.usage()
    assert usage.calls == 3 and usage.limit == org.daily_limit
    assert usage.remaining == org.daily_limit - 3
    assert usage.details == {"GET queryAll": 1, "GET query/{id}": 2}


def test_an_incremental_window_takes_its_lower_bound_and_leaves_its_upper_to_the_millisecond(
    org: SalesforceEmulator, tmp_path: Path
) -> None:
    connector, _ = connector_for(tmp_path, org)
    (first,) = connector.pull("Lead", None, window(T0))
    run_start = T0 + timedelta(hours=1)
    lower = T0 - LOOKBACK
    ms = timedelta(milliseconds=1)
    with org.server.app_lock:
        made = {
            name: org.org.insert("Lead", {"LastName": name, "Company": "Acme"}, at=moment)
            for name, moment in [("before", lower - ms), ("at lower", lower),
                                 ("last in", run_start - ms), ("at upper", run_start)]
        }
    pages = list(connector.pull("Lead", first.cursor, window(run_start)))
    assert set(rows(pages)) == {made["at lower"], made["last in"]}
    assert pages[-1].watermark == run_start


def test_since_the_year_one_reads_everything_through_a_four_digit_soql_year(
    org: SalesforceEmulator, tmp_path: Path
) -> None:
    """`syncd run --once --since 0001-01-01`: strftime's %Y wrote the year as "1", a literal
    SOQL refuses (MALFORMED_QUERY)."""
    ids = seed_leads(org, 3, T0 - timedelta(days=5))
    connector, _ = connector_for(tmp_path, org)
    (first,) = connector.pull("Lead", None, window(T0))
    since = datetime(1, 1, 1, tzinfo=UTC)
    pages = list(connector.pull("Lead", first.cursor, window(T0, since=since)))
    assert sorted(rows(pages)) == sorted(ids)


def test_deleted_merged_and_converted_leads_arrive(org: SalesforceEmulator, tmp_path: Path) -> None:
    ids = seed_leads(org, 6, T0 - timedelta(days=1))
    connector, _ = connector_for(tmp_path, org)
    (backfill,) = connector.pull("Lead", None, window(T0))
    with org.server.app_lock:
        org.org.delete("Lead", ids[0], at=T0 + timedelta(minutes=1))
        org.org.merge("Lead", ids[1], ids[2], at=T0 + timedelta(minutes=2))
        converted = org.org.convert_lead(ids[3], opportunity_name="Acme deal",
                                         at=T0 + timedelta(minutes=3))
    run_start = T0 + timedelta(hours=1)
    read = rows(list(connector.pull("Lead", backfill.cursor, window(run_start))))
    assert read[ids[0]].deleted and read[ids[0]].merged_into is None
    assert read[ids[2]].deleted and read[ids[2]].merged_into == ids[1]
    lead = read[ids[3]].fields
    assert lead["IsConverted"] is True and lead["ConvertedContactId"] == converted["contactId"]
    assert lead["ConvertedOpportunityId"] == converted["opportunityId"]
    assert lead["ConvertedAccountId"] == converted["accountId"]
    contacts = rows(list(connector.pull("Contact", None, window(run_start))))
    assert set(contacts) == {converted["contactId"]}


def test_nothing_changed_costs_one_call_per_stream(org: SalesforceEmulator, tmp_path: Path) -> None:
    seed_leads(org, 30, T0 - timedelta(days=2))
    with org.server.app_lock:
        org.org.insert("Account", {"Name": "Acme"}, at=T0 - timedelta(days=1))
    connector, _ = connector_for(tmp_path, org)
    cursors = {}
    for stream in connector.streams():
        cursors[stream.name] = list(connector.pull(stream.name, None, window(T0)))[-1].cursor
    before = org.calls()
    later = T0 + timedelta(hours=1)
    for name, cursor in cursors.items():
        (page,) = connector.pull(name, cursor, window(later))
        assert page.records == [] and page.watermark == later and page.calls == 1
    assert org.calls() - before == len(cursors) == 10


@pytest.mark.parametrize("sobject", ["Lead", "Opportunity"])
def test_a_read_above_the_bulk_threshold_goes_on_by_bulk_and_reads_the_same_rows(
    org: SalesforceEmulator, tmp_path: Path, sobject: str
) -> None:
    start = T0 - timedelta(days=3)
    with org.server.app_lock:
        for n in range(2_300):
            fields: dict[str, Any] = {"Name": f"Deal {n}", "StageName": "Closed Won",
                                      "CloseDate": "2026-05-01", "Amount": 1000 + n * 0.5}
            if sobject == "Lead":
                fields = {"LastName": f"P{n}", "Company": "Acme", "Title": None if n % 2 else "VP"}
            org.org.insert(sobject, fields, at=start + timedelta(seconds=n // 3))
    rest, _ = connector_for(tmp_path, org)
    by_rest = rows(list(rest.pull(sobject, None, window(T0))))
    bulk, _ = connector_for(tmp_path, org, "bulk_threshold = 1000\n" f'access_token = "{TOKEN}"',
                            bulk_page_size=200)
    jobs = org.calls("POST /services/data/v{version}/jobs/query")
    pages = list(bulk.pull(sobject, None, window(T0)))
    assert org.calls("POST /services/data/v{version}/jobs/query") == jobs + 1
    assert len(pages[0].records) == 2_000 and all(len(p.records) <= 200 for p in pages[1:])
    by_bulk = rows(pages)
    assert by_bulk.keys() == by_rest.keys()
    assert all(by_bulk[i].fields == by_rest[i].fields for i in by_rest)
    marks = [page.watermark for page in pages if page.watermark is not None]
    assert len(marks) == len(pages) and marks == sorted(marks) and marks[-1] == T0


def test_a_bulk_read_stopped_after_a_page_resumes_at_its_results_locator(
    org: SalesforceEmulator, tmp_path: Path
) -> None:
    ids = seed_leads(org, 2_600, T0 - timedelta(days=3))
    extra = "bulk_threshold = 1000\n" f'access_token = "{TOKEN}"'
    first, _ = connector_for(tmp_path, org, extra, bulk_page_size=250)
    stream = first.pull("Lead", None, window(T0))
    kept = [next(stream), next(stream)]  # the REST page, then the first Bulk page
    resumed, _ = connector_for(tmp_path, org, extra, bulk_page_size=250)
    jobs = org.calls("POST /services/data/v{version}/jobs/query")
    rest = list(resumed.pull("Lead", kept[-1].cursor, window(T0)))
    assert org.calls("POST /services/data/v{version}/jobs/query") == jobs  # same job, go on
    read = [r.id for page in kept + rest for r in page.records]
    # Bulk goes on from the REST page's last stamp (>=): that one row is read twice, no other.
    assert set(read) == set(ids) and len(read) == len(ids) + 1


def test_a_bulk_results_call_is_stored_in_slices_and_resumes_inside_one(
    org: SalesforceEmulator, tmp_path: Path
) -> None:
    ids = seed_leads(org, 3_000, T0 - timedelta(days=3))
    extra = "bulk_threshold = 1000\n" f'access_token = "{TOKEN}"'
    options = {"bulk_page_size": 600, "bulk_slice": 250}
    first, _ = connector_for(tmp_path, org, extra, **options)
    stream = first.pull("Lead", None, window(T0))
    # The REST page, then two slices of the first results call (600 rows: 250, 250, 100).
    kept = [next(stream) for _ in range(3)]
    assert [len(p.records) for p in kept] == [2_000, 250, 250]
    assert [p.calls for p in kept[1:]] == [4, 0]  # describe, job, status, results; then none
    resumed, _ = connector_for(tmp_path, org, extra, **options)
    results = org.calls("GET /services/data/v{version}/jobs/query/{job_id}/results")
    rest = list(resumed.pull("Lead", kept[-1].cursor, window(T0)))
    # The results call is read again and its first 500 rows skipped; then the last 401 (the
    # job reads from the REST page's last stamp, >=, so that row comes twice).
    assert [len(p.records) for p in rest] == [100, 250, 151]
    assert org.calls("GET /services/data/v{version}/jobs/query/{job_id}/results") \
        == results + 2
    read = [r.id for page in kept + rest for r in page.records]
    assert set(read) == set(ids) and len(read) == len(ids) + 1
    assert rest[-1].watermark == T0 and '"read":null' in rest[-1].cursor


def test_a_misspelled_field_is_one_clear_line_from_one_describe(
    org: SalesforceEmulator, tmp_path: Path
) -> None:
    settings = settings_for(tmp_path, org)
    connector = create(settings, fields={"Lead": ["LastName", "Emial"]}, sleep=Sleeps())
    with pytest.raises(ConfigError) as caught:
        list(connector.pull("Lead", None, window(T0)))
    assert caught.value.lines() == [
        'Salesforce Lead has no field "Emial" (requested for the Lead stream). '
        'Did you mean "Email"?'
    ]
    with pytest.raises(ConfigError):
        connector.describe("Lead")
    assert org.calls("GET /services/data/v{version}/sobjects/{sobject}/describe") == 1


def test_describe_gives_the_live_schema_when_every_field_exists(
    org: SalesforceEmulator, tmp_path: Path
) -> None:
    connector, _ = connector_for(tmp_path, org)
    schema = connector.describe("Lead")
    assert schema.fields["Status"].options[0] == "Open - Not Contacted"
    assert schema.fields["Syncd_Id__c"].unique and not schema.fields["IsConverted"].updateable


def jwt_extra(tmp_path: Path, emulator: SalesforceEmulator, private: bytes) -> str:
    key = tmp_path / "server.key"
    key.write_bytes(private)
    return (f'auth = "jwt"\nconsumer_key = "{emulator.consumer_key}"\n'
            f'username = "{emulator.username}"\nprivate_key_file = "{key}"\n'
            f'login_url = "{emulator.url}"')


def client_credentials_extra(tmp_path: Path, emulator: SalesforceEmulator, _: bytes) -> str:
    return (f'auth = "client_credentials"\nclient_id = "{emulator.client_id}"\n'
            f'client_secret = "{emulator.client_secret}"')


@pytest.mark.parametrize("flow", ["jwt_extra", "client_credentials_extra", "password_extra"])
def test_an_expired_session_mid_run_is_renewed_once_and_the_read_goes_on(
    loopback_ca: ThrowawayCA, tmp_path: Path, flow: str
) -> None:
    private, public = SalesforceEmulator.make_jwt_key_pair()
    # The org's real clock: the emulator checks the assertion's expiry against it.
    with SalesforceEmulator(ca=loopback_ca, jwt_public_key_pem=public) as emulator:
        ids = seed_leads(emulator, 4_100, T0 - timedelta(days=3))
        extra = globals()[flow](tmp_path, emulator, private)
        connector, _ = connector_for(tmp_path, emulator, extra)
        stream = connector.pull("Lead", None, window(T0))
        first = next(stream)
        emulator.expire_tokens()
        rest = list(stream)
        assert sorted(rows([first, *rest])) == sorted(ids)
        assert emulator.calls("POST /services/oauth2/token") == 2
        assert emulator.calls(QUERY_MORE) == 3  # the refused page, then two that were answered


def test_an_expired_fixed_token_is_an_auth_error_that_names_no_token(
    org: SalesforceEmulator, tmp_path: Path
) -> None:
    seed_leads(org, 2_100, T0 - timedelta(days=1))
    connector, _ = connector_for(tmp_path, org)
    stream = connector.pull("Lead", None, window(T0))
    next(stream)
    org.expire_tokens()
    with pytest.raises(AuthError) as caught:
        next(stream)
    assert "401" in str(caught.value) and TOKEN not in str(caught.value)
    assert caught.value.system == "salesforce" and "?" not in caught.value.url


def test_the_org_limit_spent_mid_run_stops_with_a_budget_error_after_the_pages_before(
    org: SalesforceEmulator, tmp_path: Path
) -> None:
    ids = seed_leads(org, 4_500, T0 - timedelta(days=2))
    extra = f'access_token = "{TOKEN}"\ndaily_budget = 1.0'
    clock = Clock()
    connector, sleeps = connector_for(tmp_path, org, extra, monotonic=clock)
    stream = connector.pull("Lead", None, window(T0))
    first = next(stream)
    org.daily_limit = org.api_usage  # REQUEST_LIMIT_EXCEEDED from the next call on
    with pytest.raises(BudgetError) as caught:
        next(stream)
    assert "REQUEST_LIMIT_EXCEEDED" in str(caught.value) and sleeps == []
    assert org.calls() == 2  # the first page, then the one refused
    org.daily_limit, clock.now = 100_000, 86_400.0  # a new day
    rest = list(connector.pull("Lead", first.cursor, window(T0 + timedelta(hours=1))))
    assert sorted(rows([first, *rest])) == sorted(ids)


def test_injected_503s_are_retried_with_backoff_and_the_read_completes(
    org: SalesforceEmulator, tmp_path: Path
) -> None:
    ids = seed_leads(org, 9_000, T0 - timedelta(days=2))
    org.faults.error_rate, org.faults.error_statuses = 0.4, (503,)
    connector, sleeps = connector_for(tmp_path, org)
    pages = list(connector.pull("Lead", None, window(T0)))
    assert sorted(rows(pages)) == sorted(ids)
    injected = org.calls("(injected)")
    assert injected > 0 and len(sleeps) == injected == connector.usage().retries
    assert sum(page.calls for page in pages) == org.calls()


def test_a_collection_update_refuses_a_duplicate_while_its_batch_mates_land(
    org: SalesforceEmulator, tmp_path: Path
) -> None:
    ids = seed_leads(org, 250, T0 - timedelta(days=1))
    with org.server.app_lock:
        org.org.update("Lead", ids[0], {"Syncd_Id__c": "person-0"})
    connector, _ = connector_for(tmp_path, org)
    changes = [
        Change("salesforce", "Lead", f"r{n}", "update", {"Title": f"Title {n}"}, id=lead)
        for n, lead in enumerate(ids)
    ]
    changes[7] = Change("salesforce", "Lead", "dup", "update", {"Syncd_Id__c": "person-0"},
                        id=ids[7])
    results = connector.push(changes)
    assert [r.ref for r in results] == [c.ref for c in changes]
    assert results[7].ok is False and results[7].error_code == "DUPLICATE_VALUE"
    assert "duplicate value found" in results[7].message
    assert all(r.ok for n, r in enumerate(results) if n != 7)
    assert org.calls("PATCH /services/data/v{version}/composite/sobjects") == 2  # 200 + 50
    assert org.org.get("Lead", ids[249])["Title"] == "Title 249"
    assert org.org.get("Lead", ids[7])["Syncd_Id__c"] is None


def upserts(count: int, prefix: str = "") -> list[Change]:
    return [
        Change("salesforce", "Lead", f"u{n}", "upsert",
               {"LastName": f"{prefix}Upserted {n}", "Company": "Acme", "Email": f"u{n}@x.test"},
               key_field="Syncd_Id__c", key=f"person-{n}")
        for n in range(count)
    ]


def syncd_leads(emulator: SalesforceEmulator) -> list[dict[str, Any]]:
    return [lead for lead in emulator.org.records("Lead") if lead["Syncd_Id__c"]]


def test_upserting_twice_leaves_the_org_as_upserting_once(
    org: SalesforceEmulator, tmp_path: Path
) -> None:
    connector, _ = connector_for(tmp_path, org)
    first = connector.push(upserts(3))
    again = connector.push(upserts(3))
    assert [r.created for r in first] == [True] * 3 and [r.created for r in again] == [False] * 3
    assert [r.id for r in first] == [r.id for r in again] and all(r.ok for r in again)
    assert len(syncd_leads(org)) == 3
    assert org.calls("PATCH /services/data/v{version}/composite/sobjects/{sobject}/{field}") == 2


def test_an_upsert_above_the_bulk_threshold_goes_by_an_ingest_job(
    org: SalesforceEmulator, tmp_path: Path
) -> None:
    """With Lead assignment rules off (on, Lead upserts stay on Collections: see below)."""
    extra = f'access_token = "{TOKEN}"\nbulk_threshold = 5'
    connector, sleeps = connector_for(tmp_path, org, extra, auto_assign_leads=False)
    changes = upserts(8)
    changes[4] = Change("salesforce", "Lead", "u4", "upsert", {"LastName": None, "Company": "X"},
                        key_field="Syncd_Id__c", key="person-4")
    results = connector.push(changes)
    assert org.calls("POST /services/data/v{version}/jobs/ingest") == 1
    assert [r.ok for r in results] == [True] * 4 + [False] + [True] * 3
    assert results[4].error_code == "REQUIRED_FIELD_MISSING"
    assert {lead["Syncd_Id__c"] for lead in syncd_leads(org)} == {
        f"person-{n}" for n in range(8) if n != 4
    }
    again = connector.push(upserts(8, prefix="Re-"))
    assert [r.created for r in again] == [False] * 4 + [True] + [False] * 3
    assert len(syncd_leads(org)) == 8 and sleeps == []


def test_updates_above_the_bulk_threshold_go_by_an_ingest_job_with_per_record_results(
    org: SalesforceEmulator, tmp_path: Path
) -> None:
    ids = seed_leads(org, 7, T0 - timedelta(days=1))
    connector, _ = connector_for(tmp_path, org, f'access_token = "{TOKEN}"\nbulk_threshold = 5')
    changes = [Change("salesforce", "Lead", f"c{n}", "update", {"Title": f"Title {n}"},
                      id=record_id) for n, record_id in enumerate(ids)]
    changes[2] = Change("salesforce", "Lead", "c2", "update", {"LastName": None}, id=ids[2])
    results = connector.push(changes)
    assert org.calls("POST /services/data/v{version}/jobs/ingest") == 1
    assert org.calls("PATCH /services/data/v{version}/composite/sobjects") == 0
    assert [r.ok for r in results] == [True, True, False, True, True, True, True]
    assert results[2].error_code == "REQUIRED_FIELD_MISSING"
    assert [org.org.get("Lead", i)["Title"] for i in ids] == [
        None if n == 2 else f"Title {n}" for n in range(7)]
    assert org.org.get("Lead", ids[2])["LastName"] == "Person 2"  # the refused row: untouched


def test_an_ingest_upload_over_the_size_limit_goes_in_smaller_jobs(
    org: SalesforceEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """simple-salesforce refuses an upload over 100 MB: long values split a job in halves, and
    a row too large alone is refused with its reason while the others land."""
    ids = seed_leads(org, 8, T0 - timedelta(days=1))
    connector, _ = connector_for(tmp_path, org, f'access_token = "{TOKEN}"\nbulk_threshold = 5')
    monkeypatch.setattr(salesforce_connector, "UPLOAD_LIMIT", 200)
    changes = [Change("salesforce", "Lead", f"c{n}", "update", {"Title": f"T{n}"}, id=record_id)
               for n, record_id in enumerate(ids)]
    changes[5] = Change("salesforce", "Lead", "c5", "update", {"Title": "x" * 250}, id=ids[5])
    results = connector.push(changes)
    assert org.calls("POST /services/data/v{version}/jobs/ingest") > 1
    assert [r.ok for r in results] == [True] * 5 + [False] + [True] * 2
    assert results[5].error_code == "BULK_UPLOAD_TOO_LARGE"
    assert [org.org.get("Lead", i)["Title"] for n, i in enumerate(ids) if n != 5] == [
        f"T{n}" for n in range(8) if n != 5]


def test_an_ingest_job_that_fails_as_a_whole_parks_every_row_with_the_reason(
    org: SalesforceEmulator, tmp_path: Path
) -> None:
    """As a Collections request refused whole: the rows are parked, the pass goes on."""
    ids = seed_leads(org, 6, T0 - timedelta(days=1))
    connector, _ = connector_for(tmp_path, org, f'access_token = "{TOKEN}"\nbulk_threshold = 5')
    changes = [Change("salesforce", "Lead", f"c{n}", "update", {"No_Such_Field__c": "x"},
                      id=record_id) for n, record_id in enumerate(ids)]
    results = connector.push(changes)
    assert org.calls("POST /services/data/v{version}/jobs/ingest") == 1
    assert {(r.ok, r.error_code) for r in results} == {(False, "JOB_FAILED")}
    assert all("No_Such_Field__c" in r.message for r in results)


def test_lead_upserts_stay_on_collections_above_the_threshold_while_assignment_rules_run(
    org: SalesforceEmulator, tmp_path: Path
) -> None:
    connector, _ = connector_for(tmp_path, org, f'access_token = "{TOKEN}"\nbulk_threshold = 5')
    assert connector.push_chunk("Lead", "upsert", 8) is None
    results = connector.push(upserts(8))
    assert all(r.ok and r.created for r in results)
    assert org.calls("POST /services/data/v{version}/jobs/ingest") == 0
    assert org.calls("PATCH /services/data/v{version}/composite/sobjects/{sobject}/{field}") == 1


@pytest.mark.parametrize(("threshold", "pending", "chunk"), [
    (10_000, 10_000, None),  # not above the threshold: push's own chunks
    (10_000, 10_001, 10_001),  # one job
    (10_000, 50_000, 16_667),  # three jobs of about equal size, each above the threshold
    (100, 50_000, 16_667),  # jobs of at most BULK_JOB_ROWS (20,000)
    (30_000, 70_000, 35_000),  # at most twice the threshold, where that is more
])
def test_push_chunk_asks_for_jobs_each_above_the_threshold(
    tmp_path: Path, threshold: int, pending: int, chunk: int | None
) -> None:
    connector, _ = fake_connector(tmp_path, f"bulk_threshold = {threshold}")
    assert connector.push_chunk("Contact", "update", pending) == chunk
    if chunk is not None:
        sizes = [min(chunk, pending - start) for start in range(0, pending, chunk)]
        most = max(salesforce_connector.BULK_JOB_ROWS, 2 * threshold + 2)
        assert min(sizes) > threshold and max(sizes) <= most


def password_extra(tmp_path: Path, emulator: SalesforceEmulator, _: bytes) -> str:
    return (f'auth = "password"\nclient_id = "{emulator.client_id}"\n'
            f'client_secret = "{emulator.client_secret}"\nusername = "{emulator.username}"\n'
            f'password = "{emulator.password}"\nlogin_url = "{emulator.url}"')


def test_the_password_flow_logs_in_before_the_first_call(
    org: SalesforceEmulator, tmp_path: Path
) -> None:
    ids = seed_leads(org, 3, T0 - timedelta(days=1))
    connector, _ = connector_for(tmp_path, org, password_extra(tmp_path, org, b""))
    (page,) = connector.pull("Lead", None, window(T0))
    assert sorted(r.id for r in page.records) == sorted(ids)
    assert org.calls("POST /services/oauth2/token") == 1 and page.calls == 2


# -- what the emulator cannot show: request headers and a real 429 (``responses``) --

FAKE = "https://example.my.salesforce.com"


def fake_connector(
    tmp_path: Path, extra: str = "", **options: Any
) -> tuple[SalesforceConnector, Sleeps]:
    path = tmp_path / "config.toml"
    path.write_text(f'[hubspot]\naccess_token = "unused"\n[salesforce]\ninstance_url = "{FAKE}"'
                    f'\naccess_token = "{TOKEN}"\n{extra}\n', encoding="utf-8")
    sleeps = Sleeps()
    return SalesforceConnector(load_settings(path, environ={}), sleep=sleeps, **options), sleeps


@pytest.mark.parametrize(("auto_assign", "header"), [(True, "TRUE"), (False, "FALSE")])
def test_lead_upserts_carry_the_auto_assign_header_and_contacts_do_not(
    tmp_path: Path, auto_assign: bool, header: str
) -> None:
    connector, _ = fake_connector(tmp_path, auto_assign_leads=auto_assign)
    answer = [{"id": "00Q000000000001AAA", "success": True, "errors": [], "created": True}]
    with responses.RequestsMock() as mock:
        for sobject in ("Lead", "Contact"):
            mock.add(responses.PATCH,
                     f"{FAKE}/services/data/v59.0/composite/sobjects/{sobject}/Syncd_Id__c",
                     json=answer)
        connector.push([
            Change("salesforce", sobject, sobject, "upsert", {"LastName": "X"},
                   key_field="Syncd_Id__c", key="p-1")
            for sobject in ("Lead", "Contact")
        ])
        lead, contact = (call.request for call in mock.calls)
    assert lead.headers["Sforce-Auto-Assign"] == header
    assert "Sforce-Auto-Assign" not in contact.headers
    assert json.loads(lead.body or b"")["records"] == [
        {"attributes": {"type": "Lead"}, "LastName": "X", "Syncd_Id__c": "p-1"}
    ]


def test_a_429_waits_its_retry_after_and_counts_as_throttled(tmp_path: Path) -> None:
    connector, sleeps = fake_connector(tmp_path)
    url = f"{FAKE}/services/data/v59.0/queryAll/"
    empty = {"totalSize": 0, "done": True, "records": []}
    with responses.RequestsMock() as mock:
        mock.add(responses.GET, url, status=429, headers={"Retry-After": "7"},
                 json=[{"errorCode": "REQUEST_LIMIT_EXCEEDED", "message": "slow down"}])
        mock.add(responses.GET, url, json=empty,
                 headers={"Sforce-Limit-Info": "api-usage=25/15000"})
        (page,) = connector.pull("Task", None, window(T0))
    assert page.records == [] and page.calls == 2 and sleeps == [7.0]
    usage = connector.usage()
    assert (usage.throttled, usage.retries, usage.limit, usage.remaining) == (1, 1, 15000, 14975)
