"""The emulated CRM v3 object endpoints: list, read, create, update, archive, merge, GDPR
delete, the batch endpoints and search (wire reference 1.2 to 1.4), over a `Portal`.

`ObjectsApi` also holds what the other object-scoped endpoints share: the table an object
type names, the 404 of a missing record and the batch request and answer shapes.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

from connectors.hubspot.emulator_wire import (
    LIST_MAX_LIMIT,
    HubSpotError,
    int_arg,
    limit_arg,
)
from connectors.hubspot.portal import (
    DEFAULT_PROPERTIES,
    LIFECYCLE_STAGES,
    MODIFIED_PROPERTY,
    PRIMARY_TYPE,
    SINGULAR,
    UNLABELED_TYPE,
    CrmRecord,
    ObjectTable,
    Portal,
    PropertyDef,
    canonical_date,
    canonical_datetime,
    canonical_type,
    iso_ms,
)
from connectors.hubspot.search import MAX_LIMIT, MAX_RESULTS, SearchCache, SearchError
from connectors.loopback import Faults, Request, Response, Router

OBJECT_BATCH_LIMIT = 100  # "Object API batch endpoints are limited to 100 inputs" [doc]
_TYPE_TARGET = {(pair[0], type_id): pair[1]
                for table in (UNLABELED_TYPE, PRIMARY_TYPE) for pair, type_id in table.items()}


def _flag(request: Request, name: str) -> bool:
    return (request.arg(name) or "false").lower() == "true"


def _text(value: Any) -> str | None:
    """A JSON property value as HubSpot stores it: always text (booleans lower-cased)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _invalid(name: str, code: str, message: str, portal_id: int) -> dict[str, Any]:
    return {"isValid": False, "message": message, "error": code, "name": name,
            "localizedErrorMessage": message, "portalId": portal_id}


def _value_problem(prop: PropertyDef, value: str) -> tuple[str, str] | None:
    """(error code, message) when a value does not fit its property, else None."""
    if prop.type == "enumeration" and prop.options:
        for part in value.split(";"):
            if part not in prop.options:
                return "INVALID_OPTION", (f"{part} was not one of the allowed options: "
                                          f"[{', '.join(prop.options)}]")
    if prop.name == "email" and "@" not in value:
        return "INVALID_EMAIL", f"Email address {value} is invalid"
    if prop.type == "number":
        try:
            float(value)
        except ValueError:
            return "INVALID_INTEGER", f"{value} was not a valid number."
    if prop.type == "bool" and value.lower() not in ("true", "false"):
        return "INVALID_BOOLEAN", f"{value} was not a valid boolean."
    return None


def _normalized(prop: PropertyDef, value: str) -> str:
    if prop.type == "datetime":
        return canonical_datetime(value)
    if prop.type == "date":
        return canonical_date(value)
    if prop.type == "bool":
        return value.lower()
    return value


def _v3_association_name(source: str, target: str, type_id: int) -> str:
    """v3 names: `contact_to_company` for the primary, `..._unlabeled` when one exists."""
    name = f"{SINGULAR[source]}_to_{SINGULAR[target]}"
    has_primary = (source, target) in PRIMARY_TYPE
    return f"{name}_unlabeled" if has_primary and type_id == UNLABELED_TYPE[(source, target)] \
        else name


class ObjectsApi:
    """The `/crm/v3/objects/{object_type}` resources over a `Portal`."""

    def __init__(self, portal: Portal, clock: Callable[[], datetime],
                 faults: Callable[[], Faults]) -> None:
        self.portal, self.clock = portal, clock
        self._faults = faults
        self._searches = SearchCache()

    def routes(self, router: Router) -> None:
        objects = "/crm/v3/objects/{object_type}"
        router.add("GET", objects, self._list)
        router.add("POST", objects, self._create)
        router.add("POST", f"{objects}/search", self._search)
        router.add("POST", f"{objects}/merge", self._merge)
        router.add("POST", f"{objects}/gdpr-delete", self._gdpr_delete)
        router.add("POST", f"{objects}/batch/read", self._batch_read)
        router.add("POST", f"{objects}/batch/create", self._batch_create)
        router.add("POST", f"{objects}/batch/update", self._batch_update)
        router.add("POST", f"{objects}/batch/upsert", self._batch_upsert)
        router.add("POST", f"{objects}/batch/archive", self._batch_archive)
        router.add("GET", f"{objects}/{{object_id}}", self._get)
        router.add("PATCH", f"{objects}/{{object_id}}", self._update)
        router.add("DELETE", f"{objects}/{{object_id}}", self._archive)

    # -- records: shapes ------------------------------------------------------------------

    def table(self, object_type: str) -> ObjectTable:
        name = canonical_type(object_type)
        if name is None:
            raise HubSpotError(400, "VALIDATION_ERROR",
                               f"Unable to infer object type from: {object_type}")
        return self.portal.tables[name]

    def _wire(self, table: ObjectTable, record: CrmRecord, requested: list[str] | None,
              history: list[str] | None = None) -> dict[str, Any]:
        values = record.properties
        properties: dict[str, str | None]
        if requested is None:
            properties = dict(values)
        else:
            properties = {name: values.get(name) for name in self._names(table, requested)}
        body: dict[str, Any] = {
            "id": record.id, "properties": properties, "createdAt": iso_ms(record.created_at),
            "updatedAt": iso_ms(record.updated_at), "archived": record.archived,
        }
        if record.archived_at is not None:
            body["archivedAt"] = iso_ms(record.archived_at)
        if history:
            body["propertiesWithHistory"] = self._history(table, record, history)
        return body

    def _names(self, table: ObjectTable, requested: list[str]) -> Iterable[str]:
        """Requested names HubSpot knows (others are ignored), or the defaults (1.2)."""
        kind = table.object_type
        if not requested:
            return DEFAULT_PROPERTIES[kind]
        always = ("createdate", "hs_object_id", MODIFIED_PROPERTY[kind])
        known = [name for name in requested if name in table.schema]
        return dict.fromkeys([*known, *always])

    def _history(self, table: ObjectTable, record: CrmRecord,
                 names: list[str]) -> dict[str, list[dict[str, Any]]]:
        # The emulator keeps current values only: each history holds the latest version.
        stamp = iso_ms(record.updated_at)
        return {name: ([{"value": record.properties[name], "timestamp": stamp,
                         "sourceType": "API"}] if name in record.properties else [])
                for name in names if name in table.schema}

    def _embedded(self, table: ObjectTable, record: CrmRecord,
                  targets: list[str]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for target in targets:
            to_type = canonical_type(target)
            if to_type is None:
                continue
            pairs = self.portal.associations(table.object_type, record.id, to_type)
            if pairs:
                out[target] = {"results": [
                    {"id": to_id, "type": _v3_association_name(table.object_type, to_type, t)}
                    for to_id, types in pairs for t in types
                ]}
        return out

    def not_found(self, record_id: str) -> HubSpotError:
        return HubSpotError(404, "OBJECT_NOT_FOUND",
                            "Object not found.  objectId are usually numeric.",
                            context={"id": [record_id]})

    def _readable(self, table: ObjectTable, key: str, id_property: str | None,
                  archived: bool) -> CrmRecord | None:
        record = table.find(key, id_property)
        if record is None:
            return None
        if record.archived and record.merged_into and not archived:
            return self.portal.resolve(table.object_type, record)
        return record if record.archived == archived else None

    # -- records: writes ------------------------------------------------------------------

    def _validated(self, table: ObjectTable, properties: Any) -> dict[str, str | None]:
        """Checked, normalised values; any bad one rejects the whole request (1.3)."""
        if not isinstance(properties, dict):
            raise HubSpotError(400, "VALIDATION_ERROR", "`properties` must be an object.")
        errors: list[dict[str, Any]] = []
        clean: dict[str, str | None] = {}
        portal_id = self.portal.portal_id
        for name, raw in properties.items():
            prop, value = table.schema.get(name), _text(raw)
            if prop is None:
                errors.append(_invalid(name, "PROPERTY_DOESNT_EXIST",
                                       f'Property "{name}" does not exist', portal_id))
            elif prop.read_only:
                errors.append(_invalid(name, "READ_ONLY_VALUE",
                                       f'"{name}" is a read only property; its value cannot '
                                       "be set.", portal_id))
            elif value and (problem := _value_problem(prop, value)):
                errors.append(_invalid(name, problem[0], problem[1], portal_id))
            else:
                clean[name] = _normalized(prop, value) if value else value
        if errors:
            raise HubSpotError(400, "VALIDATION_ERROR",
                               "Property values were not valid: " + json.dumps(errors))
        return clean

    def _stage_moves(self, table: ObjectTable, record: CrmRecord | None,
                     clean: dict[str, str | None]) -> dict[str, str | None]:
        """Lifecycle stages only move forward through the API (reference 1.11, documented;
        unconfirmed for v3): a backward write answers 2xx and leaves the value unchanged.
        Clearing with "" first, then setting a lower stage, works."""
        new = clean.get("lifecyclestage")
        old = record.properties.get("lifecyclestage") if record else None
        if new and old and new in LIFECYCLE_STAGES and old in LIFECYCLE_STAGES \
                and LIFECYCLE_STAGES.index(new) < LIFECYCLE_STAGES.index(old):
            clean = {k: v for k, v in clean.items() if k != "lifecyclestage"}
        elif new and new != old and f"hs_lifecyclestage_{new}_date" in table.schema:
            clean = {**clean, f"hs_lifecyclestage_{new}_date": iso_ms(self.clock())}
        return clean

    def _conflict(self, table: ObjectTable, clean: Mapping[str, str | None],
                  claimed: dict[tuple[str, str], str], own_id: str | None = None) -> None:
        """409 when a unique value (email, syncd_id) is held by another record."""
        for name in table.unique_names():
            value = clean.get(name)
            if not value:
                continue
            key = (name, value.lower() if name == "email" else value)
            owner = table.owner_of(name, value) or claimed.get(key)
            if owner is not None and owner != own_id:
                # HubSpot's text for duplicate emails; other unique properties answer the
                # same way here (their exact text is unconfirmed).
                raise HubSpotError(409, "CONFLICT", f"{SINGULAR[table.object_type].title()} "
                                   f"already exists. Existing ID: {owner}")
            claimed[key] = own_id or "(new)"

    def _insert(self, table: ObjectTable, clean: dict[str, str | None]) -> CrmRecord:
        clean = self._stage_moves(table, None, clean)
        record_id = self.portal.create(table.object_type, clean, at=self.clock())
        return table.records[record_id]

    def _apply(self, table: ObjectTable, record: CrmRecord,
               clean: dict[str, str | None]) -> None:
        self.portal.write(table, record, self._stage_moves(table, record, clean), self.clock())

    def _link_on_create(self, table: ObjectTable, record: CrmRecord, links: Any) -> None:
        for link in links or []:
            to_id = str((link.get("to") or {}).get("id", ""))
            for spec in link.get("types") or []:
                type_id = int(spec.get("associationTypeId", 0))
                to_type = _TYPE_TARGET.get((table.object_type, type_id))
                if to_type is None or to_id not in self.portal.tables[to_type].records:
                    raise HubSpotError(400, "VALIDATION_ERROR",
                                       f"Invalid association {type_id} to {to_id}.")
                self.portal.associate(table.object_type, record.id, to_type, to_id, type_id)

    def _rejected(self, table: ObjectTable, properties: Mapping[str, Any],
                  record_id: str | None) -> dict[str, Any] | None:
        """A 207 error entry when the fault plan refuses this record, else None."""
        if not self._faults().rejects(table.object_type, properties):
            return None
        context = {"id": [record_id]} if record_id else {}
        return {"status": "error", "category": "VALIDATION_ERROR",
                "message": "Record rejected by the portal (injected fault).", "context": context}

    def batch(self, results: list[dict[str, Any]], errors: list[dict[str, Any]],
               ok: int = 200) -> Response:
        stamp = iso_ms(self.clock())
        body: dict[str, Any] = {"status": "COMPLETE", "results": results,
                                "startedAt": stamp, "completedAt": stamp}
        if errors:
            body.update(numErrors=len(errors), errors=errors)
        return Response(207 if errors else ok, body)

    @staticmethod
    def inputs(request: Request, limit: int = OBJECT_BATCH_LIMIT) -> tuple[Any, list[Any]]:
        body = request.json() or {}
        inputs = body.get("inputs")
        if not isinstance(inputs, list):
            raise HubSpotError(400, "VALIDATION_ERROR", "`inputs` must be a list.")
        if len(inputs) > limit:
            raise HubSpotError(400, "VALIDATION_ERROR",
                               f"Batch input size {len(inputs)} exceeds the limit of {limit}.",
                               context={"inputs": [str(len(inputs))]})
        return body, inputs

    # -- records: endpoints ---------------------------------------------------------------

    def _list(self, request: Request, object_type: str) -> Response:
        table = self.table(object_type)
        limit = limit_arg(request, 10, LIST_MAX_LIMIT)
        after = int_arg(request.arg("after") or "0", "after")
        records, following = table.page(after, limit, _flag(request, "archived"))
        requested, history = request.args("properties"), request.args("propertiesWithHistory")
        targets = request.args("associations")
        results = []
        for record in records:
            body = self._wire(table, record, requested, history)
            if targets:
                body["associations"] = self._embedded(table, record, targets)
            results.append(body)
        answer: dict[str, Any] = {"results": results}
        if following is not None:
            answer["paging"] = {"next": {"after": str(following), "link": f"?after={following}"}}
        return Response(200, answer)

    def _get(self, request: Request, object_type: str, object_id: str) -> Response:
        table = self.table(object_type)
        record = self._readable(table, object_id, request.arg("idProperty"),
                                _flag(request, "archived"))
        if record is None:
            raise self.not_found(object_id)
        body = self._wire(table, record, request.args("properties"),
                          request.args("propertiesWithHistory"))
        targets = request.args("associations")
        if targets:
            body["associations"] = self._embedded(table, record, targets)
        return Response(200, body)

    def _create(self, request: Request, object_type: str) -> Response:
        table = self.table(object_type)
        body = request.json() or {}
        clean = self._validated(table, body.get("properties", {}))
        self._conflict(table, clean, {})
        record = self._insert(table, clean)
        self._link_on_create(table, record, body.get("associations"))
        return Response(201, self._wire(table, record, None))

    def _update(self, request: Request, object_type: str, object_id: str) -> Response:
        table = self.table(object_type)
        record = table.find(object_id, request.arg("idProperty"))
        if record is None or record.archived:
            raise self.not_found(object_id)
        clean = self._validated(table, (request.json() or {}).get("properties", {}))
        self._conflict(table, clean, {}, own_id=record.id)
        self._apply(table, record, clean)
        return Response(200, self._wire(table, record, None))

    def _archive(self, request: Request, object_type: str, object_id: str) -> Response:
        table = self.table(object_type)
        if object_id in table.records:  # archiving an unknown id also answers 204
            self.portal.archive(table.object_type, object_id, at=self.clock())
        return Response(204)

    def _merge(self, request: Request, object_type: str) -> Response:
        table = self.table(object_type)
        body = request.json() or {}
        primary_id, loser_id = str(body.get("primaryObjectId")), str(body.get("objectIdToMerge"))
        for record_id in (primary_id, loser_id):
            found = table.records.get(record_id)
            if found is None or found.archived:
                raise self.not_found(record_id)
        if primary_id == loser_id:
            raise HubSpotError(400, "VALIDATION_ERROR", "Cannot merge an object with itself.")
        self.portal.merge(table.object_type, primary_id, loser_id, at=self.clock())
        return Response(200, self._wire(table, table.records[primary_id], None))

    def _gdpr_delete(self, request: Request, object_type: str) -> Response:
        table = self.table(object_type)
        body = request.json() or {}
        record = table.find(str(body.get("objectId", "")), body.get("idProperty"))
        if record is None:
            raise self.not_found(str(body.get("objectId", "")))
        self.portal.purge(table.object_type, record.id)
        return Response(204)

    def _batch_read(self, request: Request, object_type: str) -> Response:
        table = self.table(object_type)
        body, inputs = self.inputs(request)
        archived, id_property = _flag(request, "archived"), body.get("idProperty")
        requested, history = body.get("properties") or [], body.get("propertiesWithHistory")
        results, missing = [], []
        for item in inputs:
            key = str(item.get("id", ""))
            record = self._readable(table, key, id_property, archived)
            if record is None:
                missing.append(key)
            else:
                results.append(self._wire(table, record, requested, history))
        return self.batch(results, self._missing_error(table, missing))

    def _missing_error(self, table: ObjectTable, missing: list[str]) -> list[dict[str, Any]]:
        if not missing:
            return []
        kind = SINGULAR[table.object_type].upper()
        return [{"status": "error", "category": "OBJECT_NOT_FOUND",
                 "message": f"Could not get some {kind} objects, they may be deleted or not "
                            "exist. Check that ids are valid.",
                 "context": {"ids": missing}}]

    def _batch_create(self, request: Request, object_type: str) -> Response:
        table = self.table(object_type)
        _, inputs = self.inputs(request)
        cleaned = [self._validated(table, item.get("properties", {})) for item in inputs]
        claimed: dict[tuple[str, str], str] = {}
        for clean in cleaned:
            self._conflict(table, clean, claimed)
        results, errors = [], []
        for item, clean in zip(inputs, cleaned, strict=True):
            refused = self._rejected(table, clean, None)
            if refused:
                errors.append(refused)
                continue
            record = self._insert(table, clean)
            self._link_on_create(table, record, item.get("associations"))
            results.append(self._wire(table, record, None))
        return self.batch(results, errors, ok=201)

    def _batch_update(self, request: Request, object_type: str) -> Response:
        table = self.table(object_type)
        _, inputs = self.inputs(request)
        found: list[tuple[CrmRecord, dict[str, str | None]]] = []
        missing: list[str] = []
        for item in inputs:
            key = str(item.get("id", ""))
            record = table.find(key, item.get("idProperty"))
            clean = self._validated(table, item.get("properties", {}))
            if record is None or record.archived:
                missing.append(key)
            else:
                found.append((record, clean))
        for record, clean in found:
            self._conflict(table, clean, {}, own_id=record.id)
        results, errors = [], self._missing_error(table, missing)
        for record, clean in found:
            refused = self._rejected(table, clean, record.id)
            if refused:
                errors.append(refused)
                continue
            self._apply(table, record, clean)
            results.append(self._wire(table, record, None))
        return self.batch(results, errors)

    def _batch_upsert(self, request: Request, object_type: str) -> Response:
        table = self.table(object_type)
        _, inputs = self.inputs(request)
        plans: list[tuple[CrmRecord | None, dict[str, str | None]]] = []
        claimed: dict[tuple[str, str], str] = {}
        for item in inputs:
            id_property = str(item.get("idProperty") or "")
            if id_property not in table.unique:
                raise HubSpotError(400, "VALIDATION_ERROR", f"Property {id_property!r} is not "
                                   "a unique identifier property and cannot be an idProperty.")
            clean = self._validated(table, item.get("properties", {}))
            clean.setdefault(id_property, _text(item.get("id")))
            record = table.find(str(item.get("id", "")), id_property)
            self._conflict(table, clean, claimed, own_id=record.id if record else None)
            plans.append((record, clean))
        results, errors = [], []
        for record, clean in plans:
            refused = self._rejected(table, clean, record.id if record else None)
            if refused:
                errors.append(refused)
                continue
            if record is None:
                body = {**self._wire(table, self._insert(table, clean), None), "new": True}
            else:
                self._apply(table, record, clean)
                body = {**self._wire(table, record, None), "new": False}
            results.append(body)
        return self.batch(results, errors)

    def _batch_archive(self, request: Request, object_type: str) -> Response:
        table = self.table(object_type)
        _, inputs = self.inputs(request)
        for item in inputs:
            record_id = str(item.get("id", ""))
            if record_id in table.records:
                self.portal.archive(table.object_type, record_id, at=self.clock())
        return Response(204)

    def _search(self, request: Request, object_type: str) -> Response:
        table = self.table(object_type)
        body = request.json() or {}
        limit = int_arg(body.get("limit") or 10, "limit")
        after = int_arg(body.get("after") or 0, "after")
        if not 1 <= limit <= MAX_LIMIT:
            raise HubSpotError(400, "VALIDATION_ERROR",
                               f"limit must be between 1 and {MAX_LIMIT}, got {limit}.")
        if after + limit > MAX_RESULTS:
            # The exact production text is unconfirmed (reference 4); the rule is not.
            raise HubSpotError(400, "VALIDATION_ERROR",
                               f"Search results are limited to {MAX_RESULTS} records: after "
                               f"({after}) + limit ({limit}) exceeds it. Narrow the filters.")
        try:
            ids = self._searches.results(table, body)
        except SearchError as error:
            raise HubSpotError(400, "VALIDATION_ERROR", str(error)) from None
        requested = [str(p) for p in body.get("properties") or []]
        results = [self._wire(table, table.records[i], requested) for i in ids[after:after + limit]]
        answer: dict[str, Any] = {"total": len(ids), "results": results}
        if after + limit < len(ids):
            answer["paging"] = {"next": {"after": str(after + limit)}}
        return Response(200, answer)
