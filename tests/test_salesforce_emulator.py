"""The Salesforce emulator, driven by the real simple-salesforce 1.12.10 over HTTPS."""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
import requests
from simple_salesforce.api import Salesforce
from simple_salesforce.exceptions import (
    SalesforceExpiredSession,
    SalesforceGeneralError,
    SalesforceMalformedRequest,
    SalesforceMoreThanOneRecord,
    SalesforceRefusedRequest,
    SalesforceResourceNotFound,
)

from connectors.loopback import Faults, ThrowawayCA
from connectors.salesforce.emulator import SalesforceEmulator
from connectors.salesforce.values import OrgError
from tests.conftest import trusting_session

START = datetime(2024, 4, 25, 12, 0, tzinfo=UTC)


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


def client(emulator: SalesforceEmulator) -> Any:
    return Salesforce(
        instance_url=emulator.url, session_id=emulator.issue_token(),
        version=emulator.api_version, session=trusting_session(emulator.ca_path),
    )


@pytest.fixture
def clock() -> Clock:
    return Clock(START)


@pytest.fixture
def timed(loopback_ca: ThrowawayCA, clock: Clock) -> Iterator[SalesforceEmulator]:
    with SalesforceEmulator(ca=loopback_ca, clock=clock) as emulator:
        yield emulator


def seed_leads(emulator: SalesforceEmulator, count: int, **extra: Any) -> list[str]:
    with emulator.server.app_lock:
        return [
            emulator.org.insert("Lead", {"LastName": f"Lead {n}", "Company": "Acme",
                                         "Email": f"lead{n}@acme.example", **extra})
            for n in range(count)
        ]


def content(raised: pytest.ExceptionInfo[Any]) -> Any:
    """The parsed error body a simple-salesforce exception carries."""
    return raised.value.content


def csv_rows(chunks: list[Any]) -> list[dict[str, str]]:
    return [row for chunk in chunks for row in csv.DictReader(io.StringIO(str(chunk)))]


# -- query ---------------------------------------------------------------------------------


def test_query_pages_4500_rows_through_query_more_and_query_all(
    salesforce_emulator: SalesforceEmulator, salesforce_client: Any
) -> None:
    ids = seed_leads(salesforce_emulator, 4500)
    first = salesforce_client.query("SELECT Id, Email FROM Lead")
    assert (first["totalSize"], first["done"], len(first["records"])) == (4500, False, 2000)
    assert first["nextRecordsUrl"].startswith("/services/data/v59.0/query/01g")
    second = salesforce_client.query_more(first["nextRecordsUrl"], identifier_is_url=True)
    third = salesforce_client.query_more(second["nextRecordsUrl"], identifier_is_url=True)
    assert (len(second["records"]), len(third["records"]), third["done"]) == (2000, 500, True)
    assert "nextRecordsUrl" not in third
    everything = salesforce_client.query_all("SELECT Id FROM Lead")
    assert [r["Id"] for r in everything["records"]] == ids
    assert everything["records"][0]["attributes"] == {
        "type": "Lead", "url": f"/services/data/v59.0/sobjects/Lead/{ids[0]}"}


def test_batch_size_header_sets_the_page_size(
    salesforce_emulator: SalesforceEmulator, salesforce_client: Any
) -> None:
    seed_leads(salesforce_emulator, 700)
    page = salesforce_client.query(
        "SELECT Id FROM Lead", headers={"Sforce-Query-Options": "batchSize=500"})
    assert len(page["records"]) == 500
    assert page["nextRecordsUrl"].endswith("-500")


def test_query_all_returns_deleted_and_merged_rows_that_query_hides(
    salesforce_emulator: SalesforceEmulator, salesforce_client: Any
) -> None:
    master, loser, gone = seed_leads(salesforce_emulator, 3)
    with salesforce_emulator.server.app_lock:
        salesforce_emulator.org.merge("Lead", master, loser)
        salesforce_emulator.org.delete("Lead", gone)
    soql = "SELECT Id, IsDeleted, MasterRecordId FROM Lead"
    live = salesforce_client.query(soql)
    assert [r["Id"] for r in live["records"]] == [master]
    rows = {r["Id"]: r for r in salesforce_client.query_all(soql, include_deleted=True)["records"]}
    assert rows[loser]["IsDeleted"] is True
    assert rows[loser]["MasterRecordId"] == master
    assert (rows[gone]["IsDeleted"], rows[gone]["MasterRecordId"]) == (True, None)


def test_where_on_a_system_modstamp_window_selects_only_rows_written_inside_it(
    timed: SalesforceEmulator, clock: Clock
) -> None:
    sf = client(timed)
    seed_leads(timed, 2)
    clock.advance(hours=1)
    later = seed_leads(timed, 3)
    answer = sf.query_all(
        "SELECT Id FROM Lead WHERE SystemModstamp > 2024-04-25T12:30:00Z "
        "AND SystemModstamp <= 2024-04-25T13:00:00Z ORDER BY SystemModstamp")
    assert [r["Id"] for r in answer["records"]] == later


def test_count_answers_total_size_and_no_records(
    salesforce_emulator: SalesforceEmulator, salesforce_client: Any
) -> None:
    seed_leads(salesforce_emulator, 7)
    assert salesforce_client.query("SELECT COUNT() FROM Lead") == {
        "totalSize": 7, "done": True, "records": []}


def test_soql_errors_raise_malformed_request_with_the_salesforce_envelope(
    salesforce_client: Any,
) -> None:
    with pytest.raises(SalesforceMalformedRequest) as unknown_field:
        salesforce_client.query("SELECT Foo FROM Lead")
    assert content(unknown_field)[0]["errorCode"] == "INVALID_FIELD"
    assert "No such column 'Foo' on entity 'Lead'" in content(unknown_field)[0]["message"]
    with pytest.raises(SalesforceMalformedRequest) as malformed:
        salesforce_client.query("SELECT Id FROM")
    assert content(malformed)[0]["errorCode"] == "MALFORMED_QUERY"
    with pytest.raises(SalesforceMalformedRequest) as unknown_type:
        salesforce_client.query("SELECT Id FROM Foo")
    assert content(unknown_type)[0]["errorCode"] == "INVALID_TYPE"
    assert "sObject type 'Foo' is not supported" in content(unknown_type)[0]["message"]


def test_an_unknown_query_locator_answers_invalid_query_locator(
    salesforce_client: Any,
) -> None:
    with pytest.raises(SalesforceMalformedRequest) as error:
        salesforce_client.query_more("/services/data/v59.0/query/01gNOPE-2000",
                                     identifier_is_url=True)
    assert content(error)[0]["errorCode"] == "INVALID_QUERY_LOCATOR"


def test_relationship_fields_nest_the_parent_record(
    salesforce_emulator: SalesforceEmulator, salesforce_client: Any
) -> None:
    with salesforce_emulator.server.app_lock:
        account = salesforce_emulator.org.insert("Account", {"Name": "Acme"})
        salesforce_emulator.org.insert("Contact", {"LastName": "Ada", "AccountId": account})
    record = salesforce_client.query("SELECT Id, Account.Name FROM Contact")["records"][0]
    assert record["Account"]["Name"] == "Acme"
    assert record["Account"]["attributes"]["type"] == "Account"


# -- describe ------------------------------------------------------------------------------


def test_describe_reports_fields_picklists_and_custom_fields(
    salesforce_client: Any,
) -> None:
    lead = salesforce_client.Lead.describe()
    fields = {f["name"]: f for f in lead["fields"]}
    assert (lead["name"], lead["keyPrefix"]) == ("Lead", "00Q")
    assert fields["LastName"]["nillable"] is False
    assert fields["Status"]["picklistValues"][0] == {
        "value": "Open - Not Contacted", "label": "Open - Not Contacted", "active": True,
        "defaultValue": True, "validFor": None}
    syncd_id = fields["Syncd_Id__c"]
    assert (syncd_id["externalId"], syncd_id["unique"], syncd_id["custom"]) == (True, True, True)
    assert [v["value"] for v in fields["Lifecycle_Stage__c"]["picklistValues"]] == [
        "Subscriber", "Lead", "MQL", "SQL", "Opportunity", "Customer", "Evangelist"]
    assert fields["IsConverted"]["updateable"] is False
    assert fields["OwnerId"]["referenceTo"] == ["User"]
    names = {o["name"] for o in salesforce_client.describe()["sobjects"]}
    assert {"Lead", "Contact", "Account", "Opportunity", "OpportunityStage", "Campaign",
            "CampaignMember", "OpportunityContactRole", "Task", "Event", "User"} <= names
    with pytest.raises(SalesforceResourceNotFound):
        salesforce_client.Foo.describe()


def test_a_removed_custom_field_disappears_from_describe_and_writes(
    salesforce_emulator: SalesforceEmulator, salesforce_client: Any
) -> None:
    salesforce_emulator.org.remove_field("Lead", "Lifecycle_Stage__c")
    names = {f["name"] for f in salesforce_client.Lead.describe()["fields"]}
    assert "Lifecycle_Stage__c" not in names
    with pytest.raises(SalesforceMalformedRequest) as error:
        salesforce_client.Lead.create(
            {"LastName": "A", "Company": "B", "Lifecycle_Stage__c": "MQL"})
    assert content(error)[0]["errorCode"] == "INVALID_FIELD"


# -- single-record CRUD --------------------------------------------------------------------


def test_create_get_update_delete_through_sftype(
    salesforce_emulator: SalesforceEmulator, salesforce_client: Any
) -> None:
    created = salesforce_client.Lead.create(
        {"FirstName": "Ada", "LastName": "Lovelace", "Company": "Engines", "LeadSource": "Web"})
    assert created["success"] is True and created["id"].startswith("00Q")
    record = salesforce_client.Lead.get(created["id"])
    assert (record["Name"], record["Status"], record["IsDeleted"]) == (
        "Ada Lovelace", "Open - Not Contacted", False)
    some = salesforce_client.Lead.get(created["id"], params={"fields": "Company,LastName"})
    assert set(some) == {"attributes", "Company", "LastName"}
    assert salesforce_client.Lead.update(created["id"], {"Title": "Countess"}) == 204
    assert salesforce_emulator.org.get("Lead", created["id"])["Title"] == "Countess"
    assert salesforce_client.Lead.delete(created["id"]) == 204
    assert salesforce_emulator.org.get("Lead", created["id"])["IsDeleted"] is True
    with pytest.raises(SalesforceResourceNotFound):
        salesforce_client.Lead.get(created["id"])


@pytest.mark.parametrize(("fields", "code", "error_fields"), [
    ({"LastName": "A", "Company": "B", "foo": 1}, "INVALID_FIELD", None),
    ({"Company": "B"}, "REQUIRED_FIELD_MISSING", ["LastName"]),
    ({"LastName": "A", "Company": "B", "Status": "Bogus"},
     "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST", ["Status"]),
    ({"LastName": "A", "Company": "B", "IsConverted": True},
     "INVALID_FIELD_FOR_INSERT_UPDATE", ["IsConverted"]),
    ({"LastName": "A", "Company": "B", "OwnerId": "nope"}, "MALFORMED_ID", ["OwnerId"]),
])
def test_invalid_writes_answer_salesforce_error_codes(
    salesforce_client: Any, fields: dict[str, Any], code: str,
    error_fields: list[str] | None,
) -> None:
    with pytest.raises(SalesforceMalformedRequest) as error:
        salesforce_client.Lead.create(fields)
    assert content(error)[0]["errorCode"] == code
    assert content(error)[0].get("fields") == error_fields
    if code == "INVALID_FIELD":
        assert content(error)[0]["message"] == "No such column 'foo' on sobject of type Lead"


def test_bad_and_unknown_ids_answer_malformed_id_and_not_found(
    salesforce_client: Any,
) -> None:
    with pytest.raises(SalesforceMalformedRequest) as malformed:
        salesforce_client.Lead.update("not-an-id", {"Title": "x"})
    assert content(malformed)[0]["errorCode"] == "MALFORMED_ID"
    with pytest.raises(SalesforceResourceNotFound) as missing:
        salesforce_client.Lead.update("00Q000000000001EAA", {"Title": "x"})
    assert content(missing)[0]["errorCode"] == "NOT_FOUND"


def test_upsert_by_syncd_id_creates_then_updates_keeping_a_literal_plus(
    salesforce_emulator: SalesforceEmulator, salesforce_client: Any
) -> None:
    lead = salesforce_client.Lead
    assert lead.upsert("Syncd_Id__c/p+1", {"LastName": "Plus", "Company": "C"}) == 201
    assert lead.upsert("Syncd_Id__c/p+1", {"Title": "CTO"}) == 200
    rows = salesforce_emulator.org.records("Lead")
    assert [(r["Syncd_Id__c"], r["Title"]) for r in rows] == [("p+1", "CTO")]
    assert lead.get_by_custom_id("Syncd_Id__c", "p+1")["Title"] == "CTO"
    with pytest.raises(SalesforceResourceNotFound) as unknown:
        lead.upsert("Namez/x", {"LastName": "A"})
    assert content(unknown)[0]["message"] == (
        "Provided external ID field does not exist or is not accessible: Namez")


def test_duplicate_syncd_id_answers_duplicate_value(
    salesforce_client: Any,
) -> None:
    first = salesforce_client.Lead.create({"LastName": "A", "Company": "C", "Syncd_Id__c": "u1"})
    with pytest.raises(SalesforceMalformedRequest) as error:
        salesforce_client.Lead.create({"LastName": "B", "Company": "C", "Syncd_Id__c": "U1"})
    assert content(error)[0] == {
        "message": f"duplicate value found: Syncd_Id__c duplicates value on record with id: "
                   f"{first['id']}",
        "errorCode": "DUPLICATE_VALUE", "fields": ["Syncd_Id__c"]}


def test_get_by_a_shared_email_answers_300_with_both_urls(
    salesforce_emulator: SalesforceEmulator, salesforce_client: Any
) -> None:
    ids = seed_leads(salesforce_emulator, 2, Email="same@acme.example")
    with pytest.raises(SalesforceMoreThanOneRecord) as error:
        salesforce_client.Lead.get_by_custom_id("Email", "same@acme.example")
    assert content(error) == [f"/services/data/v59.0/sobjects/Lead/{i}" for i in ids]


# -- sObject Collections -------------------------------------------------------------------


def lead_records(count: int, **extra: Any) -> list[dict[str, Any]]:
    return [{"attributes": {"type": "Lead"}, "LastName": f"L{n}", "Company": "C", **extra}
            for n in range(count)]


def test_collections_create_200_records_and_refuse_201(
    salesforce_emulator: SalesforceEmulator, salesforce_client: Any
) -> None:
    results = salesforce_client.restful("composite/sobjects", method="POST",
                                        json={"allOrNone": False, "records": lead_records(200)})
    assert len(results) == 200 and all(r["success"] for r in results)
    assert len(salesforce_emulator.org.records("Lead")) == 200
    with pytest.raises(SalesforceMalformedRequest) as error:
        salesforce_client.restful("composite/sobjects", method="POST",
                                  json={"records": lead_records(201)})
    assert content(error)[0]["errorCode"] == "EXCEEDED_ID_LIMIT"
    assert len(salesforce_emulator.org.records("Lead")) == 200


def test_collections_report_a_duplicate_while_batch_mates_land(
    salesforce_emulator: SalesforceEmulator, salesforce_client: Any
) -> None:
    records = lead_records(3)
    records[0]["Syncd_Id__c"] = records[2]["Syncd_Id__c"] = "dup"
    results = salesforce_client.restful("composite/sobjects", method="POST",
                                        json={"allOrNone": False, "records": records})
    assert [r["success"] for r in results] == [True, True, False]
    assert results[2]["errors"][0]["statusCode"] == "DUPLICATE_VALUE"
    assert results[2]["errors"][0]["fields"] == ["Syncd_Id__c"]
    assert len(salesforce_emulator.org.records("Lead")) == 2


def test_collections_all_or_none_rolls_every_record_back(
    salesforce_emulator: SalesforceEmulator, salesforce_client: Any
) -> None:
    records = lead_records(3)
    del records[1]["LastName"]
    results = salesforce_client.restful("composite/sobjects", method="POST",
                                        json={"allOrNone": True, "records": records})
    codes = [r["errors"][0]["statusCode"] for r in results]
    assert codes == ["ALL_OR_NONE_OPERATION_ROLLED_BACK", "REQUIRED_FIELD_MISSING",
                     "ALL_OR_NONE_OPERATION_ROLLED_BACK"]
    assert salesforce_emulator.org.records("Lead") == []
    assert salesforce_client.query("SELECT COUNT() FROM Lead")["totalSize"] == 0


def test_collections_update_upsert_retrieve_and_delete(
    salesforce_emulator: SalesforceEmulator, salesforce_client: Any
) -> None:
    ids = seed_leads(salesforce_emulator, 2)
    updates = [{"attributes": {"type": "Lead"}, "id": i, "Title": "VP"} for i in ids]
    updated = salesforce_client.restful("composite/sobjects", method="PATCH",
                                        json={"records": updates})
    assert [r["id"] for r in updated] == ids
    upserts = lead_records(2)
    upserts[0]["Syncd_Id__c"], upserts[1]["Syncd_Id__c"] = "a", "b"
    first = salesforce_client.restful("composite/sobjects/Lead/Syncd_Id__c", method="PATCH",
                                      json={"records": upserts})
    again = salesforce_client.restful("composite/sobjects/Lead/Syncd_Id__c", method="PATCH",
                                      json={"records": upserts})
    assert [r["created"] for r in first + again] == [True, True, False, False]
    fetched = salesforce_client.restful("composite/sobjects/Lead",
                                        params={"ids": ",".join(ids), "fields": "Title"})
    assert [r["Title"] for r in fetched] == ["VP", "VP"]
    deleted = salesforce_client.restful("composite/sobjects", method="DELETE",
                                        params={"ids": ids[0]})
    assert deleted == [{"id": ids[0], "success": True, "errors": []}]


def test_collections_retrieve_by_post_takes_2000_ids_and_answers_null_for_the_gone(
    salesforce_emulator: SalesforceEmulator, salesforce_client: Any
) -> None:
    ids = seed_leads(salesforce_emulator, 3)
    salesforce_client.Lead.delete(ids[1])
    wanted = [*ids, "00Q000000000000AAA", "x' OR Id != '"]
    fetched = salesforce_client.restful(
        "composite/sobjects/Lead", method="POST", json={"ids": wanted, "fields": ["Id", "Title"]}
    )
    assert [r and r["Id"] for r in fetched] == [ids[0], None, ids[2], None, None]
    assert set(fetched[0]) == {"attributes", "Id", "Title"}
    with pytest.raises(SalesforceMalformedRequest) as error:
        salesforce_client.restful("composite/sobjects/Lead", method="POST",
                                  json={"ids": [ids[0]] * 2001, "fields": ["Id"]})
    assert content(error)[0]["errorCode"] == "EXCEEDED_ID_LIMIT"
    with pytest.raises(SalesforceMalformedRequest) as error:
        salesforce_client.restful("composite/sobjects/Lead", method="POST",
                                  json={"ids": [ids[0]], "fields": ["Nope__c"]})
    assert content(error)[0]["errorCode"] == "INVALID_FIELD"


# -- lead conversion, opportunities, campaigns ---------------------------------------------


def test_converted_lead_answers_cannot_update_converted_lead(
    salesforce_emulator: SalesforceEmulator, salesforce_client: Any
) -> None:
    org = salesforce_emulator.org
    with salesforce_emulator.server.app_lock:
        lead = org.insert("Lead", {"FirstName": "Ada", "LastName": "L", "Company": "Engines",
                                   "Email": "ada@engines.example"})
        campaign = org.insert("Campaign", {"Name": "Webinar"})
        member = org.insert("CampaignMember", {"CampaignId": campaign, "LeadId": lead,
                                               "Status": "Responded"})
        result = org.convert_lead(lead, opportunity_name="Engines deal")
    converted = org.get("Lead", lead)
    assert (converted["IsConverted"], converted["Status"]) == (True, "Closed - Converted")
    assert converted["ConvertedContactId"] == result["contactId"]
    contact = org.get("Contact", str(result["contactId"]))
    assert (contact["Email"], contact["AccountId"]) == ("ada@engines.example", result["accountId"])
    assert org.get("CampaignMember", member)["ContactId"] == result["contactId"]
    opportunity = org.get("Opportunity", str(result["opportunityId"]))
    assert opportunity["CampaignId"] == campaign
    roles = org.records("OpportunityContactRole")
    assert [(r["ContactId"], r["IsPrimary"]) for r in roles] == [(result["contactId"], True)]
    with pytest.raises(SalesforceMalformedRequest) as error:
        salesforce_client.Lead.update(lead, {"Title": "x"})
    assert content(error)[0]["errorCode"] == "CANNOT_UPDATE_CONVERTED_LEAD"


def test_stage_drives_opportunity_closed_won_and_probability(
    salesforce_emulator: SalesforceEmulator, salesforce_client: Any
) -> None:
    created = salesforce_client.Opportunity.create(
        {"Name": "Deal", "StageName": "Prospecting", "CloseDate": "2024-06-30", "Amount": 1000})
    opp = salesforce_client.Opportunity.get(created["id"])
    assert (opp["IsClosed"], opp["IsWon"], opp["Probability"]) == (False, False, 10.0)
    salesforce_client.Opportunity.update(created["id"], {"StageName": "Closed Won"})
    opp = salesforce_client.Opportunity.get(created["id"])
    assert (opp["IsClosed"], opp["IsWon"], opp["Probability"]) == (True, True, 100.0)
    stages = salesforce_client.query_all(
        "SELECT ApiName, IsClosed, IsWon, DefaultProbability FROM OpportunityStage")
    assert len(stages["records"]) == 10


def test_campaign_member_responds_once_and_keeps_its_first_date(
    timed: SalesforceEmulator, clock: Clock
) -> None:
    org = timed.org
    lead = org.insert("Lead", {"LastName": "A", "Company": "C"})
    campaign = org.insert("Campaign", {"Name": "Spring"})
    member = org.insert("CampaignMember", {"CampaignId": campaign, "LeadId": lead})
    assert org.get("CampaignMember", member)["HasResponded"] is False
    clock.advance(days=2)
    org.update("CampaignMember", member, {"Status": "Responded"})
    clock.advance(days=2)
    org.update("CampaignMember", member, {"Status": "Responded"})
    row = org.get("CampaignMember", member)
    assert (row["HasResponded"], row["FirstRespondedDate"]) == (True, "2024-04-27")
    with pytest.raises(OrgError) as duplicate:
        org.insert("CampaignMember", {"CampaignId": campaign, "LeadId": lead})
    assert duplicate.value.error_code == "DUPLICATE_VALUE"


def test_validation_rules_and_fault_rejections_refuse_the_write(
    salesforce_emulator: SalesforceEmulator, salesforce_client: Any
) -> None:
    salesforce_emulator.org.add_validation_rule(
        "Lead", lambda r: "Company must not be Evil" if r["Company"] == "Evil" else None)
    salesforce_emulator.faults.reject_record = lambda obj, fields: fields.get("Title") == "Bad"
    with pytest.raises(SalesforceMalformedRequest) as rule:
        salesforce_client.Lead.create({"LastName": "A", "Company": "Evil"})
    assert content(rule)[0] == {"message": "Company must not be Evil",
                                     "errorCode": "FIELD_CUSTOM_VALIDATION_EXCEPTION"}
    with pytest.raises(SalesforceMalformedRequest) as fault:
        salesforce_client.Lead.create({"LastName": "A", "Company": "C", "Title": "Bad"})
    assert content(fault)[0]["errorCode"] == "FIELD_CUSTOM_VALIDATION_EXCEPTION"
    assert salesforce_emulator.org.records("Lead") == []


# -- replication ---------------------------------------------------------------------------


def test_get_updated_and_get_deleted_report_the_window_at_minute_granularity(
    timed: SalesforceEmulator, clock: Clock
) -> None:
    sf = client(timed)
    early, late = seed_leads(timed, 2)
    clock.advance(minutes=10)
    with timed.server.app_lock:
        timed.org.update("Lead", late, {"Title": "x"})
        timed.org.delete("Lead", early)
    clock.advance(minutes=5)
    updated = sf.Lead.updated(START + timedelta(minutes=5), START + timedelta(hours=1))
    assert updated == {"ids": [late], "latestDateCovered": "2024-04-25T12:15:00.000+0000"}
    deleted = sf.Lead.deleted(START, START + timedelta(minutes=12))
    assert deleted["deletedRecords"] == [
        {"id": early, "deletedDate": "2024-04-25T12:10:00.000+0000"}]
    assert deleted["latestDateCovered"] == "2024-04-25T12:12:00.000+0000"
    with pytest.raises(SalesforceMalformedRequest) as error:
        sf.Lead.updated(START - timedelta(days=31), START)
    assert content(error)[0]["errorCode"] == "INVALID_REPLICATION_DATE"


# -- limits, auth --------------------------------------------------------------------------


def test_limits_and_api_usage_count_each_call(
    salesforce_emulator: SalesforceEmulator, salesforce_client: Any
) -> None:
    salesforce_client.query("SELECT Id FROM Lead")
    assert salesforce_client.api_usage["api-usage"] == (1, 100_000)
    limits = salesforce_client.limits()
    assert limits["DailyApiRequests"] == {"Max": 100_000, "Remaining": 99_998}
    assert {"DailyBulkV2QueryJobs", "DailyBulkApiBatches", "DataStorageMB"} <= set(limits)
    assert salesforce_emulator.api_usage == 2


def test_exceeding_the_daily_limit_answers_403_request_limit_exceeded(
    salesforce_emulator: SalesforceEmulator, salesforce_client: Any
) -> None:
    salesforce_emulator.daily_limit = 1
    salesforce_client.query("SELECT Id FROM Lead")
    # simple-salesforce maps every 403 to SalesforceRefusedRequest (util.exception_handler).
    with pytest.raises(SalesforceRefusedRequest) as error:
        salesforce_client.query("SELECT Id FROM Lead")
    assert error.value.status == 403
    assert content(error) == [{"message": "TotalRequests Limit exceeded.",
                                    "errorCode": "REQUEST_LIMIT_EXCEEDED"}]


def test_an_expired_token_raises_expired_session(
    salesforce_emulator: SalesforceEmulator, salesforce_client: Any
) -> None:
    salesforce_client.query("SELECT Id FROM Lead")
    salesforce_emulator.expire_tokens()
    with pytest.raises(SalesforceExpiredSession) as error:
        salesforce_client.query("SELECT Id FROM Lead")
    assert content(error)[0]["errorCode"] == "INVALID_SESSION_ID"
    assert client(salesforce_emulator).query("SELECT COUNT() FROM Lead")["totalSize"] == 0


def test_token_endpoint_grants_jwt_client_credentials_and_password(
    loopback_ca: ThrowawayCA,
) -> None:
    private, public = SalesforceEmulator.make_jwt_key_pair()
    with SalesforceEmulator(ca=loopback_ca, jwt_public_key_pem=public) as emulator:
        session = trusting_session(emulator.ca_path)
        token_url = f"{emulator.url}/services/oauth2/token"
        claims = {"iss": emulator.consumer_key, "sub": emulator.username,
                  "aud": "https://login.salesforce.com", "exp": int(time.time()) + 180}
        grants = [
            {"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
             "assertion": jwt.encode(claims, private, algorithm="RS256")},
            {"grant_type": "client_credentials", "client_id": emulator.client_id,
             "client_secret": emulator.client_secret},
            {"grant_type": "password", "client_id": emulator.client_id,
             "client_secret": emulator.client_secret, "username": emulator.username,
             "password": emulator.password},
        ]
        for grant in grants:
            answer = session.post(token_url, data=grant)
            assert answer.status_code == 200, answer.text
            body = answer.json()
            assert body["instance_url"] == emulator.url and body["token_type"] == "Bearer"
            sf = Salesforce(instance_url=body["instance_url"], session_id=body["access_token"],
                            session=trusting_session(emulator.ca_path))
            assert sf.query("SELECT COUNT() FROM Lead")["totalSize"] == 0
        wrong_key, _ = SalesforceEmulator.make_jwt_key_pair()
        forged = session.post(token_url, data={**grants[0], "assertion": jwt.encode(
            claims, wrong_key, algorithm="RS256")})
        assert (forged.status_code, forged.json()["error"]) == (400, "invalid_grant")
        bad_password = session.post(token_url, data={**grants[2], "password": "nope"})
        assert bad_password.json() == {"error": "invalid_grant",
                                       "error_description": "authentication failure"}
        assert emulator.api_usage == 3


# -- Bulk API 2.0 --------------------------------------------------------------------------


def test_bulk2_query_pages_12000_rows_and_query_all_adds_deleted(
    salesforce_emulator: SalesforceEmulator, salesforce_client: Any
) -> None:
    ids = seed_leads(salesforce_emulator, 12_000)
    with salesforce_emulator.server.app_lock:
        salesforce_emulator.org.delete("Lead", ids[0])
    chunks = list(salesforce_client.bulk2.Lead.query(
        "SELECT Id, Email, IsDeleted FROM Lead", max_records=5000, wait=0))
    assert len(chunks) == 3
    assert str(chunks[0]).startswith('"Id","Email","IsDeleted"\n"')
    rows = csv_rows(chunks)
    assert [r["Id"] for r in rows] == ids[1:]
    everything = csv_rows(list(salesforce_client.bulk2.Lead.query_all(
        "SELECT Id, IsDeleted FROM Lead", max_records=5000, wait=0)))
    assert len(everything) == 12_000
    assert everything[0] == {"Id": ids[0], "IsDeleted": "true"}
    assert salesforce_emulator.calls("GET /services/data/v{version}/jobs/query/{job_id}/results") \
        == 6


def test_bulk2_ingest_insert_and_upsert_report_a_failed_row(
    salesforce_emulator: SalesforceEmulator, salesforce_client: Any
) -> None:
    bulk = salesforce_client.bulk2.Lead
    inserted = bulk.insert(records=[
        {"LastName": "Ok", "Company": "C", "Syncd_Id__c": "k1"},
        {"LastName": "", "Company": "C", "Syncd_Id__c": "k2"},
    ], wait=0)
    assert (inserted[0]["numberRecordsProcessed"], inserted[0]["numberRecordsFailed"]) == (2, 1)
    job = inserted[0]["job_id"]
    failed = list(csv.DictReader(io.StringIO(bulk.get_failed_records(job))))
    assert failed[0]["sf__Error"] == (
        "REQUIRED_FIELD_MISSING:Required fields are missing: [LastName]:LastName --")
    succeeded = list(csv.DictReader(io.StringIO(bulk.get_successful_records(job))))
    assert succeeded[0]["sf__Created"] == "true" and succeeded[0]["Syncd_Id__c"] == "k1"
    upserted = bulk.upsert(records=[
        {"LastName": "Renamed", "Company": "C", "Syncd_Id__c": "k1"},
        {"LastName": "New", "Company": "C", "Syncd_Id__c": "k3"},
    ], external_id_field="Syncd_Id__c", wait=0)
    assert upserted[0]["numberRecordsFailed"] == 0
    created = list(csv.DictReader(io.StringIO(bulk.get_successful_records(upserted[0]["job_id"]))))
    assert [r["sf__Created"] for r in created] == ["false", "true"]
    names = sorted(r["LastName"] for r in salesforce_emulator.org.records("Lead"))
    assert names == ["New", "Renamed"]


# -- faults --------------------------------------------------------------------------------


def test_injected_errors_drops_and_the_kill_hook(
    salesforce_emulator: SalesforceEmulator, salesforce_client: Any
) -> None:
    salesforce_emulator.faults = Faults(error_rate=1.0, error_statuses=(429,))
    with pytest.raises(SalesforceGeneralError) as error:
        salesforce_client.query("SELECT Id FROM Lead")
    assert error.value.status == 503
    assert content(error)[0]["errorCode"] == "SERVER_UNAVAILABLE"
    salesforce_emulator.faults = Faults(drop_rate=1.0)
    with pytest.raises(requests.exceptions.ConnectionError):
        salesforce_client.query("SELECT Id FROM Lead")
    killed: list[int] = []
    served = salesforce_emulator.server.next_number()
    salesforce_emulator.faults = Faults(kill_after=served + 1,
                                        on_kill=lambda: killed.append(1))
    salesforce_client.Lead.create({"LastName": "A", "Company": "C"})
    assert killed == [1]
    assert len(salesforce_emulator.org.records("Lead")) == 1


# -- scale ---------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_full_query_streams_all_100k_leads_once_each_through_query_more(
    salesforce_emulator: SalesforceEmulator, salesforce_client: Any
) -> None:
    """At scale, through simple-salesforce's queryMore; the rate is `bench_emulators`', measured,
    not asserted here."""
    seed_leads(salesforce_emulator, 100_000)
    answer = salesforce_client.query_all("SELECT Id, Email, SystemModstamp FROM Lead")
    assert answer["totalSize"] == 100_000
    ids = [record["Id"] for record in answer["records"]]
    assert len(ids) == len(set(ids)) == 100_000
    assert set(ids) == {record["Id"] for record in salesforce_emulator.org.records("Lead")}


# -- the org at scale: minted ids, wire datetimes, child indexes -----------------------------


def test_minted_ids_carry_the_checksum_of_their_first_fifteen_characters() -> None:
    from connectors.salesforce.ids import IdMaker, _base62, _checksum, to_id18

    mint = IdMaker()
    # Either side of every boundary where a base-62 digit carries into the next block.
    for counter in (1, 61, 62, 3843, 3844, 62**4 - 1, 62**4, 62**5 - 1, 62**5, 62**6 + 12345):
        mint.counter = counter - 1
        minted = mint("00Q")
        first_fifteen = f"00Q8c0{_base62(counter, 9)}"
        assert minted == first_fifteen + _checksum(first_fifteen)
        assert to_id18(minted) == minted
        assert to_id18(minted[:15].lower() + minted[15:]) == minted


@pytest.mark.parametrize(
    "id15,id18",
    [
        # Published worked examples of Salesforce's 15- to 18-character conversion, not
        # derived from the code under test.
        ("a0D30000001n7Pi", "a0D30000001n7PiEAI"),
        ("500x000000003TR", "500x000000003TRAAY"),
        ("0019000000B98de", "0019000000B98deAAB"),
    ],
)
def test_the_checksum_matches_salesforces_published_examples(id15: str, id18: str) -> None:
    from connectors.salesforce.ids import _checksum, to_id18

    assert id15 + _checksum(id15) == id18
    assert to_id18(id15) == id18


def test_wire_datetimes_equal_isoformat_in_any_zone_with_or_without_milliseconds() -> None:
    from datetime import timezone

    from connectors.salesforce.values import wire_datetime

    zone = timezone(timedelta(hours=-5, minutes=-30))
    for moment in (START, START.replace(microsecond=123_999), START.astimezone(zone),
                   datetime(999, 12, 31, 23, 59, 59, tzinfo=UTC), START.replace(tzinfo=None)):
        aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
        expected = aware.astimezone(UTC).isoformat(timespec="milliseconds")[:23] + "+0000"
        assert wire_datetime(moment) == expected


def test_merging_contacts_moves_roles_members_and_tasks_of_the_loser_only() -> None:
    from connectors.salesforce.org import Org

    org = Org(clock=lambda: START)
    account = org.insert("Account", {"Name": "Acme"})
    campaign = org.insert("Campaign", {"Name": "Launch"})
    master, loser, bystander = (
        org.insert("Contact", {"LastName": name, "AccountId": account})
        for name in ("Master", "Loser", "Bystander"))
    deal = org.insert("Opportunity", {"Name": "Deal", "AccountId": account,
                                      "StageName": "Prospecting", "CloseDate": "2024-06-30"})
    role = org.insert("OpportunityContactRole", {"OpportunityId": deal, "ContactId": loser})
    member = org.insert("CampaignMember", {"CampaignId": campaign, "ContactId": loser})
    task = org.insert("Task", {"Subject": "Call", "WhoId": loser})
    untouched = org.insert("Task", {"Subject": "Call", "WhoId": bystander})

    org.merge("Contact", master, loser, at=START + timedelta(hours=1))

    assert org.get("OpportunityContactRole", role)["ContactId"] == master
    assert org.get("CampaignMember", member)["ContactId"] == master
    assert org.get("Task", task)["WhoId"] == master
    assert org.get("Task", untouched)["WhoId"] == bystander
    assert org.get("Contact", loser)["MasterRecordId"] == master


def test_converting_a_lead_moves_its_members_and_a_later_conversion_finds_none() -> None:
    from connectors.salesforce.org import Org

    org = Org(clock=lambda: START)
    campaigns = [org.insert("Campaign", {"Name": f"C{n}"}) for n in range(2)]
    lead, other = (org.insert("Lead", {"LastName": n, "Company": "Acme"}) for n in ("A", "B"))
    mine = [org.insert("CampaignMember", {"CampaignId": c, "LeadId": lead}) for c in campaigns]
    theirs = org.insert("CampaignMember", {"CampaignId": campaigns[0], "LeadId": other})

    contact = org.convert_lead(lead, opportunity_name="Deal")["contactId"]

    assert {org.get("CampaignMember", m)["ContactId"] for m in mine} == {contact}
    assert org.get("CampaignMember", theirs)["ContactId"] is None
    opportunity = org.get("Lead", lead)["ConvertedOpportunityId"]
    assert org.get("Opportunity", opportunity)["CampaignId"] in campaigns


def test_a_new_primary_role_clears_the_old_one_on_its_own_opportunity_only() -> None:
    from connectors.salesforce.org import Org

    org = Org(clock=lambda: START)
    account = org.insert("Account", {"Name": "Acme"})
    contact = org.insert("Contact", {"LastName": "Ada", "AccountId": account})
    deals = [org.insert("Opportunity", {"Name": f"D{n}", "StageName": "Prospecting",
                                        "CloseDate": "2024-06-30"}) for n in range(2)]
    first, elsewhere = (
        org.insert("OpportunityContactRole",
                   {"OpportunityId": deal, "ContactId": contact, "IsPrimary": True})
        for deal in deals)
    second = org.insert("OpportunityContactRole",
                        {"OpportunityId": deals[0], "ContactId": contact, "IsPrimary": True})

    assert org.get("OpportunityContactRole", first)["IsPrimary"] is False
    assert org.get("OpportunityContactRole", second)["IsPrimary"] is True
    assert org.get("OpportunityContactRole", elsewhere)["IsPrimary"] is True


def test_a_rolled_back_reparenting_leaves_nothing_for_a_later_merge_to_move() -> None:
    from connectors.salesforce.org import Org

    org = Org(clock=lambda: START)
    first, second, third = (org.insert("Lead", {"LastName": n, "Company": "Acme"})
                            for n in ("A", "B", "C"))
    task = org.insert("Task", {"Subject": "Call", "WhoId": first})
    with org.atomic() as rollback:
        org.update("Task", task, {"WhoId": second})
        rollback()
    org.merge("Lead", third, second)  # the task no longer names the loser: it stays put
    assert org.get("Task", task)["WhoId"] == first
    org.merge("Lead", third, first)
    assert org.get("Task", task)["WhoId"] == third
