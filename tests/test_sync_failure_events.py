"""A failing mailbox sync is reported once per failing streak: an account.sync_failed webhook
delivery (and a notification to its owner), not one per retry."""

from __future__ import annotations

import socket

import pytest
from sqlalchemy import select, update

from conftest import make_settings
from logmail.daemon.mailboxes import report_sync_failures
from logmail.services.container import build_services
from logmail.store.models_webhooks import Webhook, WebhookDelivery
from logmail.store.models import MailAccount
from mailbox_helpers import add_account, sync_service


def due_again(services, account_id: int) -> None:
    """What the backoff's end does: due now, the account itself unchanged."""
    with services.db.write() as session:
        session.execute(update(MailAccount).where(MailAccount.id == account_id).values(next_sync_at=0))


@pytest.fixture
def services(tmp_path):
    s = build_services(make_settings(tmp_path / "data", webhooks={"allow_private": True}))
    yield s
    s.close()


def test_one_report_per_failing_streak(services):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once we leave: nobody listens there
    with services.db.write() as session:
        hook = Webhook(organization_id=services.boot.organization_id, url="http://127.0.0.1:9/hook",
                       events=["account.sync_failed"], secret_encrypted="")
        session.add(hook)
        session.flush()
        hook.secret_encrypted = services.vault.encrypt(hook.uuid, "whsec_c2VjcmV0c2VjcmV0")
    account_id = add_account(services, username="u", password="hunter2-secret", port=port)
    sync = sync_service(services)
    sync.on_failure = report_sync_failures(services)
    for _ in range(3):
        due_again(services, account_id)
        assert sync.sync(account_id)["status"] == "error"
    with services.db.read() as session:
        deliveries = session.execute(select(WebhookDelivery)).scalars().all()
    assert [d.event for d in deliveries] == ["account.sync_failed"]
    assert '"consecutiveFailures":1' in deliveries[0].payload.replace(" ", "")
    assert "hunter2-secret" not in deliveries[0].payload


def test_the_owner_hears_once_after_three_failures(services):
    from logmail.store.models_outbound import Notification

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    account_id = add_account(services, username="u", password="hunter2-secret", port=port)
    sync = sync_service(services)
    sync.on_failure = report_sync_failures(services)
    counts = []
    for _ in range(5):
        due_again(services, account_id)
        sync.sync(account_id)
        with services.db.read() as session:
            counts.append(len(session.execute(select(Notification)).scalars().all()))
    assert counts == [0, 0, 1, 1, 1]
