"""The emulated CRM v4 association endpoints: list, label, default-link and remove one
record's associations, and their batch forms (wire reference 1.5).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from connectors.hubspot.emulator_objects import ObjectsApi
from connectors.hubspot.emulator_wire import int_arg, limit_arg
from connectors.hubspot.portal import (
    OBJECT_TYPE_IDS,
    PRIMARY_TYPE,
    SINGULAR,
    UNLABELED_TYPE,
    ObjectTable,
)
from connectors.loopback import Request, Response, Router

# Association batches: reads are reported to take 1,000 inputs; the create/archive limit is
# unconfirmed (reference 1.5 [verify]), so the emulator holds all of them to 1,000.
ASSOCIATION_BATCH_LIMIT = 1000
ASSOCIATION_MAX_LIMIT = 500
# The labels HubSpot shows for its defined association types; unlabeled ones carry null.
PRIMARY_LABEL = "Primary"


def _association_types(type_ids: Iterable[int]) -> list[dict[str, Any]]:
    primaries = set(PRIMARY_TYPE.values())
    return [{"category": "HUBSPOT_DEFINED", "typeId": type_id,
             "label": PRIMARY_LABEL if type_id in primaries else None} for type_id in type_ids]


class AssociationsApi:
    """The `/crm/v4` association resources, over the records of an `ObjectsApi`."""

    def __init__(self, objects: ObjectsApi) -> None:
        self.portal = objects.portal
        self._objects = objects

    def routes(self, router: Router) -> None:
        v4 = "/crm/v4/objects/{from_type}/{object_id}/associations"
        batch4 = "/crm/v4/associations/{from_type}/{to_type}/batch"
        router.add("GET", f"{v4}/{{to_type}}", self._v4_list)
        router.add("PUT", f"{v4}/{{to_type}}/{{to_id}}", self._v4_put_labelled)
        router.add("DELETE", f"{v4}/{{to_type}}/{{to_id}}", self._v4_delete)
        router.add("PUT", "/crm/v4/objects/{from_type}/{object_id}/associations/default/{to_type}/"
                          "{to_id}", self._v4_put_default)
        router.add("POST", f"{batch4}/read", self._v4_batch_read)
        router.add("POST", f"{batch4}/create", self._v4_batch_create)
        router.add("POST", f"{batch4}/archive", self._v4_batch_archive)
        router.add("POST", f"{batch4}/associate/default", self._v4_batch_default)

    # -- associations v4 ------------------------------------------------------------------

    def _ends(self, from_type: str, to_type: str) -> tuple[ObjectTable, ObjectTable]:
        return self._objects.table(from_type), self._objects.table(to_type)

    def _live(self, table: ObjectTable, record_id: str) -> bool:
        record = table.records.get(record_id)
        return record is not None and not record.archived

    def _v4_list(self, request: Request, from_type: str, object_id: str,
                 to_type: str) -> Response:
        source, target = self._ends(from_type, to_type)
        if not self._live(source, object_id):
            raise self._objects.not_found(object_id)
        limit = limit_arg(request, ASSOCIATION_MAX_LIMIT, ASSOCIATION_MAX_LIMIT)
        start = int_arg(request.arg("after") or "0", "after")
        pairs = self.portal.associations(source.object_type, object_id, target.object_type)
        chosen = pairs[start:start + limit]
        answer: dict[str, Any] = {"results": [
            {"toObjectId": int(to_id), "associationTypes": _association_types(types)}
            for to_id, types in chosen
        ]}
        if start + limit < len(pairs):
            answer["paging"] = {"next": {"after": str(start + limit),
                                         "link": f"?after={start + limit}"}}
        return Response(200, answer)

    def _check_pair(self, source: ObjectTable, from_id: str, target: ObjectTable,
                    to_id: str) -> None:
        for table, record_id in ((source, from_id), (target, to_id)):
            if not self._live(table, record_id):
                raise self._objects.not_found(record_id)

    def _v4_put_labelled(self, request: Request, from_type: str, object_id: str, to_type: str,
                         to_id: str) -> Response:
        source, target = self._ends(from_type, to_type)
        self._check_pair(source, object_id, target, to_id)
        for spec in request.json() or []:
            self.portal.associate(source.object_type, object_id, target.object_type, to_id,
                                  int(spec.get("associationTypeId", 0)))
        return Response(201, self._labels_pair(source, object_id, target, to_id))

    def _labels_pair(self, source: ObjectTable, from_id: str, target: ObjectTable,
                     to_id: str) -> dict[str, Any]:
        held = dict(self.portal.associations(source.object_type, from_id, target.object_type))
        labels = [t["label"] for t in _association_types(held.get(to_id, [])) if t["label"]]
        return {"fromObjectTypeId": OBJECT_TYPE_IDS[source.object_type],
                "fromObjectId": int(from_id),
                "toObjectTypeId": OBJECT_TYPE_IDS[target.object_type],
                "toObjectId": int(to_id), "labels": labels}

    def _default_link(self, source: ObjectTable, from_id: str, target: ObjectTable,
                      to_id: str) -> list[dict[str, Any]]:
        """Create the unlabeled association; answer both directions, as HubSpot does."""
        pair = (source.object_type, target.object_type)
        self.portal.associate(pair[0], from_id, pair[1], to_id)
        return [
            {"from": {"id": a}, "to": {"id": b}, "associationSpec": {
                "associationCategory": "HUBSPOT_DEFINED",
                "associationTypeId": UNLABELED_TYPE.get((x, y), 0)}}
            for a, b, x, y in ((from_id, to_id, *pair), (to_id, from_id, pair[1], pair[0]))
        ]

    def _v4_put_default(self, request: Request, from_type: str, object_id: str, to_type: str,
                        to_id: str) -> Response:
        source, target = self._ends(from_type, to_type)
        self._check_pair(source, object_id, target, to_id)
        return self._objects.batch(self._default_link(source, object_id, target, to_id), [])

    def _v4_delete(self, request: Request, from_type: str, object_id: str, to_type: str,
                   to_id: str) -> Response:
        source, target = self._ends(from_type, to_type)
        self.portal.disassociate(source.object_type, object_id, target.object_type, to_id)
        return Response(204)

    def _v4_batch_read(self, request: Request, from_type: str, to_type: str) -> Response:
        source, target = self._ends(from_type, to_type)
        _, inputs = self._objects.inputs(request, ASSOCIATION_BATCH_LIMIT)
        results, errors = [], []
        for item in inputs:
            from_id = str(item.get("id", ""))
            pairs = self.portal.associations(source.object_type, from_id, target.object_type)
            if not pairs or not self._live(source, from_id):
                errors.append(self._no_associations(source, from_id, target))
                continue
            results.append({"from": {"id": from_id}, "to": [
                {"toObjectId": int(to_id), "associationTypes": _association_types(types)}
                for to_id, types in pairs
            ]})
        return self._objects.batch(results, errors)

    @staticmethod
    def _no_associations(source: ObjectTable, from_id: str,
                         target: ObjectTable) -> dict[str, Any]:
        source_name = SINGULAR[source.object_type].upper()
        target_name = SINGULAR[target.object_type].upper()
        return {"status": "error", "category": "OBJECT_NOT_FOUND",
                "subCategory": "crm.associations.NO_ASSOCIATIONS_FOUND",
                "message": f"No {target_name} is associated with {source_name} {from_id}.",
                "context": {"fromObjectId": [from_id], "toObjectType": [target_name]}}

    def _v4_batch_create(self, request: Request, from_type: str, to_type: str) -> Response:
        source, target = self._ends(from_type, to_type)
        _, inputs = self._objects.inputs(request, ASSOCIATION_BATCH_LIMIT)
        results, errors = [], []
        for item in inputs:
            from_id = str((item.get("from") or {}).get("id", ""))
            to_id = str((item.get("to") or {}).get("id", ""))
            if not (self._live(source, from_id) and self._live(target, to_id)):
                errors.append({"status": "error", "category": "VALIDATION_ERROR",
                               "message": f"Invalid object ids: {from_id} -> {to_id}.",
                               "context": {"fromObjectId": [from_id], "toObjectId": [to_id]}})
                continue
            for spec in item.get("types") or []:
                self.portal.associate(source.object_type, from_id, target.object_type, to_id,
                                      int(spec.get("associationTypeId", 0)))
            results.append(self._labels_pair(source, from_id, target, to_id))
        return self._objects.batch(results, errors, ok=201)

    def _v4_batch_archive(self, request: Request, from_type: str, to_type: str) -> Response:
        source, target = self._ends(from_type, to_type)
        _, inputs = self._objects.inputs(request, ASSOCIATION_BATCH_LIMIT)
        for item in inputs:
            from_id = str((item.get("from") or {}).get("id", ""))
            for to in item.get("to") or []:
                self.portal.disassociate(source.object_type, from_id, target.object_type,
                                         str(to.get("id", "")))
        return Response(204)

    def _v4_batch_default(self, request: Request, from_type: str, to_type: str) -> Response:
        source, target = self._ends(from_type, to_type)
        _, inputs = self._objects.inputs(request, ASSOCIATION_BATCH_LIMIT)
        results: list[dict[str, Any]] = []
        for item in inputs:
            from_id = str((item.get("from") or {}).get("id", ""))
            to_id = str((item.get("to") or {}).get("id", ""))
            self._check_pair(source, from_id, target, to_id)
            results.extend(self._default_link(source, from_id, target, to_id))
        return self._objects.batch(results, [])
