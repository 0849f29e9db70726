"""Sessions over HTTP: login, rotation, reuse, races, logout, listing, lifetimes and device binding."""

from __future__ import annotations

import httpx
import pytest

from auth_helpers import (
    CHROME_WINDOWS, DAY, FIREFOX_LINUX_NEWER, MINUTE, PASSWORD, client, create_user, events, install_clock, login,
    refresh,
)
from conftest import make_settings


def refresh_by_cookie(daemon, token: str) -> httpx.Response:
    with client(daemon) as c:
        return c.post("/auth/refresh", headers={"Cookie": f"logmail_refresh={token}"})


@pytest.fixture
def alice(api):
    return create_user(api, "alice@example.com", "member")


@pytest.fixture
def http(daemon, alice):
    with client(daemon) as c:
        yield c


def test_login_gives_an_access_token_and_a_strict_http_only_cookie(http, alice):
    resp = http.post("/auth/login", json={"email": "Alice@Example.com", "password": PASSWORD})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["tokenType"] == "Bearer" and body["expiresIn"] == 15 * 60
    assert body["user"] == {**alice, "role": "member"} and "refreshToken" not in body
    assert resp.headers["cache-control"] == "no-store"
    cookie = resp.headers["set-cookie"]
    assert cookie.startswith("logmail_refresh=lmr_")
    attributes = {a.strip().split("=")[0].lower() for a in cookie.split(";")[1:]}
    assert {"path", "httponly", "samesite", "max-age"} <= attributes and "secure" not in attributes
    assert "Path=/auth" in cookie and "SameSite=Strict" in cookie
    me = http.get("/auth/me", headers={"Authorization": f"Bearer {body['accessToken']}"}).json()
    assert me["userId"] == alice["id"] and me["method"] == "session" and me["scopes"] == ["read"]
    assert http.get("/messages", headers={"Authorization": f"Bearer {body['accessToken']}"}).status_code == 200


def test_refresh_by_cookie_rotates_and_reuse_ends_the_session(daemon, http, alice):
    clock = install_clock(daemon)
    first = http.post("/auth/login", json={"email": alice["email"], "password": PASSWORD})
    access = first.json()["accessToken"]
    old_cookie = http.cookies["logmail_refresh"]
    rotated = http.post("/auth/refresh")  # the cookie jar sends it
    assert rotated.status_code == 200, rotated.text
    assert "refreshToken" not in rotated.json()
    new_cookie = http.cookies["logmail_refresh"]
    assert new_cookie != old_cookie and rotated.json()["accessToken"] != access

    clock.advance(6_000)  # past the 5 s leeway: presenting the retired token is reuse
    stolen = refresh_by_cookie(daemon, old_cookie)
    assert stolen.status_code == 401 and "already used" in stolen.json()["message"]
    # The whole family is gone: the successor and every access token of the session.
    assert refresh_by_cookie(daemon, new_cookie).status_code == 401
    resp = http.get("/messages", headers={"Authorization": f"Bearer {rotated.json()['accessToken']}"})
    assert resp.status_code == 401 and resp.json()["message"] == "the session has ended; log in again"
    fresh = login(http, alice["email"])
    assert "refresh_token_reused" in [e["event"] for e in events(http, fresh.auth)]


def test_refresh_in_the_body_answers_in_the_body(http, alice):
    session = login(http, alice["email"])
    assert session.refresh.startswith("lmr_") and "set-cookie" not in session.body
    resp = refresh(http, session.refresh)
    assert resp.status_code == 200 and "set-cookie" not in resp.headers
    body = resp.json()
    assert body["refreshToken"] != session.refresh and body["refreshTokenExpiresAt"] > 0
    assert http.get("/auth/me", headers={"Authorization": f"Bearer {body['accessToken']}"}).status_code == 200


def test_racing_tabs_get_a_fresh_pair_within_the_leeway_and_only_for_the_previous_token(daemon, http, alice):
    clock = install_clock(daemon)
    t1 = login(http, alice["email"]).refresh
    t2 = refresh(http, t1).json()["refreshToken"]
    clock.advance(2_000)
    raced = refresh(http, t1)  # the other tab still held t1
    assert raced.status_code == 200, raced.text
    t3 = raced.json()["refreshToken"]
    assert t3 not in (t1, t2)
    assert refresh(http, t3).status_code == 200  # the family lives on
    me = login(http, alice["email"])
    assert "refresh_race_accepted" in [e["event"] for e in events(http, me.auth)]
    # t1 is now two rotations back: reuse, however soon.
    assert refresh(http, t1).status_code == 401
    assert "refresh_token_reused" in [e["event"] for e in events(http, me.auth)]


def test_logout_ends_this_session_only_and_clears_the_cookie(http, alice):
    one = login(http, alice["email"], in_body=False)
    two = login(http, alice["email"])
    resp = http.post("/auth/logout", headers=one.auth)
    assert resp.status_code == 200
    assert 'logmail_refresh=""' in resp.headers["set-cookie"] or "logmail_refresh=;" in resp.headers["set-cookie"]
    assert "Max-Age=0" in resp.headers["set-cookie"]
    assert http.get("/auth/me", headers=one.auth).status_code == 401
    assert http.get("/auth/me", headers=two.auth).status_code == 200
    assert refresh(http, two.refresh).status_code == 200


def test_logout_all_and_the_session_list(daemon, http, alice):
    sessions = [login(http, alice["email"]) for _ in range(2)]
    with client(daemon, user_agent=CHROME_WINDOWS) as chrome:
        other = login(chrome, alice["email"])
    listed = http.get("/auth/sessions", headers=sessions[0].auth).json()["sessions"]
    assert len(listed) == 3
    assert sorted(s["device"] for s in listed) == ["Chrome on Windows", "Firefox on Linux", "Firefox on Linux"]
    assert [s["current"] for s in listed].count(True) == 1
    assert all(s["ip"] == "127.0.0.1" and s["createdAt"] <= s["lastSeenAt"] < s["expiresAt"] for s in listed)

    chrome_id = next(s["id"] for s in listed if s["device"] == "Chrome on Windows")
    assert http.delete(f"/auth/sessions/{chrome_id}", headers=sessions[0].auth).status_code == 200
    assert http.get("/auth/me", headers=other.auth).status_code == 401  # at once, despite the cache
    assert http.delete(f"/auth/sessions/{chrome_id}", headers=sessions[0].auth).status_code == 404

    resp = http.post("/auth/logout-all", headers=sessions[1].auth)
    assert resp.status_code == 200 and resp.json()["sessionsEnded"] == 2
    for s in sessions:
        assert http.get("/auth/me", headers=s.auth).status_code == 401
        assert refresh(http, s.refresh).status_code == 401


def test_sessions_need_a_user(api):
    assert api.get("/auth/sessions").status_code == 403  # the owner token belongs to no user
    assert api.post("/auth/logout").status_code == 400
    assert api.post("/auth/refresh").status_code == 401


def test_access_token_lifetime(daemon, http, alice):
    clock = install_clock(daemon)
    session = login(http, alice["email"])
    clock.advance(14 * MINUTE)
    assert http.get("/auth/me", headers=session.auth).status_code == 200
    clock.advance(MINUTE)
    resp = http.get("/auth/me", headers=session.auth)
    assert resp.status_code == 401 and resp.json()["message"] == "the access token is invalid or expired"
    renewed = refresh(http, session.refresh)
    assert renewed.status_code == 200
    assert http.get("/auth/me", headers={"Authorization": f"Bearer {renewed.json()['accessToken']}"}).status_code == 200


def test_idle_limit(daemon, http, alice):
    clock = install_clock(daemon)
    session = login(http, alice["email"])
    clock.advance(29 * DAY)
    still = refresh(http, session.refresh)
    assert still.status_code == 200
    clock.advance(30 * DAY)  # a month without a refresh
    resp = refresh(http, still.json()["refreshToken"])
    assert resp.status_code == 401 and "session has ended" in resp.json()["message"]
    me = login(http, alice["email"])
    expired = [e for e in events(http, me.auth) if e["event"] == "session_expired"]
    assert expired and expired[0]["details"]["reason"] == "idle_limit"


def test_absolute_limit_is_never_extended_by_rotation(daemon, http, alice):
    clock = install_clock(daemon)
    started = clock.now
    token = login(http, alice["email"]).refresh
    for _ in range(4):  # every 20 days: never idle, never an expired refresh token
        clock.advance(20 * DAY)
        resp = refresh(http, token)
        assert resp.status_code == 200, resp.text
        assert resp.json()["refreshTokenExpiresAt"] <= started + 90 * DAY
        token = resp.json()["refreshToken"]
    clock.advance(10 * DAY + 1)  # 90 days after login
    resp = refresh(http, token)
    assert resp.status_code == 401


def test_refresh_token_lifetime(tmp_path):
    from logmail.daemon.runner import Daemon

    d = Daemon(make_settings(tmp_path / "data", auth={"refresh_token_lifetime_days": 1})).start_in_thread()
    try:
        owner = (tmp_path / "data" / "owner.token").read_text().strip()
        with client(d, headers={"Authorization": f"Bearer {owner}"}) as admin:
            create_user(admin, "bob@example.com")
        clock = install_clock(d)
        with client(d) as http:
            session = login(http, "bob@example.com")
            clock.advance(DAY - MINUTE)
            token = refresh(http, session.refresh).json()["refreshToken"]
            clock.advance(DAY)  # within the idle limit, but the refresh token has run out
            assert refresh(http, token).status_code == 401
    finally:
        d.stop()


def test_a_new_device_must_log_in_again_but_a_new_network_does_not(daemon, http, alice):
    session = login(http, alice["email"])
    renewed = refresh(http, session.refresh)  # same device, same address
    assert renewed.status_code == 200
    token = renewed.json()["refreshToken"]
    # A browser update is the same device: versions do not count.
    with client(daemon, user_agent=FIREFOX_LINUX_NEWER) as updated:
        token = refresh(updated, token).json()["refreshToken"]
    # Another address, same device: kept, and recorded.
    with client(daemon, transport=httpx.HTTPTransport(local_address="127.0.0.2")) as moved:
        resp = refresh(moved, token)
        assert resp.status_code == 200, resp.text
        token = resp.json()["refreshToken"]
        access = resp.json()["accessToken"]
        listed = moved.get("/auth/sessions", headers={"Authorization": f"Bearer {access}"}).json()["sessions"]
        assert [s["ip"] for s in listed] == ["127.0.0.2"] and listed[0]["createdIp"] == "127.0.0.1"
    # Another browser on another system: refused, and the session is over.
    with client(daemon, user_agent=CHROME_WINDOWS) as thief:
        resp = refresh(thief, token)
        assert resp.status_code == 401 and "another device" in resp.json()["message"]
    assert refresh(http, token).status_code == 401
    assert http.get("/auth/me", headers={"Authorization": f"Bearer {access}"}).status_code == 401
    me = login(http, alice["email"])
    trail = {e["event"]: e for e in events(http, me.auth)}
    assert trail["session_network_changed"]["details"] == {"from": "127.0.0.1", "to": "127.0.0.2"}
    assert trail["session_device_changed"]["details"]["now"] == "Chrome on Windows"
    assert trail["session_device_changed"]["userAgent"] == CHROME_WINDOWS


def test_two_tabs_refreshing_at_the_same_moment_both_succeed(daemon, http, alice):
    from concurrent.futures import ThreadPoolExecutor

    token = login(http, alice["email"]).refresh

    def tab(_):
        with client(daemon) as c:
            return refresh(c, token)

    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(tab, range(2)))
    assert [a.status_code for a in answers] == [200, 200], [a.text for a in answers]
    newest = [a.json()["refreshToken"] for a in answers]
    assert len(set(newest)) == 2
    # The family lives on: whichever answer came last is the current token.
    assert any(refresh(http, t).status_code == 200 for t in newest)
