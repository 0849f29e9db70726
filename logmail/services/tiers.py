"""Tiers: limits and feature flags, read from the ``tier_limits`` table.

Tiers are data: platform admins create and change them without a release. A limit of ``None``
means "no limit". Reads are cached in-process for a few seconds, since every RCPT and every API
request asks; a change made through this service is seen at once by this process and within
``ttl`` seconds by the others.
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy import select

from logmail.errors import BadRequestError, ConflictError, NotFoundError
from logmail.store.database import Database
from logmail.store.models import TierLimit, now_ms

FEATURES = ("api", "webhooks", "imapAccounts", "prioritySupport")
# JSON name → column, for every numeric limit.
LIMITS = {
    "maxAddresses": "max_addresses",
    "emailsPerMonth": "emails_per_month",
    "emailsPerMinute": "emails_per_minute",
    "storageBytes": "storage_bytes",
    "retentionDays": "retention_days",
    "maxMessageSize": "max_message_size",
    "apiRequestsPerMinute": "api_requests_per_minute",
}
UNLIMITED = "unlimited"
MAX_RETENTION_DAYS = 36_500  # a century: beyond it "keep" is what is meant, which is null
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


@dataclass(frozen=True, slots=True)
class Tier:
    name: str
    display_name: str
    max_addresses: int | None = None
    emails_per_month: int | None = None
    emails_per_minute: int | None = None
    storage_bytes: int | None = None
    retention_days: int | None = None
    max_message_size: int | None = None
    api_requests_per_minute: int | None = None
    features: dict[str, bool] = field(default_factory=dict)
    price_id: str | None = None

    def has(self, feature: str) -> bool:
        return bool(self.features.get(feature, False))

    def limits_json(self) -> dict[str, int | None]:
        return {key: getattr(self, column) for key, column in LIMITS.items()}

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "displayName": self.display_name, "limits": self.limits_json(),
                "features": {f: self.has(f) for f in FEATURES}}


# What an organisation whose tier row has gone missing gets: nothing is lost, nothing is free.
_MISSING = Tier(name="", display_name="(missing tier)", max_addresses=0, emails_per_month=0,
                storage_bytes=0, features={})


def _from_row(row: TierLimit) -> Tier:
    return Tier(name=row.name, display_name=row.display_name, max_addresses=row.max_addresses,
                emails_per_month=row.emails_per_month, emails_per_minute=row.emails_per_minute,
                storage_bytes=row.storage_bytes, retention_days=row.retention_days,
                max_message_size=row.max_message_size, api_requests_per_minute=row.api_requests_per_minute,
                features=dict(row.features or {}), price_id=row.price_id)


class TierService:
    def __init__(self, db: Database, *, ttl: float = 10.0) -> None:
        self.db = db
        self.ttl = ttl
        self._lock = threading.Lock()
        self._tiers: dict[str, Tier] = {}
        self._loaded_at = float("-inf")

    def all(self) -> list[Tier]:
        self._refresh()
        return sorted(self._tiers.values(), key=lambda t: (t.name != UNLIMITED, t.emails_per_month or 0, t.name))

    def get(self, name: str) -> Tier:
        """The tier called ``name``; an unknown name gets a tier that allows nothing (and says so)."""
        self._refresh()
        tier = self._tiers.get(name)
        if tier is None:
            self._refresh(force=True)
            tier = self._tiers.get(name)
        return tier if tier is not None else replace(_MISSING, name=name)

    def require(self, name: str) -> Tier:
        self._refresh(force=True)
        tier = self._tiers.get(name)
        if tier is None:
            raise NotFoundError(f"there is no tier called {name!r}")
        return tier

    def forget(self) -> None:
        with self._lock:
            self._loaded_at = float("-inf")

    def _refresh(self, force: bool = False) -> None:
        if not force and time.monotonic() - self._loaded_at < self.ttl:
            return
        with self.db.read() as session:
            rows = session.execute(select(TierLimit)).scalars().all()
            tiers = {r.name: _from_row(r) for r in rows}
        with self._lock:
            self._tiers = tiers
            self._loaded_at = time.monotonic()

    # -- changes (platform admins) -------------------------------------------------------------

    def create(self, body: dict[str, Any]) -> Tier:
        name = body.get("name")
        if not isinstance(name, str) or not _NAME.match(name):
            raise BadRequestError("name must be 1-64 lower-case letters, digits, '-' or '_'")
        values = _values(body, partial=False)
        with self.db.write() as session:
            if session.execute(select(TierLimit.id).where(TierLimit.name == name)).first():
                raise ConflictError(f"a tier called {name!r} already exists")
            session.add(TierLimit(name=name, **values))
        self.forget()
        return self.require(name)

    def update(self, name: str, body: dict[str, Any]) -> Tier:
        values = _values(body, partial=True)
        with self.db.write() as session:
            row = session.execute(select(TierLimit).where(TierLimit.name == name)).scalar_one_or_none()
            if row is None:
                raise NotFoundError(f"there is no tier called {name!r}")
            if "features" in values:  # a change names the flags it changes; the others stay
                values["features"] = {**(row.features or {}), **values["features"]}
            for column, value in values.items():
                setattr(row, column, value)
            row.updated_at = now_ms()
        self.forget()
        return self.require(name)


def _values(body: dict[str, Any], *, partial: bool) -> dict[str, Any]:
    """Validated column values from a tier body: ``displayName``, ``limits`` and ``features``."""
    allowed = {"name", "displayName", "limits", "features", "priceId"}
    unknown = set(body) - allowed
    if unknown:
        raise BadRequestError(f"unknown field(s): {', '.join(sorted(unknown))}")
    out: dict[str, Any] = {}
    if "displayName" in body or not partial:
        display = body.get("displayName", body.get("name"))
        if not isinstance(display, str) or not display.strip() or len(display) > 100 or not _is_text(display):
            raise BadRequestError("displayName must be a non-empty string of at most 100 characters")
        out["display_name"] = display.strip()
    limits = body.get("limits", {} if not partial else None)
    if limits is not None:
        if not isinstance(limits, dict):
            raise BadRequestError("limits must be an object")
        for key, value in limits.items():
            if key not in LIMITS:
                raise BadRequestError(f"limits.{key} is not a limit; known: {', '.join(LIMITS)}")
            most = MAX_RETENTION_DAYS if key == "retentionDays" else 2**62
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0
                                      or value > most):
                raise BadRequestError(f"limits.{key} must be a whole number from 0 to {most}, or null for no limit")
            out[LIMITS[key]] = value
    features = body.get("features", {} if not partial else None)
    if features is not None:
        if not isinstance(features, dict):
            raise BadRequestError("features must be an object")
        for key, value in features.items():
            if key not in FEATURES:
                raise BadRequestError(f"features.{key} is not a feature; known: {', '.join(FEATURES)}")
            if not isinstance(value, bool):
                raise BadRequestError(f"features.{key} must be true or false")
        out["features"] = features
    if "priceId" in body:
        price = body["priceId"]
        if price is not None and (not isinstance(price, str) or len(price) > 100 or not _is_text(price)):
            raise BadRequestError("priceId must be a string of at most 100 characters, or null")
        out["price_id"] = price
    return out


def _is_text(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: not storable text
        return False
    return True
