"""The SOQL subset the Salesforce emulator answers: tokenizer, parser and evaluator.

`parse(text)` turns a query into a `Query` or raises `SoqlError` carrying Salesforce's error
code and its caret-pointing message (wire reference 2.2). `Query.bind(field_types)` checks every
field and literal against an sObject's describe and compiles the WHERE clause once into nested
closures, so that `BoundQuery.matches` costs a few dictionary look-ups per record however large
the org. `BoundQuery.order` applies ORDER BY, OFFSET and LIMIT; `BoundQuery.project` answers the
selected fields under their canonical names.

Records are held in Salesforce's wire form: text as str, dates "2024-04-25", datetimes
"2024-04-25T15:50:37.000+0000" (always UTC), numbers as int/float, checkboxes as bool, null as
None. Datetimes are compared as instants by bringing both sides to that canonical UTC text,
whose lexical order is the time order.

Supported: `SELECT f, ... | COUNT() FROM Obj [WHERE ...] [ORDER BY f [ASC|DESC]
[NULLS FIRST|LAST], ...] [LIMIT n] [OFFSET n]`; AND, OR, NOT, parentheses; `= != <> < <= > >=`,
LIKE, IN, NOT IN, INCLUDES, EXCLUDES; literals: strings, numbers, true/false, null, dates,
datetimes, TODAY, YESTERDAY, TOMORROW, LAST_N_DAYS:n, NEXT_N_DAYS:n. One level of parent
relationship (`Account.Name`). Anything else (aggregates other than COUNT(), GROUP BY,
sub-queries, semi-joins, bind variables, TYPEOF, FIELDS(), WITH, FOR UPDATE) is answered
MALFORMED_QUERY, as Salesforce answers text it cannot parse.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from datetime import UTC, date, datetime, timedelta
from itertools import islice
from typing import Any, Final

Record = Mapping[str, Any]
Predicate = Callable[[Record], bool]
ParentResolver = Callable[[str, Record], Record | None]
"""Given a relationship's canonical name ("Account") and a child record, the parent or None."""

MAX_OFFSET: Final = 2000
"""Salesforce refuses a larger OFFSET with NUMBER_OUTSIDE_VALID_RANGE."""

_MAX_NESTING: Final = 100  # keeps hostile "((((..." text from exhausting the Python stack

# Salesforce's reserved words; none of them may name a field or an object.
_RESERVED: Final = frozenset(
    {
        "AND",
        "ASC",
        "DESC",
        "EXCLUDES",
        "FIRST",
        "FROM",
        "GROUP",
        "HAVING",
        "IN",
        "INCLUDES",
        "LAST",
        "LIKE",
        "LIMIT",
        "NOT",
        "NULL",
        "NULLS",
        "OR",
        "SELECT",
        "WHERE",
        "WITH",
    }
)
# Relative date literals; the value says whether the literal takes ":n".
_DATE_RANGES: Final = {
    "TODAY": False,
    "YESTERDAY": False,
    "TOMORROW": False,
    "LAST_N_DAYS": True,
    "NEXT_N_DAYS": True,
}
_ESCAPES: Final = {
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "b": "\b",
    "f": "\f",
    '"': '"',
    "'": "'",
    "\\": "\\",
}
_UNKNOWN_FIELD_HINT: Final = (
    "If you are attempting to use a custom field, be sure to append the '__c' after the custom "
    "field name. Please reference your WSDL or the describe call for the appropriate names."
)
_UNKNOWN_RELATIONSHIP_HINT: Final = (
    "If you are attempting to use a custom relationship, be sure to append the '__r' after the "
    "custom relationship name. Please reference your WSDL or the describe call for the "
    "appropriate names."
)
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


# --------------------------------------------------------------------------- tokens

_TOKEN: Final = re.compile(
    r"""
    (?P<space>\s+)
    |(?P<datetime>[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]+)?
                  (?:Z|[+-][0-9]{2}:[0-9]{2}))
    |(?P<date>[0-9]{4}-[0-9]{2}-[0-9]{2})
    |(?P<number>-?(?:[0-9]+(?:\.[0-9]+)?|\.[0-9]+))
    |(?P<word>[A-Za-z][A-Za-z0-9_]*(?:\.[A-Za-z][A-Za-z0-9_]*)*)
    |(?P<string>'(?:[^'\\]|\\.)*')
    |(?P<op><=|>=|!=|<>|=|<|>)
    |(?P<punct>[(),:])
    """,
    re.VERBOSE | re.ASCII | re.DOTALL,
)


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # word | string | number | date | datetime | op | punct | eof
    text: str
    offset: int

    @property
    def word(self) -> str:
        """The upper-cased keyword this token spells, or "" when it is not a word."""
        return self.text.upper() if self.kind == "word" else ""


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    position = 0
    while position < len(text):
        found = _TOKEN.match(text, position)
        if found is None:
            detail = (
                "unterminated string literal"
                if text[position] == "'"
                else f"unexpected token: {text[position]}"
            )
            raise _located("MALFORMED_QUERY", text, position, detail)
        kind = found.lastgroup or "space"
        if kind != "space":
            tokens.append(_Token(kind, found.group(), position))
        position = found.end()
    tokens.append(_Token("eof", "<EOF>", len(text)))
    return tokens


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
        binder = _Binder(self, field_types, now, relationships, resolve_parent)
        return binder.bind()


@dataclass(frozen=True)
class Relationship:
    """A parent reachable from the queried object, e.g. `Account` on Contact."""

    sobject: str
    field_types: Mapping[str, str]


# --------------------------------------------------------------------------- parser


def parse(text: str) -> Query:
    """Parse SOQL text; raises SoqlError("MALFORMED_QUERY", ...) for anything outside the subset."""
    return _Parser(text).query()


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokenize(text)
        self.position = 0
        self.depth = 0

    # -- token cursor

    def peek(self, ahead: int = 0) -> _Token:
        return self.tokens[min(self.position + ahead, len(self.tokens) - 1)]

    def take(self) -> _Token:
        token = self.peek()
        if token.kind != "eof":
            self.position += 1
        return token

    def accept_word(self, word: str) -> bool:
        if self.peek().word == word:
            self.position += 1
            return True
        return False

    def accept_punct(self, punct: str) -> bool:
        token = self.peek()
        if token.kind == "punct" and token.text == punct:
            self.position += 1
            return True
        return False

    def expect_word(self, word: str) -> _Token:
        token = self.take()
        if token.word != word:
            raise self.unexpected(token)
        return token

    def expect_punct(self, punct: str) -> None:
        if not self.accept_punct(punct):
            raise self.unexpected(self.peek())

    def unexpected(self, token: _Token) -> SoqlError:
        detail = f"unexpected token: {token.text}"
        return _located("MALFORMED_QUERY", self.text, token.offset, detail)

    def nest(self, token: _Token) -> None:
        self.depth += 1
        if self.depth > _MAX_NESTING:
            raise _located("MALFORMED_QUERY", self.text, token.offset, "query is nested too deeply")

    # -- clauses

    def query(self) -> Query:
        self.expect_word("SELECT")
        count_only, fields = self.select_list()
        self.expect_word("FROM")
        sobject = self.take()
        if sobject.kind != "word" or "." in sobject.text or sobject.word in _RESERVED:
            raise self.unexpected(sobject)
        where = self.condition() if self.accept_word("WHERE") else None
        order_by = self.order_by()
        limit = self.count_clause("LIMIT")
        offset = self.count_clause("OFFSET")
        if self.peek().kind != "eof":
            raise self.unexpected(self.peek())
        return Query(
            text=self.text,
            sobject=sobject.text,
            fields=tuple(ref.name for ref in fields),
            count_only=count_only,
            order_by=order_by,
            limit=limit,
            offset=offset,
            where=where,
            sobject_offset=sobject.offset,
            field_offsets=tuple(ref.offset for ref in fields),
        )

    def select_list(self) -> tuple[bool, list[FieldRef]]:
        if self.peek().word == "COUNT" and self.peek(1).text == "(":
            self.position += 2
            self.expect_punct(")")
            return True, []
        fields = [self.field_ref()]
        while self.accept_punct(","):
            fields.append(self.field_ref())
        seen: set[str] = set()
        for ref in fields:
            if ref.name.lower() in seen:
                detail = f"duplicate field selected: {ref.name}"
                raise _located("MALFORMED_QUERY", self.text, ref.offset, detail)
            seen.add(ref.name.lower())
        return False, fields

    def field_ref(self) -> FieldRef:
        token = self.take()
        if token.kind != "word" or token.word in _RESERVED:
            raise self.unexpected(token)
        return FieldRef(token.text, token.offset)

    def order_by(self) -> tuple[OrderTerm, ...]:
        if not (self.peek().word == "ORDER" and self.peek(1).word == "BY"):
            return ()
        self.position += 2
        terms = [self.order_term()]
        while self.accept_punct(","):
            terms.append(self.order_term())
        return tuple(terms)

    def order_term(self) -> OrderTerm:
        ref = self.field_ref()
        descending = False
        if self.peek().word in ("ASC", "DESC"):
            descending = self.take().word == "DESC"
        nulls_last = None
        if self.accept_word("NULLS"):
            token = self.take()
            if token.word not in ("FIRST", "LAST"):
                raise self.unexpected(token)
            nulls_last = token.word == "LAST"
        return OrderTerm(ref.name, descending, nulls_last, ref.offset)

    def count_clause(self, word: str) -> int | None:
        if not self.accept_word(word):
            return None
        token = self.take()
        if token.kind != "number" or not token.text.isdigit() or len(token.text) > 18:
            raise self.unexpected(token)
        value = int(token.text)
        if word == "OFFSET" and value > MAX_OFFSET:
            raise SoqlError(
                "NUMBER_OUTSIDE_VALID_RANGE", f"Maximum SOQL offset allowed is {MAX_OFFSET}"
            )
        return value

    # -- WHERE

    def condition(self) -> Condition:
        self.nest(self.peek())
        first = self.term()
        joiner = self.peek().word
        if joiner not in ("AND", "OR"):
            self.depth -= 1
            return first
        operands = [first]
        while self.accept_word(joiner):
            operands.append(self.term())
        if self.peek().word in ("AND", "OR"):
            # SOQL has no precedence between AND and OR: mixing them needs parentheses.
            raise self.unexpected(self.peek())
        self.depth -= 1
        return And(tuple(operands)) if joiner == "AND" else Or(tuple(operands))

    def term(self) -> Condition:
        token = self.peek()
        if self.accept_word("NOT"):
            self.nest(token)
            negated = Not(self.term())
            self.depth -= 1
            return negated
        if self.accept_punct("("):
            inner = self.condition()
            self.expect_punct(")")
            return inner
        return self.field_expression()

    def field_expression(self) -> Comparison:
        ref = self.field_ref()
        token = self.take()
        if token.kind == "op":
            op = "!=" if token.text == "<>" else token.text
            return Comparison(ref, op, (self.value(),))
        if token.word == "NOT" and self.peek().word == "IN":
            self.position += 1
            return Comparison(ref, "NOT IN", self.value_list())
        if token.word in ("IN", "INCLUDES", "EXCLUDES"):
            return Comparison(ref, token.word, self.value_list())
        if token.word == "LIKE":
            return Comparison(ref, "LIKE", (self.value(),))
        raise self.unexpected(token)

    def value_list(self) -> tuple[Literal, ...]:
        self.expect_punct("(")
        values = [self.value()]
        while self.accept_punct(","):
            values.append(self.value())
        self.expect_punct(")")
        return tuple(values)

    def value(self) -> Literal:
        token = self.take()
        if token.kind == "string":
            text, pattern = _decode_string(token, self.text)
            return Literal("string", text, token.offset, token.text, pattern)
        if token.kind == "number":
            return Literal("number", self.number(token), token.offset, token.text)
        if token.kind in ("date", "datetime"):
            return Literal(token.kind, self.moment(token), token.offset, token.text)
        word = token.word
        if word in ("TRUE", "FALSE"):
            return Literal("boolean", word == "TRUE", token.offset, token.text)
        if word == "NULL":
            return Literal("null", None, token.offset, token.text)
        if word in _DATE_RANGES:
            return self.date_range(token)
        raise self.unexpected(token)

    def number(self, token: _Token) -> int | float:
        try:
            return float(token.text) if "." in token.text else int(token.text)
        except ValueError:  # more digits than Python converts (sys.get_int_max_str_digits)
            raise self.unexpected(token) from None

    def moment(self, token: _Token) -> date | str:
        try:
            if token.kind == "date":
                return date.fromisoformat(token.text)
            return _format_instant(datetime.fromisoformat(token.text))
        except (ValueError, OverflowError):
            detail = f"invalid {'date' if token.kind == 'date' else 'dateTime'}: {token.text}"
            raise _located("MALFORMED_QUERY", self.text, token.offset, detail) from None

    def date_range(self, token: _Token) -> Literal:
        days = 0
        text = token.text
        if _DATE_RANGES[token.word]:
            self.expect_punct(":")
            count = self.take()
            if count.kind != "number" or not count.text.isdigit() or len(count.text) > 9:
                raise self.unexpected(count)
            days = int(count.text)
            text = f"{token.text}:{count.text}"
        return Literal("date_range", (token.word, days), token.offset, text)


def _decode_string(token: _Token, text: str) -> tuple[str, str]:
    """The literal's value and its LIKE regex; Salesforce's escapes, anything else refused."""
    body = token.text[1:-1]
    value: list[str] = []
    pattern: list[str] = []
    index = 0
    while index < len(body):
        char = body[index]
        index += 1
        if char != "\\":
            value.append(char)
            pattern.append(".*" if char == "%" else "." if char == "_" else re.escape(char))
            continue
        escaped = body[index]  # the tokenizer guarantees a character after each backslash
        index += 1
        if escaped in "%_":
            literal = escaped  # only meaningful in LIKE; elsewhere it stands for the character
        elif escaped.lower() in _ESCAPES:
            literal = _ESCAPES[escaped.lower()]
        else:
            detail = f"Invalid string literal {token.text}. Illegal escape sequence '\\{escaped}'"
            raise _located("MALFORMED_QUERY", text, token.offset, detail)
        value.append(literal)
        pattern.append(re.escape(literal))
    return "".join(value), "".join(pattern)


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


def _instant_key(value: Any) -> str | None:
    # Fast path: the emulator stores exactly the canonical form, so most values pass untouched.
    if isinstance(value, str) and len(value) == 28 and value.endswith("+0000"):
        return value
    try:
        moment = value if isinstance(value, datetime) else datetime.fromisoformat(value)
        return _format_instant(moment)
    except (TypeError, ValueError, OverflowError):
        return None


def _date_key(value: Any) -> str | None:
    if isinstance(value, str):
        return value[:10]
    return value.isoformat()[:10] if isinstance(value, date) else None


def _text_key(value: Any) -> str:
    return value.lower() if isinstance(value, str) else str(value).lower()


def _id_key(value: Any) -> str:
    # An 18-character id is its 15-character case-sensitive id plus a checksum of the case, so
    # either spelling of one record compares equal.
    text = value if isinstance(value, str) else str(value)
    return text[:15] if len(text) == 18 else text


def _multi_key(value: Any) -> frozenset[str]:
    return frozenset(part.strip().lower() for part in str(value).split(";") if part.strip())


def _number_key(value: Any) -> int | float | None:
    if isinstance(value, int | float):
        return value
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


# Field kind by describe type; types not listed (address, base64, ...) behave as text.
_KIND_BY_TYPE: Final = {
    "id": "id",
    "reference": "id",
    "multipicklist": "multi",
    "boolean": "boolean",
    "date": "date",
    "datetime": "datetime",
    "currency": "number",
    "double": "number",
    "percent": "number",
    "int": "number",
    "long": "number",
}
_KEYS: Final[dict[str, Callable[[Any], Any]]] = {
    "text": _text_key,
    "id": _id_key,
    "multi": _multi_key,
    "number": _number_key,
    "boolean": bool,
    "date": _date_key,
    "datetime": _instant_key,
}
_LITERAL_KINDS: Final = {
    "text": {"string"},
    "id": {"string"},
    "multi": {"string"},
    "number": {"number"},
    "boolean": {"boolean"},
    "date": {"date", "date_range"},
    "datetime": {"datetime", "date_range"},
}
_TYPE_WORDS: Final = {
    "text": "string",
    "id": "id",
    "multi": "string",
    "boolean": "boolean",
    "date": "date",
    "datetime": "dateTime",
}
_OPERATORS: Final[dict[str, Callable[[Any, Any], bool]]] = {
    "=": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


def _no_value(record: Record) -> Any:
    return None


@dataclass(frozen=True)
class _Field:
    name: str  # canonical: "Email", "Account.Name"
    key: str  # the key holding the value (in the parent record for a relationship field)
    sf_type: str
    kind: str
    get: Callable[[Record], Any]
    relationship: str | None
    offset: int

    def type_word(self) -> str:
        if self.kind == "number":
            return "integer" if self.sf_type == "int" else "double"
        return _TYPE_WORDS[self.kind]


# --------------------------------------------------------------------------- binding


def _shift(day: date, days: int) -> date:
    try:
        return day + timedelta(days=days)
    except OverflowError:
        return date.max if days > 0 else date.min


def _date_bounds(name: str, days: int, today: date) -> tuple[date, date]:
    """A relative date literal as [start, end) days. Salesforce evaluates them in the user's
    time zone; the emulator's users are all UTC."""
    if name == "TODAY":
        return today, _shift(today, 1)
    if name == "YESTERDAY":
        return _shift(today, -1), today
    if name == "TOMORROW":
        return _shift(today, 1), _shift(today, 2)
    if name == "LAST_N_DAYS":
        # Documented as "starts with the current day and continues for the past n days";
        # practice [reported]: n whole days back, up to the end of today.
        return _shift(today, -days), _shift(today, 1)
    return _shift(today, 1), _shift(today, days + 1)  # NEXT_N_DAYS: from tomorrow, n days


class _Binder:
    def __init__(
        self,
        query: Query,
        field_types: Mapping[str, str],
        now: datetime | None,
        relationships: Mapping[str, Relationship] | None,
        resolve_parent: ParentResolver | None,
    ) -> None:
        self.query = query
        self.types = {name.lower(): (name, kind) for name, kind in field_types.items()}
        self.relationships = (
            None
            if relationships is None
            else {name.lower(): (name, rel) for name, rel in relationships.items()}
        )
        self.resolve_parent = resolve_parent
        moment = now or datetime.now(UTC)
        aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
        self.today_date = aware.astimezone(UTC).date()

    def bind(self) -> BoundQuery:
        query = self.query
        selected = [
            self.field(name, offset)
            for name, offset in zip(
                query.fields, query.field_offsets or [0] * len(query.fields), strict=True
            )
        ]
        predicate = _always if query.where is None else self.compile(query.where)
        sort_keys = [self.sort_key(term) for term in query.order_by]
        return BoundQuery(query, selected, predicate, sort_keys, self.resolve_parent)

    # -- fields

    def field(self, name: str, offset: int) -> _Field:
        if "." not in name:
            canonical, sf_type = self.lookup(self.types, name, offset, self.query.sobject)
            kind = _KIND_BY_TYPE.get(sf_type.lower(), "text")
            return _Field(
                canonical,
                canonical,
                sf_type,
                kind,
                operator.methodcaller("get", canonical),
                None,
                offset,
            )
        relationship, _, parent_field = name.partition(".")
        if "." in parent_field:  # grandparents (Account.Owner.Name) are outside the subset
            raise self.unknown_relationship(name.rpartition(".")[0], offset)
        rel_name, parent = self.parent(relationship, offset)
        if parent is None:
            canonical, sf_type = parent_field, "string"
        else:
            parent_types = {key.lower(): (key, value) for key, value in parent.field_types.items()}
            canonical, sf_type = self.lookup(parent_types, parent_field, offset, parent.sobject)
        kind = _KIND_BY_TYPE.get(sf_type.lower(), "text")
        getter = self.parent_getter(rel_name, canonical)
        return _Field(f"{rel_name}.{canonical}", canonical, sf_type, kind, getter, rel_name, offset)

    def lookup(
        self, types: Mapping[str, tuple[str, str]], name: str, offset: int, entity: str
    ) -> tuple[str, str]:
        found = types.get(name.lower())
        if found is None:
            detail = f"No such column '{name}' on entity '{entity}'. {_UNKNOWN_FIELD_HINT}"
            raise _located("INVALID_FIELD", self.query.text, offset, detail)
        return found

    def parent(self, relationship: str, offset: int) -> tuple[str, Relationship | None]:
        lowered = relationship.lower()
        if self.relationships is not None:
            known = self.relationships.get(lowered)
            if known is None:
                raise self.unknown_relationship(relationship, offset)
            return known
        # Without parent describes, the reference field vouches for the relationship name.
        if lowered.endswith("__r") and lowered[:-3] + "__c" in self.types:
            return self.types[lowered[:-3] + "__c"][0][:-3] + "__r", None
        if lowered + "id" in self.types and self.types[lowered + "id"][1] == "reference":
            return self.types[lowered + "id"][0][:-2], None
        raise self.unknown_relationship(relationship, offset)

    def unknown_relationship(self, relationship: str, offset: int) -> SoqlError:
        detail = (
            f"Didn't understand relationship '{relationship}' in field path. "
            f"{_UNKNOWN_RELATIONSHIP_HINT}"
        )
        return _located("INVALID_FIELD", self.query.text, offset, detail)

    def parent_getter(self, relationship: str, key: str) -> Callable[[Record], Any]:
        resolve = self.resolve_parent
        if resolve is None:
            return _no_value

        def get(record: Record) -> Any:
            parent = resolve(relationship, record)
            return None if parent is None else parent.get(key)

        return get

    # -- WHERE

    def compile(self, condition: Condition) -> Predicate:
        if isinstance(condition, Comparison):
            return self.comparison(condition)
        if isinstance(condition, Not):
            return _negation(self.compile(condition.operand))
        operands = [self.compile(operand) for operand in condition.operands]
        return _conjunction(operands) if isinstance(condition, And) else _disjunction(operands)

    def comparison(self, comparison: Comparison) -> Predicate:
        field = self.field(comparison.field.name, comparison.field.offset)
        op = comparison.op
        self.check_operator(field, op)
        for literal in comparison.values:
            self.check_literal(field, op, literal)
        if op == "LIKE":
            return _like(field, comparison.values[0])
        if op in ("INCLUDES", "EXCLUDES"):
            groups = [_multi_key(literal.value) for literal in comparison.values]
            return _includes(field, groups, op == "EXCLUDES")
        if op in ("IN", "NOT IN"):
            return self.membership(field, comparison.values, op == "NOT IN")
        return self.single(field, op, comparison.values[0])

    def check_operator(self, field: _Field, op: str) -> None:
        if op in ("INCLUDES", "EXCLUDES") and field.kind != "multi":
            detail = "includes or excludes operator only valid on multipicklist field"
        elif (op == "LIKE" and field.kind != "text") or (
            op in ("<", "<=", ">", ">=") and field.kind in ("multi", "boolean")
        ):
            detail = f"invalid operator on {field.sf_type} field"
        else:
            return
        raise _located("INVALID_QUERY_FILTER_OPERATOR", self.query.text, field.offset, detail)

    def check_literal(self, field: _Field, op: str, literal: Literal) -> None:
        if literal.kind == "null" and op not in ("LIKE", "INCLUDES", "EXCLUDES"):
            return
        if literal.kind in _LITERAL_KINDS[field.kind]:
            return
        if field.kind in ("text", "id", "multi"):
            quoting = "should be enclosed in quotes"
        else:
            quoting = "should not be enclosed in quotes"
        detail = (
            f"value of filter criterion for field '{field.name}' must be of type "
            f"{field.type_word()} and {quoting}"
        )
        raise _located("INVALID_FIELD", self.query.text, field.offset, detail)

    def target(self, field: _Field, literal: Literal) -> Any:
        """A literal in the form the field's record values are compared in."""
        if literal.kind == "date":
            return literal.value.isoformat()
        if literal.kind == "datetime":
            return literal.value
        return _KEYS[field.kind](literal.value)

    def bounds(self, field: _Field, literal: Literal) -> tuple[str, str]:
        name, days = literal.value
        start, end = _date_bounds(name, days, self.today_date)
        if field.kind == "date":
            return start.isoformat(), end.isoformat()
        midnight = datetime.min.time()
        return (
            _format_instant(datetime.combine(start, midnight, UTC)),
            _format_instant(datetime.combine(end, midnight, UTC)),
        )

    def single(self, field: _Field, op: str, literal: Literal) -> Predicate:
        if literal.kind == "null":
            return _null_test(field, op)
        if literal.kind == "date_range":
            return _within(field, op, *self.bounds(field, literal))
        return _compare(field, _OPERATORS[op], self.target(field, literal))

    def membership(self, field: _Field, literals: tuple[Literal, ...], negate: bool) -> Predicate:
        if any(literal.kind == "date_range" for literal in literals):
            found = _disjunction([self.single(field, "=", literal) for literal in literals])
            return _present_and(field, _negation(found)) if negate else found
        targets = frozenset(
            self.target(field, literal) for literal in literals if literal.kind != "null"
        )
        with_null = any(literal.kind == "null" for literal in literals)
        return _member(field, targets, with_null, negate)

    # -- ORDER BY

    def sort_key(self, term: OrderTerm) -> tuple[Callable[[Record], Any], bool]:
        field = self.field(term.field, term.field_offset)
        key = _text_key if field.kind == "multi" else _KEYS[field.kind]
        get = field.get
        # Ranks around the non-null rank 1; a descending sort reverses them too.
        null_rank = 0 if term.nulls_last == term.descending else 2

        if field.kind == "boolean":

            def boolean_key(record: Record) -> Any:
                return (1, bool(get(record)))

            return boolean_key, term.descending

        def sort_key(record: Record) -> Any:
            value = get(record)
            normal = None if value is None else key(value)
            return (null_rank, "") if normal is None else (1, normal)

        return sort_key, term.descending


# --------------------------------------------------------------------------- predicates
# Each builder returns a closure; the record-level semantics follow the brief: `= null` holds
# for None, any other comparison with a None value is false (Salesforce's own handling of
# `!=` against null values is [reported] to differ: the documented rule is kept). Checkboxes
# are never null: None reads as false, and `= null` means `= false` (documented).


def _always(record: Record) -> bool:
    return True


def _negation(inner: Predicate) -> Predicate:
    def negated(record: Record) -> bool:
        return not inner(record)

    return negated


def _conjunction(operands: list[Predicate]) -> Predicate:
    if len(operands) == 2:
        first, second = operands

        def both(record: Record) -> bool:
            return first(record) and second(record)

        return both

    def every(record: Record) -> bool:
        return all(operand(record) for operand in operands)

    return every


def _disjunction(operands: list[Predicate]) -> Predicate:
    if len(operands) == 2:
        first, second = operands

        def either(record: Record) -> bool:
            return first(record) or second(record)

        return either

    def some(record: Record) -> bool:
        return any(operand(record) for operand in operands)

    return some


def _compare(field: _Field, compare: Callable[[Any, Any], bool], target: Any) -> Predicate:
    get, key = field.get, _KEYS[field.kind]
    if field.kind == "boolean":

        def checkbox(record: Record) -> bool:
            return compare(bool(get(record)), target)

        return checkbox

    def compared(record: Record) -> bool:
        value = get(record)
        if value is None:
            return False
        normal = key(value)
        return normal is not None and compare(normal, target)

    return compared


def _null_test(field: _Field, op: str) -> Predicate:
    get = field.get
    if op not in ("=", "!="):
        return lambda record: False  # ordering against null holds for no record
    if field.kind == "boolean":
        wanted = op == "!="
        return lambda record: bool(get(record)) is wanted
    if op == "=":
        return lambda record: get(record) is None
    return lambda record: get(record) is not None


def _within(field: _Field, op: str, start: str, end: str) -> Predicate:
    """A relative date literal is a range: `=` inside it, `<` before its start, `>` after it."""
    tests: dict[str, Callable[[str], bool]] = {
        "=": lambda key: start <= key < end,
        "!=": lambda key: not start <= key < end,
        "<": lambda key: key < start,
        "<=": lambda key: key < end,
        ">": lambda key: key >= end,
        ">=": lambda key: key >= start,
    }
    test, get, key = tests[op], field.get, _KEYS[field.kind]

    def within(record: Record) -> bool:
        value = get(record)
        normal = None if value is None else key(value)
        return normal is not None and test(normal)

    return within


def _member(field: _Field, targets: frozenset[Any], with_null: bool, negate: bool) -> Predicate:
    get, key = field.get, _KEYS[field.kind]
    if field.kind == "boolean":
        wanted = targets | {False} if with_null else targets
        return lambda record: (bool(get(record)) in wanted) is not negate

    def member(record: Record) -> bool:
        value = get(record)
        if value is None:
            return with_null and not negate
        return (key(value) in targets) is not negate

    return member


def _present_and(field: _Field, inner: Predicate) -> Predicate:
    get = field.get
    return lambda record: get(record) is not None and inner(record)


def _like(field: _Field, literal: Literal) -> Predicate:
    matcher = re.compile(literal.like_pattern, re.IGNORECASE | re.DOTALL).fullmatch
    get = field.get

    def like(record: Record) -> bool:
        value = get(record)
        return (
            value is not None
            and matcher(value if isinstance(value, str) else str(value)) is not None
        )

    return like


def _includes(field: _Field, groups: list[frozenset[str]], exclude: bool) -> Predicate:
    """INCLUDES ('a;b', 'c'): the value holds both a and b, or holds c. EXCLUDES: neither."""
    get = field.get

    def includes(record: Record) -> bool:
        value = get(record)
        if value is None:
            return False
        chosen = _multi_key(value)
        return any(group <= chosen for group in groups) is not exclude

    return includes


# --------------------------------------------------------------------------- bound query


class BoundQuery:
    """A query checked against a describe, ready to filter, order and project records."""

    matches: Predicate
    """Whether a record satisfies the WHERE clause (a compiled closure; call it per record)."""

    def __init__(
        self,
        query: Query,
        selected: list[_Field],
        predicate: Predicate,
        sort_keys: list[tuple[Callable[[Record], Any], bool]],
        resolve_parent: ParentResolver | None,
    ) -> None:
        self.query = query
        self.canonical_fields: tuple[str, ...] = tuple(field.name for field in selected)
        self.matches = predicate
        self._selected = selected
        self._sort_keys = sort_keys
        self._resolve_parent = resolve_parent

    def order(self, records: Iterable[Record]) -> list[Record]:
        """ORDER BY (stable: ties keep input order), then OFFSET and LIMIT."""
        start = self.query.offset or 0
        stop = None if self.query.limit is None else start + self.query.limit
        if not self._sort_keys:
            return list(islice(records, start, stop))
        rows = list(records)
        # Stable sorts from the last key to the first give the multi-key order.
        for key, descending in reversed(self._sort_keys):
            rows.sort(key=key, reverse=descending)
        return rows[start:stop]

    def select(self, records: Iterable[Record]) -> list[Record]:
        """The records the query answers, in order, paged by OFFSET and LIMIT."""
        matches = self.matches
        return self.order(record for record in records if matches(record))

    def count(self, records: Iterable[Record]) -> int:
        """What `SELECT COUNT()` answers as totalSize (OFFSET and LIMIT applied)."""
        matches = self.matches
        total = sum(1 for record in records if matches(record))
        total = max(0, total - (self.query.offset or 0))
        return total if self.query.limit is None else min(total, self.query.limit)

    def project(self, record: Record) -> dict[str, Any]:
        """The selected fields under canonical names, in select-list order. A relationship field
        answers as Salesforce nests it: {"Account": {"attributes": ..., "Name": ...}}, or
        {"Account": None} when the parent is absent or no resolver was bound. The record's own
        "attributes" are the caller's to add."""
        answer: dict[str, Any] = {}
        for field in self._selected:
            if field.relationship is None:
                answer[field.key] = record.get(field.key)
            elif field.relationship not in answer:
                answer[field.relationship] = self._parent_view(field.relationship, record)
        return answer

    def _parent_view(self, relationship: str, record: Record) -> dict[str, Any] | None:
        parent = (
            None if self._resolve_parent is None else self._resolve_parent(relationship, record)
        )
        if parent is None:
            return None
        view: dict[str, Any] = {}
        if "attributes" in parent:
            view["attributes"] = parent["attributes"]
        for field in self._selected:
            if field.relationship == relationship:
                view[field.key] = parent.get(field.key)
        return view
