"""The HubSpot connector's cursor: where a stream's read stands, as JSON text.

A read covers `[low, high)` (epoch milliseconds, HubSpot's resolution) and `high` is the
run start of the run that began it, kept so that a read resumed by a later run still ends
exactly where it was meant to. `watermark` is the exclusive upper bound of the last read that
completed: pages never report less, so a cursor never moves backwards. `mode` says what is in
progress: `idle` (nothing: the next run reads from `watermark - lookback`), `backfill` (list
endpoint, `phase` archived then live, `after` the list cursor) or `read` (a time window:
`phase` sweep then search, `last_id` set while one instant is paged by id). `swept` is when
the archived list was last read (deletes are invisible to search).
"""

from __future__ import annotations

import json
from collections.abc import Generator, Iterator
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from syncd.connector import Window
from syncd.errors import ConnectorError, SyncdError
from syncd.model import Page

Mode = Literal["idle", "backfill", "read"]
VERSION = 1


def to_ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def ceil_ms(moment: datetime) -> int:
    """The first whole millisecond at or after `moment` (an exclusive bound stays exclusive
    for records stamped in whole milliseconds)."""
    micros = int(moment.timestamp() * 1_000_000)
    return -(-micros // 1000)


def from_ms(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def _iso(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).isoformat() if moment is not None else None


def _moment(text: Any) -> datetime | None:
    return datetime.fromisoformat(text) if isinstance(text, str) and text else None


@dataclass(frozen=True)
class Cursor:
    mode: Mode = "idle"
    watermark: datetime | None = None
    swept: datetime | None = None
    high: datetime | None = None
    low: int | None = None
    phase: str = ""
    after: str | None = None
    last_id: str | None = None
    done: tuple[str, ...] = field(default=())

    def dump(self) -> str:
        data: dict[str, Any] = {"v": VERSION, **asdict(self)}
        for name in ("watermark", "swept", "high"):
            data[name] = _iso(getattr(self, name))
        data["done"] = list(self.done)
        return json.dumps({k: v for k, v in data.items() if v not in (None, "", [])},
                          separators=(",", ":"), sort_keys=True)

    @classmethod
    def load(cls, text: str | None, stream: str) -> Cursor:
        if not text:
            return cls()
        try:
            data = json.loads(text)
            return cls(mode=data.get("mode", "idle"), watermark=_moment(data.get("watermark")),
                       swept=_moment(data.get("swept")), high=_moment(data.get("high")),
                       low=data.get("low"), phase=data.get("phase", ""),
                       after=data.get("after"), last_id=data.get("last_id"),
                       done=tuple(data.get("done", ())))
        except (ValueError, TypeError, AttributeError) as error:
            raise ConnectorError(
                f"HubSpot cursor of stream {stream} is not readable ({error}): {text[:200]!r}. "
                "Run with --full to read the stream again.", system="hubspot",
                object_name=stream) from None

    def floor(self, moment: datetime) -> datetime:
        """`moment`, but never before the completed watermark (cursors never go back)."""
        return max(moment, self.watermark) if self.watermark is not None else moment

    def finished(self, high: datetime) -> Cursor:
        """The cursor once the read ending at `high` is complete."""
        return Cursor(mode="idle", watermark=self.floor(high), swept=self.swept)


def starting(cursor: Cursor, window: Window, *, backfill: bool) -> Cursor:
    """Where this run's read starts: a read in progress resumes; otherwise a backfill
    (never read, or `--full`), a re-read from `--since`, or the window behind the watermark.
    `backfill=False` streams (no list endpoint) read from the beginning of time instead."""
    if cursor.mode != "idle":
        return cursor
    run_start = window.run_start
    if cursor.watermark is None or window.full:
        if backfill:
            return replace(cursor, mode="backfill", high=run_start, phase="archived", after=None)
        return replace(cursor, mode="read", high=run_start, low=0, phase="")
    since = window.since if window.since is not None else cursor.watermark - window.lookback
    return replace(cursor, mode="read", high=run_start, low=to_ms(since), phase="")


def lookback_ms(window: Window) -> int:
    return int(window.lookback / timedelta(milliseconds=1))


def settle(stream: str, pages: Generator[Page, None, Cursor]) -> Iterator[Page]:
    """The pages of a read, ready for the core: the last one carries the final cursor (the
    read's end), a page with no records hands its calls to the next one instead of being
    yielded, and when a call fails the page in hand is still yielded (its cursor is its own
    resume point) before the error goes up."""
    held: Page | None = None
    carried = 0
    try:
        while True:
            try:
                page = next(pages)
            except StopIteration as stop:
                final: Cursor = stop.value
                break
            page = replace(page, calls=page.calls + carried)
            carried = 0
            if held is not None:
                yield held
                held = None
            if page.records:
                held = page
            else:
                carried = page.calls
    except SyncdError:
        if held is not None:
            yield held
        raise
    last = held or Page(stream=stream, records=(), cursor="", calls=carried)
    if held is not None:
        last = replace(last, calls=last.calls + carried)
    yield replace(last, cursor=final.dump(), watermark=final.watermark)
