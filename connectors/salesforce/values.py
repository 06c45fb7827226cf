"""Field values in wire form, and `OrgError`, the refusal every org operation raises.

The wire form is the JSON the REST API answers: `str` for text, ids and picklists,
`"YYYY-MM-DD"` dates, `"2024-04-25T15:50:37.000+0000"` datetimes, numbers, booleans. `coerce`
brings a value from JSON, a CSV cell or Python seeding to that form, or raises the `OrgError`
the API answers for it (wire reference 2.5 and 2.10).
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from typing import Any

from connectors.loopback import utc_millis

from .schema import NUMBER_TYPES, STRING_TYPES, FieldSpec

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_DATETIME = re.compile(
    r"^(\d{4}-\d{2}-\d{2})T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,6}))?)?"
    r"\s*(Z|[+-]\d{2}:?\d{2})?$"
)


class OrgError(Exception):
    """A refused operation, as Salesforce reports it: an error code, a message, the fields."""

    def __init__(self, error_code: str, message: str, fields: list[str] | None = None) -> None:
        super().__init__(f"{error_code}: {message}")
        self.error_code = error_code
        self.message = message
        self.fields = fields or []

    @property
    def status(self) -> int:
        """The HTTP status the REST API answers this error with."""
        return 404 if self.error_code in ("NOT_FOUND", "ENTITY_IS_DELETED") else 400


# -- wire values ---------------------------------------------------------------------------


def wire_datetime(moment: datetime) -> str:
    """A datetime as the REST API writes it: UTC, milliseconds, `+0000` (naive is UTC)."""
    return utc_millis(moment, "+0000")


def parse_datetime(text: str) -> datetime | None:
    """An input datetime (`...Z`, `+HH:MM`, `+HHMM`, optional fraction) as aware UTC, or None."""
    found = _DATETIME.match(text.strip())
    if not found:
        return None
    day, hour, minute, second, fraction, zone = found.groups()
    try:
        moment = datetime.fromisoformat(f"{day}T{hour}:{minute}:{second or '00'}")
    except ValueError:
        return None
    moment = moment.replace(microsecond=int((fraction or "0").ljust(6, "0")), tzinfo=UTC)
    if zone and zone != "Z":
        sign = 1 if zone[0] == "+" else -1
        digits = zone[1:].replace(":", "")
        moment -= sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
    return moment


def _bad_type(spec: FieldSpec, value: object) -> OrgError:
    return OrgError(
        "INVALID_TYPE_ON_FIELD_IN_RECORD",
        f"{spec.label}: value not of required type: {value}",
        [spec.name],
    )


def coerce(spec: FieldSpec, value: object) -> Any:
    """A value from JSON, a CSV cell or Python seeding, converted to wire form for `spec`."""
    if value is None:
        return None
    kind = spec.type
    if kind in STRING_TYPES:
        return _coerce_text(spec, value)
    if kind == "boolean":
        return _coerce_boolean(spec, value)
    if kind == "int":
        number = _coerce_number(spec, value)
        if number != int(number):
            raise _bad_type(spec, value)
        return int(number)
    if kind in NUMBER_TYPES:
        return _coerce_number(spec, value)
    if kind == "date":
        return _coerce_date(spec, value)
    if kind == "datetime":
        return _coerce_datetime(spec, value)
    return value


def _coerce_text(spec: FieldSpec, value: object) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise _bad_type(spec, value)
    text = value if isinstance(value, str) else str(value)
    if spec.length and len(text) > spec.length:
        raise OrgError(
            "STRING_TOO_LONG",
            f"{spec.label}: data value too large: {text[:40]} (max length={spec.length})",
            [spec.name],
        )
    if spec.type == "email" and text and not _EMAIL.match(text):
        raise OrgError(
            "INVALID_EMAIL_ADDRESS", f"{spec.label}: invalid email address: {text}", [spec.name]
        )
    return text


def _coerce_boolean(spec: FieldSpec, value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise _bad_type(spec, value)


def _coerce_number(spec: FieldSpec, value: object) -> float | int:
    if isinstance(value, bool):
        raise _bad_type(spec, value)
    if isinstance(value, int | float):
        return value if spec.type == "int" else float(value)
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            raise _bad_type(spec, value) from None
        return number
    raise _bad_type(spec, value)


def _coerce_date(spec: FieldSpec, value: object) -> str:
    if isinstance(value, datetime):
        moment = value.astimezone(UTC) if value.tzinfo else value
        return moment.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, str) and _DATE.match(value):
        try:
            return date.fromisoformat(value).isoformat()
        except ValueError:
            pass
    raise _bad_type(spec, value)


def _coerce_datetime(spec: FieldSpec, value: object) -> str:
    if isinstance(value, datetime):
        return wire_datetime(value)
    if isinstance(value, date):
        return f"{value.isoformat()}T00:00:00.000+0000"
    if isinstance(value, str):
        moment = parse_datetime(value)
        if moment is not None:
            return wire_datetime(moment)
    raise _bad_type(spec, value)
