"""What every emulated HubSpot endpoint shares: the error it raises (`HubSpotError`, which
`emulator.py` answers in HubSpot's envelope) and the query arguments it reads.
"""

from __future__ import annotations

from typing import Any

from connectors.loopback import Request

LIST_MAX_LIMIT = 100


class HubSpotError(Exception):
    """An error answer: HTTP status, HubSpot category, message and extra envelope fields."""

    def __init__(self, status: int, category: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status, self.category, self.message, self.extra = status, category, message, extra


def int_arg(raw: Any, name: str) -> int:
    try:
        return int(str(raw))
    except ValueError:
        raise HubSpotError(400, "VALIDATION_ERROR", f"Invalid {name}: {raw!r} is not a number.")\
            from None


def limit_arg(request: Request, default: int, maximum: int) -> int:
    """The `limit` query parameter. Above the maximum HubSpot's behaviour is unconfirmed
    (reference 1.2 [verify]); the emulator serves the maximum, as reports describe."""
    raw = request.arg("limit")
    if raw in (None, ""):
        return default
    value = int_arg(raw, "limit")
    if value < 1:
        raise HubSpotError(400, "VALIDATION_ERROR", f"limit must be positive, got {value}.")
    return min(value, maximum)
