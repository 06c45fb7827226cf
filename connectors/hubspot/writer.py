"""Writing to HubSpot: `Change`s in batches of 100, one `PushResult` per change, in order.

Updates go by id to `POST /crm/v3/objects/{type}/batch/update`; upserts and creates go by a
unique property (`email` or `syncd_id`) to `.../batch/upsert`, so that pushing twice equals
pushing once (a create without such a key is refused: it could not be repeated safely).
A 207 answer carries per-record errors; a validation failure rejects the whole request
(reference 1.3 [reported]), so such a batch is split in halves until the refused records
stand alone. Associations of written records (`Change.associations`: `(to_object, to_id,
type_id)`, type 0 meaning HubSpot's default) go through the v4 batch create or
associate-default endpoints.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from connectors.hubspot.crm import ASSOCIATED, MODIFIED
from connectors.hubspot.transport import SYSTEM, AnswerError, Call, HubSpotTransport
from syncd.model import Change, PushResult

BATCH_LIMIT = 100
# The v4 create limit is unconfirmed (reference 1.5 [verify]): stay at the object limit.
ASSOCIATION_BATCH_LIMIT = 100
WRITABLE = frozenset(MODIFIED)
Indexed = list[tuple[int, Change]]


class BatchWriter:
    def __init__(self, transport: HubSpotTransport) -> None:
        self.transport = transport

    def push(self, changes: Sequence[Change]) -> list[PushResult]:
        results: dict[int, PushResult] = {}
        groups: dict[tuple[str, str, str], Indexed] = {}
        for index, change in enumerate(changes):
            problem = _invalid(change)
            if problem:
                results[index] = PushResult(change.ref, False, error_code="INVALID_CHANGE",
                                            message=problem)
                continue
            kind = "update" if change.operation == "update" else "upsert"
            key = (change.object, kind, change.key_field or "")
            groups.setdefault(key, []).append((index, change))
        for (object_type, kind, _), items in groups.items():
            for start in range(0, len(items), BATCH_LIMIT):
                self._write(object_type, kind, items[start:start + BATCH_LIMIT], results)
        self._associate(changes, results)
        return [results[index] for index in range(len(changes))]

    # -- records ----------------------------------------------------------------------------

    def _write(self, object_type: str, kind: str, items: Indexed,
               results: dict[int, PushResult]) -> None:
        try:
            answer = self._send_batch(object_type, kind, items)
        except AnswerError as error:
            if error.status not in (400, 409):
                raise
            if len(items) > 1:  # the whole batch was refused: find the records at fault
                half = len(items) // 2
                self._write(object_type, kind, items[:half], results)
                self._write(object_type, kind, items[half:], results)
                return
            index, change = items[0]
            results[index] = PushResult(change.ref, False, error_code=error.category,
                                        message=str(error))
            return
        body = answer.body or {}
        self._match(kind, items, body.get("results") or [], body.get("errors") or [], results)

    def _send_batch(self, object_type: str, kind: str, items: Indexed) -> Any:
        batch = self.transport.batch
        if kind == "update":
            inputs: list[dict[str, Any]] = [
                {"id": c.id, "properties": dict(c.fields)} for _, c in items]
            operation = batch.update_with_http_info
        else:
            inputs = [{"id": c.key, "idProperty": c.key_field, "properties": dict(c.fields)}
                      for _, c in items]
            operation = batch.upsert_with_http_info
        call = Call("POST", f"/crm/v3/objects/{object_type}/batch/{kind}", object_type)
        return self.transport.send(call, operation, object_type, {"inputs": inputs})

    @staticmethod
    def _match(kind: str, items: Indexed, done: list[dict[str, Any]],
               errors: list[dict[str, Any]], results: dict[int, PushResult]) -> None:
        """Pair each result (by id, or by the key value for upserts) and error with its
        change; errors that name no record go to the changes left, in order."""
        key_field = items[0][1].key_field or ""
        by_key: dict[str, dict[str, Any]] = {}
        for item in done:
            value = item.get("id") if kind == "update" \
                else (item.get("properties") or {}).get(key_field)
            by_key[str(value).lower()] = item  # HubSpot keeps emails lower-cased
        named, loose = _errors_by_id(errors)
        for index, change in items:
            found = by_key.get(str(change.id if kind == "update" else change.key).lower())
            if found is not None:
                results[index] = PushResult(change.ref, True, id=str(found.get("id")),
                                            created=bool(found.get("new")))
                continue
            error = named.get(str(change.id)) if change.id else None
            error = error or (loose.pop(0) if loose else None)
            results[index] = PushResult(
                change.ref, False,
                error_code=str((error or {}).get("category") or "NOT_APPLIED"),
                message=str((error or {}).get("message")
                            or "HubSpot returned no result for this record."))

    # -- associations -----------------------------------------------------------------------

    def _associate(self, changes: Sequence[Change], results: dict[int, PushResult]) -> None:
        groups: dict[tuple[str, str, bool], list[tuple[int, str, str, int]]] = {}
        for index, change in enumerate(changes):
            result = results[index]
            if not result.ok or not result.id:
                continue
            for to_object, to_id, type_id in change.associations:
                key = (change.object, to_object, not type_id)
                groups.setdefault(key, []).append((index, result.id, to_id, type_id))
        for (from_object, to_object, default), links in groups.items():
            for start in range(0, len(links), ASSOCIATION_BATCH_LIMIT):
                chunk = links[start:start + ASSOCIATION_BATCH_LIMIT]
                self._link(from_object, to_object, default, chunk, changes, results)

    def _link(self, from_object: str, to_object: str, default: bool,
              links: list[tuple[int, str, str, int]], changes: Sequence[Change],
              results: dict[int, PushResult]) -> None:
        api = self.transport.associations
        if default:
            inputs: list[dict[str, Any]] = [{"from": {"id": f}, "to": {"id": t}}
                                            for _, f, t, _ in links]
            path, operation = "batch/associate/default", api.create_default_with_http_info
        else:
            inputs = [{"from": {"id": f}, "to": {"id": t}, "types": [
                {"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": type_id}]}
                for _, f, t, type_id in links]
            path, operation = "batch/create", api.create_with_http_info
        call = Call("POST", f"/crm/v4/associations/{from_object}/{to_object}/{path}",
                    from_object)
        try:
            answer = self.transport.send(call, operation, from_object, to_object,
                                         {"inputs": inputs})
        except AnswerError as error:
            for index, *_ in links:
                results[index] = _link_failed(results[index], error.category, str(error))
            return
        for refusal in (answer.body or {}).get("errors") or []:
            context = refusal.get("context") or {}
            failed = {str(i) for i in context.get("fromObjectId") or []}
            for index, from_id, *_ in links:
                if from_id in failed:
                    results[index] = _link_failed(results[index],
                                                  str(refusal.get("category")),
                                                  str(refusal.get("message")))


def _invalid(change: Change) -> str:
    """Why a change cannot be sent as it is, or ""."""
    if change.system != SYSTEM:
        return f"a {change.system} change was given to the HubSpot connector"
    if change.object not in WRITABLE:
        return f"HubSpot object {change.object!r} is not one syncd writes ({sorted(WRITABLE)})"
    if change.operation == "update" and not change.id:
        return "an update needs the record id"
    if change.operation != "update" and not (change.key_field and change.key):
        return (f"a HubSpot {change.operation} needs key_field and key (email or syncd_id), "
                "so that repeating it cannot create the record twice")
    for to_object, _, _ in change.associations:
        if to_object not in ASSOCIATED.get(change.object, ()) and to_object not in WRITABLE:
            return f"HubSpot cannot associate {change.object} with {to_object!r}"
    return ""


def _errors_by_id(errors: list[dict[str, Any]]) -> tuple[dict[str, dict[str, Any]],
                                                          list[dict[str, Any]]]:
    named: dict[str, dict[str, Any]] = {}
    loose: list[dict[str, Any]] = []
    for error in errors:
        context = error.get("context") or {}
        ids = [str(i) for i in (context.get("ids") or context.get("id") or [])]
        for record_id in ids:
            named[record_id] = error
        if not ids:
            loose.append(error)
    return named, loose


def _link_failed(result: PushResult, code: str, message: str) -> PushResult:
    # The record is written but not linked; pushing again is safe (upsert, then link again).
    return replace(result, ok=False, error_code=f"ASSOCIATION_{code}",
                   message=f"written, but not associated: {message}")
