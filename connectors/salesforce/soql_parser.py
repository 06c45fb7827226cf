"""The SOQL parser: query text to a `Query`, or the `SoqlError` Salesforce answers for it.

Supported: `SELECT f, ... | COUNT() FROM Obj [WHERE ...] [ORDER BY f [ASC|DESC]
[NULLS FIRST|LAST], ...] [LIMIT n] [OFFSET n]`; AND, OR, NOT, parentheses; `= != <> < <= > >=`,
LIKE, IN, NOT IN, INCLUDES, EXCLUDES; literals: strings, numbers, true/false, null, dates,
datetimes, TODAY, YESTERDAY, TOMORROW, LAST_N_DAYS:n, NEXT_N_DAYS:n. One level of parent
relationship (`Account.Name`). Anything else (aggregates other than COUNT(), GROUP BY,
sub-queries, semi-joins, bind variables, TYPEOF, FIELDS(), WITH, FOR UPDATE) is answered
MALFORMED_QUERY, as Salesforce answers text it cannot parse.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from typing import Final

from .soql import (
    And,
    Comparison,
    Condition,
    FieldRef,
    Literal,
    Not,
    Or,
    OrderTerm,
    Query,
    SoqlError,
    _format_instant,
    _located,
)

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
