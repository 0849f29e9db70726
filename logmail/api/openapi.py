"""The OpenAPI 3.1 document at ``/openapi.json``, kept beside the routes it describes.

A test checks that every route the app serves is described here and nothing else.
"""

from __future__ import annotations

from sanic import Blueprint, Request
from sanic.response import json

from logmail import __version__
from logmail.api.openapi_accounts import ACCOUNT_PATHS, ACCOUNT_SCHEMAS
from logmail.api.openapi_billing import BILLING_PATHS, BILLING_SCHEMAS
from logmail.api.openapi_events import EVENT_PATHS
from logmail.api.openapi_admin import ADMIN_PATHS, ADMIN_SCHEMAS
from logmail.api.openapi_parts import UUID, errors, param
from logmail.api.openapi_health import HEALTH_PATHS
from logmail.api.openapi_mailboxes import MAILBOX_PATHS, MAILBOX_SCHEMAS
from logmail.api.openapi_outbound import OUTBOUND_PATHS, OUTBOUND_SCHEMAS
from logmail.api.openapi_platform import MESSAGE_PATCH, MESSAGES_DELETE, PLATFORM_PATHS, PLATFORM_SCHEMAS
from logmail.api.openapi_webhooks import WEBHOOK_PATHS, WEBHOOK_SCHEMAS

bp = Blueprint("openapi")



def _errors(*codes: int) -> dict:
    # Every authenticated endpoint may also answer 429 (the per-user and per-token rate limit).
    return errors(*codes, 429)


_MESSAGE_ID = param("message_id", "path", UUID, "Message id", True)

DOCUMENT = {
    "openapi": "3.1.0",
    "info": {"title": "logmail API", "version": __version__,
             "description": "Captured mail, over HTTP. Every endpoint except /health, /openapi.json, the "
                            "login, registration and refresh endpoints and the Stripe webhook (signed by Stripe) "
                            "needs `Authorization: Bearer <token>` "
                            "(an API token or an access token from /auth/login). Times are epoch milliseconds."},
    "components": {
        "securitySchemes": {
            "bearer": {"type": "http", "scheme": "bearer",
                       "description": "An API token (lm_...) or an access token (JWT) from /auth/login"},
            "trustedHeaders": {"type": "apiKey", "in": "header", "name": "X-User-ID",
                               "description": "Only with auth.trust_headers: X-User-ID and X-Tenant-ID, set by a "
                                              "trusted gateway"}},
        "schemas": {
            "Error": {"type": "object", "required": ["error", "message"],
                      "properties": {"error": {"type": "string"}, "message": {"type": "string"}}},
            "Address": {"type": "object", "properties": {"name": {"type": "string"}, "address": {"type": "string"}}},
            "Envelope": {"type": "object", "properties": {"mailFrom": {"type": "string"},
                                                          "rcptTo": {"type": "array", "items": {"type": "string"}}}},
            "MessageSummary": {"type": "object", "properties": {
                "id": UUID, "messageId": {"type": ["string", "null"]}, "subject": {"type": "string"},
                "from": {"oneOf": [{"$ref": "#/components/schemas/Address"}, {"type": "null"}]},
                "to": {"type": "array", "items": {"$ref": "#/components/schemas/Address"}},
                "cc": {"type": "array", "items": {"$ref": "#/components/schemas/Address"}},
                "date": {"type": ["integer", "null"]}, "receivedAt": {"type": "integer"}, "size": {"type": "integer"},
                "snippet": {"type": "string"}, "attachmentCount": {"type": "integer"}, "isRead": {"type": "boolean"},
                "source": {"type": "string"}, "envelope": {"$ref": "#/components/schemas/Envelope"},
                "hasParseErrors": {"type": "boolean"},
                "tags": {"type": "array", "items": {"type": "string"}}}},
            "Attachment": {"type": "object", "properties": {
                "id": UUID, "filename": {"type": ["string", "null"]}, "contentType": {"type": "string"},
                "size": {"type": "integer"}, "contentId": {"type": ["string", "null"]}, "inline": {"type": "boolean"},
                "sha256": {"type": "string"}}},
            "Message": {"allOf": [{"$ref": "#/components/schemas/MessageSummary"}, {"type": "object", "properties": {
                "inReplyTo": {"type": ["string", "null"]}, "references": {"type": "array", "items": {"type": "string"}},
                "headers": {"type": "array", "items": {"type": "object", "properties": {
                    "name": {"type": "string"}, "value": {"type": "string"}}}},
                "text": {"type": ["string", "null"]},
                "html": {"type": ["string", "null"], "description": "Sanitised server-side"},
                "attachments": {"type": "array", "items": {"$ref": "#/components/schemas/Attachment"}},
                "parseErrors": {"type": "array", "items": {"type": "string"}}}}]},
            "Pagination": {"type": "object", "properties": {
                "total": {"type": "integer"}, "limit": {"type": "integer"}, "offset": {"type": "integer"},
                "nextCursor": {"type": ["string", "null"]}}},
            **ACCOUNT_SCHEMAS,
            **BILLING_SCHEMAS,
            **ADMIN_SCHEMAS,
            **PLATFORM_SCHEMAS,
            **MAILBOX_SCHEMAS,
            **OUTBOUND_SCHEMAS,
            **WEBHOOK_SCHEMAS,
        },
    },
    "security": [{"bearer": []}, {"trustedHeaders": []}],
    "paths": {
        "/health": {"get": {"summary": "Liveness", "security": [], "responses": {"200": {"description": "Alive"}}}},
        "/openapi.json": {"get": {"summary": "This document", "security": [],
                                  "responses": {"200": {"description": "OpenAPI document"}}}},
        "/messages": {"get": {
            "summary": "List messages, newest first",
            "parameters": [
                param("limit", "query", {"type": "integer", "minimum": 1, "maximum": 1000, "default": 50}, "Page size"),
                param("offset", "query", {"type": "integer", "minimum": 0, "default": 0}, "Rows to skip"),
                param("cursor", "query", {"type": "string"}, "nextCursor of the previous page (stable while mail arrives)"),
                param("to", "query", {"type": "string"}, "Recipient address (envelope, To or Cc)"),
                param("from", "query", {"type": "string"}, "Sender address"),
                param("since", "query", {"type": "integer", "minimum": 0}, "Received at or after (epoch ms)"),
                param("until", "query", {"type": "integer", "minimum": 0}, "Received before (epoch ms)"),
                param("q", "query", {"type": "string", "maxLength": 1000}, (
                    "Search, answered from indexes. Terms separated by spaces must all match: words and "
                    '"quoted phrases" (subject, addresses and text), from:, to: (envelope, To or Cc), cc: '
                    "(a whole address matches exactly; words match names and addresses), subject:, "
                    "message-id: (angle brackets optional), tag:, has:attachment, is:read, is:unread, "
                    "larger: and smaller: (500, 10k, 2M, 1.5MB; units of 1024), after: (on or after) and "
                    "before: (strictly before) a UTC date 2026-01-31 or ISO date-time, on the received time. "
                    'Values may be quoted (from:"Jane Doe"); a leading - excludes (-word, -from:x). '
                    "Example: invoice from:billing@shop.example -tag:paid after:2026-01-01. A query that "
                    "cannot be read is a 400 naming the character where it goes wrong.")),
            ],
            "responses": {"200": {"description": "A page of messages", "content": {"application/json": {"schema": {
                "type": "object", "properties": {
                    "messages": {"type": "array", "items": {"$ref": "#/components/schemas/MessageSummary"}},
                    "pagination": {"$ref": "#/components/schemas/Pagination"}}}}}},
                **_errors(400, 401, 403, 503)}},
            **MESSAGES_DELETE},
        "/messages/{message_id}": {
            **MESSAGE_PATCH,
            "get": {"summary": "Read one message", "parameters": [_MESSAGE_ID],
                    "responses": {"200": {"description": "The message", "content": {"application/json": {
                        "schema": {"$ref": "#/components/schemas/Message"}}}}, **_errors(400, 401, 403, 404, 503)}},
            "delete": {"summary": "Delete a message and its content", "parameters": [_MESSAGE_ID],
                       "responses": {"200": {"description": "Deleted"}, **_errors(400, 401, 403, 404, 503)}},
        },
        "/messages/{message_id}/raw": {"get": {
            "summary": "The original message, byte for byte", "parameters": [_MESSAGE_ID],
            "responses": {"200": {"description": "RFC 5322 message", "content": {"message/rfc822": {}}},
                          **_errors(400, 401, 403, 404, 503)}}},
        "/messages/{message_id}/attachments/{attachment_id}": {"get": {
            "summary": "Download one attachment",
            "parameters": [_MESSAGE_ID, param("attachment_id", "path", UUID, "Attachment id", True)],
            "responses": {"200": {"description": "The attachment with its type and filename"},
                          **_errors(400, 401, 403, 404, 503)}}},
        **ACCOUNT_PATHS,
        **BILLING_PATHS,
        **ADMIN_PATHS,
        **PLATFORM_PATHS,
        **MAILBOX_PATHS,
        **OUTBOUND_PATHS,
        **WEBHOOK_PATHS,
        **HEALTH_PATHS,
        **EVENT_PATHS,
    },
}


@bp.get("/openapi.json")
async def openapi(request: Request):
    return json(DOCUMENT)
