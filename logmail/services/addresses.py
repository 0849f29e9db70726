"""An organisation's addresses: exact ones (plus-address aware) and catch-alls ``*@domain``.

Addresses are unique across the platform. In platform mode an exact address must be on one of the
platform's shared domains (``platform.domains``, first come first served) or on a domain assigned to
the organisation; a catch-all only on an assigned domain. Local mode has one organisation and
takes any address. The tier's ``maxAddresses`` is enforced here, under the write lock.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from logmail.config import Settings
from logmail.errors import BadRequestError, ConflictError, ForbiddenError, NotFoundError
from logmail.services.audit import ADDRESS_CREATED, ADDRESS_DELETED, DOMAIN_ASSIGNED, DOMAIN_REMOVED, AuditLog
from logmail.services.policy import PolicyService
from logmail.services.principal import Principal
from logmail.services.tiers import TierService
from logmail.store import addresses as repo
from logmail.store.database import Database
from logmail.store.models import EmailAddress, Organization, OrganizationDomain


_LOCAL = re.compile(r"^[a-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*$")
_DOMAIN = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$|^localhost$")


def check_domain(domain: str) -> str:
    domain = domain.strip().lower().rstrip(".")
    if not _DOMAIN.match(domain):
        raise BadRequestError(f"{domain!r} is not a mail domain such as example.com")
    return domain


def parse_address(value: str) -> tuple[str, str, str]:
    """(address, kind, domain) of a requested address; BadRequestError says what is wrong."""
    address = value.strip().lower()
    local, at, domain = address.rpartition("@")
    if not at or not local:
        raise BadRequestError("address must look like name@example.com, or *@example.com for a catch-all")
    domain = check_domain(domain)
    if local == "*":
        return f"*@{domain}", "catchall", domain
    if len(local) > 64 or not _LOCAL.match(local):
        raise BadRequestError(f"{local!r} is not a valid local part (letters, digits and .!#$%&'*+/=?^_`{{|}}~-)")
    return f"{local}@{domain}", "exact", domain


def address_json(row: EmailAddress) -> dict[str, Any]:
    return {"id": row.uuid, "address": row.address, "kind": row.kind, "domain": row.domain,
            "description": row.description, "createdAt": row.created_at}


class AddressService:
    def __init__(self, db: Database, tiers: TierService, policy: PolicyService, audit: AuditLog,
                 settings: Settings, clock: Callable[[], int]) -> None:
        self.db = db
        self.tiers = tiers
        self.policy = policy
        self.audit = audit
        self.settings = settings
        self._clock = clock

    @property
    def _platform(self) -> bool:
        return self.settings.mode == "platform"

    def list(self, who: Principal, *, limit: int, offset: int) -> tuple[list[dict[str, Any]], int]:
        with self.db.read() as session:
            rows, total = repo.list_page(session, who.organization_id, limit=limit, offset=offset)
        return [address_json(r) for r in rows], total

    def get(self, who: Principal, address_uuid: str) -> EmailAddress:
        with self.db.read() as session:
            row = repo.get(session, who.organization_id, address_uuid)
        if row is None:
            raise NotFoundError("address not found")
        return row

    def create(self, who: Principal, value: str, description: str = "") -> dict[str, Any]:
        address, kind, domain = parse_address(value)
        with self.db.write() as session:
            # Lock the organisation row: two requests at the limit cannot both squeeze in.
            org = session.execute(
                select(Organization).where(Organization.id == who.organization_id).with_for_update()
            ).scalar_one()
            if self._platform:
                self._check_domain(session, who.organization_id, address, kind, domain)
            tier = self.tiers.get(org.tier)
            held = repo.count(session, who.organization_id)
            if tier.max_addresses is not None and held >= tier.max_addresses:
                raise ForbiddenError(f"the {tier.display_name} tier allows {tier.max_addresses} address"
                                     f"{'es' if tier.max_addresses != 1 else ''}, and this organisation has "
                                     f"{held}; delete one or move to a higher tier")
            if repo.exists(session, address):
                raise ConflictError(f"{address} is already taken")
            row = EmailAddress(organization_id=who.organization_id, address=address, kind=kind, domain=domain,
                               description=description.strip()[:200], created_at=self._clock())
            session.add(row)
            try:
                session.flush()
            except IntegrityError:  # taken between our check and the insert, by another process
                raise ConflictError(f"{address} is already taken") from None
            self.audit.add(session, who, ADDRESS_CREATED, target_type="address", target_id=row.uuid,
                           details={"address": address})
            out = address_json(row)
        self.policy.forget(address=address)
        return out

    def _check_domain(self, session, organization_id: int, address: str, kind: str, domain: str) -> None:
        owner = repo.domain_owner(session, domain)
        shared = domain in {d.lower() for d in self.settings.platform.domains}
        if owner is not None and owner != organization_id:
            raise ConflictError(f"{domain} belongs to another organisation")
        if kind == "catchall" and owner != organization_id:
            raise ForbiddenError(f"a catch-all needs a domain assigned to your organisation; {domain} is not "
                                 "(a platform admin assigns domains)")
        if owner is None and not shared:
            allowed = ", ".join(sorted(self.settings.platform.domains)) or "none are configured"
            raise ForbiddenError(f"{domain} is not a domain of this platform (shared domains: {allowed}) "
                                 "nor assigned to your organisation")

    def delete(self, who: Principal, address_uuid: str) -> None:
        with self.db.write() as session:
            row = repo.get(session, who.organization_id, address_uuid)
            if row is None:
                raise NotFoundError("address not found")
            repo.remove(session, who.organization_id, row.id)
            self.audit.add(session, who, ADDRESS_DELETED, target_type="address", target_id=row.uuid,
                           details={"address": row.address})
            address = row.address
        self.policy.forget(address=address)

    # -- domains (platform admins) ------------------------------------------------------------

    def list_domains(self) -> list[dict[str, Any]]:
        with self.db.read() as session:
            rows = session.execute(
                select(OrganizationDomain.domain, OrganizationDomain.created_at, Organization.uuid)
                .join(Organization, Organization.id == OrganizationDomain.organization_id)
                .order_by(OrganizationDomain.domain)
            ).all()
        return [{"domain": r.domain, "organizationId": r.uuid, "createdAt": r.created_at} for r in rows]

    def assign_domain(self, who: Principal, domain: str, organization_uuid: str) -> dict[str, Any]:
        domain = check_domain(domain)
        if domain in {d.lower() for d in self.settings.platform.domains}:
            raise ConflictError(f"{domain} is a shared platform domain; it cannot belong to one organisation")
        with self.db.write() as session:
            org = session.execute(select(Organization).where(Organization.uuid == organization_uuid)).scalar_one_or_none()
            if org is None:
                raise NotFoundError("organisation not found")
            if repo.domain_owner(session, domain) is not None:
                raise ConflictError(f"{domain} is already assigned")
            others = session.execute(
                select(EmailAddress.address).where(EmailAddress.domain == domain,
                                                   EmailAddress.organization_id != org.id).limit(1)
            ).first()
            if others is not None:
                raise ConflictError(f"another organisation already has addresses on {domain}")
            session.add(OrganizationDomain(domain=domain, organization_id=org.id, created_at=self._clock()))
            try:
                session.flush()
            except IntegrityError:
                raise ConflictError(f"{domain} is already assigned") from None
            self.audit.add(session, who, DOMAIN_ASSIGNED, target_type="organization", target_id=org.uuid,
                           details={"domain": domain}, organization_id=org.id)
        return {"domain": domain, "organizationId": organization_uuid}

    def remove_domain(self, who: Principal, domain: str) -> None:
        domain = domain.strip().lower()
        with self.db.write() as session:
            row = session.execute(select(OrganizationDomain).where(OrganizationDomain.domain == domain)).scalar_one_or_none()
            if row is None:
                raise NotFoundError("domain not assigned")
            catchalls = session.execute(
                select(EmailAddress.id).where(EmailAddress.domain == domain, EmailAddress.kind == "catchall")
            ).first()
            if catchalls is not None:
                raise ConflictError(f"the organisation still has a catch-all on {domain}; delete it first")
            self.audit.add(session, who, DOMAIN_REMOVED, target_type="organization", target_id=None,
                           details={"domain": domain}, organization_id=row.organization_id)
            session.delete(row)
