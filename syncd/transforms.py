"""Named transforms: how one kind of value is compared and written on each side.

A mapping file names a transform per field (`transform = "email"`). Each transform turns what
a CRM sends into syncd's unified form (`normalize`), and the unified form into what each CRM
expects (`to_hubspot`, `to_salesforce`). Two values are the same when their unified forms are
equal, so `normalize` must be idempotent and the wire forms must read back to the same value.

Unified forms: email, domain and phone are `str`; date is `datetime.date`; number is a
`Decimal` in canonical form (no exponent, no trailing zeros), which is exact for currency. A
blank input (None, empty or whitespace only) is None in every transform. Values that cannot be
understood: email keeps them as they are (flagged by `is_valid_email`), domain answers None,
date and number raise `ValueError` with the value seen: reconcile leaves that value out and logs
it with the record and field (`event=value_problem`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Protocol

__all__ = [
    "TRANSFORMS",
    "DateTransform",
    "DomainTransform",
    "EmailTransform",
    "NumberTransform",
    "PhoneTransform",
    "Transform",
    "is_valid_email",
    "transform_named",
]


class Transform(Protocol):
    """What every named transform offers."""

    @property
    def name(self) -> str:
        """The name a mapping file uses (`transform = "email"`)."""
        ...

    def normalize(self, value: Any) -> Any:
        """The unified form of a value read from either system."""
        ...

    def to_hubspot(self, value: Any, property_type: str = "string") -> Any:
        """The unified value as HubSpot expects it for a property of `property_type`."""
        ...

    def to_salesforce(self, value: Any) -> Any:
        """The unified value as Salesforce expects it."""
        ...


def _text(value: Any) -> str | None:
    """The value as stripped text, or None when it is blank."""
    if value is None:
        return None
    text = value if isinstance(value, str) else str(value)
    text = text.strip()
    return text or None


# -- email --

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def is_valid_email(value: Any) -> bool:
    """True for a plausible address: one @, a local part, a dotted domain, no spaces/controls.

    Deliberately loose (RFC 5322 allows far more): it only flags values a CRM would refuse, so
    the caller can report them instead of sending them.
    """
    if not isinstance(value, str) or _CONTROL.search(value) or re.search(r"\s", value):
        return False
    local, at, domain = value.partition("@")
    if not at or not local or "@" in domain:
        return False
    labels = domain.split(".")
    return len(labels) >= 2 and all(labels)


@dataclass(frozen=True)
class EmailTransform:
    """Lower-cased and trimmed. Invalid addresses are kept as they are, never dropped."""

    name: str = "email"

    def normalize(self, value: Any) -> str | None:
        text = _text(value)
        return None if text is None else text.lower()

    def to_hubspot(self, value: Any, property_type: str = "string") -> str | None:
        return self.normalize(value)

    def to_salesforce(self, value: Any) -> str | None:
        return self.normalize(value)


# -- domain --

_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
# Full stops a user may type in a unicode domain (IDNA treats them as ".").
_DOTS = str.maketrans({"\u3002": ".", "\uff0e": ".", "\uff61": "."})


def _host_of(text: str) -> str:
    """The host part of a URL-ish text: no scheme, user, path, query, fragment or port."""
    text = re.sub(r"^[a-z][a-z0-9+.-]*://", "", text).removeprefix("//")
    text = re.split(r"[/?#\\]", text, maxsplit=1)[0]
    text = text.rpartition("@")[2]
    return re.sub(r":\d*$", "", text)


def _ascii_label(label: str) -> str | None:
    """The label in ASCII (punycode for unicode), or None if it is not a valid DNS label."""
    if not label.isascii():
        try:
            label = label.encode("idna").decode("ascii")
        except UnicodeError:
            return None
    return label if _LABEL.match(label) else None


@dataclass(frozen=True)
class DomainTransform:
    """A company's domain, from a bare domain or a website URL (ARCHITECTURE section 5).

    Lower-cased; scheme, `www.`, port, path, query and trailing dots stripped; other
    subdomains kept. Unicode domains are stored in their ASCII (punycode) form, so that
    `münchen.de` and `xn--mnchen-3ya.de` are one domain and what syncd writes is a valid
    hostname everywhere. Anything that is not a dotted hostname afterwards is None.
    """

    name: str = "domain"

    def normalize(self, value: Any) -> str | None:
        text = _text(value)
        if text is None:
            return None
        host = _host_of(text.lower().translate(_DOTS)).rstrip(".")
        labels = [_ascii_label(label) for label in host.split(".")]
        if len(labels) < 2 or any(label is None for label in labels):
            return None
        # `www.` goes, but never down to a single label (`www.com` is a domain of its own).
        while labels[0] == "www" and len(labels) > 2:
            labels = labels[1:]
        domain = ".".join(str(label) for label in labels)
        return domain if len(domain) <= 253 else None

    def to_hubspot(self, value: Any, property_type: str = "string") -> str | None:
        return self.normalize(value)

    def to_salesforce(self, value: Any) -> str | None:
        return self.normalize(value)


# -- phone --


@dataclass(frozen=True)
class PhoneTransform:
    """Trimmed, with runs of whitespace collapsed to one space; the digits are left alone.

    syncd does not reformat numbers (E.164 or otherwise): without knowing each number's
    country, a reformat can corrupt extensions and local numbers, and a corrupted phone
    number is worse than an inconsistently formatted one.
    """

    name: str = "phone"

    def normalize(self, value: Any) -> str | None:
        text = _text(value)
        return None if text is None else " ".join(text.split())

    def to_hubspot(self, value: Any, property_type: str = "string") -> str | None:
        return self.normalize(value)

    def to_salesforce(self, value: Any) -> str | None:
        return self.normalize(value)


# -- date --

_EPOCH_MS = re.compile(r"^-?\d{9,}$")


def _date_of_epoch_ms(value: float) -> date:
    try:
        return datetime.fromtimestamp(value / 1000, UTC).date()
    except (OverflowError, OSError, ValueError):
        raise ValueError(f"{value!r} is out of range for epoch milliseconds") from None


def _date_of_text(text: str) -> date:
    if _EPOCH_MS.match(text):
        return _date_of_epoch_ms(int(text))
    try:
        if len(text) == 10:
            return date.fromisoformat(text)
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"{text!r} is not a date (expected YYYY-MM-DD, an ISO datetime or epoch milliseconds)"
        ) from None
    return moment.astimezone(UTC).date() if moment.tzinfo else moment.date()


@dataclass(frozen=True)
class DateTransform:
    """A calendar date. Reads `YYYY-MM-DD`, ISO datetimes (taken in UTC) and epoch ms.

    HubSpot `date` properties get `YYYY-MM-DD`; `datetime` properties (deal `closedate`) get
    midnight UTC as epoch milliseconds, the form HubSpot documents for both. Salesforce date
    fields get `YYYY-MM-DD`.
    """

    name: str = "date"

    def normalize(self, value: Any) -> date | None:
        if isinstance(value, datetime):
            return value.astimezone(UTC).date() if value.tzinfo else value.date()
        if isinstance(value, date):
            return value
        if isinstance(value, int | float) and not isinstance(value, bool):
            return _date_of_epoch_ms(value)
        text = _text(value)
        return None if text is None else _date_of_text(text)

    def to_hubspot(self, value: Any, property_type: str = "date") -> str | None:
        day = self.normalize(value)
        if day is None:
            return None
        if property_type == "datetime":
            midnight = datetime(day.year, day.month, day.day, tzinfo=UTC)
            return str(int(midnight.timestamp()) * 1000)
        return day.isoformat()

    def to_salesforce(self, value: Any) -> str | None:
        day = self.normalize(value)
        return None if day is None else day.isoformat()


# -- number --

_NUMBER = re.compile(r"^[+-]?(?:\d{1,3}(?:,\d{3})+|\d+)?(?:\.\d+)?(?:[eE][+-]?\d+)?$")


def _canonical(number: Decimal) -> Decimal:
    """One spelling per value: 1234.50 -> 1234.5, 1E+3 -> 1000, -0 -> 0."""
    if not number.is_finite():
        raise ValueError(f"{number} is not a finite number")
    try:
        number = number.normalize()
        if number.as_tuple().exponent > 0:  # type: ignore[operator]
            number = number.quantize(Decimal(1))
    except InvalidOperation:  # more digits than Decimal's context holds
        raise ValueError(f"{number} is too large a number") from None
    return number if number else Decimal(0)


@dataclass(frozen=True)
class NumberTransform:
    """A number as an exact `Decimal`. Reads `1,234.50`, `1234.5`, 1234.5 and 1234.

    Decimal, not float, so that currency compares and round-trips exactly; floats from JSON
    are read through their shortest repr (`0.1` is 0.1, not 0.1000000000000000055...).
    HubSpot gets the number as text, Salesforce as a JSON number (int when whole).
    """

    name: str = "number"

    def normalize(self, value: Any) -> Decimal | None:
        if isinstance(value, bool):
            raise ValueError(f"{value!r} is a yes/no value, not a number")
        if isinstance(value, Decimal):
            return _canonical(value)
        if isinstance(value, int | float):
            return _canonical(Decimal(repr(value)))
        text = _text(value)
        if text is None:
            return None
        if not _NUMBER.match(text) or not any(ch.isdigit() for ch in text):
            raise ValueError(
                f"{text!r} is not a number (expected digits such as 1234.50, "
                f"with optional thousands commas)"
            )
        return _canonical(Decimal(text.replace(",", "")))

    def to_hubspot(self, value: Any, property_type: str = "number") -> str | None:
        number = self.normalize(value)
        return None if number is None else format(number, "f")

    def to_salesforce(self, value: Any) -> int | float | None:
        number = self.normalize(value)
        if number is None:
            return None
        return int(number) if number == number.to_integral_value() else float(number)


TRANSFORMS: Mapping[str, Transform] = {
    transform.name: transform
    for transform in (
        EmailTransform(),
        DomainTransform(),
        PhoneTransform(),
        DateTransform(),
        NumberTransform(),
    )
}


def transform_named(name: str) -> Transform:
    """The transform a mapping file names; KeyError for an unknown name (validated earlier)."""
    return TRANSFORMS[name]
