"""Bearer-token authentication for every endpoint except the public ones."""

from __future__ import annotations

import asyncio

from sanic import Request

from logmail.api.errors import error_response
from logmail.services.tokens import Principal

PUBLIC_PATHS = frozenset({"/health", "/openapi.json"})


def install_auth(app) -> None:
    @app.on_request
    async def _authenticate(request: Request):
        if request.path in PUBLIC_PATHS or request.method == "OPTIONS":
            return None
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return error_response(401, "Unauthorised", "send an API token as 'Authorization: Bearer <token>'",
                                  {"WWW-Authenticate": 'Bearer realm="logmail"'})
        services = request.app.ctx.services
        principal = await asyncio.get_running_loop().run_in_executor(
            None, services.tokens.authenticate, token.strip())
        if principal is None:
            return error_response(401, "Unauthorised", "the token is invalid, expired or revoked",
                                  {"WWW-Authenticate": 'Bearer realm="logmail", error="invalid_token"'})
        request.ctx.principal = principal
        return None


def principal(request: Request) -> Principal:
    return request.ctx.principal
