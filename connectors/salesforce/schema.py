"""The static half of the Salesforce emulator: the standard objects syncd reads and writes,
their fields as describe reports them, and the custom fields an admin creates for syncd.

`build_schema()` makes a fresh, mutable copy per org (`Org.add_field` changes it); everything
here is data and describe rendering, with no records and no write checks (those are `org.py`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

STRING_TYPES = frozenset(
    {"string", "email", "phone", "url", "textarea", "picklist", "multipicklist", "combobox"}
)
NUMBER_TYPES = frozenset({"double", "currency", "percent"})

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
        string_like = self.type in STRING_TYPES or self.type in ("id", "reference")
        number = self.type in NUMBER_TYPES
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
            "groupable": self.type not in ("textarea", "datetime", *NUMBER_TYPES),
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
