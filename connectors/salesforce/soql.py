"""The SOQL subset the Salesforce emulator answers: the parsed query, its parts and its errors.

A query passes through the modules next to this one. `soql_parser.parse(text)` turns it into a
`Query` or raises `SoqlError` carrying Salesforce's error code and its caret-pointing message
(wire reference 2.2). `Query.bind(field_types)` (`soql_binding`) checks every field and literal
against an sObject's describe and compiles the WHERE clause once into nested closures
(`soql_predicates`), so that `BoundQuery.matches` costs a few dictionary look-ups per record
however large the org. `BoundQuery.order` applies ORDER BY, OFFSET and LIMIT;
`BoundQuery.project` answers the selected fields under their canonical names.

Datetimes are held as canonical UTC text ("2024-04-25T15:50:37.000+0000", `_format_instant`),
whose lexical order is the time order, so that they compare as instants.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from .soql_binding import BoundQuery

Record = Mapping[str, Any]
Predicate = Callable[[Record], bool]
ParentResolver = Callable[[str, Record], Record | None]
"""Given a relationship's canonical name ("Account") and a child record, the parent or None."""

_UNKNOWN_TYPE_HINT: Final = (
    "If you are attempting to use a custom object, be sure to append the '__c' after the entity "
    "name. Please reference your WSDL or the describe call for the appropriate names."
)


class SoqlError(Exception):
    """A query Salesforce would refuse: `error_code` and `message` make its 400 error envelope."""

    def __init__(self, error_code: str, message: str) -> None:
        super().__init__(f"{error_code}: {message}")
        self.error_code = error_code
        self.message = message


def _located(code: str, text: str, offset: int, detail: str) -> SoqlError:
    """Salesforce's error shape: the query line, a caret, "ERROR at Row:r:Column:c", the text."""
    line_start = text.rfind("\n", 0, offset) + 1
    line_end = text.find("\n", offset)
    line = text[line_start : line_end if line_end >= 0 else len(text)]
    row = text.count("\n", 0, offset) + 1
    column = offset - line_start + 1
    caret = " " * (column - 1) + "^"
    return SoqlError(code, f"\n{line}\n{caret}\nERROR at Row:{row}:Column:{column}\n{detail}")


# --------------------------------------------------------------------------- syntax tree


@dataclass(frozen=True)
class Literal:
    """A value written in the query. `value` by kind: string -> str (escapes decoded),
    number -> int | float, boolean -> bool, null -> None, date -> date, datetime -> the
    instant as canonical UTC text, date_range -> (name, n)."""

    kind: str
    value: Any
    offset: int
    text: str
    like_pattern: str = ""  # regex source for LIKE: \% and \_ escape wildcards only there


@dataclass(frozen=True)
class FieldRef:
    name: str  # as written
    offset: int


@dataclass(frozen=True)
class Comparison:
    """`field op value`; op is one of = != < <= > >= LIKE IN "NOT IN" INCLUDES EXCLUDES."""

    field: FieldRef
    op: str
    values: tuple[Literal, ...]


@dataclass(frozen=True)
class Not:
    operand: Condition


@dataclass(frozen=True)
class And:
    operands: tuple[Condition, ...]


@dataclass(frozen=True)
class Or:
    operands: tuple[Condition, ...]


Condition = Comparison | Not | And | Or


def _condition_fields(condition: Condition) -> Iterable[FieldRef]:
    if isinstance(condition, Comparison):
        yield condition.field
    elif isinstance(condition, Not):
        yield from _condition_fields(condition.operand)
    else:
        for operand in condition.operands:
            yield from _condition_fields(operand)


@dataclass(frozen=True)
class OrderTerm:
    """One ORDER BY key. `nulls_last=None` means SOQL's default and is resolved at construction:
    ASC puts nulls first, DESC puts them last; afterwards it is always a bool."""

    field: str
    descending: bool = False
    nulls_last: bool | None = None
    field_offset: int = dataclass_field(default=0, compare=False)  # where the field is written

    def __post_init__(self) -> None:
        if self.nulls_last is None:
            object.__setattr__(self, "nulls_last", self.descending)


@dataclass(frozen=True)
class Query:
    """A parsed query, not yet checked against any describe."""

    text: str
    sobject: str  # as written in FROM
    fields: tuple[str, ...]  # the select list as written; empty when count_only
    count_only: bool
    order_by: tuple[OrderTerm, ...]
    limit: int | None
    offset: int | None
    where: Condition | None = None
    sobject_offset: int = 0
    field_offsets: tuple[int, ...] = ()

    def referenced_fields(self) -> set[str]:
        """Every field name the query mentions (select list, WHERE, ORDER BY), as written."""
        names = set(self.fields) | {term.field for term in self.order_by}
        if self.where is not None:
            names |= {ref.name for ref in _condition_fields(self.where)}
        return names

    def invalid_type_error(self) -> SoqlError:
        """The INVALID_TYPE error Salesforce answers when FROM names an unknown sObject."""
        detail = f"sObject type '{self.sobject}' is not supported. {_UNKNOWN_TYPE_HINT}"
        return _located("INVALID_TYPE", self.text, self.sobject_offset, detail)

    def bind(
        self,
        field_types: Mapping[str, str],
        *,
        now: datetime | None = None,
        relationships: Mapping[str, Relationship] | None = None,
        resolve_parent: ParentResolver | None = None,
    ) -> BoundQuery:
        """Check the query against a describe and compile it.

        `field_types` maps each API field name to its describe type. `now` anchors TODAY and
        LAST_N_DAYS:n (default: the current UTC time). `relationships` maps relationship names
        ("Account") to the parent's describe; without it a dotted field is accepted when its
        reference field exists ("AccountId", "Foo__c" for "Foo__r") and reads as the parent's
        value from `resolve_parent`, or None when no resolver is given.
        """
        from .soql_binding import _Binder  # soql_binding imports this module

        binder = _Binder(self, field_types, now, relationships, resolve_parent)
        return binder.bind()


@dataclass(frozen=True)
class Relationship:
    """A parent reachable from the queried object, e.g. `Account` on Contact."""

    sobject: str
    field_types: Mapping[str, str]


# --------------------------------------------------------------------------- values


def _format_instant(moment: datetime) -> str:
    """The canonical wire text of an instant: UTC, milliseconds, "+0000"."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)  # Salesforce never sends naive datetimes
    m = moment.astimezone(UTC)
    return (
        f"{m.year:04d}-{m.month:02d}-{m.day:02d}T{m.hour:02d}:{m.minute:02d}:{m.second:02d}"
        f".{m.microsecond // 1000:03d}+0000"
    )
