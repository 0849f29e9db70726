"""Engines and sessions: one ``Database`` per process, chosen by URL.

SQLite runs in WAL mode so readers never wait for the writer. Python's sqlite3 module opens
transactions lazily and upgrades read locks to write locks, which in WAL mode fails at once with
"database is locked" under concurrency; so logmail issues its own ``BEGIN`` and asks for
``BEGIN IMMEDIATE`` on every transaction that will write (``Database.write``), which waits politely
for the lock instead.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from logmail.errors import StorageUnavailableError

log = logging.getLogger("logmail.store")


class Database:
    """The metadata database: engine, sessions and write transactions."""

    def __init__(self, url: str, *, synchronous: str = "full", pool_size: int = 10, pool_recycle: int = 1800) -> None:
        self.url = make_url(url)
        self.is_sqlite = self.url.get_backend_name() == "sqlite"
        if self.is_sqlite:
            if self.url.database and self.url.database != ":memory:":
                Path(self.url.database).parent.mkdir(parents=True, exist_ok=True)
            self.engine = create_engine(
                self.url,
                connect_args={"timeout": 30, "check_same_thread": False},
                pool_size=pool_size,
                max_overflow=20,
            )
            _configure_sqlite(self.engine, synchronous)
        else:
            self.engine = create_engine(
                self.url,
                # Read committed: the outbox claim (SKIP LOCKED) and counters must not take
                # repeatable-read gap locks that make concurrent daemons wait for each other.
                isolation_level="READ COMMITTED",
                # Fail fast when the server is away: requests answer 503 instead of hanging.
                connect_args={"connect_timeout": 3},
                pool_pre_ping=True,
                pool_recycle=pool_recycle,
                pool_size=pool_size,
                max_overflow=pool_size,
            )
        self._writer: Engine = self.engine.execution_options(sqlite_begin="IMMEDIATE")
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        self.write_sessions = sessionmaker(self._writer, expire_on_commit=False)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A session for reading; rolled back at the end."""
        with _translated_errors(), self.sessions() as session:
            yield session

    @contextmanager
    def connect(self) -> Iterator[Connection]:
        """A Core connection for reading, with outages turned into StorageUnavailableError."""
        with _translated_errors(), self.engine.connect() as conn:
            yield conn

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A session whose transaction commits when the block ends without an exception."""
        with _translated_errors(), self.write_sessions() as session, session.begin():
            yield session

    @contextmanager
    def write_connection(self) -> Iterator[Connection]:
        """A Core connection in a write transaction, for the hot paths that batch many rows."""
        with _translated_errors(), self._writer.begin() as conn:
            yield conn

    def dispose(self) -> None:
        self.engine.dispose()


@contextmanager
def _translated_errors() -> Iterator[None]:
    """Connection-level failures become StorageUnavailableError (SMTP 451 / HTTP 503)."""
    try:
        yield
    except OperationalError as exc:
        if exc.connection_invalidated or _is_unavailable(exc):
            log.warning("database unavailable: %s", exc.orig)
            raise StorageUnavailableError("the database is unavailable") from exc
        raise
    except DBAPIError as exc:
        if exc.connection_invalidated:
            raise StorageUnavailableError("the database is unavailable") from exc
        raise


def _is_unavailable(exc: OperationalError) -> bool:
    text = str(exc.orig).lower()
    return any(s in text for s in ("locked", "unable to open", "disk i/o", "can't connect", "lost connection",
                                   "gone away", "connection refused", "disk is full", "readonly"))


def _configure_sqlite(engine: Engine, synchronous: str) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves, see the module docstring
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA synchronous={'FULL' if synchronous == 'full' else 'NORMAL'}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA cache_size=-2000")  # 2 MB per connection; the OS page cache does the rest
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
        conn.exec_driver_sql(f"BEGIN {mode}")
