"""The OpenAPI paths of accounts: ``/auth``, ``/users``, ``/tokens`` and ``/audit``.

Request bodies come from the same :class:`~logmail.api.body.Body` declarations the handlers check.
"""

from __future__ import annotations

from logmail.api import auth_routes, tokens, users
from logmail.api.openapi_parts import LIMIT, OFFSET, SINCE, UNTIL, UUID, errors, json_body, ok, page_of, param
from logmail.services.audit import ACTIONS
from logmail.services.principal import ALL_SCOPES, ROLES

_NULLABLE_UUID = {"type": ["string", "null"], "format": "uuid"}
_INT = {"type": "integer"}
_NULLABLE_INT = {"type": ["integer", "null"]}
_STR = {"type": "string"}


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _authed(*codes: int) -> dict:
    return errors(*codes, 401, 429, 503)


ACCOUNT_SCHEMAS = {
    "User": {"type": "object", "properties": {
        "id": UUID, "email": _STR, "role": {"type": "string", "enum": list(ROLES)}, "organisationId": UUID,
        "isPlatformAdmin": {"type": "boolean"}, "createdAt": _INT}},
    "Organisation": {"type": "object", "properties": {
        "id": UUID, "name": _STR, "tier": _STR, "status": _STR, "createdAt": _INT}},
    "Tokens": {"type": "object", "required": ["accessToken", "tokenType", "expiresIn"], "properties": {
        "accessToken": {"type": "string", "description": "JWT for 'Authorization: Bearer'"},
        "tokenType": {"type": "string", "enum": ["Bearer"]},
        "expiresIn": {"type": "integer", "description": "Seconds the access token is valid"},
        "refreshToken": {"type": "string", "description": "Only when asked for in the body"},
        "refreshTokenExpiresAt": {"type": "integer", "description": "Only with refreshToken (epoch ms)"},
        "user": _ref("User")}},
    "Session": {"type": "object", "properties": {
        "id": UUID, "device": {"type": "string", "description": "Browser family and platform, e.g. Firefox on Linux"},
        "userAgent": _STR, "ip": {"type": "string", "description": "Address of the last refresh"}, "createdIp": _STR,
        "createdAt": _INT, "lastSeenAt": _INT, "expiresAt": {"type": "integer", "description": "Absolute limit"},
        "current": {"type": "boolean", "description": "The session of this request's access token"}}},
    "SecurityEvent": {"type": "object", "properties": {
        "id": UUID, "event": _STR, "userId": _NULLABLE_UUID, "sessionId": _NULLABLE_UUID, "ip": _STR,
        "userAgent": _STR, "details": {"type": "object"}, "createdAt": _INT}},
    "ApiToken": {"type": "object", "properties": {
        "id": UUID, "name": _STR, "prefix": {"type": "string", "description": "First characters, to tell tokens apart"},
        "scopes": {"type": "array", "items": {"type": "string", "enum": list(ALL_SCOPES)}},
        "createdAt": _INT, "expiresAt": _NULLABLE_INT, "lastUsedAt": _NULLABLE_INT, "createdBy": _NULLABLE_UUID}},
    "NewApiToken": {"allOf": [_ref("ApiToken"), {"type": "object", "properties": {
        "token": {"type": "string", "description": "The token itself: shown this once, never again"}}}]},
    "AuditEntry": {"type": "object", "properties": {
        "id": UUID, "action": {"type": "string", "enum": list(ACTIONS)}, "actorUserId": _NULLABLE_UUID,
        "actorTokenId": _NULLABLE_UUID, "targetType": {"type": ["string", "null"]},
        "targetId": {"type": ["string", "null"]}, "details": {"type": "object"}, "ip": _STR, "createdAt": _INT}},
    "Done": {"type": "object", "properties": {"message": _STR, "id": UUID}},
}

_PUBLIC: list = []  # no credentials needed
_SET_COOKIE = {"Set-Cookie": {"description": f"{auth_routes.REFRESH_COOKIE}: the refresh token (HttpOnly, "
                                             "SameSite=Strict, Path=/auth; Secure over TLS) unless asked for "
                                             "in the body", "schema": {"type": "string"}}}

ACCOUNT_PATHS = {
    "/auth/register": {"post": {
        "summary": "Create an account owning a new organisation (only with auth.open_registration)",
        "security": _PUBLIC, "requestBody": json_body(auth_routes.REGISTER_BODY.schema()),
        "responses": {"201": ok("The user and the organisation", {"type": "object", "properties": {
            "user": _ref("User"), "organisation": _ref("Organisation")}}),
            **errors(400, 403, 409, 413, 429, 503)}}},
    "/auth/login": {"post": {
        "summary": "Log in: an access token, and a refresh token as a cookie (or in the body)",
        "security": _PUBLIC, "requestBody": json_body(auth_routes.LOGIN_BODY.schema()),
        "responses": {"200": {**ok("Logged in", _ref("Tokens")), "headers": _SET_COOKIE},
                      **errors(400, 401, 403, 413, 429, 503)}}},
    "/auth/refresh": {"post": {
        "summary": "Rotate the refresh token (cookie or body) into a new pair; reuse of an old one ends the session",
        "security": _PUBLIC, "requestBody": json_body(auth_routes.REFRESH_BODY.schema(), required=False),
        "responses": {"200": {**ok("A new pair, answered the way the refresh token came", _ref("Tokens")),
                              "headers": _SET_COOKIE},
                      **errors(400, 401, 413, 429, 503)}}},
    "/auth/logout": {"post": {
        "summary": "End this session (the one of the access token)",
        "responses": {"200": ok("Logged out"), **_authed(400)}}},
    "/auth/logout-all": {"post": {
        "summary": "End every session of the calling user",
        "responses": {"200": ok("Sessions ended", {"type": "object", "properties": {
            "message": _STR, "sessionsEnded": _INT}}), **_authed(403)}}},
    "/auth/me": {"get": {
        "summary": "Who is calling: user, organisation, role, scopes and how it authenticated",
        "responses": {"200": ok("The caller", {"type": "object", "properties": {
            "userId": _NULLABLE_UUID, "organisationId": UUID, "role": {"type": ["string", "null"]},
            "scopes": {"type": "array", "items": _STR}, "method": _STR, "sessionId": _NULLABLE_UUID,
            "tokenId": _NULLABLE_UUID, "isPlatformAdmin": {"type": "boolean"}}}), **_authed()}}},
    "/auth/sessions": {"get": {
        "summary": "The calling user's active sessions",
        "responses": {"200": ok("Sessions, most recently seen first", page_of("sessions", _ref("Session"))),
                      **_authed(403)}}},
    "/auth/sessions/{session_id}": {"delete": {
        "summary": "End one of the calling user's sessions",
        "parameters": [param("session_id", "path", UUID, "Session id", True)],
        "responses": {"200": ok("Revoked", _ref("Done")), **_authed(400, 403, 404)}}},
    "/auth/security-events": {"get": {
        "summary": "Security events about the calling user (all=true: the whole organisation, admins only)",
        "parameters": [LIMIT, OFFSET, SINCE, UNTIL,
                       param("event", "query", _STR, "Only this event, e.g. login_failed"),
                       param("all", "query", {"type": "boolean", "default": False},
                             "The whole organisation's events (admins and owners)")],
        "responses": {"200": ok("Events, newest first", page_of("events", _ref("SecurityEvent"))),
                      **_authed(400, 403)}}},
    "/users": {
        "get": {"summary": "The organisation's users (admins and owners)", "parameters": [LIMIT, OFFSET],
                "responses": {"200": ok("Users", page_of("users", _ref("User"))), **_authed(400, 403)}},
        "post": {"summary": "Add a user to the organisation (the invitation path; admins and owners)",
                 "requestBody": json_body(users.CREATE_BODY.schema()),
                 "responses": {"201": ok("Created", _ref("User")), **_authed(400, 403, 409, 413)}}},
    "/users/{user_id}": {"delete": {
        "summary": "Remove a user with their sessions and tokens (admins and owners)",
        "parameters": [param("user_id", "path", UUID, "User id", True)],
        "responses": {"200": ok("Deleted", _ref("Done")), **_authed(400, 403, 404, 409)}}},
    "/tokens": {
        "get": {"summary": "API tokens (every token for admins, one's own for others), never their values",
                "parameters": [LIMIT, OFFSET],
                "responses": {"200": ok("Tokens, newest first", page_of("tokens", _ref("ApiToken"))),
                              **_authed(400, 403)}},
        "post": {"summary": "Create an API token; its value is in this answer only",
                 "requestBody": json_body(tokens.CREATE_BODY.schema()),
                 "responses": {"201": ok("Created", _ref("NewApiToken")), **_authed(400, 403, 413)}}},
    "/tokens/{token_id}": {"delete": {
        "summary": "Revoke an API token, at once",
        "parameters": [param("token_id", "path", UUID, "Token id", True)],
        "responses": {"200": ok("Revoked", _ref("Done")), **_authed(400, 403, 404)}}},
    "/audit": {"get": {
        "summary": "The organisation's audit log, newest first (admins and owners)",
        "parameters": [LIMIT, OFFSET, SINCE, UNTIL,
                       param("actor", "query", UUID, "Only actions of this user"),
                       param("action", "query", {"type": "string", "enum": list(ACTIONS)}, "Only this action")],
        "responses": {"200": ok("Entries", page_of("entries", _ref("AuditEntry"))), **_authed(400, 403)}}},
}
