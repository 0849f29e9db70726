"""``/billing``: Stripe Checkout for a tier (owners), the Stripe webhook, and the organisation's status.

``POST /billing/webhook`` is public: Stripe proves itself with the ``Stripe-Signature`` header over
the raw body, which is read unparsed. Every billing endpoint answers 503 while no Stripe keys are set.
"""

from __future__ import annotations

from sanic import Blueprint, Request
from sanic.response import json

from logmail.api.body import Body, Str
from logmail.api.util import blocking, require
from logmail.errors import ForbiddenError, PayloadTooLargeError
from logmail.services.billing import MAX_URL_LENGTH
from logmail.services.principal import Principal

bp = Blueprint("billing")

MAX_EVENT_SIZE = 1024 * 1024  # Stripe's events are a few kilobytes
CHECKOUT_BODY = Body(
    required={"tier": Str(1, 64, "The tier to subscribe to (its name, as GET /tiers lists them)")},
    optional={"successUrl": Str(1, MAX_URL_LENGTH, "Where Stripe sends the buyer after paying (default: "
                                                   "billing.success_url)"),
              "cancelUrl": Str(1, MAX_URL_LENGTH, "Where Stripe sends a buyer who turns back (default: "
                                                  "billing.cancel_url)")})


def _owner(request: Request) -> Principal:
    who = require(request, "admin")
    if who.ceiling_role != "owner":
        raise ForbiddenError("only the organisation's owners may start a subscription")
    return who


@bp.post("/billing/create-checkout")
async def create_checkout(request: Request):
    who = _owner(request)
    billing = request.app.ctx.services.billing
    billing.require_configured()
    data = CHECKOUT_BODY.parse(request)
    return json(await blocking(billing.create_checkout, who, data["tier"], success_url=data.get("successUrl"),
                               cancel_url=data.get("cancelUrl")))


@bp.post("/billing/webhook")
async def webhook(request: Request):
    billing = request.app.ctx.services.billing
    billing.require_configured(webhook=True)
    raw = request.body or b""
    if len(raw) > MAX_EVENT_SIZE:
        raise PayloadTooLargeError(f"a Stripe event may be at most {MAX_EVENT_SIZE} bytes")
    return json(await blocking(billing.receive, raw, request.headers.get("stripe-signature")))


@bp.get("/billing/status")
async def status(request: Request):
    who = require(request, "read")
    billing = request.app.ctx.services.billing
    billing.require_configured()
    return json(await blocking(billing.status, who))
