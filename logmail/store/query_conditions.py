"""Parsed search terms (:mod:`logmail.store.query_language`) as SQL conditions on ``Message``.

Every condition is answered from an index within one organisation, never by reading bodies:

- words, phrases and ``subject:`` are looked up in the full-text index (``message_search``); the
  words and phrases a message must contain become one index lookup, each excluded one its own;
- ``from:``/``to:``/``cc:`` with a whole address use the (organisation, address) indexes of
  ``messages`` and ``message_recipients``; with words (a name, a domain) the index's addresses
  column narrows the messages and a check of the sender's or recipients' stored fields decides;
- ``message-id:``, ``tag:`` and the time range use their (organisation, ...) indexes; ``has:``,
  ``is:``, ``larger:`` and ``smaller:`` are checks on rows the other conditions, or the
  organisation's range of the id index, already selected.

Every subquery names the organisation itself. User text never becomes engine syntax: on SQLite
each term is one FTS5 string (in which only ``"`` is special, and it is removed); on MySQL only
the term's word characters are used, as a required phrase. InnoDB does not index words shorter
than ``innodb_ft_min_token_size`` (3), so a term made only of such words is looked for in the
subject instead (the index cannot answer it).
"""

from __future__ import annotations

import json
import re

from sqlalchemy import String, and_, bindparam, not_, or_, select, text, type_coerce

from logmail.store.models import Message, MessageRecipient, MessageTag
from logmail.mail.query_language import Query, Term

MYSQL_MIN_TOKEN = 3
_WORD = re.compile(r"\w+", re.UNICODE)

# Where in the index a term is looked for: every text column, or one of them.
ALL_TEXT, SUBJECT, ADDRESSES = "all", "subject", "addresses"
_FTS5_COLUMNS = {ALL_TEXT: "{subject addresses body}", SUBJECT: "subject", ADDRESSES: "addresses"}
# The MySQL FULLTEXT index each kind of lookup needs (MATCH must name exactly an index's columns).
_MYSQL_INDEX = {ALL_TEXT: "subject, addresses, body", ADDRESSES: "subject, addresses, body", SUBJECT: "subject"}

_FTS5_INERT = str.maketrans({'"': " ", "\x00": " "})

_Lookup = tuple[str, str]  # (where, text)


def query_conditions(query: Query, organization_id: int, dialect: str) -> list:
    """Conditions on ``Message`` selecting this organisation's messages that match every term.

    The caller adds ``Message.organization_id == organization_id`` (the index range they narrow).
    """
    conds: list = []
    required: list[_Lookup] = []
    for term in query.terms:
        lookups, checks = _term(term, organization_id)
        if term.negated:
            conds.append(not_(and_(*_index_conditions(lookups, organization_id, dialect), *checks)))
        else:
            required += lookups
            conds += checks
    return _index_conditions(required, organization_id, dialect) + conds


def text_expression(query: Query, dialect: str) -> str | None:
    """The one full-text expression answering a query of required words and phrases, if it has one."""
    if not query.text_only:
        return None
    parts = [_expression_part(ALL_TEXT, term.value, dialect) for term in query.terms]
    if any(part is None for part in parts):
        return None
    return (" AND " if dialect == "sqlite" else " ").join(parts)


def _term(term: Term, organization_id: int) -> tuple[list[_Lookup], list]:
    """What a term needs from the full-text index and which other conditions, as if not negated."""
    field, value = term.field, term.value
    if field is None:
        return [(ALL_TEXT, value)], []
    if field == "subject":
        return [(SUBJECT, value)], []
    if field == "from":
        if term.exact_address:
            return [], [Message.from_address == value]
        return _narrowed(value), [or_(Message.from_address.contains(value.lower(), autoescape=True),
                                      Message.from_name.contains(value, autoescape=True))]
    if field == "to":
        if term.exact_address:
            return [], [_recipient(organization_id, value)]
        return _narrowed(value), [or_(*(_json_contains(col, _json_text(value))
                                        for col in (Message.to, Message.cc, Message.envelope_to)))]
    if field == "cc":
        if term.exact_address:
            # The recipients index narrows to messages for the address; the Cc field says how.
            return [], [_recipient(organization_id, value),
                        _json_contains(Message.cc, '"address":"' + _json_text(value) + '"')]
        return _narrowed(value), [_json_contains(Message.cc, _json_text(value))]
    if field == "message-id":
        # Written so that its negation keeps messages without a Message-ID.
        return [], [and_(Message.message_id.is_not(None), Message.message_id == value)]
    if field == "tag":
        return [], [Message.id.in_(select(MessageTag.message_id).where(
            MessageTag.organization_id == organization_id, MessageTag.tag == value))]
    if field == "has":
        return [], [Message.attachment_count > 0]
    if field == "is":
        return [], [Message.is_read == value]
    if field == "larger":
        return [], [Message.size > value]
    if field == "smaller":
        return [], [Message.size < value]
    if field == "after":
        return [], [Message.received_at >= value]
    if field == "before":
        return [], [Message.received_at < value]
    raise AssertionError(f"no condition for field {field!r}")  # pragma: no cover - FIELDS lists them all


def _narrowed(value: str) -> list[_Lookup]:
    # Text without a word in it ("@") narrows nothing: the field check alone decides.
    return [(ADDRESSES, value)] if _WORD.search(value) else []


def _recipient(organization_id: int, address: str):
    return Message.id.in_(select(MessageRecipient.message_id).where(
        MessageRecipient.organization_id == organization_id, MessageRecipient.address == address))


def _json_text(value: str) -> str:
    """``value`` as it appears inside a string of the stored JSON (JsonText: no ASCII escaping)."""
    return json.dumps(value, ensure_ascii=False)[1:-1]


def _json_contains(column, fragment: str):
    # Compared as the stored text, not as a JSON value to encode.
    return type_coerce(column, String).contains(fragment, autoescape=True)


def _expression_part(where: str, value: str, dialect: str) -> str | None:
    if dialect == "sqlite":
        # In an FTS5 string only '"' is special; NUL would end the whole expression.
        return f'{_FTS5_COLUMNS[where]} : "{value.translate(_FTS5_INERT)}"'
    words = [w for w in _WORD.findall(value) if len(w) >= MYSQL_MIN_TOKEN]
    return '+"' + " ".join(words) + '"' if words else None


def _index_conditions(lookups: list[_Lookup], organization_id: int, dialect: str) -> list:
    """One condition per index the lookups need (each a subquery of this organisation's ids)."""
    by_index: dict[str, list[str]] = {}
    conds = []
    for where, value in lookups:
        part = _expression_part(where, value, dialect)
        if part is not None:
            by_index.setdefault("fts5" if dialect == "sqlite" else _MYSQL_INDEX[where], []).append(part)
        elif where != ADDRESSES:  # words InnoDB never indexed: the subject is the best left to look in
            conds.append(Message.subject.contains(value, autoescape=True))
    for index, parts in by_index.items():
        conds.insert(0, Message.id.in_(_matching_ids(dialect, index, organization_id, parts)))
    return conds


def _matching_ids(dialect: str, index: str, organization_id: int, parts: list[str]):
    if dialect == "sqlite":
        expr = f"org:o{organization_id} AND (" + " AND ".join(parts) + ")"
        clause = text("SELECT rowid FROM message_search WHERE message_search MATCH :fts")
        return clause.bindparams(bindparam("fts", expr, unique=True))
    if dialect == "mysql":
        clause = text("SELECT message_id FROM message_search WHERE organization_id = :org "
                      f"AND MATCH ({index}) AGAINST (:fts IN BOOLEAN MODE)")
        return clause.bindparams(bindparam("org", organization_id, unique=True),
                                 bindparam("fts", " ".join(parts), unique=True))
    raise NotImplementedError(f"full-text search on {dialect}")  # pragma: no cover


__all__ = ["query_conditions", "text_expression"]
