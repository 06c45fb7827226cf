"""The Salesforce connector's cursor, and the instants it and SOQL are written in.

The cursor (JSON) holds the watermark (everything modified before it is stored) and, while a
read is under way, that read's bounds, the last stamp stored and where to go on (the query
locator, or the bulk job, its results locator and how many of that call's rows are stored), so
a run stopped after any page resumes there (see `connectors.salesforce.connector`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from syncd.model import utc


@dataclass
class _Read:
    """One window being read: `[lower, upper)`, resumable after any page."""

    lower: datetime | None
    upper: datetime
    after: datetime | None = None  # the last SystemModstamp stored by this read
    next_url: str | None = None  # REST query locator (nextRecordsUrl) to go on from
    job: str | None = None  # Bulk API 2.0 query job to go on from ...
    locator: str | None = None  # ... at this results locator ("" = the first results)
    skip: int = 0  # ... past this many of its rows, already stored
    total: int | None = None

    @property
    def since(self) -> datetime | None:
        """The lower bound to query from: the last stamp stored, else the window's start."""
        return self.after or self.lower


@dataclass
class _Cursor:
    watermark: datetime | None = None
    read: _Read | None = None

    @classmethod
    def parse(cls, text: str | None) -> _Cursor:
        if not text:
            return cls()
        data = json.loads(text)
        read = data.get("read")
        return cls(
            watermark=_instant(data.get("watermark")),
            read=None if read is None else _Read(
                lower=_instant(read.get("lower")), upper=_parse_instant(read["upper"]),
                after=_instant(read.get("after")), next_url=read.get("next"),
                job=read.get("job"), locator=read.get("locator"), skip=read.get("skip", 0),
            ),
        )

    def dump(self) -> str:
        read = self.read
        body: dict[str, Any] = {"v": 1, "watermark": _iso(self.watermark), "read": None}
        if read is not None:
            body["read"] = {
                "lower": _iso(read.lower), "upper": _iso(read.upper), "after": _iso(read.after),
                "next": read.next_url, "job": read.job, "locator": read.locator,
            }
            if read.skip:
                body["read"]["skip"] = read.skip
        return json.dumps(body, separators=(",", ":"))

    def advance(self, stamp: datetime | None) -> None:
        """Move the watermark forward to `stamp`; it never moves back."""
        if stamp is not None and (self.watermark is None or stamp > self.watermark):
            self.watermark = stamp


def _iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return utc(moment).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _instant(text: str | None) -> datetime | None:
    return None if text is None else _parse_instant(text)


def _parse_instant(text: str) -> datetime:
    """A Salesforce or ISO datetime (`...000+0000`, `...Z`, `+00:00`) as an aware UTC one."""
    return utc(datetime.fromisoformat(text))


def _soql_instant(moment: datetime) -> str:
    """A SOQL datetime literal: unquoted, UTC, to the millisecond (`2024-01-02T03:04:05.678Z`)."""
    # isoformat pads every year to four digits; strftime's %Y does not (year 1 is "1").
    return utc(moment).isoformat(timespec="milliseconds")[:23] + "Z"
