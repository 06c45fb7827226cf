"""Value types that cross the line between the core and the connectors.

What came in (`Record`, `Page`), what goes out (`Change`), what happened (`PushResult`,
`Usage`). All frozen; field values are JSON-ready (str, int, float, bool, None, lists, dicts).
Times are aware datetimes in UTC.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

JsonValue = Any
Operation = Literal["update", "upsert", "create"]


@dataclass(frozen=True)
class Record:
    """One source record as the connector read it, in syncd's words.

    `object` is the connector's stream name (`contacts`, `Lead`, `form_submissions`, ...);
    `updated_at` the CRM's modification time (HubSpot `lastmodifieddate`, Salesforce
    `SystemModstamp`); `fields` the CRM's own field names and values. A deleted record (HubSpot
    archived, Salesforce `IsDeleted`) has `deleted=True`; a merge loser names its survivor in
    `merged_into`.
    """

    system: str
    object: str
    id: str
    updated_at: datetime
    fields: Mapping[str, JsonValue]
    deleted: bool = False
    merged_into: str | None = None


@dataclass(frozen=True)
class Page:
    """Records read in one go and the cursor to keep once they are stored.

    The core commits `records` and `cursor` in one transaction, so a run killed after any page
    resumes from `cursor` with nothing missed and at most that page re-read. `cursor` is the
    connector's own JSON text; the core never looks inside, but shows `watermark`.
    """

    stream: str
    records: Sequence[Record]
    cursor: str
    watermark: datetime | None = None
    calls: int = 1
    total: int | None = None  # records the stream holds in all, where the CRM says (progress)


@dataclass(frozen=True)
class Stream:
    """One thing a connector reads: its name and the fields it will request."""

    name: str
    fields: tuple[str, ...] = ()
    incremental: bool = True


@dataclass(frozen=True)
class FieldInfo:
    """One field of a CRM object as its schema describes it."""

    name: str
    type: str
    label: str = ""
    updateable: bool = True
    createable: bool = True
    options: tuple[str, ...] = ()
    unique: bool = False


@dataclass(frozen=True)
class ObjectSchema:
    system: str
    object: str
    fields: Mapping[str, FieldInfo]


@dataclass(frozen=True)
class Change:
    """One write to one record: update by `id`, or upsert/create by `key_field` = `key`.

    `ref` is the caller's handle (e.g. the outbox row id), echoed in the `PushResult`.
    """

    system: str
    object: str
    ref: str
    operation: Operation
    fields: Mapping[str, JsonValue]
    id: str | None = None
    key_field: str | None = None
    key: str | None = None
    associations: Sequence[tuple[str, str, int]] = ()


@dataclass(frozen=True)
class PushResult:
    """What happened to one `Change`: applied (with the record's id) or rejected with why."""

    ref: str
    ok: bool
    id: str | None = None
    created: bool = False
    error_code: str = ""
    message: str = ""


@dataclass(frozen=True)
class Usage:
    """API calls made and the allowance left, as the CRM reports them."""

    system: str
    calls: int
    limit: int | None = None
    remaining: int | None = None
    retries: int = 0
    throttled: int = 0
    details: Mapping[str, int] = field(default_factory=dict)


def utc(value: datetime) -> datetime:
    """The same instant in UTC; a naive datetime is taken to be UTC already."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
