"""Mapping files: the shipped defaults say what ARCHITECTURE section 5 says, every malformed
file is answered by one line naming file, section and key, and `check_online` compares the
files with live schemas."""

from __future__ import annotations

import errno
import io
import os
import shutil
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from syncd.attribution_mapping import load_attribution
from syncd.definitions import load_definitions
from syncd.errors import EXIT_USAGE, MappingError
from syncd.mapping import FieldMapping, Mappings, ValueMapMiss
from syncd.mapping_files import DEFAULTS_FOLDER
from syncd.mapping_loader import load_mappings
from syncd.mapping_online import check_online, missing_custom_fields
from syncd.model import FieldInfo, ObjectSchema

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "mappings"
CORPUS = Path(__file__).resolve().parent / "mapping_corpus"
CASES = sorted(CORPUS.glob("*.toml"))

DEALSTAGES = {
    "Prospecting": "appointmentscheduled",
    "Qualification": "qualifiedtobuy",
    "Needs Analysis": "qualifiedtobuy",
    "Value Proposition": "presentationscheduled",
    "Id. Decision Makers": "decisionmakerboughtin",
    "Perception Analysis": "decisionmakerboughtin",
    "Proposal/Price Quote": "contractsent",
    "Negotiation/Review": "contractsent",
    "Closed Won": "closedwon",
    "Closed Lost": "closedlost",
}


def folder_with(tmp_path: Path, **files: str) -> Path:
    folder = tmp_path / "mappings"
    folder.mkdir(exist_ok=True)
    for entity, text in files.items():
        (folder / f"{entity}.toml").write_text(text, encoding="utf-8")
    return folder


def problems_of(folder: Path) -> list[str]:
    with pytest.raises(MappingError) as caught:
        load_mappings(folder)
    assert caught.value.exit_code == EXIT_USAGE
    return caught.value.lines()


# -- the shipped defaults


def test_shipped_person_rules_are_the_documented_defaults() -> None:
    person = load_mappings(SHIPPED).person
    rules = {name: (f.hubspot, dict(f.salesforce), f.rule) for name, f in person.fields.items()}
    both = ("Contact", "Lead")
    assert rules["email"] == ("email", dict.fromkeys(both, "Email"), "two-way")
    assert rules["firstname"] == (
        "firstname",
        dict.fromkeys(both, "FirstName"),
        "prefer-salesforce",
    )
    assert rules["lastname"] == ("lastname", dict.fromkeys(both, "LastName"), "prefer-salesforce")
    assert rules["jobtitle"] == ("jobtitle", dict.fromkeys(both, "Title"), "two-way")
    assert rules["phone"] == ("phone", dict.fromkeys(both, "Phone"), "two-way")
    assert rules["company"] == ("company", {"Lead": "Company"}, "none")
    assert (person.hubspot_object, person.salesforce_objects) == ("contacts", both)
    assert person.match_keys == ("email",)
    assert person.fields["email"].transform == "email"
    assert all(f.blank == "keep" for f in person.fields.values())


def test_shipped_account_matches_on_the_normalized_domain() -> None:
    account = load_mappings(SHIPPED).account
    domain = account.fields["domain"]
    assert (account.hubspot_object, account.salesforce_objects) == ("companies", ("Account",))
    assert account.match_keys == ("domain",)
    assert (domain.hubspot, dict(domain.salesforce), domain.transform) == (
        "domain",
        {"Account": "Website"},
        "domain",
    )
    assert domain.from_salesforce("https://www.Acme.com/about") == domain.from_hubspot("acme.com")
    assert account.fields["name"].salesforce == {"Account": "Name"}


def test_shipped_opportunity_fields_are_always_salesforce_with_the_full_stage_map() -> None:
    opportunity = load_mappings(SHIPPED).opportunity
    fields = opportunity.fields
    assert {f.hubspot: f.salesforce["Opportunity"] for f in fields.values()} == {
        "dealname": "Name",
        "amount": "Amount",
        "closedate": "CloseDate",
        "dealstage": "StageName",
    }
    assert {f.rule for f in fields.values()} == {"always-salesforce"}
    assert dict(fields["stage"].values) == DEALSTAGES
    assert (fields["amount"].transform, fields["closedate"].transform) == ("number", "date")
    assert opportunity.match_keys == ()


def test_closedate_goes_to_hubspot_as_midnight_utc() -> None:
    closedate = load_mappings(None).opportunity.fields["closedate"]
    unified = closedate.from_salesforce("2024-03-01")
    assert unified == date(2024, 3, 1)
    assert closedate.hubspot_value(unified, "datetime") == "1709251200000"


def test_installed_defaults_are_identical_to_the_shipped_files() -> None:
    for entity in ("person", "account", "opportunity"):
        shipped = (SHIPPED / f"{entity}.toml").read_bytes()
        assert (DEFAULTS_FOLDER / f"{entity}.toml").read_bytes() == shipped, entity


def test_no_folder_means_the_installed_defaults() -> None:
    mappings = load_mappings(None)
    assert mappings.folder is None
    assert {m.path.parent for m in mappings.all()} == {DEFAULTS_FOLDER}


def test_a_folder_lacking_a_file_falls_back_to_the_installed_default(tmp_path: Path) -> None:
    jobtitle = '[fields.jobtitle]\nhubspot = "jobtitle"\nsalesforce = "Title"\n'
    own = (SHIPPED / "person.toml").read_text()
    own = own.replace(f'{jobtitle}rule = "two-way"', f'{jobtitle}rule = "prefer-hubspot"')
    folder = folder_with(tmp_path, person=own)
    mappings = load_mappings(folder)
    assert mappings.person.fields["jobtitle"].rule == "prefer-hubspot"
    assert mappings.person.path == folder / "person.toml"
    assert mappings.account.path == DEFAULTS_FOLDER / "account.toml"
    assert dict(mappings.opportunity.fields["stage"].values) == DEALSTAGES


def test_connectors_learn_what_to_request() -> None:
    person = load_mappings(None).person
    assert person.hubspot_properties()[:5] == (
        "email",
        "firstname",
        "lastname",
        "jobtitle",
        "phone",
    )
    assert "Company" in person.salesforce_fields("Lead")
    assert "Company" not in person.salesforce_fields("Contact")


# -- value maps


def test_value_map_translates_salesforce_stages_and_back() -> None:
    stage = load_mappings(None).opportunity.fields["stage"]
    assert stage.to_hubspot("Needs Analysis") == "qualifiedtobuy"
    assert stage.to_hubspot(" closed won ") == "closedwon"
    assert stage.to_salesforce("qualifiedtobuy") == "Qualification"
    assert stage.to_hubspot(None) is None


def test_a_stage_missing_from_the_map_is_a_value_map_miss_not_a_blank() -> None:
    stage = load_mappings(None).opportunity.fields["stage"]
    with pytest.raises(ValueMapMiss, match="Legal Review"):
        stage.to_hubspot("Legal Review")
    with pytest.raises(ValueMapMiss):
        stage.salesforce_value("somecustomstage")


# -- the corpus of malformed files


def test_the_corpus_holds_at_least_thirty_malformed_files() -> None:
    assert len(CASES) >= 30
    assert all(case.with_name(case.stem.rsplit(".", 1)[0] + ".expected").exists() for case in CASES)


@pytest.mark.parametrize("case", CASES, ids=[case.stem for case in CASES])
def test_a_malformed_file_is_answered_by_one_line(case: Path, tmp_path: Path) -> None:
    name, entity = case.stem.rsplit(".", 1)
    expected = case.with_name(f"{name}.expected").read_text(encoding="utf-8").strip()
    folder = folder_with(tmp_path)
    shutil.copy(case, folder / f"{entity}.toml")
    assert problems_of(folder) == [expected]
    assert expected.startswith(f"mappings/{entity}.toml")


def test_every_problem_in_every_file_is_listed_at_once(tmp_path: Path) -> None:
    person = (SHIPPED / "person.toml").read_text()
    person = person.replace(
        '"FirstName"\nrule = "prefer-salesforce"', '"FirstName"\nrule = "prefer-salesfroce"'
    )
    person = person.replace('transform = "phone"', 'transform = "fone"')
    person = person.replace('keys = ["email"]', 'keys = ["mail"]')
    account = (
        (SHIPPED / "account.toml")
        .read_text()
        .replace('hubspot = "companies"', 'hubspot = "company"')
    )
    lines = problems_of(folder_with(tmp_path, person=person, account=account))
    assert lines == [
        'mappings/person.toml [fields.firstname] rule: "prefer-salesfroce" is not a rule (one of '
        "two-way, prefer-salesforce, prefer-hubspot, always-salesforce, always-hubspot, none). "
        'Did you mean "prefer-salesforce"?',
        'mappings/person.toml [fields.phone] transform: "fone" is not a transform (one of email, '
        'domain, phone, date, number). Did you mean "phone"?',
        'mappings/person.toml [match] keys: "mail" is not a field of this file; match keys name '
        '[fields.NAME] tables. Did you mean "email"?',
        'mappings/account.toml [objects] hubspot: "company" is not a HubSpot object syncd syncs '
        'as accounts (it syncs "companies"). Did you mean "companies"?',
    ]


def test_a_misspelt_file_name_is_reported_rather_than_silently_ignored(tmp_path: Path) -> None:
    folder = folder_with(tmp_path)
    shutil.copy(SHIPPED / "person.toml", folder / "persons.toml")
    (folder / "notes.toml").write_text("# not a mapping file\n")
    assert problems_of(folder) == [
        "mappings/persons.toml: not a file syncd reads (it reads person.toml, account.toml, "
        'opportunity.toml, lifecycle.toml, attribution.toml). Did you mean "person.toml"?'
    ]


def test_a_missing_folder_is_one_line(tmp_path: Path) -> None:
    [line] = problems_of(tmp_path / "nowhere")
    assert line.startswith(f"{tmp_path / 'nowhere'}: the mappings folder does not exist")


def refuse(monkeypatch: pytest.MonkeyPatch, module: Any, name: str, path: str) -> None:
    """`module.<name>(path)` is refused as the kernel refuses a user without permission (the
    tests run as root, whom a real `chmod 000` would not stop)."""
    real = getattr(module, name)

    def refused(target: Any, *args: Any, **kwargs: Any) -> Any:
        if os.fspath(target) == path:
            raise PermissionError(errno.EACCES, "Permission denied", path)
        return real(target, *args, **kwargs)

    monkeypatch.setattr(module, name, refused)


@pytest.mark.parametrize(("name", "suffix"), [("listdir", ""), ("stat", "/.")])
def test_a_folder_that_cannot_be_listed_or_entered_is_one_line_from_every_loader(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, suffix: str
) -> None:
    folder = folder_with(tmp_path, person=(SHIPPED / "person.toml").read_text())
    refuse(monkeypatch, os, name, f"{folder}{suffix}")
    expected = [
        f"{folder}: the mappings folder cannot be read: Permission denied. Let the user syncd "
        f"runs as list and enter it (chmod a+rx {folder})."
    ]
    assert problems_of(folder) == expected
    with pytest.raises(MappingError) as caught:
        load_definitions(folder)
    assert caught.value.lines() == expected


def test_a_mapping_file_that_cannot_be_reached_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = folder_with(tmp_path)
    (folder / "person.toml").symlink_to(SHIPPED / "person.toml")
    for module, name in ((os, "stat"), (io, "open")):
        refuse(monkeypatch, module, name, str(folder / "person.toml"))
    assert problems_of(folder) == ["mappings/person.toml: cannot be read: Permission denied."]


def test_a_wrongly_cased_file_name_is_reported_rather_than_silently_ignored(
    tmp_path: Path,
) -> None:
    folder = folder_with(tmp_path)
    shutil.copy(SHIPPED / "person.toml", folder / "Person.TOML")
    shutil.copy(SHIPPED / "lifecycle.toml", folder / "lifecycle.TOML")
    reads = (
        "not a file syncd reads (it reads person.toml, account.toml, opportunity.toml, "
        "lifecycle.toml, attribution.toml)."
    )
    assert problems_of(folder) == [
        f'mappings/Person.TOML: {reads} Did you mean "person.toml"?',
        f'mappings/lifecycle.TOML: {reads} Did you mean "lifecycle.toml"?',
    ]


def test_a_broken_symbolic_link_is_reported_rather_than_silently_ignored(tmp_path: Path) -> None:
    folder = folder_with(tmp_path)
    (folder / "person.toml").symlink_to("nowhere.toml")
    (folder / "attribution.toml").symlink_to("attribution.toml")  # a loop
    fix = "point it at the mapping file, or remove it to use the installed default."
    assert problems_of(folder) == [
        f'mappings/attribution.toml: a broken symbolic link (to "attribution.toml"); {fix}',
        f'mappings/person.toml: a broken symbolic link (to "nowhere.toml"); {fix}',
    ]


def test_a_file_starting_with_a_byte_order_mark_loads_like_one_without(tmp_path: Path) -> None:
    text = (SHIPPED / "person.toml").read_text(encoding="utf-8")
    folder = folder_with(tmp_path)
    (folder / "person.toml").write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
    assert load_mappings(folder).person == replace(
        load_mappings(SHIPPED).person, path=folder / "person.toml"
    )


def test_a_problem_stays_one_line_whatever_the_key_holds(tmp_path: Path) -> None:
    person = (SHIPPED / "person.toml").read_text().replace(
        "[fields.phone]\n", '[fields."ph\\none\\u2028"]\nblank = "never"\n'
    )
    assert problems_of(folder_with(tmp_path, person=person)) == [
        'mappings/person.toml [fields.ph\\none\\u2028] blank: "never" is not a blank policy '
        "(one of keep, clear)."
    ]


@pytest.mark.parametrize("days", [1_000_000_000, 99_999_999_999_999_999_999])
def test_a_lookback_past_ten_years_is_one_line(tmp_path: Path, days: int) -> None:
    (tmp_path / "attribution.toml").write_text(f"[attribution]\nlookback_days = {days}\n")
    with pytest.raises(MappingError) as caught:
        load_attribution(tmp_path)
    assert caught.value.lines() == [
        f"{tmp_path.name}/attribution.toml [attribution] lookback_days: must be at most 3650 "
        f"days (ten years); not {days}."
    ]


def test_a_lookback_of_ten_years_is_accepted(tmp_path: Path) -> None:
    (tmp_path / "attribution.toml").write_text("[attribution]\nlookback_days = 3650\n")
    assert load_attribution(tmp_path).lookback_days == 3650


# -- check_online


def info(
    name: str, type_: str, *options: str, updateable: bool = True, unique: bool = False
) -> FieldInfo:
    return FieldInfo(
        name, type_, updateable=updateable, createable=updateable, options=options, unique=unique
    )


def schema(system: str, obj: str, *fields: FieldInfo) -> ObjectSchema:
    return ObjectSchema(system, obj, {f.name: f for f in fields})


def text(*names: str) -> list[FieldInfo]:
    return [info(name, "string") for name in names]


def live_schemas() -> tuple[dict[str, ObjectSchema], dict[str, ObjectSchema]]:
    """What a portal and an org with syncd installed describe, built by hand."""
    syncd_id = info("syncd_id", "string", unique=True)
    hubspot = {
        "contacts": schema(
            "hubspot",
            "contacts",
            *text("email", "firstname", "lastname", "jobtitle", "website", "company"),
            info("phone", "phone_number"),
            syncd_id,
            info("syncd_attributed_revenue", "number"),
        ),
        "companies": schema(
            "hubspot",
            "companies",
            *text("domain", "name", "industry"),
            info("phone", "phone_number"),
            syncd_id,
        ),
        "deals": schema(
            "hubspot",
            "deals",
            *text("dealname", "syncd_first_touch_campaign", "syncd_last_touch_campaign"),
            info("amount", "number"),
            info("closedate", "datetime"),
            syncd_id,
            info("dealstage", "enumeration", *sorted(set(DEALSTAGES.values()))),
        ),
    }
    person = [
        info("Email", "email"),
        info("FirstName", "string"),
        info("LastName", "string"),
        info("Title", "string"),
        info("Phone", "phone"),
        info("Syncd_Id__c", "string", unique=True),
        info("Lifecycle_Stage__c", "picklist", "Lead", "MQL"),
    ]
    salesforce = {
        "Contact": schema("salesforce", "Contact", *person),
        "Lead": schema(
            "salesforce", "Lead", *person, info("Website", "url"), info("Company", "string")
        ),
        "Account": schema(
            "salesforce",
            "Account",
            info("Name", "string"),
            info("Website", "url"),
            info("Phone", "phone"),
            info("Industry", "picklist", "Banking"),
        ),
        "Opportunity": schema(
            "salesforce",
            "Opportunity",
            info("Name", "string"),
            info("Amount", "currency"),
            info("CloseDate", "date"),
            info("StageName", "picklist", *DEALSTAGES),
            info("First_Touch_Campaign__c", "string"),
            info("Last_Touch_Campaign__c", "string"),
        ),
    }
    return hubspot, salesforce


def with_field(
    schemas: dict[str, ObjectSchema], obj: str, field: FieldInfo | None, drop: str | None = None
) -> dict[str, ObjectSchema]:
    fields = dict(schemas[obj].fields)
    if drop:
        del fields[drop]
    if field is not None:
        fields[field.name] = field
    return {**schemas, obj: replace(schemas[obj], fields=fields)}


@pytest.fixture
def defaults() -> Mappings:
    return load_mappings(None)


def test_the_defaults_pass_against_a_complete_portal_and_org(defaults: Mappings) -> None:
    hubspot, salesforce = live_schemas()
    assert check_online(defaults, hubspot, salesforce) == []


def test_an_unknown_property_is_reported_with_a_suggestion(defaults: Mappings) -> None:
    hubspot, salesforce = live_schemas()
    hubspot = with_field(hubspot, "contacts", info("job_title", "string"), drop="jobtitle")
    assert check_online(defaults, hubspot, salesforce) == [
        'default_mappings/person.toml [fields.jobtitle] hubspot: HubSpot property "jobtitle" '
        "does not "
        'exist on contacts in this portal. Did you mean "job_title"?'
    ]


def test_an_unknown_salesforce_field_is_reported_per_object(defaults: Mappings) -> None:
    hubspot, salesforce = live_schemas()
    salesforce = with_field(salesforce, "Lead", info("Titles", "string"), drop="Title")
    assert check_online(defaults, hubspot, salesforce) == [
        "default_mappings/person.toml [fields.jobtitle] salesforce: Salesforce Lead has no field "
        '"Title". Did you mean "Titles"?'
    ]


def test_a_number_property_fed_by_a_text_field_is_a_type_mismatch(defaults: Mappings) -> None:
    hubspot, salesforce = live_schemas()
    salesforce = with_field(salesforce, "Opportunity", info("Amount", "string"))
    assert check_online(defaults, hubspot, salesforce) == [
        'default_mappings/opportunity.toml [fields.amount] hubspot: HubSpot property "amount" is '
        "number but is fed from Salesforce Opportunity.Amount, which is text. Map fields of the "
        'same kind, or set rule = "none".'
    ]


def test_a_stage_the_pipeline_does_not_hold_is_reported(defaults: Mappings) -> None:
    hubspot, salesforce = live_schemas()
    stages = (*(s for s in set(DEALSTAGES.values()) if s != "closedlost"), "closedlosts")
    hubspot = with_field(hubspot, "deals", info("dealstage", "enumeration", *sorted(stages)))
    assert check_online(defaults, hubspot, salesforce) == [
        'default_mappings/opportunity.toml [fields.stage.values] "Closed Lost": HubSpot property '
        '"dealstage" has no option "closedlost". Did you mean "closedlosts"?'
    ]


def test_a_salesforce_stage_missing_from_the_map_is_reported(defaults: Mappings) -> None:
    hubspot, salesforce = live_schemas()
    salesforce = with_field(
        salesforce, "Opportunity", info("StageName", "picklist", *DEALSTAGES, "Legal Review")
    )
    assert check_online(defaults, hubspot, salesforce) == [
        "default_mappings/opportunity.toml [fields.stage] values: Salesforce "
        'Opportunity.StageName values "Legal Review" have no value in HubSpot property '
        '"dealstage"; add them to [fields.stage.values] ("Salesforce value" = "HubSpot value").'
    ]


def test_a_read_only_target_is_reported_for_the_rules_write_direction(defaults: Mappings) -> None:
    hubspot, salesforce = live_schemas()
    hubspot = with_field(hubspot, "deals", info("dealname", "string", updateable=False))
    salesforce = with_field(salesforce, "Contact", info("Title", "string", updateable=False))
    assert check_online(defaults, hubspot, salesforce) == [
        "default_mappings/person.toml [fields.jobtitle] salesforce: Salesforce Contact.Title is "
        'read-only, but rule "two-way" writes to it. Use rule = "always-salesforce" or "none".',
        'default_mappings/opportunity.toml [fields.name] hubspot: HubSpot property "dealname" is '
        'read-only, but rule "always-salesforce" writes to it. Use rule = "always-hubspot" or '
        '"none".',
    ]


def test_a_read_only_source_is_fine(defaults: Mappings) -> None:
    hubspot, salesforce = live_schemas()
    salesforce = with_field(salesforce, "Opportunity", info("Name", "string", updateable=False))
    assert check_online(defaults, hubspot, salesforce) == []


def test_missing_syncd_custom_fields_are_reported(defaults: Mappings) -> None:
    hubspot, salesforce = live_schemas()
    hubspot = with_field(hubspot, "contacts", info("syncd_id", "string"))  # not unique
    hubspot = with_field(hubspot, "deals", None, drop="syncd_first_touch_campaign")
    salesforce = with_field(salesforce, "Lead", None, drop="Syncd_Id__c")
    salesforce["Campaign"] = schema("salesforce", "Campaign", info("Name", "string"))
    assert check_online(defaults, hubspot, salesforce) == [
        'default_mappings/person.toml [objects] hubspot: HubSpot contacts property "syncd_id" is '
        "not unique: syncd needs it (string, unique) for its idempotency key. `syncd check "
        "--online --fix` creates it.",
        'default_mappings/person.toml [objects] salesforce: Salesforce Lead field "Syncd_Id__c" '
        "is missing: syncd needs it (Text(255), External ID, Unique) for its idempotency key. "
        "An admin creates it in Setup, Object Manager.",
        "default_mappings/opportunity.toml [objects] hubspot: HubSpot deals property "
        '"syncd_first_touch_campaign" is missing: syncd needs it (string) for the first touch. '
        "`syncd check --online --fix` creates it.",
        "default_mappings/opportunity.toml [objects] salesforce: Salesforce Campaign field "
        '"Attributed_Revenue__c" is missing: syncd needs it (Currency) for attributed revenue. '
        "An admin creates it in Setup, Object Manager.",
    ]
    missing = missing_custom_fields(defaults, hubspot, salesforce)
    assert [(c.system, c.object, c.name) for c in missing] == [
        ("hubspot", "contacts", "syncd_id"),
        ("hubspot", "deals", "syncd_first_touch_campaign"),
        ("salesforce", "Lead", "Syncd_Id__c"),
        ("salesforce", "Campaign", "Attributed_Revenue__c"),
    ]


def test_an_object_that_was_not_described_is_reported(defaults: Mappings) -> None:
    hubspot, salesforce = live_schemas()
    del salesforce["Lead"]
    assert check_online(defaults, hubspot, salesforce) == [
        "default_mappings/person.toml [objects] salesforce: Salesforce Lead was not described; "
        "check the user's object permissions."
    ]


# -- against the emulators, through the real client libraries


def hubspot_schema(client: Any, object_type: str) -> ObjectSchema:
    fields = {}
    for prop in client.crm.properties.core_api.get_all(object_type=object_type).results:
        meta = prop.modification_metadata
        writable = not (meta and meta.read_only_value) and not prop.calculated
        fields[prop.name] = FieldInfo(
            prop.name,
            prop.type,
            updateable=writable,
            createable=writable,
            options=tuple(o.value for o in prop.options or ()),
            unique=bool(prop.has_unique_value),
        )
    return ObjectSchema("hubspot", object_type, fields)


def salesforce_schema(client: Any, sobject: str) -> ObjectSchema:
    described = getattr(client, sobject).describe()
    return ObjectSchema(
        "salesforce",
        sobject,
        {
            f["name"]: FieldInfo(
                f["name"],
                f["type"],
                updateable=f["updateable"],
                createable=f["createable"],
                unique=f["unique"],
                options=tuple(p["value"] for p in f["picklistValues"]),
            )
            for f in described["fields"]
        },
    )


def test_the_defaults_fit_the_emulators_but_for_syncds_own_hubspot_properties(
    hubspot_client: Any, salesforce_client: Any, defaults: Mappings
) -> None:
    hubspot = {t: hubspot_schema(hubspot_client, t) for t in ("contacts", "companies", "deals")}
    salesforce = {
        o: salesforce_schema(salesforce_client, o)
        for o in ("Contact", "Lead", "Account", "Opportunity", "Campaign")
    }
    problems = check_online(defaults, hubspot, salesforce)
    # A fresh portal lacks the syncd_* properties until `syncd check --online --fix`.
    assert problems and all(
        "[objects] hubspot: HubSpot" in line and '"syncd_' in line for line in problems
    )
    assert {c.system for c in missing_custom_fields(defaults, hubspot, salesforce)} == {"hubspot"}


# -- value-map round trips

invertible_maps = st.dictionaries(
    st.text(min_size=1).filter(str.strip),
    st.text(min_size=1).filter(str.strip),
    min_size=1,
    max_size=8,
).filter(lambda m: len(set(m.values())) == len(m))


@given(invertible_maps)
def test_an_invertible_value_map_round_trips_both_ways(values: dict[str, str]) -> None:
    stage = FieldMapping(
        "stage", "dealstage", {"Opportunity": "StageName"}, "two-way", values=values
    )
    for salesforce_value, hubspot_value in values.items():
        assert stage.to_hubspot(salesforce_value) == hubspot_value
        assert stage.salesforce_value(stage.from_salesforce(salesforce_value)) == salesforce_value


@given(st.sampled_from(sorted(set(DEALSTAGES.values()))))
def test_every_hubspot_stage_reads_back_from_the_salesforce_stage_it_is_written_as(
    hubspot_stage: str,
) -> None:
    stage = load_mappings(None).opportunity.fields["stage"]
    assert stage.from_salesforce(stage.salesforce_value(hubspot_stage)) == hubspot_stage


def test_a_pipe_a_device_or_a_huge_file_in_a_mapping_file_s_place_is_refused_unread(
    tmp_path: Path,
) -> None:
    """A FIFO would hang `check` and /dev/zero fill memory: each is one line, unread."""
    folder = folder_with(tmp_path)
    os.mkfifo(folder / "person.toml")
    (folder / "account.toml").symlink_to("/dev/zero")
    (folder / "opportunity.toml").write_text("# padding\n" * 110_000)
    assert problems_of(folder) == [
        "mappings/person.toml: not a regular file (a pipe or a device); put the mapping file "
        "itself there.",
        "mappings/account.toml: not a regular file (a pipe or a device); put the mapping file "
        "itself there.",
        "mappings/opportunity.toml: 1,100,000 bytes, too large for a mapping file (at most "
        "1,048,576); is it the right file?",
    ]
