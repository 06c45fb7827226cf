"""What a fresh HubSpot portal's schema holds, and the formats its values are kept in.

The object types and the names they go by, the standard property definitions (`PropertyDef`,
`_builtin`), HubSpot-defined association type ids, and how timestamps and dates are written
(`iso_ms`, `canonical_datetime`, ...). The records themselves live in `portal_tables.py`; the
`Portal` that holds them in `portal.py`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from connectors.loopback import utc_millis

OBJECT_TYPE_IDS = {"contacts": "0-1", "companies": "0-2", "deals": "0-3"}
SINGULAR = {"contacts": "contact", "companies": "company", "deals": "deal"}
_ALIASES = {
    **{name: name for name in OBJECT_TYPE_IDS},
    **{type_id: name for name, type_id in OBJECT_TYPE_IDS.items()},
    **{singular: name for name, singular in SINGULAR.items()},
}

# Contacts keep the legacy name; companies and deals use the hs_ one (reference 1.2).
MODIFIED_PROPERTY = {
    "contacts": "lastmodifieddate",
    "companies": "hs_lastmodifieddate",
    "deals": "hs_lastmodifieddate",
}
# Returned when a read names no `properties` (reference 1.2).
DEFAULT_PROPERTIES = {
    "contacts": ("createdate", "email", "firstname", "hs_object_id", "lastmodifieddate",
                 "lastname"),
    "companies": ("createdate", "domain", "hs_lastmodifieddate", "hs_object_id", "name"),
    "deals": ("amount", "closedate", "createdate", "dealname", "dealstage",
              "hs_lastmodifieddate", "hs_object_id", "pipeline"),
}
LIFECYCLE_STAGES = ("subscriber", "lead", "marketingqualifiedlead", "salesqualifiedlead",
                    "opportunity", "customer", "evangelist", "other")
ANALYTICS_SOURCES = ("ORGANIC_SEARCH", "PAID_SEARCH", "EMAIL_MARKETING", "SOCIAL_MEDIA",
                     "REFERRALS", "OTHER_CAMPAIGNS", "DIRECT_TRAFFIC", "OFFLINE", "PAID_SOCIAL")
DEAL_STAGES = (("appointmentscheduled", "Appointment Scheduled", "0.2", False),
               ("qualifiedtobuy", "Qualified To Buy", "0.4", False),
               ("presentationscheduled", "Presentation Scheduled", "0.6", False),
               ("decisionmakerboughtin", "Decision Maker Bought-In", "0.8", False),
               ("contractsent", "Contract Sent", "0.9", False),
               ("closedwon", "Closed Won", "1.0", True),
               ("closedlost", "Closed Lost", "0.0", True))

# HubSpot-defined association type ids (reference 1.5): (from, to) -> unlabeled, primary.
UNLABELED_TYPE = {
    ("contacts", "companies"): 279, ("companies", "contacts"): 280,
    ("deals", "companies"): 341, ("companies", "deals"): 342,
    ("contacts", "deals"): 4, ("deals", "contacts"): 3,
    ("contacts", "contacts"): 449, ("companies", "companies"): 450, ("deals", "deals"): 451,
}
PRIMARY_TYPE = {("contacts", "companies"): 1, ("companies", "contacts"): 2,
                ("deals", "companies"): 5, ("companies", "deals"): 6}
_INVERSE_PAIRS = ((279, 280), (1, 2), (341, 342), (5, 6), (4, 3), (449, 449), (450, 450),
                  (451, 451), (13, 14))
INVERSE_TYPE = {a: b for a, b in _INVERSE_PAIRS} | {b: a for a, b in _INVERSE_PAIRS}


def canonical_type(name: str) -> str | None:
    """`contacts`, `0-1` and `contact` all name the contacts object; None for others."""
    return _ALIASES.get(name.lower())


def iso_ms(moment: datetime) -> str:
    """HubSpot's timestamp text: UTC, milliseconds, `Z` (`2024-01-02T03:04:05.678Z`).
    Naive datetimes are taken as UTC."""
    return utc_millis(moment, "Z")


def epoch_ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def parse_moment(text: str) -> datetime | None:
    """A datetime from epoch milliseconds or ISO 8601 (both accepted by HubSpot), else None."""
    text = text.strip()
    try:
        if text.lstrip("-").isdigit():
            return datetime.fromtimestamp(int(text) / 1000, UTC)
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except (ValueError, OverflowError):
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def canonical_datetime(text: str) -> str:
    """A datetime value as HubSpot stores it (ISO with ms and Z); unparseable text unchanged."""
    if len(text) == 24 and text[10] == "T" and text[-1] == "Z":
        return text  # already canonical: the hot path of every search comparison
    moment = parse_moment(text)
    return iso_ms(moment) if moment else text


def canonical_date(text: str) -> str:
    """A date value as `YYYY-MM-DD` (epoch ms of midnight UTC is also accepted)."""
    moment = parse_moment(text)
    return moment.date().isoformat() if moment else text


@dataclass(slots=True)
class PropertyDef:
    """One property definition as the Properties API describes it (reference 1.6)."""

    name: str
    label: str
    type: str = "string"
    field_type: str = "text"
    group_name: str = "contactinformation"
    options: tuple[str, ...] = ()
    has_unique_value: bool = False
    read_only: bool = False
    hubspot_defined: bool = True
    calculated: bool = False
    display_order: int = -1
    description: str = ""
    created_at: datetime = field(default_factory=lambda: datetime(2019, 8, 6, tzinfo=UTC))

    def wire(self) -> dict[str, object]:
        stamp = iso_ms(self.created_at)
        return {
            "name": self.name, "label": self.label, "type": self.type,
            "fieldType": self.field_type, "groupName": self.group_name,
            "description": self.description,
            "options": [
                {"label": _label_of(value), "value": value, "displayOrder": order,
                 "hidden": False, "description": ""}
                for order, value in enumerate(self.options)
            ],
            "displayOrder": self.display_order, "calculated": self.calculated,
            "externalOptions": False, "hasUniqueValue": self.has_unique_value,
            "hidden": False, "hubspotDefined": self.hubspot_defined,
            "formField": not self.read_only,
            "modificationMetadata": {
                "archivable": not self.hubspot_defined, "readOnlyDefinition": self.hubspot_defined,
                "readOnlyValue": self.read_only, "readOnlyOptions": self.hubspot_defined,
            },
            "createdAt": stamp, "updatedAt": stamp, "archived": False,
            "dataSensitivity": "non_sensitive",
        }


def _label_of(value: str) -> str:
    return value.replace("_", " ").title()


def _builtin(object_type: str) -> dict[str, PropertyDef]:
    """The standard properties of a fresh portal (the `syncd_*` ones are created later)."""
    group = {"contacts": "contactinformation", "companies": "companyinformation",
             "deals": "dealinformation"}[object_type]
    modified = MODIFIED_PROPERTY[object_type]
    common = [
        PropertyDef("hs_object_id", "Record ID", "number", "number", group, read_only=True),
        PropertyDef("createdate", "Create Date", "datetime", "date", group, read_only=True),
        PropertyDef(modified, "Last Modified Date", "datetime", "date", group, read_only=True),
        PropertyDef("hs_merged_object_ids", "Merged Record IDs", "enumeration", "checkbox",
                    group, read_only=True),
        PropertyDef("hubspot_owner_id", "Owner", "enumeration", "select", group),
    ]
    specific = {
        "contacts": [
            PropertyDef("email", "Email", group_name=group),
            PropertyDef("firstname", "First Name", group_name=group),
            PropertyDef("lastname", "Last Name", group_name=group),
            PropertyDef("jobtitle", "Job Title", group_name=group),
            PropertyDef("phone", "Phone Number", "string", "phonenumber", group),
            PropertyDef("company", "Company Name", group_name=group),
            PropertyDef("website", "Website URL", group_name=group),
            PropertyDef("lifecyclestage", "Lifecycle Stage", "enumeration", "radio", group,
                        LIFECYCLE_STAGES),
            PropertyDef("hs_lead_status", "Lead Status", "enumeration", "radio", group,
                        ("NEW", "OPEN", "IN_PROGRESS", "OPEN_DEAL", "UNQUALIFIED",
                         "ATTEMPTED_TO_CONTACT", "CONNECTED", "BAD_TIMING")),
            PropertyDef("hs_analytics_source", "Original Source", "enumeration", "select",
                        "analyticsinformation", ANALYTICS_SOURCES, read_only=True),
            PropertyDef("hs_analytics_source_data_1", "Original Source Drill-Down 1",
                        group_name="analyticsinformation", read_only=True),
            PropertyDef("hs_analytics_source_data_2", "Original Source Drill-Down 2",
                        group_name="analyticsinformation", read_only=True),
            *(PropertyDef(f"hs_lifecyclestage_{stage}_date", f"Became a {stage} Date",
                          "datetime", "date", group, read_only=True)
              for stage in LIFECYCLE_STAGES),
        ],
        "companies": [
            PropertyDef("name", "Company name", group_name=group),
            PropertyDef("domain", "Company Domain Name", group_name=group),
            PropertyDef("website", "Website URL", group_name=group),
            PropertyDef("industry", "Industry", group_name=group),
            PropertyDef("phone", "Phone Number", "string", "phonenumber", group),
            PropertyDef("lifecyclestage", "Lifecycle Stage", "enumeration", "radio", group,
                        LIFECYCLE_STAGES),
        ],
        "deals": [
            PropertyDef("dealname", "Deal Name", group_name=group),
            PropertyDef("amount", "Amount", "number", "number", group),
            PropertyDef("closedate", "Close Date", "datetime", "date", group),
            PropertyDef("dealstage", "Deal Stage", "enumeration", "radio", group,
                        tuple(stage for stage, *_ in DEAL_STAGES)),
            PropertyDef("pipeline", "Pipeline", "enumeration", "select", group, ("default",)),
            PropertyDef("hs_is_closed", "Is Deal Closed?", "bool", "booleancheckbox", group,
                        ("true", "false"), read_only=True, calculated=True),
        ],
    }[object_type]
    return {prop.name: prop for prop in common + specific}
