"""The HubSpot emulator driven by the real hubspot-api-client 12.0.0 (and urllib3 where the
SDK has no method), checked against the wire reference: paging, batches and 207s, search
rules and limits, associations, properties, pipelines, forms, email events, auth, rate limits,
the lifecycle forward-only rule and injected faults."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import hubspot
import pytest
import urllib3
from hubspot.crm.associations.v4 import (
    AssociationSpec,
    BatchInputPublicFetchAssociationsBatchRequest,
)
from hubspot.crm.contacts import (
    BatchInputSimplePublicObjectBatchInput,
    BatchInputSimplePublicObjectBatchInputUpsert,
    BatchReadInputSimplePublicObjectId,
    BatchResponseSimplePublicObjectWithErrors,
    PublicGdprDeleteInput,
    PublicMergeInput,
    PublicObjectSearchRequest,
    SimplePublicObjectInput,
    SimplePublicObjectInputForCreate,
)
from hubspot.crm.contacts.exceptions import (
    ApiException,
    NotFoundException,
    ServiceException,
    UnauthorizedException,
)
from hubspot.crm.properties import PropertyCreate

from connectors.hubspot.emulator import HubSpotEmulator, HubSpotLimits
from connectors.loopback import Faults, ThrowawayCA

T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)


class FakeMonotonic:
    """A monotonic clock the test moves by hand: rate-limit windows without sleeping."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def client_for(emulator: HubSpotEmulator, token: str | None = None) -> Any:
    return hubspot.Client.create(access_token=token or emulator.access_token,
                                 host=emulator.url, ssl_ca_cert=str(emulator.ca_path))


def raw_get(emulator: HubSpotEmulator, path: str) -> Any:
    """A GET through urllib3 for endpoints the SDK has no method for; parsed JSON body."""
    pool = urllib3.PoolManager(ca_certs=str(emulator.ca_path))
    answer = pool.request("GET", emulator.url + path,
                          headers={"Authorization": f"Bearer {emulator.access_token}"})
    assert answer.status == 200, answer.data
    return json.loads(answer.data)


def seed_contacts(emulator: HubSpotEmulator, count: int, *, start: datetime = T0,
                  step: timedelta = timedelta(minutes=1)) -> list[str]:
    with emulator.server.app_lock:
        return [emulator.portal.create("contacts", {"email": f"person{i}@example.com",
                                                    "firstname": f"Person{i}"},
                                       at=start + i * step) for i in range(count)]


def search(client: Any, **request: Any) -> Any:
    return client.crm.contacts.search_api.do_search(PublicObjectSearchRequest(**request))


@pytest.fixture
def emulator_with_clock(loopback_ca: ThrowawayCA) -> Iterator[tuple[HubSpotEmulator,
                                                                     FakeMonotonic]]:
    tick = FakeMonotonic()
    with HubSpotEmulator(ca=loopback_ca, monotonic=tick) as emulator:
        yield emulator, tick


# -- lists and single records -------------------------------------------------------------

def test_get_all_pages_250_contacts_in_three_calls(hubspot_emulator: HubSpotEmulator,
                                                   hubspot_client: Any) -> None:
    seed_contacts(hubspot_emulator, 250)
    contacts = hubspot_client.crm.contacts.get_all(properties=["email"])
    assert len(contacts) == 250
    assert len({c.id for c in contacts}) == 250
    assert hubspot_emulator.counts["GET /crm/v3/objects/{object_type}"] == 3
    assert contacts[0].properties["email"] == "person0@example.com"


def test_get_page_follows_after_cursor_and_last_page_has_no_paging(
        hubspot_emulator: HubSpotEmulator, hubspot_client: Any) -> None:
    ids = seed_contacts(hubspot_emulator, 15)
    first = hubspot_client.crm.contacts.basic_api.get_page()
    assert [c.id for c in first.results] == ids[:10]
    second = hubspot_client.crm.contacts.basic_api.get_page(after=first.paging.next.after)
    assert [c.id for c in second.results] == ids[10:]
    assert second.paging is None


def test_list_with_archived_true_returns_only_archived_records(
        hubspot_emulator: HubSpotEmulator, hubspot_client: Any) -> None:
    ids = seed_contacts(hubspot_emulator, 5)
    hubspot_emulator.portal.archive("contacts", ids[1])
    archived = hubspot_client.crm.contacts.basic_api.get_page(archived=True)
    live = hubspot_client.crm.contacts.basic_api.get_page(archived=False)
    assert [c.id for c in archived.results] == [ids[1]]
    assert archived.results[0].archived is True
    assert ids[1] not in [c.id for c in live.results]


def test_list_above_one_hundred_serves_one_hundred(hubspot_emulator: HubSpotEmulator,
                                                  hubspot_client: Any) -> None:
    seed_contacts(hubspot_emulator, 150)
    page = hubspot_client.crm.contacts.basic_api.get_page(limit=150)
    assert len(page.results) == 100
    assert page.paging.next.after


def test_reads_return_default_properties_and_null_for_requested_blanks(
        hubspot_emulator: HubSpotEmulator, hubspot_client: Any) -> None:
    seed_contacts(hubspot_emulator, 1)
    default = hubspot_client.crm.contacts.basic_api.get_page().results[0]
    assert set(default.properties) == {"createdate", "email", "firstname", "hs_object_id",
                                       "lastmodifieddate", "lastname"}
    assert default.properties["lastname"] is None
    chosen = hubspot_client.crm.contacts.basic_api.get_page(
        properties=["jobtitle", "no_such_property"]).results[0]
    assert chosen.properties["jobtitle"] is None
    assert "no_such_property" not in chosen.properties
    assert chosen.properties["createdate"] == "2024-03-01T12:00:00.000Z"
    assert chosen.created_at == T0


def test_deals_answer_under_their_type_id_with_deal_default_properties(
        hubspot_emulator: HubSpotEmulator, hubspot_client: Any) -> None:
    deal = hubspot_emulator.portal.create("deals", {"dealname": "Big", "amount": "1200"},
                                          at=T0)
    [found] = hubspot_client.crm.objects.basic_api.get_page("0-3").results
    assert found.id == deal
    assert found.properties["hs_lastmodifieddate"] == "2024-03-01T12:00:00.000Z"
    assert set(found.properties) == {"amount", "closedate", "createdate", "dealname",
                                     "dealstage", "hs_lastmodifieddate", "hs_object_id",
                                     "pipeline"}


def test_get_by_email_uses_id_property_and_decodes_the_path(hubspot_emulator: HubSpotEmulator,
                                                           hubspot_client: Any) -> None:
    record_id = hubspot_emulator.portal.create("contacts", {"email": "a+b@example.com"})
    found = hubspot_client.crm.contacts.basic_api.get_by_id("A+B@example.com",
                                                            id_property="email")
    assert found.id == record_id


def test_create_update_archive_round_trip(hubspot_emulator: HubSpotEmulator,
                                          hubspot_client: Any) -> None:
    api = hubspot_client.crm.contacts.basic_api
    created = api.create(SimplePublicObjectInputForCreate(
        properties={"email": "new@example.com", "firstname": "Ada", "jobtitle": "CTO"}))
    assert created.properties["hs_object_id"] == created.id
    before = created.properties["lastmodifieddate"]
    updated = api.update(created.id, SimplePublicObjectInput(
        properties={"jobtitle": "", "lastname": "Lovelace"}))
    assert "jobtitle" not in updated.properties
    assert hubspot_emulator.portal.properties("contacts", created.id)["lastname"] == "Lovelace"
    assert updated.properties["lastmodifieddate"] >= before
    api.archive(created.id)
    assert hubspot_emulator.portal.is_archived("contacts", created.id)
    with pytest.raises(NotFoundException) as missing:
        api.get_by_id(created.id)
    assert json.loads(missing.value.body)["category"] == "OBJECT_NOT_FOUND"


def test_update_with_unknown_property_answers_400_property_doesnt_exist(
        hubspot_emulator: HubSpotEmulator, hubspot_client: Any) -> None:
    [record_id] = seed_contacts(hubspot_emulator, 1)
    with pytest.raises(ApiException) as refused:
        hubspot_client.crm.contacts.basic_api.update(
            record_id, SimplePublicObjectInput(properties={"syncd_id": "u-1"}))
    body = json.loads(refused.value.body)
    assert refused.value.status == 400
    assert body["category"] == "VALIDATION_ERROR"
    detail = json.loads(body["message"].removeprefix("Property values were not valid: "))
    assert detail[0]["error"] == "PROPERTY_DOESNT_EXIST"
    assert detail[0]["name"] == "syncd_id"


def test_read_only_property_and_bad_option_reject_the_write(hubspot_emulator: HubSpotEmulator,
                                                            hubspot_client: Any) -> None:
    [record_id] = seed_contacts(hubspot_emulator, 1)
    api = hubspot_client.crm.contacts.basic_api
    with pytest.raises(ApiException) as read_only:
        api.update(record_id, SimplePublicObjectInput(properties={"lastmodifieddate": "1"}))
    with pytest.raises(ApiException) as bad_option:
        api.update(record_id, SimplePublicObjectInput(properties={"lifecyclestage": "vip"}))
    assert "READ_ONLY_VALUE" in json.loads(read_only.value.body)["message"]
    assert "INVALID_OPTION" in json.loads(bad_option.value.body)["message"]
    assert "lifecyclestage" not in hubspot_emulator.portal.properties("contacts", record_id)


def test_merge_archives_the_loser_and_reads_of_it_find_the_survivor(
        hubspot_emulator: HubSpotEmulator, hubspot_client: Any) -> None:
    survivor, loser, third = seed_contacts(hubspot_emulator, 3)
    company = hubspot_emulator.portal.create("companies", {"name": "Acme"})
    hubspot_emulator.portal.associate("contacts", loser, "companies", company)
    merged = hubspot_client.crm.contacts.basic_api.merge(
        PublicMergeInput(primary_object_id=survivor, object_id_to_merge=loser))
    assert merged.id == survivor
    assert merged.properties["hs_merged_object_ids"] == loser
    again = hubspot_client.crm.contacts.basic_api.merge(
        PublicMergeInput(primary_object_id=survivor, object_id_to_merge=third))
    assert again.properties["hs_merged_object_ids"] == f"{loser};{third}"
    assert hubspot_emulator.portal.is_archived("contacts", loser)
    assert hubspot_client.crm.contacts.basic_api.get_by_id(loser).id == survivor
    assert hubspot_emulator.portal.associations("contacts", survivor, "companies") == [
        (company, [279])]


def test_gdpr_delete_removes_the_record_for_good(hubspot_emulator: HubSpotEmulator,
                                                 hubspot_client: Any) -> None:
    [record_id] = seed_contacts(hubspot_emulator, 1)
    hubspot_client.crm.contacts.basic_api.purge(
        PublicGdprDeleteInput(object_id="person0@example.com", id_property="email"))
    assert hubspot_emulator.portal.ids("contacts") == []
    assert hubspot_emulator.portal.ids("contacts", archived=True) == []
    assert hubspot_emulator.counts["POST /crm/v3/objects/{object_type}/gdpr-delete"] == 1
    assert record_id not in hubspot_emulator.portal.tables["contacts"].records


# -- batches ------------------------------------------------------------------------------

def test_batch_read_update_upsert_accept_one_hundred_inputs(hubspot_emulator: HubSpotEmulator,
                                                            hubspot_client: Any) -> None:
    ids = seed_contacts(hubspot_emulator, 100)
    batch = hubspot_client.crm.contacts.batch_api
    read = batch.read(BatchReadInputSimplePublicObjectId(
        inputs=[{"id": i} for i in ids], properties=["email"], properties_with_history=[]))
    assert len(read.results) == 100
    updated = batch.update(BatchInputSimplePublicObjectBatchInput(
        inputs=[{"id": i, "properties": {"jobtitle": "Engineer"}} for i in ids]))
    assert {r.properties["jobtitle"] for r in updated.results} == {"Engineer"}
    upserted = batch.upsert(BatchInputSimplePublicObjectBatchInputUpsert(inputs=[
        {"id": f"person{n}@example.com", "idProperty": "email", "properties": {"phone": "1"}}
        for n in range(100)]))
    assert len(upserted.results) == 100
    assert not any(r.new for r in upserted.results)


@pytest.mark.parametrize("operation", ["read", "update", "upsert", "create", "archive"])
def test_batch_with_101_inputs_answers_400(hubspot_emulator: HubSpotEmulator,
                                           hubspot_client: Any, operation: str) -> None:
    inputs = [{"id": str(n), "idProperty": "email", "properties": {"firstname": "x"}}
              for n in range(101)]
    with pytest.raises(ApiException) as refused:
        getattr(hubspot_client.crm.contacts.batch_api, operation)({"inputs": inputs})
    assert refused.value.status == 400
    assert json.loads(refused.value.body)["category"] == "VALIDATION_ERROR"


def test_batch_read_of_a_missing_id_answers_207_object_not_found(
        hubspot_emulator: HubSpotEmulator, hubspot_client: Any) -> None:
    [record_id] = seed_contacts(hubspot_emulator, 1)
    answer = hubspot_client.crm.contacts.batch_api.read(BatchReadInputSimplePublicObjectId(
        inputs=[{"id": record_id}, {"id": "999999"}], properties=["email"],
        properties_with_history=[]))
    assert isinstance(answer, BatchResponseSimplePublicObjectWithErrors)
    assert [r.id for r in answer.results] == [record_id]
    assert answer.num_errors == 1
    assert answer.errors[0].category == "OBJECT_NOT_FOUND"
    assert answer.errors[0].context == {"ids": ["999999"]}


def test_batch_create_of_an_existing_email_answers_409_with_its_id(
        hubspot_emulator: HubSpotEmulator, hubspot_client: Any) -> None:
    [record_id] = seed_contacts(hubspot_emulator, 1)
    with pytest.raises(ApiException) as refused:
        hubspot_client.crm.contacts.batch_api.create({"inputs": [
            {"properties": {"email": "fresh@example.com"}},
            {"properties": {"email": "PERSON0@example.com"}}]})
    assert refused.value.status == 409
    assert json.loads(refused.value.body)["message"] == (
        f"Contact already exists. Existing ID: {record_id}")
    assert len(hubspot_emulator.portal.ids("contacts")) == 1


def test_rejected_records_fail_in_a_207_while_the_rest_apply(
        hubspot_emulator: HubSpotEmulator, hubspot_client: Any) -> None:
    hubspot_emulator.faults.reject_record = (
        lambda kind, fields: kind == "contacts" and fields.get("firstname") == "Bad")
    answer = hubspot_client.crm.contacts.batch_api.create({"inputs": [
        {"properties": {"email": "good@example.com", "firstname": "Good"}},
        {"properties": {"email": "bad@example.com", "firstname": "Bad"}}]})
    assert answer.num_errors == 1
    assert answer.errors[0].category == "VALIDATION_ERROR"
    assert [r.properties["email"] for r in answer.results] == ["good@example.com"]
    assert len(hubspot_emulator.portal.ids("contacts")) == 1


# -- search -------------------------------------------------------------------------------

def test_search_window_on_lastmodifieddate_sorted_ascending(hubspot_emulator: HubSpotEmulator,
                                                            hubspot_client: Any) -> None:
    ids = seed_contacts(hubspot_emulator, 30, step=timedelta(hours=1))
    hubspot_emulator.portal.update("contacts", ids[3], {"jobtitle": "x"},
                                   at=T0 + timedelta(hours=25, minutes=30))
    low = str(int((T0 + timedelta(hours=10)).timestamp() * 1000))  # epoch ms
    high = (T0 + timedelta(hours=26)).isoformat()  # ISO
    window = [{"filters": [
        {"propertyName": "lastmodifieddate", "operator": "GTE", "value": low},
        {"propertyName": "lastmodifieddate", "operator": "LT", "value": high}]}]
    found = search(hubspot_client, filter_groups=window, limit=200, after="0",
                   sorts=[{"propertyName": "lastmodifieddate", "direction": "ASCENDING"}],
                   properties=["email"])
    assert found.total == 17
    assert [r.id for r in found.results] == [*ids[10:26], ids[3]]
    assert found.paging is None
    stamps = [r.properties["lastmodifieddate"] for r in found.results]
    assert stamps == sorted(stamps)


@pytest.mark.parametrize(("spec", "expected"), [
    ({"operator": "EQ", "propertyName": "firstname", "value": "person3"}, [3]),
    ({"operator": "NEQ", "propertyName": "firstname", "value": "Person3"}, [0, 1, 2, 4, 5]),
    ({"operator": "LT", "propertyName": "amount", "value": "10"}, [0, 1, 2]),
    ({"operator": "LTE", "propertyName": "amount", "value": "10"}, [0, 1, 2, 3]),
    ({"operator": "GT", "propertyName": "amount", "value": "9.5"}, [3, 4]),
    ({"operator": "GTE", "propertyName": "amount", "value": "100"}, [4]),
    ({"operator": "BETWEEN", "propertyName": "amount", "value": "2", "highValue": "10"},
     [2, 3]),
    ({"operator": "IN", "propertyName": "firstname", "values": ["PERSON1", "person4"]},
     [1, 4]),
    ({"operator": "NOT_IN", "propertyName": "firstname", "values": ["Person1"]},
     [0, 2, 3, 4, 5]),
    ({"operator": "HAS_PROPERTY", "propertyName": "amount"}, [0, 1, 2, 3, 4]),
    ({"operator": "NOT_HAS_PROPERTY", "propertyName": "amount"}, [5]),
    ({"operator": "CONTAINS_TOKEN", "propertyName": "email", "value": "*@example.com"},
     [0, 1, 2, 3, 4]),
    ({"operator": "NOT_CONTAINS_TOKEN", "propertyName": "email", "value": "*@example.com"},
     [5]),
])
def test_search_operators_select_the_expected_records(
        hubspot_emulator: HubSpotEmulator, hubspot_client: Any, spec: dict[str, Any],
        expected: list[int]) -> None:
    hubspot_emulator.portal.add_property("contacts", "amount", type="number",
                                         field_type="number")
    amounts = ["0.5", "1", "2", "10", "100", None]
    ids = [hubspot_emulator.portal.create("contacts", {
        "firstname": f"Person{n}", "amount": amount,
        "email": f"p{n}@example.com" if n < 5 else f"p{n}@other.org"})
        for n, amount in enumerate(amounts)]
    found = search(hubspot_client, filter_groups=[{"filters": [spec]}], limit=100)
    assert [r.id for r in found.results] == [ids[n] for n in expected]


def test_search_groups_or_and_hs_object_id_compares_numerically(
        hubspot_emulator: HubSpotEmulator, hubspot_client: Any) -> None:
    ids = seed_contacts(hubspot_emulator, 12)
    groups = [{"filters": [{"propertyName": "hs_object_id", "operator": "LT",
                            "value": ids[2]}]},
              {"filters": [{"propertyName": "hs_object_id", "operator": "GTE",
                            "value": ids[10]}]}]
    found = search(hubspot_client, filter_groups=groups, sorts=["-hs_object_id"])
    assert [r.id for r in found.results] == [ids[11], ids[10], ids[1], ids[0]]


def test_search_paging_past_ten_thousand_results_answers_400(
        hubspot_emulator: HubSpotEmulator, hubspot_client: Any) -> None:
    seed_contacts(hubspot_emulator, 10_050, step=timedelta(seconds=1))
    last_allowed = search(hubspot_client, limit=200, after="9800")
    assert last_allowed.total == 10_050
    assert last_allowed.paging.next.after == "10000"
    with pytest.raises(ApiException) as refused:
        search(hubspot_client, limit=200, after=last_allowed.paging.next.after)
    assert refused.value.status == 400
    assert json.loads(refused.value.body)["category"] == "VALIDATION_ERROR"


def test_search_limit_of_201_answers_400(hubspot_emulator: HubSpotEmulator,
                                         hubspot_client: Any) -> None:
    with pytest.raises(ApiException) as refused:
        search(hubspot_client, limit=201)
    assert refused.value.status == 400


def test_search_with_six_filter_groups_answers_400(hubspot_emulator: HubSpotEmulator,
                                                   hubspot_client: Any) -> None:
    group = {"filters": [{"propertyName": "email", "operator": "HAS_PROPERTY"}]}
    with pytest.raises(ApiException) as refused:
        search(hubspot_client, filter_groups=[group] * 6)
    assert refused.value.status == 400


def test_sixth_search_within_a_second_answers_429_without_rate_limit_headers(
        emulator_with_clock: tuple[HubSpotEmulator, FakeMonotonic]) -> None:
    emulator, tick = emulator_with_clock
    client = client_for(emulator)
    for _ in range(5):
        search(client, limit=1)
        tick.now += 0.1
    with pytest.raises(ApiException) as refused:
        search(client, limit=1)
    assert refused.value.status == 429
    body = json.loads(refused.value.body)
    assert body["message"] == "You have reached your secondly limit."
    assert not any(h.lower().startswith("x-hubspot-ratelimit") for h in refused.value.headers)
    assert "Retry-After" not in refused.value.headers
    tick.now += 1.0
    assert search(client, limit=1).total == 0


# -- associations -------------------------------------------------------------------------

def test_associations_v4_get_page_and_batch_read(hubspot_emulator: HubSpotEmulator,
                                                 hubspot_client: Any) -> None:
    portal = hubspot_emulator.portal
    alone, linked = seed_contacts(hubspot_emulator, 2)
    company = portal.create("companies", {"name": "Acme", "domain": "acme.com"})
    portal.associate("contacts", linked, "companies", company, 1)
    page = hubspot_client.crm.associations.v4.basic_api.get_page("contacts", linked,
                                                                 "companies", limit=500)
    assert [int(r.to_object_id) for r in page.results] == [int(company)]
    assert sorted(t.type_id for t in page.results[0].association_types) == [1, 279]
    assert portal.associations("companies", company, "contacts") == [(linked, [2, 280])]
    answer = hubspot_client.crm.associations.v4.batch_api.get_page(
        "contacts", "companies",
        BatchInputPublicFetchAssociationsBatchRequest(inputs=[{"id": linked}, {"id": alone}]))
    assert answer.results[0]._from.id == linked
    assert answer.num_errors == 1
    assert answer.errors[0].sub_category == "crm.associations.NO_ASSOCIATIONS_FOUND"


def test_associations_v4_create_labelled_default_and_archive(
        hubspot_emulator: HubSpotEmulator, hubspot_client: Any) -> None:
    portal = hubspot_emulator.portal
    deal = portal.create("deals", {"dealname": "Big"})
    first, second = (portal.create("companies", {"name": n}) for n in ("A", "B"))
    basic = hubspot_client.crm.associations.v4.basic_api
    labelled = basic.create("deals", deal, "companies", first, [AssociationSpec(
        association_category="HUBSPOT_DEFINED", association_type_id=5)])
    assert labelled.labels == ["Primary"]
    default = basic.create_default("deals", deal, "companies", second)
    assert default.status == "COMPLETE"
    assert portal.associations("deals", deal, "companies") == [(first, [5, 341]),
                                                               (second, [341])]
    basic.archive("deals", deal, "companies", first)
    assert portal.associations("deals", deal, "companies") == [(second, [341])]
    assert portal.associations("companies", first, "deals") == []


def test_list_embeds_associations_with_v3_type_names(hubspot_emulator: HubSpotEmulator,
                                                     hubspot_client: Any) -> None:
    [contact] = seed_contacts(hubspot_emulator, 1)
    company = hubspot_emulator.portal.create("companies", {"name": "Acme"})
    hubspot_emulator.portal.associate("contacts", contact, "companies", company, 1)
    record = hubspot_client.crm.contacts.basic_api.get_page(
        associations=["companies"]).results[0]
    types = {r.type for r in record.associations["companies"].results}
    assert types == {"contact_to_company", "contact_to_company_unlabeled"}


# -- properties and pipelines -------------------------------------------------------------

def test_properties_create_unique_syncd_id_then_upsert_creates_then_updates(
        hubspot_emulator: HubSpotEmulator, hubspot_client: Any) -> None:
    core = hubspot_client.crm.properties.core_api
    names = {p.name: p for p in core.get_all("contacts").results}
    assert "syncd_id" not in names
    assert names["lifecyclestage"].options[2].value == "marketingqualifiedlead"
    assert names["hs_merged_object_ids"].modification_metadata.read_only_value is True
    created = core.create("contacts", PropertyCreate(
        name="syncd_id", label="syncd id", type="string", field_type="text",
        group_name="contactinformation", has_unique_value=True))
    assert created.has_unique_value is True
    upsert = {"inputs": [{"id": "u-1", "idProperty": "syncd_id",
                          "properties": {"firstname": "Una"}}]}
    first = hubspot_client.crm.contacts.batch_api.upsert(upsert)
    second = hubspot_client.crm.contacts.batch_api.upsert(upsert)
    assert first.results[0].new is True
    assert second.results[0].new is False
    assert second.results[0].id == first.results[0].id
    assert hubspot_emulator.portal.properties("contacts", first.results[0].id)["syncd_id"] == "u-1"


def test_creating_an_existing_property_answers_409(hubspot_emulator: HubSpotEmulator,
                                                   hubspot_client: Any) -> None:
    with pytest.raises(hubspot.crm.properties.ApiException) as refused:
        hubspot_client.crm.properties.core_api.create("contacts", PropertyCreate(
            name="email", label="Email", type="string", field_type="text",
            group_name="contactinformation"))
    assert refused.value.status == 409


def test_pipelines_list_the_default_deal_stages(hubspot_client: Any) -> None:
    [pipeline] = hubspot_client.crm.pipelines.pipelines_api.get_all("deals").results
    assert pipeline.id == "default"
    stages = {s.id: s.metadata for s in pipeline.stages}
    assert stages["closedwon"] == {"isClosed": "true", "probability": "1.0"}
    assert len(stages) == 7


# -- forms and email ----------------------------------------------------------------------

def test_forms_and_submissions_page_newest_first(hubspot_emulator: HubSpotEmulator,
                                                 hubspot_client: Any) -> None:
    portal = hubspot_emulator.portal
    guids = [portal.add_form(f"Form {n}") for n in range(3)]
    for n in range(60):
        portal.add_submission(guids[0], {"email": f"p{n}@example.com"},
                              submitted_at=T0 + timedelta(minutes=n), conversion_id=f"c{n}")
    forms = hubspot_client.marketing.forms.forms_api.get_page(limit=2)
    rest = hubspot_client.marketing.forms.forms_api.get_page(after=forms.paging.next.after)
    assert [f.id for f in forms.results + rest.results] == guids
    assert forms.results[0].form_type == "hubspot"
    seen: list[str] = []
    path = f"/form-integrations/v1/submissions/forms/{guids[0]}?limit=50"
    while True:
        page = raw_get(hubspot_emulator, path)
        seen += [s["conversionId"] for s in page["results"]]
        if "paging" not in page:
            break
        path = f"/form-integrations/v1/submissions/forms/{guids[0]}?limit=50&after=" \
               + page["paging"]["next"]["after"]
    assert seen == [f"c{n}" for n in reversed(range(60))]
    newest = raw_get(hubspot_emulator,
                     f"/form-integrations/v1/submissions/forms/{guids[0]}?limit=1")
    assert newest["results"][0]["submittedAt"] == int(
        (T0 + timedelta(minutes=59)).timestamp() * 1000)
    assert newest["results"][0]["values"] == [{"name": "email", "value": "p59@example.com"}]


def test_email_click_events_page_by_offset_and_campaign_names_resolve(
        hubspot_emulator: HubSpotEmulator) -> None:
    portal = hubspot_emulator.portal
    campaign = portal.add_email_campaign("Spring launch", campaign_id=777)
    for n in range(5):
        portal.add_click(campaign, f"p{n}@example.com", created=T0 + timedelta(hours=n),
                         event_id=f"e{n}")
    start = int(T0.timestamp() * 1000)
    first = raw_get(hubspot_emulator, "/email/public/v1/events?eventType=CLICK&limit=3"
                                      f"&startTimestamp={start}")
    assert [e["id"] for e in first["events"]] == ["e4", "e3", "e2"]
    assert first["hasMore"] is True
    second = raw_get(hubspot_emulator, "/email/public/v1/events?eventType=CLICK&limit=3"
                                       f"&startTimestamp={start}&offset={first['offset']}")
    assert [e["id"] for e in second["events"]] == ["e1", "e0"]
    assert second["hasMore"] is False
    assert second["events"][0]["emailCampaignId"] == 777
    assert second["events"][0]["portalId"] == 62515
    described = raw_get(hubspot_emulator, "/email/public/v1/campaigns/777")
    assert described["name"] == "Spring launch"
    assert described["numIncluded"] == 5


def test_submissions_added_out_of_order_still_page_newest_first(
        hubspot_emulator: HubSpotEmulator) -> None:
    portal = hubspot_emulator.portal
    guid = portal.add_form("Demo request")
    # Seeding adds people one after another, each with touches anywhere in time.
    for n in (3, 0, 4, 1, 2):
        portal.add_submission(guid, {"email": f"p{n}@example.com"},
                              submitted_at=T0 + timedelta(days=n), conversion_id=f"c{n}")
    page = raw_get(hubspot_emulator, f"/form-integrations/v1/submissions/forms/{guid}?limit=3")
    assert [s["conversionId"] for s in page["results"]] == ["c4", "c3", "c2"]
    portal.add_submission(guid, {"email": "late@example.com"}, submitted_at=T0 - timedelta(days=1),
                          conversion_id="early")
    rest = raw_get(hubspot_emulator, f"/form-integrations/v1/submissions/forms/{guid}?limit=3"
                                     f"&after={page['paging']['next']['after']}")
    assert [s["conversionId"] for s in rest["results"]] == ["c1", "c0", "early"]


def test_clicks_added_out_of_order_are_served_newest_first_with_campaign_counters(
        hubspot_emulator: HubSpotEmulator) -> None:
    portal = hubspot_emulator.portal
    campaign = portal.add_email_campaign("Trial nurture", campaign_id=778)
    for n, recipient in ((2, "a@example.com"), (0, "b@example.com"), (1, "a@example.com")):
        portal.add_click(campaign, recipient, created=T0 + timedelta(hours=n), event_id=f"e{n}")
    events = raw_get(hubspot_emulator, "/email/public/v1/events?eventType=CLICK&limit=10")
    assert [e["id"] for e in events["events"]] == ["e2", "e1", "e0"]
    assert events["events"][0]["sentBy"]["created"] == events["events"][0]["created"]
    described = raw_get(hubspot_emulator, "/email/public/v1/campaigns/778")
    assert described["counters"]["click"] == 3 and described["numIncluded"] == 2
    assert described["lastProcessingFinishedAt"] == int(
        (T0 + timedelta(hours=2)).timestamp() * 1000)


def test_timestamps_read_as_isoformat_in_utc_with_milliseconds_and_z() -> None:
    from datetime import timezone

    from connectors.hubspot.portal_schema import iso_ms

    zone = timezone(timedelta(hours=9))
    for moment in (T0, T0.replace(microsecond=5_999), T0.astimezone(zone),
                   datetime(999, 1, 2, 3, 4, 5, tzinfo=UTC), T0.replace(tzinfo=None)):
        aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
        assert iso_ms(moment) == aware.astimezone(UTC).isoformat(
            timespec="milliseconds")[:23] + "Z"


# -- auth, rate limits, lifecycle ---------------------------------------------------------

def test_wrong_token_answers_401_unauthorized(hubspot_emulator: HubSpotEmulator) -> None:
    client = client_for(hubspot_emulator, token="pat-na1-wrong")
    with pytest.raises(UnauthorizedException) as refused:
        client.crm.contacts.basic_api.get_page()
    body = json.loads(refused.value.body)
    assert body["category"] == "INVALID_AUTHENTICATION"
    assert "X-HubSpot-Correlation-Id" in refused.value.headers


def test_burst_limit_answers_429_ten_secondly_rolling(
        emulator_with_clock: tuple[HubSpotEmulator, FakeMonotonic]) -> None:
    emulator, tick = emulator_with_clock
    emulator.limits = HubSpotLimits(per_10s=3)
    client = client_for(emulator)
    for _ in range(3):
        client.crm.contacts.basic_api.get_page()
        tick.now += 1
    with pytest.raises(ApiException) as refused:
        client.crm.contacts.basic_api.get_page()
    body = json.loads(refused.value.body)
    assert (refused.value.status, body["policyName"]) == (429, "TEN_SECONDLY_ROLLING")
    assert body["message"] == "You have reached your ten_secondly_rolling limit."
    assert refused.value.headers["X-HubSpot-RateLimit-Remaining"] == "0"
    tick.now += 8  # the first request has left the rolling window
    page = client.crm.contacts.basic_api.get_page_with_http_info()
    assert page[2]["X-HubSpot-RateLimit-Max"] == "3"
    assert page[2]["X-HubSpot-RateLimit-Interval-Milliseconds"] == "10000"


def test_daily_limit_answers_429_daily_and_rejections_spend_nothing(
        emulator_with_clock: tuple[HubSpotEmulator, FakeMonotonic]) -> None:
    emulator, _ = emulator_with_clock
    emulator.limits = HubSpotLimits(daily=2)
    client = client_for(emulator)
    first = client.crm.contacts.basic_api.get_page_with_http_info()
    assert first[2]["X-HubSpot-RateLimit-Daily-Remaining"] == "1"
    client.crm.contacts.basic_api.get_page()
    for _ in range(2):
        with pytest.raises(ApiException) as refused:
            client.crm.contacts.basic_api.get_page()
        assert json.loads(refused.value.body)["policyName"] == "DAILY"
    emulator.limits.enforce = False
    assert client.crm.contacts.basic_api.get_page().results == []


def test_lifecycle_stage_only_moves_forward_unless_cleared_first(
        hubspot_emulator: HubSpotEmulator, hubspot_client: Any) -> None:
    api = hubspot_client.crm.contacts.basic_api
    created = api.create(SimplePublicObjectInputForCreate(
        properties={"email": "stage@example.com", "lifecyclestage": "customer"}))
    backward = api.update(created.id, SimplePublicObjectInput(
        properties={"lifecyclestage": "lead", "jobtitle": "CEO"}))
    assert backward.properties["lifecyclestage"] == "customer"
    assert backward.properties["jobtitle"] == "CEO"
    api.update(created.id, SimplePublicObjectInput(properties={"lifecyclestage": ""}))
    api.update(created.id, SimplePublicObjectInput(properties={"lifecyclestage": "lead"}))
    assert hubspot_emulator.portal.properties("contacts", created.id)["lifecyclestage"] == "lead"


# -- injected faults ----------------------------------------------------------------------

def test_injected_errors_answer_a_status_from_error_statuses(
        hubspot_emulator: HubSpotEmulator, hubspot_client: Any) -> None:
    hubspot_emulator.faults = Faults(error_rate=1.0, error_statuses=(503,))
    with pytest.raises(ServiceException) as failed:
        hubspot_client.crm.contacts.basic_api.get_page()
    assert failed.value.status == 503
    assert json.loads(failed.value.body)["message"] == "internal error"
    hubspot_emulator.faults = Faults(error_rate=1.0, error_statuses=(429,))
    with pytest.raises(ApiException) as limited:
        hubspot_client.crm.contacts.basic_api.get_page()
    assert json.loads(limited.value.body)["policyName"] == "TEN_SECONDLY_ROLLING"


def test_dropped_connections_surface_as_urllib3_errors(hubspot_emulator: HubSpotEmulator,
                                                       hubspot_client: Any) -> None:
    hubspot_emulator.faults = Faults(drop_rate=1.0)
    with pytest.raises(urllib3.exceptions.HTTPError):
        hubspot_client.crm.contacts.basic_api.get_page()
    assert hubspot_emulator.counts["(dropped)"] >= 1


def test_kill_hook_runs_once_after_the_request_took_effect(hubspot_emulator: HubSpotEmulator,
                                                           hubspot_client: Any) -> None:
    seen: list[list[str]] = []
    hubspot_emulator.faults.kill_after = len(hubspot_emulator.server.log) + 1
    hubspot_emulator.faults.on_kill = lambda: seen.append(hubspot_emulator.portal.ids("contacts"))
    created = hubspot_client.crm.contacts.basic_api.create(
        SimplePublicObjectInputForCreate(properties={"email": "k@example.com"}))
    hubspot_client.crm.contacts.basic_api.get_page()
    assert seen == [[created.id]]


# -- scale ----------------------------------------------------------------------------------

@pytest.mark.slow
def test_an_org_of_100k_contacts_pages_in_order_without_gaps_or_repeats(
        loopback_ca: ThrowawayCA) -> None:
    """At scale, on the wire; how fast it seeds and pages is `bench_emulators`', measured, not
    asserted here."""
    with HubSpotEmulator(ca=loopback_ca, limits=HubSpotLimits.unlimited()) as emulator:
        seed_contacts(emulator, 100_000, step=timedelta(seconds=1))
        # urllib3 as the SDK uses it, without the SDK's model building (client-side cost).
        pool = urllib3.PoolManager(ca_certs=str(emulator.ca_path))
        headers = {"Authorization": f"Bearer {emulator.access_token}"}
        after, ids = "0", []
        while len(ids) < 20_000:
            answer = pool.request("GET", f"{emulator.url}/crm/v3/objects/contacts?limit=100"
                                         f"&properties=email&after={after}", headers=headers)
            page = json.loads(answer.data)
            ids += [int(result["id"]) for result in page["results"]]
            after = page["paging"]["next"]["after"]
        # The first 20,000 of the portal's contacts, each once, in id order.
        assert ids == sorted(int(i) for i in emulator.portal.ids("contacts"))[:20_000]
