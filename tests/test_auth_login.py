"""Registration and login: who may register, one answer for every bad credential, attempt limits."""

from __future__ import annotations

import time

import pytest

from auth_helpers import PASSWORD, client, create_user, events, login
from conftest import make_settings


@pytest.fixture
def settings(tmp_path):
    return make_settings(tmp_path / "data", auth={"open_registration": True, "login_attempts_per_account": 3,
                                                  "login_attempts_per_address": 8})


@pytest.fixture
def http(daemon):
    with client(daemon) as c:
        yield c


def register(http, email="founder@example.org", org="Acme", password=PASSWORD):
    return http.post("/auth/register", json={"email": email, "password": password, "organisationName": org})


def test_registration_creates_an_owner_of_a_new_organisation(daemon, http, api):
    resp = register(http)
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert body["user"]["role"] == "owner" and body["user"]["email"] == "founder@example.org"
    # Local mode has no quotas for anyone; platform mode uses platform.default_tier (test_platform_api).
    assert body["organisation"]["tier"] == "unlimited" and body["organisation"]["name"] == "Acme"
    assert body["organisation"]["id"] == body["user"]["organisationId"]
    assert body["organisation"]["id"] != daemon.services.boot.organization_uuid
    session = login(http, "founder@example.org")
    me = http.get("/auth/me", headers=session.auth).json()
    assert me["role"] == "owner" and set(me["scopes"]) == {"read", "write", "ingest", "admin"}
    # The new organisation sees none of the built-in one's users.
    assert [u["email"] for u in http.get("/users", headers=session.auth).json()["users"]] == ["founder@example.org"]


@pytest.mark.parametrize("payload, status, fragment", [
    ({"email": "founder@example.org", "password": PASSWORD, "organisationName": "Again"}, 409, "already exists"),
    ({"email": "x@example.org", "password": "short", "organisationName": "A"}, 400, "at least 10 characters"),
    ({"email": "not-an-email", "password": PASSWORD, "organisationName": "A"}, 400, "email must be an email"),
    ({"email": "y@example.org", "password": PASSWORD, "organisationName": "   "}, 400, "must not be empty"),
    ({"email": "y@example.org", "password": PASSWORD}, 400, "missing required field: organisationName"),
])
def test_registration_refusals(http, payload, status, fragment):
    assert register(http).status_code == 201
    resp = http.post("/auth/register", json=payload)
    assert resp.status_code == status and fragment in resp.json()["message"], resp.text


def test_registration_is_closed_by_default(tmp_path):
    from logmail.daemon.runner import Daemon

    d = Daemon(make_settings(tmp_path / "data")).start_in_thread()
    try:
        with client(d) as http:
            resp = register(http)
            assert resp.status_code == 403 and "registration is closed" in resp.json()["message"]
    finally:
        d.stop()


def test_unknown_account_and_wrong_password_look_the_same(daemon, http, api):
    create_user(api, "carol@example.com")
    answers, timings = [], {"unknown": [], "wrong": []}
    for kind, email in (("unknown", "nobody@example.com"), ("wrong", "carol@example.com")) * 2:
        start = time.perf_counter()
        resp = http.post("/auth/login", json={"email": email, "password": "not the password"})
        timings[kind].append(time.perf_counter() - start)
        answers.append((resp.status_code, resp.json()))
    assert {a[0] for a in answers} == {401}
    assert [a[1] for a in answers] == [{"error": "Unauthorised", "message": "invalid email or password"}] * 4
    # A dummy hash is verified for unknown accounts: without it they would answer in a fraction of the time.
    assert min(timings["unknown"]) > 0.5 * min(timings["wrong"]), timings


def test_login_attempts_are_limited_per_account(daemon, http, api):
    create_user(api, "dave@example.com")
    for _ in range(3):
        wrong = http.post("/auth/login", json={"email": "dave@example.com", "password": "wrong-wrong"})
        assert wrong.status_code == 401
    resp = http.post("/auth/login", json={"email": "dave@example.com", "password": PASSWORD})
    assert resp.status_code == 429
    assert resp.json() == {"error": "Too many attempts", "message": resp.json()["message"]}
    assert "this account" in resp.json()["message"]
    assert int(resp.headers["retry-after"]) >= 1
    # Another account from the same address is not locked by dave's.
    create_user(api, "erin@example.com")
    assert login(http, "erin@example.com").access
    dave_org = daemon.services.boot.organization_id
    trail, _ = daemon.services.auth.events.list(_admin(dave_org, daemon), user_id=None, event=None, since=None,
                                                until=None, limit=100, offset=0)
    assert [e["details"]["reason"] for e in trail if e["event"] == "login_failed"] == ["wrong_password"] * 3


def test_login_attempts_are_limited_per_address(daemon, http):
    for i in range(8):
        assert http.post("/auth/login", json={"email": f"u{i}@example.com", "password": "x" * 12}).status_code == 401
    resp = http.post("/auth/login", json={"email": "u9@example.com", "password": "x" * 12})
    assert resp.status_code == 429 and "this address" in resp.json()["message"]


def test_a_user_sees_failed_logins_against_their_account(daemon, http, api):
    create_user(api, "frank@example.com")
    http.post("/auth/login", json={"email": "frank@example.com", "password": "guess-guess"})
    session = login(http, "frank@example.com")
    trail = events(http, session.auth)
    assert [e["event"] for e in trail] == ["login_succeeded", "login_failed"]
    assert trail[1]["details"] == {"reason": "wrong_password"} and trail[1]["ip"] == "127.0.0.1"
    assert http.get("/auth/security-events", headers=session.auth, params={"all": "true"}).status_code == 403
    for blank_or_odd in ("", "maybe"):  # not "false": a value that says nothing is refused, not guessed
        resp = http.get("/auth/security-events", headers=session.auth, params={"all": blank_or_odd})
        assert resp.status_code == 400 and resp.json()["message"] == "all must be true or false"


def _admin(org_id, daemon):
    from logmail.services.principal import Principal

    return Principal(org_id, daemon.services.boot.organization_uuid, None, None, frozenset({"admin"}))
