"""Platform mode over HTTP: addresses, usage, tiers, /policy/check, /ingest, flags and tags, delete by
search, per-address views and retention by tier — with two tenants that never see each other."""

from __future__ import annotations

import base64
import time

import httpx
import pytest
from sqlalchemy import select, update

from auth_helpers import PASSWORD, client, login
from conftest import make_settings
from logmail.services.accept import Envelope
from logmail.services.retention import DAY_MS
from logmail.store.models import Message, Organization, TierLimit, User


def eml(subject: str, body: str = "hello", to: str = "dev@in.test") -> bytes:
    return (f"From: Sender <sender@example.com>\r\nTo: {to}\r\nSubject: {subject}\r\n"
            f"Message-ID: <{subject.replace(' ', '-')}@example.com>\r\n\r\n{body}\r\n").encode()


@pytest.fixture
def settings(tmp_path):
    return make_settings(tmp_path / "data", mode="platform", auth={"open_registration": True},
                         platform={"domains": ["in.test"]}, policy={"cache_seconds": 0})


class Tenant:
    def __init__(self, http: httpx.Client, daemon, email: str) -> None:
        resp = http.post("/auth/register", json={"email": email, "password": PASSWORD, "organisationName": email})
        assert resp.status_code == 201, resp.text
        self.user = resp.json()["user"]
        self.org_uuid = self.user["organisationId"]
        with daemon.services.db.read() as session:
            self.org_id = session.execute(select(Organization.id).where(Organization.uuid == self.org_uuid)
                                          ).scalar_one()
        self.headers = login(http, email).auth
        self.http = http
        token = http.post("/tokens", headers=self.headers, json={"name": "ingest", "scopes": ["ingest", "read"]})
        assert token.status_code == 201, token.text
        self.token = {"Authorization": f"Bearer {token.json()['token']}"}

    def get(self, path: str, **kw) -> httpx.Response:
        return self.http.get(path, headers=self.headers, **kw)

    def post(self, path: str, **kw) -> httpx.Response:
        return self.http.post(path, headers=self.headers, **kw)

    def delete(self, path: str, **kw) -> httpx.Response:
        return self.http.delete(path, headers=self.headers, **kw)

    def patch(self, path: str, **kw) -> httpx.Response:
        return self.http.patch(path, headers=self.headers, **kw)


@pytest.fixture
def http(daemon):
    with client(daemon) as c:
        yield c


@pytest.fixture
def tenants(daemon, http):
    return Tenant(http, daemon, "a@corp.example"), Tenant(http, daemon, "b@corp.example")


@pytest.fixture
def admin(daemon, http):
    """A platform admin (its own organisation)."""
    Tenant(http, daemon, "root@platform.example")
    with daemon.services.db.write() as session:
        session.execute(update(User).where(User.email == "root@platform.example").values(is_platform_admin=True))
    return login(http, "root@platform.example").auth


def set_tier(daemon, org_id: int, **limits) -> str:
    name = f"t{org_id}-{len(limits)}-{time.monotonic_ns() % 10**6}"
    with daemon.services.db.write() as session:
        session.add(TierLimit(name=name, display_name=name.title(), features={"api": True}, **limits))
        session.execute(update(Organization).where(Organization.id == org_id).values(tier=name))
    daemon.services.tiers.forget()
    return name


def deliver(daemon, org_id: int, raw: bytes, rcpts: list[str]) -> None:
    env = Envelope("sender@example.com", rcpts, routes={org_id: rcpts})
    daemon.services.acceptor.accept_many([(raw, env)])


def backdate(daemon, subject: str, received_at: int) -> None:
    """As if the message had arrived at ``received_at``."""
    with daemon.services.db.write() as session:
        session.execute(update(Message).where(Message.subject == subject).values(received_at=received_at))


def wait_count(tenant: Tenant, count: int, **params) -> list[dict]:
    deadline = time.monotonic() + 20
    while True:
        items = tenant.get("/messages", params=params).json()["messages"]
        if len(items) >= count:
            return items
        assert time.monotonic() < deadline, f"{len(items)} of {count}"
        time.sleep(0.05)


# -- addresses ---------------------------------------------------------------------------------


def test_addresses_are_unique_on_the_platform_and_limited_by_tier(daemon, tenants, admin, http):
    a, b = tenants
    created = a.post("/addresses", json={"address": "Dev@IN.test", "description": "CI mail"})
    assert created.status_code == 201, created.text
    assert created.json()["address"] == "dev@in.test" and created.json()["kind"] == "exact"
    taken = b.post("/addresses", json={"address": "dev@in.test"})
    assert taken.status_code == 409 and "already taken" in taken.json()["message"]
    # A catch-all needs a domain assigned to the organisation; shared domains never are.
    refused = b.post("/addresses", json={"address": "*@in.test"})
    assert refused.status_code == 403 and "catch-all" in refused.json()["message"]
    foreign = b.post("/addresses", json={"address": "x@elsewhere.example"})
    assert foreign.status_code == 403 and "not a domain of this platform" in foreign.json()["message"]
    assert b.post("/addresses", json={"address": "not-an-address"}).status_code == 400
    assert b.post("/addresses", json={"address": "a b@in.test"}).status_code == 400
    # The free tier (what registration gives) allows 5.
    for n in range(4):
        assert a.post("/addresses", json={"address": f"a{n}@in.test"}).status_code == 201
    over = a.post("/addresses", json={"address": "a9@in.test"})
    assert over.status_code == 403 and "allows 5 addresses" in over.json()["message"]
    listing = a.get("/addresses").json()
    assert listing["pagination"]["total"] == 5
    assert b.get("/addresses").json()["pagination"]["total"] == 0
    # B cannot see or delete A's address: a 404, like a missing one.
    assert b.delete(f"/addresses/{created.json()['id']}").status_code == 404
    assert a.delete(f"/addresses/{created.json()['id']}").status_code == 200
    assert b.post("/addresses", json={"address": "dev@in.test"}).status_code == 201  # free again


def test_assigned_domains_and_catch_alls(daemon, tenants, admin, http):
    a, b = tenants
    assert a.post("/admin/domains", json={"domain": "acme.test", "organizationId": a.org_uuid}).status_code == 403
    resp = http.post("/admin/domains", headers=admin, json={"domain": "acme.test", "organizationId": a.org_uuid})
    assert resp.status_code == 201, resp.text
    again = http.post("/admin/domains", headers=admin, json={"domain": "acme.test", "organizationId": b.org_uuid})
    assert again.status_code == 409
    shared = http.post("/admin/domains", headers=admin, json={"domain": "in.test", "organizationId": b.org_uuid})
    assert shared.status_code == 409
    assert a.post("/addresses", json={"address": "*@acme.test"}).status_code == 201
    assert b.post("/addresses", json={"address": "x@acme.test"}).status_code == 409
    decision = http.post("/policy/check", headers=admin, json={"recipient": "Anyone@ACME.test"}).json()
    assert decision["action"] == "accept" and decision["postfixAction"] == "DUNNO"
    # A domain with a catch-all on it is not taken back by accident.
    assert http.delete("/admin/domains/acme.test", headers=admin).status_code == 409
    assert [d["domain"] for d in http.get("/admin/domains", headers=admin).json()["domains"]] == ["acme.test"]


def test_policy_check_gives_each_refusal_its_code(daemon, tenants, admin, http):
    a, b = tenants
    a.post("/addresses", json={"address": "dev@in.test"})
    b.post("/addresses", json={"address": "ops@in.test"})

    def check(rcpt: str, **extra) -> dict:
        resp = http.post("/policy/check", headers=admin, json={"recipient": rcpt, **extra})
        assert resp.status_code == 200, resp.text
        return resp.json()

    assert check("nobody@in.test")["code"] == 550 and check("nobody@in.test")["status"] == "5.1.1"
    plus = check("dev+build-42@in.test")
    assert plus["action"] == "accept"
    set_tier(daemon, a.org_id, max_message_size=1000, emails_per_minute=2)
    assert check("dev@in.test", size=5000)["status"] == "5.3.4"
    assert check("dev@in.test")["action"] == "accept"
    limited = check("dev@in.test")  # the third this minute (the size refusal was not counted)
    assert (limited["code"], limited["status"], limited["action"]) == (451, "4.7.1", "defer")
    assert limited["postfixAction"].startswith("451 4.7.1")
    set_tier(daemon, b.org_id, emails_per_month=0)
    assert check("ops@in.test")["status"] == "5.2.2"
    set_tier(daemon, b.org_id, storage_bytes=0)
    assert check("ops@in.test")["reason"] == "storage_full"
    with daemon.services.db.write() as session:
        session.execute(update(Organization).where(Organization.id == b.org_id).values(status="suspended"))
    assert check("ops@in.test")["status"] == "5.7.1"
    # Only the MTA's credentials may ask: an ordinary tenant learns nothing about other addresses.
    assert http.post("/policy/check", headers=a.headers, json={"recipient": "ops@in.test"}).status_code == 403
    assert http.post("/policy/check", headers=admin, json={"recipient": ""}).status_code == 400


# -- usage -------------------------------------------------------------------------------------


def test_usage_follows_mail_stored_and_deleted_per_tenant(daemon, tenants, admin, http):
    a, b = tenants
    raws = [eml("one", "x" * 500), eml("two", "y" * 900)]
    for raw in raws:
        deliver(daemon, a.org_id, raw, ["dev@in.test"])
    items = wait_count(a, 2)
    usage = a.get("/usage").json()
    assert usage["usage"]["emailsReceived"] == 2
    assert usage["usage"]["storageBytes"] == sum(len(r) for r in raws)
    assert usage["usage"]["messages"] == 2
    assert usage["tier"]["name"] == "free" and usage["tier"]["limits"]["emailsPerMonth"] == 1000
    assert usage["percent"]["emailsReceived"] == 0.2
    assert b.get("/usage").json()["usage"]["emailsReceived"] == 0
    # Deleting gives the storage back; what was received this month stays received.
    assert a.delete(f"/messages/{items[0]['id']}").status_code == 200
    usage = a.get("/usage").json()["usage"]
    assert usage["emailsReceived"] == 2 and usage["messages"] == 1
    assert usage["storageBytes"] == len(raws[0])
    # Only platform admins name another organisation.
    assert b.get("/usage", params={"org_uuid": a.org_uuid}).status_code == 403
    seen = http.get("/usage", headers=admin, params={"org_uuid": a.org_uuid}).json()
    assert seen["organizationId"] == a.org_uuid and seen["usage"]["messages"] == 1
    assert http.get("/usage", headers=admin, params={"org_uuid": "nope"}).status_code == 400


def test_usage_warns_at_80_90_and_100_percent(daemon, tenants):
    a, _ = tenants
    set_tier(daemon, a.org_id, emails_per_month=10, max_addresses=1)
    for n in range(9):
        deliver(daemon, a.org_id, eml(f"m{n}"), ["dev@in.test"])
    wait_count(a, 9)
    a.post("/addresses", json={"address": "dev@in.test"})
    warnings = {w["metric"]: w["threshold"] for w in a.get("/usage").json()["warnings"]}
    assert warnings == {"emailsReceived": 90, "addresses": 100}


def test_api_calls_are_counted(daemon, tenants):
    a, _ = tenants
    before = a.get("/usage").json()["usage"]["apiCalls"]
    for _ in range(3):
        a.get("/addresses")
    assert a.get("/usage").json()["usage"]["apiCalls"] == before + 4
    daemon.services.usage.flush()
    assert a.get("/usage").json()["usage"]["apiCalls"] == before + 5


def test_tier_api_flag_and_request_limit(daemon, tenants):
    a, _ = tenants
    name = set_tier(daemon, a.org_id, api_requests_per_minute=3)
    codes = [a.http.get("/addresses", headers=a.token) for _ in range(5)]
    # The organisation already spent one request this minute creating the token.
    assert [r.status_code for r in codes] == [200, 200, 429, 429, 429]
    assert int(codes[2].headers["retry-after"]) >= 1 and "3 API requests" in codes[2].json()["message"]
    with daemon.services.db.write() as session:
        session.execute(update(TierLimit).where(TierLimit.name == name)
                        .values(features={"api": False}, api_requests_per_minute=None))
    daemon.services.tiers.forget()
    daemon.services.policy.forget()
    refused = a.http.get("/addresses", headers=a.token)
    assert refused.status_code == 403 and "API access" in refused.json()["message"]
    assert a.get("/addresses").status_code == 200  # a signed-in user still can


# -- tiers -------------------------------------------------------------------------------------


def test_tiers_are_data_platform_admins_edit(daemon, tenants, admin, http):
    a, _ = tenants
    names = [t["name"] for t in a.get("/tiers").json()["tiers"]]
    assert {"unlimited", "free", "pro", "enterprise"} <= set(names)
    assert a.patch("/admin/tiers/free", json={"limits": {"maxAddresses": 1}}).status_code == 403
    resp = http.patch("/admin/tiers/free", headers=admin, json={"limits": {"maxAddresses": 1},
                                                                 "features": {"webhooks": True}})
    assert resp.status_code == 200, resp.text
    assert resp.json()["limits"]["maxAddresses"] == 1 and resp.json()["features"]["webhooks"] is True
    assert resp.json()["features"]["api"] is True  # flags not named stay as they were
    assert a.post("/addresses", json={"address": "one@in.test"}).status_code == 201
    assert a.post("/addresses", json={"address": "two@in.test"}).status_code == 403
    bad = http.patch("/admin/tiers/free", headers=admin, json={"limits": {"maxAddresses": -1}})
    assert bad.status_code == 400
    assert http.patch("/admin/tiers/free", headers=admin, json={"limits": {"bogus": 1}}).status_code == 400
    assert http.patch("/admin/tiers/nope", headers=admin, json={"displayName": "x"}).status_code == 404
    created = http.post("/admin/tiers", headers=admin, json={"name": "team", "displayName": "Team",
                                                              "limits": {"emailsPerMonth": 5000}})
    assert created.status_code == 201 and created.json()["limits"]["storageBytes"] is None
    assert http.post("/admin/tiers", headers=admin, json={"name": "team"}).status_code == 409
    audit = http.get("/audit", headers=admin, params={"action": "tier.updated"}).json()
    assert audit["pagination"]["total"] == 1


def test_local_mode_is_unlimited_with_every_feature(tmp_path):
    from logmail.daemon.runner import Daemon

    d = Daemon(make_settings(tmp_path / "data")).start_in_thread()
    try:
        token = (tmp_path / "data" / "owner.token").read_text().strip()
        with httpx.Client(base_url=f"http://127.0.0.1:{d.api_port}",
                          headers={"Authorization": f"Bearer {token}"}) as api:
            usage = api.get("/usage").json()
            assert usage["tier"]["name"] == "unlimited"
            assert all(usage["tier"]["features"].values())
            assert set(usage["tier"]["limits"].values()) == {None}
            assert api.post("/addresses", json={"address": "*@anything.example"}).status_code == 201
            decision = api.post("/policy/check", json={"recipient": "who@ever.example", "size": 10**9}).json()
            assert decision["action"] == "accept"
    finally:
        d.stop()


# -- /ingest -----------------------------------------------------------------------------------


def test_ingest_over_http_is_durable_and_lands_in_the_callers_organisation(daemon, tenants):
    a, b = tenants
    raw = eml("over http", to="anyone@example.org")
    resp = a.http.post("/ingest", headers={**a.token, "Content-Type": "message/rfc822"}, content=raw,
                       params={"mailFrom": "app@example.org", "rcptTo": ["qa@example.org", "ops@example.org"]})
    assert resp.status_code == 202, resp.text
    as_json = a.http.post("/ingest", headers=a.token, json={"raw": base64.b64encode(eml("as json")).decode()})
    assert as_json.status_code == 202
    items = wait_count(a, 2)
    by_subject = {m["subject"]: m for m in items}
    assert by_subject["over http"]["envelope"] == {"mailFrom": "app@example.org",
                                                   "rcptTo": ["qa@example.org", "ops@example.org"]}
    assert by_subject["over http"]["source"] == "http"
    assert by_subject["as json"]["envelope"]["rcptTo"] == ["dev@in.test"]  # from the headers
    raw_back = a.http.get(f"/messages/{by_subject['over http']['id']}/raw", headers=a.token).content
    assert raw_back == raw
    assert b.get("/messages").json()["pagination"]["total"] == 0


def test_ingest_refuses_bad_input_and_limits_clearly(daemon, tenants):
    a, _ = tenants
    post = a.http.post
    assert post("/ingest", headers={**a.token, "Content-Type": "message/rfc822"}, content=b"").status_code == 400
    assert post("/ingest", headers=a.token, json={"raw": "%%%"}).status_code == 400
    assert post("/ingest", headers=a.token, json={"raw": "aGk=", "extra": 1}).status_code == 400
    wrong = post("/ingest", headers={**a.token, "Content-Type": "image/png"}, content=b"x")
    assert wrong.status_code == 400 and "message/rfc822" in wrong.json()["message"]
    bad_rcpt = post("/ingest", headers=a.token, json={"raw": "aGk=", "rcptTo": ["a\r\nb"]})
    assert bad_rcpt.status_code == 400
    set_tier(daemon, a.org_id, max_message_size=100)
    big = post("/ingest", headers={**a.token, "Content-Type": "message/rfc822"}, content=eml("big", "z" * 500))
    assert big.status_code == 413
    set_tier(daemon, a.org_id, emails_per_month=0)
    full = post("/ingest", headers={**a.token, "Content-Type": "message/rfc822"}, content=eml("full"))
    assert full.status_code == 403 and "quota" in full.json()["message"].lower()
    # A session without the ingest scope (a member) is refused; the owner's session has it.
    assert a.get("/messages").json()["pagination"]["total"] == 0


# -- flags, tags, delete by search, per-address views ------------------------------------------


def test_flags_and_tags(daemon, tenants):
    a, b = tenants
    deliver(daemon, a.org_id, eml("tag me"), ["dev@in.test"])
    (msg,) = wait_count(a, 1)
    assert msg["isRead"] is False and msg["tags"] == []
    resp = a.patch(f"/messages/{msg['id']}", json={"isRead": True, "addTags": ["CI", "build:42"]})
    assert resp.status_code == 200, resp.text
    assert resp.json()["isRead"] is True and resp.json()["tags"] == ["build:42", "ci"]
    resp = a.patch(f"/messages/{msg['id']}", json={"removeTags": ["ci"], "isRead": False})
    assert resp.json()["tags"] == ["build:42"] and resp.json()["isRead"] is False
    resp = a.patch(f"/messages/{msg['id']}", json={"tags": ["x", "y"]})
    assert resp.json()["tags"] == ["x", "y"]
    assert a.get("/messages").json()["messages"][0]["tags"] == ["x", "y"]
    assert a.patch(f"/messages/{msg['id']}", json={"tags": ["bad tag"]}).status_code == 400
    assert a.patch(f"/messages/{msg['id']}", json={"tags": ["t"] * 0 + [f"t{i}" for i in range(51)]}).status_code == 400
    assert a.patch(f"/messages/{msg['id']}", json={}).status_code == 400
    assert a.patch(f"/messages/{msg['id']}", json={"tags": ["a"], "addTags": ["b"]}).status_code == 400
    assert a.patch(f"/messages/{msg['id']}", json={"isRead": "yes"}).status_code == 400
    assert b.patch(f"/messages/{msg['id']}", json={"isRead": True}).status_code == 404
    tagged = a.get("/messages", params={"q": "tag:x"}).json()
    assert [m["id"] for m in tagged["messages"]] == [msg["id"]]
    assert a.get("/messages", params={"q": "is:unread"}).json()["pagination"]["total"] == 1


def test_delete_by_search_deletes_only_what_matches(daemon, tenants):
    a, b = tenants
    for subject in ("invoice 1", "invoice 2", "newsletter"):
        deliver(daemon, a.org_id, eml(subject), ["dev@in.test"])
    deliver(daemon, b.org_id, eml("invoice b"), ["ops@in.test"])
    wait_count(a, 3)
    wait_count(b, 1)
    assert a.delete("/messages").status_code == 400  # never everything by accident
    resp = a.delete("/messages", params={"q": "subject:invoice"})
    assert resp.status_code == 200 and resp.json()["deleted"] == 2
    assert [m["subject"] for m in a.get("/messages").json()["messages"]] == ["newsletter"]
    assert b.get("/messages").json()["pagination"]["total"] == 1  # the other tenant's invoice stays
    assert a.get("/usage").json()["usage"]["messages"] == 1
    audit = a.get("/audit", params={"action": "messages.deleted"}).json()["entries"]
    assert audit[0]["details"]["count"] == 2


def test_per_address_views(daemon, tenants, admin, http):
    a, b = tenants
    http.post("/admin/domains", headers=admin, json={"domain": "acme.test", "organizationId": a.org_uuid})
    dev = a.post("/addresses", json={"address": "dev@in.test"}).json()
    catchall = a.post("/addresses", json={"address": "*@acme.test"}).json()
    deliver(daemon, a.org_id, eml("to dev plus", to="dev+ci@in.test"), ["dev+ci@in.test"])
    deliver(daemon, a.org_id, eml("to acme", to="sales@acme.test"), ["sales@acme.test"])
    wait_count(a, 2)
    dev_mail = a.get(f"/addresses/{dev['id']}/messages").json()
    assert [m["subject"] for m in dev_mail["messages"]] == ["to dev plus"]
    acme_mail = a.get(f"/addresses/{catchall['id']}/messages").json()
    assert [m["subject"] for m in acme_mail["messages"]] == ["to acme"]
    assert b.get(f"/addresses/{dev['id']}/messages").status_code == 404


def test_retention_follows_each_tier(daemon, tenants):
    a, b = tenants
    set_tier(daemon, a.org_id, retention_days=7)  # B stays on free: 7 days too; give B a longer one
    set_tier(daemon, b.org_id, retention_days=30)
    now = int(time.time() * 1000)
    for tenant, days in ((a, 8), (a, 6), (b, 8), (b, 31)):
        deliver(daemon, tenant.org_id, eml(f"{tenant.org_id} {days} days old"), ["x@in.test"])
    wait_count(a, 2)
    wait_count(b, 2)
    for tenant, days in ((a, 8), (a, 6), (b, 8), (b, 31)):
        backdate(daemon, f"{tenant.org_id} {days} days old", now - days * DAY_MS)
    assert daemon.services.retention.apply_policy(now, 0) == 2
    assert [m["subject"] for m in a.get("/messages").json()["messages"]] == [f"{a.org_id} 6 days old"]
    assert [m["subject"] for m in b.get("/messages").json()["messages"]] == [f"{b.org_id} 8 days old"]
    assert a.get("/usage").json()["usage"]["messages"] == 1
    # An installation-wide limit shorter than the tier's wins.
    assert daemon.services.retention.apply_policy(now, 5) == 2
    assert daemon.services.retention.apply_policy(now, 5) == 0  # and never more than the policy says


def test_a_copy_deleted_in_one_organisation_leaves_the_others_raw_message(daemon, tenants):
    """One message for two organisations is one raw blob: it goes only with the last copy."""
    a, b = tenants
    raw = eml("for both", to="dev@in.test, ops@in.test")
    env = Envelope("sender@example.com", ["dev@in.test", "ops@in.test"],
                   routes={a.org_id: ["dev@in.test"], b.org_id: ["ops@in.test"]})
    daemon.services.acceptor.accept_many([(raw, env)])
    (mine,), (theirs,) = wait_count(a, 1), wait_count(b, 1)
    assert a.delete(f"/messages/{mine['id']}").status_code == 200
    assert b.http.get(f"/messages/{theirs['id']}/raw", headers=b.headers).content == raw
    assert b.delete(f"/messages/{theirs['id']}").status_code == 200
    assert daemon.services.content.stats()["blobs"] == 0  # the last copy took the raw blob with it


def test_a_blank_search_is_not_a_filter_for_delete(daemon, tenants):
    a, _ = tenants
    deliver(daemon, a.org_id, eml("keep me"), ["dev@in.test"])
    wait_count(a, 1)
    for blank in (" ", '""', "   "):
        resp = a.delete("/messages", params={"q": blank})
        assert resp.status_code == 400, blank
    assert a.get("/messages").json()["pagination"]["total"] == 1


def test_huge_retention_is_refused_and_cannot_stop_the_purge(daemon, tenants, admin, http):
    a, b = tenants
    resp = http.post("/admin/tiers", headers=admin, json={"name": "forever", "displayName": "Forever",
                                                          "limits": {"retentionDays": 2**62}})
    assert resp.status_code == 400 and "36500" in resp.json()["message"]
    set_tier(daemon, a.org_id, retention_days=36_500)
    set_tier(daemon, b.org_id, retention_days=1)
    deliver(daemon, b.org_id, eml("old"), ["ops@in.test"])
    wait_count(b, 1)
    backdate(daemon, "old", int(time.time() * 1000) - 3 * DAY_MS)
    assert daemon.services.retention.apply_policy(int(time.time() * 1000), 0) == 1
