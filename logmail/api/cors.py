"""CORS for the origins listed in ``api.cors_origins``, and for nobody else.

A listed origin gets its preflight (``OPTIONS`` with ``Access-Control-Request-Method``) answered
with 204 before authentication (browsers never send credentials on a preflight), and every actual
response, errors included, carries the headers that let its page read the answer. Credentials are
allowed, so the refresh cookie works from that origin. Unlisted origins get no CORS headers at all,
which is how a browser is told no.
"""

from __future__ import annotations

from sanic import Request
from sanic.response import HTTPResponse

ALLOWED_METHODS = "GET, POST, DELETE, OPTIONS"
ALLOWED_HEADERS = "Authorization, Content-Type"
EXPOSED_HEADERS = "Retry-After, Content-Disposition"
PREFLIGHT_MAX_AGE = "600"


def install_cors(app, origins: list[str]) -> None:
    allowed = frozenset(o.rstrip("/") for o in origins)
    if not allowed:
        return

    def headers_for(request: Request) -> dict[str, str] | None:
        origin = request.headers.get("origin")
        if not origin or origin not in allowed:
            return None
        return {"Access-Control-Allow-Origin": origin, "Access-Control-Allow-Credentials": "true",
                "Vary": "Origin"}

    @app.on_request
    async def _preflight(request: Request):
        if request.method != "OPTIONS" or "access-control-request-method" not in request.headers:
            return None
        headers = headers_for(request)
        if headers is None:
            return HTTPResponse(status=204, headers={"Vary": "Origin"})
        return HTTPResponse(status=204, headers={
            **headers, "Access-Control-Allow-Methods": ALLOWED_METHODS,
            "Access-Control-Allow-Headers": ALLOWED_HEADERS, "Access-Control-Max-Age": PREFLIGHT_MAX_AGE})

    @app.on_response
    async def _cors_headers(request: Request, response: HTTPResponse):
        if request.method == "OPTIONS":
            return
        headers = headers_for(request)
        if headers is not None:
            response.headers.update(headers)
            response.headers["Access-Control-Expose-Headers"] = EXPOSED_HEADERS
