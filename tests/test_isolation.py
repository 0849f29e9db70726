"""Two tenants over HTTP: neither reads, lists, changes nor deletes the other's messages, tokens,
sessions or users; each probe is a 404, indistinguishable from a missing id, and a security event."""

from __future__ import annotations

import time
from dataclasses import dataclass

import pytest
from sqlalchemy import select

from auth_helpers import PASSWORD, client, create_user, events, login
from conftest import make_settings
from logmail.services.accept import Envelope
from logmail.store.models import Organization

MISSING = "00000000-0000-4000-8000-000000000000"


def raw_message(subject: str) -> bytes:
    return (f"Subject: {subject}\r\nFrom: ops@example.com\r\nTo: ap@example.com\r\nMIME-Version: 1.0\r\n"
            "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\n"
            f"secret {subject}\r\n--b\r\nContent-Type: text/plain; name=a.txt\r\n"
            "Content-Disposition: attachment; filename=a.txt\r\n\r\nattached\r\n--b--\r\n").encode()


@dataclass
class Tenant:
    name: str
    headers: dict          # an admin-scope credential: a logged-in owner/admin
    token_headers: dict    # an API token with every scope
    message: dict
    attachment_id: str
    token_id: str
    session_id: str
    user_id: str


@pytest.fixture
def settings(tmp_path):
    return make_settings(tmp_path / "data", auth={"open_registration": True})


@pytest.fixture
def tenants(daemon, api):
    http = client(daemon)
    # Tenant A: the built-in organisation, with an admin user.
    a_user = create_user(api, "admin@a.example", "admin")
    # Tenant B: registered, so it is a new organisation with its own owner.
    resp = http.post("/auth/register", json={"email": "owner@b.example", "password": PASSWORD,
                                             "organisationName": "B"})
    assert resp.status_code == 201
    b_user = resp.json()["user"]
    with daemon.services.db.read() as session:
        b_org = session.execute(select(Organization.id)
                                .where(Organization.uuid == b_user["organisationId"])).scalar_one()
    daemon.services.acceptor.accept_many([
        (raw_message("for A"), Envelope("ops@example.com", ["ap@example.com"])),
        (raw_message("for B"), Envelope("ops@example.com", ["ap@example.com"], organization_id=b_org)),
    ])
    out = {}
    for name, user in (("A", a_user), ("B", b_user)):
        session = login(http, user["email"])
        token = http.post("/tokens", headers=session.auth, json={"name": f"{name} token", "scopes": ["admin"]}).json()
        deadline = time.monotonic() + 20
        while not (listing := http.get("/messages", headers=session.auth).json()["messages"]):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        (message,) = listing
        detail = http.get(f"/messages/{message['id']}", headers=session.auth).json()
        sessions = http.get("/auth/sessions", headers=session.auth).json()["sessions"]
        out[name] = Tenant(name, session.auth, {"Authorization": f"Bearer {token['token']}"}, message,
                           detail["attachments"][0]["id"], token["id"], sessions[0]["id"], user["id"])
    yield out["A"], out["B"], http
    http.close()


def test_neither_tenant_reaches_the_other(daemon, api, tenants):
    a, b, http = tenants
    for me, other in ((a, b), (b, a)):
        for headers in (me.headers, me.token_headers):
            for method, path in (
                ("GET", f"/messages/{other.message['id']}"),
                ("GET", f"/messages/{other.message['id']}/raw"),
                ("GET", f"/messages/{other.message['id']}/attachments/{other.attachment_id}"),
                ("GET", f"/messages/{me.message['id']}/attachments/{other.attachment_id}"),
                ("DELETE", f"/messages/{other.message['id']}"),
                ("DELETE", f"/tokens/{other.token_id}"),
                ("DELETE", f"/auth/sessions/{other.session_id}"),
                ("DELETE", f"/users/{other.user_id}"),
            ):
                resp = http.request(method, path, headers=headers)
                # Exactly what a missing id gets, so ids cannot be probed.
                missing = http.request(method, path.replace(other.message["id"], MISSING)
                                       .replace(other.attachment_id, MISSING).replace(other.token_id, MISSING)
                                       .replace(other.session_id, MISSING).replace(other.user_id, MISSING),
                                       headers=headers)
                assert resp.status_code == 404, (me.name, method, path, resp.text)
                assert resp.json()["error"] == missing.json()["error"] == "Not found"
                assert resp.json()["message"] == missing.json()["message"]
            listed = {
                "/messages": [m["id"] for m in http.get("/messages", headers=headers).json()["messages"]],
                "/messages?q": [m["id"] for m in http.get("/messages", headers=headers,
                                                          params={"q": "secret"}).json()["messages"]],
                "/tokens": [t["id"] for t in http.get("/tokens", headers=headers).json()["tokens"]],
                "/users": [u["id"] for u in http.get("/users", headers=headers).json()["users"]],
                "/audit": [e["targetId"] for e in http.get("/audit", headers=headers).json()["entries"]],
            }
            assert listed["/messages"] == listed["/messages?q"] == [me.message["id"]]
            assert other.token_id not in listed["/tokens"] and me.token_id in listed["/tokens"]
            assert other.user_id not in listed["/users"] and me.user_id in listed["/users"]
            assert other.user_id not in listed["/audit"] and other.token_id not in listed["/audit"]
        sessions = http.get("/auth/sessions", headers=me.headers).json()["sessions"]
        assert [s["id"] for s in sessions] == [me.session_id]
    # Everything survived the attempts.
    for t in (a, b):
        assert http.get(f"/messages/{t.message['id']}", headers=t.headers).status_code == 200
        assert http.get(f"/messages/{t.message['id']}/raw", headers=t.token_headers).status_code == 200
        assert http.get("/auth/me", headers=t.headers).status_code == 200
    # Each probe is on the prober's own trail, naming what was reached for.
    for me, other in ((a, b), (b, a)):
        trail = events(http, me.headers, event="cross_tenant_access", limit=1000)
        probed = {(e["details"]["kind"], e["details"]["id"]) for e in trail}
        assert probed == {("message", other.message["id"]), ("attachment", other.attachment_id),
                          ("token", other.token_id), ("session", other.session_id), ("user", other.user_id)}
        assert {e["details"]["method"] for e in trail} == {"session", "token"}
        all_org = events(http, me.headers, all="true", event="cross_tenant_access", limit=1000)
        assert len(all_org) >= len(trail)


def test_a_missing_id_is_not_a_security_event(daemon, tenants):
    a, _, http = tenants
    assert http.get(f"/messages/{MISSING}", headers=a.headers).status_code == 404
    assert events(http, a.headers, event="cross_tenant_access") == []


def test_trusted_headers_cannot_cross_tenants(tmp_path):
    from logmail.daemon.runner import Daemon

    d = Daemon(make_settings(tmp_path / "data", auth={"trust_headers": True})).start_in_thread()
    try:
        owner = (tmp_path / "data" / "owner.token").read_text().strip()
        with client(d, headers={"Authorization": f"Bearer {owner}"}) as api:
            user = create_user(api, "gw@example.com", "admin")
        with client(d) as http:
            good = {"X-Tenant-ID": user["organisationId"], "X-User-ID": user["id"]}
            assert http.get("/auth/me", headers=good).json()["userId"] == user["id"]
            foreign = {"X-Tenant-ID": MISSING, "X-User-ID": user["id"]}
            assert http.get("/messages", headers=foreign).status_code == 401
    finally:
        d.stop()
