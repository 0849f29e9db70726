"""Platform administration of tiers and domains (platform admins only; every change audited)."""

from __future__ import annotations

from sanic import Blueprint, Request
from sanic.response import json

from logmail.api.body import MAX_JSON_BODY, Body, Str
from logmail.api.body import parse_json as _parse_json
from logmail.api.util import blocking
from logmail.errors import BadRequestError, ForbiddenError, PayloadTooLargeError
from logmail.services.audit import TIER_CREATED, TIER_UPDATED
from logmail.services.principal import Principal

bp = Blueprint("admin_platform")

DOMAIN_BODY = Body(required={"domain": Str(1, 253, "The mail domain, e.g. acme.example"),
                             "organizationId": Str(36, 36, "The organisation that gets it", fmt="uuid")})


def platform_admin(request: Request) -> Principal:
    who: Principal = request.ctx.principal
    if not who.is_platform_admin:
        raise ForbiddenError("only platform admins may do this")
    return who


def _json_object(request: Request) -> dict:
    ctype = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if ctype != "application/json":
        raise BadRequestError("Content-Type must be application/json")
    if len(request.body or b"") > MAX_JSON_BODY:
        raise PayloadTooLargeError(f"a JSON request body may be at most {MAX_JSON_BODY} bytes")
    data = _parse_json(request.body or b"")
    if not isinstance(data, dict):
        raise BadRequestError("request body must be a JSON object")
    return data


@bp.get("/admin/tiers")
async def list_tiers(request: Request):
    platform_admin(request)
    tiers = await blocking(request.app.ctx.services.tiers.all)
    return json({"tiers": [t.to_json() for t in tiers]})


@bp.post("/admin/tiers")
async def create_tier(request: Request):
    who = platform_admin(request)
    services = request.app.ctx.services
    tier = await blocking(services.tiers.create, _json_object(request))
    await blocking(_audit, services, who, TIER_CREATED, tier)
    return json(tier.to_json(), status=201)


@bp.patch("/admin/tiers/<name:str>")
async def update_tier(request: Request, name: str):
    who = platform_admin(request)
    services = request.app.ctx.services
    tier = await blocking(services.tiers.update, name, _json_object(request))
    await blocking(_audit, services, who, TIER_UPDATED, tier)
    services.policy.forget()
    return json(tier.to_json())


def _audit(services, who: Principal, action: str, tier) -> None:
    with services.db.write() as session:
        services.auth.audit.add(session, who, action, target_type="tier", target_id=None,
                                details={"tier": tier.name, **tier.to_json()})


@bp.get("/admin/domains")
async def list_domains(request: Request):
    platform_admin(request)
    return json({"domains": await blocking(request.app.ctx.services.addresses.list_domains)})


@bp.post("/admin/domains")
async def assign_domain(request: Request):
    who = platform_admin(request)
    data = DOMAIN_BODY.parse(request)
    out = await blocking(request.app.ctx.services.addresses.assign_domain, who, data["domain"],
                         data["organizationId"].lower())
    return json(out, status=201)


@bp.delete("/admin/domains/<domain:str>")
async def remove_domain(request: Request, domain: str):
    who = platform_admin(request)
    await blocking(request.app.ctx.services.addresses.remove_domain, who, domain)
    return json({"message": "Domain removed", "domain": domain.lower()})
