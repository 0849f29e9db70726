"""Models of health monitoring: one row per sample of one service."""

from __future__ import annotations

from sqlalchemy import Float, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from logmail.store.models import MYSQL_TABLE_ARGS, Base, now_ms
from logmail.store.types import BigId, EpochMs


class ServiceHealth(Base):
    __tablename__ = "service_health"
    __table_args__ = (
        Index("ix_health_service_checked", "service", "checked_at"),
        Index("ix_health_checked", "checked_at"),
        MYSQL_TABLE_ARGS,
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    service: Mapped[str] = mapped_column(String(64))      # database | cache | queue | content | smtp-primary | ...
    status: Mapped[str] = mapped_column(String(16))       # up | degraded | down
    latency_ms: Mapped[float | None] = mapped_column(Float)
    detail: Mapped[str | None] = mapped_column(String(1000))
    checked_by: Mapped[str] = mapped_column(String(100), default="")
    checked_at: Mapped[int] = mapped_column(EpochMs, default=now_ms)
