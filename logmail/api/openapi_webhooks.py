"""The OpenAPI paths of ``/webhooks``: signed HTTP callbacks (Standard Webhooks) and their deliveries."""

from __future__ import annotations

from logmail.api.openapi_parts import LIMIT, OFFSET, UUID, errors, json_body, ok, page_of, param
from logmail.api.webhooks import CREATE_BODY, UPDATE_BODY
from logmail.store.webhooks import STATUSES

_INT = {"type": "integer"}
_NULLABLE_INT = {"type": ["integer", "null"]}
_NULLABLE_STR = {"type": ["string", "null"]}
_STR = {"type": "string"}
_HOOK = {"$ref": "#/components/schemas/Webhook"}
_DELIVERY = {"$ref": "#/components/schemas/WebhookDelivery"}
_WEBHOOK_ID = param("webhook_id", "path", UUID, "Webhook id", True)
_DELIVERY_ID = param("delivery_id", "path", UUID, "Delivery id (the webhook-id header of its requests)", True)


def _authed(*codes: int) -> dict:
    return errors(*codes, 401, 429, 503)


_UPDATE = {**UPDATE_BODY.schema(), "minProperties": 1}

WEBHOOK_SCHEMAS = {
    "Webhook": {"type": "object", "properties": {
        "id": UUID, "url": _STR, "description": _STR, "events": {"type": "array", "items": _STR},
        "isEnabled": {"type": "boolean"}, "disabledReason": _NULLABLE_STR, "consecutiveFailures": _INT,
        "createdAt": _INT, "updatedAt": _INT}},
    "WebhookWithSecret": {"allOf": [_HOOK, {"type": "object", "properties": {"secret": {
        "type": "string", "description": "whsec_ + base64 of the key that signs every request; shown only in "
                                         "this answer"}}}]},
    "WebhookAttempt": {"type": "object", "properties": {
        "attempt": _INT, "at": _INT, "statusCode": _NULLABLE_INT, "durationMs": _INT,
        "response": {**_NULLABLE_STR, "description": "The first 2048 characters of the reply"},
        "error": _NULLABLE_STR}},
    "WebhookDelivery": {"type": "object", "properties": {
        "id": UUID, "webhookId": UUID, "event": _STR, "status": {"type": "string", "enum": list(STATUSES)},
        "attempts": {"type": "integer", "description": "Attempts since the delivery was created or replayed"},
        "nextAttemptAt": _NULLABLE_INT, "lastStatusCode": _NULLABLE_INT, "lastResponse": _NULLABLE_STR,
        "lastError": _NULLABLE_STR, "lastDurationMs": _NULLABLE_INT,
        "history": {"type": "array", "items": {"$ref": "#/components/schemas/WebhookAttempt"}},
        "payload": {"type": "object", "description": "The JSON body sent: type, timestamp and data"},
        "createdAt": _INT, "updatedAt": _INT, "deliveredAt": _NULLABLE_INT}},
}

WEBHOOK_PATHS = {
    "/webhooks": {
        "get": {"summary": "The organisation's webhook endpoints", "parameters": [LIMIT, OFFSET],
                "responses": {"200": ok("Endpoints", page_of("webhooks", _HOOK)), **_authed(400, 403)}},
        "post": {"summary": "Add an endpoint (needs a tier with webhooks); the answer shows its signing secret once",
                 "requestBody": json_body(CREATE_BODY.schema()),
                 "responses": {"201": ok("Created", {"$ref": "#/components/schemas/WebhookWithSecret"}),
                               **_authed(400, 403, 409, 413)}}},
    "/webhooks/{webhook_id}": {
        "get": {"summary": "One endpoint", "parameters": [_WEBHOOK_ID],
                "responses": {"200": ok("The endpoint", _HOOK), **_authed(400, 403, 404)}},
        "patch": {"summary": "Change an endpoint's URL, events, description or whether it is enabled",
                  "parameters": [_WEBHOOK_ID], "requestBody": json_body(_UPDATE),
                  "responses": {"200": ok("Changed", _HOOK), **_authed(400, 403, 404, 413)}},
        "delete": {"summary": "Delete an endpoint and its delivery history", "parameters": [_WEBHOOK_ID],
                   "responses": {"200": ok("Deleted", {"type": "object", "properties": {"message": _STR, "id": UUID}}),
                                 **_authed(400, 403, 404)}}},
    "/webhooks/{webhook_id}/secret": {"post": {
        "summary": "Replace the signing secret; the answer shows the new one once", "parameters": [_WEBHOOK_ID],
        "responses": {"200": ok("The endpoint and its new secret", {"$ref": "#/components/schemas/WebhookWithSecret"}),
                      **_authed(400, 403, 404)}}},
    "/webhooks/{webhook_id}/test": {"post": {
        "summary": "Queue a webhook.test event for this endpoint", "parameters": [_WEBHOOK_ID],
        "responses": {"202": ok("Queued", _DELIVERY), **_authed(400, 403, 404, 409)}}},
    "/webhooks/{webhook_id}/deliveries": {"get": {
        "summary": "Deliveries to this endpoint, newest first (kept webhooks.history_days days)",
        "parameters": [_WEBHOOK_ID, LIMIT, OFFSET,
                       param("status", "query", {"type": "string", "enum": list(STATUSES)}, "Only this status")],
        "responses": {"200": ok("Deliveries", page_of("deliveries", _DELIVERY)), **_authed(400, 403, 404)}}},
    "/webhooks/{webhook_id}/deliveries/{delivery_id}": {"get": {
        "summary": "One delivery with every attempt", "parameters": [_WEBHOOK_ID, _DELIVERY_ID],
        "responses": {"200": ok("The delivery", _DELIVERY), **_authed(400, 403, 404)}}},
    "/webhooks/{webhook_id}/deliveries/{delivery_id}/replay": {"post": {
        "summary": "Send a delivery again now, with the same webhook-id and body",
        "parameters": [_WEBHOOK_ID, _DELIVERY_ID],
        "responses": {"202": ok("Queued", _DELIVERY), **_authed(400, 403, 404, 409)}}},
}
