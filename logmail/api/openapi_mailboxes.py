"""The OpenAPI paths of ``/api/accounts``: external IMAP/POP3 mailboxes logmail pulls."""

from __future__ import annotations

from logmail.api.openapi_parts import LIMIT, OFFSET, UUID, errors, json_body, ok, page_of, param

_INT = {"type": "integer"}
_NULLABLE_INT = {"type": ["integer", "null"]}
_STR = {"type": "string"}
_REF = {"$ref": "#/components/schemas/MailAccount"}
_ACCOUNT_ID = param("account_id", "path", UUID, "Account id", True)


def _authed(*codes: int) -> dict:
    return errors(*codes, 401, 429, 503)


_FIELDS = {
    "accountName": {"type": "string", "minLength": 1, "maxLength": 200},
    "emailAddress": {"type": "string", "format": "email", "maxLength": 320},
    "protocol": {"type": "string", "enum": ["imap", "pop3"]},
    "hostname": {"type": "string", "minLength": 1, "maxLength": 255},
    "port": {"type": "integer", "minimum": 1, "maximum": 65535},
    "encryption": {"type": "string", "enum": ["none", "tls", "starttls"], "default": "tls"},
    "username": {"type": "string", "minLength": 1, "maxLength": 320},
    "password": {"type": "string", "minLength": 1, "maxLength": 1000, "writeOnly": True},
    "isSyncEnabled": {"type": "boolean", "default": True},
    "syncInterval": {"type": "integer", "minimum": 60, "maximum": 604800, "default": 300,
                     "description": "Seconds; at least accounts.min_sync_interval"},
    "folders": {"type": "array", "minItems": 1, "maxItems": 50, "items": {"type": "string"},
                "description": "IMAP folders to pull (default INBOX)"},
    "useIdle": {"type": "boolean", "default": False, "description": "IMAP IDLE: pull as soon as mail arrives"},
}
_CREATE = {"type": "object", "additionalProperties": False, "properties": _FIELDS,
           "required": ["accountName", "emailAddress", "protocol", "hostname", "port", "username", "password"]}
_UPDATE = {"type": "object", "additionalProperties": False, "properties": _FIELDS, "minProperties": 1}

MAILBOX_SCHEMAS = {
    "MailAccount": {"type": "object", "properties": {
        "id": UUID, "tenantId": UUID, "userId": {"type": ["string", "null"], "format": "uuid"},
        "accountName": _STR, "emailAddress": _STR, "protocol": _STR, "hostname": _STR, "port": _INT,
        "encryption": _STR, "username": _STR, "folders": {"type": "array", "items": _STR},
        "useIdle": {"type": "boolean"}, "isSyncEnabled": {"type": "boolean"}, "syncInterval": _INT,
        "lastSyncAt": _NULLABLE_INT, "isSyncing": {"type": "boolean"}, "isEnabled": {"type": "boolean"},
        "createdAt": _INT, "updatedAt": _INT, "lastError": {"type": ["string", "null"]},
        "lastErrorAt": _NULLABLE_INT, "authFailed": {"type": "boolean"}, "nextSyncAt": _NULLABLE_INT,
        "syncStats": {"type": "object"}}},
}

MAILBOX_PATHS = {
    "/api/accounts": {
        "get": {"summary": "The caller's mailbox accounts", "parameters": [LIMIT, OFFSET],
                "responses": {"200": ok("Accounts", page_of("accounts", _REF)), **_authed(400, 403)}},
        "post": {"summary": "Register an IMAP or POP3 mailbox for logmail to pull",
                 "requestBody": json_body(_CREATE),
                 "responses": {"201": ok("Created (the password is never shown)", _REF),
                               **_authed(400, 403, 409, 413)}}},
    "/api/accounts/{account_id}": {
        "get": {"summary": "One of the caller's accounts", "parameters": [_ACCOUNT_ID],
                "responses": {"200": ok("The account", _REF), **_authed(400, 403, 404)}},
        "put": {"summary": "Change an account (any subset of the fields)", "parameters": [_ACCOUNT_ID],
                "requestBody": json_body(_UPDATE),
                "responses": {"200": ok("Changed", _REF), **_authed(400, 403, 404, 409, 413)}},
        "delete": {"summary": "Delete an account (soft: disabled, never synced again)", "parameters": [_ACCOUNT_ID],
                   "responses": {"200": ok("Deleted", {"type": "object", "properties": {
                       "message": _STR, "id": UUID}}), **_authed(400, 403, 404)}}},
    "/api/accounts/{account_id}/sync": {"post": {
        "summary": "Sync now (within a few seconds)", "parameters": [_ACCOUNT_ID],
        "responses": {"202": ok("Requested"), **_authed(400, 403, 404)}}},
    "/api/accounts/{account_id}/test": {"post": {
        "summary": "Check that logmail can log in, importing nothing", "parameters": [_ACCOUNT_ID],
        "responses": {"200": ok("The outcome", {"type": "object", "properties": {
            "ok": {"type": "boolean"}, "error": _STR, "message": _STR}}), **_authed(400, 403, 404)}}},
}
