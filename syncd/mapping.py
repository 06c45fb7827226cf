"""The mapping files (`mappings/person.toml`, `account.toml`, `opportunity.toml`): load,
validate offline, and the model the reconcile engine reads.

A mapping file says which objects sync (`[objects]`), how records match (`[match]`), and per
field (`[fields.NAME]`) the HubSpot property, the Salesforce field(s), the rule, the blank
policy, a named transform and a picklist value map. `load_mappings` reads a folder (a missing
file falls back to the installed default, ARCHITECTURE section 4) and raises one
`MappingError` listing every problem of every file, one line each, shaped
`<folder>/<file> [<section>] <key>: <what is wrong>. <suggestion>`. `check_online` compares
loaded mappings with the live schemas (HubSpot properties, Salesforce describe).

Unified values of a field with a value map are in HubSpot's vocabulary: `from_salesforce`
maps a Salesforce value through the map, `salesforce_value` maps it back.
"""

from __future__ import annotations

import difflib
import json
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal, cast, get_args

from syncd.errors import MappingError
from syncd.model import FieldInfo, ObjectSchema
from syncd.transforms import TRANSFORMS

__all__ = [
    "DEFAULTS_FOLDER",
    "SYNCD_FIELDS",
    "CustomField",
    "EntityMapping",
    "FieldMapping",
    "Mappings",
    "Rule",
    "ValueMapMiss",
    "check_online",
    "load_mappings",
    "missing_custom_fields",
    "suggestion",
]

Rule = Literal[
    "two-way", "prefer-salesforce", "prefer-hubspot", "always-salesforce", "always-hubspot", "none"
]
Blank = Literal["keep", "clear"]
RULES: tuple[str, ...] = get_args(Rule)
BLANKS: tuple[str, ...] = get_args(Blank)
# Which rules may put a value into each system (a `prefer-X` rule fills X from the other side
# when X is blank, so it writes both ways).
WRITES_HUBSPOT = frozenset({"two-way", "prefer-salesforce", "prefer-hubspot", "always-salesforce"})
WRITES_SALESFORCE = frozenset({"two-way", "prefer-salesforce", "prefer-hubspot", "always-hubspot"})

DEFAULTS_FOLDER = Path(__file__).parent / "default_mappings"
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


class ValueMapMiss(ValueError):
    """A picklist value the field's value map does not hold: park the record, fix the map."""

    def __init__(self, field_name: str, value: Any, system: str) -> None:
        self.field_name, self.value, self.system = field_name, value, system
        super().__init__(
            f"{system} value {_shown(value)} of [fields.{field_name}] has no entry in "
            f"[fields.{field_name}.values]; add it to the mapping file."
        )


@dataclass(frozen=True)
class FieldMapping:
    """One `[fields.NAME]` table: where the field lives on each side and how it is decided."""

    name: str
    hubspot: str | None
    salesforce: Mapping[str, str]
    rule: Rule
    blank: Blank = "keep"
    transform: str | None = None
    values: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def writes_hubspot(self) -> bool:
        return self.rule in WRITES_HUBSPOT and self.hubspot is not None

    @property
    def writes_salesforce(self) -> bool:
        return self.rule in WRITES_SALESFORCE and bool(self.salesforce)

    @cached_property
    def _folded(self) -> Mapping[str, str]:
        return {key.strip().casefold(): value for key, value in self.values.items()}

    @cached_property
    def _inverse(self) -> Mapping[str, str]:
        # The first Salesforce value in file order for each HubSpot value: only
        # `always-salesforce` fields may map several values to one (validation), and those
        # are never written to Salesforce.
        inverse: dict[str, str] = {}
        for salesforce_value, hubspot_value in self.values.items():
            inverse.setdefault(hubspot_value, salesforce_value)
        return inverse

    def to_hubspot(self, salesforce_value: Any) -> Any:
        """A Salesforce value in HubSpot's vocabulary through the value map.

        Blank values and fields without a map pass unchanged. A value the map lacks raises
        `ValueMapMiss` (never None, which an `always-*` rule would write as a blank); a map
        key matches exactly first, then ignoring case and outer spaces.
        """
        if not self.values or _is_empty(salesforce_value):
            return salesforce_value
        key = str(salesforce_value)
        found = self.values.get(key, self._folded.get(key.strip().casefold()))
        if found is None:
            raise ValueMapMiss(self.name, salesforce_value, "Salesforce")
        return found

    def to_salesforce(self, hubspot_value: Any) -> Any:
        """A HubSpot value in Salesforce's vocabulary; `ValueMapMiss` when the map lacks it."""
        if not self.values or _is_empty(hubspot_value):
            return hubspot_value
        found = self._inverse.get(str(hubspot_value))
        if found is None:
            raise ValueMapMiss(self.name, hubspot_value, "HubSpot")
        return found

    def from_hubspot(self, raw: Any) -> Any:
        """The unified form of what HubSpot sent (the transform's `normalize`)."""
        return TRANSFORMS[self.transform].normalize(raw) if self.transform else raw

    def from_salesforce(self, raw: Any) -> Any:
        """The unified form of what Salesforce sent: through the value map, then normalized."""
        return self.from_hubspot(self.to_hubspot(raw))

    def hubspot_value(self, unified: Any, property_type: str = "string") -> Any:
        """What to send HubSpot for a unified value (`property_type` from the schema)."""
        if self.transform:
            return TRANSFORMS[self.transform].to_hubspot(unified, property_type)
        return unified

    def salesforce_value(self, unified: Any) -> Any:
        """What to send Salesforce for a unified value."""
        value = self.to_salesforce(unified)
        return TRANSFORMS[self.transform].to_salesforce(value) if self.transform else value


def _is_empty(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


@dataclass(frozen=True)
class EntityMapping:
    """One mapping file: the objects on each side, the match keys and the fields."""

    entity: str
    path: Path
    hubspot_object: str
    salesforce_objects: tuple[str, ...]
    match_keys: tuple[str, ...]
    fields: Mapping[str, FieldMapping]

    def hubspot_properties(self) -> tuple[str, ...]:
        """The HubSpot properties the connector must request, in file order."""
        return tuple(dict.fromkeys(f.hubspot for f in self.fields.values() if f.hubspot))

    def salesforce_fields(self, sobject: str) -> tuple[str, ...]:
        """The fields of `sobject` the connector must request, in file order."""
        return tuple(
            dict.fromkeys(
                f.salesforce[sobject] for f in self.fields.values() if sobject in f.salesforce
            )
        )


@dataclass(frozen=True)
class Mappings:
    """The three entity mappings in use, and the folder they came from (None: the defaults)."""

    person: EntityMapping
    account: EntityMapping
    opportunity: EntityMapping
    folder: Path | None

    def all(self) -> tuple[EntityMapping, ...]:
        return (self.person, self.account, self.opportunity)


# -- problems --


def suggestion(value: str, choices: Iterable[str], shape: str = '"{}"') -> str:
    """` Did you mean "x"?` for the closest choice (written as `shape`), or "" if none is close."""
    folded = {choice.casefold(): choice for choice in choices}
    close = difflib.get_close_matches(value.casefold(), list(folded), n=1, cutoff=0.6)
    return f" Did you mean {shape.format(folded[close[0]])}?" if close else ""


def _shown(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


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


def display(path: Path) -> str:
    # The folder and the file, as an admin knows them: `mappings/person.toml`.
    return f"{path.resolve().parent.name}/{path.name}"


@dataclass
class Report:
    """Problems of one file, each one line: `file [section] key: message`."""

    file: str
    problems: list[str] = field(default_factory=list)

    def add(self, section: str | None, key: str | None, message: str) -> None:
        place = self.file + (f" [{section}]" if section else "") + (f" {key}" if key else "")
        self.problems.append(f"{place}: {message}")


# -- loading --


def load_mappings(folder: Path | None) -> Mappings:
    """The mappings in `folder` (None: the installed defaults); MappingError lists all problems.

    A file the folder lacks is taken from the installed defaults (ARCHITECTURE section 4).
    """
    problems: list[str] = []
    if folder is not None and not folder.is_dir():
        raise MappingError(
            [
                f"{folder}: the mappings folder does not exist (set [sync] mappings "
                f"in the config, or remove the key to use the installed defaults)."
            ]
        )
    if folder is not None:
        problems += _stray_files(folder)
    loaded: dict[str, EntityMapping] = {}
    for entity in ENTITIES:
        path = _mapping_path(folder, entity)
        report = Report(display(path))
        mapping = _load_file(entity, path, report)
        problems += report.problems
        if mapping is not None:
            loaded[entity] = mapping
    if problems:
        raise MappingError(problems)
    return Mappings(loaded["person"], loaded["account"], loaded["opportunity"], folder)


def mapping_path(folder: Path | None, name: str) -> Path:
    """`name`.toml in the folder, else the installed default (ARCHITECTURE section 4)."""
    return _mapping_path(folder, name)


def _mapping_path(folder: Path | None, entity: str) -> Path:
    own = folder / f"{entity}.toml" if folder is not None else None
    return own if own is not None and own.exists() else DEFAULTS_FOLDER / f"{entity}.toml"


def _stray_files(folder: Path) -> list[str]:
    """A misspelt file name would silently fall back to the default: say so."""
    known = (*ENTITIES, *OTHER_FILES)
    problems = []
    for path in sorted(folder.glob("*.toml")):
        hint = suggestion(path.stem, known, '"{}.toml"')
        if path.stem not in known and hint:
            problems.append(
                f"{display(path)}: not a file syncd reads (it reads "
                f"{', '.join(f'{name}.toml' for name in known)}).{hint}"
            )
    return problems


def _load_file(entity: str, path: Path, report: Report) -> EntityMapping | None:
    document = read_document(path, report)
    return None if document is None else _entity(entity, path, document, report)


def read_document(path: Path, report: Report) -> dict[str, Any] | None:
    """A mapping file's TOML, or None with the reason (encoding, I/O, syntax) in `report`;
    shared by every file in the mappings folder."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        line = error.object[: error.start].count(b"\n") + 1
        report.add(None, None, f"not UTF-8 text (line {line}); save the file as UTF-8.")
        return None
    except OSError as error:
        report.add(None, None, f"cannot be read: {error.strerror}.")
        return None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        report.add(*_syntax_problem(text, str(error)))
        return None


def _syntax_problem(text: str, message: str) -> tuple[str | None, str | None, str]:
    """(section, key, message) for a TOML syntax error, naming the line and its table."""
    where = re.search(r"\(at line (\d+), column (\d+)\)", message)
    reason = re.sub(r"\s*\(at [^)]*\)$", "", message)
    if where is None:
        return (
            None,
            None,
            (
                f"invalid TOML at the end of the file: {reason}. Check for an "
                f"unclosed bracket or quote."
            ),
        )
    number = int(where.group(1))
    lines = text.splitlines()[:number]
    headers = re.findall(r"^\s*\[+\s*([^\]]+?)\s*\]+", "\n".join(lines), flags=re.MULTILINE)
    key = re.match(r"\s*([A-Za-z0-9_-]+|\"[^\"]*\")\s*(?=[=\s])", lines[-1] if lines else "")
    advice = (
        "the key is set twice in this table; keep one"
        if "overwrite" in reason
        else "check the quotes, brackets and '=' on that line"
    )
    return (
        headers[-1] if headers else None,
        key.group(1) if key else None,
        f"invalid TOML at line {number}, column {where.group(2)}: {reason}; {advice}.",
    )


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
    example = f'hubspot = "{hubspot_object}" and salesforce = {_shown(list(salesforce_objects))}'
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
            message = f"missing: {words} sync Salesforce {_shown(list(salesforce_objects))}."
        elif names == []:
            message = f"lists no object: {words} sync {_shown(list(salesforce_objects))}."
        else:
            message = (
                f"must be a list such as {_shown(list(salesforce_objects))}, "
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
        report.add("objects", key, f"missing: {words} sync {system} {_shown(allowed[0])}.")
    elif not isinstance(raw, str):
        report.add("objects", key, f"must be text such as {_shown(allowed[0])}, not {_kind(raw)}.")
    elif raw not in allowed:
        report.add(
            "objects",
            key,
            f'"{raw}" is not a {system} object syncd syncs as {words} '
            f"(it syncs {', '.join(map(_shown, allowed))}).{suggestion(raw, allowed)}",
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
            "match", "keys", f'must be a list of field names such as ["email"], not {_shown(keys)}.'
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
            f'must be a HubSpot property name such as "email", not {_shown(value)}.',
        )
        return None
    return value


def _salesforce_targets(
    raw: Any, objects: tuple[str, ...], section: str, report: Report
) -> dict[str, str] | None:
    if raw is None:
        return {}
    if isinstance(raw, str) and raw.strip():
        return dict.fromkeys(objects, raw)
    if not isinstance(raw, dict) or not raw:
        report.add(
            section,
            "salesforce",
            f'must be a field name such as "Email", or a table '
            f'per object such as {{ Lead = "Company" }}, not {_shown(raw)}.',
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
                f'{sobject} must name a field such as "Email", not {_shown(name)}.',
            )
        else:
            targets[sobject] = name
    return targets


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
            f"{_shown(value)} is not {noun} (one of {', '.join(allowed)})."
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
                _shown(salesforce_value),
                "must map to a HubSpot "
                f'value in quotes such as "closedwon", not {_shown(hubspot_value)}.',
            )
            continue
        earlier = seen.setdefault(hubspot_value, salesforce_value)
        if earlier != salesforce_value and rule in WRITES_SALESFORCE:
            report.add(
                f"{section}.values",
                _shown(salesforce_value),
                f"maps to "
                f'{_shown(hubspot_value)} like {_shown(earlier)}, so rule "{rule}" '
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


# -- online: against the live schemas --


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
                _shown(salesforce_value),
                f"Salesforce {where} has "
                f"no picklist value {_shown(salesforce_value)}."
                f"{suggestion(salesforce_value, salesforce.options)}",
            )
        if hubspot.options and hubspot_value not in hubspot.options:
            report.add(
                f"{section}.values",
                _shown(salesforce_value),
                f"HubSpot property "
                f'"{hubspot.name}" has no option {_shown(hubspot_value)}.'
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
        shown = ", ".join(map(_shown, values[:8])) + (" ..." if len(values) > 8 else "")
        report.add(
            section,
            "values",
            f"{source} values {shown} have no value in {target}; "
            f'add them to [{section}.values] ("Salesforce value" = "HubSpot value").',
        )
