"""Loading the mapping files (`mappings/person.toml`, `account.toml`, `opportunity.toml`) and
validating them offline.

`load_mappings` reads a folder (a missing file falls back to the installed default,
ARCHITECTURE section 4) and raises one `MappingError` listing every problem of every file, one
line each, shaped `<folder>/<file> [<section>] <key>: <what is wrong>. <suggestion>`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any, cast

from syncd.errors import MappingError
from syncd.mapping import (
    BLANKS,
    RULES,
    WRITES_SALESFORCE,
    Blank,
    EntityMapping,
    FieldMapping,
    Mappings,
    Rule,
)
from syncd.mapping_files import (
    Report,
    display,
    folder_problem,
    mapping_path,
    read_document,
    shown,
    suggestion,
)
from syncd.transforms import TRANSFORMS

__all__ = ["load_mappings"]

ENTITIES = ("person", "account", "opportunity")
# Objects each file may sync: syncd's reconcile knows these and only these (ARCHITECTURE 5).
ENTITY_OBJECTS: Mapping[str, tuple[str, tuple[str, ...]]] = {
    "person": ("contacts", ("Contact", "Lead")),
    "account": ("companies", ("Account",)),
    "opportunity": ("deals", ("Opportunity",)),
}
ENTITY_WORDS = {"person": "people", "account": "accounts", "opportunity": "opportunities"}
# Other files the mappings folder holds, read by other parts of syncd.
OTHER_FILES = ("lifecycle", "attribution")
SECTIONS = ("objects", "match", "fields")
SECTION_KEYS: Mapping[str, tuple[str, ...]] = {
    "objects": ("hubspot", "salesforce"),
    "match": ("keys",),
}
FIELD_KEYS = ("hubspot", "salesforce", "rule", "transform", "blank", "values")
# The shapes of the names a field gives, checked offline (`check --online` asks the live
# schemas): a HubSpot property's internal name, and a Salesforce field's API name (custom
# fields end in `__c`). The connectors read and write fields of the record itself, so a
# relationship path such as `Account.Name` cannot be mapped.
HUBSPOT_NAME = re.compile(r"[a-z][a-z0-9_]*")
SALESFORCE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "text"
    return (
        "a list" if isinstance(value, list) else "a table" if isinstance(value, dict) else "a date"
    )


def load_mappings(folder: Path | None) -> Mappings:
    """The mappings in `folder` (None: the installed defaults); MappingError lists all problems.

    A file the folder lacks is taken from the installed defaults (ARCHITECTURE section 4).
    """
    problems: list[str] = []
    if folder is not None and (problem := folder_problem(folder)):
        raise MappingError([problem])
    if folder is not None:
        problems += _stray_files(folder)
    loaded: dict[str, EntityMapping] = {}
    for entity in ENTITIES:
        path = mapping_path(folder, entity)
        report = Report(display(path))
        mapping = _load_file(entity, path, report)
        problems += report.problems
        if mapping is not None:
            loaded[entity] = mapping
    if problems:
        raise MappingError(problems)
    return Mappings(loaded["person"], loaded["account"], loaded["opportunity"], folder)


def _stray_files(folder: Path) -> list[str]:
    """A misspelt or wrongly cased file name, or a broken symbolic link, would silently fall
    back to the installed default: say so."""
    stems = (*ENTITIES, *OTHER_FILES)
    known = tuple(f"{stem}.toml" for stem in stems)
    problems = []
    for path in sorted(folder.iterdir()):
        if path.suffix.casefold() != ".toml":
            continue
        hint = suggestion(path.stem, stems, '"{}.toml"')
        if path.name in known and _dangling(path):
            problems.append(
                f"{display(path)}: a broken symbolic link (to {shown(os.readlink(path))}); "
                f"point it at the mapping file, or remove it to use the installed default."
            )
        elif path.name not in known and hint:
            problems.append(
                f"{display(path)}: not a file syncd reads (it reads {', '.join(known)}).{hint}"
            )
    return problems


def _dangling(path: Path) -> bool:
    try:
        return path.is_symlink() and not path.exists()
    except OSError:
        return False  # a target that cannot be reached: reading it says why


def _load_file(entity: str, path: Path, report: Report) -> EntityMapping | None:
    document = read_document(path, report)
    return None if document is None else _entity(entity, path, document, report)


def _entity(
    entity: str, path: Path, document: dict[str, Any], report: Report
) -> EntityMapping | None:
    for name in document:
        if name not in SECTIONS:
            report.add(
                name,
                None,
                f"not a section of a mapping file (sections: "
                f"{', '.join(SECTIONS)}).{suggestion(name, SECTIONS, '[{}]')}",
            )
    objects = _objects(entity, document.get("objects"), report)
    raw_fields = document.get("fields")
    fields = _fields(raw_fields, objects[1] if objects else (), report)
    # Match keys are checked against the tables present, even when one of them is wrong.
    names = tuple(raw_fields) if isinstance(raw_fields, dict) and raw_fields else None
    match_keys = _match(document.get("match"), names, report)
    if report.problems or objects is None or fields is None or match_keys is None:
        return None
    return EntityMapping(entity, path, objects[0], objects[1], match_keys, MappingProxyType(fields))


def _unknown_keys(
    table: Mapping[str, Any], allowed: Iterable[str], section: str, report: Report
) -> None:
    allowed = tuple(allowed)
    for key in table:
        if key not in allowed:
            report.add(
                section,
                key,
                f"not a key of [{section}] (keys: {', '.join(allowed)}).{suggestion(key, allowed)}",
            )


def _objects(entity: str, raw: Any, report: Report) -> tuple[str, tuple[str, ...]] | None:
    hubspot_object, salesforce_objects = ENTITY_OBJECTS[entity]
    example = f'hubspot = "{hubspot_object}" and salesforce = {shown(list(salesforce_objects))}'
    if not isinstance(raw, dict):
        report.add(
            "objects",
            None,
            f"missing: every mapping file starts with [objects] naming {example}."
            if raw is None
            else f"must be a table with {example}.",
        )
        return None
    _unknown_keys(raw, SECTION_KEYS["objects"], "objects", report)
    words = ENTITY_WORDS[entity]
    hubspot = _object_name(raw.get("hubspot"), (hubspot_object,), "hubspot", words, report)
    salesforce = raw.get("salesforce")
    names = [salesforce] if isinstance(salesforce, str) else salesforce
    if not isinstance(names, list) or not names:
        if names is None:
            message = f"missing: {words} sync Salesforce {shown(list(salesforce_objects))}."
        elif names == []:
            message = f"lists no object: {words} sync {shown(list(salesforce_objects))}."
        else:
            message = (
                f"must be a list such as {shown(list(salesforce_objects))}, "
                f"not {_kind(salesforce)}."
            )
        report.add("objects", "salesforce", message)
        return None
    checked = [
        _object_name(name, salesforce_objects, "salesforce", words, report) for name in names
    ]
    for name in {n for n in checked if n and checked.count(n) > 1}:
        report.add("objects", "salesforce", f'"{name}" is listed twice; list each object once.')
    if hubspot is None or None in checked:
        return None
    return hubspot, tuple(cast(list[str], checked))


def _object_name(
    raw: Any, allowed: tuple[str, ...], key: str, words: str, report: Report
) -> str | None:
    system = "HubSpot" if key == "hubspot" else "Salesforce"
    if raw is None:
        report.add("objects", key, f"missing: {words} sync {system} {shown(allowed[0])}.")
    elif not isinstance(raw, str):
        report.add("objects", key, f"must be text such as {shown(allowed[0])}, not {_kind(raw)}.")
    elif raw not in allowed:
        report.add(
            "objects",
            key,
            f'"{raw}" is not a {system} object syncd syncs as {words} '
            f"(it syncs {', '.join(map(shown, allowed))}).{suggestion(raw, allowed)}",
        )
    else:
        return raw
    return None


def _match(raw: Any, fields: tuple[str, ...] | None, report: Report) -> tuple[str, ...] | None:
    if raw is None:
        return ()
    if not isinstance(raw, dict):
        report.add("match", None, f'must be a table such as keys = ["email"], not {_kind(raw)}.')
        return None
    _unknown_keys(raw, SECTION_KEYS["match"], "match", report)
    keys = raw.get("keys", [])
    if not isinstance(keys, list) or not all(isinstance(key, str) for key in keys):
        report.add(
            "match", "keys", f'must be a list of field names such as ["email"], not {shown(keys)}.'
        )
        return None
    for key in keys:
        if fields is not None and key not in fields:
            report.add(
                "match",
                "keys",
                f'"{key}" is not a field of this file; match keys '
                f"name [fields.NAME] tables.{suggestion(key, fields)}",
            )
    return tuple(keys)


def _fields(raw: Any, objects: tuple[str, ...], report: Report) -> dict[str, FieldMapping] | None:
    if not isinstance(raw, dict) or not raw:
        report.add(
            "fields",
            None,
            "no fields: add one [fields.NAME] table per field (hubspot, salesforce, rule ...).",
        )
        return None
    parsed: dict[str, FieldMapping | None] = {}
    for name, table in raw.items():
        if isinstance(table, dict):
            parsed[name] = _field(name, table, objects, report)
        else:
            parsed[name] = None
            report.add(
                f"fields.{name}",
                None,
                f"must be a table ([fields.{name}] with hubspot, "
                f"salesforce, rule ...), not {_kind(table)}.",
            )
    _duplicate_targets([f for f in parsed.values() if f is not None], report)
    if None in parsed.values():
        return None
    return cast(dict[str, FieldMapping], parsed)


def _field(
    name: str, raw: dict[str, Any], objects: tuple[str, ...], report: Report
) -> FieldMapping | None:
    section = f"fields.{name}"
    before = len(report.problems)
    _unknown_keys(raw, FIELD_KEYS, section, report)
    hubspot = _property_name(raw, section, report)
    salesforce = _salesforce_targets(raw.get("salesforce"), objects, section, report)
    rule = _choice(raw, "rule", RULES, section, report)
    blank = _choice(raw, "blank", BLANKS, section, report, default="keep")
    transform = _choice(raw, "transform", tuple(TRANSFORMS), section, report, default="")
    values = _value_map(raw.get("values"), section, rule, report)
    _sides(raw, rule, section, report)
    if len(report.problems) > before or rule is None or salesforce is None or values is None:
        return None
    return FieldMapping(
        name,
        hubspot,
        MappingProxyType(salesforce),
        cast(Rule, rule),
        cast(Blank, blank),
        transform or None,
        MappingProxyType(values),
    )


def _property_name(raw: dict[str, Any], section: str, report: Report) -> str | None:
    value = raw.get("hubspot")
    if value is not None and (not isinstance(value, str) or not value.strip()):
        report.add(
            section,
            "hubspot",
            f'must be a HubSpot property name such as "email", not {shown(value)}.',
        )
        return None
    if value is not None and not HUBSPOT_NAME.fullmatch(value):
        lower = value.lower()
        report.add(
            section,
            "hubspot",
            f"{shown(value)} is not a HubSpot property's internal name: lowercase letters, "
            f"digits and underscores, starting with a letter (Settings > Properties > the "
            f"property > Internal name)."
            + (f" Did you mean {shown(lower)}?" if HUBSPOT_NAME.fullmatch(lower) else ""),
        )
        return None
    return value


def _salesforce_targets(
    raw: Any, objects: tuple[str, ...], section: str, report: Report
) -> dict[str, str] | None:
    if raw is None:
        return {}
    if isinstance(raw, str) and raw.strip():
        if problem := _salesforce_name_problem(raw):
            report.add(section, "salesforce", problem)
            return None
        return dict.fromkeys(objects, raw)
    if not isinstance(raw, dict) or not raw:
        report.add(
            section,
            "salesforce",
            f'must be a field name such as "Email", or a table '
            f'per object such as {{ Lead = "Company" }}, not {shown(raw)}.',
        )
        return None
    targets = {}
    for sobject, name in raw.items():
        if objects and sobject not in objects:
            report.add(
                section,
                "salesforce",
                f'"{sobject}" is not an object of this file '
                f"(see [objects] salesforce: {', '.join(objects)})."
                f"{suggestion(sobject, objects)}",
            )
        elif not isinstance(name, str) or not name.strip():
            report.add(
                section,
                "salesforce",
                f'{sobject} must name a field such as "Email", not {shown(name)}.',
            )
        elif problem := _salesforce_name_problem(name):
            report.add(section, "salesforce", f"{sobject}: {problem}")
        else:
            targets[sobject] = name
    return targets


def _salesforce_name_problem(name: str) -> str:
    """What is wrong with a Salesforce field name, or "" if it has an API name's shape."""
    if SALESFORCE_NAME.fullmatch(name):
        return ""
    relationship = "; a relationship path cannot be mapped, only the object's own fields"
    return (
        f"{shown(name)} is not a Salesforce field's API name: a letter, then letters, digits "
        f'and underscores, such as "Title" or "Region__c"{relationship if "." in name else ""} '
        f"(Setup > Object Manager > the object > Fields & Relationships > Field Name)."
    )


def _choice(
    raw: dict[str, Any],
    key: str,
    allowed: tuple[str, ...],
    section: str,
    report: Report,
    default: str | None = None,
) -> str | None:
    value = raw.get(key, default)
    noun = {"rule": "a rule", "blank": "a blank policy", "transform": "a transform"}[key]
    if value is None:
        report.add(section, key, f"missing: every field needs a rule, one of {', '.join(allowed)}.")
    elif not isinstance(value, str):
        report.add(section, key, f"must be text, one of {', '.join(allowed)}; not {_kind(value)}.")
    elif value != default and value not in allowed:
        report.add(
            section,
            key,
            f"{shown(value)} is not {noun} (one of {', '.join(allowed)})."
            f"{suggestion(value, allowed)}",
        )
    else:
        return value
    return None


def _value_map(raw: Any, section: str, rule: str | None, report: Report) -> dict[str, str] | None:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        report.add(
            section,
            "values",
            f'must be a table of "Salesforce value" = "HubSpot '
            f'value" lines under [{section}.values], not {_kind(raw)}.',
        )
        return None
    values: dict[str, str] = {}
    seen: dict[str, str] = {}
    for salesforce_value, hubspot_value in raw.items():
        if not isinstance(hubspot_value, str):
            report.add(
                f"{section}.values",
                shown(salesforce_value),
                "must map to a HubSpot "
                f'value in quotes such as "closedwon", not {shown(hubspot_value)}.',
            )
            continue
        earlier = seen.setdefault(hubspot_value, salesforce_value)
        if earlier != salesforce_value and rule in WRITES_SALESFORCE:
            report.add(
                f"{section}.values",
                shown(salesforce_value),
                f"maps to "
                f'{shown(hubspot_value)} like {shown(earlier)}, so rule "{rule}" '
                f"could not tell which to write back to Salesforce. Give each its own "
                f'HubSpot value, or use rule = "always-salesforce".',
            )
        values[salesforce_value] = hubspot_value
    return values if len(values) == len(raw) else None


def _sides(raw: dict[str, Any], rule: str | None, section: str, report: Report) -> None:
    """A field maps at least one side, and both when its rule reads or writes both."""
    has_hubspot, has_salesforce = raw.get("hubspot") is not None, raw.get("salesforce") is not None
    if not has_hubspot and not has_salesforce:
        report.add(
            section,
            None,
            'maps no field on either side: add hubspot = "<property>" '
            'and/or salesforce = "<Field>".',
        )
        return
    if rule not in RULES or rule == "none":
        return
    for present, key, system in (
        (has_hubspot, "hubspot", "HubSpot"),
        (has_salesforce, "salesforce", "Salesforce"),
    ):
        if not present:
            report.add(
                section,
                key,
                f'missing, but rule "{rule}" needs a {system} side to '
                f'read or write. Add {key} = "...", or set rule = "none" to keep the '
                f"field in syncd only.",
            )


def _duplicate_targets(fields: list[FieldMapping], report: Report) -> None:
    """Two fields writing one HubSpot property or Salesforce field would fight forever."""
    writers: dict[tuple[str, str], str] = {}
    for mapping in fields:
        targets = (
            [("hubspot", mapping.hubspot.lower())]
            if mapping.writes_hubspot and mapping.hubspot
            else []
        )
        if mapping.writes_salesforce:
            targets += [(sobject, name.lower()) for sobject, name in mapping.salesforce.items()]
        for target in targets:
            first = writers.setdefault(target, mapping.name)
            if first != mapping.name:
                where = "hubspot" if target[0] == "hubspot" else "salesforce"
                what = (
                    f'HubSpot property "{mapping.hubspot}"'
                    if where == "hubspot"
                    else f"Salesforce {target[0]}.{mapping.salesforce[target[0]]}"
                )
                report.add(
                    f"fields.{mapping.name}",
                    where,
                    f"{what} is already written by "
                    f'[fields.{first}]; one field per target (or rule = "none" here).',
                )
