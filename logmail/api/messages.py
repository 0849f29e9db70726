"""``/messages``: list, read, download and delete stored mail."""

from __future__ import annotations

import base64
import binascii
from urllib.parse import quote

from sanic import Blueprint, Request
from sanic.response import HTTPResponse, json

from logmail.api.params import int_arg, page, page_args, str_arg, uuid_param
from logmail.api.util import blocking, require
from logmail.errors import BadRequestError
from logmail.store.messages import MessageFilter

bp = Blueprint("messages")

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
        if kind != "m":
            raise ValueError
        return int(number)
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


def _disposition(kind: str, filename: str) -> str:
    """RFC 6266: an ASCII fallback plus the exact UTF-8 name."""
    safe = "".join(c if 32 <= ord(c) < 127 and c not in '"\\' else "_" for c in filename) or "download"
    return f"{kind}; filename=\"{safe}\"; filename*=UTF-8''{quote(filename, safe='')}"
