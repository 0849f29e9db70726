"""The OpenAPI paths of billing (Stripe)."""

from __future__ import annotations

from logmail.api.billing import CHECKOUT_BODY
from logmail.api.openapi_parts import ERROR, errors, json_body, ok

_NOT_CONFIGURED = {"description": "Billing is not configured on this server (no Stripe keys), or storage or "
                                  "Stripe is unavailable; retry",
                   "content": {"application/json": {"schema": ERROR}}}
_PROVIDER_ERROR = {"description": "Stripe refused the request; the message gives its reason",
                   "content": {"application/json": {"schema": ERROR}}}

BILLING_SCHEMAS = {
    "BillingStatus": {"type": "object", "properties": {
        "organizationId": {"type": "string", "format": "uuid"},
        "tier": {"type": "object", "description": "The tier, its limits and features, as GET /tiers lists it"},
        "subscription": {"oneOf": [{"type": "null"}, {"type": "object", "properties": {
            "id": {"type": "string"}, "status": {"type": ["string", "null"],
                                                 "description": "Stripe's: active, trialing, past_due, canceled, "
                                                                "unpaid, ..."},
            "priceId": {"type": ["string", "null"]}, "currentPeriodEnd": {"type": ["integer", "null"]},
            "cancelAtPeriodEnd": {"type": "boolean"}}}]},
        "pendingChange": {"oneOf": [{"type": "null"}, {"type": "object", "description": (
            "A tier change due later: back to the free tier when the period paid for ends"), "properties": {
            "tier": {"type": "string"}, "at": {"type": "integer"}}}]},
        "period": {"type": "string", "description": "The calendar month (UTC) usage counts, YYYY-MM"},
        "periodStart": {"type": "integer"},
        "usage": {"type": "object", "additionalProperties": {"type": "integer"}},
        "percent": {"type": "object", "additionalProperties": {"type": ["number", "null"]}},
        "warnings": {"type": "array", "items": {"type": "object"}}}},
}

BILLING_PATHS = {
    "/billing/create-checkout": {"post": {
        "summary": "A Stripe Checkout session for a tier's price (organisation owners); send the buyer to its url",
        "requestBody": json_body(CHECKOUT_BODY.schema()),
        "responses": {"200": ok("The checkout session", {"type": "object", "properties": {
            "url": {"type": "string"}, "sessionId": {"type": "string"}, "tier": {"type": "string"},
            "priceId": {"type": "string"}}}),
            **errors(400, 401, 403, 409, 413, 429), "502": _PROVIDER_ERROR, "503": _NOT_CONFIGURED}}},
    "/billing/webhook": {"post": {
        "summary": "Stripe's events (checkout.session.completed, invoice.paid, invoice.payment_failed, "
                   "customer.subscription.updated and .deleted), applied once each in any order",
        "description": "Public: the Stripe-Signature header (t=<unix time>,v1=<HMAC-SHA256 of \"<t>.<raw body>\" "
                       "under the endpoint's signing secret>) proves the request; a missing, wrong or stale "
                       "signature is a 400. Duplicates answer 200 with outcome duplicate.",
        "security": [],
        "parameters": [{"name": "Stripe-Signature", "in": "header", "required": False, "schema": {"type": "string"},
                        "description": "Stripe's signature of the raw body"}],
        "requestBody": {"required": True, "content": {"application/json": {"schema": {
            "type": "object", "description": "A Stripe event"}}}},
        "responses": {"200": ok("Received", {"type": "object", "properties": {
            "received": {"type": "boolean"}, "eventId": {"type": "string"},
            "outcome": {"type": "string", "enum": ["applied", "duplicate", "stale", "superseded", "ended",
                                                   "unmatched", "ignored"]}}}),
            **errors(400, 413), "503": _NOT_CONFIGURED}}},
    "/billing/status": {"get": {
        "summary": "The organisation's tier, subscription, pending tier change and usage against the limits",
        "responses": {"200": ok("Billing status", {"$ref": "#/components/schemas/BillingStatus"}),
                      **errors(401, 403, 429), "503": _NOT_CONFIGURED}}},
}
