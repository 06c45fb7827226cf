"""The in-memory Salesforce org behind the emulator: schema, records, validation, seeding.

Records are stored in wire form (the JSON the REST API answers): canonical API-name keys;
`str` for text, ids and picklists, `"YYYY-MM-DD"` dates, `"2024-04-25T15:50:37.000+0000"`
datetimes, numbers, booleans. A stored record (`Row`) holds only the fields that were set plus
the system fields, and reads absent fields as None, so that a million people fit in memory.
Rows are replaced, never mutated, on every write: a query locator that holds rows therefore
pages through a snapshot, as Salesforce's server-side cursors do.

Every write goes through the same checks the API applies (wire reference 2.5 and 2.10), so
seeding a test org with bad data fails the way a real org would.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from connectors.loopback import utc_now

Rule = Callable[[Mapping[str, Any]], str | None]
Screen = Callable[[str, Mapping[str, Any]], bool]

_B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_SUFFIX = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
_ID_CHARS = re.compile(r"^[0-9A-Za-z]+$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_DATETIME = re.compile(
    r"^(\d{4}-\d{2}-\d{2})T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,6}))?)?"
    r"\s*(Z|[+-]\d{2}:?\d{2})?$"
)
_STRING_TYPES = frozenset(
    {"string", "email", "phone", "url", "textarea", "picklist", "multipicklist", "combobox"}
)
_NUMBER_TYPES = frozenset({"double", "currency", "percent"})
NOT_SUPPORTED = (
    "sObject type '{}' is not supported. If you are attempting to use a custom object, be sure "
    "to append the '__c' after the entity name. Please reference your WSDL or the describe "
    "call for the appropriate names."
)


class OrgError(Exception):
    """A refused operation, as Salesforce reports it: an error code, a message, the fields."""

    def __init__(self, error_code: str, message: str, fields: list[str] | None = None) -> None:
        super().__init__(f"{error_code}: {message}")
        self.error_code = error_code
        self.message = message
        self.fields = fields or []

    @property
    def status(self) -> int:
        """The HTTP status the REST API answers this error with."""
        return 404 if self.error_code in ("NOT_FOUND", "ENTITY_IS_DELETED") else 400


class Row(dict[str, Any]):
    """A stored record in wire form; fields that were never set read as None."""

    __slots__ = ()

    def __missing__(self, key: str) -> None:
        return None


# -- schema --------------------------------------------------------------------------------

LEAD_SOURCES = ("Web", "Phone Inquiry", "Partner Referral", "Purchased List", "Other")
LEAD_STATUSES = (
    "Open - Not Contacted", "Working - Contacted", "Closed - Converted", "Closed - Not Converted"
)
LIFECYCLE_STAGES = ("Subscriber", "Lead", "MQL", "SQL", "Opportunity", "Customer", "Evangelist")
# (ApiName, DefaultProbability, IsClosed, IsWon, ForecastCategoryName), reference 2.10.
STAGES: tuple[tuple[str, int, bool, bool, str], ...] = (
    ("Prospecting", 10, False, False, "Pipeline"),
    ("Qualification", 10, False, False, "Pipeline"),
    ("Needs Analysis", 20, False, False, "Pipeline"),
    ("Value Proposition", 50, False, False, "Pipeline"),
    ("Id. Decision Makers", 60, False, False, "Pipeline"),
    ("Perception Analysis", 70, False, False, "Pipeline"),
    ("Proposal/Price Quote", 75, False, False, "Pipeline"),
    ("Negotiation/Review", 90, False, False, "Commit"),
    ("Closed Won", 100, True, True, "Closed"),
    ("Closed Lost", 0, True, False, "Omitted"),
)
ROLES = (
    "Business User", "Decision Maker", "Economic Buyer", "Economic Decision Maker", "Evaluator",
    "Executive Sponsor", "Influencer", "Technical Buyer", "Other",
)
INDUSTRIES = (
    "Agriculture", "Banking", "Consulting", "Education", "Finance", "Healthcare", "Insurance",
    "Manufacturing", "Media", "Retail", "Technology", "Telecommunications", "Other",
)
ACTIVITY_TYPES = ("Call", "Email", "Meeting", "Other")
NAME_FROM_PARTS = frozenset({"Lead", "Contact", "User"})
_DEFAULT_LENGTH = {
    "string": 255, "email": 80, "phone": 40, "url": 255, "textarea": 32000, "picklist": 255,
    "multipicklist": 4099, "combobox": 255, "id": 18, "reference": 18,
}
_SOAP_TYPES = {
    "id": "tns:ID", "reference": "tns:ID", "boolean": "xsd:boolean", "date": "xsd:date",
    "datetime": "xsd:dateTime", "currency": "xsd:double", "double": "xsd:double",
    "percent": "xsd:double", "int": "xsd:int",
}
# Lookups a merge leaves alone: the loser's own merge pointer, conversion history, audit.
_KEPT_ON_MERGE = frozenset({
    "MasterRecordId", "ConvertedAccountId", "ConvertedContactId", "ConvertedOpportunityId",
    "CreatedById", "LastModifiedById",
})


@dataclass
class FieldSpec:
    """One field as describe reports it, plus what the write checks need."""

    name: str
    type: str
    label: str = ""
    length: int = 0
    nillable: bool = True
    createable: bool = True
    updateable: bool = True
    defaulted: bool = False
    calculated: bool = False
    values: tuple[str, ...] = ()
    default: Any = None
    restricted: bool = False
    reference_to: tuple[str, ...] = ()
    relationship: str | None = None
    unique: bool = False
    external_id: bool = False
    id_lookup: bool = False
    name_field: bool = False
    precision: int = 0
    scale: int = 0
    plain: bool = field(default=False, init=False, repr=False)
    """Text with no check beyond its length (no email syntax, no picklist): the fast path."""

    def __post_init__(self) -> None:
        self.plain = self.type in ("string", "phone", "url", "textarea", "combobox")
        if not self.label:
            base = self.name.removesuffix("__c").removesuffix("Id") or self.name
            self.label = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", base).replace("_", " ")
        if not self.length:
            self.length = _DEFAULT_LENGTH.get(self.type, 0)

    @property
    def custom(self) -> bool:
        return self.name.endswith("__c")

    @property
    def indexed(self) -> bool:
        """Whether writes keep a value index (upsert and GET by external id, uniqueness)."""
        return self.type != "id" and (self.unique or self.external_id or self.id_lookup)

    @property
    def required(self) -> bool:
        return not self.nillable and self.createable and not self.defaulted

    @property
    def reparented_on_merge(self) -> bool:
        return self.type == "reference" and self.name not in _KEPT_ON_MERGE

    def describe(self) -> dict[str, Any]:
        string_like = self.type in _STRING_TYPES or self.type in ("id", "reference")
        number = self.type in _NUMBER_TYPES
        return {
            "name": self.name, "label": self.label, "type": self.type,
            "length": self.length if string_like else 0,
            "byteLength": self.length * 3 if string_like else 0,
            "precision": (self.precision or 18) if number else 0,
            "scale": (self.scale or 2) if number else 0,
            "digits": 9 if self.type == "int" else 0,
            "soapType": _SOAP_TYPES.get(self.type, "xsd:string"),
            "updateable": self.updateable, "createable": self.createable,
            "nillable": self.nillable, "defaultedOnCreate": self.defaulted,
            "calculated": self.calculated, "calculatedFormula": None,
            "unique": self.unique, "externalId": self.external_id,
            "idLookup": self.id_lookup or self.type == "id", "caseSensitive": False,
            "nameField": self.name_field, "autoNumber": False,
            "filterable": self.type != "textarea", "sortable": self.type != "textarea",
            "groupable": self.type not in ("textarea", "datetime", *_NUMBER_TYPES),
            "custom": self.custom, "deprecatedAndHidden": False, "htmlFormatted": False,
            "restrictedPicklist": self.restricted, "dependentPicklist": False,
            "controllerName": None,
            "picklistValues": [
                {"value": value, "label": value, "active": True,
                 "defaultValue": value == self.default, "validFor": None}
                for value in self.values
            ],
            "referenceTo": list(self.reference_to),
            "relationshipName": self.relationship,
            "relationshipOrder": None,
            "defaultValue": self.default if self.type == "boolean" else None,
            "inlineHelpText": None,
        }


def make_field(name: str, type: str, **attributes: Any) -> FieldSpec:
    """A field from describe-style attributes (`externalId=True`, `picklistValues=[...]`)."""
    renames = {
        "externalId": "external_id", "idLookup": "id_lookup", "restrictedPicklist": "restricted",
        "referenceTo": "reference_to", "relationshipName": "relationship",
        "defaultValue": "default", "defaultedOnCreate": "defaulted", "nameField": "name_field",
        "picklistValues": "values",
    }
    options = {renames.get(key, key): value for key, value in attributes.items()}
    for key in ("values", "reference_to"):
        if key in options:
            options[key] = tuple(
                v["value"] if isinstance(v, Mapping) else v for v in options[key]
            )
    if options.get("external_id"):
        options.setdefault("id_lookup", True)
    return FieldSpec(name, type, **options)


@dataclass
class SObjectSpec:
    """One sObject: its fields in describe order and the object-level flags."""

    name: str
    label: str
    label_plural: str
    key_prefix: str
    fields: dict[str, FieldSpec]
    createable: bool = True
    updateable: bool = True
    deletable: bool = True
    mergeable: bool = False
    _lower: dict[str, str] = field(default_factory=dict, init=False, repr=False)
    defaults: dict[str, Any] = field(default_factory=dict, init=False, repr=False)
    required: list[str] = field(default_factory=list, init=False, repr=False)
    unique: list[str] = field(default_factory=list, init=False, repr=False)

    def __post_init__(self) -> None:
        self._refresh()

    def _refresh(self) -> None:
        # Computed once per schema change, not per write: seeding a million rows reads them.
        self._lower = {name.lower(): name for name in self.fields}
        self.defaults = {n: s.default for n, s in self.fields.items() if s.default is not None}
        self.required = [n for n, s in self.fields.items() if s.required]
        self.unique = [n for n, s in self.fields.items() if s.unique]

    @property
    def has_owner(self) -> bool:
        return "OwnerId" in self.fields

    def canonical(self, name: str) -> str | None:
        """The API name of a field (field names are case-insensitive), or None."""
        return self._lower.get(name.lower())

    def add(self, spec: FieldSpec) -> None:
        self.fields[spec.name] = spec
        self._refresh()

    def remove(self, name: str) -> None:
        del self.fields[name]
        self._refresh()

    def field_types(self) -> dict[str, str]:
        return {name: spec.type for name, spec in self.fields.items()}

    def full(self, row: Mapping[str, Any]) -> dict[str, Any]:
        """A plain copy of a stored row with every field of the schema present."""
        return {name: row.get(name) for name in self.fields}

    def urls(self, version: str) -> dict[str, str]:
        base = f"/services/data/v{version}/sobjects/{self.name}"
        return {
            "sobject": base, "describe": f"{base}/describe", "rowTemplate": f"{base}/{{ID}}",
            "compactLayouts": f"{base}/describe/compactLayouts",
            "approvalLayouts": f"{base}/describe/approvalLayouts",
            "listviews": f"{base}/listviews", "quickActions": f"{base}/quickActions",
            "layouts": f"{base}/describe/layouts",
        }

    def summary(self, version: str) -> dict[str, Any]:
        """The global-describe entry (`GET sobjects`, reference 2.4)."""
        return {
            "name": self.name, "label": self.label, "labelPlural": self.label_plural,
            "keyPrefix": self.key_prefix, "custom": False, "customSetting": False,
            "activateable": False, "createable": self.createable,
            "updateable": self.updateable, "deletable": self.deletable, "undeletable": True,
            "mergeable": self.mergeable, "queryable": True, "replicateable": True,
            "retrieveable": True, "searchable": True, "triggerable": True, "layoutable": True,
            "feedEnabled": False, "deprecatedAndHidden": False,
            "urls": {k: v for k, v in self.urls(version).items() if k in ("sobject", "describe",
                                                                          "rowTemplate")},
        }

    def describe(self, version: str) -> dict[str, Any]:
        """The full describe (`GET sobjects/{Obj}/describe`, reference 2.4)."""
        return {
            **self.summary(version),
            "fields": [spec.describe() for spec in self.fields.values()],
            "childRelationships": [],
            "recordTypeInfos": [{
                "name": "Master", "recordTypeId": "012000000000000AAA", "available": True,
                "defaultRecordTypeMapping": True, "master": True, "active": True,
                "developerName": "Master",
            }],
            "urls": self.urls(version),
        }


def _text(name: str, length: int = 255, **kw: Any) -> FieldSpec:
    return FieldSpec(name, "string", length=length, **kw)


def _required(name: str, type_: str = "string", **kw: Any) -> FieldSpec:
    return FieldSpec(name, type_, nillable=False, **kw)


def _pick(name: str, values: tuple[str, ...], default: str | None = None, **kw: Any) -> FieldSpec:
    return FieldSpec(
        name, "picklist", values=values, default=default, defaulted=default is not None,
        nillable=default is None, **kw,
    )


def _ref(name: str, *targets: str, **kw: Any) -> FieldSpec:
    relationship = kw.pop("relationship", name.removesuffix("Id"))
    return FieldSpec(name, "reference", reference_to=targets, relationship=relationship, **kw)


def _flag(name: str, default: bool = False, **kw: Any) -> FieldSpec:
    return FieldSpec(name, "boolean", nillable=False, defaulted=True, default=default, **kw)


def _computed(spec: FieldSpec) -> FieldSpec:
    """A field Salesforce maintains itself: readable, never written by the API."""
    spec.createable = spec.updateable = False
    return spec


def _system(sobject: str, *, owner: bool = True, master: bool = False) -> list[FieldSpec]:
    read_only: dict[str, Any] = {"createable": False, "updateable": False}
    audit: dict[str, Any] = {"nillable": False, "defaulted": True, **read_only}
    fields = [
        FieldSpec("Id", "id", label=f"{sobject} ID", **audit),
        FieldSpec("IsDeleted", "boolean", label="Deleted", default=False, **audit),
    ]
    if master:
        fields.append(_ref("MasterRecordId", sobject, label="Master Record ID",
                           relationship="MasterRecord", **read_only))
    if owner:
        fields.append(_ref("OwnerId", "User", label="Owner ID", relationship="Owner",
                           nillable=False, defaulted=True))
    fields += [
        FieldSpec("CreatedDate", "datetime", label="Created Date", **audit),
        _ref("CreatedById", "User", label="Created By ID", relationship="CreatedBy", **audit),
        FieldSpec("LastModifiedDate", "datetime", label="Last Modified Date", **audit),
        _ref("LastModifiedById", "User", label="Last Modified By ID",
             relationship="LastModifiedBy", **audit),
        FieldSpec("SystemModstamp", "datetime", label="System Modstamp", **audit),
    ]
    return fields


def _syncd_person_fields() -> list[FieldSpec]:
    # Custom fields an admin creates for syncd (ARCHITECTURE section 5).
    return [
        _pick("Lifecycle_Stage__c", LIFECYCLE_STAGES, label="Lifecycle Stage", restricted=True),
        _text("Syncd_Id__c", label="Syncd Id", unique=True, external_id=True, id_lookup=True),
    ]


def _person_fields() -> list[FieldSpec]:
    return [
        _text("FirstName", 40, label="First Name"),
        _required("LastName", length=80, label="Last Name"),
        _computed(_text("Name", 121, label="Full Name", name_field=True)),
        FieldSpec("Email", "email", id_lookup=True),
        _text("Title", 128),
        FieldSpec("Phone", "phone"),
        _pick("LeadSource", LEAD_SOURCES, label="Lead Source"),
        _flag("HasOptedOutOfEmail", label="Email Opt Out"),
    ]


def _lead() -> list[FieldSpec]:
    return [
        *_system("Lead", master=True), *_person_fields(),
        _required("Company"),
        FieldSpec("Website", "url"),
        _pick("Status", LEAD_STATUSES, default=LEAD_STATUSES[0], restricted=True),
        _pick("Industry", INDUSTRIES),
        _pick("Rating", ("Hot", "Warm", "Cold")),
        _computed(_flag("IsConverted", label="Converted")),
        _computed(FieldSpec("ConvertedDate", "date", label="Converted Date")),
        _computed(_ref("ConvertedAccountId", "Account", label="Converted Account ID")),
        _computed(_ref("ConvertedContactId", "Contact", label="Converted Contact ID")),
        _computed(_ref("ConvertedOpportunityId", "Opportunity",
                       label="Converted Opportunity ID")),
        *_syncd_person_fields(),
    ]


def _contact() -> list[FieldSpec]:
    return [
        *_system("Contact", master=True),
        _ref("AccountId", "Account", label="Account ID"),
        *_person_fields(),
        FieldSpec("MobilePhone", "phone", label="Mobile Phone"),
        _text("Department", 80),
        *_syncd_person_fields(),
    ]


def _account() -> list[FieldSpec]:
    return [
        *_system("Account", master=True),
        _required("Name", label="Account Name", name_field=True),
        FieldSpec("Website", "url"),
        FieldSpec("Phone", "phone", label="Account Phone"),
        _pick("Industry", INDUSTRIES),
        _pick("Type", ("Prospect", "Customer - Direct", "Customer - Channel",
                       "Channel Partner / Reseller", "Installation Partner",
                       "Technology Partner", "Other"), label="Account Type"),
        _pick("AccountSource", LEAD_SOURCES, label="Account Source"),
        _ref("ParentId", "Account", label="Parent Account ID", relationship="Parent"),
        FieldSpec("NumberOfEmployees", "int", label="Employees"),
        FieldSpec("AnnualRevenue", "currency", label="Annual Revenue"),
    ]


def _opportunity() -> list[FieldSpec]:
    forecast = ("Omitted", "Pipeline", "Best Case", "Commit", "Closed")
    return [
        *_system("Opportunity"),
        _ref("AccountId", "Account", label="Account ID"),
        _required("Name", length=120, label="Name", name_field=True),
        _required("StageName", "picklist", label="Stage", values=tuple(s[0] for s in STAGES),
                  restricted=True),
        _required("CloseDate", "date", label="Close Date"),
        FieldSpec("Amount", "currency"),
        FieldSpec("Probability", "percent", label="Probability (%)", defaulted=True,
                  precision=3, scale=0),
        _computed(_flag("IsClosed", label="Closed")),
        _computed(_flag("IsWon", label="Won")),
        FieldSpec("ForecastCategoryName", "picklist", label="Forecast Category",
                  values=forecast, defaulted=True),
        _ref("CampaignId", "Campaign", label="Primary Campaign Source"),
        _pick("LeadSource", LEAD_SOURCES, label="Lead Source"),
        _pick("Type", ("Existing Customer - Upgrade", "Existing Customer - Replacement",
                       "Existing Customer - Downgrade", "New Customer"),
              label="Opportunity Type"),
        _text("First_Touch_Campaign__c", label="First Touch Campaign"),
        _text("Last_Touch_Campaign__c", label="Last Touch Campaign"),
    ]


def _opportunity_stage() -> list[FieldSpec]:
    read_only: dict[str, Any] = {"createable": False, "updateable": False}
    return [
        *_system("OpportunityStage", owner=False),
        _text("ApiName", label="Api Name", id_lookup=True, **read_only),
        _text("MasterLabel", label="Master Label", **read_only),
        FieldSpec("IsActive", "boolean", label="Active", nillable=False, **read_only),
        FieldSpec("IsClosed", "boolean", label="Closed", nillable=False, **read_only),
        FieldSpec("IsWon", "boolean", label="Won", nillable=False, **read_only),
        FieldSpec("DefaultProbability", "percent", label="Probability (%)", **read_only),
        FieldSpec("ForecastCategoryName", "picklist", label="Forecast Category",
                  values=("Omitted", "Pipeline", "Best Case", "Commit", "Closed"), **read_only),
        FieldSpec("SortOrder", "int", label="Sort Order", **read_only),
    ]


def _contact_role() -> list[FieldSpec]:
    return [
        *_system("OpportunityContactRole", owner=False),
        _ref("OpportunityId", "Opportunity", label="Opportunity ID", nillable=False,
             updateable=False),
        _ref("ContactId", "Contact", label="Contact ID", nillable=False),
        _pick("Role", ROLES),
        _flag("IsPrimary", label="Primary"),
    ]


def _campaign() -> list[FieldSpec]:
    return [
        *_system("Campaign"),
        _required("Name", length=80, label="Campaign Name", name_field=True),
        _pick("Type", ("Advertisement", "Email", "Telemarketing", "Banner Ads",
                       "Seminar / Conference", "Public Relations", "Partners",
                       "Referral Program", "Webinar", "Trade Show", "Direct Mail", "Other")),
        _pick("Status", ("Planned", "In Progress", "Completed", "Aborted")),
        FieldSpec("StartDate", "date", label="Start Date"),
        FieldSpec("EndDate", "date", label="End Date"),
        _flag("IsActive", label="Active"),
        _ref("ParentId", "Campaign", label="Parent Campaign ID", relationship="Parent"),
        FieldSpec("BudgetedCost", "currency", label="Budgeted Cost in Campaign"),
        FieldSpec("ActualCost", "currency", label="Actual Cost in Campaign"),
        FieldSpec("ExpectedRevenue", "currency", label="Expected Revenue in Campaign"),
        FieldSpec("Attributed_Revenue__c", "currency", label="Attributed Revenue"),
    ]


def _campaign_member() -> list[FieldSpec]:
    return [
        *_system("CampaignMember", owner=False),
        _ref("CampaignId", "Campaign", label="Campaign ID", nillable=False, updateable=False),
        _ref("LeadId", "Lead", label="Lead ID", updateable=False),
        _ref("ContactId", "Contact", label="Contact ID", updateable=False),
        # New campaigns get the statuses "Sent" (default) and "Responded" (reference 2.10).
        _pick("Status", ("Sent", "Responded"), default="Sent"),
        _computed(_flag("HasResponded", label="Responded")),
        _computed(FieldSpec("FirstRespondedDate", "date", label="First Responded Date")),
        _computed(_ref("LeadOrContactId", "Lead", "Contact", label="Lead or Contact ID",
                       relationship=None)),
        _computed(_text("Type", 40, label="Member Type")),
    ]


def _activity(sobject: str) -> list[FieldSpec]:
    return [
        *_system(sobject),
        _ref("WhoId", "Lead", "Contact", label="Name ID", relationship="Who"),
        _ref("WhatId", "Account", "Opportunity", "Campaign", label="Related To ID",
             relationship="What"),
        FieldSpec("Subject", "combobox"),
        _pick("Type", ACTIVITY_TYPES),
        FieldSpec("Description", "textarea"),
    ]


def _task() -> list[FieldSpec]:
    statuses = ("Not Started", "In Progress", "Completed", "Waiting on someone else", "Deferred")
    return [
        *_activity("Task"),
        _pick("Status", statuses, default="Not Started"),
        _pick("Priority", ("High", "Normal", "Low"), default="Normal"),
        FieldSpec("ActivityDate", "date", label="Due Date Only"),
        _computed(_flag("IsClosed", label="Closed")),
    ]


def _event() -> list[FieldSpec]:
    return [
        *_activity("Event"),
        _required("StartDateTime", "datetime", label="Start Date Time"),
        FieldSpec("EndDateTime", "datetime", label="End Date Time", defaulted=True),
        _computed(FieldSpec("ActivityDate", "date", label="Due Date Only")),
    ]


def _user() -> list[FieldSpec]:
    return [
        *_system("User", owner=False),
        _required("Username", length=80, unique=True, id_lookup=True),
        _text("FirstName", 40, label="First Name"),
        _required("LastName", length=80, label="Last Name"),
        _computed(_text("Name", 121, label="Full Name", name_field=True)),
        _required("Email", "email"),
        _text("Alias", 8, defaulted=True),
        _flag("IsActive", default=True, label="Active"),
    ]


def build_schema() -> dict[str, SObjectSpec]:
    """The standard objects syncd reads and writes, with the custom fields it relies on."""
    def spec(name: str, label: str, plural: str, prefix: str, fields: list[FieldSpec],
             **flags: bool) -> SObjectSpec:
        return SObjectSpec(name, label, plural, prefix, {f.name: f for f in fields}, **flags)

    read_only: dict[str, Any] = {"createable": False, "updateable": False, "deletable": False}
    specs = [
        spec("Lead", "Lead", "Leads", "00Q", _lead(), mergeable=True),
        spec("Contact", "Contact", "Contacts", "003", _contact(), mergeable=True),
        spec("Account", "Account", "Accounts", "001", _account(), mergeable=True),
        spec("Opportunity", "Opportunity", "Opportunities", "006", _opportunity()),
        spec("OpportunityStage", "Opportunity Stage", "Opportunity Stages", "01J",
             _opportunity_stage(), **read_only),
        spec("OpportunityContactRole", "Opportunity Contact Role", "Opportunity Contact Roles",
             "00K", _contact_role()),
        spec("Campaign", "Campaign", "Campaigns", "701", _campaign()),
        spec("CampaignMember", "Campaign Member", "Campaign Members", "00v", _campaign_member()),
        spec("Task", "Task", "Tasks", "00T", _task()),
        spec("Event", "Event", "Events", "00U", _event()),
        spec("User", "User", "Users", "005", _user(), deletable=False),
    ]
    return {s.name: s for s in specs}


# -- ids ---------------------------------------------------------------------------------


_UPPER_AS_BITS = str.maketrans(
    {c: "1" if "A" <= c <= "Z" else "0" for c in _B62}
)


def _checksum(id15: str) -> str:
    """The 3-character suffix that makes a 15-character id case-insensitive."""
    # Bit i of each 5-character block is set when character i is upper case; translate()
    # does the per-character work in C, which matters when seeding a million records.
    bits = id15.translate(_UPPER_AS_BITS)
    return (
        _SUFFIX[int(bits[4::-1], 2)] + _SUFFIX[int(bits[9:4:-1], 2)]
        + _SUFFIX[int(bits[14:9:-1], 2)]
    )


def to_id18(value: object) -> str | None:
    """The canonical 18-character id for a 15- or 18-character id, or None if malformed."""
    if not isinstance(value, str) or not _ID_CHARS.match(value):
        return None
    if len(value) == 15:
        return value + _checksum(value)
    if len(value) != 18:
        return None
    # An 18-character id is case-insensitive: its suffix restores the case of the first 15.
    restored = []
    for block, suffix_char in enumerate(value[15:].upper()):
        bits = _SUFFIX.find(suffix_char)
        if bits < 0:
            return None
        for position, char in enumerate(value[block * 5 : block * 5 + 5]):
            upper = bool(bits & (1 << position))
            if upper and not char.isalpha():
                return None
            restored.append(char.upper() if upper else char.lower())
    id15 = "".join(restored)
    return id15 + _checksum(id15)


def _base62(number: int, width: int) -> str:
    digits = []
    while number:
        number, remainder = divmod(number, 62)
        digits.append(_B62[remainder])
    return "".join(reversed(digits)).rjust(width, "0")


# -- wire values ---------------------------------------------------------------------------


def wire_datetime(moment: datetime) -> str:
    """A datetime as the REST API writes it: UTC, milliseconds, `+0000`."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    elif moment.tzinfo is not UTC:
        moment = moment.astimezone(UTC)
    return moment.isoformat(timespec="milliseconds")[:23] + "+0000"


def parse_datetime(text: str) -> datetime | None:
    """An input datetime (`...Z`, `+HH:MM`, `+HHMM`, optional fraction) as aware UTC, or None."""
    found = _DATETIME.match(text.strip())
    if not found:
        return None
    day, hour, minute, second, fraction, zone = found.groups()
    try:
        moment = datetime.fromisoformat(f"{day}T{hour}:{minute}:{second or '00'}")
    except ValueError:
        return None
    moment = moment.replace(microsecond=int((fraction or "0").ljust(6, "0")), tzinfo=UTC)
    if zone and zone != "Z":
        sign = 1 if zone[0] == "+" else -1
        digits = zone[1:].replace(":", "")
        moment -= sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
    return moment


def _bad_type(spec: FieldSpec, value: object) -> OrgError:
    return OrgError(
        "INVALID_TYPE_ON_FIELD_IN_RECORD",
        f"{spec.label}: value not of required type: {value}",
        [spec.name],
    )


def coerce(spec: FieldSpec, value: object) -> Any:
    """A value from JSON, a CSV cell or Python seeding, converted to wire form for `spec`."""
    if value is None:
        return None
    kind = spec.type
    if kind in _STRING_TYPES:
        return _coerce_text(spec, value)
    if kind == "boolean":
        return _coerce_boolean(spec, value)
    if kind == "int":
        number = _coerce_number(spec, value)
        if number != int(number):
            raise _bad_type(spec, value)
        return int(number)
    if kind in _NUMBER_TYPES:
        return _coerce_number(spec, value)
    if kind == "date":
        return _coerce_date(spec, value)
    if kind == "datetime":
        return _coerce_datetime(spec, value)
    return value


def _coerce_text(spec: FieldSpec, value: object) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise _bad_type(spec, value)
    text = value if isinstance(value, str) else str(value)
    if spec.length and len(text) > spec.length:
        raise OrgError(
            "STRING_TOO_LONG",
            f"{spec.label}: data value too large: {text[:40]} (max length={spec.length})",
            [spec.name],
        )
    if spec.type == "email" and text and not re.match(r"^[^@\s]+@[^@\s]+\.[^@\s]+$", text):
        raise OrgError(
            "INVALID_EMAIL_ADDRESS", f"{spec.label}: invalid email address: {text}", [spec.name]
        )
    return text


def _coerce_boolean(spec: FieldSpec, value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise _bad_type(spec, value)


def _coerce_number(spec: FieldSpec, value: object) -> float | int:
    if isinstance(value, bool):
        raise _bad_type(spec, value)
    if isinstance(value, int | float):
        return value if spec.type == "int" else float(value)
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            raise _bad_type(spec, value) from None
        return number
    raise _bad_type(spec, value)


def _coerce_date(spec: FieldSpec, value: object) -> str:
    if isinstance(value, datetime):
        moment = value.astimezone(UTC) if value.tzinfo else value
        return moment.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, str) and _DATE.match(value):
        try:
            return date.fromisoformat(value).isoformat()
        except ValueError:
            pass
    raise _bad_type(spec, value)


def _coerce_datetime(spec: FieldSpec, value: object) -> str:
    if isinstance(value, datetime):
        return wire_datetime(value)
    if isinstance(value, date):
        return f"{value.isoformat()}T00:00:00.000+0000"
    if isinstance(value, str):
        moment = parse_datetime(value)
        if moment is not None:
            return wire_datetime(moment)
    raise _bad_type(spec, value)


# -- indexes -------------------------------------------------------------------------------


class LookupIndex:
    """Record ids by a field's value, case-insensitively (external ids and idLookup fields).

    A value held by one record maps to its id, not to a list: most values are unique, and a
    million one-element lists would cost more memory than the records.
    """

    def __init__(self) -> None:
        self._ids: dict[str, str | list[str]] = {}

    @staticmethod
    def key(value: object) -> str:
        return value.lower() if isinstance(value, str) else str(value)

    def add(self, value: object, record_id: str) -> None:
        key = self.key(value)
        held = self._ids.get(key)
        if held is None:
            self._ids[key] = record_id
        elif isinstance(held, str):
            self._ids[key] = [held, record_id]
        else:
            held.append(record_id)

    def remove(self, value: object, record_id: str) -> None:
        key = self.key(value)
        held = self._ids.get(key)
        if held == record_id:
            del self._ids[key]
        elif isinstance(held, list) and record_id in held:
            held.remove(record_id)
            if len(held) == 1:
                self._ids[key] = held[0]

    def find(self, value: object) -> list[str]:
        held = self._ids.get(self.key(value))
        if held is None:
            return []
        return [held] if isinstance(held, str) else list(held)


@dataclass
class Table:
    """One sObject's rows (in id order), lookup indexes and delete log."""

    spec: SObjectSpec
    rows: dict[str, Row] = field(default_factory=dict)
    indexes: dict[str, LookupIndex] = field(default_factory=dict)
    deleted_log: list[tuple[str, str]] = field(default_factory=list)
    rules: list[Rule] = field(default_factory=list)

    def __post_init__(self) -> None:
        for spec in self.spec.fields.values():
            if spec.indexed:
                self.indexes[spec.name] = LookupIndex()


@dataclass
class Selection:
    """A query evaluated once: its object, its rows in answer order, and how to project them."""

    sobject: str
    rows: list[Mapping[str, Any]]
    count_only: bool
    columns: list[str]
    project: Callable[[Mapping[str, Any]], dict[str, Any]]


# -- the org -------------------------------------------------------------------------------


class Org:
    """An in-memory Salesforce org: schema, records, and the checks every write goes through."""

    def __init__(self, *, clock: Callable[[], datetime] | None = None) -> None:
        self.clock = clock or utc_now
        self._counter = 0
        self._stamp_cache: tuple[datetime | None, str] = (None, "")
        self.org_id = self._new_id("00D")
        self.user_id = self._new_id("005")
        specs = build_schema()
        self._tables: dict[str, Table] = {name: Table(spec) for name, spec in specs.items()}
        self._by_lower = {name.lower(): name for name in self._tables}
        self._by_prefix = {t.spec.key_prefix: name for name, t in self._tables.items()}
        self._members: dict[tuple[str, str], str] = {}
        self._journal: list[Callable[[], None]] | None = None
        self._describe_cache: dict[str, dict[str, Any]] = {}
        self._seed_system()

    # -- seeding the things every org has --

    def _seed_system(self) -> None:
        stamp = self._stamp(None)
        user = Row(
            Id=self.user_id, Username="integration@syncd.example", LastName="Integration",
            FirstName="syncd", Name="syncd Integration", Email="integration@syncd.example",
            Alias="syncd", IsActive=True, IsDeleted=False, CreatedDate=stamp,
            CreatedById=self.user_id, LastModifiedDate=stamp, LastModifiedById=self.user_id,
            SystemModstamp=stamp,
        )
        self._put(self._tables["User"], user, None)
        for order, (name, probability, closed, won, forecast) in enumerate(STAGES, start=1):
            stage = Row(
                Id=self._new_id("01J"), ApiName=name, MasterLabel=name, IsActive=True,
                IsClosed=closed, IsWon=won, DefaultProbability=float(probability),
                ForecastCategoryName=forecast, SortOrder=order, IsDeleted=False,
                CreatedDate=stamp, CreatedById=self.user_id, LastModifiedDate=stamp,
                LastModifiedById=self.user_id, SystemModstamp=stamp,
            )
            self._put(self._tables["OpportunityStage"], stage, None)

    def set_username(self, username: str) -> None:
        """Rename the integration user (the emulator's configured login)."""
        table = self._tables["User"]
        row = Row(table.rows[self.user_id])
        row["Username"] = row["Email"] = username
        self._put(table, row, table.rows[self.user_id])

    # -- schema --

    def sobject_names(self) -> list[str]:
        return list(self._tables)

    def spec(self, sobject: str) -> SObjectSpec:
        return self._table(sobject).spec

    def resolve(self, sobject: str) -> str | None:
        """The canonical name of an sObject (names are case-insensitive), or None."""
        return self._by_lower.get(sobject.lower())

    def _table(self, sobject: str) -> Table:
        name = self._by_lower.get(sobject.lower())
        if name is None:
            raise OrgError("INVALID_TYPE", NOT_SUPPORTED.format(sobject))
        return self._tables[name]

    def describe(self, sobject: str, version: str = "59.0") -> dict[str, Any]:
        """The describe of an sObject (cached until its schema changes)."""
        table = self._table(sobject)
        key = f"{table.spec.name}/{version}"
        if key not in self._describe_cache:
            self._describe_cache[key] = table.spec.describe(version)
        return self._describe_cache[key]

    def add_field(self, sobject: str, name: str, type: str, **attributes: Any) -> None:
        """Add a custom field; attributes use describe's names (`externalId`, `length`...)."""
        table = self._table(sobject)
        spec = make_field(name, type, **attributes)
        table.spec.add(spec)
        if spec.indexed:
            index = LookupIndex()
            for row in table.rows.values():
                if not row["IsDeleted"] and row.get(name) is not None:
                    index.add(row[name], row["Id"])
            table.indexes[name] = index
        self._describe_cache.clear()

    def remove_field(self, sobject: str, name: str) -> None:
        table = self._table(sobject)
        canonical = table.spec.canonical(name)
        if canonical is None:
            raise OrgError("INVALID_FIELD", f"No such column '{name}' on sobject of type {sobject}")
        table.spec.remove(canonical)
        table.indexes.pop(canonical, None)
        self._describe_cache.clear()

    def add_validation_rule(self, sobject: str, rule: Rule) -> None:
        """`rule(record)` returns a message to refuse the write, or None to accept it."""
        self._table(sobject).rules.append(rule)

    # -- reading --

    def get(self, sobject: str, record_id: str) -> dict[str, Any]:
        """A copy of a record (deleted ones too) with every field of the schema."""
        table = self._table(sobject)
        row = table.rows.get(to_id18(record_id) or "")
        if row is None:
            raise OrgError("NOT_FOUND", "The requested resource does not exist")
        return table.spec.full(row)

    def records(self, sobject: str, *, include_deleted: bool = False) -> list[dict[str, Any]]:
        table = self._table(sobject)
        return [
            table.spec.full(row)
            for row in table.rows.values()
            if include_deleted or not row["IsDeleted"]
        ]

    def rows(self, sobject: str) -> Iterator[Row]:
        """The stored rows of an object, deleted included (read-only; for the HTTP layer)."""
        return iter(self._table(sobject).rows.values())

    def row(self, sobject: str, record_id: str, *, writing: bool = False) -> Row:
        """A live stored row, or the error the REST API answers for that id."""
        table = self._table(sobject)
        canonical = to_id18(record_id)
        if canonical is None or not canonical.startswith(table.spec.key_prefix):
            raise OrgError(
                "MALFORMED_ID", f"{table.spec.label} ID: id value of incorrect type: {record_id}"
            )
        found = table.rows.get(canonical)
        if found is None:
            raise OrgError("NOT_FOUND", "The requested resource does not exist")
        if found["IsDeleted"]:
            if writing:
                raise OrgError("ENTITY_IS_DELETED", "entity is deleted")
            raise OrgError("NOT_FOUND", "The requested resource does not exist")
        return found

    def find(self, sobject: str, field_name: str, value: object) -> list[str]:
        """Live record ids whose external-id (or idLookup) field equals value."""
        table = self._table(sobject)
        if field_name == "Id":
            canonical = to_id18(value)
            row = table.rows.get(canonical or "")
            return [row["Id"]] if row is not None and not row["IsDeleted"] else []
        return table.indexes[field_name].find(value)

    def deleted_log(self, sobject: str) -> list[tuple[str, str]]:
        return list(self._table(sobject).deleted_log)

    def select(self, soql: str, *, include_deleted: bool, version: str = "59.0") -> Selection:
        """Evaluate a SOQL query once: rows matched, ordered, offset and limited."""
        from .soql import Relationship, SoqlError, parse

        try:
            query = parse(soql)
            name = self.resolve(query.sobject)
            if name is None:
                raise query.invalid_type_error()
            table = self._tables[name]
            parents = {
                spec.relationship: Relationship(target, self._tables[target].spec.field_types())
                for spec in table.spec.fields.values()
                if spec.relationship and (target := spec.reference_to[0]) in self._tables
            }
            binding = query.bind(
                table.spec.field_types(), now=self.clock(), relationships=parents,
                resolve_parent=self._parent_resolver(table.spec, version),
            )
        except SoqlError as error:
            raise OrgError(error.error_code, error.message) from None
        matches = binding.matches
        rows = [
            row
            for row in table.rows.values()
            if (include_deleted or not row["IsDeleted"]) and matches(row)
        ]
        return Selection(
            sobject=table.spec.name,
            rows=binding.order(rows),
            count_only=bool(query.count_only),
            columns=list(binding.canonical_fields),
            project=binding.project,
        )

    def _parent_resolver(
        self, spec: SObjectSpec, version: str
    ) -> Callable[[str, Mapping[str, Any]], Mapping[str, Any] | None]:
        """Finds the parent a relationship field (`Account.Name`) reads from."""
        keys = {f.relationship: f.name for f in spec.fields.values() if f.relationship}

        def parent(relationship: str, record: Mapping[str, Any]) -> Mapping[str, Any] | None:
            parent_id = record.get(keys.get(relationship, ""))
            target = self._by_prefix.get(str(parent_id)[:3]) if parent_id else None
            row = self._tables[target].rows.get(str(parent_id)) if target else None
            if row is None or target is None:
                return None
            url = f"/services/data/v{version}/sobjects/{target}/{parent_id}"
            return {"attributes": {"type": target, "url": url}, **row}

        return parent

    # -- transactions --

    @contextmanager
    def atomic(self) -> Iterator[Callable[[], None]]:
        """Journal writes; the yielded function undoes all of them (allOrNone collections)."""
        outer = self._journal
        journal: list[Callable[[], None]] = []
        self._journal = journal

        def rollback() -> None:
            while journal:
                journal.pop()()

        try:
            yield rollback
        finally:
            self._journal = outer

    def _remember(self, undo: Callable[[], None]) -> None:
        if self._journal is not None:
            self._journal.append(undo)

    # -- writing --

    def insert(
        self,
        sobject: str,
        fields: Mapping[str, Any],
        *,
        at: datetime | None = None,
        screen: Screen | None = None,
    ) -> str:
        """Create a record; returns its 18-character id. `screen` may refuse it (faults)."""
        table = self._table(sobject)
        spec = table.spec
        if not spec.createable:
            raise OrgError("INVALID_TYPE", f"entity type cannot be inserted: {spec.name}")
        changes = self._changes(spec, fields, creating=True)
        stamp = self._stamp(at)
        row = Row(spec.defaults)
        if spec.has_owner:
            row["OwnerId"] = self.user_id
        row.update(changes)
        row["Id"] = self._new_id(spec.key_prefix)
        row["CreatedDate"] = row["LastModifiedDate"] = row["SystemModstamp"] = stamp
        row["CreatedById"] = row["LastModifiedById"] = self.user_id
        self._derive(spec.name, row, changes, stamp)
        self._check(table, row, screen)
        self._commit(table, row, None)
        return str(row["Id"])

    def update(
        self,
        sobject: str,
        record_id: str,
        fields: Mapping[str, Any],
        *,
        at: datetime | None = None,
        screen: Screen | None = None,
    ) -> None:
        table = self._table(sobject)
        old = self.row(sobject, record_id, writing=True)
        if not table.spec.updateable:
            raise OrgError("INVALID_TYPE", f"entity type cannot be updated: {table.spec.name}")
        if old["IsConverted"] and table.spec.name == "Lead":
            raise OrgError("CANNOT_UPDATE_CONVERTED_LEAD", "cannot reference converted lead")
        changes = self._changes(table.spec, fields, creating=False)
        row = Row(old)
        row.update(changes)
        self._touch(row, self._stamp(at))
        self._derive(table.spec.name, row, changes, row["SystemModstamp"])
        self._check(table, row, screen)
        self._commit(table, row, old)

    def delete(self, sobject: str, record_id: str, *, at: datetime | None = None) -> None:
        """Soft delete: the row stays, IsDeleted, visible to queryAll and getDeleted only."""
        table = self._table(sobject)
        old = self.row(sobject, record_id, writing=True)
        if not table.spec.deletable:
            raise OrgError("INVALID_TYPE", f"entity type cannot be deleted: {table.spec.name}")
        row = Row(old)
        row["IsDeleted"] = True
        self._touch(row, self._stamp(at))
        self._commit(table, row, old)
        entry = (str(row["Id"]), str(row["SystemModstamp"]))
        table.deleted_log.append(entry)
        self._remember(lambda: table.deleted_log.remove(entry))

    def merge(
        self, sobject: str, master_id: str, loser_id: str, *, at: datetime | None = None
    ) -> None:
        """Merge loser into master: the loser is deleted with MasterRecordId, children move."""
        table = self._table(sobject)
        if not table.spec.mergeable:
            raise OrgError("INVALID_TYPE", f"entity type cannot be merged: {table.spec.name}")
        master = self.row(sobject, master_id, writing=True)
        loser = self.row(sobject, loser_id, writing=True)
        stamp = self._stamp(at)
        self._reparent(table.spec.name, str(loser["Id"]), str(master["Id"]), stamp)
        self.delete(sobject, str(loser["Id"]), at=at)
        dead = Row(table.rows[loser["Id"]])
        dead["MasterRecordId"] = master["Id"]
        self._commit(table, dead, table.rows[loser["Id"]])
        touched = Row(master)
        self._touch(touched, stamp)
        self._commit(table, touched, master)

    def convert_lead(
        self,
        lead_id: str,
        *,
        account_id: str | None = None,
        contact_id: str | None = None,
        opportunity_name: str | None = None,
        at: datetime | None = None,
    ) -> dict[str, str | None]:
        """Convert a lead (SOAP `convertLead` has no REST form; this is the test hook)."""
        lead = self.row("Lead", lead_id, writing=True)
        if lead["IsConverted"]:
            raise OrgError("CANNOT_UPDATE_CONVERTED_LEAD", "cannot reference converted lead")
        moment = at or self.clock()
        account = account_id or self._account_from_lead(lead, moment)
        contact = self._contact_from_lead(lead, account, contact_id, moment)
        opportunity = None
        if opportunity_name is not None:
            opportunity = self._opportunity_from_lead(
                lead, account, contact, opportunity_name, moment
            )
        self._move_members_to_contact(str(lead["Id"]), contact, moment)
        self._mark_converted(lead, account, contact, opportunity, moment)
        return {
            "leadId": str(lead["Id"]),
            "accountId": account,
            "contactId": contact,
            "opportunityId": opportunity,
        }

    # -- conversion steps --

    def _account_from_lead(self, lead: Row, moment: datetime) -> str:
        fields = {"Name": lead["Company"], "Website": lead["Website"], "Phone": lead["Phone"]}
        if lead["Industry"] is not None:
            fields["Industry"] = lead["Industry"]
        return self.insert("Account", _present(fields), at=moment)

    def _contact_from_lead(
        self, lead: Row, account: str, contact_id: str | None, moment: datetime
    ) -> str:
        copied = _present({
            "FirstName": lead["FirstName"], "LastName": lead["LastName"],
            "Email": lead["Email"], "Title": lead["Title"], "Phone": lead["Phone"],
            "LeadSource": lead["LeadSource"], "HasOptedOutOfEmail": lead["HasOptedOutOfEmail"],
        })
        if contact_id is None:
            return self.insert("Contact", {**copied, "AccountId": account}, at=moment)
        # Converting into an existing contact only fills its blank fields.
        existing = self.row("Contact", contact_id, writing=True)
        blanks = {k: v for k, v in copied.items() if existing[k] in (None, "")}
        self.update("Contact", contact_id, blanks, at=moment)
        return str(existing["Id"])

    def _opportunity_from_lead(
        self, lead: Row, account: str, contact: str, name: str, moment: datetime
    ) -> str:
        fields: dict[str, Any] = {
            "Name": name, "AccountId": account, "StageName": STAGES[0][0],
            "CloseDate": _quarter_end(moment.astimezone(UTC).date()),
        }
        if lead["LeadSource"] is not None:
            fields["LeadSource"] = lead["LeadSource"]
        campaign = self._latest_campaign(str(lead["Id"]))
        if campaign is not None:
            # Primary Campaign Source from the lead's most recent campaign [reported][verify].
            fields["CampaignId"] = campaign
        opportunity = self.insert("Opportunity", fields, at=moment)
        self.insert(
            "OpportunityContactRole",
            {"OpportunityId": opportunity, "ContactId": contact, "IsPrimary": True},
            at=moment,
        )
        return opportunity

    def _latest_campaign(self, lead_id: str) -> str | None:
        members = [
            row for row in self._tables["CampaignMember"].rows.values()
            if row["LeadId"] == lead_id and not row["IsDeleted"]
        ]
        if not members:
            return None
        return str(max(members, key=lambda row: (row["CreatedDate"], row["Id"]))["CampaignId"])

    def _move_members_to_contact(self, lead_id: str, contact: str, moment: datetime) -> None:
        table = self._tables["CampaignMember"]
        stamp = self._stamp(moment)
        for old in list(table.rows.values()):
            if old["LeadId"] == lead_id and not old["IsDeleted"]:
                row = Row(old)
                row["ContactId"] = contact
                self._touch(row, stamp)
                self._derive("CampaignMember", row, {"ContactId": contact}, stamp)
                self._commit(table, row, old)

    def _mark_converted(
        self, lead: Row, account: str, contact: str, opportunity: str | None, moment: datetime
    ) -> None:
        table = self._tables["Lead"]
        row = Row(lead)
        row.update(
            IsConverted=True, ConvertedDate=moment.astimezone(UTC).date().isoformat(),
            ConvertedAccountId=account, ConvertedContactId=contact,
            ConvertedOpportunityId=opportunity, Status="Closed - Converted",
        )
        self._touch(row, self._stamp(moment))
        self._commit(table, row, lead)

    def _reparent(self, sobject: str, loser: str, master: str, stamp: str) -> None:
        """Point every lookup to the merge loser at the master (merge semantics)."""
        for table in self._tables.values():
            names = [
                spec.name for spec in table.spec.fields.values()
                if sobject in spec.reference_to and spec.reparented_on_merge
            ]
            if not names:
                continue
            for old in list(table.rows.values()):
                moved = {name: master for name in names if old.get(name) == loser}
                if moved:
                    row = Row(old)
                    row.update(moved)
                    self._touch(row, stamp)
                    self._commit(table, row, old)

    # -- the write pipeline --

    def _changes(
        self, spec: SObjectSpec, fields: Mapping[str, Any], *, creating: bool
    ) -> dict[str, Any]:
        """Fields of a write, checked for existence and access, in wire form."""
        changes: dict[str, Any] = {}
        for key, value in fields.items():
            if key == "attributes":
                continue
            name = spec.canonical(key)
            if name is None:
                raise OrgError(
                    "INVALID_FIELD", f"No such column '{key}' on sobject of type {spec.name}"
                )
            field_spec = spec.fields[name]
            if not (field_spec.createable if creating else field_spec.updateable):
                raise OrgError(
                    "INVALID_FIELD_FOR_INSERT_UPDATE",
                    f"Unable to create/update fields: {name}. Please check the security "
                    "settings of this field and verify that it is read/write for your "
                    "profile or permission set.",
                    [name],
                )
            if type(value) is str and field_spec.plain and len(value) <= field_spec.length:
                wire: Any = value  # the common case, checked without the general coercion
            else:
                wire = coerce(field_spec, value)
            if field_spec.type == "reference" and wire is not None:
                wire = self._reference(field_spec, wire)
            elif field_spec.restricted and wire is not None and wire not in field_spec.values:
                raise OrgError(
                    "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                    f"{field_spec.label}: bad value for restricted picklist field: {wire}",
                    [name],
                )
            changes[name] = wire
        return changes

    def _reference(self, spec: FieldSpec, value: str) -> str:
        # Fast path: an id exactly as stored (what seeding and most clients send).
        held = self._by_prefix.get(value[:3])
        if held in spec.reference_to and len(value) == 18:
            row = self._tables[str(held)].rows.get(value)
            if row is not None and not row["IsDeleted"]:
                return value
        canonical = to_id18(value)
        if canonical is None:
            raise OrgError(
                "MALFORMED_ID", f"{spec.label}: id value of incorrect type: {value}", [spec.name]
            )
        target = self._by_prefix.get(canonical[:3])
        if target not in spec.reference_to:
            raise OrgError(
                "FIELD_INTEGRITY_EXCEPTION",
                f"{spec.label}: id value of incorrect type: {value}",
                [spec.name],
            )
        row = self._tables[target].rows.get(canonical)
        if row is None or row["IsDeleted"]:
            raise OrgError("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", [spec.name])
        return canonical

    def _derive(self, sobject: str, row: Row, changes: Mapping[str, Any], stamp: str) -> None:
        """Read-only fields Salesforce computes from the others."""
        if sobject in NAME_FROM_PARTS:
            row["Name"] = " ".join(p for p in (row["FirstName"], row["LastName"]) if p) or None
        elif sobject == "Opportunity":
            self._derive_stage(row, changes)
        elif sobject == "CampaignMember":
            row["HasResponded"] = row["Status"] == "Responded"
            if row["HasResponded"] and row["FirstRespondedDate"] is None:
                row["FirstRespondedDate"] = stamp[:10]
            row["LeadOrContactId"] = row["ContactId"] or row["LeadId"]
            row["Type"] = "Contact" if row["ContactId"] else "Lead"
        elif sobject == "Task":
            row["IsClosed"] = row["Status"] == "Completed"
        elif sobject == "Event" and row["StartDateTime"] is not None:
            if row["EndDateTime"] is None:
                start = parse_datetime(str(row["StartDateTime"]))
                row["EndDateTime"] = wire_datetime(start + timedelta(hours=1)) if start else None
            row["ActivityDate"] = str(row["StartDateTime"])[:10]

    def _derive_stage(self, row: Row, changes: Mapping[str, Any]) -> None:
        if "StageName" not in changes and "IsClosed" in row:
            return
        stage = self._tables["OpportunityStage"].indexes["ApiName"].find(row["StageName"])
        if not stage:
            return
        info = self._tables["OpportunityStage"].rows[stage[0]]
        row["IsClosed"], row["IsWon"] = info["IsClosed"], info["IsWon"]
        if "Probability" not in changes:
            row["Probability"] = info["DefaultProbability"]
        if "ForecastCategoryName" not in changes:
            row["ForecastCategoryName"] = info["ForecastCategoryName"]

    def _check(self, table: Table, row: Row, screen: Screen | None) -> None:
        """Required fields, uniqueness, validation rules and the fault screen, in that order."""
        spec = table.spec
        missing = [name for name in spec.required if row[name] is None or row[name] == ""]
        if spec.name == "CampaignMember" and not (row["LeadId"] or row["ContactId"]):
            missing.extend(["LeadId", "ContactId"])
        if missing:
            raise OrgError(
                "REQUIRED_FIELD_MISSING", f"Required fields are missing: [{', '.join(missing)}]",
                missing,
            )
        for name in spec.unique:
            if row[name] is not None:
                others = [i for i in table.indexes[name].find(row[name]) if i != row["Id"]]
                if others:
                    raise OrgError(
                        "DUPLICATE_VALUE",
                        f"duplicate value found: {name} duplicates value on record with id: "
                        f"{others[0]}",
                        [name],
                    )
        if spec.name == "CampaignMember":
            held = self._members.get(_membership(row))
            if held is not None and held != row["Id"]:
                raise OrgError("DUPLICATE_VALUE", "Already a campaign member.")
        for rule in table.rules:
            message = rule(row)
            if message:
                raise OrgError("FIELD_CUSTOM_VALIDATION_EXCEPTION", message)
        if screen is not None and screen(spec.name, row):
            raise OrgError(
                "FIELD_CUSTOM_VALIDATION_EXCEPTION",
                "Record rejected by a validation rule (emulator fault injection)",
            )

    def _commit(self, table: Table, row: Row, old: Row | None) -> None:
        self._put(table, row, old)
        self._remember(lambda: self._put(table, old, row))
        if table.spec.name == "OpportunityContactRole" and row["IsPrimary"]:
            self._one_primary_role(table, row)

    def _one_primary_role(self, table: Table, primary: Row) -> None:
        """An opportunity has at most one primary contact role: setting one clears the rest."""
        for old in list(table.rows.values()):
            same = old["OpportunityId"] == primary["OpportunityId"]
            if same and old["IsPrimary"] and old["Id"] != primary["Id"] and not old["IsDeleted"]:
                row = Row(old)
                row["IsPrimary"] = False
                self._touch(row, str(primary["SystemModstamp"]))
                self._commit(table, row, old)

    def _put(self, table: Table, row: Row | None, old: Row | None) -> None:
        """Store `row` in place of `old` (either may be None), keeping every index in step."""
        for name, index in table.indexes.items():
            if old is not None and not old["IsDeleted"] and old.get(name) is not None:
                index.remove(old[name], old["Id"])
            if row is not None and not row["IsDeleted"] and row.get(name) is not None:
                index.add(row[name], row["Id"])
        if table.spec.name == "CampaignMember":
            if old is not None and not old["IsDeleted"]:
                self._members.pop(_membership(old), None)
            if row is not None and not row["IsDeleted"]:
                self._members[_membership(row)] = row["Id"]
        if row is not None:
            table.rows[row["Id"]] = row
        elif old is not None:
            table.rows.pop(old["Id"], None)

    def _touch(self, row: Row, stamp: str) -> None:
        row["LastModifiedDate"] = row["SystemModstamp"] = stamp
        row["LastModifiedById"] = self.user_id

    def stamp(self, at: datetime | None = None) -> str:
        """A moment (default: now by the org's clock) in wire form."""
        return self._stamp(at)

    def _stamp(self, at: datetime | None) -> str:
        moment = at if at is not None else self.clock()
        cached_at, cached = self._stamp_cache
        if cached_at == moment:
            return cached
        text = wire_datetime(moment)
        self._stamp_cache = (moment, text)
        return text

    def _new_id(self, prefix: str) -> str:
        self._counter += 1
        id15 = f"{prefix}8c0{_base62(self._counter, 9)}"
        return id15 + _checksum(id15)

    def new_id(self, prefix: str) -> str:
        """A fresh id with a key prefix (jobs `750`, query locators `01g`)."""
        return self._new_id(prefix)


def _membership(row: Row) -> tuple[str, str]:
    # A person is a campaign member once, whether they joined as a lead or as a contact.
    return (str(row["CampaignId"]), str(row["LeadId"] or row["ContactId"]))


def _present(fields: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in fields.items() if v is not None}


def _quarter_end(day: date) -> date:
    # Conversion's default CloseDate is the end of the current quarter [reported].
    last_month = (day.month - 1) // 3 * 3 + 3
    if last_month == 12:
        return date(day.year, 12, 31)
    return date(day.year, last_month + 1, 1) - timedelta(days=1)
