"""The OpenAPI paths of platform administration (``/admin/users``, ``/admin/organizations``,
``/admin/audit``, ``/admin/stats``, ``/admin/sessions``)."""

from __future__ import annotations

from logmail.api import admin_api
from logmail.api.openapi_parts import LIMIT, OFFSET, SINCE, UNTIL, UUID, errors, json_body, ok, page_of, param
from logmail.services.admin_orgs import STATUSES
from logmail.services.audit import ACTIONS

_INT = {"type": "integer"}
_NULLABLE_INT = {"type": ["integer", "null"]}
_STR = {"type": "string"}
_NULLABLE_STR = {"type": ["string", "null"]}
_BOOL = {"type": "boolean"}


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _admin(*codes: int) -> dict:
    # 403 for everyone without the platform-admin flag (and for read-only tokens asking for changes).
    return errors(*codes, 401, 403, 429, 503)


_USER_ID = param("user_id", "path", UUID, "User id", True)
_ORG_ID = param("org_id", "path", UUID, "Organisation id", True)
_OWNER = {"type": "object", "properties": {"id": UUID, "email": _STR}}
_ORGANIZATION_FIELDS = {
    "id": UUID, "name": _STR, "status": {"type": "string", "enum": list(STATUSES)}, "tier": _STR,
    "isBuiltin": _BOOL, "createdAt": _INT, "suspendedAt": _NULLABLE_INT, "suspendedReason": _NULLABLE_STR,
    "messageCount": _INT, "storageBytes": _INT, "userCount": _INT,
}
_USER_FIELDS = {
    "id": UUID, "email": _STR, "role": {"type": "string", "enum": ["owner", "admin", "member"]},
    "organisationId": UUID, "organisationName": _STR, "organisationStatus": _STR, "isPlatformAdmin": _BOOL,
    "createdAt": _INT,
}
_REVOKED = {"type": "object", "properties": {"revoked": {"type": "integer", "description": "Sessions ended"},
                                             "userId": UUID, "organizationId": UUID}}

ADMIN_SCHEMAS = {
    "AdminUser": {"type": "object", "properties": _USER_FIELDS},
    "AdminUserDetail": {"type": "object", "properties": {
        **_USER_FIELDS, "activeSessions": _INT, "apiTokens": _INT, "mailboxAccounts": _INT,
        "lastLoginAt": _NULLABLE_INT}},
    "AdminOrganization": {"type": "object", "properties": _ORGANIZATION_FIELDS},
    "AdminOrganizationDetail": {"type": "object", "properties": {
        **_ORGANIZATION_FIELDS, "addressCount": _INT, "apiTokenCount": _INT,
        "owners": {"type": "array", "items": _OWNER}}},
    "AdminAuditEntry": {"type": "object", "properties": {
        "id": UUID, "organizationId": UUID, "action": _STR, "actorUserId": _NULLABLE_STR,
        "actorTokenId": _NULLABLE_STR, "targetType": _NULLABLE_STR, "targetId": _NULLABLE_STR,
        "details": {"type": "object", "description": "What changed; {\"via\": \"cli\", \"operator\": ...} when "
                                                     "`logmail admin` made the change"},
        "ip": _STR, "createdAt": _INT}},
    "PlatformStats": {"type": "object", "properties": {
        "users": {"type": "object", "properties": {"total": _INT, "platformAdmins": _INT}},
        "organizations": {"type": "object", "properties": {"total": _INT, "active": _INT, "suspended": _INT}},
        "messages": {"type": "integer", "description": "Messages kept, every organisation's"},
        "storageBytes": _INT,
        "ingestRate": {"type": "object", "properties": {"lastMinute": _INT, "lastHour": _INT,
                                                        "perMinuteLastHour": {"type": "number"}}},
        "queueDepth": {"type": ["integer", "null"], "description": "Ingest jobs waiting; null: queue unreachable"},
        "activeSessions": _INT, "generatedAt": _INT}},
}

ADMIN_PATHS = {
    "/admin/users": {"get": {
        "summary": "Users of every organisation, oldest first (platform admins)",
        "parameters": [LIMIT, OFFSET, param("email", "query", {"type": "string", "maxLength": 320},
                                            "Part of the email address"),
                       param("organization", "query", UUID, "Only this organisation's users")],
        "responses": {"200": ok("A page of users", page_of("users", _ref("AdminUser"))), **_admin(400)}}},
    "/admin/users/{user_id}": {
        "get": {"summary": "One user, with their sessions, tokens and mailbox accounts counted",
                "parameters": [_USER_ID],
                "responses": {"200": ok("The user", _ref("AdminUserDetail")), **_admin(400, 404)}},
        "delete": {
            "summary": "Delete a user: their sessions and API tokens are revoked first. The last owner of an "
                       "organisation needs transferTo or organization=delete (409 otherwise)",
            "parameters": [_USER_ID,
                           param("transferTo", "query", UUID, "Another user of the organisation, made its owner"),
                           param("organization", "query", {"type": "string", "enum": ["delete"]},
                                 "delete: delete the organisation too, with all its mail and content")],
            "responses": {"200": ok("Deleted", {"type": "object", "properties": {
                "message": _STR, "id": UUID, "organization": {"type": "object", "properties": {
                    "id": UUID, "action": {"type": "string", "enum": ["kept", "transferred", "deleted"]},
                    "owner": UUID, "messagesDeleted": _INT}}}}), **_admin(400, 404, 409)}}},
    "/admin/organizations": {"get": {
        "summary": "Every organisation, oldest first (platform admins)",
        "parameters": [LIMIT, OFFSET, param("search", "query", {"type": "string", "maxLength": 200},
                                            "Part of the name"),
                       param("status", "query", {"type": "string", "enum": list(STATUSES)}, "Status"),
                       param("tier", "query", {"type": "string", "maxLength": 64}, "Tier name")],
        "responses": {"200": ok("A page of organisations", page_of("organizations", _ref("AdminOrganization"))),
                      **_admin(400)}}},
    "/admin/organizations/{org_id}": {"get": {
        "summary": "One organisation, with its owners", "parameters": [_ORG_ID],
        "responses": {"200": ok("The organisation", _ref("AdminOrganizationDetail")), **_admin(400, 404)}}},
    "/admin/organizations/{org_id}/tier": {"patch": {
        "summary": "Move an organisation to another tier; its limits apply at once",
        "parameters": [_ORG_ID], "requestBody": json_body(admin_api.TIER_BODY.schema()),
        "responses": {"200": ok("The organisation, as GET shows it", _ref("AdminOrganizationDetail")), **_admin(400, 404, 413)}}},
    "/admin/organizations/{org_id}/suspend": {"post": {
        "summary": "Suspend an organisation: its mail is refused (550 5.7.1), its logins, sessions and tokens "
                   "stop working; nothing is deleted",
        "parameters": [_ORG_ID], "requestBody": json_body(admin_api.SUSPEND_BODY.schema(), required=False),
        "responses": {"200": ok("The organisation, as GET shows it", _ref("AdminOrganizationDetail")), **_admin(400, 404, 409, 413)}}},
    "/admin/organizations/{org_id}/unsuspend": {"post": {
        "summary": "Give a suspended organisation everything back", "parameters": [_ORG_ID],
        "responses": {"200": ok("The organisation, as GET shows it", _ref("AdminOrganizationDetail")), **_admin(400, 404, 409)}}},
    "/admin/audit": {"get": {
        "summary": "The audit log of every organisation, newest first",
        "parameters": [LIMIT, OFFSET, SINCE, UNTIL,
                       param("organization", "query", UUID, "Only this organisation's entries"),
                       param("actor", "query", UUID, "Only this user's"),
                       param("action", "query", {"type": "string", "enum": list(ACTIONS)}, "Only this action")],
        "responses": {"200": ok("A page of entries", page_of("entries", _ref("AdminAuditEntry"))),
                      **_admin(400)}}},
    "/admin/stats": {"get": {
        "summary": "Users, organisations, messages, storage, ingest rate, queue depth and live sessions",
        "responses": {"200": ok("The numbers", _ref("PlatformStats")), **_admin()}}},
    "/admin/sessions/revoke-user/{user_id}": {"post": {
        "summary": "End every session of one user (API tokens keep working)", "parameters": [_USER_ID],
        "responses": {"200": ok("How many ended", _REVOKED), **_admin(400, 404)}}},
    "/admin/sessions/revoke-organization/{org_id}": {"post": {
        "summary": "End every session of an organisation's users (API tokens keep working)",
        "parameters": [_ORG_ID],
        "responses": {"200": ok("How many ended", _REVOKED), **_admin(400, 404)}}},
    "/admin/sessions/revoke-all": {"post": {
        "summary": "Emergency: end every session of every user, the caller's included (API tokens keep working)",
        "responses": {"200": ok("How many ended", _REVOKED), **_admin()}}},
}
