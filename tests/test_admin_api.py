"""The platform-admin API (/admin): who may call it, that every call is audited, and what each change
does at once: deleting users (revoked first, never orphaning an organisation), suspending, changing
tiers, the numbers, and revoking sessions up to everyone's."""

from __future__ import annotations

import smtplib
import time

import httpx
import pytest
from sqlalchemy import func, select, update

from auth_helpers import PASSWORD, client, login
from conftest import make_settings
from logmail.errors import NotFoundError
from logmail.services.accept import Envelope
from logmail.store.models import Message, Organization, User, UserSession


@pytest.fixture
def settings(tmp_path):
    # Decisions stay cached for the default 5 s: the changes below must be seen at once all the same.
    return make_settings(tmp_path / "data", mode="platform", auth={"open_registration": True},
                         platform={"domains": ["in.test"], "default_tier": "pro"})


@pytest.fixture
def http(daemon):
    with client(daemon) as c:
        yield c


class Tenant:
    """An organisation registered over the API: its owner logged in, an admin and a member added."""

    def __init__(self, daemon, http: httpx.Client, name: str, *, staff: bool = True) -> None:
        self.http = http
        self.email = f"owner@{name}.example"
        resp = http.post("/auth/register", json={"email": self.email, "password": PASSWORD, "organisationName": name})
        assert resp.status_code == 201, resp.text
        self.owner_id = resp.json()["user"]["id"]
        self.org_uuid = resp.json()["organisation"]["id"]
        with daemon.services.db.read() as session:
            self.org_id = session.execute(select(Organization.id).where(Organization.uuid == self.org_uuid)
                                          ).scalar_one()
        self.owner = login(http, self.email).auth
        self.users: dict[str, dict] = {}
        self.logins: dict[str, dict] = {"owner": self.owner}
        if staff:
            for role in ("admin", "member"):
                self.add(f"{role}@{name}.example", role)
                self.logins[role] = login(http, f"{role}@{name}.example").auth

    def add(self, email: str, role: str = "member") -> dict:
        resp = self.http.post("/users", headers=self.owner, json={"email": email, "password": PASSWORD, "role": role})
        assert resp.status_code == 201, resp.text
        self.users[email] = resp.json()
        return resp.json()

    def address(self, address: str) -> None:
        assert self.http.post("/addresses", headers=self.owner, json={"address": address}).status_code == 201

    def token(self, headers: dict, scopes=("read",)) -> dict:
        resp = self.http.post("/tokens", headers=headers, json={"name": "script", "scopes": list(scopes)})
        assert resp.status_code == 201, resp.text
        return {"Authorization": f"Bearer {resp.json()['token']}"}


@pytest.fixture
def root(daemon, http):
    """A platform admin, in an organisation of their own, logged in once (no request made yet)."""
    admin = Tenant(daemon, http, "platform", staff=False)
    with daemon.services.db.write() as session:
        session.execute(update(User).where(User.email == "owner@platform.example").values(is_platform_admin=True))
    return admin.owner


def works(http: httpx.Client, headers: dict) -> bool:
    resp = http.get("/messages", headers=headers)
    assert resp.status_code in (200, 401), resp.text
    return resp.status_code == 200


def rcpt(daemon, address: str) -> tuple[int, str]:
    with smtplib.SMTP("127.0.0.1", daemon.smtp_port, timeout=30) as smtp:
        smtp.ehlo()
        smtp.mail("sender@example.net")
        code, text = smtp.rcpt(address)
        return code, text.decode()


def deliver(daemon, tenant: Tenant, count: int, address: str) -> list[bytes]:
    raws = [f"From: a@example.net\r\nTo: {address}\r\nSubject: m{n}\r\n\r\n{'x' * (100 + n)}\r\n".encode()
            for n in range(count)]
    daemon.services.acceptor.accept_many([(raw, Envelope("a@example.net", [address], routes={tenant.org_id: [address]}))
                                          for raw in raws])
    deadline = time.monotonic() + 20
    while stored(daemon, tenant.org_id) < count:
        assert time.monotonic() < deadline, "mail did not arrive"
        time.sleep(0.05)
    return raws


def stored(daemon, org_id: int) -> int:
    with daemon.services.db.read() as session:
        return session.execute(select(func.count()).select_from(Message).where(Message.organization_id == org_id)
                               ).scalar_one()


def audit(http: httpx.Client, root: dict, **params) -> list[dict]:
    resp = http.get("/admin/audit", headers=root, params={"limit": 1000, **params})
    assert resp.status_code == 200, resp.text
    return resp.json()["entries"]


# -- who may ---------------------------------------------------------------------------------------


def endpoints(a: Tenant, b: Tenant, victim: dict) -> list[tuple[str, str, dict | None, int]]:
    """Every /admin endpoint, as a platform admin would call it successfully, in an order that keeps
    the destructive ones last (the last ends every session, the caller's too)."""
    return [
        ("GET", "/admin/users", None, 200),
        ("GET", f"/admin/users/{b.owner_id}", None, 200),
        ("GET", "/admin/organizations", None, 200),
        ("GET", f"/admin/organizations/{b.org_uuid}", None, 200),
        ("GET", "/admin/audit", None, 200),
        ("GET", "/admin/stats", None, 200),
        ("GET", "/admin/tiers", None, 200),
        ("POST", "/admin/tiers", {"name": "team", "displayName": "Team"}, 201),
        ("PATCH", "/admin/tiers/team", {"limits": {"maxAddresses": 3}}, 200),
        ("PATCH", f"/admin/organizations/{b.org_uuid}/tier", {"tier": "free"}, 200),
        ("POST", f"/admin/organizations/{b.org_uuid}/suspend", {"reason": "testing"}, 200),
        ("POST", f"/admin/organizations/{b.org_uuid}/unsuspend", None, 200),
        ("POST", f"/admin/sessions/revoke-user/{b.owner_id}", None, 200),
        ("POST", f"/admin/sessions/revoke-organization/{b.org_uuid}", None, 200),
        ("DELETE", f"/admin/users/{victim['id']}", None, 200),
        ("POST", "/admin/sessions/revoke-all", None, 200),
    ]


def call(http: httpx.Client, method: str, path: str, body: dict | None, headers: dict) -> httpx.Response:
    return http.request(method, path, headers=headers, json=body) if body is not None else \
        http.request(method, path, headers=headers)


def test_only_platform_admins_and_every_call_is_audited(daemon, http, root):
    a, b = Tenant(daemon, http, "acme"), Tenant(daemon, http, "globex")
    victim = b.add("victim@globex.example")
    calls = endpoints(a, b, victim)
    owner_token = a.token(a.owner, scopes=("read", "write", "admin"))
    for role, headers in [*a.logins.items(), ("owner's admin token", owner_token)]:
        for method, path, body, _ in calls:
            resp = call(http, method, path, body, headers)
            assert resp.status_code == 403, (role, method, path, resp.status_code, resp.text)
            assert set(resp.json()) == {"error", "message"}
    for method, path, body, _ in calls:
        assert call(http, method, path, body, {}).status_code == 401, (method, path)
    # Each refusal is a security event of the caller's.
    mine = http.get("/auth/security-events", headers=a.logins["member"], params={"event": "admin_access_denied"})
    assert mine.json()["pagination"]["total"] == len(calls)
    # Nothing was changed by the refused calls.
    assert works(http, b.owner) and http.get(f"/admin/users/{victim['id']}", headers=root).status_code == 200

    started = daemon.services.auth.now()
    for method, path, body, status in calls:
        resp = call(http, method, path, body, root)
        assert resp.status_code == status, (method, path, resp.text)
    assert not works(http, root)  # revoke-all ended the caller's own session too
    root = login(http, "owner@platform.example").auth
    entries = audit(http, root, since=started)
    viewed = {e["details"]["path"] for e in entries if e["action"] == "admin.viewed"}
    assert viewed >= {path for method, path, _, _ in calls if method == "GET"}
    done = {e["action"] for e in entries}
    assert done >= {"tier.created", "tier.updated", "organization.tier_changed", "organization.suspended",
                    "organization.unsuspended", "sessions.revoked", "user.deleted"}
    scopes = sorted(e["details"]["scope"] for e in entries if e["action"] == "sessions.revoked")
    assert scopes == ["all", "organization", "user"]
    suspended = next(e for e in entries if e["action"] == "organization.suspended")
    assert suspended["organizationId"] == b.org_uuid and suspended["details"] == {"reason": "testing"}
    assert suspended["actorUserId"] == login(http, "owner@platform.example").body["user"]["id"]
    # The organisation itself sees what the platform did to it.
    own = http.get("/audit", headers=login(http, b.email).auth, params={"action": "organization.suspended"})
    assert own.json()["pagination"]["total"] == 1


def test_a_read_only_token_of_a_platform_admin_reads_but_changes_nothing(daemon, http, root):
    b = Tenant(daemon, http, "globex", staff=False)
    resp = http.post("/tokens", headers=root, json={"name": "ro", "scopes": ["read"]})
    token = {"Authorization": f"Bearer {resp.json()['token']}"}
    assert http.get("/admin/organizations", headers=token).status_code == 200
    refused = http.post(f"/admin/organizations/{b.org_uuid}/suspend", headers=token)
    assert refused.status_code == 403 and "'admin' scope" in refused.json()["message"]


def test_listing_and_filters(daemon, http, root):
    a, b = Tenant(daemon, http, "acme"), Tenant(daemon, http, "globex")
    everyone = http.get("/admin/users", headers=root, params={"limit": 2}).json()
    assert everyone["pagination"]["total"] == 7 and len(everyone["users"]) == 2
    found = http.get("/admin/users", headers=root, params={"email": "GLOBEX"}).json()["users"]
    assert {u["email"] for u in found} == {"owner@globex.example", "admin@globex.example", "member@globex.example"}
    assert all(u["organisationId"] == b.org_uuid and u["organisationName"] == "globex" for u in found)
    only_a = http.get("/admin/users", headers=root, params={"organization": a.org_uuid}).json()
    assert only_a["pagination"]["total"] == 3
    assert http.get("/admin/users", headers=root, params={"email": "%"}).json()["pagination"]["total"] == 0
    detail = http.get(f"/admin/users/{a.owner_id}", headers=root).json()
    assert detail["activeSessions"] == 1 and detail["apiTokens"] == 0 and detail["lastLoginAt"] is not None
    orgs = http.get("/admin/organizations", headers=root, params={"search": "acm"}).json()["organizations"]
    assert [(o["name"], o["userCount"], o["status"]) for o in orgs] == [("acme", 3, "active")]
    one = http.get(f"/admin/organizations/{a.org_uuid}", headers=root).json()
    assert one["owners"] == [{"id": a.owner_id, "email": a.email}] and one["tier"] == "pro"
    assert http.get(f"/admin/organizations/{a.owner_id}", headers=root).status_code == 404
    assert http.get("/admin/users/not-a-uuid", headers=root).status_code == 400
    assert http.get("/admin/organizations", headers=root, params={"status": "gone"}).status_code == 400
    entries = audit(http, root, organization=a.org_uuid, action="user.created")
    assert len(entries) == 2 and {e["organizationId"] for e in entries} == {a.org_uuid}


# -- deleting users ----------------------------------------------------------------------------------


def test_deleting_a_user_revokes_their_sessions_and_tokens_first(daemon, http, root):
    a = Tenant(daemon, http, "acme")
    doomed = a.add("doomed@acme.example", "admin")
    session = login(http, "doomed@acme.example").auth
    token = a.token(session, scopes=("read", "admin"))
    assert works(http, session) and works(http, token)  # both decisions are now cached
    resp = http.delete(f"/admin/users/{doomed['id']}", headers=root)
    assert resp.status_code == 200, resp.text
    assert resp.json()["organization"] == {"id": a.org_uuid, "action": "kept"}
    assert not works(http, session) and not works(http, token)
    assert http.get(f"/admin/users/{doomed['id']}", headers=root).status_code == 404
    assert http.delete(f"/admin/users/{doomed['id']}", headers=root).status_code == 404
    (entry,) = audit(http, root, action="user.deleted", organization=a.org_uuid)
    assert entry["targetId"] == doomed["id"]
    assert works(http, a.owner)


def test_the_last_owner_needs_an_instruction(daemon, http, root):
    a = Tenant(daemon, http, "acme")
    member = a.users["member@acme.example"]
    refused = http.delete(f"/admin/users/{a.owner_id}", headers=root)
    assert refused.status_code == 409 and "transferTo" in refused.json()["message"]
    assert works(http, a.owner)  # refused before anything was revoked
    other = Tenant(daemon, http, "globex", staff=False)
    assert http.delete(f"/admin/users/{a.owner_id}", headers=root,
                       params={"transferTo": other.owner_id}).status_code == 400
    assert http.delete(f"/admin/users/{a.owner_id}", headers=root,
                       params={"transferTo": member["id"], "organization": "delete"}).status_code == 400
    assert http.delete(f"/admin/users/{member['id']}", headers=root,
                       params={"organization": "delete"}).status_code == 400
    # The member's session already holds "member": the new role applies at once all the same.
    assert http.get("/audit", headers=a.logins["member"]).status_code == 403
    moved = http.delete(f"/admin/users/{a.owner_id}", headers=root, params={"transferTo": member["id"]})
    assert moved.status_code == 200, moved.text
    assert moved.json()["organization"] == {"id": a.org_uuid, "action": "transferred", "owner": member["id"]}
    assert http.get(f"/admin/users/{member['id']}", headers=root).json()["role"] == "owner"
    assert http.get("/audit", headers=a.logins["member"]).status_code == 200
    assert not works(http, a.owner)
    (entry,) = audit(http, root, action="organization.ownership_transferred")
    assert entry["targetId"] == member["id"] and entry["details"] == {"from": a.owner_id}


def test_deleting_the_last_owner_with_the_organisation_takes_all_its_data(daemon, http, root):
    a, b = Tenant(daemon, http, "acme"), Tenant(daemon, http, "globex", staff=False)
    a.address("dev@in.test")
    b.address("ops@in.test")
    deliver(daemon, a, 3, "dev@in.test")
    deliver(daemon, b, 2, "ops@in.test")
    with daemon.services.db.read() as session:
        keys = list(session.execute(select(Message.raw_key).where(Message.organization_id == a.org_id)).scalars())
    member_token = a.token(a.logins["member"])
    resp = http.delete(f"/admin/users/{a.owner_id}", headers=root, params={"organization": "delete"})
    assert resp.status_code == 200, resp.text
    assert resp.json()["organization"]["action"] == "deleted"
    assert resp.json()["organization"]["messagesDeleted"] == 3
    assert http.get(f"/admin/organizations/{a.org_uuid}", headers=root).status_code == 404
    assert http.get("/admin/users", headers=root, params={"email": "acme"}).json()["users"] == []
    for key in keys:
        with pytest.raises(NotFoundError):
            daemon.services.content.get(key)
    assert not works(http, member_token) and not works(http, a.logins["admin"])
    assert rcpt(daemon, "dev@in.test")[0] == 550  # its address is free again: unknown now
    assert stored(daemon, b.org_id) == 2 and works(http, b.owner)
    (entry,) = audit(http, root, action="organization.deleted")
    assert entry["targetId"] == a.org_uuid and entry["details"]["messages"] == 3
    assert entry["details"]["lastOwnerDeleted"] == a.owner_id


# -- suspending and tiers ------------------------------------------------------------------------------


def test_suspension_refuses_mail_and_callers_at_once_and_unsuspending_gives_it_back(daemon, http, root):
    a = Tenant(daemon, http, "acme")
    a.address("dev@in.test")
    token = a.token(a.owner)
    assert rcpt(daemon, "dev@in.test")[0] == 250  # and cached for policy.cache_seconds
    assert works(http, a.owner) and works(http, token)
    resp = http.post(f"/admin/organizations/{a.org_uuid}/suspend", headers=root, json={"reason": "unpaid"})
    assert resp.status_code == 200, resp.text
    assert resp.json()["status"] == "suspended" and resp.json()["suspendedReason"] == "unpaid"
    # The same answer as GET /admin/organizations/{id}: nothing to fetch again to show it.
    assert resp.json() == http.get(f"/admin/organizations/{a.org_uuid}", headers=root).json()
    code, text = rcpt(daemon, "dev@in.test")
    assert code == 550 and text.startswith("5.7.1")
    assert not works(http, a.owner) and not works(http, token)
    assert http.post("/auth/login", json={"email": a.email, "password": PASSWORD}).status_code == 403
    assert http.post(f"/admin/organizations/{a.org_uuid}/suspend", headers=root).status_code == 409
    back = http.post(f"/admin/organizations/{a.org_uuid}/unsuspend", headers=root)
    assert back.status_code == 200 and back.json()["status"] == "active" and back.json()["userCount"] >= 1
    assert rcpt(daemon, "dev@in.test")[0] == 250
    assert works(http, a.owner) and works(http, token)  # suspension revoked nothing
    assert http.post(f"/admin/organizations/{a.org_uuid}/unsuspend", headers=root).status_code == 409
    # The platform's own organisations are not to be locked.
    own = login(http, "owner@platform.example").body["user"]["organisationId"]
    assert http.post(f"/admin/organizations/{own}/suspend", headers=root).status_code == 409
    builtin = daemon.services.boot.organization_uuid
    assert http.post(f"/admin/organizations/{builtin}/suspend", headers=root).status_code == 409


def test_a_tier_change_is_seen_at_once(daemon, http, root):
    a = Tenant(daemon, http, "acme", staff=False)
    a.address("dev@in.test")
    assert rcpt(daemon, "dev@in.test")[0] == 250
    assert http.post("/admin/tiers", headers=root, json={"name": "closed", "displayName": "Closed",
                                                         "limits": {"emailsPerMonth": 0}}).status_code == 201
    resp = http.patch(f"/admin/organizations/{a.org_uuid}/tier", headers=root, json={"tier": "closed"})
    assert resp.status_code == 200 and resp.json()["tier"] == "closed"
    assert resp.json() == http.get(f"/admin/organizations/{a.org_uuid}", headers=root).json()
    code, text = rcpt(daemon, "dev@in.test")
    assert code == 552 and text.startswith("5.2.2")
    assert http.get("/usage", headers=a.owner).json()["tier"]["name"] == "closed"
    assert http.patch(f"/admin/organizations/{a.org_uuid}/tier", headers=root,
                      json={"tier": "nope"}).status_code == 400
    assert http.patch(f"/admin/organizations/{a.org_uuid}/tier", headers=root, json={}).status_code == 400
    (entry,) = audit(http, root, action="organization.tier_changed")
    assert entry["details"] == {"from": "pro", "to": "closed"}


# -- the numbers ---------------------------------------------------------------------------------------


def test_stats_count_what_is_there(daemon, http, root):
    a, b = Tenant(daemon, http, "acme"), Tenant(daemon, http, "globex", staff=False)
    a.address("dev@in.test")
    b.address("ops@in.test")
    raws = deliver(daemon, a, 4, "dev@in.test") + deliver(daemon, b, 1, "ops@in.test")
    http.post(f"/admin/organizations/{b.org_uuid}/suspend", headers=root)
    stats = http.get("/admin/stats", headers=root).json()
    with daemon.services.db.read() as session:
        organizations = session.execute(select(func.count()).select_from(Organization)).scalar_one()
    assert stats["users"] == {"total": 5, "platformAdmins": 1}
    assert stats["organizations"] == {"total": organizations, "active": organizations - 1, "suspended": 1}
    assert stats["messages"] == 5 and stats["storageBytes"] == sum(len(r) for r in raws)
    assert stats["ingestRate"]["lastMinute"] == 5 and stats["ingestRate"]["lastHour"] == 5
    assert stats["queueDepth"] == 0
    # root, acme's three; globex's owner is suspended but the session itself is not revoked.
    assert stats["activeSessions"] == 5
    with daemon.services.db.write() as session:
        session.execute(update(UserSession).values(last_seen_at=0).where(UserSession.organization_id == a.org_id))
    assert http.get("/admin/stats", headers=root).json()["activeSessions"] == 2  # idle beyond the limit


# -- revoking sessions ---------------------------------------------------------------------------------


def test_revoking_a_user_an_organisation_and_everyone(daemon, http, root):
    a, b = Tenant(daemon, http, "acme"), Tenant(daemon, http, "globex")
    a_token = a.token(a.owner)
    second = login(http, "member@acme.example").auth
    assert all(works(http, h) for h in (*a.logins.values(), *b.logins.values(), second, a_token))
    one = http.post(f"/admin/sessions/revoke-user/{a.users['member@acme.example']['id']}", headers=root)
    assert one.json() == {"revoked": 2, "userId": a.users["member@acme.example"]["id"]}
    assert not works(http, a.logins["member"]) and not works(http, second)
    assert works(http, a.owner) and works(http, a.logins["admin"])
    told = http.get("/notifications", headers=login(http, "member@acme.example").auth).json()["notifications"]
    assert told[0]["kind"] == "sessionsRevoked" and "administrator" in told[0]["title"]
    org = http.post(f"/admin/sessions/revoke-organization/{a.org_uuid}", headers=root)
    assert org.json()["revoked"] == 3  # owner, admin and the member's new login
    assert not works(http, a.owner) and not works(http, a.logins["admin"])
    assert works(http, a_token)  # API tokens are not sessions
    assert all(works(http, h) for h in b.logins.values())
    assert http.post("/admin/sessions/revoke-user/00000000-0000-4000-8000-000000000000",
                     headers=root).status_code == 404
    everyone = http.post("/admin/sessions/revoke-all", headers=root)
    assert everyone.status_code == 200 and everyone.json()["revoked"] == 4  # globex's three and the caller
    assert not works(http, root) and not any(works(http, h) for h in b.logins.values())
    assert works(http, a_token)
    assert works(http, login(http, b.email).auth)  # logging in again works
