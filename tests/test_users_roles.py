"""/users and the roles matrix: members read, admins manage, owners also make owners."""

from __future__ import annotations

import smtplib

import pytest

from auth_helpers import PASSWORD, client, create_user, login
from conftest import wait_for_messages


@pytest.fixture
def http(daemon):
    with client(daemon) as c:
        yield c


@pytest.fixture
def people(api, http):
    """An owner, an admin and a member of the built-in organisation, logged in."""
    out = {}
    for role in ("owner", "admin", "member"):
        user = create_user(api, f"{role}@example.com", role)
        out[role] = (user, login(http, user["email"]))
    return out


def test_the_roles_matrix(daemon, api, http, people):
    with smtplib.SMTP("127.0.0.1", daemon.smtp_port) as smtp:
        for i in range(3):
            smtp.sendmail("a@example.com", ["b@example.com"], f"Subject: m{i}\r\n\r\nx\r\n".encode())
    messages = wait_for_messages(api, 3)
    member, admin, owner = people["member"][1].auth, people["admin"][1].auth, people["owner"][1].auth
    # Everyone reads.
    for who in (member, admin, owner):
        assert http.get("/messages", headers=who).status_code == 200
        assert http.get(f"/messages/{messages[0]['id']}", headers=who).status_code == 200
    # Members do nothing else.
    resp = http.delete(f"/messages/{messages[0]['id']}", headers=member)
    assert resp.status_code == 403 and "role 'member'" in resp.json()["message"]
    for method, path in (("GET", "/users"), ("GET", "/audit"),
                         ("POST", "/users"), ("DELETE", f"/users/{people['admin'][0]['id']}")):
        body = {"email": "z@example.com", "password": PASSWORD} if method == "POST" else None
        assert http.request(method, path, headers=member, json=body).status_code == 403, (method, path)
    # Admins and owners delete messages, read the audit log and manage users.
    assert http.delete(f"/messages/{messages[0]['id']}", headers=admin).status_code == 200
    assert http.delete(f"/messages/{messages[1]['id']}", headers=owner).status_code == 200
    for who in (admin, owner):
        assert http.get("/audit", headers=who).status_code == 200
        assert http.get("/users", headers=who).json()["pagination"]["total"] == 3


def test_who_may_create_whom(api, http, people):
    admin, owner = people["admin"][1].auth, people["owner"][1].auth
    resp = http.post("/users", headers=admin, json={"email": "o2@example.com", "password": PASSWORD, "role": "owner"})
    assert resp.status_code == 403 and "an admin cannot create an owner" in resp.json()["message"]
    made = http.post("/users", headers=admin, json={"email": "a2@example.com", "password": PASSWORD, "role": "admin"})
    assert made.status_code == 201 and made.json()["role"] == "admin"
    default = http.post("/users", headers=admin, json={"email": "m2@example.com", "password": PASSWORD})
    assert default.status_code == 201 and default.json()["role"] == "member"
    made = http.post("/users", headers=owner, json={"email": "o2@example.com", "password": PASSWORD, "role": "owner"})
    assert made.status_code == 201
    dup = http.post("/users", headers=owner, json={"email": "O2@example.com", "password": PASSWORD})
    assert dup.status_code == 409
    weak = http.post("/users", headers=owner, json={"email": "w@example.com", "password": "123"})
    assert weak.status_code == 400 and "at least 10 characters" in weak.json()["message"]
    bad_role = http.post("/users", headers=owner, json={"email": "r@example.com", "password": PASSWORD, "role": "god"})
    assert bad_role.status_code == 400 and "role must be one of owner, admin, member" in bad_role.json()["message"]
    # Only platform admins add users to other organisations.
    elsewhere = http.post("/users", headers=owner, json={"email": "e@example.com", "password": PASSWORD,
                                                         "organisationId": "00000000-0000-4000-8000-000000000000"})
    assert elsewhere.status_code == 403 and "platform administrators" in elsewhere.json()["message"]


def test_who_may_delete_whom(api, http, people):
    admin = people["admin"][1].auth
    owner_user, owner_session = people["owner"]
    resp = http.delete(f"/users/{owner_user['id']}", headers=admin)
    assert resp.status_code == 403 and "an admin cannot delete an owner" in resp.json()["message"]
    last = http.delete(f"/users/{owner_user['id']}", headers=owner_session.auth)
    assert last.status_code == 409 and "last owner" in last.json()["message"]
    member_user, member_session = people["member"]
    assert http.delete(f"/users/{member_user['id']}", headers=admin).status_code == 200
    assert http.get("/auth/me", headers=member_session.auth).status_code == 401
    assert http.post("/auth/login", json={"email": member_user["email"], "password": PASSWORD}).status_code == 401
    assert http.delete(f"/users/{member_user['id']}", headers=admin).status_code == 404


def test_platform_admins_create_users_in_any_organisation(daemon, api, http, people):
    from sqlalchemy import update

    from logmail.store.models import Organization, User

    with daemon.services.db.write() as session:
        other = Organization(name="Elsewhere", tier="free")
        session.add(other)
        session.flush()
        other_uuid = other.uuid
        session.execute(update(User).where(User.email == "admin@example.com").values(is_platform_admin=True))
    platform_admin = login(http, "admin@example.com")  # a new login: the flag is read per session check
    assert http.get("/auth/me", headers=platform_admin.auth).json()["isPlatformAdmin"] is True
    made = http.post("/users", headers=platform_admin.auth,
                     json={"email": "new@elsewhere.example", "password": PASSWORD, "organisationId": other_uuid})
    assert made.status_code == 201 and made.json()["organisationId"] == other_uuid
    # Still bounded by their own role there: an admin makes no owners, anywhere.
    owner = http.post("/users", headers=platform_admin.auth, json={
        "email": "boss@elsewhere.example", "password": PASSWORD, "organisationId": other_uuid, "role": "owner"})
    assert owner.status_code == 403
