"""What the Salesforce connector's pushes send, and how their answers become `PushResult`s.

A push groups its changes by object and kind (`_kind`: update by id, upsert by external id,
create), refuses the malformed ones before any call (`_malformed`), sends sObject Collections
records (`_collection_record`) and reads each record's answer (`_push_result`), or, for a Bulk
ingest job, the job's outcome for that record (`_ingest_result`).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from typing import Any

from syncd.model import Change, PushResult


def _kind(change: Change) -> str:
    if change.operation == "update":
        return "update"
    return "upsert" if change.key_field else "create"


def _malformed(change: Change) -> str:
    if change.operation == "update" and not change.id:
        return f"an update of {change.object} needs the record's id"
    if change.operation == "upsert" and not (change.key_field and change.key):
        return f"an upsert of {change.object} needs key_field and key"
    return ""


def _collection_record(change: Change) -> dict[str, Any]:
    record: dict[str, Any] = {"attributes": {"type": change.object}}
    values = {k: v for k, v in change.fields.items() if k not in ("Id", "id")}
    if change.operation == "update":
        record["id"] = change.id
    elif change.key_field:
        values[change.key_field] = change.key
    record.update(values)
    return record


def _push_result(change: Change, answer: Mapping[str, Any], kind: str) -> PushResult:
    if answer.get("success"):
        created = bool(answer.get("created", kind == "create"))
        return PushResult(change.ref, True, id=answer.get("id"), created=created)
    errors = answer.get("errors") or [{}]
    first = errors[0]
    return PushResult(change.ref, False, id=answer.get("id"),
                      error_code=str(first.get("statusCode") or first.get("errorCode") or ""),
                      message=str(first.get("message") or ""))


def _ingest_result(
    change: Change, key_column: str, outcome: dict[str, deque[tuple[bool, str, str, str]]]
) -> PushResult:
    key = str(change.id if key_column == "Id" else change.key)
    found = outcome.get(key)
    if not found:
        return PushResult(change.ref, False, error_code="UNPROCESSED",
                          message="Salesforce reported no result for this record")
    ok, record_id, detail, message = found.popleft()
    if ok:
        return PushResult(change.ref, True, id=record_id, created=detail == "True")
    return PushResult(change.ref, False, id=record_id or None, error_code=detail,
                      message=message)
