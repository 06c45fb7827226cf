"""The emulated sObject Collections, `composite/sobjects` (wire reference 2.6): create, update,
delete and upsert up to 200 records, each answered on its own or all rolled back with
`allOrNone`, and retrieve by ids (GET up to 200, POST up to 2,000).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from connectors.loopback import Request, Response, Router

from .emulator_sobjects import SObjectsApi
from .emulator_wire import MAX_COLLECTION
from .ids import to_id18
from .org import Screen
from .values import OrgError

MAX_RETRIEVE = 2000  # ids in one POST composite/sobjects/{Obj} retrieve
_ROLLED_BACK = {
    "statusCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK",
    "message": "Record rolled back because not all records were valid and the request was "
               "using AllOrNone header",
    "fields": [],
}


class CollectionsApi:
    """`composite/sobjects` over the org of `sobjects`, the sObject API whose name lookup,
    record shape and external id fields it shares; `screen` as in `SObjectsApi`."""

    def __init__(self, sobjects: SObjectsApi, screen: Callable[[], Screen | None]) -> None:
        self.org = sobjects.org
        self._sobjects = sobjects
        self._screen = screen

    def routes(self, router: Router, prefix: str) -> None:
        collections = f"{prefix}/composite/sobjects"
        router.add("POST", collections, self._collection_create)
        router.add("PATCH", collections, self._collection_update)
        router.add("DELETE", collections, self._collection_delete)
        router.add("GET", collections + "/{sobject}", self._collection_retrieve)
        router.add("POST", collections + "/{sobject}", self._collection_retrieve_body)
        router.add("PATCH", collections + "/{sobject}/{field}", self._collection_upsert)

    def _collection_records(self, request: Request) -> tuple[list[Any], bool]:
        body = request.json()
        if not isinstance(body, dict) or not isinstance(body.get("records"), list):
            raise OrgError("JSON_PARSER_ERROR", "The request body must hold a records array")
        records = body["records"]
        if len(records) > MAX_COLLECTION:
            # The limit is documented; the message is Salesforce's as reported by users.
            raise OrgError(
                "EXCEEDED_ID_LIMIT",
                "record limit reached. cannot submit more than 200 records into this call",
            )
        return records, bool(body.get("allOrNone"))

    def _save_each(
        self, operations: list[Callable[[], dict[str, Any]]], ids: list[str | None],
        all_or_none: bool,
    ) -> Response:
        """Run each record's write; with allOrNone one failure rolls every write back."""
        results: list[dict[str, Any]] = []
        with self.org.atomic() as rollback:
            for operation, record_id in zip(operations, ids, strict=True):
                try:
                    results.append(operation())
                except OrgError as error:
                    failure: dict[str, Any] = {"success": False, "errors": [{
                        "statusCode": error.error_code, "message": error.message,
                        "fields": error.fields,
                    }]}
                    if record_id:
                        failure = {"id": record_id, **failure}
                    results.append(failure)
            if all_or_none and any(not result["success"] for result in results):
                rollback()
                results = [
                    r if not r["success"] else
                    {"id": None, "success": False, "errors": [dict(_ROLLED_BACK)]}
                    for r in results
                ]
        return Response(200, results)

    def _record_type(self, record: Any) -> tuple[str, dict[str, Any]]:
        if not isinstance(record, dict):
            raise OrgError("JSON_PARSER_ERROR", "Each record must be a JSON object")
        attributes = record.get("attributes")
        kind = attributes.get("type") if isinstance(attributes, dict) else None
        name = self.org.resolve(str(kind or ""))
        if name is None:
            raise OrgError("INVALID_TYPE", "Must send a concrete entity type.")
        return name, {k: v for k, v in record.items() if k != "attributes"}

    def _collection_create(self, request: Request, version: str) -> Response:
        records, all_or_none = self._collection_records(request)

        def create(record: Any) -> dict[str, Any]:
            name, fields = self._record_type(record)
            if any(key.lower() == "id" for key in fields):
                raise OrgError("INVALID_FIELD", "cannot specify Id in an insert call", ["Id"])
            record_id = self.org.insert(name, fields, screen=self._screen())
            return {"id": record_id, "success": True, "errors": []}

        operations = [_bound(create, record) for record in records]
        return self._save_each(operations, [None] * len(records), all_or_none)

    def _collection_update(self, request: Request, version: str) -> Response:
        records, all_or_none = self._collection_records(request)

        def update(record: Any) -> dict[str, Any]:
            name, fields = self._record_type(record)
            record_id = next((fields.pop(k) for k in list(fields) if k.lower() == "id"), None)
            if not record_id:
                raise OrgError("MISSING_ARGUMENT", "Id not specified in an update call", ["Id"])
            self.org.update(name, str(record_id), fields, screen=self._screen())
            return {"id": to_id18(record_id), "success": True, "errors": []}

        ids = [_record_id(record) for record in records]
        return self._save_each([_bound(update, r) for r in records], ids, all_or_none)

    def _collection_delete(self, request: Request, version: str) -> Response:
        ids = request.args("ids")
        if len(ids) > MAX_COLLECTION:
            raise OrgError(
                "EXCEEDED_ID_LIMIT",
                "record limit reached. cannot submit more than 200 records into this call",
            )

        def delete(record_id: str) -> dict[str, Any]:
            name = self._type_of(record_id)
            self.org.delete(name, record_id)
            return {"id": to_id18(record_id), "success": True, "errors": []}

        all_or_none = (request.arg("allOrNone") or "").lower() == "true"
        operations = [_bound(delete, record_id) for record_id in ids]
        return self._save_each(operations, list(ids), all_or_none)

    def _type_of(self, record_id: str) -> str:
        canonical = to_id18(record_id)
        for name in self.org.sobject_names():
            if canonical and canonical.startswith(self.org.spec(name).key_prefix):
                return name
        raise OrgError("MALFORMED_ID", f"malformed id {record_id}")

    def _collection_retrieve(self, request: Request, version: str, sobject: str) -> Response:
        name = self._sobjects.sobject(sobject)
        ids = request.args("ids")
        if len(ids) > MAX_COLLECTION:
            raise OrgError("EXCEEDED_ID_LIMIT", "record limit reached. cannot retrieve more "
                           "than 200 records in this call")
        return self._retrieve_each(name, ids, request.args("fields"), version)

    def _collection_retrieve_body(
        self, request: Request, version: str, sobject: str
    ) -> Response:
        """The POST form of the retrieve: ids and fields in the body, up to 2,000 ids (the
        documented limit; the wire reference lists only the GET form, whose URL holds ~800)."""
        name = self._sobjects.sobject(sobject)
        body = request.json()
        ids, fields = (body.get("ids"), body.get("fields")) if isinstance(body, dict) else ([], [])
        if not (isinstance(ids, list) and ids and isinstance(fields, list) and fields):
            raise OrgError("JSON_PARSER_ERROR", "The request body must hold ids and fields arrays")
        if len(ids) > MAX_RETRIEVE:
            raise OrgError("EXCEEDED_ID_LIMIT", "record limit reached. cannot retrieve more "
                           f"than {MAX_RETRIEVE} records in this call")
        return self._retrieve_each(name, [str(i) for i in ids], [str(f) for f in fields], version)

    def _retrieve_each(
        self, name: str, ids: list[str], fields: list[str], version: str
    ) -> Response:
        """One record per id in order; null where the id is malformed, unknown or deleted."""
        answers: list[dict[str, Any] | None] = []
        for record_id in ids:
            try:
                row = self.org.row(name, record_id)
            except OrgError:
                answers.append(None)
                continue
            answers.append(self._sobjects.record(name, row, fields, version))
        return Response(200, answers)

    def _collection_upsert(
        self, request: Request, version: str, sobject: str, field: str
    ) -> Response:
        name = self._sobjects.sobject(sobject)
        external = self._sobjects.external_field(name, field)
        records, all_or_none = self._collection_records(request)

        def upsert(record: Any) -> dict[str, Any]:
            kind, fields = self._record_type(record)
            if kind != name:
                raise OrgError("INVALID_TYPE", f"Record type {kind} does not match {name}")
            key = next((k for k in fields if self.org.spec(name).canonical(k) == external), None)
            if key is None or fields[key] in (None, ""):
                raise OrgError("MISSING_ARGUMENT", f"{external} not specified", [external])
            return self._upsert_one(name, external, fields, key)

        operations = [_bound(upsert, record) for record in records]
        return self._save_each(operations, [None] * len(records), all_or_none)

    def _upsert_one(
        self, name: str, external: str, fields: dict[str, Any], key: str
    ) -> dict[str, Any]:
        match = self.org.find_one(name, external, fields[key])
        if match is not None:
            changes = {k: v for k, v in fields.items() if k != key}
            self.org.update(name, match, changes, screen=self._screen())
            return {"id": match, "success": True, "errors": [], "created": False}
        record_id = self.org.insert(name, fields, screen=self._screen())
        return {"id": record_id, "success": True, "errors": [], "created": True}


def _record_id(record: Any) -> str | None:
    if not isinstance(record, dict):
        return None
    return next((str(v) for k, v in record.items() if k.lower() == "id"), None)


def _bound(function: Callable[[Any], dict[str, Any]], item: Any) -> Callable[[], dict[str, Any]]:
    return lambda: function(item)
