"""Platform administration of tiers and domains (platform admins only; every change audited)."""

from __future__ import annotations

from sanic import Blueprint, Request
from sanic.response import json

from logmail.api.body import Body, Str, json_object
from logmail.api.util import blocking
from logmail.errors import ForbiddenError
from logmail.services.principal import METHOD_TOKEN, Principal

bp = Blueprint("admin_platform")

DOMAIN_BODY = Body(required={"domain": Str(1, 253, "The mail domain, e.g. acme.example"),
                             "organizationId": Str(36, 36, "The organisation that gets it", fmt="uuid")})


def platform_admin(request: Request) -> Principal:
    who: Principal = request.ctx.principal
    if not who.is_platform_admin:
        raise ForbiddenError("only platform admins may do this")
    return who


def platform_admin_change(request: Request) -> Principal:
    """A platform admin making a change: through an API token, only one with the 'admin' scope
    (a platform admin's read-only token reads, and changes nothing)."""
    who = platform_admin(request)
    if who.method == METHOD_TOKEN and not who.can("admin"):
        raise ForbiddenError("changes through an API token need a token with the 'admin' scope")
    return who


@bp.get("/admin/tiers")
async def list_tiers(request: Request):
    platform_admin(request)
    tiers = await blocking(request.app.ctx.services.tiers.all)
    return json({"tiers": [t.to_json() for t in tiers]})


@bp.post("/admin/tiers")
async def create_tier(request: Request):
    who = platform_admin_change(request)
    tier = await blocking(request.app.ctx.services.admin.organizations.create_tier, who, json_object(request))
    return json(tier.to_json(), status=201)


@bp.patch("/admin/tiers/<name:str>")
async def update_tier(request: Request, name: str):
    who = platform_admin_change(request)
    tier = await blocking(request.app.ctx.services.admin.organizations.update_tier, who, name,
                          json_object(request))
    return json(tier.to_json())


@bp.get("/admin/domains")
async def list_domains(request: Request):
    platform_admin(request)
    return json({"domains": await blocking(request.app.ctx.services.addresses.list_domains)})


@bp.post("/admin/domains")
async def assign_domain(request: Request):
    who = platform_admin_change(request)
    data = DOMAIN_BODY.parse(request)
    out = await blocking(request.app.ctx.services.addresses.assign_domain, who, data["domain"],
                         data["organizationId"].lower())
    return json(out, status=201)


@bp.delete("/admin/domains/<domain:str>")
async def remove_domain(request: Request, domain: str):
    who = platform_admin_change(request)
    await blocking(request.app.ctx.services.addresses.remove_domain, who, domain)
    return json({"message": "Domain removed", "domain": domain.lower()})
