"""Addresses and domains: which organisation a recipient belongs to.

Addresses are lower-cased and unique across the platform. A recipient resolves, in this order, to
its exact address, to the address without its ``+detail`` (``dev+build@x`` → ``dev@x``), or to the
catch-all ``*@domain`` of its domain: one indexed query on the unique ``address`` column.
"""

from __future__ import annotations

from sqlalchemy import Connection, delete, func, select
from sqlalchemy.orm import Session

from logmail.store.models import EmailAddress, OrganizationDomain


def normalise(address: str) -> str:
    address = address.strip()
    if address.startswith("<") and address.endswith(">"):
        address = address[1:-1]
    return address.strip().lower()


def candidates(address: str) -> list[str]:
    """The stored forms that may own ``address``, most specific first."""
    address = normalise(address)
    local, at, domain = address.rpartition("@")
    if not at or not local or not domain:
        return [address] if address else []
    out = [address]
    base, plus, _ = local.partition("+")
    if plus and base:
        out.append(f"{base}@{domain}")
    out.append(f"*@{domain}")
    return out


def resolve(conn: Connection | Session, address: str) -> tuple[int, int] | None:
    """(organization id, address id) that receives mail for ``address``, or None if nobody does."""
    forms = candidates(address)
    if not forms:
        return None
    rows = conn.execute(
        select(EmailAddress.address, EmailAddress.organization_id, EmailAddress.id)
        .where(EmailAddress.address.in_(forms))
    ).all()
    found = {r.address: (r.organization_id, r.id) for r in rows}
    for form in forms:
        if form in found:
            return found[form]
    return None


def resolve_many(conn: Connection, organization_id: int, addresses: list[str]) -> dict[str, int]:
    """Address ids of this organisation's addresses that receive each of ``addresses`` (others absent)."""
    forms = {a: candidates(a) for a in addresses}
    wanted = {f for fs in forms.values() for f in fs}
    if not wanted:
        return {}
    rows = dict(conn.execute(
        select(EmailAddress.address, EmailAddress.id)
        .where(EmailAddress.organization_id == organization_id, EmailAddress.address.in_(wanted))
    ).all())
    out = {}
    for address, fs in forms.items():
        for form in fs:
            if form in rows:
                out[address] = rows[form]
                break
    return out


def count(session: Session, organization_id: int) -> int:
    return session.execute(
        select(func.count()).select_from(EmailAddress).where(EmailAddress.organization_id == organization_id)
    ).scalar_one()


def list_page(session: Session, organization_id: int, *, limit: int, offset: int) -> tuple[list[EmailAddress], int]:
    total = count(session, organization_id)
    rows = session.execute(
        select(EmailAddress).where(EmailAddress.organization_id == organization_id)
        .order_by(EmailAddress.address).limit(limit).offset(offset)
    ).scalars().all()
    return list(rows), total


def get(session: Session, organization_id: int, uuid: str) -> EmailAddress | None:
    return session.execute(
        select(EmailAddress).where(EmailAddress.organization_id == organization_id, EmailAddress.uuid == uuid)
    ).scalar_one_or_none()


def exists(session: Session, address: str) -> bool:
    return session.execute(select(EmailAddress.id).where(EmailAddress.address == address)).first() is not None


def domain_owner(session: Session, domain: str) -> int | None:
    return session.execute(
        select(OrganizationDomain.organization_id).where(OrganizationDomain.domain == domain)
    ).scalar_one_or_none()


def remove(session: Session, organization_id: int, address_id: int) -> None:
    session.execute(delete(EmailAddress).where(EmailAddress.organization_id == organization_id,
                                               EmailAddress.id == address_id))
