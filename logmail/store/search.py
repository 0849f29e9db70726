"""The full-text index of messages, behind one interface for every SQL engine.

SQLite: an FTS5 table whose rowid is ``messages.id``, with the organisation as a token of its own
(``o<id>``) so that a tenant's search and count are answered by the index alone. MySQL/MariaDB: an
InnoDB table with a FULLTEXT index, queried in boolean mode. Either way search reads only the
index, never bodies. The safe engine expressions are built from the search language by
:mod:`logmail.store.query_conditions`.
"""

from __future__ import annotations

from sqlalchemy import Connection, text

# What is indexed of a body; a search index is for finding mail, not for storing it.
MAX_INDEXED_BODY = 64 * 1024


def index_rows(conn: Connection, rows: list[dict]) -> None:
    """Index messages: each row has ``id``, ``organization_id``, ``subject``, ``addresses``, ``body``."""
    if not rows:
        return
    rows = [{**r, "org": f"o{r['organization_id']}", "body": (r["body"] or "")[:MAX_INDEXED_BODY]} for r in rows]
    if conn.dialect.name == "sqlite":
        conn.execute(
            text("INSERT INTO message_search (rowid, org, subject, addresses, body) "
                 "VALUES (:id, :org, :subject, :addresses, :body)"),
            rows,
        )
    elif conn.dialect.name == "mysql":
        conn.execute(
            text("INSERT INTO message_search (message_id, organization_id, subject, addresses, body) "
                 "VALUES (:id, :organization_id, :subject, :addresses, :body)"),
            rows,
        )


def unindex(conn: Connection, ids: list[int]) -> None:
    if not ids:
        return
    column = "rowid" if conn.dialect.name == "sqlite" else "message_id"
    conn.execute(text(f"DELETE FROM message_search WHERE {column} = :id"), [{"id": i} for i in ids])


def _where(dialect: str) -> str:
    if dialect == "sqlite":
        return "message_search MATCH ('org:' || :org_token || ' AND (' || :fts || ')')"
    if dialect == "mysql":
        return "organization_id = :org AND MATCH (subject, addresses, body) AGAINST (:fts IN BOOLEAN MODE)"
    raise NotImplementedError(f"full-text search on {dialect}")  # pragma: no cover


def _params(dialect: str, organization_id: int, expr: str) -> dict:
    if dialect == "sqlite":
        return {"org_token": f"o{organization_id}", "fts": expr}
    return {"org": organization_id, "fts": expr}


def count(conn: Connection, organization_id: int, expr: str) -> int:
    dialect = conn.dialect.name
    params = _params(dialect, organization_id, expr)
    return conn.execute(text(f"SELECT count(*) FROM message_search WHERE {_where(dialect)}"), params).scalar_one()


def page_ids(conn: Connection, organization_id: int, expr: str, *, before_id: int | None, offset: int,
             limit: int) -> list[int]:
    """Newest matching ids first, straight from the index (it keeps them in id order)."""
    dialect = conn.dialect.name
    id_column = "rowid" if dialect == "sqlite" else "message_id"
    params = {**_params(dialect, organization_id, expr), "before": before_id, "limit": limit, "offset": offset}
    sql = f"SELECT {id_column} FROM message_search WHERE {_where(dialect)}"
    if before_id is not None:
        sql += f" AND {id_column} < :before"
    sql += f" ORDER BY {id_column} DESC LIMIT :limit OFFSET :offset"
    return list(conn.execute(text(sql), params).scalars())
