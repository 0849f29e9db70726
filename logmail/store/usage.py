"""Usage counters: an organisation's running totals and its month-by-month record.

``organizations.storage_bytes``/``message_count`` are what the organisation keeps now; the storage
quota reads them. ``usage_tracking`` has one row per organisation per calendar month (UTC): mail
received and API calls that month, and the storage total as of the month's last change. Every
function here is called inside the transaction that stores or deletes the mail it counts, so the
counters can never drift from the rows they describe.
"""

from __future__ import annotations

import time

from sqlalchemy import Connection, func, select, update
from sqlalchemy.dialects.mysql import insert as mysql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from logmail.store.models import Organization, UsageRecord


def period_of(epoch_ms: int) -> str:
    """The calendar month (UTC) of an instant, as ``YYYY-MM``."""
    t = time.gmtime(epoch_ms / 1000)
    return f"{t.tm_year:04d}-{t.tm_mon:02d}"


def month_start_ms(period: str) -> int:
    import calendar

    year, month = (int(p) for p in period.split("-"))
    return calendar.timegm((year, month, 1, 0, 0, 0)) * 1000


def _upsert(conn: Connection, organization_id: int, period: str, now_ms: int, *, emails: int = 0,
            api_calls: int = 0, storage: int | None = None) -> None:
    values = {"organization_id": organization_id, "period": period, "emails_received": emails,
              "api_calls": api_calls, "storage_bytes": storage or 0, "updated_at": now_ms}
    table = UsageRecord.__table__
    changes = {"emails_received": table.c.emails_received + emails, "api_calls": table.c.api_calls + api_calls,
               "updated_at": now_ms}
    if storage is not None:
        changes["storage_bytes"] = storage
    if conn.dialect.name == "mysql":
        stmt = mysql_insert(table).values(**values).on_duplicate_key_update(**changes)
    else:
        stmt = sqlite_insert(table).values(**values).on_conflict_do_update(
            index_elements=["organization_id", "period"], set_=changes)
    conn.execute(stmt)


def _adjust_totals(conn: Connection, organization_id: int, count: int, size: int) -> int:
    org = Organization.__table__
    conn.execute(
        update(org).where(org.c.id == organization_id).values(
            message_count=func.max(org.c.message_count + count, 0) if conn.dialect.name == "sqlite"
            else func.greatest(org.c.message_count + count, 0),
            storage_bytes=func.max(org.c.storage_bytes + size, 0) if conn.dialect.name == "sqlite"
            else func.greatest(org.c.storage_bytes + size, 0),
        )
    )
    return conn.execute(select(org.c.storage_bytes).where(org.c.id == organization_id)).scalar_one()


def record_stored(conn: Connection, per_org: dict[int, tuple[int, int]], now_ms: int) -> None:
    """Count newly stored mail: ``per_org`` maps organisation → (messages, bytes)."""
    period = period_of(now_ms)
    for organization_id, (count, size) in sorted(per_org.items()):  # a fixed order: no lock-order deadlocks
        storage = _adjust_totals(conn, organization_id, count, size)
        _upsert(conn, organization_id, period, now_ms, emails=count, storage=storage)


def record_deleted(conn: Connection, organization_id: int, count: int, size: int, now_ms: int) -> None:
    """Give back the storage of deleted mail (mail received this month still counts as received)."""
    if not count:
        return
    storage = _adjust_totals(conn, organization_id, -count, -size)
    _upsert(conn, organization_id, period_of(now_ms), now_ms, storage=storage)


def record_api_calls(conn: Connection, per_org: dict[int, int], now_ms: int) -> None:
    period = period_of(now_ms)
    for organization_id, calls in sorted(per_org.items()):
        _upsert(conn, organization_id, period, now_ms, api_calls=calls)


def month(conn: Connection, organization_id: int, period: str) -> UsageRecord | None:
    return conn.execute(
        select(UsageRecord.__table__).where(UsageRecord.organization_id == organization_id,
                                            UsageRecord.period == period)
    ).one_or_none()


def emails_this_month(conn: Connection, organization_id: int, now_ms: int) -> int:
    return conn.execute(
        select(UsageRecord.emails_received).where(UsageRecord.organization_id == organization_id,
                                                  UsageRecord.period == period_of(now_ms))
    ).scalar_one_or_none() or 0
