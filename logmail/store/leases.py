"""Leases in SQL: how several daemons agree who does a piece of scheduled work.

A lease is a row (name, owner, expiry). Taking it succeeds when nobody holds it, when the holder's
time has run out (the holder died: its work is picked up), or when the caller already holds it
(renewal). The database decides atomically, so two daemons never both win.
"""

from __future__ import annotations

from sqlalchemy import delete, insert, or_, update
from sqlalchemy.exc import IntegrityError

from logmail.store.database import Database
from logmail.store.models import Lease


def acquire(db: Database, name: str, owner: str, ttl_ms: int, now_ms: int) -> bool:
    expires = now_ms + ttl_ms
    with db.write_connection() as conn:
        taken = conn.execute(
            update(Lease)
            .where(Lease.name == name, or_(Lease.expires_at <= now_ms, Lease.owner == owner))
            .values(owner=owner, expires_at=expires)
        ).rowcount
    if taken:
        return True
    try:
        with db.write_connection() as conn:
            conn.execute(insert(Lease).values(name=name, owner=owner, expires_at=expires))
        return True
    except IntegrityError:  # someone else holds it and it has not expired
        return False


def release(db: Database, name: str, owner: str) -> bool:
    with db.write_connection() as conn:
        return bool(conn.execute(delete(Lease).where(Lease.name == name, Lease.owner == owner)).rowcount)


def holder(db: Database, name: str, now_ms: int) -> str | None:
    with db.read() as session:
        lease = session.get(Lease, name)
        if lease is None or lease.expires_at <= now_ms:
            return None
        return lease.owner
