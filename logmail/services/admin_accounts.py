"""Mailbox accounts of every organisation, for platform administrators (``logmail admin accounts``).

Only the listing and the lookup live here; syncing speaks IMAP and POP3, which is the ``imap``
package's (:class:`logmail.imap.sync_service.AccountSyncService`), called by the command line.
"""

from __future__ import annotations

from typing import Any

from logmail.errors import NotFoundError
from logmail.services.accounts import account_json
from logmail.services.admin_sessions import require_platform_admin
from logmail.services.principal import Principal
from logmail.store import accounts as accounts_repo
from logmail.store import admin as repo
from logmail.store import users as users_repo
from logmail.store.database import Database


class AccountAdmin:
    def __init__(self, db: Database) -> None:
        self.db = db

    def list(self, who: Principal, *, organization_uuid: str | None = None, limit: int = 50, offset: int = 0,
             ) -> tuple[list[dict[str, Any]], int]:
        """Enabled accounts, oldest first, as the API shows them (never a password)."""
        require_platform_admin(who)
        with self.db.read() as session:
            org_id = None
            if organization_uuid is not None:
                org = users_repo.organization_by_uuid(session, organization_uuid)
                if org is None:
                    raise NotFoundError("organisation not found")
                org_id = org.id
            rows, total = repo.list_accounts(session, organization_id=org_id, limit=limit, offset=offset)
            return [account_json(account, org_uuid, user_uuid) for account, org_uuid, user_uuid in rows], total

    def ids(self, who: Principal, account_uuids: list[str] | None) -> list[int]:
        """Internal ids of the named enabled accounts (every enabled one when None), for a sync."""
        require_platform_admin(who)
        with self.db.read() as session:
            if account_uuids is None:
                rows, _ = repo.list_accounts(session, organization_id=None, limit=10**9, offset=0)
                return [account.id for account, _, _ in rows]
            out = []
            for uuid in account_uuids:
                account = accounts_repo.by_uuid(session, uuid.lower())
                if account is None or not account.is_enabled:
                    raise NotFoundError(f"no mailbox account {uuid}")
                out.append(account.id)
            return out
