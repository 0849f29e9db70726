"""The full-text index of messages, behind one interface for every SQL engine.

On SQLite it is an FTS5 table whose rowid is ``messages.id``. Search only ever reads the index,
never message bodies.
"""

from __future__ import annotations

import re

from sqlalchemy import Connection, text

# What is indexed of a body; a search index is for finding mail, not for storing it.
MAX_INDEXED_BODY = 64 * 1024

_TOKEN = re.compile(r'"([^"]*)"|(\S+)')


def index_rows(conn: Connection, rows: list[dict]) -> None:
    """Index messages: each row has ``id``, ``subject``, ``addresses`` and ``body``."""
    if not rows:
        return
    if conn.dialect.name == "sqlite":
        conn.execute(
            text("INSERT INTO message_search (rowid, subject, addresses, body) VALUES (:id, :subject, :addresses, :body)"),
            [{**r, "body": (r["body"] or "")[:MAX_INDEXED_BODY]} for r in rows],
        )


def unindex(conn: Connection, ids: list[int]) -> None:
    if not ids:
        return
    if conn.dialect.name == "sqlite":
        conn.execute(text("DELETE FROM message_search WHERE rowid = :id"), [{"id": i} for i in ids])


def fts_query(q: str) -> str | None:
    """Turn user words into a safe FTS5 expression: every term must appear (quoted phrases kept)."""
    terms = []
    for phrase, word in _TOKEN.findall(q):
        term = (phrase or word).replace('"', " ").strip()
        if term:
            terms.append('"' + term + '"')
    return " AND ".join(terms) if terms else None


def matching_ids_clause(dialect: str):
    """A SQL fragment selecting message ids that match ``:fts``."""
    if dialect == "sqlite":
        return text("SELECT rowid FROM message_search WHERE message_search MATCH :fts")
    raise NotImplementedError(f"full-text search on {dialect}")  # pragma: no cover
