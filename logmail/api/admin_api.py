"""``/admin``: users, organisations, the audit log of every organisation, statistics and emergency
session revocation, for platform admins only (everyone else: 403). Tiers and domains are in
:mod:`logmail.api.admin_platform`.

Every call is audited: changes by the services, in the transaction that makes them; reads by
:func:`install_admin_trail`, before they are answered (``admin.viewed``), which also records a
security event when someone without the platform-admin flag tries an ``/admin`` endpoint.
"""

from __future__ import annotations

from sanic import Blueprint, Request
from sanic.response import json

from logmail.api.admin_platform import platform_admin, platform_admin_change
from logmail.api.audit import audit_filter
from logmail.api.body import Body, Str
from logmail.api.params import choice_arg, page, page_args, str_arg, uuid_arg, uuid_param
from logmail.api.util import blocking
from logmail.services import security_events as ev
from logmail.services.admin_orgs import STATUSES
from logmail.services.admin_users import DELETE_ORGANIZATION
from logmail.services.audit import ADMIN_VIEWED
from logmail.services.principal import Principal

bp = Blueprint("admin_api")

TIER_BODY = Body(required={"tier": Str(1, 64, "The tier to move the organisation to")})
SUSPEND_BODY = Body(optional={"reason": Str(0, 200, "Why (shown to platform admins and in the audit log)")})


def _services(request: Request):
    return request.app.ctx.services


# -- users -------------------------------------------------------------------------------------------


@bp.get("/admin/users")
async def list_users(request: Request):
    who = platform_admin(request)
    limit, offset = page_args(request)
    items, total = await blocking(_services(request).admin.users.list, who,
                                  email=str_arg(request, "email", max_length=320),
                                  organization_uuid=uuid_arg(request, "organization"), limit=limit, offset=offset)
    return json(page("users", items, total, limit, offset))


@bp.get("/admin/users/<user_id:str>")
async def get_user(request: Request, user_id: str):
    who = platform_admin(request)
    return json(await blocking(_services(request).admin.users.get, who, uuid_param(user_id, "user id")))


@bp.delete("/admin/users/<user_id:str>")
async def delete_user(request: Request, user_id: str):
    who = platform_admin_change(request)
    out = await blocking(_services(request).admin.users.delete, who, uuid_param(user_id, "user id"),
                         organization=choice_arg(request, "organization", (DELETE_ORGANIZATION,)),
                         transfer_to=uuid_arg(request, "transferTo"))
    return json({"message": "User deleted", **out})


# -- organisations -----------------------------------------------------------------------------------


@bp.get("/admin/organizations")
async def list_organizations(request: Request):
    who = platform_admin(request)
    limit, offset = page_args(request)
    items, total = await blocking(_services(request).admin.organizations.list, who,
                                  search=str_arg(request, "search", max_length=200),
                                  status=choice_arg(request, "status", STATUSES),
                                  tier=str_arg(request, "tier", max_length=64), limit=limit, offset=offset)
    return json(page("organizations", items, total, limit, offset))


@bp.get("/admin/organizations/<org_id:str>")
async def get_organization(request: Request, org_id: str):
    who = platform_admin(request)
    return json(await blocking(_services(request).admin.organizations.get, who,
                               uuid_param(org_id, "organization id")))


@bp.patch("/admin/organizations/<org_id:str>/tier")
async def set_tier(request: Request, org_id: str):
    who = platform_admin_change(request)
    org_id = uuid_param(org_id, "organization id")
    data = TIER_BODY.parse(request)
    return json(await blocking(_services(request).admin.organizations.set_tier, who, org_id, data["tier"]))


@bp.post("/admin/organizations/<org_id:str>/suspend")
async def suspend(request: Request, org_id: str):
    who = platform_admin_change(request)
    org_id = uuid_param(org_id, "organization id")
    data = SUSPEND_BODY.parse(request, allow_empty=True)
    return json(await blocking(_services(request).admin.organizations.suspend, who, org_id, data.get("reason")))


@bp.post("/admin/organizations/<org_id:str>/unsuspend")
async def unsuspend(request: Request, org_id: str):
    who = platform_admin_change(request)
    org_id = uuid_param(org_id, "organization id")
    return json(await blocking(_services(request).admin.organizations.unsuspend, who, org_id))


# -- the audit log and the numbers ---------------------------------------------------------------------


@bp.get("/admin/audit")
async def audit(request: Request):
    who = platform_admin(request)
    limit, offset = page_args(request)
    items, total = await blocking(_services(request).auth.audit.list_all, who, audit_filter(request),
                                  organization_uuid=uuid_arg(request, "organization"), limit=limit, offset=offset)
    return json(page("entries", items, total, limit, offset))


@bp.get("/admin/stats")
async def stats(request: Request):
    who = platform_admin(request)
    return json(await blocking(_services(request).admin.stats, who))


# -- sessions ------------------------------------------------------------------------------------------


@bp.post("/admin/sessions/revoke-user/<user_id:str>")
async def revoke_user(request: Request, user_id: str):
    who = platform_admin_change(request)
    return json(await blocking(_services(request).admin.sessions.revoke_user, who, uuid_param(user_id, "user id")))


@bp.post("/admin/sessions/revoke-organization/<org_id:str>")
async def revoke_organization(request: Request, org_id: str):
    who = platform_admin_change(request)
    return json(await blocking(_services(request).admin.sessions.revoke_organization, who,
                               uuid_param(org_id, "organization id")))


@bp.post("/admin/sessions/revoke-all")
async def revoke_all(request: Request):
    """Everyone's sessions, the caller's included: this very access token fails from now on."""
    who = platform_admin_change(request)
    return json(await blocking(_services(request).admin.sessions.revoke_all, who))


# -- the trail of every /admin call --------------------------------------------------------------------


def install_admin_trail(app) -> None:
    """Audit platform admins' reads of ``/admin`` (changes are audited where they are made) and record
    a security event for every ``/admin`` call by anyone else, before the handler answers it."""

    @app.on_request
    async def _admin_trail(request: Request):
        if not request.path.startswith("/admin/") or request.method == "OPTIONS":
            return None
        who: Principal | None = getattr(request.ctx, "principal", None)
        if who is None:
            return None
        services = request.app.ctx.services
        if not who.is_platform_admin:
            await blocking(services.auth.events.record_for, who, ev.ADMIN_ACCESS_DENIED,
                           {"httpMethod": request.method, "path": request.path})
        elif request.method == "GET":
            await blocking(_viewed, services, who, request.path, request.query_string)
        return None


def _viewed(services, who: Principal, path: str, query: str) -> None:
    with services.db.write() as session:
        services.auth.audit.add(session, who, ADMIN_VIEWED, target_type="admin", target_id=None,
                                details={"method": "GET", "path": path[:300], "query": query[:500]})
