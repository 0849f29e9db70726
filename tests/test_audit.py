"""/audit: every user action of the organisation, filterable, paginated, admins only, append-only."""

from __future__ import annotations

import smtplib

import pytest

from auth_helpers import PASSWORD, client, create_user, install_clock, login
from conftest import make_settings, wait_for_messages


@pytest.fixture
def settings(tmp_path):
    return make_settings(tmp_path / "data", auth={"open_registration": True})


@pytest.fixture
def http(daemon):
    with client(daemon) as c:
        yield c


def audit(http, headers, **params) -> list[dict]:
    resp = http.get("/audit", headers=headers, params=params)
    assert resp.status_code == 200, resp.text
    return resp.json()["entries"]


def test_actions_are_recorded_with_their_actor(daemon, api, http):
    clock = install_clock(daemon)
    admin = create_user(api, "root@example.com", "admin")                       # user.created by the owner token
    session = login(http, admin["email"])                                       # auth.login
    token = http.post("/tokens", headers=session.auth, json={"name": "t"}).json()  # token.created
    http.delete(f"/tokens/{token['id']}", headers=session.auth)                 # token.revoked
    with smtplib.SMTP("127.0.0.1", daemon.smtp_port) as smtp:
        smtp.sendmail("a@example.com", ["b@example.com"], b"Subject: bye\r\n\r\nx\r\n")
    (message,) = wait_for_messages(api, 1)
    clock.advance(1000)
    http.delete(f"/messages/{message['id']}", headers=session.auth)             # message.deleted
    other = login(http, admin["email"])
    http.delete(f"/auth/sessions/{_session_of(http, other)}", headers=session.auth)  # session.revoked
    third = login(http, admin["email"])
    http.post("/auth/logout", headers=third.auth)                               # auth.logout
    fourth = login(http, admin["email"])
    http.post("/auth/logout-all", headers=fourth.auth)                          # sessions.revoked

    entries = audit(api, {}, limit=1000)
    actions = [e["action"] for e in reversed(entries)]
    assert actions == ["user.created", "auth.login", "token.created", "token.revoked", "message.deleted",
                       "auth.login", "session.revoked", "auth.login", "auth.logout", "auth.login",
                       "sessions.revoked"]
    by_action = {e["action"]: e for e in entries}
    assert by_action["user.created"]["actorUserId"] is None and by_action["user.created"]["actorTokenId"]
    assert by_action["user.created"]["targetId"] == admin["id"]
    assert by_action["message.deleted"]["targetId"] == message["id"]
    assert by_action["message.deleted"]["actorUserId"] == admin["id"]
    assert by_action["token.revoked"]["targetId"] == token["id"]
    assert by_action["sessions.revoked"]["details"] == {"count": 2}  # the first session and the fourth
    assert all(e["ip"] == "127.0.0.1" for e in entries)
    assert token["token"] not in str(entries)

    # Filters and pages.
    assert {e["action"] for e in audit(api, {}, actor=admin["id"], limit=1000)} >= {"auth.login", "message.deleted"}
    assert all(e["actorUserId"] == admin["id"] for e in audit(api, {}, actor=admin["id"]))
    assert [e["action"] for e in audit(api, {}, action="token.created")] == ["token.created"]
    deleted_at = by_action["message.deleted"]["createdAt"]
    assert "message.deleted" not in {e["action"] for e in audit(api, {}, until=deleted_at)}
    assert "user.created" not in {e["action"] for e in audit(api, {}, since=deleted_at)}
    page = api.get("/audit", params={"limit": 2, "offset": 1}).json()
    assert page["pagination"] == {"total": len(entries), "limit": 2, "offset": 1}
    assert [e["id"] for e in page["entries"]] == [e["id"] for e in entries[1:3]]


def _session_of(http, login_result) -> str:
    sessions = http.get("/auth/sessions", headers=login_result.auth).json()["sessions"]
    return next(s["id"] for s in sessions if s["current"])


def test_registration_is_audited_in_the_new_organisation_only(api, http):
    resp = http.post("/auth/register", json={"email": "new@example.org", "password": PASSWORD,
                                             "organisationName": "New"})
    user = resp.json()["user"]
    session = login(http, user["email"])
    assert [e["action"] for e in audit(http, session.auth)] == ["auth.login", "auth.register"]
    assert "auth.register" not in {e["action"] for e in audit(api, {})}


def test_the_log_is_for_admins_and_cannot_be_changed(api, http):
    member = create_user(api, "m@example.com")
    session = login(http, member["email"])
    resp = http.get("/audit", headers=session.auth)
    assert resp.status_code == 403
    for method in ("POST", "PUT", "DELETE", "PATCH"):
        assert api.request(method, "/audit").status_code == 405
        assert api.request(method, "/auth/security-events").status_code == 405


@pytest.mark.parametrize("params, fragment", [
    ({"actor": "someone"}, "actor must be a UUID"),
    ({"since": "10", "until": "5"}, "until must not be earlier than since"),
    ({"limit": "0"}, "limit must be at least 1"),
])
def test_bad_filters(api, params, fragment):
    resp = api.get("/audit", params=params)
    assert resp.status_code == 400 and fragment in resp.json()["message"]
