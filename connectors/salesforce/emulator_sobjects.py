"""The emulated REST sObject resources: create, retrieve, update and delete one record,
retrieve and upsert by external id (wire reference 2.5), and the replication calls getUpdated
and getDeleted, `sobjects/{Obj}/updated` and `/deleted` (2.3).

`SObjectsApi` also holds what the other sObject-scoped endpoints share: the canonical name
of the sObject a URL names (404 NOT_FOUND when there is none), a record in its wire shape
with its `attributes`, and the field an external id names.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import unquote_plus

from connectors.loopback import Request, Response, Router

from .emulator_wire import NOT_FOUND, attributes, errors, record_url
from .ids import to_id18
from .org import Org, Screen
from .values import OrgError, parse_datetime, wire_datetime

MAX_REPLICATION_IDS = 600_000


class SObjectsApi:
    """`sobjects/{Obj}` and below over an `Org`; `screen` reads the faults' record refusal
    at call time, as tests swap the faults while the emulator runs."""

    def __init__(self, org: Org, screen: Callable[[], Screen | None]) -> None:
        self.org = org
        self._screen = screen
        self._created = self.org.clock()

    def routes(self, router: Router, prefix: str) -> None:
        sobject = f"{prefix}/sobjects/{{sobject}}"
        router.add("POST", sobject, self._create)
        router.add("GET", f"{sobject}/updated", self._updated)
        router.add("GET", f"{sobject}/deleted", self._deleted)
        router.add("GET", sobject + "/{record_id}", self._retrieve)
        router.add("PATCH", sobject + "/{record_id}", self._update)
        router.add("DELETE", sobject + "/{record_id}", self._delete)
        router.add("GET", sobject + "/{field}/{value}", self._retrieve_by_external_id)
        router.add("PATCH", sobject + "/{field}/{value}", self._upsert)

    # -- shared with the other sObject-scoped endpoints --

    def sobject(self, name: str) -> str:
        """The canonical name of an sObject in a URL; unknown ones are 404 NOT_FOUND."""
        canonical = self.org.resolve(name)
        if canonical is None:
            raise OrgError("NOT_FOUND", NOT_FOUND)
        return canonical

    def record(
        self, sobject: str, row: Mapping[str, Any], fields: list[str], version: str
    ) -> dict[str, Any]:
        spec = self.org.spec(sobject)
        names = []
        for field_name in fields or list(spec.fields):
            canonical = spec.canonical(field_name)
            if canonical is None:
                raise OrgError(
                    "INVALID_FIELD", f"No such column '{field_name}' on entity '{sobject}'. "
                    "If you are attempting to use a custom field, be sure to append the '__c' "
                    "after the custom field name. Please reference your WSDL or the describe "
                    "call for the appropriate names.",
                )
            names.append(canonical)
        answer: dict[str, Any] = {"attributes": attributes(sobject, row["Id"], version)}
        answer.update((name, row.get(name)) for name in names)
        return answer

    def external_field(self, sobject: str, field_name: str) -> str:
        spec = self.org.spec(sobject)
        canonical = spec.canonical(field_name)
        usable = canonical is not None and (
            spec.fields[canonical].indexed or spec.fields[canonical].type == "id"
        )
        if canonical is None or not usable:
            raise OrgError(
                "NOT_FOUND",
                f"Provided external ID field does not exist or is not accessible: {field_name}",
            )
        return canonical

    # -- single records --

    def _create(self, request: Request, version: str, sobject: str) -> Response:
        name = self.sobject(sobject)
        record_id = self.org.insert(name, _object(request.json()), screen=self._screen())
        return Response(201, {"id": record_id, "success": True, "errors": []})

    def _retrieve(self, request: Request, version: str, sobject: str, record_id: str) -> Response:
        name = self.sobject(sobject)
        canonical = to_id18(record_id)
        if canonical is None or not canonical.startswith(self.org.spec(name).key_prefix):
            # Salesforce reads a non-id segment as an external id field name.
            raise OrgError(
                "NOT_FOUND",
                f"Provided external ID field does not exist or is not accessible: {record_id}",
            )
        row = self.org.row(name, canonical)
        return Response(200, self.record(name, row, request.args("fields"), version))

    def _update(self, request: Request, version: str, sobject: str, record_id: str) -> Response:
        name = self.sobject(sobject)
        fields = _object(request.json())
        if str(fields.get("Id", "")) in (record_id, to_id18(record_id)):
            fields.pop("Id")
        self.org.update(name, record_id, fields, screen=self._screen())
        return Response(204)

    def _delete(self, request: Request, version: str, sobject: str, record_id: str) -> Response:
        self.org.delete(self.sobject(sobject), record_id)
        return Response(204)

    def _retrieve_by_external_id(
        self, request: Request, version: str, sobject: str, field: str, value: str
    ) -> Response:
        name = self.sobject(sobject)
        external = self.external_field(name, field)
        # simple-salesforce quote_plus-encodes this value, so a '+' here is a space.
        raw = unquote_plus(request.raw_path.rstrip("/").rsplit("/", 1)[-1])
        matches = self.org.find(name, external, raw)
        if not matches:
            raise OrgError("NOT_FOUND", NOT_FOUND)
        if len(matches) > 1:
            return Response(300, [record_url(name, match, version) for match in matches])
        row = self.org.row(name, matches[0])
        return Response(200, self.record(name, row, request.args("fields"), version))

    def _upsert(
        self, request: Request, version: str, sobject: str, field: str, value: str
    ) -> Response:
        """Upsert by external id. `value` is the path segment as sent: simple-salesforce does
        not encode it, so a literal '+' stays a '+' (reference 0.2)."""
        name = self.sobject(sobject)
        external = self.external_field(name, field)
        fields = _object(request.json())
        spec = self.org.spec(name)
        for key in fields:
            if spec.canonical(key) in ("Id", external):
                # Reference 2.5: neither the external id field nor Id may be in the body.
                return errors(
                    "INVALID_FIELD",
                    f"The field {spec.canonical(key)} can not be specified in the request body "
                    "of an upsert by external id", 400, [str(spec.canonical(key))],
                )
        matches = self.org.find(name, external, value)
        if len(matches) > 1:
            return Response(300, [record_url(name, match, version) for match in matches])
        if matches:
            self.org.update(name, matches[0], fields, screen=self._screen())
            return Response(200, {"id": matches[0], "success": True, "errors": [],
                                  "created": False})
        if request.arg("updateOnly") == "true" or external == "Id":
            raise OrgError("NOT_FOUND", NOT_FOUND)
        record_id = self.org.insert(name, {**fields, external: value}, screen=self._screen())
        return Response(201, {"id": record_id, "success": True, "errors": [], "created": True})

    # -- replication --

    def _window(self, request: Request, days: int) -> tuple[datetime, datetime]:
        """The start and latestDateCovered of a getUpdated/getDeleted call, minute-floored."""
        moments = []
        for name in ("start", "end"):
            text = (request.arg(name) or "").replace(" ", "+").rstrip(":")
            moment = parse_datetime(text)
            if moment is None:
                raise OrgError("INVALID_REPLICATION_DATE", f"Invalid {name} date: {text}")
            moments.append(moment.replace(second=0, microsecond=0))
        start, end = moments
        now = self.org.clock().astimezone(UTC).replace(second=0, microsecond=0)
        if end < start:
            raise OrgError("INVALID_REPLICATION_DATE", "end date must not be before start date")
        # Documented windows (reference 2.3); the exact error for older starts is [verify].
        if start < now - timedelta(days=days):
            raise OrgError(
                "INVALID_REPLICATION_DATE", f"start date cannot be more than {days} days ago"
            )
        return start, min(end, now)

    def _updated(self, request: Request, version: str, sobject: str) -> Response:
        name = self.sobject(sobject)
        start, latest = self._window(request, 30)
        low, high = wire_datetime(start), wire_datetime(latest)
        ids = [
            row["Id"] for row in self.org.rows(name)
            if not row["IsDeleted"] and low <= row["SystemModstamp"] < high
        ]
        if len(ids) > MAX_REPLICATION_IDS:
            raise OrgError("EXCEEDED_ID_LIMIT", "record limit reached: narrow the date range")
        return Response(200, {"ids": ids, "latestDateCovered": high})

    def _deleted(self, request: Request, version: str, sobject: str) -> Response:
        name = self.sobject(sobject)
        start, latest = self._window(request, 30)
        low, high = wire_datetime(start), wire_datetime(latest)
        # The emulator never purges its recycle bin; the log reaches back 15 days at most.
        now = self.org.clock().astimezone(UTC).replace(second=0, microsecond=0)
        earliest = max(self._created.astimezone(UTC).replace(second=0, microsecond=0),
                       now - timedelta(days=15))
        deleted = [
            {"id": record_id, "deletedDate": when}
            for record_id, when in self.org.deleted_log(name) if low <= when < high
        ]
        return Response(200, {
            "deletedRecords": deleted, "earliestDateAvailable": wire_datetime(earliest),
            "latestDateCovered": high,
        })


def _object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise OrgError("JSON_PARSER_ERROR", "The request body must be a JSON object")
    return {k: v for k, v in body.items() if k != "attributes"}
