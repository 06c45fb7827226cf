"""Bulk API 2.0 CSV for the Salesforce connector, both ways.

Query results come back as CSV with every value a string: `_typed_rows` types them back, by the
object's describe, to the values REST would answer, one row at a time as they are taken.
Ingest jobs take CSV: `_ingest_csv` writes a batch of changes, with Bulk's own spellings for an
untouched field (an empty cell) and a cleared one (`#N/A`).
"""

from __future__ import annotations

import csv
import io
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from connectors.salesforce.cursor import _parse_instant
from syncd.model import Change

_BOOLEAN = frozenset({"boolean"})
_INTEGER = frozenset({"int", "long"})
_DECIMAL = frozenset({"double", "currency", "percent"})


class _Rows(Iterator[dict[str, Any]]):
    """An iterator that can be asked whether another item follows without losing it."""

    def __init__(self, items: Iterator[dict[str, Any]]) -> None:
        self._items = items
        self._held: deque[dict[str, Any]] = deque()

    def __next__(self) -> dict[str, Any]:
        return self._held.popleft() if self._held else next(self._items)

    def exhausted(self) -> bool:
        if not self._held:
            following = next(self._items, None)
            if following is None:
                return True
            self._held.append(following)
        return False


def _typed_rows(text: str, types: Mapping[str, str]) -> _Rows:
    """Bulk CSV rows with the values REST would answer: booleans, numbers, nulls, datetimes;
    typed one at a time as they are taken (a results call's CSV is stored in slices)."""
    reader = csv.reader(_lines(text))
    header = next(reader, None)
    if header is None:
        return _Rows(iter(()))
    casts = [_cast(types.get(name, "string")) for name in header]
    return _Rows(
        {name: cast(cell) for name, cast, cell in zip(header, casts, row, strict=True)}
        for row in reader if row
    )


def _lines(text: str) -> Iterator[str]:
    """The text's lines, their ends kept, one at a time: what `csv.reader` needs, without
    `io.StringIO`'s copy of the whole text at four bytes a character."""
    start, size = 0, len(text)
    while start < size:
        end = text.find("\n", start) + 1 or size
        yield text[start:end]
        start = end


def _cast(kind: str) -> Callable[[str], Any]:
    def cast(cell: str) -> Any:
        if cell == "":
            return None  # Bulk writes null as an empty field
        if kind in _BOOLEAN:
            return cell.lower() == "true"
        if kind in _INTEGER:
            return int(float(cell))
        if kind in _DECIMAL:
            return float(cell)
        if kind == "datetime":
            return _rest_datetime(cell)
        return cell

    return cast


def _rest_datetime(text: str) -> str:
    """A datetime in REST's own form, `2024-04-25T15:50:37.000+0000` (Bulk may answer `Z`)."""
    # isoformat pads every year to four digits; strftime's %Y does not.
    return _parse_instant(text).isoformat(timespec="milliseconds")[:23] + "+0000"


def _ingest_csv(batch: Sequence[Change], key_column: str, columns: list[str]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for change in batch:
        values = dict(change.fields)
        values[key_column] = change.id if key_column == "Id" else change.key
        writer.writerow([_ingest_cell(values, name) for name in columns])
    return out.getvalue()


def _ingest_cell(values: Mapping[str, Any], name: str) -> str:
    if name not in values:
        return ""  # an empty cell leaves the field as it is
    value = values[name]
    if value is None:
        return "#N/A"  # Bulk's way to clear a field
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
