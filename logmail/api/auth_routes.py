"""``/auth``: register, log in, refresh, log out, sessions, and the caller's security events.

Browsers get the refresh token as an HttpOnly, SameSite=Strict cookie limited to ``/auth`` (Secure
when served over TLS), so page scripts never see it; other clients ask for it in the JSON body with
``"refreshTokenInBody": true`` and send it back as ``{"refreshToken": ...}``. A refresh answers the
way it was asked: cookie for cookie, body for body.
"""

from __future__ import annotations

from sanic import Blueprint, Request
from sanic.response import JSONResponse, json

from logmail.api.authn import client_of, principal, served_over_tls
from logmail.api.body import Body, Bool, Str
from logmail.api.params import bool_arg, int_arg, page, page_args, str_arg, uuid_param
from logmail.api.util import blocking
from logmail.errors import ForbiddenError, UnauthorisedError
from logmail.services.sessions import IssuedTokens

bp = Blueprint("auth")

REFRESH_COOKIE = "logmail_refresh"
COOKIE_PATH = "/auth"

_EMAIL = Str(1, 320, "The account's email address")
_PASSWORD = Str(1, 1024, "The password")
REGISTER_BODY = Body(required={"email": _EMAIL, "password": _PASSWORD,
                               "organisationName": Str(1, 200, "Name of the new organisation")})
LOGIN_BODY = Body(required={"email": _EMAIL, "password": _PASSWORD},
                  optional={"refreshTokenInBody": Bool("Return the refresh token in the body instead of a cookie "
                                                       "(clients that are not browsers)")})
REFRESH_BODY = Body(optional={"refreshToken": Str(1, 200, "The refresh token, when it is not sent as the cookie")})


@bp.post("/auth/register")
async def register(request: Request):
    data = REGISTER_BODY.parse(request)
    client = client_of(request)
    created = await blocking(request.app.ctx.services.users.register, data["email"], data["password"],
                             data["organisationName"], ip=client.ip, user_agent=client.user_agent)
    return json(created, status=201)


@bp.post("/auth/login")
async def login(request: Request):
    data = LOGIN_BODY.parse(request)
    auth = request.app.ctx.services.auth
    result = await blocking(auth.login, data["email"], data["password"], client_of(request))
    return _token_response(request, result.tokens, in_body=data.get("refreshTokenInBody", False),
                           extra={"user": result.user})


@bp.post("/auth/refresh")
async def refresh(request: Request):
    data = REFRESH_BODY.parse(request, allow_empty=True)
    presented = data.get("refreshToken")
    in_body = presented is not None
    if presented is None:
        presented = request.cookies.get(REFRESH_COOKIE)
    if not presented:
        raise UnauthorisedError(f"no refresh token: send the {REFRESH_COOKIE} cookie or {{\"refreshToken\": ...}}")
    tokens = await blocking(request.app.ctx.services.auth.sessions.refresh, presented, client_of(request))
    return _token_response(request, tokens, in_body=in_body)


@bp.post("/auth/logout")
async def logout(request: Request):
    await blocking(request.app.ctx.services.auth.sessions.logout, principal(request))
    return _forget_cookie(request, json({"message": "Logged out"}))


@bp.post("/auth/logout-all")
async def logout_all(request: Request):
    ended = await blocking(request.app.ctx.services.auth.sessions.logout_all, principal(request))
    return _forget_cookie(request, json({"message": "Every session of this user has ended", "sessionsEnded": ended}))


@bp.get("/auth/me")
async def me(request: Request):
    who = principal(request)
    return json({"userId": who.user_uuid, "organisationId": who.organization_uuid, "role": who.role,
                 "scopes": sorted(who.scopes), "method": who.method, "sessionId": who.session_uuid,
                 "tokenId": who.token_uuid, "isPlatformAdmin": who.is_platform_admin})


@bp.get("/auth/sessions")
async def list_sessions(request: Request):
    sessions = await blocking(request.app.ctx.services.auth.sessions.list, principal(request))
    return json({"sessions": sessions, "pagination": {"total": len(sessions)}})


@bp.delete("/auth/sessions/<session_id:str>")
async def revoke_session(request: Request, session_id: str):
    session_id = uuid_param(session_id, "session id")
    await blocking(request.app.ctx.services.auth.sessions.revoke, principal(request), session_id)
    return json({"message": "Session revoked", "id": session_id})


@bp.get("/auth/security-events")
async def security_events(request: Request):
    who = principal(request)
    limit, offset = page_args(request)
    since = int_arg(request, "since", minimum=0)
    until = int_arg(request, "until", minimum=0)
    whole_org = bool_arg(request, "all")
    if whole_org or who.user_id is None:
        if not who.can("admin"):
            raise ForbiddenError("the organisation's security events are for admins and owners")
        user_id = None
    else:
        user_id = who.user_id
    items, total = await blocking(request.app.ctx.services.auth.events.list, who, user_id=user_id,
                                  event=str_arg(request, "event", max_length=64), since=since, until=until,
                                  limit=limit, offset=offset)
    return json(page("events", items, total, limit, offset))


def _token_response(request: Request, tokens: IssuedTokens, *, in_body: bool, extra: dict | None = None,
                    ) -> JSONResponse:
    body = {"accessToken": tokens.access_token, "tokenType": "Bearer", "expiresIn": tokens.expires_in,
            **(extra or {})}
    if in_body:
        body["refreshToken"] = tokens.refresh_token
        body["refreshTokenExpiresAt"] = tokens.refresh_expires_at
    response = json(body, headers={"Cache-Control": "no-store"})
    if not in_body:
        max_age = max(1, (tokens.refresh_expires_at - request.app.ctx.services.auth.now()) // 1000)
        response.add_cookie(REFRESH_COOKIE, tokens.refresh_token, path=COOKIE_PATH, httponly=True,
                            samesite="Strict", secure=served_over_tls(request), max_age=max_age)
    return response


def _forget_cookie(request: Request, response: JSONResponse) -> JSONResponse:
    response.add_cookie(REFRESH_COOKIE, "", path=COOKIE_PATH, httponly=True, samesite="Strict",
                        secure=served_over_tls(request), max_age=0)
    return response
