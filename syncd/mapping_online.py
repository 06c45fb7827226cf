"""The mappings against the live schemas (HubSpot properties, Salesforce describe), for
`syncd check --online`: unknown fields, read-only targets, kind and picklist mismatches, and
the custom fields syncd itself needs (`SYNCD_FIELDS`), which `--fix` creates on HubSpot.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from syncd.mapping import FieldMapping, Mappings
from syncd.mapping_files import Report, display, shown, suggestion
from syncd.model import FieldInfo, ObjectSchema
from syncd.stages import LifecycleSettings

__all__ = ["SYNCD_FIELDS", "CustomField", "check_online", "missing_custom_fields"]

@dataclass(frozen=True)
class CustomField:
    """A field syncd itself needs on a CRM object (ARCHITECTURE section 5)."""

    system: str
    object: str
    name: str
    type: str
    field_type: str
    label: str
    purpose: str
    unique: bool = False


def _hubspot_custom(
    obj: str, name: str, label: str, purpose: str, *, unique: bool = False, number: bool = False
) -> CustomField:
    return CustomField(
        "hubspot",
        obj,
        name,
        "number" if number else "string",
        "number" if number else "text",
        label,
        purpose,
        unique,
    )


def _salesforce_custom(
    obj: str, name: str, kind: str, purpose: str, unique: bool = False
) -> CustomField:
    return CustomField(
        "salesforce",
        obj,
        name,
        kind,
        kind,
        name.removesuffix("__c").replace("_", " "),
        purpose,
        unique,
    )


_KEY = "its idempotency key"
SYNCD_FIELDS: tuple[CustomField, ...] = (
    *(
        _hubspot_custom(obj, "syncd_id", "syncd id", _KEY, unique=True)
        for obj in ("contacts", "companies", "deals")
    ),
    _hubspot_custom(
        "contacts",
        "syncd_attributed_revenue",
        "syncd attributed revenue",
        "attributed revenue",
        number=True,
    ),
    _hubspot_custom(
        "deals", "syncd_first_touch_campaign", "syncd first touch campaign", "the first touch"
    ),
    _hubspot_custom(
        "deals", "syncd_last_touch_campaign", "syncd last touch campaign", "the last touch"
    ),
    *(
        _salesforce_custom(obj, "Syncd_Id__c", "Text(255), External ID, Unique", _KEY, True)
        for obj in ("Lead", "Contact")
    ),
    *(
        _salesforce_custom(obj, "Lifecycle_Stage__c", "Picklist", "the unified lifecycle stage")
        for obj in ("Lead", "Contact")
    ),
    _salesforce_custom("Opportunity", "First_Touch_Campaign__c", "Text(255)", "the first touch"),
    _salesforce_custom("Opportunity", "Last_Touch_Campaign__c", "Text(255)", "the last touch"),
    _salesforce_custom("Campaign", "Attributed_Revenue__c", "Currency", "attributed revenue"),
)
# Which file reports a missing custom field: the one mapping its object (Campaign: attribution
# lives with opportunities).
_REPORTED_BY = {
    "contacts": "person",
    "Lead": "person",
    "Contact": "person",
    "companies": "account",
    "deals": "opportunity",
    "Opportunity": "opportunity",
    "Campaign": "opportunity",
}

_HUBSPOT_KINDS = {
    "string": "text",
    "phone_number": "text",
    "number": "number",
    "date": "date",
    "datetime": "date",
    "enumeration": "choice",
    "bool": "true/false",
}
_SALESFORCE_KINDS = {
    **dict.fromkeys(
        (
            "string",
            "email",
            "phone",
            "url",
            "textarea",
            "id",
            "reference",
            "combobox",
            "encryptedstring",
        ),
        "text",
    ),
    **dict.fromkeys(("picklist", "multipicklist"), "choice"),
    **dict.fromkeys(("int", "long", "double", "currency", "percent"), "number"),
    **dict.fromkeys(("date", "datetime"), "date"),
    "boolean": "true/false",
}


def _accepts(target: str, source: str) -> bool:
    """Whether a target of one kind can hold values read from a source of another."""
    return target == source or target == "text" or (target == "choice" and source == "text")


def missing_custom_fields(
    mappings: Mappings,
    hubspot_schema: Mapping[str, ObjectSchema],
    salesforce_schema: Mapping[str, ObjectSchema],
) -> list[CustomField]:
    """syncd's own fields absent (or not unique where they must be) on the described objects.

    `syncd check --online --fix` creates the HubSpot ones from these definitions. An object
    whose schema was not passed (e.g. Campaign) is not checked.
    """
    synced = {m.hubspot_object for m in mappings.all()}
    synced |= {obj for m in mappings.all() for obj in m.salesforce_objects} | {"Campaign"}
    missing = []
    for custom in SYNCD_FIELDS:
        schemas = hubspot_schema if custom.system == "hubspot" else salesforce_schema
        schema = schemas.get(custom.object)
        if custom.object not in synced or schema is None:
            continue
        found = _lookup(schema, custom.name)
        if found is None or (custom.unique and not found.unique):
            missing.append(custom)
    return missing


def check_online(
    mappings: Mappings,
    hubspot_schema: Mapping[str, ObjectSchema],
    salesforce_schema: Mapping[str, ObjectSchema],
) -> list[str]:
    """Every problem of the mappings against the live schemas, one line each."""
    reports = {m.entity: Report(display(m.path)) for m in mappings.all()}
    for mapping in mappings.all():
        report = reports[mapping.entity]
        hubspot = hubspot_schema.get(mapping.hubspot_object)
        if hubspot is None:
            report.add(
                "objects",
                "hubspot",
                f'HubSpot object "{mapping.hubspot_object}" was '
                f"not described; check the private app's scopes.",
            )
        salesforce = {obj: salesforce_schema.get(obj) for obj in mapping.salesforce_objects}
        for obj in (obj for obj, schema in salesforce.items() if schema is None):
            report.add(
                "objects",
                "salesforce",
                f"Salesforce {obj} was not described; check the user's object permissions.",
            )
        for field_mapping in mapping.fields.values():
            _check_field(field_mapping, hubspot, salesforce, report)
    missing = missing_custom_fields(mappings, hubspot_schema, salesforce_schema)
    for custom in missing:
        _report_custom(
            custom, hubspot_schema, salesforce_schema, reports[_REPORTED_BY[custom.object]]
        )
    return [line for report in reports.values() for line in report.problems]


def _lookup(schema: ObjectSchema, name: str) -> FieldInfo | None:
    # Salesforce API names are case-insensitive; HubSpot's are lower-case in practice.
    found = schema.fields.get(name)
    if found is None:
        folded = name.casefold()
        found = next((f for n, f in schema.fields.items() if n.casefold() == folded), None)
    return found


def _report_custom(
    custom: CustomField,
    hubspot_schema: Mapping[str, ObjectSchema],
    salesforce_schema: Mapping[str, ObjectSchema],
    report: Report,
) -> None:
    schemas = hubspot_schema if custom.system == "hubspot" else salesforce_schema
    present = _lookup(schemas[custom.object], custom.name) is not None
    state = "is not unique" if present else "is missing"
    if custom.system == "hubspot":
        report.add(
            "objects",
            "hubspot",
            f'HubSpot {custom.object} property "{custom.name}" '
            f"{state}: syncd needs it ({custom.type}{', unique' if custom.unique else ''})"
            f" for {custom.purpose}. `syncd check --online --fix` creates it.",
        )
    else:
        report.add(
            "objects",
            "salesforce",
            f'Salesforce {custom.object} field "{custom.name}" '
            f"{state}: syncd needs it ({custom.type}) for {custom.purpose}. An admin "
            f"creates it in Setup, Object Manager.",
        )


def _check_field(
    mapping: FieldMapping,
    hubspot: ObjectSchema | None,
    salesforce: Mapping[str, ObjectSchema | None],
    report: Report,
) -> None:
    section = f"fields.{mapping.name}"
    target = _hubspot_info(mapping, hubspot, section, report)
    for obj, schema in salesforce.items():
        if schema is None or obj not in mapping.salesforce:
            continue
        source = _salesforce_info(mapping.salesforce[obj], schema, section, report)
        if target is not None and source is not None:
            _check_pair(mapping, target, f"{obj}.{source.name}", source, report)


def _hubspot_info(
    mapping: FieldMapping, schema: ObjectSchema | None, section: str, report: Report
) -> FieldInfo | None:
    if mapping.hubspot is None or schema is None:
        return None
    found = schema.fields.get(mapping.hubspot)
    if found is None:
        report.add(
            section,
            "hubspot",
            f'HubSpot property "{mapping.hubspot}" does not exist on '
            f"{schema.object} in this portal.{suggestion(mapping.hubspot, schema.fields)}",
        )
    elif mapping.writes_hubspot and not found.updateable:
        report.add(
            section,
            "hubspot",
            f'HubSpot property "{found.name}" is read-only, but rule '
            f'"{mapping.rule}" writes to it. Use rule = "always-hubspot" or "none".',
        )
    return found


def _salesforce_info(
    name: str, schema: ObjectSchema, section: str, report: Report
) -> FieldInfo | None:
    found = _lookup(schema, name)
    if found is None:
        report.add(
            section,
            "salesforce",
            f'Salesforce {schema.object} has no field "{name}".{suggestion(name, schema.fields)}',
        )
    return found


def _check_pair(
    mapping: FieldMapping, hubspot: FieldInfo, where: str, salesforce: FieldInfo, report: Report
) -> None:
    section = f"fields.{mapping.name}"
    hubspot_kind = _HUBSPOT_KINDS.get(hubspot.type, hubspot.type)
    salesforce_kind = _SALESFORCE_KINDS.get(salesforce.type, salesforce.type)
    if mapping.writes_salesforce and not salesforce.updateable:
        report.add(
            section,
            "salesforce",
            f"Salesforce {where} is read-only, but rule "
            f'"{mapping.rule}" writes to it. Use rule = "always-salesforce" or "none".',
        )
    if mapping.writes_hubspot and not _accepts(hubspot_kind, salesforce_kind):
        report.add(
            section,
            "hubspot",
            f'HubSpot property "{hubspot.name}" is {hubspot_kind} '
            f"but is fed from Salesforce {where}, which is {salesforce_kind}. Map fields "
            f'of the same kind, or set rule = "none".',
        )
    elif mapping.writes_salesforce and not _accepts(salesforce_kind, hubspot_kind):
        report.add(
            section,
            "salesforce",
            f"Salesforce {where} is {salesforce_kind} but is fed "
            f'from HubSpot property "{hubspot.name}", which is {hubspot_kind}. Map fields '
            f'of the same kind, or set rule = "none".',
        )
    _check_values(mapping, hubspot, where, salesforce, report)


def _check_values(
    mapping: FieldMapping, hubspot: FieldInfo, where: str, salesforce: FieldInfo, report: Report
) -> None:
    """Value-map entries and picklist options each side accepts."""
    section, values = f"fields.{mapping.name}", mapping.values
    salesforce_options = {o.casefold(): o for o in salesforce.options}
    for salesforce_value, hubspot_value in values.items():
        if salesforce.options and salesforce_value.casefold() not in salesforce_options:
            report.add(
                f"{section}.values",
                shown(salesforce_value),
                f"Salesforce {where} has "
                f"no picklist value {shown(salesforce_value)}."
                f"{suggestion(salesforce_value, salesforce.options)}",
            )
        if hubspot.options and hubspot_value not in hubspot.options:
            report.add(
                f"{section}.values",
                shown(salesforce_value),
                f"HubSpot property "
                f'"{hubspot.name}" has no option {shown(hubspot_value)}.'
                f"{suggestion(hubspot_value, hubspot.options)}",
            )
    if mapping.writes_hubspot and salesforce.options and (hubspot.options or values):
        unmapped = (
            [o for o in salesforce.options if o not in values]
            if values
            else [o for o in salesforce.options if o not in hubspot.options]
        )
        _unmapped(
            unmapped, f"Salesforce {where}", f'HubSpot property "{hubspot.name}"', section, report
        )
    if mapping.writes_salesforce and hubspot.options and (salesforce.options or values):
        back = set(values.values()) if values else {o.casefold() for o in salesforce.options}
        unmapped = [o for o in hubspot.options if (o if values else o.casefold()) not in back]
        _unmapped(
            unmapped, f'HubSpot property "{hubspot.name}"', f"Salesforce {where}", section, report
        )


def _unmapped(values: list[str], source: str, target: str, section: str, report: Report) -> None:
    if values:
        listed = ", ".join(map(shown, values[:8])) + (" ..." if len(values) > 8 else "")
        report.add(
            section,
            "values",
            f"{source} values {listed} have no value in {target}; "
            f'add them to [{section}.values] ("Salesforce value" = "HubSpot value").',
        )


def check_lifecycle_online(
    lifecycle: LifecycleSettings,
    hubspot_schema: Mapping[str, ObjectSchema],
    salesforce_schema: Mapping[str, ObjectSchema],
) -> list[str]:
    """The stages of `lifecycle.toml` against the values each CRM accepts where syncd writes
    them: HubSpot's contact `lifecyclestage` options, and the `Lifecycle_Stage__c` picklist of
    Salesforce Leads and Contacts (a restricted picklist refuses any other value, record by
    record, at push time). A property or field that is absent is reported elsewhere."""
    report = Report(display(lifecycle.path))
    contacts = hubspot_schema.get("contacts")
    stage_property = contacts.fields.get("lifecyclestage") if contacts else None
    picklists: dict[str, tuple[FieldInfo, set[str]]] = {}
    for obj in ("Lead", "Contact"):
        schema = salesforce_schema.get(obj)
        field = _lookup(schema, "Lifecycle_Stage__c") if schema is not None else None
        if field is not None and field.options:
            picklists[obj] = (field, {option.casefold() for option in field.options})
    for index, stage in enumerate(lifecycle.stages, start=1):
        where = f"stages.{index}"
        if stage_property is not None and stage_property.options and (
            stage.hubspot not in stage_property.options
        ):
            report.add(
                where,
                "hubspot",
                f'HubSpot contact property "lifecyclestage" has no option {shown(stage.hubspot)}.'
                f"{suggestion(stage.hubspot, stage_property.options)} Add the stage in HubSpot "
                "(Settings > Objects > Contacts > Lifecycle stage), or give its internal value.",
            )
        for obj, (field, accepted) in picklists.items():
            if stage.salesforce.casefold() not in accepted:
                report.add(
                    where,
                    "salesforce",
                    f"Salesforce {obj}.Lifecycle_Stage__c has no picklist value "
                    f"{shown(stage.salesforce)}.{suggestion(stage.salesforce, field.options)} "
                    "Add it in Setup (Object Manager > the object > Lifecycle Stage), or name an "
                    "existing value.",
                )
    return report.problems
