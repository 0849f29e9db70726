"""The OpenAPI paths of the platform: addresses, usage, tiers, domains, ingest, policy, flags and tags."""

from __future__ import annotations

from logmail.api import addresses, admin_platform, ingest, messages
from logmail.api.openapi_parts import LIMIT, OFFSET, UUID, errors, json_body, ok, page_of, param
from logmail.services.tiers import FEATURES, LIMITS

_INT = {"type": "integer"}
_NULLABLE_INT = {"type": ["integer", "null"]}
_STR = {"type": "string"}


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _authed(*codes: int) -> dict:
    return errors(*codes, 401, 429, 503)


_LIMITS = {"type": "object", "properties": {k: _NULLABLE_INT for k in LIMITS},
           "description": "null: no limit"}
_FEATURES = {"type": "object", "properties": {f: {"type": "boolean"} for f in FEATURES}}
_TIER_BODY = {"type": "object", "additionalProperties": False, "properties": {
    "name": {"type": "string", "pattern": "^[a-z0-9][a-z0-9_-]{0,63}$"},
    "displayName": {"type": "string", "minLength": 1, "maxLength": 100},
    "limits": _LIMITS, "features": _FEATURES, "priceId": {"type": ["string", "null"], "maxLength": 100}}}
_ADDRESS_ID = param("address_id", "path", UUID, "Address id", True)

PLATFORM_SCHEMAS = {
    "EmailAddress": {"type": "object", "properties": {
        "id": UUID, "address": _STR, "kind": {"type": "string", "enum": ["exact", "catchall"]}, "domain": _STR,
        "description": _STR, "createdAt": _INT}},
    "Tier": {"type": "object", "properties": {"name": _STR, "displayName": _STR, "limits": _LIMITS,
                                              "features": _FEATURES}},
    "Usage": {"type": "object", "properties": {
        "organizationId": UUID, "organizationStatus": _STR, "period": {"type": "string", "description": "YYYY-MM"},
        "periodStart": _INT, "tier": _ref("Tier"),
        "usage": {"type": "object", "properties": {k: _INT for k in (
            "emailsReceived", "storageBytes", "apiCalls", "addresses", "messages")}},
        "percent": {"type": "object", "properties": {k: {"type": ["number", "null"]} for k in (
            "emailsReceived", "storageBytes", "addresses")}},
        "warnings": {"type": "array", "items": {"type": "object", "properties": {
            "metric": _STR, "threshold": _INT, "percent": {"type": "number"}}}}}},
    "PolicyDecision": {"type": "object", "properties": {
        "action": {"type": "string", "enum": ["accept", "defer", "reject"]}, "code": _INT, "status": _STR,
        "message": _STR, "reason": _STR, "postfixAction": _STR}},
}

_MESSAGE_FILTERS = [
    param("q", "query", _STR, "Search query (see GET /messages)"),
    param("to", "query", _STR, "Recipient address"), param("from", "query", _STR, "Sender address"),
    param("since", "query", {"type": "integer", "minimum": 0}, "Received at or after (epoch ms)"),
    param("until", "query", {"type": "integer", "minimum": 0}, "Received before (epoch ms)"),
]

PLATFORM_PATHS = {
    "/addresses": {
        "get": {"summary": "The organisation's addresses", "parameters": [LIMIT, OFFSET],
                "responses": {"200": ok("Addresses", page_of("addresses", _ref("EmailAddress"))),
                              **_authed(400, 403)}},
        "post": {"summary": "Add an address (admins): exact, plus-address aware, or *@domain on an assigned domain",
                 "requestBody": json_body(addresses.CREATE_BODY.schema()),
                 "responses": {"201": ok("Created", _ref("EmailAddress")),
                               **_authed(400, 403, 409, 413)}}},
    "/addresses/{address_id}": {"delete": {
        "summary": "Delete an address (admins); its mail stays", "parameters": [_ADDRESS_ID],
        "responses": {"200": ok("Deleted"), **_authed(400, 403, 404)}}},
    "/addresses/{address_id}/messages": {"get": {
        "summary": "Mail received by one address, newest first",
        "parameters": [_ADDRESS_ID, LIMIT, OFFSET, param("cursor", "query", _STR, "nextCursor"), *_MESSAGE_FILTERS],
        "responses": {"200": ok("A page of messages", page_of("messages", _ref("MessageSummary"))),
                      **_authed(400, 403, 404)}}},
    "/usage": {"get": {
        "summary": "This month's usage against the tier's limits",
        "parameters": [param("org_uuid", "query", UUID, "Platform admins: another organisation")],
        "responses": {"200": ok("Usage", _ref("Usage")), **_authed(400, 403, 404)}}},
    "/tiers": {"get": {"summary": "The tiers and what each offers",
                       "responses": {"200": ok("Tiers", {"type": "object", "properties": {
                           "tiers": {"type": "array", "items": _ref("Tier")}}}), **_authed(403)}}},
    "/admin/tiers": {
        "get": {"summary": "Tiers (platform admins)",
                "responses": {"200": ok("Tiers", {"type": "object", "properties": {
                    "tiers": {"type": "array", "items": _ref("Tier")}}}), **_authed(403)}},
        "post": {"summary": "Create a tier (platform admins)", "requestBody": json_body(_TIER_BODY),
                 "responses": {"201": ok("Created", _ref("Tier")), **_authed(400, 403, 409, 413)}}},
    "/admin/tiers/{name}": {"patch": {
        "summary": "Change a tier's limits or features (platform admins)",
        "parameters": [param("name", "path", _STR, "Tier name", True)], "requestBody": json_body(_TIER_BODY),
        "responses": {"200": ok("Changed", _ref("Tier")), **_authed(400, 403, 404, 413)}}},
    "/admin/domains": {
        "get": {"summary": "Domains assigned to organisations (platform admins)",
                "responses": {"200": ok("Domains"), **_authed(403)}},
        "post": {"summary": "Assign a domain to an organisation (platform admins)",
                 "requestBody": json_body(admin_platform.DOMAIN_BODY.schema()),
                 "responses": {"201": ok("Assigned"), **_authed(400, 403, 404, 409, 413)}}},
    "/admin/domains/{domain}": {"delete": {
        "summary": "Take a domain back (platform admins)",
        "parameters": [param("domain", "path", _STR, "The domain", True)],
        "responses": {"200": ok("Removed"), **_authed(403, 404, 409)}}},
    "/policy/check": {"post": {
        "summary": "The admission decision for one recipient (local mode: ingest scope; platform: platform admins)",
        "requestBody": json_body(ingest.POLICY_BODY.schema()),
        "responses": {"200": ok("The decision", _ref("PolicyDecision")), **_authed(400, 403, 413)}}},
    "/ingest": {"post": {
        "summary": "Store a raw RFC 5322 message (ingest scope); 202 once it is durable",
        "parameters": [param("mailFrom", "query", _STR, "Envelope sender (message/rfc822 bodies)"),
                       param("rcptTo", "query", {"type": "array", "items": _STR},
                             "Envelope recipients (message/rfc822 bodies); default: the header recipients")],
        "requestBody": {"required": True, "content": {
            "message/rfc822": {"schema": {"type": "string", "format": "binary"}},
            "application/json": {"schema": {"type": "object", "required": ["raw"], "properties": {
                "raw": {"type": "string", "contentEncoding": "base64"}, "mailFrom": _STR,
                "rcptTo": {"type": "array", "items": _STR}}}}}},
        "responses": {"202": ok("Accepted and durable", {"type": "object", "properties": {
            "id": UUID, "status": _STR}}), **_authed(400, 403, 413)}}},
}

MESSAGE_PATCH = {"patch": {
    "summary": "Mark read or unread, and change tags",
    "parameters": [param("message_id", "path", UUID, "Message id", True)],
    "requestBody": json_body(messages.PATCH_BODY.schema()),
    "responses": {"200": ok("The message", _ref("Message")), **_authed(400, 403, 404, 413)}}}

MESSAGES_DELETE = {"delete": {
    "summary": "Delete every message a search selects (write scope; a filter is required)",
    "parameters": _MESSAGE_FILTERS,
    "responses": {"200": ok("How many were deleted", {"type": "object", "properties": {
        "message": _STR, "deleted": _INT}}), **_authed(400, 403)}}}
