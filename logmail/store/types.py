"""Portable column types: one place that knows how SQLite and MySQL differ."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import BigInteger, Integer, Text
from sqlalchemy.dialects import mysql, sqlite
from sqlalchemy.types import TypeDecorator

# Primary keys: BIGINT on MySQL, but INTEGER on SQLite, where only "INTEGER PRIMARY KEY" is the rowid.
BigId = BigInteger().with_variant(Integer(), "sqlite")

# Epoch milliseconds, the only time format logmail stores and returns.
EpochMs = BigInteger

# Long text that may exceed MySQL's 64 KB TEXT.
LongText = Text().with_variant(mysql.LONGTEXT(), "mysql").with_variant(sqlite.TEXT(), "sqlite")


class JsonText(TypeDecorator):
    """JSON kept as text: portable, and never needs the database to understand it."""

    impl = Text
    cache_ok = True

    def load_dialect_impl(self, dialect):
        if dialect.name == "mysql":
            return dialect.type_descriptor(mysql.MEDIUMTEXT())
        return dialect.type_descriptor(Text())

    def process_bind_param(self, value: Any, dialect) -> str | None:
        if value is None:
            return None
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))

    def process_result_value(self, value: str | None, dialect) -> Any:
        if value is None:
            return None
        return json.loads(value)
