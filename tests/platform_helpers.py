"""Builders for platform-mode tests: a daemon with the Postfix-facing listeners, organisations,
addresses and tiers written straight into its database."""

from __future__ import annotations

import smtplib
import time
import uuid
from pathlib import Path

from sqlalchemy import select

from conftest import make_settings
from logmail.store.models import EmailAddress, Message, Organization, TierLimit


def platform_settings(data_dir: Path, **sections):
    """Platform mode, LMTP and the policy service on free ports, decisions never cached."""
    base = {"mode": "platform", "lmtp": {"enabled": True, "port": 0},
            "policy": {"enabled": True, "port": 0, "cache_seconds": 0}}
    for key, value in sections.items():
        if isinstance(value, dict):
            base.setdefault(key, {}).update(value)
        else:
            base[key] = value
    return make_settings(data_dir, **base)


def add_tier(services, name: str | None = None, **limits) -> str:
    """A tier with no limits but those given (``emails_per_month=0``, ``max_message_size=100``, ...)."""
    name = name or f"t-{uuid.uuid4().hex[:8]}"
    with services.db.write() as session:
        session.add(TierLimit(name=name, display_name=name, features={}, **limits))
    return name


def set_limits(services, tier: str, **limits) -> None:
    with services.db.write() as session:
        row = session.execute(select(TierLimit).where(TierLimit.name == tier)).scalar_one()
        for column, value in limits.items():
            setattr(row, column, value)


def add_org(services, *addresses: str, tier: str | None = None, status: str = "active") -> int:
    """An organisation owning ``addresses`` ("*@domain" makes a catch-all), on its own limitless tier."""
    tier = tier or add_tier(services)
    with services.db.write() as session:
        org = Organization(name=f"org-{uuid.uuid4().hex[:6]}", tier=tier, status=status)
        session.add(org)
        session.flush()
        for address in addresses:
            address = address.lower()
            session.add(EmailAddress(organization_id=org.id, address=address,
                                     kind="catchall" if address.startswith("*@") else "exact",
                                     domain=address.rpartition("@")[2]))
        return org.id


def org_tier(services, organization_id: int) -> str:
    with services.db.read() as session:
        return session.get(Organization, organization_id).tier


def suspend(services, organization_id: int) -> None:
    with services.db.write() as session:
        session.get(Organization, organization_id).status = "suspended"


def stored(services, organization_id: int | None = None) -> list[Message]:
    with services.db.read() as session:
        query = select(Message).order_by(Message.id)
        if organization_id is not None:
            query = query.where(Message.organization_id == organization_id)
        rows = session.execute(query).scalars().all()
        session.expunge_all()
        return list(rows)


def wait_stored(services, count: int, organization_id: int | None = None, timeout: float = 20) -> list[Message]:
    deadline = time.monotonic() + timeout
    while True:
        rows = stored(services, organization_id)
        if len(rows) >= count:
            return rows
        assert time.monotonic() < deadline, f"only {len(rows)} of {count} messages stored"
        time.sleep(0.05)


def rcpt_reply(client: smtplib.SMTP, address: str) -> tuple[int, str]:
    code, text = client.rcpt(address)
    return code, text.decode()
