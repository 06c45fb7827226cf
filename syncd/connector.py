"""The `Connector` protocol both CRMs implement, and the window a run reads.

A connector is a few methods: list its streams, describe an object, pull pages from a cursor,
read records' modification stamps, push changes (safe to repeat), report usage. It speaks its
CRM's words inside and syncd's words at this edge; it never sees the store. The core finds a
connector factory by name through the `syncd.connectors` entry points:
`factory(settings) -> Connector`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Protocol

from syncd.model import Change, FieldInfo, ObjectSchema, Page, PushResult, Stream, Usage

if TYPE_CHECKING:
    from syncd.config import Settings


@dataclass(frozen=True)
class Window:
    """What one run reads: changes before `run_start`, from each cursor less `lookback`.

    `since` (from `--since`) re-reads everything modified from that instant; `full` (from
    `--full`) re-reads all history, as a first backfill does.
    """

    run_start: datetime
    lookback: timedelta
    since: datetime | None = None
    full: bool = False


class Connector(Protocol):
    system: str

    def streams(self) -> Sequence[Stream]:
        """The streams this connector reads, in the order a run should read them."""
        ...

    def describe(self, object_name: str) -> ObjectSchema:
        """The live schema of one object (HubSpot properties, Salesforce describe)."""
        ...

    def pull(self, stream: str, cursor: str | None, window: Window) -> Iterator[Page]:
        """Pages of `stream` from `cursor` (None: never read), in cursor order.

        Each page carries the cursor to keep once it is stored; the last page's cursor is where
        the next run starts. A cursor never moves backwards.
        """
        ...

    def create_field(self, object_name: str, field: FieldInfo, description: str) -> None:
        """Create one of syncd's own custom fields (`syncd check --online --fix`); raises a
        ConnectorError naming the manual step where the CRM's admin must do it."""
        ...

    def stamps(self, object_name: str, ids: Sequence[str]) -> dict[str, datetime]:
        """When each of these records was last modified, as `pull` stamps `Record.updated_at`,
        read in the largest batches the API allows. A record not found (deleted, merged away)
        is left out."""
        ...

    def push(self, changes: Sequence[Change]) -> list[PushResult]:
        """Apply changes in the largest batches the API allows; one result per change, in order.

        Safe to repeat: creates go through upserts on an idempotency key.
        """
        ...

    def push_chunk(self, object_name: str, operation: str, pending: int) -> int | None:
        """How many of the `pending` changes of one object and operation `push` should be
        handed at a time, where a group that large is written another way (Salesforce's Bulk
        API 2.0 ingest jobs above `bulk_threshold`); None: push's own chunks."""
        ...

    def usage(self) -> Usage:
        """Calls made so far by this connector and the allowance left."""
        ...

    def close(self) -> None: ...


class ConnectorFactory(Protocol):
    """`fields`: per stream, the fields the mapping files need, requested on top of what the
    connector itself reads."""

    def __call__(
        self, settings: Settings, *, fields: Mapping[str, Sequence[str]] | None = None
    ) -> Connector: ...
