"""The OpenAPI path of the live stream of new mail, ``GET /events``."""

from __future__ import annotations

from logmail.api.openapi_parts import UUID, errors, param

_EVENT_ID = {"type": "string", "maxLength": 100, "pattern": "^[A-Za-z0-9_-]*$"}


def _event(name: str, data: dict) -> dict:
    return {"type": "object", "required": ["event", "data", "id"], "properties": {
        "event": {"const": name}, "id": {"type": "string"},
        "data": {"type": "string", "contentMediaType": "application/json", "contentSchema": data}}}


# One event of the stream (as Open API 3.2's itemSchema of text/event-stream describes it).
_EVENT = {"anyOf": [
    {"type": "object", "required": ["retry"], "properties": {"retry": {"type": "integer"}}},
    _event("ready", {"type": "object", "required": ["organisationId"], "properties": {"organisationId": UUID}}),
    _event("message.received", {"$ref": "#/components/schemas/MessageSummary"}),
]}

_FORMAT = (
    "Server-sent events (text/event-stream), one block per event, blocks separated by a blank line. "
    "First `retry: 2000`, then `id: <id>` `event: ready` `data: {\"organisationId\": \"<uuid>\"}` once "
    "connected; then for every message stored in the caller's organisation from then on, oldest first, "
    "`id: <id>` `event: message.received` `data: <a MessageSummary, exactly as GET /messages lists it>`; "
    "and a comment line `: keep-alive` every 15 seconds. Ids are opaque; reconnect with Last-Event-ID "
    "to get what arrived since. The stream ends after `timeout` seconds, when the credentials stop being "
    "valid (checked every 30 seconds) and when the server stops; clients reconnect.")

EVENT_PATHS = {
    "/events": {"get": {
        "summary": "New mail of the caller's organisation, live (server-sent events)",
        "description": _FORMAT,
        "parameters": [
            param("Last-Event-ID", "header", _EVENT_ID,
                  "Resume after this event id: first everything that arrived since, in order, 100 at a time"),
            param("lastEventId", "query", _EVENT_ID, "As the Last-Event-ID header, for clients that cannot "
                                                     "set headers (the header wins when both are sent)"),
            param("timeout", "query", {"type": "integer", "minimum": 1, "maximum": 3600},
                  "End the stream cleanly after this many seconds (default: never)"),
        ],
        "responses": {
            "200": {"description": "The stream; it stays open",
                    "headers": {"Cache-Control": {"description": "no-cache", "schema": {"type": "string"}}},
                    "content": {"text/event-stream": {"schema": _EVENT}}},
            **errors(400, 401, 403, 429, 503)}}},
}
