"""Webhooks end to end: endpoints over the API, events from real ingestion and deletion, Standard Webhooks
signatures checked by a receiver on loopback, retries on the schedule (a movable clock), 410, replay,
timeouts that never slow ingestion, the SSRF guard, tiers, tenant isolation, pruning and racing
dispatchers."""

from __future__ import annotations

import base64
import ipaddress
import smtplib
import ssl
import time

import httpx
import pytest
from sqlalchemy import select, update

from auth_helpers import MovableClock
from conftest import make_settings
from logmail.daemon.webhook_job import WebhookDispatcher
from logmail.services.webhook_attempts import RETRY_DELAYS, next_delay_ms
from logmail.services.webhook_sender import sign
from logmail.services.webhook_targets import refusal
from logmail.store.models import Organization, SecurityEvent, TierLimit
from logmail.store.models_webhooks import WebhookDelivery
from webhook_receiver import Receiver, VerificationError, verify

TIMEOUT = 1.0
DAY_MS = 86_400_000


@pytest.fixture
def settings(tmp_path):
    # Receivers listen on loopback, so these tests allow private targets (the SSRF tests turn it off).
    return make_settings(tmp_path / "data", webhooks={"allow_private": True, "interval": 0.1, "timeout": TIMEOUT})


@pytest.fixture
def receiver():
    r = Receiver().start()
    yield r
    r.close()


@pytest.fixture
def clock(daemon) -> MovableClock:
    clock = MovableClock()
    daemon.services.webhooks.clock = clock
    return clock


def create(api: httpx.Client, receiver: Receiver, events: list[str], url: str | None = None) -> dict:
    resp = api.post("/webhooks", json={"url": url or receiver.url, "events": events, "description": "test"})
    assert resp.status_code == 201, resp.text
    receiver.secret = resp.json()["secret"]
    return resp.json()


def deliveries(api: httpx.Client, hook: dict, **params) -> list[dict]:
    resp = api.get(f"/webhooks/{hook['id']}/deliveries", params=params)
    assert resp.status_code == 200, resp.text
    return resp.json()["deliveries"]


def wait_until(predicate, timeout: float = 15, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.03)


def wait_delivery(api, hook, predicate, what: str = "delivery", timeout: float = 15) -> list[dict]:
    return wait_until(lambda: (lambda ds: ds if ds and predicate(ds) else None)(deliveries(api, hook)), timeout, what)


def ingest(api: httpx.Client, subject: str, to: str = "dev@example.com") -> None:
    raw = f"From: Ann <ann@example.com>\r\nTo: {to}\r\nSubject: {subject}\r\n\r\nsecret body text\r\n".encode()
    resp = api.post("/ingest", content=raw, headers={"Content-Type": "message/rfc822"})
    assert resp.status_code == 202, resp.text


def wake(daemon) -> None:
    daemon._webhook_dispatcher.wake()


# -- signing ----------------------------------------------------------------------------------------


def test_signature_matches_the_standard_webhooks_reference_vector():
    # From the Standard Webhooks specification's libraries (svix test vectors).
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    assert sign(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, '{"test": 2432232314}') == \
        "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_the_receiver_rejects_stale_and_forged_requests():
    secret = "whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldY"
    body = b'{"type":"x"}'
    now = int(time.time())
    good = {"webhook-id": "m1", "webhook-timestamp": str(now), "webhook-signature": sign(secret, "m1", now, body.decode())}
    assert verify(secret, good, body) == {"type": "x"}
    with pytest.raises(VerificationError, match="timestamp"):
        old = now - 301
        verify(secret, {**good, "webhook-timestamp": str(old),
                        "webhook-signature": sign(secret, "m1", old, body.decode())}, body)
    with pytest.raises(VerificationError, match="signature"):
        verify(secret, good, body + b" ")
    with pytest.raises(VerificationError, match="signature"):
        verify(secret, {**good, "webhook-id": "m2"}, body)


# -- events from real mail --------------------------------------------------------------------------


def test_message_received_is_delivered_signed_after_smtp_and_api_ingestion(daemon, api, receiver):
    hook = create(api, receiver, ["message.received"])
    assert hook["secret"].startswith("whsec_") and 24 <= len(base64.b64decode(hook["secret"][6:])) <= 32
    # The secret is shown once: never again in a read or a listing.
    assert "secret" not in api.get(f"/webhooks/{hook['id']}").json()
    assert all("secret" not in h for h in api.get("/webhooks").json()["webhooks"])

    with smtplib.SMTP("127.0.0.1", daemon.smtp_port) as client:
        client.sendmail("ann@example.com", ["dev@example.com"],
                        b"From: Ann <ann@example.com>\r\nTo: Dev <dev@example.com>\r\nSubject: over smtp\r\n\r\n"
                        b"secret body text\r\n")
    ingest(api, "over http")
    requests = receiver.wait(2)
    assert all(r.verified for r in requests), [r.problem for r in requests]
    events = {r.event["data"]["subject"]: r for r in requests}
    assert set(events) == {"over smtp", "over http"}
    stored = {m["subject"]: m for m in api.get("/messages").json()["messages"]}
    for subject, request in events.items():
        event = request.event
        assert event["type"] == "message.received" and event["timestamp"].endswith("Z")
        data = event["data"]
        message = stored[subject]
        assert data["id"] == message["id"] and data["receivedAt"] == message["receivedAt"]
        assert data["size"] == message["size"] and data["from"] == {"name": "Ann", "address": "ann@example.com"}
        assert [a["address"] for a in data["to"]] == ["dev@example.com"]
        assert b"secret body text" not in request.body  # summaries, never bodies
        assert request.headers["Content-Type"] == "application/json"
    ds = wait_delivery(api, hook, lambda ds: len(ds) == 2 and all(d["status"] == "succeeded" for d in ds))
    assert {d["id"] for d in ds} == {r.id for r in requests}
    assert all(d["attempts"] == 1 and d["lastStatusCode"] == 200 and len(d["history"]) == 1 for d in ds)
    assert ds[0]["createdAt"] >= ds[1]["createdAt"]  # newest first
    assert '"status": 200' in ds[0]["lastResponse"] or '"status":200' in ds[0]["lastResponse"]


def test_message_deleted_for_single_and_search_deletes(daemon, api, receiver):
    create(api, receiver, ["message.deleted"])
    for n in range(3):
        ingest(api, f"doomed {n}")
    messages = wait_until(lambda: (lambda ms: ms if len(ms) == 3 else None)(api.get("/messages").json()["messages"]),
                          what="3 messages")
    assert api.delete(f"/messages/{messages[0]['id']}").status_code == 200
    assert api.delete("/messages", params={"q": "doomed"}).json()["deleted"] == 2
    requests = receiver.wait(3)
    time.sleep(0.3)
    assert len(receiver.requests) == 3  # not subscribed to message.received: nothing for the ingestion
    assert all(r.verified and r.event["type"] == "message.deleted" for r in requests)
    assert sorted(r.event["data"]["id"] for r in requests) == sorted(m["id"] for m in messages)
    assert requests[0].event["data"]["id"] == messages[0]["id"]


def test_emit_is_the_entry_point_for_other_events(daemon, api, receiver):
    hook = create(api, receiver, ["quota.warning", "account.sync_failed"])
    org = daemon.services.boot.organization_id
    assert daemon.services.webhooks.emit(org, "quota.warning", {"used": 95, "limit": 100}) == 1
    assert daemon.services.webhooks.emit(org, "message.received", {"id": "x"}) == 0  # not subscribed
    assert daemon.services.webhooks.emit(org + 999, "quota.warning", {}) == 0  # no such endpoints
    (request,) = receiver.wait(1)
    assert request.verified and request.event["type"] == "quota.warning"
    assert request.event["data"] == {"used": 95, "limit": 100}
    # The test event goes whatever the endpoint subscribes to.
    queued = api.post(f"/webhooks/{hook['id']}/test")
    assert queued.status_code == 202 and queued.json()["event"] == "webhook.test"
    assert receiver.wait(2)[1].event["type"] == "webhook.test"


# -- retries, 410, replay ---------------------------------------------------------------------------


def test_retries_follow_the_schedule_with_a_stable_id_then_succeed_and_replay(daemon, api, receiver, clock):
    receiver.statuses = [500, 503, 404]
    hook = create(api, receiver, ["quota.warning"])
    daemon.services.webhooks.emit(daemon.services.boot.organization_id, "quota.warning", {"n": 1})
    for attempt, delay in enumerate(RETRY_DELAYS[:3], start=1):
        receiver.wait(attempt)
        (d,) = wait_delivery(api, hook, lambda ds: ds[0]["attempts"] == attempt, f"attempt {attempt}")
        assert d["status"] == "pending" and d["nextAttemptAt"] == clock.now + delay * 1000
        time.sleep(0.3)
        assert len(receiver.requests) == attempt  # nothing before it is due
        clock.advance(delay * 1000)
        wake(daemon)
    requests = receiver.wait(4)
    (d,) = wait_delivery(api, hook, lambda ds: ds[0]["status"] == "succeeded")
    assert all(r.verified for r in requests)
    assert {r.id for r in requests} == {d["id"]}  # the same webhook-id on every retry
    assert len({r.body for r in requests}) == 1
    assert [h["statusCode"] for h in d["history"]] == [500, 503, 404, 200]
    assert d["attempts"] == 4 and d["lastError"] is None
    # A replay is the same delivery again: same id and body, a new attempt in the history.
    replayed = api.post(f"/webhooks/{hook['id']}/deliveries/{d['id']}/replay")
    assert replayed.status_code == 202, replayed.text
    again = receiver.wait(5)[4]
    assert again.id == d["id"] and again.body == requests[0].body and again.verified
    (d,) = wait_delivery(api, hook, lambda ds: ds[0]["status"] == "succeeded" and len(ds[0]["history"]) == 5)
    audit = api.get("/audit", params={"action": "webhook.replayed"}).json()
    assert audit["pagination"]["total"] == 1


def test_a_delivery_fails_after_the_last_retry(daemon, api, receiver, clock):
    receiver.default_status = 500
    hook = create(api, receiver, ["quota.warning"])
    daemon.services.webhooks.emit(daemon.services.boot.organization_id, "quota.warning", {})
    for attempt in range(1, len(RETRY_DELAYS) + 2):
        receiver.wait(attempt)
        (d,) = wait_delivery(api, hook, lambda ds: ds[0]["attempts"] == attempt, f"attempt {attempt}")
        delay = next_delay_ms(attempt)
        if delay is None:
            break
        assert d["nextAttemptAt"] == clock.now + delay
        clock.advance(delay)
        wake(daemon)
    (d,) = wait_delivery(api, hook, lambda ds: ds[0]["status"] == "failed")
    assert d["attempts"] == 7 and len(d["history"]) == 7 and d["lastStatusCode"] == 500
    assert [r.id for r in receiver.requests] == [d["id"]] * 7
    assert api.get(f"/webhooks/{hook['id']}").json()["consecutiveFailures"] == 7


def test_410_disables_the_endpoint_and_cancels_what_is_pending(daemon, api, receiver):
    disabled = []
    daemon._webhook_dispatcher.on_disabled = disabled.append
    receiver.default_status = 410
    hook = create(api, receiver, ["quota.warning"])
    daemon.services.webhooks.emit_many("quota.warning", [(daemon.services.boot.organization_id, {"n": n})
                                                        for n in range(5)])
    ds = wait_delivery(api, hook, lambda ds: all(d["status"] != "pending" for d in ds), "no pending")
    statuses = sorted(d["status"] for d in ds)
    assert "cancelled" in statuses and set(statuses) <= {"failed", "cancelled"}
    assert len(receiver.requests) == statuses.count("failed") <= 2  # two at a time per endpoint
    assert all(d["lastStatusCode"] == 410 for d in ds if d["status"] == "failed")
    current = api.get(f"/webhooks/{hook['id']}").json()
    assert current["isEnabled"] is False and "410" in current["disabledReason"]
    wait_until(lambda: disabled, what="the disabled notification")
    assert disabled[0].uuid == hook["id"]
    # Disabled: no new deliveries; replay refused until it is enabled again.
    assert daemon.services.webhooks.emit(daemon.services.boot.organization_id, "quota.warning", {}) == 0
    cancelled = next(d for d in ds if d["status"] == "cancelled")
    assert api.post(f"/webhooks/{hook['id']}/deliveries/{cancelled['id']}/replay").status_code == 409
    receiver.default_status = 200
    enabled = api.patch(f"/webhooks/{hook['id']}", json={"isEnabled": True}).json()
    assert enabled["isEnabled"] and enabled["disabledReason"] is None and enabled["consecutiveFailures"] == 0
    assert api.post(f"/webhooks/{hook['id']}/deliveries/{cancelled['id']}/replay").status_code == 202
    wait_until(lambda: any(r.id == cancelled["id"] and r.verified for r in receiver.requests), what="replay")


# -- a slow endpoint never slows ingestion ----------------------------------------------------------


def _ingest_and_wait(api, prefix: str, count: int) -> float:
    started = time.monotonic()
    for n in range(count):
        ingest(api, f"{prefix} {n}")
    wait_until(lambda: api.get("/messages", params={"q": prefix}).json()["pagination"]["total"] >= count,
               timeout=60, what=f"{count} messages stored")
    return time.monotonic() - started


def test_a_hanging_endpoint_neither_slows_ingestion_nor_holds_up_other_endpoints(daemon, api, receiver):
    count = 30
    baseline = _ingest_and_wait(api, "baseline", count)
    hanging = Receiver(delay=TIMEOUT * 3).start()
    try:
        slow_hook = create(api, hanging, ["message.received"])
        healthy_hook = create(api, receiver, ["message.received"])
        with_webhooks = _ingest_and_wait(api, "hooked", count)
        assert with_webhooks < baseline * 3 + 1.0, (baseline, with_webhooks)
        # The healthy endpoint gets everything promptly although the other one hangs.
        wait_delivery(api, healthy_hook, lambda ds: len(ds) == count and all(d["status"] == "succeeded" for d in ds),
                      "every healthy delivery", timeout=20)
        timed_out = wait_delivery(api, slow_hook, lambda ds: [d for d in ds if d["attempts"] >= 1], "a timeout")
        first = next(d for d in timed_out if d["attempts"] >= 1)
        assert "timed out" in first["lastError"] and first["lastStatusCode"] is None
        assert first["status"] == "pending" and TIMEOUT * 1000 * 0.9 <= first["lastDurationMs"] < TIMEOUT * 1000 * 2
    finally:
        hanging.close()


# -- where webhooks may point -----------------------------------------------------------------------


PRIVATE = ["http://127.0.0.1/hook", "http://10.1.2.3/hook", "http://169.254.169.254/latest/meta-data",
           "http://[::1]/hook", "http://localhost:8080/hook", "http://2130706433/", "http://[::ffff:127.0.0.1]/",
           "http://0.0.0.0/", "http://224.0.0.1/", "http://100.64.0.1/", "http://192.168.1.1/",
           "http://[fe80::1]/", "https://[fc00::1]/"]
MALFORMED = [("ftp://example.com/x", "https://"), ("file:///etc/passwd", "https://"),
             ("http://user:pw@example.com/", "credentials"), ("https://example.com/" + "a" * 2000, "2000"),
             ("https:///nohost", "host"), ("http://exa mple.com/", "spaces"), ("https://example.com:0/", "port"),
             ("http://example.com:99999/", "URL")]


def test_private_targets_are_refused_unless_allowed(daemon, api):
    daemon.services.settings.webhooks.allow_private = False
    for url in PRIVATE:
        resp = api.post("/webhooks", json={"url": url, "events": ["message.received"]})
        assert resp.status_code == 400, (url, resp.text)
        assert "public addresses" in resp.json()["message"] and "secret" not in resp.text
    assert api.get("/webhooks").json()["webhooks"] == []
    daemon.services.settings.webhooks.allow_private = True
    for url in PRIVATE:
        assert api.post("/webhooks", json={"url": url, "events": ["message.received"]}).status_code == 201, url


def test_malformed_targets_are_refused(daemon, api):
    for url, problem in MALFORMED:
        resp = api.post("/webhooks", json={"url": url, "events": ["message.received"]})
        assert resp.status_code == 400 and problem in resp.json()["message"], (url, resp.text)


def test_the_guard_on_addresses():
    for text in ("93.184.216.34", "8.8.8.8", "2606:2800:220:1:248:1893:25c8:1946", "2a00:1450:4001:80b::200e",
                 "64:ff9b::808:808"):
        assert refusal(ipaddress.ip_address(text)) is None, text
    # IPv4 inside IPv6: mapped, NAT64 and 6to4 forms are judged by the IPv4 address they carry.
    for text in ("::ffff:10.0.0.1", "64:ff9b::a9fe:a9fe", "2002:7f00:1::1", "::", "ff02::1", "2001:db8::1"):
        assert refusal(ipaddress.ip_address(text)) is not None, text


def test_the_guard_runs_again_at_delivery_time(daemon, api, receiver):
    hook = create(api, receiver, ["quota.warning"])
    daemon.services.settings.webhooks.allow_private = False
    api.post(f"/webhooks/{hook['id']}/test")
    (d,) = wait_delivery(api, hook, lambda ds: ds[0]["attempts"] == 1, "the refused attempt")
    assert "loopback" in d["lastError"] and d["lastStatusCode"] is None and d["status"] == "pending"
    assert receiver.requests == []


def test_https_goes_to_the_checked_address_with_the_name_for_sni_and_the_certificate(daemon, api, tmp_path):
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(server_ctx)
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    daemon._webhook_dispatcher.stop()  # this test's dispatcher trusts the test CA
    own = WebhookDispatcher(daemon.services.webhooks, daemon.settings.webhooks, owner="tls-test",
                            verify=client_ctx).start()
    tls = Receiver(tls=server_ctx).start()
    try:
        hook = create(api, tls, ["quota.warning"], url=f"https://localhost:{tls.port}/hook")
        api.post(f"/webhooks/{hook['id']}/test")
        (request,) = tls.wait(1)
        assert request.verified and request.sni == "localhost"
        assert request.headers["Host"] == f"localhost:{tls.port}"
        # A certificate for another name fails, although the address is the same.
        other_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert("other.example").configure_cert(other_ctx)
        wrong = Receiver(tls=other_ctx).start()
        try:
            hook2 = create(api, wrong, ["quota.warning"], url=f"https://localhost:{wrong.port}/hook")
            api.post(f"/webhooks/{hook2['id']}/test")
            (d,) = wait_delivery(api, hook2, lambda ds: ds[0]["attempts"] == 1, "the failed TLS attempt")
            assert "CERTIFICATE_VERIFY_FAILED" in d["lastError"] or "certificate" in d["lastError"].lower()
            assert wrong.requests == []
        finally:
            wrong.close()
    finally:
        own.stop()
        tls.close()


def test_redirects_are_not_followed(daemon, api, receiver):
    receiver.default_status = 307
    hook = create(api, receiver, ["quota.warning"])
    api.post(f"/webhooks/{hook['id']}/test")
    (d,) = wait_delivery(api, hook, lambda ds: ds[0]["attempts"] == 1)
    assert d["status"] == "pending" and d["lastStatusCode"] == 307 and len(receiver.requests) == 1


# -- the API ----------------------------------------------------------------------------------------


def test_crud_validation_rotation_and_audit(daemon, api, receiver):
    hook = create(api, receiver, ["message.received"])
    assert api.post("/webhooks", json={"url": receiver.url, "events": ["nope"]}).status_code == 400
    assert api.post("/webhooks", json={"url": receiver.url, "events": []}).status_code == 400
    assert api.post("/webhooks", json={"url": receiver.url, "events": ["message.received"], "x": 1}).status_code == 400
    assert api.patch(f"/webhooks/{hook['id']}", json={}).status_code == 400
    assert api.get("/webhooks/not-a-uuid").status_code == 400
    changed = api.patch(f"/webhooks/{hook['id']}", json={"events": ["quota.warning"], "description": "ops"}).json()
    assert changed["events"] == ["quota.warning"] and changed["description"] == "ops"
    rotated = api.post(f"/webhooks/{hook['id']}/secret").json()
    assert rotated["secret"] != hook["secret"]
    receiver.secret = rotated["secret"]
    api.post(f"/webhooks/{hook['id']}/test")
    assert receiver.wait(1)[0].verified  # signed with the new secret
    assert api.delete(f"/webhooks/{hook['id']}").status_code == 200
    assert api.get(f"/webhooks/{hook['id']}").status_code == 404
    actions = [e["action"] for e in api.get("/audit").json()["entries"] if e["action"].startswith("webhook.")]
    assert sorted(actions) == ["webhook.created", "webhook.deleted", "webhook.updated", "webhook.updated"]
    with daemon.services.db.read() as session:
        row = session.execute(select(WebhookDelivery)).first()
    assert row is None  # the deliveries went with the endpoint


def test_secrets_survive_key_rotation(daemon, api, receiver):
    hook = create(api, receiver, ["quota.warning"])
    vault = daemon.services.vault
    vault.add_primary_key()
    assert daemon.services.webhooks.reencrypt_secrets() == (1, [])
    vault.retire_old_keys()
    api.post(f"/webhooks/{hook['id']}/test")
    assert receiver.wait(1)[0].verified


def test_emit_refuses_unknown_events(daemon):
    with pytest.raises(ValueError, match="unknown webhook event"):
        daemon.services.webhooks.emit(daemon.services.boot.organization_id, "message.recieved", {})


def test_pruning_keeps_ten_days_of_history(daemon, api, receiver, clock):
    hook = create(api, receiver, ["quota.warning"])
    api.post(f"/webhooks/{hook['id']}/test")
    wait_delivery(api, hook, lambda ds: ds[0]["status"] == "succeeded")
    clock.advance(int(9.5 * DAY_MS))
    wake(daemon)
    api.post(f"/webhooks/{hook['id']}/test")
    wait_delivery(api, hook, lambda ds: len(ds) == 2 and all(d["status"] == "succeeded" for d in ds))
    clock.advance(DAY_MS)  # the first is now 10.5 days old, the second 1 day
    wake(daemon)
    (kept,) = wait_delivery(api, hook, lambda ds: len(ds) == 1, "the prune")
    assert kept["createdAt"] == clock.now - DAY_MS


class CountingClaims:
    """A dispatcher's view of the shared attempts, counting the claims it wins."""

    def __init__(self, attempts) -> None:
        self._attempts = attempts
        self.won = 0

    def claim(self, delivery_id: int, owner: str):
        attempt = self._attempts.claim(delivery_id, owner)
        self.won += attempt is not None
        return attempt

    def __getattr__(self, name):
        return getattr(self._attempts, name)


def test_racing_dispatchers_never_make_an_attempt_twice(daemon, api, receiver):
    create(api, receiver, ["quota.warning"])
    others = [WebhookDispatcher(daemon.services.webhooks, daemon.settings.webhooks, owner=f"racer-{n}",
                                per_endpoint=50) for n in range(3)]
    for d in others:
        d.attempts = CountingClaims(d.attempts)
        d.start()
    try:
        count = 60
        daemon.services.webhooks.emit_many("quota.warning", [(daemon.services.boot.organization_id, {"n": n})
                                                            for n in range(count)])
        for d in others:
            d.wake()
        requests = receiver.wait(count, timeout=30)

        def deliveries():
            with daemon.services.db.read() as session:
                return session.execute(select(WebhookDelivery)).scalars().all()

        # The receiver answers before the dispatcher records it: wait for the records, not a fixed time.
        deadline = time.monotonic() + 15
        while any(r.status != "succeeded" for r in deliveries()) and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.3)  # and a moment more, for a double attempt to show if there were one
        ids = [r.id for r in receiver.requests]
        assert len(ids) == count and len(set(ids)) == count
        rows = deliveries()
        assert len(rows) == count and all(r.status == "succeeded" and len(r.history) == 1 for r in rows)
        assert all(r.verified for r in requests)
        assert sum(d.attempts.won > 0 for d in others) >= 2, [d.attempts.won for d in others]  # a real race
    finally:
        for d in others:
            d.stop()


# -- tiers and tenants (platform mode) --------------------------------------------------------------


@pytest.fixture
def platform(tmp_path):
    from logmail.daemon.runner import Daemon

    settings = make_settings(tmp_path / "platform", mode="platform", auth={"open_registration": True},
                             platform={"domains": ["in.test"]}, policy={"cache_seconds": 0},
                             webhooks={"allow_private": True, "interval": 0.1, "timeout": TIMEOUT})
    d = Daemon(settings).start_in_thread()
    yield d
    d.stop()


def test_tiers_and_tenants(platform, receiver):
    from auth_helpers import PASSWORD, client, login

    with client(platform) as http:
        tenants = []
        for email in ("a@corp.example", "b@corp.example"):
            assert http.post("/auth/register", json={"email": email, "password": PASSWORD,
                                                     "organisationName": email}).status_code == 201
            tenants.append(login(http, email).auth)
        a, b = tenants
        body = {"url": receiver.url, "events": ["message.received"]}
        refused = http.post("/webhooks", headers=a, json=body)
        assert refused.status_code == 403 and "plan" in refused.json()["message"]  # the free tier has none
        with platform.services.db.write() as session:
            session.add(TierLimit(name="hooks", display_name="Hooks", features={"api": True, "webhooks": True}))
            session.execute(update(Organization).values(tier="hooks"))
        platform.services.tiers.forget()
        hook = http.post("/webhooks", headers=a, json=body)
        assert hook.status_code == 201, hook.text
        receiver.secret = hook.json()["secret"]
        hook_id = hook.json()["id"]
        queued = http.post(f"/webhooks/{hook_id}/test", headers=a).json()
        # Another tenant sees nothing of it: the same 404 as for an id that does not exist.
        assert http.get("/webhooks", headers=b).json()["webhooks"] == []
        for method, path in (("GET", f"/webhooks/{hook_id}"), ("PATCH", f"/webhooks/{hook_id}"),
                             ("DELETE", f"/webhooks/{hook_id}"), ("GET", f"/webhooks/{hook_id}/deliveries"),
                             ("GET", f"/webhooks/{hook_id}/deliveries/{queued['id']}"),
                             ("POST", f"/webhooks/{hook_id}/deliveries/{queued['id']}/replay"),
                             ("POST", f"/webhooks/{hook_id}/test"), ("POST", f"/webhooks/{hook_id}/secret")):
            resp = http.request(method, path, headers=b, json={"description": "mine"} if method == "PATCH" else None)
            assert resp.status_code == 404, (method, path, resp.text)
        assert http.get(f"/webhooks/{hook_id}", headers=a).status_code == 200
        with platform.services.db.read() as session:
            probes = session.execute(select(SecurityEvent).where(SecurityEvent.event == "cross_tenant_access")
                                     ).scalars().all()
        assert len(probes) >= 8
        # Moved to a tier without webhooks: what is queued is cancelled, not sent.
        with platform.services.db.write() as session:
            session.execute(update(Organization).values(tier="free"))
        platform.services.tiers.forget()
        platform.services.webhooks.emit(_org_id(platform, a, http), "message.received", {"id": "x"})
        ds = wait_until(lambda: (lambda ds: ds if all(d["status"] != "pending" for d in ds) else None)(
            http.get(f"/webhooks/{hook_id}/deliveries", headers=a).json()["deliveries"]), what="settled")
        assert any(d["status"] == "cancelled" and "tier" in d["lastError"] for d in ds)


def _org_id(platform, headers, http) -> int:
    org_uuid = http.get("/auth/me", headers=headers).json()["organisationId"]
    with platform.services.db.read() as session:
        return session.execute(select(Organization.id).where(Organization.uuid == org_uuid)).scalar_one()
