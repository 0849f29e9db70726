"""``/webhooks``: the organisation's signed HTTP callbacks, their deliveries and replays.

Reading needs the ``read`` scope, every change ``admin``. Another organisation's endpoint or delivery
is a 404, like one that does not exist. The signing secret appears only in the answers of creation
and rotation.
"""

from __future__ import annotations

from sanic import Blueprint, Request
from sanic.response import json

from logmail.api.body import Body, Bool, ChoiceList, Str
from logmail.api.params import choice_arg, page, page_args, uuid_param
from logmail.api.util import blocking, require
from logmail.errors import BadRequestError
from logmail.services.webhook_targets import MAX_URL_LENGTH
from logmail.services.webhooks import EVENTS
from logmail.store.webhooks import STATUSES

bp = Blueprint("webhooks")

_FIELDS = {
    "url": Str(1, MAX_URL_LENGTH, "https:// (or http://) URL that receives the events; it must resolve to "
                                  "public addresses unless webhooks.allow_private is on"),
    "events": ChoiceList(EVENTS, "The events to send"),
    "description": Str(0, 300, "What the endpoint is for"),
}
CREATE_BODY = Body(required={"url": _FIELDS["url"], "events": _FIELDS["events"]},
                   optional={"description": _FIELDS["description"]})
UPDATE_BODY = Body(optional={**_FIELDS, "isEnabled": Bool("Off: nothing is sent and pending deliveries are "
                                                          "cancelled; on: clears the reason it was disabled")})


def _hook_id(value: str) -> str:
    return uuid_param(value, "webhook id")


@bp.get("/webhooks")
async def list_webhooks(request: Request):
    who = require(request, "read")
    limit, offset = page_args(request)
    items, total = await blocking(request.app.ctx.services.webhooks.list, who, limit=limit, offset=offset)
    return json(page("webhooks", items, total, limit, offset))


@bp.post("/webhooks")
async def create_webhook(request: Request):
    who = require(request, "admin")
    data = CREATE_BODY.parse(request)
    created = await blocking(request.app.ctx.services.webhooks.create, who, data["url"], data["events"],
                             data.get("description", ""))
    return json(created, status=201)


@bp.get("/webhooks/<webhook_id:str>")
async def get_webhook(request: Request, webhook_id: str):
    who = require(request, "read")
    return json(await blocking(request.app.ctx.services.webhooks.get, who, _hook_id(webhook_id)))


@bp.patch("/webhooks/<webhook_id:str>")
async def update_webhook(request: Request, webhook_id: str):
    who = require(request, "admin")
    webhook_id = _hook_id(webhook_id)
    changes = UPDATE_BODY.parse(request)
    if not changes:
        raise BadRequestError("send at least one field to change")
    return json(await blocking(request.app.ctx.services.webhooks.update, who, webhook_id, changes))


@bp.delete("/webhooks/<webhook_id:str>")
async def delete_webhook(request: Request, webhook_id: str):
    who = require(request, "admin")
    webhook_id = _hook_id(webhook_id)
    await blocking(request.app.ctx.services.webhooks.delete, who, webhook_id)
    return json({"message": "Webhook deleted", "id": webhook_id})


@bp.post("/webhooks/<webhook_id:str>/secret")
async def rotate_secret(request: Request, webhook_id: str):
    who = require(request, "admin")
    return json(await blocking(request.app.ctx.services.webhooks.rotate_secret, who, _hook_id(webhook_id)))


@bp.post("/webhooks/<webhook_id:str>/test")
async def test_webhook(request: Request, webhook_id: str):
    who = require(request, "admin")
    return json(await blocking(request.app.ctx.services.webhooks.send_test, who, _hook_id(webhook_id)), status=202)


@bp.get("/webhooks/<webhook_id:str>/deliveries")
async def list_deliveries(request: Request, webhook_id: str):
    who = require(request, "read")
    webhook_id = _hook_id(webhook_id)
    limit, offset = page_args(request)
    status = choice_arg(request, "status", STATUSES)
    items, total = await blocking(request.app.ctx.services.webhooks.deliveries, who, webhook_id, status=status,
                                  limit=limit, offset=offset)
    return json(page("deliveries", items, total, limit, offset))


@bp.get("/webhooks/<webhook_id:str>/deliveries/<delivery_id:str>")
async def get_delivery(request: Request, webhook_id: str, delivery_id: str):
    who = require(request, "read")
    return json(await blocking(request.app.ctx.services.webhooks.delivery, who, _hook_id(webhook_id),
                               uuid_param(delivery_id, "delivery id")))


@bp.post("/webhooks/<webhook_id:str>/deliveries/<delivery_id:str>/replay")
async def replay_delivery(request: Request, webhook_id: str, delivery_id: str):
    who = require(request, "admin")
    return json(await blocking(request.app.ctx.services.webhooks.replay, who, _hook_id(webhook_id),
                               uuid_param(delivery_id, "delivery id")), status=202)
