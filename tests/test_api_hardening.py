"""Hostile and careless input: bad bodies, forged tokens, floods, foreign origins, trusted headers."""

from __future__ import annotations

import json
import time
import uuid

import httpx
import jwt
import pytest

from auth_helpers import PASSWORD, b64, client, create_user, install_clock, jwt_parts, login
from conftest import make_settings
from logmail.errors import ConfigError


@pytest.fixture
def http(daemon):
    with client(daemon) as c:
        yield c


def start(tmp_path, **overrides):
    from logmail.daemon.runner import Daemon

    return Daemon(make_settings(tmp_path / "data", **overrides)).start_in_thread()


def owner_client(d, tmp_path) -> httpx.Client:
    owner = (tmp_path / "data" / "owner.token").read_text().strip()
    return client(d, headers={"Authorization": f"Bearer {owner}"})


# -- request bodies ------------------------------------------------------------------------------

@pytest.mark.parametrize("content, ctype, status, fragment", [
    (b'{"email": "a@b.c", "password": ', "application/json", 400, "request body is not valid JSON"),
    (b"\xff\xfe{}", "application/json", 400, "request body is not valid JSON"),
    (b'{"email": "a@b.c", "password": NaN}', "application/json", 400, "request body is not valid JSON"),
    (b"[" * 100_000, "application/json", 413, "at most 65536 bytes"),
    (b"[" * 30_000 + b"]" * 30_000, "application/json", 400, "request body is not valid JSON"),  # too deep
    (b'["a@b.c", "pw"]', "application/json", 400, "request body must be a JSON object"),
    (b'{"email": "a@b.c", "password": "x"}', "text/plain", 400, "Content-Type must be application/json"),
    (b'{"email": "a@b.c", "password": "x"}', "", 400, "Content-Type must be application/json"),
    (b'{"email": "a@b.c"}', "application/json", 400, "missing required field: password"),
    (b'{"email": 7, "password": "x"}', "application/json", 400, "email must be a string"),
    (b'{"email": "a@b.c", "password": "x", "refreshTokenInBody": "yes"}', "application/json", 400,
     "refreshTokenInBody must be true or false"),
    (b'{"email": "a@b.c", "password": "x", "admin": true, "role": "owner"}', "application/json", 400,
     "unknown fields: admin, role"),
    (json.dumps({"email": "a@b.c", "password": "x" * 1025}).encode(), "application/json", 400,
     "password must be at most 1024 characters long"),
], ids=lambda v: v[:24].decode("latin-1") if isinstance(v, bytes) else None)
def test_bad_bodies_are_clear_4xx(http, content, ctype, status, fragment):
    headers = {"Content-Type": ctype} if ctype else {}
    resp = http.post("/auth/login", content=content, headers=headers)
    assert resp.status_code == status, resp.text
    assert resp.json()["message"].startswith(fragment) or fragment in resp.json()["message"]


def test_bodies_over_the_api_limit_are_413(tmp_path):
    d = start(tmp_path, api={"max_body_size": 1024})
    try:
        with client(d) as http:
            resp = http.post("/auth/login", content=b"{" + b" " * 4096 + b"}",
                             headers={"Content-Type": "application/json"})
            assert resp.status_code == 413 and resp.json()["error"] == "Payload too large"
    finally:
        d.stop()


def test_bad_ids_in_paths(api):
    for path in ("/tokens/123", "/users/x' OR 1=1", "/auth/sessions/..%2F..%2Fetc"):
        resp = api.delete(path)
        assert resp.status_code in (400, 404) and set(resp.json()) == {"error", "message"}
    resp = api.delete("/tokens/not-a-uuid")
    assert resp.status_code == 400 and "token id must be a UUID" in resp.json()["message"]


# -- forged and stale access tokens -------------------------------------------------------------

def test_forged_access_tokens_are_refused(daemon, api, http):
    user = create_user(api, "victim@example.com", "owner")
    good = login(http, user["email"]).access
    header, claims, signature = jwt_parts(good)
    key = (daemon.settings.data_path / "jwt.key").read_text().strip()
    other = {**claims, "sub": str(uuid.uuid4())}
    forged = {
        "wrong key": jwt.encode(claims, "k" * 40, algorithm="HS256"),
        "alg none": f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(claims)}.",
        "alg none, kept signature": f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(claims)}.{signature}",
        "tampered claims": f"{b64(header)}.{b64(other)}.{signature}",
        "other algorithm": jwt.encode(claims, key, algorithm="HS512"),
        "expired": jwt.encode({**claims, "exp": int(time.time()) - 1}, key, algorithm="HS256"),
        "no session claim": jwt.encode({k: v for k, v in claims.items() if k != "sid"}, key, algorithm="HS256"),
        "not an access token": jwt.encode({**claims, "typ": "refresh"}, key, algorithm="HS256"),
        "exp as text": jwt.encode({**claims, "exp": "never"}, key, algorithm="HS256"),
        "garbage": "abc.def.ghi",
        "not even dots": "eyJhbGciOi",
    }
    for name, token in forged.items():
        resp = http.get("/messages", headers={"Authorization": f"Bearer {token}"})
        assert resp.status_code == 401, name
        assert resp.json() == {"error": "Unauthorised", "message": "the access token is invalid or expired"}, name
        assert "invalid_token" in resp.headers["www-authenticate"], name
    # Signed with the real key but naming a session that does not exist: refused too.
    ghost = jwt.encode({**claims, "sid": str(uuid.uuid4())}, key, algorithm="HS256")
    resp = http.get("/messages", headers={"Authorization": f"Bearer {ghost}"})
    assert resp.status_code == 401 and "session has ended" in resp.json()["message"]
    # Claims that do not match the session are refused, even when correctly signed.
    mismatched = jwt.encode(other, key, algorithm="HS256")
    assert http.get("/messages", headers={"Authorization": f"Bearer {mismatched}"}).status_code == 401
    assert http.get("/messages", headers={"Authorization": f"Bearer {good}"}).status_code == 200


def test_the_signing_key_is_private_and_kept(daemon):
    path = daemon.settings.data_path / "jwt.key"
    assert path.stat().st_mode & 0o777 == 0o600
    assert len(path.read_text().strip()) == 64


# -- rate limits ---------------------------------------------------------------------------------

def test_requests_are_limited_per_user_or_token(tmp_path):
    d = start(tmp_path, auth={"rate_limit_per_minute": 5})
    try:
        with owner_client(d, tmp_path) as api:
            for _ in range(4):  # the first creation counted too
                assert api.get("/messages").status_code == 200
            other = api.post("/tokens", json={"name": "other"})
            assert other.status_code == 201
            resp = api.get("/messages")
            assert resp.status_code == 429
            assert resp.json() == {"error": "Rate limit exceeded", "message": resp.json()["message"]}
            retry = resp.headers["retry-after"]
            assert retry.isdigit() and 1 <= int(retry) <= 60
            # Another token has its own allowance; /health and /openapi.json are never limited.
            assert api.get("/messages", headers={"Authorization": f"Bearer {other.json()['token']}"}).status_code == 200
            for _ in range(10):
                assert api.get("/health").status_code == 200
                assert api.get("/openapi.json").status_code == 200
        with client(d) as anonymous:  # the anonymous /auth endpoints count per address
            codes = [anonymous.post("/auth/refresh", json={"refreshToken": "lmr_x"}).status_code for _ in range(6)]
            assert codes == [401] * 5 + [429]
    finally:
        d.stop()


# -- CORS ----------------------------------------------------------------------------------------

def test_cors_only_for_listed_origins(tmp_path):
    d = start(tmp_path, api={"cors_origins": ["https://app.example.com"]})
    try:
        with owner_client(d, tmp_path) as api:
            preflight = {"Origin": "https://app.example.com", "Access-Control-Request-Method": "POST",
                         "Access-Control-Request-Headers": "authorization, content-type"}
            resp = httpx.options(f"http://127.0.0.1:{d.api_port}/auth/refresh", headers=preflight)
            assert resp.status_code == 204
            assert resp.headers["access-control-allow-origin"] == "https://app.example.com"
            assert resp.headers["access-control-allow-credentials"] == "true"
            assert set(resp.headers["access-control-allow-methods"].split(", ")) >= {"GET", "POST", "DELETE"}
            assert resp.headers["access-control-allow-headers"] == "Authorization, Content-Type"
            foreign = httpx.options(f"http://127.0.0.1:{d.api_port}/messages",
                                    headers={**preflight, "Origin": "https://evil.example"})
            assert "access-control-allow-origin" not in foreign.headers
            ok = api.get("/messages", headers={"Origin": "https://app.example.com"})
            assert ok.headers["access-control-allow-origin"] == "https://app.example.com"
            assert ok.headers["access-control-allow-credentials"] == "true"
            denied = httpx.get(f"http://127.0.0.1:{d.api_port}/messages", headers={"Origin": "https://app.example.com"})
            assert denied.status_code == 401  # errors carry the headers too, so the page can read them
            assert denied.headers["access-control-allow-origin"] == "https://app.example.com"
            evil = api.get("/messages", headers={"Origin": "https://evil.example"})
            assert "access-control-allow-origin" not in evil.headers
    finally:
        d.stop()


def test_no_cors_headers_by_default(api):
    resp = api.get("/messages", headers={"Origin": "https://app.example.com"})
    assert not [h for h in resp.headers if h.lower().startswith("access-control-")]


# -- trusted headers and TLS ---------------------------------------------------------------------

def test_trusted_headers(tmp_path):
    d = start(tmp_path, auth={"trust_headers": True})
    try:
        with owner_client(d, tmp_path) as api:
            user = create_user(api, "gw@example.com", "member")
            assert api.get("/auth/me").json()["method"] == "token"  # a bearer token still wins
        with client(d) as http:
            good = {"X-Tenant-ID": user["organisationId"], "X-User-ID": user["id"]}
            me = http.get("/auth/me", headers=good).json()
            assert me == {**me, "userId": user["id"], "method": "trusted_headers", "scopes": ["read"]}
            assert http.get("/messages", headers=good).status_code == 200
            for bad in ({}, {"X-Tenant-ID": user["organisationId"]}, {**good, "X-User-ID": "bob"},
                        {**good, "X-Tenant-ID": "1 OR 1=1"}, {**good, "X-User-ID": str(uuid.uuid4())}):
                resp = http.get("/messages", headers=bad)
                assert resp.status_code == 401 and set(resp.json()) == {"error", "message"}, bad
        with owner_client(d, tmp_path) as api:  # a deleted user's headers stop working at once
            assert api.delete(f"/users/{user['id']}").status_code == 200
        with client(d) as http:
            assert http.get("/messages", headers=good).status_code == 401
    finally:
        d.stop()


def test_trusted_headers_are_ignored_unless_enabled(api, daemon):
    with client(daemon) as http:
        resp = http.get("/messages", headers={"X-Tenant-ID": daemon.services.boot.organization_uuid,
                                              "X-User-ID": str(uuid.uuid4())})
        assert resp.status_code == 401


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")  # the daemon thread's own error
def test_trusted_headers_are_refused_beyond_loopback_without_a_tls_proxy(tmp_path):
    from logmail.daemon.runner import Daemon

    settings = make_settings(tmp_path / "data", api={"host": "0.0.0.0"}, auth={"trust_headers": True})
    with pytest.raises(ConfigError, match="trust_headers"):
        Daemon(settings).start_in_thread()
    d = start(tmp_path, api={"host": "0.0.0.0"}, auth={"trust_headers": True, "behind_tls_proxy": True})
    d.stop()


def test_the_refresh_cookie_is_secure_behind_a_tls_proxy(tmp_path):
    d = start(tmp_path, auth={"behind_tls_proxy": True})
    try:
        with owner_client(d, tmp_path) as api:
            create_user(api, "tls@example.com")
        with client(d) as http:
            body = {"email": "tls@example.com", "password": PASSWORD}
            resp = http.post("/auth/login", json=body, headers={"X-Forwarded-Proto": "https",
                                                                "X-Forwarded-For": "203.0.113.9"})
            assert "; Secure" in resp.headers["set-cookie"]
            access = resp.json()["accessToken"]
            sessions = http.get("/auth/sessions", headers={"Authorization": f"Bearer {access}"}).json()["sessions"]
            assert sessions[0]["ip"] == "203.0.113.9"
            plain = http.post("/auth/login", json=body)
            assert "Secure" not in plain.headers["set-cookie"]
    finally:
        d.stop()


def test_forwarded_headers_are_not_trusted_without_a_proxy(daemon, api, http):
    create_user(api, "direct@example.com")
    resp = http.post("/auth/login", json={"email": "direct@example.com", "password": PASSWORD},
                     headers={"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.9"})
    assert "Secure" not in resp.headers["set-cookie"]
    sessions = http.get("/auth/sessions", headers={"Authorization": f"Bearer {resp.json()['accessToken']}"})
    assert sessions.json()["sessions"][0]["ip"] == "127.0.0.1"


def test_expired_access_token_by_the_clock(daemon, api, http):
    create_user(api, "late@example.com")
    clock = install_clock(daemon)
    session = login(http, "late@example.com")
    clock.advance(15 * 60_000)
    assert http.get("/messages", headers=session.auth).status_code == 401


@pytest.mark.parametrize("path, fragment", [
    ("/messages?since=", "since must be an integer"),
    ("/messages?since=123701154660543218319360", "since must be at most 9223372036854775807"),
    ("/audit?actor=", "actor must be a UUID"),
    ("/audit?action=", "action must be one of"),
    ("/audit?action=token.stolen", "action must be one of"),
    ("/tokens?limit=", "limit must be an integer"),
])
def test_bad_query_parameters_are_400_not_500(api, path, fragment):
    resp = api.get(path)
    assert resp.status_code == 400 and fragment in resp.json()["message"], resp.text


def test_405_lists_the_allowed_methods(api):
    resp = api.request("PUT", f"/messages/{uuid.uuid4()}")
    assert resp.status_code == 405 and resp.headers["allow"] == "GET, PATCH, DELETE"


@pytest.mark.parametrize("payload, fragment", [
    ({"name": "x", "expiresAt": 2**70}, "expiresAt must be at most 9223372036854775807"),
    ({"name": "\ud800"}, "name must be valid Unicode text"),
])
def test_values_a_database_cannot_hold_are_400(api, payload, fragment):
    resp = api.post("/tokens", content=json.dumps(payload), headers={"Content-Type": "application/json"})
    assert resp.status_code == 400 and fragment in resp.json()["message"], resp.text


def test_an_enormous_cursor_is_a_400(api):
    import base64

    cursor = base64.urlsafe_b64encode(b"m:" + b"9" * 30).decode().rstrip("=")
    resp = api.get("/messages", params={"cursor": cursor})
    assert resp.status_code == 400 and "cursor" in resp.json()["message"]
