"""Building blocks of the OpenAPI document: error responses, parameters, JSON bodies."""

from __future__ import annotations

from typing import Any

ERROR = {"$ref": "#/components/schemas/Error"}
UUID = {"type": "string", "format": "uuid"}

_ERROR_TEXT = {
    400: "Bad parameters or body (the message names the problem)",
    401: "Missing, invalid or expired credentials",
    403: "The caller's role or token scopes do not allow it",
    404: "Not found (or another organisation's: the answer is the same)",
    409: "Conflicts with what exists",
    413: "Request body too large",
    429: "Rate limit exceeded; wait Retry-After seconds",
    503: "Storage unavailable; retry",
}


def errors(*codes: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for code in codes:
        response: dict[str, Any] = {"description": _ERROR_TEXT[code],
                                    "content": {"application/json": {"schema": ERROR}}}
        if code == 429:
            response["headers"] = {"Retry-After": {"description": "Seconds to wait", "schema": {"type": "integer"}}}
        out[str(code)] = response
    return out


def param(name: str, where: str, schema: dict, description: str, required: bool = False) -> dict[str, Any]:
    return {"name": name, "in": where, "schema": schema, "description": description, "required": required}


def json_body(schema: dict, *, required: bool = True) -> dict[str, Any]:
    return {"required": required, "content": {"application/json": {"schema": schema}}}


def ok(description: str, schema: dict | None = None) -> dict[str, Any]:
    if schema is None:
        return {"description": description}
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def page_of(name: str, item: dict) -> dict[str, Any]:
    return {"type": "object", "properties": {name: {"type": "array", "items": item},
                                             "pagination": {"$ref": "#/components/schemas/Pagination"}}}


LIMIT = param("limit", "query", {"type": "integer", "minimum": 1, "maximum": 1000, "default": 50}, "Page size")
OFFSET = param("offset", "query", {"type": "integer", "minimum": 0, "default": 0}, "Rows to skip")
SINCE = param("since", "query", {"type": "integer", "minimum": 0}, "At or after (epoch ms)")
UNTIL = param("until", "query", {"type": "integer", "minimum": 0}, "Before (epoch ms)")
