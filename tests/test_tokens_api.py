"""/tokens: shown once, stored hashed, scoped, bounded by their creator, revoked at once, expiring."""

from __future__ import annotations

import smtplib

import pytest

from auth_helpers import MINUTE, client, create_user, install_clock, login
from conftest import wait_for_messages


@pytest.fixture
def http(daemon):
    with client(daemon) as c:
        yield c


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def send_one(daemon) -> None:
    with smtplib.SMTP("127.0.0.1", daemon.smtp_port) as smtp:
        smtp.sendmail("a@example.com", ["b@example.com"], b"Subject: t\r\n\r\nbody\r\n")


def test_created_once_listed_without_value_and_the_owner_token_is_listed(daemon, api, owner_token):
    resp = api.post("/tokens", json={"name": "ci", "scopes": ["read", "ingest"]})
    assert resp.status_code == 201, resp.text
    created = resp.json()
    assert created["token"].startswith("lm_") and created["prefix"] == created["token"][:10]
    assert created["scopes"] == ["read", "ingest"] and created["expiresAt"] is None
    listing = api.get("/tokens")
    assert listing.status_code == 200
    tokens = listing.json()["tokens"]
    assert [t["name"] for t in tokens] == ["ci", "owner (written to owner.token)"]
    assert created["token"] not in listing.text and owner_token not in listing.text
    assert all("token" not in t and "tokenHash" not in t for t in tokens)
    assert api.get("/messages", headers=bearer(created["token"])).status_code == 200


def test_scopes_are_enforced(daemon, api):
    send_one(daemon)
    (message,) = wait_for_messages(api, 1)
    reader = api.post("/tokens", json={"name": "reader"}).json()  # read is the default
    assert reader["scopes"] == ["read"]
    resp = api.delete(f"/messages/{message['id']}", headers=bearer(reader["token"]))
    assert resp.status_code == 403 and "'write'" in resp.json()["message"]
    assert api.get("/tokens", headers=bearer(reader["token"])).status_code == 403  # managing tokens: admin
    writer = api.post("/tokens", json={"name": "writer", "scopes": ["write"]}).json()
    assert api.delete(f"/messages/{message['id']}", headers=bearer(writer["token"])).status_code == 200


def test_revocation_takes_effect_at_once(daemon, api):
    created = api.post("/tokens", json={"name": "soon gone", "scopes": ["read"]}).json()
    assert api.get("/messages", headers=bearer(created["token"])).status_code == 200  # now cached as valid
    assert api.delete(f"/tokens/{created['id']}").status_code == 200
    resp = api.get("/messages", headers=bearer(created["token"]))
    assert resp.status_code == 401 and "revoked" in resp.json()["message"]
    assert created["id"] not in [t["id"] for t in api.get("/tokens").json()["tokens"]]
    assert api.delete(f"/tokens/{created['id']}").status_code == 404


def test_expiry(daemon, api):
    clock = install_clock(daemon)
    past = api.post("/tokens", json={"name": "late", "expiresAt": clock.now - 1})
    assert past.status_code == 400 and "expiresAt must be in the future" in past.json()["message"]
    created = api.post("/tokens", json={"name": "brief", "expiresAt": clock.now + 10 * MINUTE}).json()
    assert api.get("/messages", headers=bearer(created["token"])).status_code == 200
    clock.advance(10 * MINUTE)
    assert api.get("/messages", headers=bearer(created["token"])).status_code == 401


def test_a_token_never_has_more_power_than_its_creator(daemon, api, http):
    member = create_user(api, "mia@example.com", "member")
    session = login(http, member["email"])
    for scopes in (["admin"], ["write"], ["read", "ingest"]):
        resp = http.post("/tokens", headers=session.auth, json={"name": "x", "scopes": scopes})
        assert resp.status_code == 403 and "more power than its creator" in resp.json()["message"]
    mine = http.post("/tokens", headers=session.auth, json={"name": "mine", "scopes": ["read"]})
    assert mine.status_code == 201 and mine.json()["createdBy"] == member["id"]
    # A member sees and revokes only their own tokens.
    listed = http.get("/tokens", headers=session.auth).json()["tokens"]
    assert [t["name"] for t in listed] == ["mine"]
    owner_token_id = [t for t in api.get("/tokens").json()["tokens"] if t["createdBy"] is None][0]["id"]
    assert http.delete(f"/tokens/{owner_token_id}", headers=session.auth).status_code == 404
    # Its token acts as the member: it reads and can do nothing else.
    token = mine.json()["token"]
    assert api.get("/auth/me", headers=bearer(token)).json()["scopes"] == ["read"]
    assert api.post("/tokens", headers=bearer(token), json={"name": "child"}).status_code == 403
    assert http.delete(f"/tokens/{mine.json()['id']}", headers=session.auth).status_code == 200


def test_an_admin_mints_admin_tokens_bounded_by_the_admin(daemon, api, http):
    admin = create_user(api, "ada@example.com", "admin")
    session = login(http, admin["email"])
    resp = http.post("/tokens", headers=session.auth, json={"name": "automation", "scopes": ["admin"]})
    assert resp.status_code == 201
    token = resp.json()["token"]
    # An admin's admin token may create users, but never an owner: the admin could not.
    assert api.post("/users", headers=bearer(token),
                    json={"email": "o@example.com", "password": "x" * 12, "role": "owner"}).status_code == 403
    # Deleting the admin kills their token and their session at once.
    assert api.delete(f"/users/{admin['id']}").status_code == 200
    assert api.get("/messages", headers=bearer(token)).status_code == 401
    assert http.get("/auth/me", headers=session.auth).status_code == 401


@pytest.mark.parametrize("payload, fragment", [
    ({"name": "x", "scopes": ["root"]}, "scopes must be a non-empty list of read, write, ingest, admin"),
    ({"name": "x", "scopes": []}, "scopes must be a non-empty list"),
    ({"name": "x", "scopes": "read"}, "scopes must be a non-empty list"),
    ({"name": ""}, "name must not be empty"),
    ({"name": "x" * 201}, "name must be at most 200 characters long"),
    ({"name": "x", "expiresAt": "tomorrow"}, "expiresAt must be an integer"),
    ({"name": "x", "owner": True}, "unknown field: owner"),
])
def test_bad_token_requests(api, payload, fragment):
    resp = api.post("/tokens", json=payload)
    assert resp.status_code == 400 and fragment in resp.json()["message"], resp.text
