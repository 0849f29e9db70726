"""``/usage`` (usage against the tier's limits) and ``/tiers`` (what each tier offers)."""

from __future__ import annotations

from sanic import Blueprint, Request
from sanic.response import json

from logmail.api.params import uuid_arg
from logmail.api.util import blocking, require

bp = Blueprint("usage")


@bp.get("/usage")
async def usage(request: Request):
    who = require(request, "read")
    org = uuid_arg(request, "org_uuid")
    return json(await blocking(request.app.ctx.services.usage.report, who, org))


@bp.get("/tiers")
async def tiers(request: Request):
    require(request, "read")
    return json({"tiers": [t.to_json() for t in await blocking(request.app.ctx.services.tiers.all)]})
