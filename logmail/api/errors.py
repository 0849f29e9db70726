"""One error handler for the API: every failure is ``{"error", "message"}`` with the right status."""

from __future__ import annotations

import logging

from sanic import Request, Sanic
from sanic.exceptions import SanicException
from sanic.response import JSONResponse, json

from logmail.errors import LogmailError, TemporaryError

log = logging.getLogger("logmail.api")

_SANIC_NAMES = {
    400: "Bad request", 401: "Unauthorised", 403: "Forbidden", 404: "Not found", 405: "Method not allowed",
    408: "Request timeout", 413: "Payload too large", 416: "Range not satisfiable", 429: "Rate limit exceeded",
    503: "Service unavailable",
}


def error_response(status: int, error: str, message: str, headers: dict | None = None) -> JSONResponse:
    return json({"error": error, "message": message}, status=status, headers=headers)


def _allowed_methods(request: Request) -> str:
    """RFC 9110 wants the Allow header on a 405; the router omits it for paths with parameters."""
    allowed = []
    for method in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"):
        try:
            request.app.router.get(request.path, method, request.headers.get("host"))
        except SanicException:
            continue
        allowed.append(method)
    return ", ".join(allowed)


def install_error_handlers(app: Sanic) -> None:
    @app.exception(LogmailError)
    async def _logmail_error(request: Request, exc: LogmailError):
        if isinstance(exc, TemporaryError):
            log.warning("%s %s: %s", request.method, request.path, exc.message)
        return error_response(exc.status, exc.error, exc.message, exc.headers or None)

    @app.exception(SanicException)
    async def _sanic_error(request: Request, exc: SanicException):
        status = getattr(exc, "status_code", 500) or 500
        if status >= 500:
            log.error("%s %s failed: %s", request.method, request.path, exc)
            return error_response(status, _SANIC_NAMES.get(status, "Internal error"), "the server could not answer")
        message = str(exc) or _SANIC_NAMES.get(status, "error")
        if status == 404:
            message = f"no such endpoint: {request.method} {request.path}"
        headers = dict(getattr(exc, "headers", None) or {})
        if status == 405:
            message = f"{request.method} is not allowed on {request.path}"
            headers.setdefault("Allow", _allowed_methods(request))
        return error_response(status, _SANIC_NAMES.get(status, "Error"), message, headers or None)

    @app.exception(Exception)
    async def _unexpected(request: Request, exc: Exception):
        # Details stay in the log; the caller learns only that it was our fault.
        log.exception("%s %s failed", request.method, request.path)
        return error_response(500, "Internal error", "an internal error occurred; it has been logged")
