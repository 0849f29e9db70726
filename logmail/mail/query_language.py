"""The search language of ``q`` on ``GET /messages``: text in, a small list of terms out.

A query is terms separated by white space; every term must hold (there is no OR). A term is a
word, a ``"quoted phrase"`` or ``field:value`` (the value may be quoted), and a leading ``-``
excludes what it would match. Fields::

    from: to: cc:          an address (matched exactly) or words of names and addresses
    subject:               words or a phrase of the subject
    message-id:            the Message-ID, with or without its angle brackets
    tag:                   a tag on the message (tags are lower-case; any case matches)
    has:attachment         at least one attachment
    is:read  is:unread
    larger: smaller:       a size: 500, 10k, 2M, 1.5MB (binary units, any case)
    after: before:         a UTC date (2026-01-31) or ISO date-time; after: is on or after it,
                           before: is strictly before it, both on the time the message was received

``name:value`` where name is not a field (``10:30``, ``https://...``) is ordinary text. A query that
cannot be understood is refused with a :class:`QuerySyntaxError` naming the character (counted from
1) where the problem is. Compiling terms into SQL is :mod:`logmail.store.query_conditions`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from typing import Any


MAX_QUERY_LENGTH = 1000
MAX_TERMS = 50
MAX_VALUE_LENGTH = 320

ADDRESS_FIELDS = ("from", "to", "cc")
FIELDS = (*ADDRESS_FIELDS, "subject", "message-id", "tag", "has", "is", "larger", "smaller", "before", "after")

_FIELD_PREFIX = re.compile(r"([A-Za-z][A-Za-z-]*):")
_FULL_ADDRESS = re.compile(r"[^@\s]+@[^@\s]+")
_SIZE = re.compile(r"(\d+(?:\.\d+)?|\.\d+)\s*([kmgt]?)(?:i?b)?", re.IGNORECASE)
_UNITS = {"": 1, "k": 1024, "m": 1024 ** 2, "g": 1024 ** 3, "t": 1024 ** 4}
# Far above any message, and still an integer every SQL engine binds.
_MAX_SIZE = 2 ** 62
_DATE = re.compile(r"\d{4}[-/]\d{2}[-/]\d{2}")
_DATE_TIME = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?(?:Z|[+-]\d{2}:?\d{2})?",
                        re.IGNORECASE)

_SIZE_HINT = "a size such as 10k or 2M"
_DATE_HINT = "a date such as 2026-01-31 or 2026-01-31T09:30:00Z"


class QuerySyntaxError(ValueError):
    """A query that cannot be understood; the message says where (the API answers it with a 400)."""


@dataclass(frozen=True, slots=True)
class Term:
    """One condition of a query.

    ``field`` is None for free text. ``value`` is what the condition compares: the text for free
    text and text fields (a full address lower-cased), bytes for sizes, epoch milliseconds for
    dates, True/False for ``is:`` (read or not) and True for ``has:``. ``position`` is where the
    term starts in the query, counted from 1.
    """

    field: str | None
    value: Any
    negated: bool = False
    phrase: bool = False
    position: int = 1

    @property
    def exact_address(self) -> bool:
        """An address field holding a whole address (``jane@example.com``), not words of one."""
        return self.field in ADDRESS_FIELDS and bool(_FULL_ADDRESS.fullmatch(self.value))


@dataclass(frozen=True, slots=True)
class Query:
    terms: tuple[Term, ...] = ()

    @property
    def text_only(self) -> bool:
        """Only words and phrases that must appear: the full-text index alone answers it."""
        return bool(self.terms) and all(t.field is None and not t.negated for t in self.terms)


def parse_query(q: str) -> Query:
    """The terms of ``q``; raises QuerySyntaxError saying where a malformed query goes wrong."""
    if len(q) > MAX_QUERY_LENGTH:
        raise QuerySyntaxError(f"q: longer than {MAX_QUERY_LENGTH} characters")
    return Query(tuple(_Parser(q).terms()))


class _Parser:
    def __init__(self, q: str) -> None:
        self.q = q
        self.i = 0

    def terms(self) -> list[Term]:
        out: list[Term] = []
        while True:
            while self.i < len(self.q) and self.q[self.i].isspace():
                self.i += 1
            if self.i >= len(self.q):
                return out
            term = self._term()
            if term is None:
                continue
            if len(out) == MAX_TERMS:
                raise _error(f"more than {MAX_TERMS} terms", term.position)
            out.append(term)

    def _term(self) -> Term | None:
        start = self.i
        negated = self.q[start] == "-"
        if negated:
            self.i += 1
            if self.i >= len(self.q) or self.q[self.i].isspace():
                raise _error('"-" must be followed by the word, phrase or field:value to leave out', start + 1)
        if self.q[self.i] == '"':
            value = self._quoted()
            # An empty phrase asks for nothing.
            return Term(None, _checked(value, start), negated, True, start + 1) if value.strip() else None
        prefix = _FIELD_PREFIX.match(self.q, self.i)
        if prefix and prefix.group(1).lower() in FIELDS:
            name = prefix.group(1).lower()
            self.i = prefix.end()
            value_at = self.i
            quoted = self.i < len(self.q) and self.q[self.i] == '"'
            raw = (self._quoted() if quoted else self._bare()).strip()
            if not raw:
                raise _error(f'"{name}:" needs {_hint(name)}', start + 1)
            value = _field_value(name, _checked(raw, value_at), value_at + 1)
            return Term(name, value, negated, quoted, start + 1)
        return Term(None, _checked(self._bare(), start), negated, False, start + 1)

    def _quoted(self) -> str:
        opening = self.i
        closing = self.q.find('"', opening + 1)
        if closing < 0:
            raise QuerySyntaxError(f"q: unclosed quote starting at character {opening + 1}")
        self.i = closing + 1
        return self.q[opening + 1:closing]

    def _bare(self) -> str:
        start = self.i
        while self.i < len(self.q) and not self.q[self.i].isspace():
            self.i += 1
        return self.q[start:self.i]


def _error(problem: str, position: int) -> QuerySyntaxError:
    return QuerySyntaxError(f"q: {problem} (at character {position})")


def _shown(value: str) -> str:
    return value if len(value) <= 40 else value[:40] + "…"


def _checked(value: str, index: int) -> str:
    if len(value) > MAX_VALUE_LENGTH:
        raise _error(f"a term is longer than {MAX_VALUE_LENGTH} characters", index + 1)
    return value


def _hint(name: str) -> str:
    return {"larger": _SIZE_HINT, "smaller": _SIZE_HINT, "before": _DATE_HINT, "after": _DATE_HINT,
            "has": '"attachment"', "is": '"read" or "unread"'}.get(name, "a value")


def _field_value(name: str, raw: str, position: int) -> Any:
    if name in ADDRESS_FIELDS:
        return raw.lower() if _FULL_ADDRESS.fullmatch(raw) else raw
    if name == "message-id":
        value = raw.strip().removeprefix("<").removesuffix(">").strip()
        if not value:
            raise _error('"message-id:" needs a value', position)
        return value
    if name == "has":
        if raw.lower() != "attachment":
            raise _error(f'unknown value "{_shown(raw)}" for has: (expected attachment)', position)
        return True
    if name == "is":
        states = {"read": True, "unread": False}
        if raw.lower() not in states:
            raise _error(f'unknown value "{_shown(raw)}" for is: (expected read or unread)', position)
        return states[raw.lower()]
    if name in ("larger", "smaller"):
        return _size(name, raw, position)
    if name in ("before", "after"):
        return _date(name, raw, position)
    if name == "tag":
        return raw.lower()  # tags are stored lower-cased
    return raw


def _size(name: str, raw: str, position: int) -> int:
    match = _SIZE.fullmatch(raw.strip())
    if not match:
        raise _error(f'"{name}:" needs {_SIZE_HINT}, not "{_shown(raw)}"', position)
    try:
        number = Decimal(match.group(1))
    except InvalidOperation:  # pragma: no cover - the pattern admits only decimals
        raise _error(f'"{name}:" needs {_SIZE_HINT}, not "{_shown(raw)}"', position) from None
    return min(int((number * _UNITS[match.group(2).lower()]).to_integral_value()), _MAX_SIZE)


def _date(name: str, raw: str, position: int) -> int:
    """Epoch milliseconds of the start of a UTC day, or of a date-time (UTC unless it says otherwise)."""
    value = raw.strip()
    try:
        if _DATE.fullmatch(value):
            when = datetime.strptime(value.replace("/", "-"), "%Y-%m-%d").replace(tzinfo=timezone.utc)
        elif _DATE_TIME.fullmatch(value):
            when = datetime.fromisoformat(value.upper())
            if when.tzinfo is None:
                when = when.replace(tzinfo=timezone.utc)
        else:
            raise ValueError
    except ValueError:
        raise _error(f'"{name}:" needs {_DATE_HINT}, not "{_shown(raw)}"', position) from None
    return int(when.timestamp() * 1000)


__all__ = ["Query", "Term", "parse_query", "FIELDS", "MAX_TERMS", "MAX_VALUE_LENGTH", "MAX_QUERY_LENGTH"]
