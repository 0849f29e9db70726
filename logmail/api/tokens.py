"""``/tokens``: API tokens, shown once at creation, listed without their values, revoked at once."""

from __future__ import annotations

from sanic import Blueprint, Request
from sanic.response import json

from logmail.api.authn import principal
from logmail.api.body import Body, ChoiceList, Int, Str
from logmail.api.params import page, page_args, uuid_param
from logmail.api.util import blocking
from logmail.services.principal import ALL_SCOPES

bp = Blueprint("tokens")

CREATE_BODY = Body(
    required={"name": Str(1, 200, "What the token is for, shown in listings")},
    optional={"scopes": ChoiceList(ALL_SCOPES, "What the token may do (default: read); never more than its "
                                               "creator may"),
              "expiresAt": Int(0, "When the token stops working, epoch ms (default: never)", nullable=True)})


@bp.get("/tokens")
async def list_tokens(request: Request):
    limit, offset = page_args(request)
    items, total = await blocking(request.app.ctx.services.api_tokens.list, principal(request), limit=limit,
                                  offset=offset)
    return json(page("tokens", items, total, limit, offset))


@bp.post("/tokens")
async def create_token(request: Request):
    data = CREATE_BODY.parse(request)
    created = await blocking(request.app.ctx.services.api_tokens.create, principal(request), data["name"],
                             data.get("scopes", ["read"]), data.get("expiresAt"))
    return json(created, status=201, headers={"Cache-Control": "no-store"})


@bp.delete("/tokens/<token_id:str>")
async def revoke_token(request: Request, token_id: str):
    token_id = uuid_param(token_id, "token id")
    await blocking(request.app.ctx.services.api_tokens.revoke, principal(request), token_id)
    return json({"message": "Token revoked", "id": token_id})
