"""Who is calling: API tokens, access tokens from a login, or trusted gateway headers; then rate limits.

Every request but the public ones must authenticate. ``Authorization: Bearer lm_...`` is an API
token; any other bearer value is an access token (a JWT from ``/auth/login``). Without a bearer
token, and only with ``auth.trust_headers``, ``X-Tenant-ID`` and ``X-User-ID`` name the caller.
The result is one :class:`Principal` in ``request.ctx.principal``.

Each user (or each token that has no user) may make ``auth.rate_limit_per_minute`` requests a
minute; the unauthenticated ``/auth`` endpoints count per client address instead.
"""

from __future__ import annotations

from dataclasses import replace

from sanic import Request

from logmail.api.util import blocking
from logmail.errors import UnauthorisedError
from logmail.services.devices import Client
from logmail.services.principal import Principal
from logmail.services.tokens import TOKEN_PREFIX

# /billing/webhook proves itself with its Stripe-Signature instead.
PUBLIC_PATHS = frozenset({"/health", "/openapi.json", "/billing/webhook"})
# Reached before anyone is logged in: limited per client address, not per caller.
ANONYMOUS_PATHS = frozenset({"/auth/login", "/auth/register", "/auth/refresh"})
_WWW_AUTH_INVALID = 'Bearer realm="logmail", error="invalid_token"'


def client_of(request: Request) -> Client:
    """The client's address (the proxy's X-Forwarded-For only with ``auth.behind_tls_proxy``) and User-Agent."""
    return Client(ip=request.client_ip or "", user_agent=request.headers.get("user-agent", "")[:300])


def served_over_tls(request: Request) -> bool:
    if request.scheme == "https":
        return True
    settings = request.app.ctx.services.settings.auth
    proto = request.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
    return settings.behind_tls_proxy and proto == "https"


def install_authentication(app) -> None:
    @app.on_request
    async def _authenticate(request: Request):
        if request.path in PUBLIC_PATHS or request.method == "OPTIONS":
            return None
        services = request.app.ctx.services
        client = client_of(request)
        if request.path in ANONYMOUS_PATHS:
            await blocking(services.auth.limits.request, "address:" + client.ip)
            return None
        who = await blocking(authenticate_request, services, request, client)
        await blocking(services.auth.limits.request, who.rate_key)
        if services.platform:  # the tier's API flag and per-organisation limit (cached lookups)
            await blocking(services.usage.api_request, who)
        else:
            services.usage.api_request(who)  # counting only: no I/O
        request.ctx.principal = who
        return None


def authenticate_request(services, request: Request, client: Client) -> Principal:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if header:
        if scheme.lower() != "bearer" or not token:
            raise _Unauthorised("send a token as 'Authorization: Bearer <token>'")
        if token.startswith(TOKEN_PREFIX):
            principal = services.tokens.authenticate(token)
            if principal is None:
                raise _Unauthorised("the token is invalid, expired or revoked", _WWW_AUTH_INVALID)
            return replace(principal, client_ip=client.ip, user_agent=client.user_agent)
        try:
            return services.auth.authenticate_access(token, client)
        except UnauthorisedError as exc:
            raise _Unauthorised(exc.message, _WWW_AUTH_INVALID) from None
    if services.settings.auth.trust_headers:
        return services.auth.authenticate_headers(request.headers.get("x-tenant-id"),
                                                  request.headers.get("x-user-id"), client)
    raise _Unauthorised("send an API token or an access token as 'Authorization: Bearer <token>'")


class _Unauthorised(UnauthorisedError):
    def __init__(self, message: str, www_authenticate: str = 'Bearer realm="logmail"') -> None:
        super().__init__(message)
        self._www_authenticate = www_authenticate

    @property
    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": self._www_authenticate}


def principal(request: Request) -> Principal:
    return request.ctx.principal
