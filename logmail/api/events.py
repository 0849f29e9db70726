"""``GET /events``: the caller's organisation's new mail, live, as server-sent events.

::

    retry: 2000

    id: <where the stream starts>
    event: ready
    data: {"organisationId": "<uuid>"}

    id: <opaque id>
    event: message.received
    data: <the summary GET /messages lists for the message>

    : keep-alive

Event ids are opaque (they are the cursors of ``GET /messages``). A client that reconnects with
``Last-Event-ID`` (or ``?lastEventId=``, for clients that cannot set headers) first gets everything
that arrived after that id, oldest first, then the live stream; the ready event's id lets a client
that saw no mail yet resume without a gap too. ``?timeout=`` ends the stream cleanly after that many
seconds. New mail is noticed by :mod:`logmail.api.live`, whichever process stored it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math

from sanic import Blueprint, Request

from logmail.api.authn import authenticate_request, client_of
from logmail.api.live import MailWatcher, Subscription, mail_watcher
from logmail.api.messages import decode_cursor, encode_cursor
from logmail.api.params import int_arg, str_arg
from logmail.api.util import blocking, require
from logmail.errors import BadRequestError, ForbiddenError, TemporaryError, UnauthorisedError
from logmail.services.principal import Principal

log = logging.getLogger("logmail.api.events")

bp = Blueprint("events")

BATCH = 100
KEEP_ALIVE_SECONDS = 15.0
# A revoked token, an ended session or a lost scope ends an open stream within this many seconds.
RECHECK_SECONDS = 30.0
RETRY_MS = 2000
MAX_TIMEOUT = 3600
HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


@bp.get("/events")
async def stream_events(request: Request):
    who = require(request, "read")
    timeout = int_arg(request, "timeout", minimum=1, maximum=MAX_TIMEOUT)
    resume = _resume_point(request)
    watcher = mail_watcher(request.app)
    sub = await watcher.subscribe(who.organization_id)  # before the start is chosen: nothing stored after it is missed
    try:
        position = await _start(request, who, watcher, resume)
        response = await request.respond(headers=HEADERS, content_type="text/event-stream")
        # A client that goes away cancels this task (at a send or a wait): the finally cleans up.
        await _stream(request, response, who, watcher, sub, position, timeout)
    finally:
        watcher.unsubscribe(sub)


@bp.before_server_stop
async def _end_streams(app) -> None:
    watcher = getattr(app.ctx, "mail_watcher", None)
    if watcher is not None:
        await watcher.close()


def _resume_point(request: Request) -> int | None:
    # The header wins: a browser's EventSource reconnects to the same URL with a newer header.
    value = (request.headers.get("last-event-id") or "").strip() or str_arg(request, "lastEventId", max_length=100)
    if not value:
        return None
    try:
        if len(value) > 100:
            raise BadRequestError("too long")
        return decode_cursor(value)
    except BadRequestError:
        raise BadRequestError("Last-Event-ID is not an event id this server issued; send the id of the last "
                              "event received") from None


async def _start(request: Request, who: Principal, watcher: MailWatcher, resume: int | None) -> int:
    """The internal id the stream continues after."""
    messages = request.app.ctx.services.messages
    if resume is None:
        # The organisation's own newest message, not the global one: the id tells it nothing of others.
        return await blocking(messages.newest_pk, who, watcher.horizon)
    if resume > watcher.seen:
        # Ahead of what this process has seen: another daemon's stream may be a moment ahead, or the
        # newest mail was deleted (and its ids may be handed out again): continue after the
        # organisation's own newest mail up to that id. Only its own ids: the ready event's id must
        # never tell a tenant how far the platform's ids have gone.
        return await blocking(messages.newest_pk, who, resume)
    return resume


async def _stream(request: Request, response, who: Principal, watcher: MailWatcher, sub: Subscription,
                  position: int, timeout: int | None) -> None:
    loop = asyncio.get_running_loop()
    messages = request.app.ctx.services.messages
    await response.send(f"retry: {RETRY_MS}\n\n")
    await response.send(_event("ready", {"organisationId": who.organization_uuid}, position))
    now = loop.time()
    ends = now + timeout if timeout else math.inf
    # Sanic ends a response that sends nothing for api.request_timeout seconds.
    keep_alive = min(KEEP_ALIVE_SECONDS, request.app.config.RESPONSE_TIMEOUT / 2)
    next_ping, next_check = now + keep_alive, now + RECHECK_SECONDS
    try:
        while not sub.closed:
            if sub.wake.is_set():  # at first, and when the organisation got mail (or ids went back)
                sub.wake.clear()
                position = sub.rebase(position)
                while position < watcher.horizon:
                    up_to = watcher.horizon
                    batch = await blocking(messages.received_after, who, position, up_to=up_to, limit=BATCH)
                    for pk, summary in batch:
                        await response.send(_event("message.received", summary, pk))
                    position = batch[-1][0] if len(batch) == BATCH else up_to
            now = loop.time()
            if now >= ends:
                break
            if now >= next_ping:
                await response.send(": keep-alive\n\n")
                next_ping = now + keep_alive
            if now >= next_check:
                if not await _still_allowed(request, who):
                    break
                next_check = now + RECHECK_SECONDS
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(sub.wake.wait(), min(ends, next_ping, next_check) - now)
    except TemporaryError as exc:  # the client reconnects (retry) and resumes where it was
        log.warning("event stream of organisation %s ended: %s", who.organization_uuid, exc.message)
    await response.eof()


async def _still_allowed(request: Request, who: Principal) -> bool:
    """Would the request's credentials still be let in, for the same organisation, to read?"""
    try:
        again = await blocking(authenticate_request, request.app.ctx.services, request, client_of(request))
    except (UnauthorisedError, ForbiddenError):
        return False
    return again.organization_id == who.organization_id and again.can("read")


def _event(name: str, data: dict, pk: int) -> str:
    # ensure_ascii keeps each event's data on one line: clients split lines on U+2028, U+0085 and
    # other separators that JSON would otherwise leave raw in mail subjects.
    data_line = json.dumps(data, separators=(",", ":"), ensure_ascii=True)
    return f"id: {encode_cursor(pk)}\nevent: {name}\ndata: {data_line}\n\n"
