"""JSON as the store writes it. Unified values may be `Decimal`s (money must not drift through
binary floats): they are written as JSON numbers and, where exactness matters (unified values
and what syncd wrote), read back as `Decimal`s, so a value compares equal to itself after a
round trip through the store."""

from __future__ import annotations

import json
from datetime import date, datetime
from decimal import Decimal
from typing import Any


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not storable as JSON")


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=_plain)


def loads_exact(text: str) -> Any:
    """JSON with its decimal numbers as `Decimal`s (unified values, written values)."""
    return json.loads(text, parse_float=Decimal)
