"""Builders for mailbox-account tests: accounts written straight into the database (password
encrypted with the installation's vault), a sync service, and what an account imported."""

from __future__ import annotations

import time
import uuid

from sqlalchemy import delete, func, select, update

from logmail.imap.sync_service import AccountSyncService
from logmail.store.models import MailAccount, MailAccountFolder, MailAccountSeen, Message, User


def add_account(services, *, username: str, password: str, port: int, protocol: str = "imap",
                encryption: str = "none", hostname: str = "127.0.0.1", organization_id: int | None = None,
                **fields) -> int:
    """An enabled account that is due now; ``fields`` override any column (``folders``, ``use_idle``...)."""
    organization_id = organization_id or services.boot.organization_id
    account_uuid = str(uuid.uuid4())
    with services.db.write() as session:
        user = User(organization_id=organization_id, email=f"owner-{account_uuid[:12]}@example.test", role="member")
        session.add(user)
        session.flush()
        values = dict(uuid=account_uuid, organization_id=organization_id, user_id=user.id,
                      account_name=f"{protocol} {username}", email_address=f"{username}@example.test",
                      protocol=protocol, hostname=hostname, port=port, encryption=encryption, username=username,
                      password_encrypted=services.vault.encrypt(account_uuid, password), folders=["INBOX"],
                      sync_interval=300, next_sync_at=0)
        values.update(fields)
        account = MailAccount(**values)
        session.add(account)
        session.flush()
        return account.id


def account(services, account_id: int) -> MailAccount:
    with services.db.read() as session:
        row = session.get(MailAccount, account_id)
        session.expunge(row)
        return row


def change(services, account_id: int, **values) -> None:
    """Edit the account as the API would (``updated_at`` moves on)."""
    with services.db.write() as session:
        session.execute(update(MailAccount).where(MailAccount.id == account_id)
                        .values(updated_at=int(time.time() * 1000) + 1, **values))


def folder_state(services, account_id: int, folder: str = "INBOX") -> MailAccountFolder | None:
    with services.db.read() as session:
        row = session.get(MailAccountFolder, (account_id, folder))
        if row is not None:
            session.expunge(row)
        return row


def forget_progress(services, account_id: int, *, seen: bool = False) -> None:
    """Lose what the account remembers of its folders (and, with ``seen``, its seen set too)."""
    with services.db.write() as session:
        session.execute(delete(MailAccountFolder).where(MailAccountFolder.account_id == account_id))
        if seen:
            session.execute(delete(MailAccountSeen).where(MailAccountSeen.account_id == account_id))


def sync_service(services, **kw) -> AccountSyncService:
    return AccountSyncService.from_services(services, **kw)


def pulled(services, account_id: int) -> list[Message]:
    with services.db.read() as session:
        rows = list(session.execute(select(Message).where(Message.account_id == account_id)
                                    .order_by(Message.id)).scalars())
        session.expunge_all()
        return rows


def count_pulled(services, account_id: int) -> int:
    with services.db.connect() as conn:
        return conn.execute(select(func.count()).select_from(Message).where(Message.account_id == account_id)).scalar()


def wait_pulled(services, account_id: int, count: int, timeout: float = 30) -> list[Message]:
    """Wait until the ingest consumer has stored ``count`` messages of the account (and no more came)."""
    deadline = time.monotonic() + timeout
    while True:
        n = count_pulled(services, account_id)
        if n >= count:
            time.sleep(0.2)  # anything extra (a duplicate) would be close behind
            return pulled(services, account_id)
        assert time.monotonic() < deadline, f"only {n} of {count} messages of account {account_id} stored"
        time.sleep(0.05)
