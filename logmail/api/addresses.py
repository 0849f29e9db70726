"""``/addresses``: the organisation's addresses, and the mail each one received."""

from __future__ import annotations

from sanic import Blueprint, Request
from sanic.response import json

from logmail.api.body import Body, Str
from logmail.api.messages import encode_cursor, decode_cursor, message_filter
from logmail.api.params import page, page_args, str_arg, uuid_param
from logmail.api.util import blocking, require

bp = Blueprint("addresses")

CREATE_BODY = Body(
    required={"address": Str(3, 320, "name@domain, plus-address aware; *@domain for a catch-all on an "
                                     "assigned domain")},
    optional={"description": Str(0, 200, "What the address is for")})


@bp.get("/addresses")
async def list_addresses(request: Request):
    who = require(request, "read")
    limit, offset = page_args(request)
    items, total = await blocking(request.app.ctx.services.addresses.list, who, limit=limit, offset=offset)
    return json(page("addresses", items, total, limit, offset))


@bp.post("/addresses")
async def create_address(request: Request):
    who = require(request, "admin")
    data = CREATE_BODY.parse(request)
    created = await blocking(request.app.ctx.services.addresses.create, who, data["address"],
                             data.get("description", ""))
    return json(created, status=201)


@bp.delete("/addresses/<address_id:str>")
async def delete_address(request: Request, address_id: str):
    who = require(request, "admin")
    address_id = uuid_param(address_id, "address id")
    await blocking(request.app.ctx.services.addresses.delete, who, address_id)
    return json({"message": "Address deleted", "id": address_id})


@bp.get("/addresses/<address_id:str>/messages")
async def address_messages(request: Request, address_id: str):
    who = require(request, "read")
    services = request.app.ctx.services
    address = await blocking(services.addresses.get, who, uuid_param(address_id, "address id"))
    limit, offset = page_args(request)
    cursor = decode_cursor(str_arg(request, "cursor", max_length=100))
    flt = message_filter(request)
    flt.address_id = address.id
    items, total, next_pk = await blocking(services.messages.list, who, flt, limit=limit, offset=offset,
                                           cursor=cursor)
    return json(page("messages", items, total, limit, offset, nextCursor=encode_cursor(next_pk)))
