"""The OpenAPI paths of health monitoring."""

from __future__ import annotations

from logmail.api.openapi_parts import LIMIT, OFFSET, errors, ok, page_of, param

_SAMPLE = {"type": "object", "properties": {
    "service": {"type": "string"}, "status": {"type": "string", "enum": ["up", "degraded", "down"]},
    "latencyMs": {"type": ["number", "null"]}, "detail": {"type": ["string", "null"]},
    "checkedAt": {"type": "integer"}}}
_REPORT = {"type": "object", "properties": {
    "status": {"type": "string", "enum": ["healthy", "degraded", "down", "unknown"]},
    "services": {"type": "array", "items": _SAMPLE}}}

HEALTH_PATHS = {
    "/health/detailed": {"get": {
        "summary": "Every service checked now, with its latency; 503 when the database, content store or queue is down",
        "responses": {"200": ok("Healthy or degraded", _REPORT), "503": ok("Down", _REPORT),
                      **errors(401, 403, 429)}}},
    "/admin/health": {"get": {
        "summary": "The last sample of every service (platform admins)",
        "responses": {"200": ok("Latest samples", _REPORT), **errors(401, 403, 429, 503)}}},
    "/admin/health/history": {"get": {
        "summary": "Stored samples, newest first (platform admins)",
        "parameters": [param("service", "query", {"type": "string"}, "Only this service"),
                       param("hours", "query", {"type": "integer", "minimum": 1, "maximum": 2160, "default": 24},
                             "How far back"), LIMIT, OFFSET],
        "responses": {"200": ok("Samples", page_of("samples", _SAMPLE)), **errors(400, 401, 403, 429, 503)}}},
}
