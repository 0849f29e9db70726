"""``/users``: the users of the caller's organisation (admins and owners only)."""

from __future__ import annotations

from sanic import Blueprint, Request
from sanic.response import json

from logmail.api.authn import principal
from logmail.api.body import Body, Choice, Str
from logmail.api.params import page, page_args, uuid_param
from logmail.api.util import blocking
from logmail.services.principal import ROLES

bp = Blueprint("users")

CREATE_BODY = Body(
    required={"email": Str(1, 320, "The new user's email address"),
              "password": Str(1, 1024, "Their initial password")},
    optional={"role": Choice(ROLES, "owner, admin or member (default: member); never above the creator's"),
              "organisationId": Str(36, 36, "Platform admins only: the organisation to add the user to",
                                    fmt="uuid")})


@bp.get("/users")
async def list_users(request: Request):
    limit, offset = page_args(request)
    items, total = await blocking(request.app.ctx.services.users.list, principal(request), limit=limit,
                                  offset=offset)
    return json(page("users", items, total, limit, offset))


@bp.post("/users")
async def create_user(request: Request):
    data = CREATE_BODY.parse(request)
    org = data.get("organisationId")
    created = await blocking(request.app.ctx.services.users.create, principal(request), data["email"],
                             data["password"], data.get("role", "member"), org.lower() if org else None)
    return json(created, status=201)


@bp.delete("/users/<user_id:str>")
async def delete_user(request: Request, user_id: str):
    user_id = uuid_param(user_id, "user id")
    await blocking(request.app.ctx.services.users.delete, principal(request), user_id)
    return json({"message": "User deleted", "id": user_id})
