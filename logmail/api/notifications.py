"""``/notifications``: the caller's own notifications and which of them reach them by email.

Only ever the caller's: another user's notification is "not found". A token that belongs to no
user (``owner.token``) has no notifications: 403.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sanic import Blueprint, Request
from sanic.response import json

from logmail.api.body import Body
from logmail.api.params import choice_arg, page, page_args, uuid_param
from logmail.api.util import blocking, require
from logmail.errors import BadRequestError
from logmail.services.notifications import KINDS

bp = Blueprint("notifications")


@dataclass(frozen=True)
class Preference:
    """One kind's choice: ``{"inApp": bool, "email": bool}``, either or both."""

    description: str = ""

    def check(self, name: str, value: Any) -> dict[str, bool]:
        if not isinstance(value, dict) or not value:
            raise BadRequestError(f"{name} must be an object with inApp and/or email")
        unknown = sorted(set(value) - {"inApp", "email"})
        if unknown:
            raise BadRequestError(f"{name}: unknown field{'s' if len(unknown) > 1 else ''}: {', '.join(unknown)}")
        for key, flag in value.items():
            if not isinstance(flag, bool):
                raise BadRequestError(f"{name}.{key} must be true or false")
        return dict(value)

    def schema(self) -> dict:
        return {"type": "object", "additionalProperties": False, "minProperties": 1,
                "properties": {"inApp": {"type": "boolean"}, "email": {"type": "boolean"}}}


PREFERENCES_BODY = Body(optional={kind: Preference(k.description) for kind, k in KINDS.items()})


@bp.get("/notifications")
async def list_notifications(request: Request):
    who = require(request, "read")
    limit, offset = page_args(request)
    unread_only = choice_arg(request, "unread", ("true", "false")) == "true"
    items, total, unread = await blocking(request.app.ctx.services.notifications.list, who,
                                          unread_only=unread_only, limit=limit, offset=offset)
    return json(page("notifications", items, total, limit, offset, unread=unread))


@bp.post("/notifications/<notification_id:str>/read")
async def mark_read(request: Request, notification_id: str):
    who = require(request, "read")  # one's own notifications: reading them is all it takes
    notification_id = uuid_param(notification_id, "notification id")
    return json(await blocking(request.app.ctx.services.notifications.mark_read, who, notification_id))


@bp.post("/notifications/read-all")
async def mark_all_read(request: Request):
    who = require(request, "read")
    return json({"marked": await blocking(request.app.ctx.services.notifications.mark_all_read, who)})


@bp.get("/notifications/preferences")
async def get_preferences(request: Request):
    who = require(request, "read")
    return json({"preferences": await blocking(request.app.ctx.services.notifications.preferences, who)})


@bp.put("/notifications/preferences")
async def put_preferences(request: Request):
    who = require(request, "read")
    changes = PREFERENCES_BODY.parse(request)
    prefs = await blocking(request.app.ctx.services.notifications.set_preferences, who, changes)
    return json({"preferences": prefs})
