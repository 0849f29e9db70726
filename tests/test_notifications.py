"""Notifications over HTTP and by email: one per event, per-user preferences, quota warnings at
80/90/100 %, new-device logins, sessions ended for the user, the events other parts report, and
every user seeing only their own."""

from __future__ import annotations

import json

import time

import httpx
import pytest
from sqlalchemy import select, update

from auth_helpers import CHROME_WINDOWS, FIREFOX_LINUX, FIREFOX_LINUX_NEWER, PASSWORD, client, install_clock, login, \
    refresh
from conftest import make_settings
from logmail.services.accept import Envelope
from logmail.store.models import MailAccount, Organization, TierLimit, User
from logmail.store.models_outbound import OutboundEmail
from logmail.store.models_webhooks import Webhook, WebhookDelivery
from smtp_peers import Peer, Server, wait_for


@pytest.fixture
def mailbox():
    server = Server(Peer())
    yield server
    server.stop()


@pytest.fixture
def settings(tmp_path, mailbox):
    return make_settings(tmp_path / "data", mode="platform", auth={"open_registration": True},
                         platform={"domains": ["in.test"]}, policy={"cache_seconds": 0},
                         outbound={"smtp_host": "127.0.0.1", "smtp_port": mailbox.port, "smtp_use_tls": False,
                                   "timeout": 10, "interval": 3600})


@pytest.fixture
def http(daemon):
    with client(daemon) as c:
        yield c


class Member:
    """A user who registered their own organisation (its owner), logged in on Firefox on Linux."""

    def __init__(self, daemon, http: httpx.Client, email: str) -> None:
        resp = http.post("/auth/register", json={"email": email, "password": PASSWORD, "organisationName": email})
        assert resp.status_code == 201, resp.text
        self.email = email
        self.http = http
        with daemon.services.db.read() as session:
            user = session.execute(select(User).where(User.email == email)).scalar_one()
            self.id, self.org_id = user.id, user.organization_id
        self.headers = login(http, email).auth

    def get(self, path: str, **kw) -> httpx.Response:
        return self.http.get(path, headers=self.headers, **kw)

    def post(self, path: str, **kw) -> httpx.Response:
        return self.http.post(path, headers=self.headers, **kw)

    def put(self, path: str, **kw) -> httpx.Response:
        return self.http.put(path, headers=self.headers, **kw)

    def notifications(self, **params) -> list[dict]:
        resp = self.get("/notifications", params=params)
        assert resp.status_code == 200, resp.text
        return resp.json()["notifications"]

    def wait_notifications(self, count: int, kind: str | None = None, timeout: float = 20) -> list[dict]:
        deadline = time.monotonic() + timeout
        while True:
            items = [n for n in self.notifications(limit=1000) if kind is None or n["kind"] == kind]
            if len(items) >= count:
                return items
            assert time.monotonic() < deadline, f"{len(items)} of {count} notifications"
            time.sleep(0.05)


@pytest.fixture
def alice(daemon, http):
    return Member(daemon, http, "alice@corp.example")


@pytest.fixture
def bob(daemon, http):
    return Member(daemon, http, "bob@corp.example")


def queued_mail(daemon, user_id: int) -> list[OutboundEmail]:
    with daemon.services.db.read() as session:
        return list(session.execute(select(OutboundEmail).where(OutboundEmail.user_id == user_id)
                                    .order_by(OutboundEmail.id)).scalars())


def test_one_notification_per_event(daemon, alice, bob, mailbox):
    notes = daemon.services.notifications
    first = notes.notify(alice.id, "webhookDisabled", "Hook off", "It stopped.", dedupe_key="webhook:1")
    assert first is not None
    assert notes.notify(alice.id, "webhookDisabled", "Hook off", "It stopped.", dedupe_key="webhook:1") is None
    assert notes.notify(bob.id, "webhookDisabled", "Hook off", "It stopped.", dedupe_key="webhook:1") is not None
    [note] = alice.notifications()
    assert note["id"] == first and note["title"] == "Hook off" and note["emailed"] is True and not note["read"]
    assert len(queued_mail(daemon, alice.id)) == 1  # one mail for one event, too
    assert daemon.services.outbound.process_due()["sent"] == 2
    assert sorted(r.rcpt_tos[0] for r in mailbox.peer.received) == ["alice@corp.example", "bob@corp.example"]
    assert {r.message["Subject"] for r in mailbox.peer.received} == {"[logmail] Hook off"}


def test_preferences_choose_the_app_the_mailbox_or_both(daemon, alice):
    prefs = alice.get("/notifications/preferences").json()["preferences"]
    assert prefs["newDeviceLogin"]["inApp"] is True and prefs["newDeviceLogin"]["email"] is True
    assert "serviceStatus" not in prefs  # for platform admins only
    resp = alice.put("/notifications/preferences", json={"newDeviceLogin": {"email": False},
                                                         "quotaWarning": {"inApp": False}})
    assert resp.status_code == 200, resp.text
    prefs = resp.json()["preferences"]
    assert prefs["newDeviceLogin"] == {**prefs["newDeviceLogin"], "inApp": True, "email": False}
    assert prefs["quotaWarning"]["inApp"] is False and prefs["quotaWarning"]["email"] is True
    notes = daemon.services.notifications
    notes.notify(alice.id, "newDeviceLogin", "New sign-in", "b", dedupe_key="d1")
    notes.notify(alice.id, "quotaWarning", "Quota", "b", dedupe_key="q1")
    listed = alice.notifications()
    assert [n["kind"] for n in listed] == ["newDeviceLogin"] and listed[0]["emailed"] is False
    assert [m.subject for m in queued_mail(daemon, alice.id)] == ["[logmail] Quota"]  # email only
    alice.put("/notifications/preferences", json={"quotaWarning": {"inApp": True}})
    assert [n["kind"] for n in alice.notifications()] == ["quotaWarning", "newDeviceLogin"]
    for bad in ({"nonsense": {"email": False}}, {"quotaWarning": {"inApp": "yes"}}, {"quotaWarning": {}},
                {"quotaWarning": {"sms": True}}, ["quotaWarning"]):
        assert alice.put("/notifications/preferences", json=bad).status_code == 400, bad
    assert alice.http.put("/notifications/preferences", content=b"{}", headers={
        **alice.headers, "Content-Type": "text/plain"}).status_code == 400


def deliver(daemon, org_id: int, subject: str) -> None:
    raw = f"From: s@example.com\r\nTo: dev@in.test\r\nSubject: {subject}\r\n\r\nhello\r\n".encode()
    daemon.services.acceptor.accept_many([(raw, Envelope("s@example.com", ["dev@in.test"],
                                                         routes={org_id: ["dev@in.test"]}))])


def stored_count(daemon, org_id: int) -> int:
    with daemon.services.db.read() as session:
        return session.execute(select(Organization.message_count).where(Organization.id == org_id)).scalar_one()


def test_quota_warnings_at_80_90_and_100_percent_once_each(daemon, alice, bob, mailbox):
    with daemon.services.db.write() as session:
        session.add(TierLimit(name="tiny", display_name="Tiny", emails_per_month=10, features={"webhooks": True}))
        session.execute(update(Organization).where(Organization.id == alice.org_id).values(tier="tiny"))
        hook = Webhook(organization_id=alice.org_id, url="https://hooks.example/quota", events=["quota.warning"],
                       secret_encrypted="")
        session.add(hook)
        session.flush()
        hook.secret_encrypted = daemon.services.vault.encrypt(hook.uuid, "whsec_c2VjcmV0c2VjcmV0")
    daemon.services.tiers.forget()
    sent = 0
    for told, (target, threshold) in enumerate(((8, 80), (9, 90), (10, 100), (12, None)), start=1):
        while sent < target:
            deliver(daemon, alice.org_id, f"m{sent}")
            sent += 1
        wait_for(lambda: stored_count(daemon, alice.org_id) == target, what=f"{target} messages stored")
        if threshold is not None:  # the warning follows the commit of the mail that reached it
            assert alice.wait_notifications(told, "quotaWarning")[0]["data"]["threshold"] == threshold
    time.sleep(0.3)
    warnings = [n for n in alice.notifications() if n["kind"] == "quotaWarning"]
    assert [n["data"]["threshold"] for n in warnings] == [100, 90, 80]
    assert [n["severity"] for n in warnings] == ["critical", "warning", "warning"]
    data = warnings[0]["data"]
    assert (data["metric"], data["used"], data["limit"]) == ("emailsReceived", 10, 10)
    assert bob.notifications() == []  # another organisation's quota is not bob's business
    with daemon.services.db.read() as session:  # and one quota.warning webhook per threshold
        events = session.execute(select(WebhookDelivery.event, WebhookDelivery.payload)).all()
    assert [e for e, _ in events] == ["quota.warning"] * 3
    assert sorted(json.loads(p)["data"]["percent"] for _, p in events) == [80, 90, 100]
    assert daemon.services.outbound.process_due()["sent"] == 3
    subjects = sorted(r.message["Subject"] for r in mailbox.peer.received)
    assert subjects == [f"[logmail] Mail received this month at {t} % of your tier's limit" for t in (100, 80, 90)]


def test_a_login_from_a_new_device_is_told_once(daemon, alice, mailbox):
    with client(daemon, user_agent=FIREFOX_LINUX_NEWER) as same_device:
        login(same_device, alice.email)  # a browser update is the same device
    assert alice.notifications() == []
    with client(daemon, user_agent=CHROME_WINDOWS) as other:
        login(other, alice.email)
        login(other, alice.email)  # the second time, Chrome on Windows is known
    [note] = alice.notifications()
    assert note["kind"] == "newDeviceLogin" and note["title"] == "New sign-in on Chrome on Windows"
    assert note["severity"] == "warning" and note["data"]["device"] == "Chrome on Windows"
    daemon.services.outbound.process_due()
    [mail] = mailbox.peer.received
    assert mail.rcpt_tos == [alice.email] and mail.message["Subject"] == "[logmail] New sign-in on Chrome on Windows"


def test_a_session_ended_for_the_user_is_told(daemon, http, alice):
    clock = install_clock(daemon)
    with client(daemon, user_agent=FIREFOX_LINUX) as browser:
        first = login(browser, alice.email)
        assert refresh(browser, first.refresh).status_code == 200
        clock.advance(60_000)  # past the leeway: presenting the rotated token again is reuse
        assert refresh(browser, first.refresh).status_code == 401
    [note] = alice.notifications()
    assert note["kind"] == "sessionsRevoked" and note["severity"] == "critical"
    assert note["data"]["reason"] == "refresh_token_reused"
    assert alice.post("/auth/logout-all").status_code in (200, 204)
    with client(daemon) as again:
        alice.headers = login(again, alice.email).auth
    kinds = [(n["kind"], n["data"].get("reason")) for n in alice.notifications()]
    assert kinds[0] == ("sessionsRevoked", "logout_all") and len(kinds) == 2


def test_read_unread_and_nobody_sees_anyone_elses(daemon, api, alice, bob):
    notes = daemon.services.notifications
    ids = [notes.notify(alice.id, "webhookDisabled", f"n{n}", "body", dedupe_key=f"k{n}") for n in range(3)]
    other = notes.notify(bob.id, "webhookDisabled", "bob's", "body", dedupe_key="k0")
    page = alice.get("/notifications", params={"unread": "true", "limit": 2}).json()
    assert [n["id"] for n in page["notifications"]] == ids[::-1][:2]  # newest first
    assert page["pagination"] == {"total": 3, "limit": 2, "offset": 0, "unread": 3}
    read = alice.post(f"/notifications/{ids[0]}/read")
    assert read.status_code == 200 and read.json()["read"] is True and read.json()["readAt"]
    assert [n["id"] for n in alice.notifications(unread="true")] == ids[:0:-1]
    assert alice.post("/notifications/read-all").json() == {"marked": 2}
    assert alice.get("/notifications", params={"unread": "true"}).json()["pagination"]["unread"] == 0
    assert len(alice.notifications()) == 3
    # Bob sees only his own, and cannot touch alice's.
    assert [n["id"] for n in bob.notifications()] == [other]
    assert bob.post(f"/notifications/{ids[1]}/read").status_code == 404
    assert bob.post("/notifications/read-all").json() == {"marked": 1}
    assert all(n["read"] for n in alice.notifications())
    # A token that belongs to no user has no notifications; bad parameters are 400s.
    assert api.get("/notifications").status_code == 403
    assert alice.get("/notifications", params={"unread": "maybe"}).status_code == 400
    assert alice.post("/notifications/not-a-uuid/read").status_code == 400


def test_the_events_other_parts_report(daemon, http, alice, bob):
    notes = daemon.services.notifications
    with daemon.services.db.write() as session:
        session.execute(update(User).where(User.id == bob.id).values(is_platform_admin=True))
    # Service transitions go to platform admins, once per transition.
    assert notes.service_status_changed("database", "up", "down", "connection refused", at=1000) == 1
    assert notes.service_status_changed("database", "up", "down", "connection refused", at=1000) == 0
    assert notes.service_status_changed("database", None, "up") == 0  # a first sample that is up is no news
    assert notes.service_status_changed("database", "down", "up", at=2000) == 1
    titles = [(n["title"], n["severity"]) for n in bob.notifications()]
    assert titles == [("database recovered", "info"), ("database is down", "critical")]
    assert alice.notifications() == []
    # A mailbox that keeps failing: once per failing streak; a refused password at once.
    with daemon.services.db.write() as session:
        account = MailAccount(organization_id=alice.org_id, user_id=alice.id, account_name="Work",
                              email_address="me@work.example", protocol="imap", hostname="imap.work.example",
                              port=993, encryption="tls", username="me", password_encrypted="x",
                              consecutive_failures=1, last_error="connection refused")
        session.add(account)
        session.flush()
        account_id = account.id
    assert notes.account_sync_failed(account_id) == 0
    for failures, told in ((3, 1), (4, 0)):
        with daemon.services.db.write() as session:
            session.execute(update(MailAccount).where(MailAccount.id == account_id)
                            .values(consecutive_failures=failures))
        assert notes.account_sync_failed(account_id) == told
    with daemon.services.db.write() as session:
        session.execute(update(MailAccount).where(MailAccount.id == account_id).values(auth_failed=True))
    assert notes.account_sync_failed(account_id) == 1
    # A disabled webhook endpoint: its organisation's owners and admins.
    with daemon.services.db.write() as session:
        hook = Webhook(organization_id=alice.org_id, url="https://hooks.example/in", secret_encrypted="x",
                       is_enabled=False, disabled_reason="the endpoint answered 410 Gone", events=[])
        session.add(hook)
        session.flush()
        hook_id = hook.id
    assert notes.webhook_disabled(hook_id) == 1 and notes.webhook_disabled(hook_id) == 0
    kinds = [n["kind"] for n in alice.notifications()]
    assert kinds == ["webhookDisabled", "accountSyncFailed", "accountSyncFailed"]
    assert notes.account_sync_failed(10**9) == 0 and notes.webhook_disabled(10**9) == 0  # gone: nothing, no error
