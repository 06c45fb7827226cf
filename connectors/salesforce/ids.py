"""Salesforce record ids: the 15- and 18-character forms, and minting fresh ones.

An 18-character id is a 15-character case-sensitive id plus a 3-character checksum of its case,
which makes it safe to compare case-insensitively (`to_id18`). `IdMaker` mints the org's ids.
"""

from __future__ import annotations

import re

_B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_SUFFIX = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
_ID_CHARS = re.compile(r"^[0-9A-Za-z]+$")


_UPPER_AS_BITS = str.maketrans(
    {c: "1" if "A" <= c <= "Z" else "0" for c in _B62}
)


def _checksum(id15: str) -> str:
    """The 3-character suffix that makes a 15-character id case-insensitive."""
    # Bit i of each 5-character block is set when character i is upper case; translate()
    # does the per-character work in C, which matters when seeding a million records.
    bits = id15.translate(_UPPER_AS_BITS)
    return (
        _SUFFIX[int(bits[4::-1], 2)] + _SUFFIX[int(bits[9:4:-1], 2)]
        + _SUFFIX[int(bits[14:9:-1], 2)]
    )


def to_id18(value: object) -> str | None:
    """The canonical 18-character id for a 15- or 18-character id, or None if malformed."""
    if not isinstance(value, str) or not _ID_CHARS.match(value):
        return None
    if len(value) == 15:
        return value + _checksum(value)
    if len(value) != 18:
        return None
    if value[15:] == _checksum(value[:15]):
        return value  # already canonical: what stored ids and most clients send
    # An 18-character id is case-insensitive: its suffix restores the case of the first 15.
    restored = []
    for block, suffix_char in enumerate(value[15:].upper()):
        bits = _SUFFIX.find(suffix_char)
        if bits < 0:
            return None
        for position, char in enumerate(value[block * 5 : block * 5 + 5]):
            upper = bool(bits & (1 << position))
            if upper and not char.isalpha():
                return None
            restored.append(char.upper() if upper else char.lower())
    id15 = "".join(restored)
    return id15 + _checksum(id15)


# Ids are minted once per record, a few million times when seeding a large org, so the low
# five base-62 digits (and the case bits the checksum needs) come from lookup tables.
_UPPER_DIGIT = tuple(int("A" <= c <= "Z") for c in _B62)
_PAIRS = tuple((_B62[a] + _B62[b], _UPPER_DIGIT[a] | _UPPER_DIGIT[b] << 1)
               for a in range(62) for b in range(62))
_LOW_SPAN = 62**5


class IdMaker:
    """Fresh 18-character ids, `{prefix}8c0` and a 9-digit base-62 counter shared by every
    prefix (as the emulator has always minted them), checksum included."""

    def __init__(self) -> None:
        self.counter = 0
        # (prefix, counter // 62**5) -> the first ten characters and their two suffix chars.
        self._heads: dict[tuple[str, int], tuple[str, str]] = {}

    def __call__(self, prefix: str) -> str:
        self.counter += 1
        high, low = divmod(self.counter, _LOW_SPAN)
        head = self._heads.get((prefix, high))
        if head is None:
            first_ten = f"{prefix}8c0{_base62(high, 4)}"
            head = self._heads[(prefix, high)] = (first_ten, _checksum(first_ten + "00000")[:2])
        first, rest = divmod(low, 3844 * 3844)
        middle, last = divmod(rest, 3844)
        middle_text, middle_bits = _PAIRS[middle]
        last_text, last_bits = _PAIRS[last]
        bits = _UPPER_DIGIT[first] | middle_bits << 1 | last_bits << 3
        return f"{head[0]}{_B62[first]}{middle_text}{last_text}{head[1]}{_SUFFIX[bits]}"


def _base62(number: int, width: int) -> str:
    digits = []
    while number:
        number, remainder = divmod(number, 62)
        digits.append(_B62[remainder])
    return "".join(reversed(digits)).rjust(width, "0")
