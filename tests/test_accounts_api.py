"""The /api/accounts contract over HTTP: validation, ownership (403 across users and tenants),
soft delete, sync requests, and passwords that never leave the server and are encrypted at rest."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy import select

from auth_helpers import PASSWORD, client, create_user, events, login
from conftest import make_settings
from logmail.services.credentials import CredentialError
from logmail.store.models import MailAccount

SECRET = "s3cret-mailbox-pässword"
MISSING = "00000000-0000-4000-8000-000000000000"


def body(**changes) -> dict:
    base = {"accountName": "Support inbox", "emailAddress": "support@company.example", "protocol": "imap",
            "hostname": "imap.company.example", "port": 993, "username": "support", "password": SECRET}
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


@pytest.fixture
def settings(tmp_path):
    return make_settings(tmp_path / "data", auth={"open_registration": True})


@pytest.fixture
def people(daemon, api):
    """Alice and Bob in the built-in organisation, Carol owning another one; each logged in."""
    http = client(daemon)
    create_user(api, "alice@a.example", "member")
    create_user(api, "bob@a.example", "admin")
    resp = http.post("/auth/register", json={"email": "carol@c.example", "password": PASSWORD,
                                             "organisationName": "C"})
    assert resp.status_code == 201
    return {name: login(http, f"{name}@{org}.example").auth
            for name, org in (("alice", "a"), ("bob", "a"), ("carol", "c"))}, http


def test_create_read_update_delete(daemon, people, caplog):
    caplog.set_level(logging.DEBUG)
    who, http = people
    resp = http.post("/api/accounts", headers=who["alice"], json=body())
    assert resp.status_code == 201, resp.text
    account = resp.json()
    assert SECRET not in resp.text and "password" not in resp.text.lower()
    assert account["accountName"] == "Support inbox" and account["protocol"] == "imap"
    assert account["encryption"] == "tls" and account["isSyncEnabled"] is True and account["syncInterval"] == 300
    assert account["isEnabled"] is True and account["isSyncing"] is False and account["lastSyncAt"] is None
    assert account["lastError"] is None and account["syncStats"] == {}
    assert account["createdAt"] > 1_600_000_000_000 and account["updatedAt"] >= account["createdAt"]
    me = http.get("/auth/me", headers=who["alice"]).json()
    assert account["tenantId"] == me["organisationId"] and account["userId"] == me["userId"]

    listing = http.get("/api/accounts", headers=who["alice"], params={"limit": 100, "offset": 0}).json()
    assert listing["pagination"] == {"total": 1, "limit": 100, "offset": 0}
    assert [a["id"] for a in listing["accounts"]] == [account["id"]]
    assert http.get(f"/api/accounts/{account['id']}", headers=who["alice"]).json()["emailAddress"] == \
        "support@company.example"

    changed = http.put(f"/api/accounts/{account['id']}", headers=who["alice"],
                       json={"syncInterval": 600, "password": "new-" + SECRET, "encryption": "starttls"})
    assert changed.status_code == 200, changed.text
    assert changed.json()["syncInterval"] == 600 and changed.json()["encryption"] == "starttls"
    assert changed.json()["accountName"] == "Support inbox"  # a partial update
    assert SECRET not in changed.text

    gone = http.delete(f"/api/accounts/{account['id']}", headers=who["alice"])
    assert gone.json() == {"message": "Account deleted successfully", "id": account["id"]}
    with daemon.services.db.read() as session:
        row = session.execute(select(MailAccount).where(MailAccount.uuid == account["id"])).scalar_one()
        assert row.is_enabled is False and row.is_sync_enabled is False  # soft: kept, and never synced
    assert http.get(f"/api/accounts/{account['id']}", headers=who["alice"]).status_code == 404
    assert http.get("/api/accounts", headers=who["alice"]).json()["pagination"]["total"] == 0
    # The address is free again for this user.
    assert http.post("/api/accounts", headers=who["alice"], json=body()).status_code == 201
    assert SECRET not in caplog.text
    audit = http.get("/audit", headers=who["bob"], params={"action": "account.updated"}).json()["entries"]
    assert audit[0]["details"]["fields"] == ["encryption", "syncInterval", "password"] or \
        set(audit[0]["details"]["fields"]) == {"encryption", "syncInterval", "password"}
    assert SECRET not in str(audit)


@pytest.mark.parametrize("changes, fragment", [
    ({"accountName": None}, "missing required field: accountName"),
    ({"emailAddress": None}, "emailAddress"),
    ({"emailAddress": "not-an-email"}, "emailAddress must be a valid email"),
    ({"protocol": "smtp"}, "protocol must be one of imap, pop3"),
    ({"protocol": None}, "protocol"),
    ({"hostname": None}, "hostname"),
    ({"hostname": "bad host!"}, "hostname must be a host name"),
    ({"port": None}, "port"),
    ({"port": 0}, "port must be an integer from 1 to 65535"),
    ({"port": 65536}, "port must be an integer from 1 to 65535"),
    ({"port": "993"}, "port must be an integer"),
    ({"port": True}, "port must be an integer"),
    ({"encryption": "ssl"}, "encryption must be one of none, tls, starttls"),
    ({"username": None}, "username"),
    ({"password": None}, "password"),
    ({"password": ""}, "password must not be empty"),
    ({"isSyncEnabled": "yes"}, "isSyncEnabled must be true or false"),
    ({"syncInterval": 5}, "syncInterval must be a whole number of seconds from 60"),
    ({"syncInterval": 1.5}, "syncInterval"),
    ({"accountName": 7}, "accountName must be a string"),
    ({"folders": []}, "folders"),
    ({"extra": 1}, "unknown field: extra"),
])
def test_every_validation_error_is_a_clear_400(people, changes, fragment):
    who, http = people
    resp = http.post("/api/accounts", headers=who["alice"], json=body(**changes))
    assert resp.status_code == 400, resp.text
    assert set(resp.json()) == {"error", "message"} and fragment in resp.json()["message"]
    assert SECRET not in resp.text


def test_malformed_requests_are_400s(people):
    who, http = people
    h = who["alice"]
    assert http.post("/api/accounts", headers=h, content=b"{not json",
                     ).status_code == 400  # no Content-Type, and not JSON either
    no_type = http.post("/api/accounts", headers=h, content=b'{"accountName": "x"}')
    assert no_type.status_code == 400 and "Content-Type" in no_type.json()["message"]
    bad_json = http.post("/api/accounts", headers={**h, "Content-Type": "application/json"}, content=b"{nope")
    assert bad_json.status_code == 400 and "not valid JSON" in bad_json.json()["message"]
    assert http.post("/api/accounts", headers=h, json=[1, 2]).status_code == 400
    bad_id = http.get("/api/accounts/not-a-uuid", headers=h)
    assert bad_id.status_code == 400 and "UUID" in bad_id.json()["message"]
    for params in ({"limit": 0}, {"limit": "x"}, {"offset": -1}, {"limit": 10**30}):
        assert http.get("/api/accounts", headers=h, params=params).status_code == 400
    assert http.get(f"/api/accounts/{MISSING}", headers=h).status_code == 404
    assert http.get("/api/accounts").status_code == 401


def test_same_address_twice_for_one_user_is_409_but_not_across_users(people):
    who, http = people
    assert http.post("/api/accounts", headers=who["alice"], json=body()).status_code == 201
    again = http.post("/api/accounts", headers=who["alice"], json=body(emailAddress="SUPPORT@company.example"))
    assert again.status_code == 409
    assert http.post("/api/accounts", headers=who["bob"], json=body()).status_code == 201


def test_other_users_and_tenants_get_403(daemon, people):
    who, http = people
    account = http.post("/api/accounts", headers=who["alice"], json=body()).json()
    path = f"/api/accounts/{account['id']}"
    # Bob is an admin of Alice's organisation: still not his mailbox. Carol is another tenant.
    for intruder in ("bob", "carol"):
        h = who[intruder]
        assert http.get(path, headers=h).status_code == 403
        assert http.put(path, headers=h, json={"accountName": "mine"}).status_code == 403
        assert http.delete(path, headers=h).status_code == 403
        assert http.post(path + "/sync", headers=h).status_code == 403
        assert http.post(path + "/test", headers=h).status_code == 403
        assert http.get("/api/accounts", headers=h).json()["pagination"]["total"] == 0
    assert http.get(path, headers=who["alice"]).json()["accountName"] == "Support inbox"
    assert [e["event"] for e in events(http, who["carol"]) if e["event"] == "cross_tenant_access"]


def test_sync_request_makes_the_account_due_again(daemon, people):
    who, http = people
    account = http.post("/api/accounts", headers=who["alice"], json=body()).json()
    with daemon.services.db.write() as session:
        row = session.execute(select(MailAccount).where(MailAccount.uuid == account["id"])).scalar_one()
        row.next_sync_at, row.auth_failed, row.last_error = 10**15, True, "authentication failed"
    resp = http.post(f"/api/accounts/{account['id']}/sync", headers=who["alice"])
    assert resp.status_code == 202
    assert resp.json()["account"]["authFailed"] is False and resp.json()["account"]["nextSyncAt"] == 0


def test_password_is_encrypted_at_rest_and_bound_to_its_account(daemon, people):
    who, http = people
    a = http.post("/api/accounts", headers=who["alice"], json=body()).json()
    b = http.post("/api/accounts", headers=who["alice"], json=body(emailAddress="b@company.example",
                                                                    password="other")).json()
    vault = daemon.services.vault
    with daemon.services.db.read() as session:
        rows = {r.uuid: r.password_encrypted for r in session.execute(select(MailAccount)).scalars()}
    assert SECRET not in rows[a["id"]] and SECRET.encode().hex() not in rows[a["id"]]
    assert vault.decrypt(a["id"], rows[a["id"]]) == SECRET
    with pytest.raises(CredentialError):  # copied onto another account, it does not decrypt
        vault.decrypt(b["id"], rows[a["id"]])
    key_file = daemon.services.settings.data_path / "credentials.keys"
    assert key_file.stat().st_mode & 0o777 == 0o600


def test_accounts_have_their_own_rate_limit(tmp_path):
    from logmail.daemon.runner import Daemon

    d = Daemon(make_settings(tmp_path / "data", accounts={"rate_limit_per_minute": 3})).start_in_thread()
    try:
        token = (tmp_path / "data" / "owner.token").read_text().strip()
        with client(d, headers={"Authorization": f"Bearer {token}"}) as http:
            codes = [http.get("/api/accounts").status_code for _ in range(4)]
            assert codes == [200, 200, 200, 429]
            assert http.get("/messages").status_code == 200  # other endpoints are not affected
    finally:
        d.stop()


def test_organisation_tokens_have_organisation_accounts(daemon, api, people):
    """owner.token belongs to no user: its accounts are the organisation's, apart from every user's."""
    who, http = people
    created = api.post("/api/accounts", json=body())
    assert created.status_code == 201 and created.json()["userId"] is None
    assert api.get("/api/accounts").json()["pagination"]["total"] == 1
    assert http.get("/api/accounts", headers=who["alice"]).json()["pagination"]["total"] == 0
    assert http.get(f"/api/accounts/{created.json()['id']}", headers=who["alice"]).status_code == 403


def test_login_check_reports_an_unreachable_server_without_importing(daemon, people):
    import socket

    who, http = people
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    account = http.post("/api/accounts", headers=who["alice"],
                        json=body(hostname="127.0.0.1", port=port, encryption="none")).json()
    resp = http.post(f"/api/accounts/{account['id']}/test", headers=who["alice"])
    assert resp.status_code == 200, resp.text
    assert resp.json()["ok"] is False and resp.json()["error"] == "unreachable"
    assert SECRET not in resp.text


@pytest.mark.parametrize("field, value", [("accountName", "\ud800"), ("username", "x\udfff"),
                                          ("folders", ["INBOX", "\ud83d"])])
def test_lone_surrogates_are_a_400_not_a_500(people, field, value):
    who, http = people
    import json

    escaped = json.dumps(body(**{field: value})).encode()  # "\ud800" as JSON escapes, as a client sends it
    resp = http.post("/api/accounts", headers={**who["alice"], "Content-Type": "application/json"}, content=escaped)
    assert resp.status_code == 400 and "Unicode" in resp.json()["message"]
