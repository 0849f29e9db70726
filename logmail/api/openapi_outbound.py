"""The OpenAPI paths of notifications (``/notifications``) and the outbound queue (``/admin/emails``)."""

from __future__ import annotations

from logmail.api.admin_emails import MAX_WINDOW_HOURS
from logmail.api.notifications import PREFERENCES_BODY
from logmail.api.openapi_parts import LIMIT, OFFSET, UUID, errors, json_body, ok, page_of, param
from logmail.services.notifications import KINDS, SEVERITIES
from logmail.services.outbound import KINDS as EMAIL_KINDS
from logmail.store.outbound import STATUSES

_INT = {"type": "integer"}
_NULLABLE_INT = {"type": ["integer", "null"]}
_STR = {"type": "string"}
_NULLABLE_STR = {"type": ["string", "null"]}
_BOOL = {"type": "boolean"}


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _authed(*codes: int) -> dict:
    return errors(*codes, 401, 429, 503)


_EMAIL_ID = param("email_id", "path", UUID, "Outbound mail id", True)
_PREFERENCES = {"type": "object", "properties": {"preferences": {
    "type": "object", "description": "Per kind: shown in the app, and sent by email",
    "additionalProperties": {"type": "object", "properties": {"inApp": _BOOL, "email": _BOOL,
                                                              "description": _STR}}}}}
_EMAIL_FIELDS = {
    "id": UUID, "kind": {"type": "string", "enum": list(EMAIL_KINDS)},
    "organizationId": {"type": ["string", "null"], "format": "uuid"},
    "userId": {"type": ["string", "null"], "format": "uuid"},
    "recipient": _STR, "subject": _STR, "status": {"type": "string", "enum": list(STATUSES)},
    "attemptCount": _INT, "maxAttempts": _INT, "nextAttemptAt": _NULLABLE_INT, "expiresAt": _INT,
    "lastError": _NULLABLE_STR, "messageId": _STR,
    "deliveryConfirmed": {"type": "boolean", "description": "false for a mail marked sent whose sender stopped "
                                                            "before the server's final reply"},
    "createdAt": _INT, "updatedAt": _INT, "sentAt": _NULLABLE_INT,
}
_ATTEMPT = {"type": "object", "properties": {
    "server": {"type": "string", "description": "host:port"},
    "outcome": {"type": "string", "enum": ["started", "delivering", "sent", "temporary", "permanent", "unknown"]},
    "code": _NULLABLE_INT, "message": _NULLABLE_STR, "durationMs": _INT, "createdAt": _INT}}

OUTBOUND_SCHEMAS = {
    "Notification": {"type": "object", "properties": {
        "id": UUID, "kind": {"type": "string", "enum": list(KINDS)},
        "severity": {"type": "string", "enum": list(SEVERITIES)}, "title": _STR, "body": _STR,
        "data": {"type": "object"}, "read": _BOOL, "readAt": _NULLABLE_INT, "emailed": _BOOL, "createdAt": _INT}},
    "OutboundEmail": {"type": "object", "properties": _EMAIL_FIELDS},
    "OutboundEmailDetail": {"type": "object", "properties": {
        **_EMAIL_FIELDS, "textBody": _STR, "htmlBody": _NULLABLE_STR, "claimedBy": _NULLABLE_STR,
        "claimedUntil": _NULLABLE_INT, "attempts": {"type": "array", "items": _ATTEMPT}}},
}

_PROCESSED = {"type": "object", "properties": {
    "processed": {"type": "object", "properties": {k: _INT for k in (
        "expired", "reconciled", "sent", "unconfirmed", "retrying", "failed")}},
    "configured": _BOOL}}
_STATS = {"type": "object", "properties": {
    "windowHours": _INT, "since": _INT, "total": _INT, "configured": _BOOL,
    "counts": {"type": "object", "properties": {s: _INT for s in STATUSES}},
    "attempts": {"type": "array", "items": {"type": "object", "properties": {
        "server": _STR, "outcome": _STR, "count": _INT, "averageDurationMs": _NULLABLE_INT}}}}}

OUTBOUND_PATHS = {
    "/notifications": {"get": {
        "summary": "The caller's notifications, newest first (users only; a token without a user gets 403)",
        "parameters": [LIMIT, OFFSET, param("unread", "query", {"type": "string", "enum": ["true", "false"]},
                                            "true: only unread ones")],
        "responses": {"200": ok("A page of notifications; pagination.unread counts the unread ones",
                                page_of("notifications", _ref("Notification"))), **_authed(400, 403)}}},
    "/notifications/{notification_id}/read": {"post": {
        "summary": "Mark one of the caller's notifications read",
        "parameters": [param("notification_id", "path", UUID, "Notification id", True)],
        "responses": {"200": ok("The notification", _ref("Notification")), **_authed(400, 403, 404)}}},
    "/notifications/read-all": {"post": {
        "summary": "Mark all of the caller's notifications read",
        "responses": {"200": ok("How many were unread", {"type": "object", "properties": {"marked": _INT}}),
                      **_authed(403)}}},
    "/notifications/preferences": {
        "get": {"summary": "Per kind of notification: in the app, by email (defaults: both)",
                "responses": {"200": ok("Preferences", _PREFERENCES), **_authed(403)}},
        "put": {"summary": "Change the preferences of some kinds; the others stay",
                "requestBody": json_body(PREFERENCES_BODY.schema()),
                "responses": {"200": ok("Preferences", _PREFERENCES), **_authed(400, 403, 413)}}},
    "/admin/emails": {"get": {
        "summary": "Outbound mail, newest first (platform admins)",
        "parameters": [LIMIT, OFFSET, param("status", "query", {"type": "string", "enum": list(STATUSES)}, "Status"),
                       param("kind", "query", {"type": "string", "enum": list(EMAIL_KINDS)}, "Kind")],
        "responses": {"200": ok("A page of mail", page_of("emails", _ref("OutboundEmail"))), **_authed(400, 403)}}},
    "/admin/emails/stats": {"get": {
        "summary": "Outbound mail queued in a window, by status, and the attempts by server (platform admins)",
        "parameters": [param("hours", "query", {"type": "integer", "minimum": 1, "maximum": MAX_WINDOW_HOURS,
                                                "default": 24}, "Window in hours")],
        "responses": {"200": ok("Counts", _STATS), **_authed(400, 403)}}},
    "/admin/emails/process": {"post": {
        "summary": "Expire, reconcile and send what is due now, as the retry job does (platform admins)",
        "responses": {"200": ok("What happened", _PROCESSED), **_authed(403)}}},
    "/admin/emails/{email_id}": {"get": {
        "summary": "One outbound mail with its bodies and every attempt (platform admins)",
        "parameters": [_EMAIL_ID],
        "responses": {"200": ok("The mail", _ref("OutboundEmailDetail")), **_authed(400, 403, 404)}}},
    "/admin/emails/{email_id}/retry": {"post": {
        "summary": "Send a failed, expired or unconfirmed mail again, with fresh attempts (platform admins)",
        "parameters": [_EMAIL_ID],
        "responses": {"200": ok("The mail, queued", _ref("OutboundEmailDetail")), **_authed(400, 403, 404, 409)}}},
}
