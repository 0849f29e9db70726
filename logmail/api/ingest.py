"""``POST /ingest`` (raw mail over HTTP) and ``POST /policy/check`` (the admission decision)."""

from __future__ import annotations

import base64
import binascii

from sanic import Blueprint, Request
from sanic.response import json

from logmail.api.body import MAX_JSON_BODY, Body, Int, Str, parse_json
from logmail.api.util import blocking, require
from logmail.errors import BadRequestError, ForbiddenError, PayloadTooLargeError, RateLimitedError
from logmail.services.accept import Envelope
from logmail.services.policy import Decision

bp = Blueprint("ingest")

POLICY_BODY = Body(required={"recipient": Str(1, 320, "Envelope recipient (RCPT TO)")},
                   optional={"sender": Str(0, 320, "Envelope sender (MAIL FROM)"),
                             "size": Int(0, "Declared message size in bytes", nullable=True),
                             "clientAddress": Str(0, 45, "The connecting client's IP address")})
_MAX_ADDRESS = 320
_MAX_RCPTS = 1000


@bp.post("/policy/check")
async def policy_check(request: Request):
    who = require(request, "ingest")
    services = request.app.ctx.services
    if services.platform and not who.is_platform_admin:
        # The answer says whether an address exists anywhere on the platform: the MTA's question only.
        raise ForbiddenError("only platform admins (the MTA's credentials) may ask for policy decisions")
    data = POLICY_BODY.parse(request)
    decision: Decision = await blocking(services.policy.check_recipient, data["recipient"], size=data.get("size"))
    return json({**decision.to_json(), "postfixAction": decision.postfix_action()})


@bp.post("/ingest")
async def ingest(request: Request):
    who = require(request, "ingest")
    services = request.app.ctx.services
    raw, mail_from, rcpt_to = _read(request)
    if not raw.strip():
        raise BadRequestError("the message is empty")
    limit = services.settings.smtp.max_message_size
    if len(raw) > limit:
        raise PayloadTooLargeError(f"the message is {len(raw)} bytes; at most {limit} are accepted")
    if not rcpt_to:
        from logmail.services.ingest_files import header_recipients

        rcpt_to = header_recipients(raw)
    decision = await blocking(services.policy.check_organization, who.organization_id, size=len(raw))
    if not decision.accepted:
        _refuse(decision)
    env = Envelope(mail_from=mail_from, rcpt_to=rcpt_to, source="http", organization_id=who.organization_id)
    # accept() returns once the raw bytes and the job are durable: only then 202.
    ingest_id = await services.acceptor.accept(raw, env)
    return json({"id": ingest_id, "status": "accepted"}, status=202)


def _refuse(decision: Decision) -> None:
    if decision.reason == "too_big":
        raise PayloadTooLargeError(decision.text)
    if decision.reason == "rate_limited":
        raise RateLimitedError(decision.text, retry_after=60)
    raise ForbiddenError(decision.text)


def _read(request: Request) -> tuple[bytes, str, list[str]]:
    ctype = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if ctype == "application/json":
        body = request.body or b""
        if len(body) > 2 * MAX_JSON_BODY + request.app.ctx.services.settings.smtp.max_message_size * 4 // 3:
            raise PayloadTooLargeError("request body too large")
        data = parse_json(body)
        if not isinstance(data, dict):
            raise BadRequestError("request body must be a JSON object")
        unknown = sorted(set(data) - {"raw", "mailFrom", "rcptTo"})
        if unknown:
            raise BadRequestError(f"unknown field(s): {', '.join(unknown)}")
        if not isinstance(data.get("raw"), str):
            raise BadRequestError("raw must be the message, base64-encoded")
        try:
            raw = base64.b64decode(data["raw"], validate=True)
        except (binascii.Error, ValueError):
            raise BadRequestError("raw is not valid base64") from None
        return raw, _sender(data.get("mailFrom", "")), _recipients(data.get("rcptTo", []))
    if ctype in ("message/rfc822", "application/octet-stream", "text/plain"):
        return (request.body or b""), _sender(request.args.get("mailFrom", "")), \
            _recipients(request.args.getlist("rcptTo", []))
    raise BadRequestError("send the message as Content-Type: message/rfc822 (envelope in ?mailFrom= and "
                          "?rcptTo=), or as JSON {\"raw\": base64, \"mailFrom\", \"rcptTo\"}")


def _sender(value) -> str:
    if not isinstance(value, str) or len(value) > _MAX_ADDRESS or any(c in value for c in "\r\n\0"):
        raise BadRequestError(f"mailFrom must be an address of at most {_MAX_ADDRESS} characters")
    return value.strip()


def _recipients(value) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or len(value) > _MAX_RCPTS:
        raise BadRequestError(f"rcptTo must be a list of at most {_MAX_RCPTS} addresses")
    out = []
    for item in value:
        if (not isinstance(item, str) or not item.strip() or len(item) > _MAX_ADDRESS
                or any(c in item for c in "\r\n\0")):
            raise BadRequestError(f"rcptTo entries must be addresses of at most {_MAX_ADDRESS} characters")
        out.append(item.strip())
    return out
