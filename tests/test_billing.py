"""Billing with Stripe over HTTP: Checkout against a local stand-in for Stripe's API, webhooks signed
here as Stripe signs them (forged, stale, duplicated and out of order), status, and the end of a paid
period — in platform mode, where tiers are limits."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid

import httpx
import pytest
from sqlalchemy import func, select, update

from auth_helpers import PASSWORD, client, install_clock, login
from conftest import make_settings
from logmail.daemon.billing_job import BillingDowngradeJob
from logmail.daemon.scheduler import JobRunner
from logmail.store.models import Organization, TierLimit
from logmail.store.models_billing import BillingEvent
from stripe_fake import FakeStripe

SECRET_KEY = "sk_test_logmail"
WEBHOOK_SECRET = "whsec_logmail_test_secret"
PRO, ENTERPRISE = "price_pro_monthly", "price_enterprise_monthly"
DAY = 86_400


@pytest.fixture
def stripe_api():
    fake = FakeStripe(secret_key=SECRET_KEY).start()
    yield fake
    fake.stop()


@pytest.fixture
def settings(tmp_path, stripe_api):
    return make_settings(tmp_path / "data", mode="platform", auth={"open_registration": True},
                         policy={"cache_seconds": 0},
                         billing={"stripe_secret_key": SECRET_KEY, "stripe_webhook_secret": WEBHOOK_SECRET,
                                  "api_base": stripe_api.url, "cancel_url": "https://app.example/billing",
                                  "success_url": "https://app.example/billing/done?s={CHECKOUT_SESSION_ID}"})


@pytest.fixture
def http(daemon):
    with daemon.services.db.write() as session:  # Stripe prices for the paid tiers; no API limit in tests
        session.execute(update(TierLimit).where(TierLimit.name == "pro").values(price_id=PRO))
        session.execute(update(TierLimit).where(TierLimit.name == "enterprise").values(price_id=ENTERPRISE))
        session.execute(update(TierLimit).values(api_requests_per_minute=None))
    daemon.services.tiers.forget()
    with client(daemon) as c:
        yield c


class Org:
    """A registered organisation: its owner's session, and members made by the owner."""

    def __init__(self, daemon, http: httpx.Client, name: str) -> None:
        self.daemon, self.http, self.email = daemon, http, f"owner@{name}.example"
        resp = http.post("/auth/register", json={"email": self.email, "password": PASSWORD, "organisationName": name})
        assert resp.status_code == 201, resp.text
        self.uuid = resp.json()["user"]["organisationId"]
        with daemon.services.db.read() as session:
            self.id = session.execute(select(Organization.id).where(Organization.uuid == self.uuid)).scalar_one()
        self.owner = login(http, self.email).auth

    def member(self, role: str) -> dict[str, str]:
        email = f"{role}-{uuid.uuid4().hex[:6]}@{self.email.split('@')[1]}"
        resp = self.http.post("/users", headers=self.owner, json={"email": email, "password": PASSWORD, "role": role})
        assert resp.status_code == 201, resp.text
        return login(self.http, email).auth

    @property
    def tier(self) -> str:
        with self.daemon.services.db.read() as session:
            return session.get(Organization, self.id).tier

    def status(self, headers: dict | None = None) -> dict:
        resp = self.http.get("/billing/status", headers=headers or self.owner)
        assert resp.status_code == 200, resp.text
        return resp.json()

    def audit(self, action: str) -> list[dict]:
        resp = self.http.get("/audit", headers=self.owner, params={"action": action, "limit": 1000})
        assert resp.status_code == 200, resp.text
        return resp.json()["entries"]

    def notifications(self, headers: dict) -> list[dict]:
        return self.http.get("/notifications", headers=headers).json()["notifications"]


@pytest.fixture
def org(daemon, http):
    return Org(daemon, http, "acme")


# -- Stripe's side: events, signed as Stripe signs them ------------------------------------------------


def signature(body: bytes, *, secret: str = WEBHOOK_SECRET, at: int | None = None) -> str:
    at = int(time.time()) if at is None else at
    mac = hmac.new(secret.encode(), f"{at}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={at},v1={mac}"


def deliver(http: httpx.Client, event: dict, **sign) -> httpx.Response:
    body = json.dumps(event).encode()
    return http.post("/billing/webhook", content=body,
                     headers={"Stripe-Signature": signature(body, **sign), "Content-Type": "application/json"})


def applied(http: httpx.Client, event: dict) -> str:
    resp = deliver(http, event)
    assert resp.status_code == 200, resp.text
    return resp.json()["outcome"]


def event(kind: str, obj: dict, created: int) -> dict:
    return {"id": f"evt_{uuid.uuid4().hex}", "object": "event", "api_version": "2026-10-28.endive",
            "created": created, "type": kind, "livemode": False, "pending_webhooks": 1, "data": {"object": obj}}


def completed(org: Org, created: int, *, sub: str = "sub_1", tier: str = "pro", price: str = PRO) -> dict:
    return event("checkout.session.completed", {
        "id": f"cs_test_{uuid.uuid4().hex[:8]}", "object": "checkout.session", "mode": "subscription",
        "status": "complete", "payment_status": "paid", "customer": "cus_1", "subscription": sub,
        "client_reference_id": org.uuid, "metadata": {"organizationId": org.uuid, "tier": tier, "priceId": price}},
        created)


def subscription(org: Org, *, sub: str = "sub_1", price: str = PRO, status: str = "active",
                 period_end: int | None = None, cancel_at_period_end: bool = False) -> dict:
    """A Subscription object in the current API shape (the period on its items)."""
    period_end = int(time.time()) + 30 * DAY if period_end is None else period_end
    return {"id": sub, "object": "subscription", "customer": "cus_1", "status": status,
            "cancel_at_period_end": cancel_at_period_end, "metadata": {"organizationId": org.uuid, "tier": "pro"},
            "items": {"object": "list", "data": [{"id": "si_1", "price": {"id": price, "object": "price"},
                                                  "current_period_end": period_end}]}}


def updated(org: Org, created: int, **kw) -> dict:
    return event("customer.subscription.updated", subscription(org, **kw), created)


def deleted(org: Org, created: int, **kw) -> dict:
    return event("customer.subscription.deleted", subscription(org, status="canceled", **kw), created)


def invoice(org: Org, created: int, *, paid: bool, sub: str = "sub_1", invoice_id: str = "in_1",
            attempt: int = 1, legacy: bool = False) -> dict:
    details = {"subscription": sub, "metadata": {"organizationId": org.uuid}}
    obj = {"id": invoice_id, "object": "invoice", "customer": "cus_1", "status": "paid" if paid else "open",
           "amount_due": 1900, "currency": "eur", "attempt_count": attempt,
           "next_payment_attempt": None if paid else created + 3 * DAY,
           "lines": {"object": "list", "data": [{"period": {"start": created, "end": created + 30 * DAY}}]}}
    if legacy:  # before API version 2025-03-31
        obj.update(subscription=sub, subscription_details={"metadata": details["metadata"]})
    else:
        obj["parent"] = {"type": "subscription_details", "subscription_details": details}
    return event("invoice.paid" if paid else "invoice.payment_failed", obj, created)


def billing_events(daemon) -> int:
    with daemon.services.db.read() as session:
        return session.execute(select(func.count()).select_from(BillingEvent)).scalar_one()


# -- checkout ------------------------------------------------------------------------------------------


def test_checkout_asks_stripe_for_the_tiers_price_and_names_the_organisation(daemon, http, org, stripe_api):
    resp = http.post("/billing/create-checkout", headers=org.owner, json={"tier": "pro"})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["url"].startswith("https://checkout.stripe.com/") and body["sessionId"].startswith("cs_test_")
    assert body["tier"] == "pro" and body["priceId"] == PRO
    (sent,) = stripe_api.checkout_requests()
    assert sent.headers["Authorization"] == f"Bearer {SECRET_KEY}"
    form = sent.form
    assert form["mode"] == "subscription"
    assert form["line_items[0][price]"] == PRO and form["line_items[0][quantity]"] == "1"
    assert form["client_reference_id"] == org.uuid and form["customer_email"] == org.email
    for prefix in ("metadata", "subscription_data[metadata]"):
        assert form[f"{prefix}[organizationId]"] == org.uuid and form[f"{prefix}[tier]"] == "pro"
    assert form["success_url"] == "https://app.example/billing/done?s={CHECKOUT_SESSION_ID}"
    # The request may name its own return addresses.
    own = {"successUrl": "https://x.example/ok", "cancelUrl": "https://x.example/no"}
    resp = http.post("/billing/create-checkout", headers=org.owner, json={"tier": "enterprise", **own})
    assert resp.status_code == 200, resp.text
    form = stripe_api.checkout_requests()[-1].form
    assert form["line_items[0][price]"] == ENTERPRISE and form["success_url"] == "https://x.example/ok"
    (entry, _) = org.audit("billing.checkout_created")
    assert entry["details"]["tier"] == "enterprise" and entry["details"]["priceId"] == ENTERPRISE


def test_a_tier_without_its_own_price_uses_the_default_price(daemon, http, org, stripe_api):
    with daemon.services.db.write() as session:
        session.add(TierLimit(name="team", display_name="Team", features={"api": True}))
    assert http.post("/billing/create-checkout", headers=org.owner, json={"tier": "team"}).status_code == 400
    daemon.services.settings.billing.stripe_price_id = "price_default"
    resp = http.post("/billing/create-checkout", headers=org.owner, json={"tier": "team"})
    assert resp.status_code == 200, resp.text
    assert stripe_api.checkout_requests()[-1].form["line_items[0][price]"] == "price_default"
    # A subscription at the default price puts the organisation on the tier it was bought for.
    assert applied(http, event("customer.subscription.updated",
                               {**subscription(org, price="price_default"),
                                "metadata": {"organizationId": org.uuid, "tier": "team"}}, 1000)) == "applied"
    assert org.tier == "team"


def test_checkout_refuses_what_cannot_be_bought(daemon, http, org, stripe_api):
    for body, words in (({"tier": "free"}, "nothing to pay"), ({"tier": "gold"}, "no tier called"),
                        ({"tier": "pro", "successUrl": "javascript:alert(1)"}, "http(s) URL"), ({}, "tier")):
        resp = http.post("/billing/create-checkout", headers=org.owner, json=body)
        assert resp.status_code == 400 and words in resp.json()["message"], resp.text
    assert stripe_api.checkout_requests() == []
    applied(http, completed(org, 1000))  # now subscribed: a second subscription is refused
    resp = http.post("/billing/create-checkout", headers=org.owner, json={"tier": "enterprise"})
    assert resp.status_code == 409 and "already has a subscription" in resp.json()["message"]


def test_only_owners_start_a_checkout(daemon, http, org, stripe_api):
    for role in ("admin", "member"):
        resp = http.post("/billing/create-checkout", headers=org.member(role), json={"tier": "pro"})
        assert resp.status_code == 403, resp.text
    assert http.post("/billing/create-checkout", json={"tier": "pro"}).status_code == 401
    assert stripe_api.checkout_requests() == []
    # Every member may read the status.
    assert org.status(org.member("member"))["tier"]["name"] == "free"


def test_stripe_refusing_or_unreachable_is_a_clear_error(daemon, http, org, stripe_api):
    stripe_api.fail_with = (400, "invalid_request_error")
    resp = http.post("/billing/create-checkout", headers=org.owner, json={"tier": "pro"})
    assert resp.status_code == 502 and "Stripe would not" in resp.json()["message"]
    stripe_api.fail_with = (500, "api_error")
    assert http.post("/billing/create-checkout", headers=org.owner, json={"tier": "pro"}).status_code == 503
    stripe_api.stop()
    resp = http.post("/billing/create-checkout", headers=org.owner, json={"tier": "pro"})
    assert resp.status_code == 503 and "cannot be reached" in resp.json()["message"]
    assert org.audit("billing.checkout_created") == []


def test_without_stripe_keys_billing_answers_503_and_everything_else_works(tmp_path):
    from logmail.daemon.runner import Daemon

    daemon = Daemon(make_settings(tmp_path / "plain")).start_in_thread()
    try:
        token = (tmp_path / "plain" / "owner.token").read_text().strip()
        with client(daemon, headers={"Authorization": f"Bearer {token}"}) as api:
            for resp in (api.get("/billing/status"), api.post("/billing/create-checkout", json={"tier": "pro"})):
                assert resp.status_code == 503 and "STRIPE_SECRET_KEY" in resp.json()["message"], resp.text
            assert api.get("/usage").status_code == 200 and api.get("/messages").status_code == 200
        with client(daemon) as anonymous:  # the webhook needs no token, and says why it cannot work
            resp = anonymous.post("/billing/webhook", content=b"{}", headers={"Stripe-Signature": "t=1,v1=00"})
            assert resp.status_code == 503 and "not configured" in resp.json()["message"]
            assert anonymous.get("/health").status_code == 200
    finally:
        daemon.stop()


# -- the webhook: signatures ---------------------------------------------------------------------------


def test_only_events_signed_by_stripe_recently_are_accepted(daemon, http, org):
    good = completed(org, 1000)
    body = json.dumps(good).encode()
    attempts = {
        "forged": signature(body, secret="whsec_someone_else"),
        "stale": signature(body, at=int(time.time()) - 301),
        "tampered": signature(json.dumps({**good, "id": "evt_other"}).encode()),
        "garbled": "t=soon,v1=abc",
        "no v1": f"t={int(time.time())}",
    }
    for name, header in attempts.items():
        resp = http.post("/billing/webhook", content=body, headers={"Stripe-Signature": header})
        assert resp.status_code == 400, (name, resp.text)
        assert resp.json()["error"] == "Invalid signature"
    resp = http.post("/billing/webhook", content=body)
    assert resp.status_code == 400 and "Stripe-Signature header is missing" in resp.json()["message"]
    assert billing_events(daemon) == 0 and org.tier == "free"
    # Signed, but not an event.
    junk = b'{"hello": "world"}'
    assert http.post("/billing/webhook", content=junk,
                     headers={"Stripe-Signature": signature(junk)}).status_code == 400
    # Within the tolerance, with a second (rotated) secret's signature beside it: accepted.
    header = signature(body, at=int(time.time()) - 200) + ",v1=" + "0" * 64
    resp = http.post("/billing/webhook", content=body, headers={"Stripe-Signature": header})
    assert resp.status_code == 200 and resp.json() == {"received": True, "eventId": good["id"], "outcome": "applied"}
    # Without a webhook secret the endpoint cannot check anything: 503, not a guess.
    daemon.services.settings.billing.stripe_webhook_secret = ""
    assert deliver(http, completed(org, 1001)).status_code == 503
    assert org.status()["tier"]["name"] == "pro"  # status still works


# -- the webhook: what each event does -----------------------------------------------------------------


def test_a_completed_checkout_records_the_subscription_and_sets_the_tier(daemon, http, org):
    assert applied(http, completed(org, 1000)) == "applied"
    status = org.status()
    assert status["tier"]["name"] == "pro" and status["tier"]["limits"]["maxAddresses"] == 50
    assert status["subscription"]["id"] == "sub_1" and status["subscription"]["status"] == "active"
    assert status["subscription"]["priceId"] == PRO and status["pendingChange"] is None
    assert set(status["usage"]) >= {"emailsReceived", "storageBytes", "addresses"}
    (tier,) = org.audit("billing.tier_changed")
    assert tier["actorUserId"] is None and tier["actorTokenId"] is None
    assert tier["details"]["from"] == "free" and tier["details"]["to"] == "pro"
    assert tier["details"]["via"] == "stripe" and tier["details"]["eventType"] == "checkout.session.completed"
    (change,) = org.audit("billing.subscription_changed")
    assert change["details"]["changes"]["status"] == [None, "active"]
    # The door sees the new tier at once: the policy decision reads pro's limits.
    assert daemon.services.policy.organization_tier(org.id).name == "pro"


def test_the_tier_follows_the_subscriptions_price(daemon, http, org):
    applied(http, completed(org, 1000))
    assert applied(http, updated(org, 1100, price=ENTERPRISE)) == "applied"
    assert org.tier == "enterprise" and org.status()["subscription"]["priceId"] == ENTERPRISE
    # A price no tier claims changes the record but not the tier.
    assert applied(http, updated(org, 1200, price="price_unknown")) == "applied"
    assert org.tier == "enterprise" and org.status()["subscription"]["priceId"] == "price_unknown"
    assert applied(http, updated(org, 1300, price=PRO, cancel_at_period_end=True)) == "applied"
    assert org.tier == "pro" and org.status()["subscription"]["cancelAtPeriodEnd"] is True
    assert [e["details"]["to"] for e in reversed(org.audit("billing.tier_changed"))] == ["pro", "enterprise", "pro"]


def test_a_failed_payment_marks_the_subscription_past_due_and_tells_the_owners(daemon, http, org):
    admin = org.member("admin")
    applied(http, completed(org, 1000))
    assert applied(http, invoice(org, 2000, paid=False, attempt=1)) == "applied"
    status = org.status()
    assert status["subscription"]["status"] == "past_due" and status["tier"]["name"] == "pro"  # grace while retried
    (note,) = [n for n in org.notifications(org.owner) if n["kind"] == "paymentFailed"]
    assert "19.00 EUR" in note["body"] and note["severity"] == "critical"
    assert not [n for n in org.notifications(admin) if n["kind"] == "paymentFailed"]  # owners only
    (failed,) = org.audit("billing.payment_failed")
    assert failed["details"]["invoice"]["id"] == "in_1" and failed["details"]["via"] == "stripe"
    # The retry succeeds (an older API version's invoice shape): active again.
    assert applied(http, invoice(org, 2100, paid=True, legacy=True)) == "applied"
    assert org.status()["subscription"]["status"] == "active"
    (change, *_) = org.audit("billing.subscription_changed")
    assert change["details"]["changes"]["status"] == ["past_due", "active"]


def test_a_deleted_subscription_goes_back_to_free_when_the_paid_period_ends(daemon, http, org):
    clock = install_clock(daemon)
    applied(http, completed(org, 1000))
    period_end = clock.now // 1000 + 10 * DAY
    assert applied(http, deleted(org, 2000, period_end=period_end)) == "applied"
    status = org.status()
    assert status["tier"]["name"] == "pro" and status["subscription"]["status"] == "canceled"
    assert status["pendingChange"] == {"tier": "free", "at": period_end * 1000}
    (scheduled,) = org.audit("billing.downgrade_scheduled")
    assert scheduled["details"]["at"] == period_end * 1000
    # The billing job, run by the scheduler, does nothing before the end and moves the tier after it.
    runner = JobRunner(daemon.services.db)
    job = BillingDowngradeJob(daemon.services.billing, daemon.settings.billing)
    assert runner.run_once(job) and org.tier == "pro"
    clock.advance(10 * DAY * 1000 + 1)
    assert runner.run_once(job)
    org.owner = login(http, org.email).auth  # ten days on, the old access token has long expired
    assert org.tier == "free" and org.status()["pendingChange"] is None
    (moved, _) = org.audit("billing.tier_changed")
    assert moved["details"]["via"] == "schedule" and moved["details"]["to"] == "free"
    assert daemon.services.policy.organization_tier(org.id).name == "free"


def test_a_subscription_deleted_after_its_period_goes_to_free_at_once(daemon, http, org):
    applied(http, completed(org, 1000))
    assert applied(http, deleted(org, 2000, period_end=int(time.time()) - DAY)) == "applied"
    assert org.tier == "free" and org.status()["pendingChange"] is None
    applied(http, completed(org, 3000, sub="sub_2"))  # subscribing again later starts a new subscription
    assert org.tier == "pro" and org.status()["subscription"]["id"] == "sub_2"


# -- the webhook: duplicates and order -----------------------------------------------------------------


def test_a_redelivered_event_changes_nothing_the_second_time(daemon, http, org):
    first = completed(org, 1000)
    failed = invoice(org, 2000, paid=False)
    assert [applied(http, e) for e in (first, failed, first, failed)] == ["applied", "applied", "duplicate",
                                                                          "duplicate"]
    assert len(org.audit("billing.tier_changed")) == 1 and len(org.audit("billing.payment_failed")) == 1
    assert len([n for n in org.notifications(org.owner) if n["kind"] == "paymentFailed"]) == 1
    assert billing_events(daemon) == 2


def test_events_arriving_out_of_order_end_in_the_right_state(daemon, http, org):
    # The update (newer) before the checkout that started it: the checkout is old news.
    assert applied(http, updated(org, 1010, price=ENTERPRISE)) == "applied"
    assert applied(http, completed(org, 1000)) == "stale"
    assert org.tier == "enterprise" and org.status()["subscription"]["status"] == "active"
    # A payment's failure arriving after the news that it was paid.
    assert applied(http, invoice(org, 1030, paid=True, invoice_id="in_2")) == "applied"
    assert applied(http, invoice(org, 1020, paid=False, invoice_id="in_2")) == "stale"
    assert org.status()["subscription"]["status"] == "active"
    assert not [n for n in org.notifications(org.owner) if n["kind"] == "paymentFailed"]
    # The deletion before an update that preceded it: the subscription stays cancelled.
    period_end = int(time.time()) + 5 * DAY
    assert applied(http, deleted(org, 1050, price=ENTERPRISE, period_end=period_end)) == "applied"
    assert applied(http, updated(org, 1040, price=PRO)) == "stale"
    status = org.status()
    assert status["subscription"]["status"] == "canceled" and status["subscription"]["priceId"] == ENTERPRISE
    assert status["tier"]["name"] == "enterprise" and status["pendingChange"]["tier"] == "free"
    # Later news of the ended subscription (a late invoice) never brings it back.
    assert applied(http, invoice(org, 1060, paid=True, invoice_id="in_3")) == "ended"
    assert org.status()["subscription"]["status"] == "canceled"


def test_two_updates_in_the_same_second_are_settled_by_asking_stripe(daemon, http, org, stripe_api):
    applied(http, completed(org, 1000))
    # What Stripe holds now (renewed meanwhile, so its period ends later than either event says).
    stripe_api.subscriptions["sub_1"] = subscription(org, price=ENTERPRISE, period_end=int(time.time()) + 60 * DAY)
    assert applied(http, updated(org, 1100, price=ENTERPRISE)) == "applied"
    assert applied(http, updated(org, 1100, price=PRO)) == "applied"  # cannot be ordered: Stripe says
    assert [r.path for r in stripe_api.requests if r.method == "GET"] == ["/v1/subscriptions/sub_1"]
    assert org.tier == "enterprise" and org.status()["subscription"]["priceId"] == ENTERPRISE
    (change, *_) = org.audit("billing.subscription_changed")
    assert change["details"]["resolvedBy"] == "subscription.fetched"


def test_news_of_a_replaced_subscription_is_ignored(daemon, http, org):
    applied(http, completed(org, 1000, sub="sub_old"))
    applied(http, deleted(org, 2000, sub="sub_old", period_end=int(time.time()) - 1))
    applied(http, completed(org, 3000, sub="sub_new", tier="enterprise", price=ENTERPRISE))
    assert org.tier == "enterprise"
    assert applied(http, updated(org, 2500, sub="sub_old", price=PRO)) == "superseded"
    assert applied(http, deleted(org, 4000, sub="sub_old", period_end=int(time.time()) - 1)) == "superseded"
    assert org.tier == "enterprise" and org.status()["subscription"]["id"] == "sub_new"


def test_events_of_no_organisation_or_of_no_interest_are_acknowledged(daemon, http, org):
    stranger = completed(org, 1000)
    stranger["data"]["object"].update(client_reference_id=None, metadata={}, customer="cus_x", subscription="sub_x")
    assert applied(http, stranger) == "unmatched"
    assert applied(http, event("customer.created", {"id": "cus_9", "object": "customer"}, 1000)) == "ignored"
    payment = completed(org, 1000)
    payment["data"]["object"]["mode"] = "payment"
    assert applied(http, payment) == "ignored"
    assert org.tier == "free" and org.status()["subscription"] is None
    assert billing_events(daemon) == 3


def test_billing_status_belongs_to_the_callers_organisation(daemon, http, org):
    other = Org(daemon, http, "globex")
    applied(http, completed(org, 1000))
    assert org.status()["tier"]["name"] == "pro"
    mine = other.status()
    assert mine["organizationId"] == other.uuid and mine["tier"]["name"] == "free" and mine["subscription"] is None


def test_stripe_settings_answer_to_stripes_own_environment_names():
    from logmail.config import as_dict, load_settings

    s = load_settings(None, environ={"STRIPE_SECRET_KEY": "sk_live_1", "STRIPE_WEBHOOK_SECRET": "whsec_1",
                                     "STRIPE_PRICE_ID": "price_alias", "LOGMAIL_BILLING__STRIPE_PRICE_ID": "price_own"})
    assert s.billing.stripe_secret_key == "sk_live_1" and s.billing.stripe_webhook_secret == "whsec_1"
    assert s.billing.stripe_price_id == "price_own"  # the LOGMAIL_ name wins over the alias
    shown = as_dict(s)["billing"]
    assert shown["stripe_secret_key"] == shown["stripe_webhook_secret"] == "********"
