"""``/messages``: list, read, download and delete stored mail."""

from __future__ import annotations

import base64
import binascii
from urllib.parse import quote

from sanic import Blueprint, Request
from sanic.response import HTTPResponse, json

from logmail.api.body import Body, Bool
from logmail.api.params import int_arg, page, page_args, str_arg, uuid_param
from logmail.api.util import blocking, require
from logmail.errors import BadRequestError
from logmail.services.messages import check_tags
from logmail.store.messages import MessageFilter

bp = Blueprint("messages")


class _Tags:
    def __init__(self, description: str) -> None:
        self.description = description

    def check(self, name: str, value):
        return check_tags(name, value)

    def schema(self) -> dict:
        return {"type": "array", "maxItems": 50, "items": {"type": "string", "pattern": r"^[\w.:/-]{1,64}$"}}


PATCH_BODY = Body(optional={"isRead": Bool("Mark read (true) or unread (false)"),
                            "tags": _Tags("The complete list of tags (replaces the current ones)"),
                            "addTags": _Tags("Tags to add"), "removeTags": _Tags("Tags to remove")})

# Raw messages and attachments are the sender's bytes: never let a browser sniff them into HTML or
# run them as a page of this origin.
UNTRUSTED_CONTENT = {"X-Content-Type-Options": "nosniff", "Content-Security-Policy": "default-src 'none'; sandbox"}


def encode_cursor(message_pk: int | None) -> str | None:
    if message_pk is None:
        return None
    return base64.urlsafe_b64encode(f"m:{message_pk}".encode()).decode().rstrip("=")


def decode_cursor(value: str | None) -> int | None:
    if not value:
        return None
    try:
        text = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode()
        kind, _, number = text.partition(":")
        value = int(number)
        if kind != "m" or not 0 <= value < 2**63:
            raise ValueError
        return value
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise BadRequestError("cursor is not one this server issued; use nextCursor from a previous page") from None


def message_filter(request: Request) -> MessageFilter:
    since = int_arg(request, "since", minimum=0)
    until = int_arg(request, "until", minimum=0)
    if since is not None and until is not None and until < since:
        raise BadRequestError("until must not be earlier than since")
    return MessageFilter(to=str_arg(request, "to", max_length=320), from_=str_arg(request, "from", max_length=320),
                         since=since, until=until, q=str_arg(request, "q"))


@bp.get("/messages")
async def list_messages(request: Request):
    who = require(request, "read")
    limit, offset = page_args(request)
    cursor = decode_cursor(str_arg(request, "cursor", max_length=100))
    items, total, next_pk = await blocking(request.app.ctx.services.messages.list, who, message_filter(request),
                                           limit=limit, offset=offset, cursor=cursor)
    return json(page("messages", items, total, limit, offset, nextCursor=encode_cursor(next_pk)))


@bp.get("/messages/<message_id:str>")
async def get_message(request: Request, message_id: str):
    who = require(request, "read")
    return json(await blocking(request.app.ctx.services.messages.get, who, uuid_param(message_id, "message id")))


@bp.get("/messages/<message_id:str>/raw")
async def get_raw(request: Request, message_id: str):
    who = require(request, "read")
    dl = await blocking(request.app.ctx.services.messages.raw, who, uuid_param(message_id, "message id"))
    return HTTPResponse(dl.data, content_type=dl.content_type,
                        headers={"Content-Disposition": _disposition("inline", dl.filename), **UNTRUSTED_CONTENT})


@bp.get("/messages/<message_id:str>/attachments/<attachment_id:str>")
async def get_attachment(request: Request, message_id: str, attachment_id: str):
    who = require(request, "read")
    dl = await blocking(request.app.ctx.services.messages.attachment, who, uuid_param(message_id, "message id"),
                        uuid_param(attachment_id, "attachment id"))
    return HTTPResponse(dl.data, content_type=dl.content_type,
                        headers={"Content-Disposition": _disposition("attachment", dl.filename),
                                 **UNTRUSTED_CONTENT})


@bp.delete("/messages/<message_id:str>")
async def delete_message(request: Request, message_id: str):
    who = require(request, "write")
    message_id = uuid_param(message_id, "message id")
    await blocking(request.app.ctx.services.messages.delete, who, message_id)
    return json({"message": "Message deleted", "id": message_id})


@bp.patch("/messages/<message_id:str>")
async def update_message(request: Request, message_id: str):
    who = require(request, "write")
    message_id = uuid_param(message_id, "message id")
    data = PATCH_BODY.parse(request)
    if not data:
        raise BadRequestError("send at least one of isRead, tags, addTags, removeTags")
    if "tags" in data and ("addTags" in data or "removeTags" in data):
        raise BadRequestError("send either tags (the complete list) or addTags/removeTags, not both")
    return json(await blocking(request.app.ctx.services.messages.update, who, message_id, data))


@bp.delete("/messages")
async def delete_matching(request: Request):
    """Delete by search: the same filters as the listing; refuses to run without one."""
    who = require(request, "write")
    flt = message_filter(request)
    blank = flt.q is None or not flt.query().terms  # "q= " searches for nothing: it is no filter
    if blank and flt.to is None and flt.from_ is None and flt.since is None and flt.until is None:
        raise BadRequestError("give a search (q, to, from, since or until): deleting every message needs "
                              "an explicit filter such as since=0")
    deleted = await blocking(request.app.ctx.services.messages.delete_matching, who, flt)
    return json({"message": f"{deleted} message(s) deleted", "deleted": deleted})


def _disposition(kind: str, filename: str) -> str:
    """RFC 6266: an ASCII fallback plus the exact UTF-8 name."""
    safe = "".join(c if 32 <= ord(c) < 127 and c not in '"\\' else "_" for c in filename) or "download"
    return f"{kind}; filename=\"{safe}\"; filename*=UTF-8''{quote(filename, safe='')}"
