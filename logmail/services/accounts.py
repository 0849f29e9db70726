"""Mailbox accounts: the external IMAP/POP3 mailboxes users register for logmail to pull.

An account belongs to one user inside one organisation (or to the organisation itself when it was
registered with a token that belongs to no user, such as ``owner.token``). Nobody else reaches it:
another user of the same organisation, an organisation admin or another tenant gets a 403 (the
contract of ``/api/accounts``), recorded as a security event. The password is encrypted at rest
(:mod:`logmail.services.credentials`) and never leaves this module in a response, log or error.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any

from sqlalchemy import update

from logmail.config import AccountsSettings
from logmail.errors import (
    BadRequestError,
    ConflictError,
    ForbiddenError,
    NotFoundError,
    RateLimitedError,
    TemporaryError,
)
from logmail.services.audit import ACCOUNT_CREATED, ACCOUNT_DELETED, ACCOUNT_UPDATED, AuditLog
from logmail.services.credentials import CredentialVault
from logmail.services.principal import METHOD_TOKEN, Principal
from logmail.services.security_events import CROSS_TENANT_ACCESS, CROSS_USER_ACCESS, SecurityEvents
from logmail.store import accounts as repo
from logmail.store.cache import Cache
from logmail.store.database import Database
from logmail.store.models import MailAccount

log = logging.getLogger("logmail.accounts")

PROTOCOLS = ("imap", "pop3")
ENCRYPTIONS = ("none", "tls", "starttls")
MAX_SYNC_INTERVAL = 7 * 86_400
MAX_FOLDERS = 50
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")
_HOST = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}"
                   r"[A-Za-z0-9])?)*$|^\[?[0-9a-fA-F:.]{2,45}\]?$")
# Changing any of these points the account at a different mailbox: its sync starts again.
_MAILBOX_FIELDS = ("protocol", "hostname", "port", "username", "email_address")

# JSON name → (column, checker); the checkers raise BadRequestError naming the field.
_REQUIRED = ("accountName", "emailAddress", "protocol", "hostname", "port", "username", "password")


def account_json(a: MailAccount, tenant_id: str, user_id: str | None) -> dict[str, Any]:
    """The account as the API shows it. There is deliberately no password field, encrypted or not."""
    return {
        "id": a.uuid, "tenantId": tenant_id, "userId": user_id, "accountName": a.account_name,
        "emailAddress": a.email_address, "protocol": a.protocol, "hostname": a.hostname, "port": a.port,
        "encryption": a.encryption, "username": a.username, "folders": a.folders, "useIdle": a.use_idle,
        "isSyncEnabled": a.is_sync_enabled, "syncInterval": a.sync_interval, "lastSyncAt": a.last_sync_at,
        "isSyncing": a.is_syncing, "isEnabled": a.is_enabled, "createdAt": a.created_at, "updatedAt": a.updated_at,
        "lastError": a.last_error, "lastErrorAt": a.last_error_at, "authFailed": a.auth_failed,
        "nextSyncAt": a.next_sync_at if a.is_enabled and a.is_sync_enabled and not a.auth_failed else None,
        "syncStats": a.sync_stats or {},
    }


class AccountService:
    def __init__(self, db: Database, vault: CredentialVault, cache: Cache, audit: AuditLog, events: SecurityEvents,
                 settings: AccountsSettings, clock: Callable[[], int]) -> None:
        self.db = db
        self.vault = vault
        self.cache = cache
        self.audit = audit
        self.events = events
        self.settings = settings
        self._clock = clock
        # (connection details, timeout) -> {"ok": bool, ...}; set by the daemon (see test_login).
        self.login_checker: Callable[[dict[str, Any], float], dict[str, Any]] | None = None

    # -- who may ------------------------------------------------------------------------------

    def limit(self, who: Principal) -> None:
        """The per-user limit of /api/accounts (on top of the API's own)."""
        per_minute = self.settings.rate_limit_per_minute
        if per_minute <= 0:
            return
        key = f"rate:accounts:{who.user_uuid or who.token_uuid or who.organization_uuid}"
        result = self.cache.hit(key, per_minute, 60.0)
        if not result.allowed:
            raise RateLimitedError(f"more than {per_minute} account requests a minute; retry later",
                                   retry_after=result.retry_after)

    @staticmethod
    def _may_change(who: Principal) -> None:
        # A user manages their own mailboxes whatever their role; an API token needs the write scope.
        if who.method == METHOD_TOKEN and not who.can("write"):
            raise ForbiddenError("this token lacks the 'write' scope")

    def _refuse_foreign(self, who: Principal, account_uuid: str, other_tenant: bool) -> ForbiddenError:
        self.events.record_for(who, CROSS_TENANT_ACCESS if other_tenant else CROSS_USER_ACCESS,
                               {"kind": "account", "id": account_uuid})
        return ForbiddenError("this account belongs to someone else")

    # -- the API ------------------------------------------------------------------------------

    def list(self, who: Principal, *, limit: int, offset: int) -> tuple[list[dict[str, Any]], int]:
        with self.db.read() as session:
            rows, total = repo.list_page(session, who.organization_id, who.user_id, limit=limit, offset=offset)
            return [self._json(who, r) for r in rows], total

    def get(self, who: Principal, account_uuid: str) -> dict[str, Any]:
        with self.db.read() as session:
            account = self._find(session, who, account_uuid)
            if isinstance(account, _Foreign):
                foreign = account
            else:
                return self._json(who, account)
        raise self._refuse_foreign(who, account_uuid, foreign.other_tenant)

    def create(self, who: Principal, body: dict[str, Any]) -> dict[str, Any]:
        self._may_change(who)
        values = self._validate(body, partial=False)
        password = values.pop("password")
        now = self._clock()
        with self.db.write() as session:
            if repo.email_taken(session, who.organization_id, who.user_id, values["email_address"]):
                raise ConflictError(f"you already registered an account for {values['email_address']}")
            account = MailAccount(organization_id=who.organization_id, user_id=who.user_id, created_at=now,
                                  updated_at=now, next_sync_at=0, password_encrypted="", **values)
            session.add(account)
            session.flush()
            account.password_encrypted = self.vault.encrypt(account.uuid, password)
            self.audit.add(session, who, ACCOUNT_CREATED, target_type="account", target_id=account.uuid,
                           details={"emailAddress": account.email_address, "protocol": account.protocol,
                                    "hostname": account.hostname})
            return self._json(who, account)

    def update(self, who: Principal, account_uuid: str, body: dict[str, Any]) -> dict[str, Any]:
        self._may_change(who)
        values = self._validate(body, partial=True)
        if not values:
            raise BadRequestError("send at least one field to change")
        with self.db.write() as session:
            account = self._find(session, who, account_uuid)
            if not isinstance(account, _Foreign):
                email = values.get("email_address")
                if email and repo.email_taken(session, who.organization_id, who.user_id, email, except_id=account.id):
                    raise ConflictError(f"you already registered an account for {email}")
                password = values.pop("password", None)
                moved = any(f in values and values[f] != getattr(account, f) for f in _MAILBOX_FIELDS)
                for column, value in values.items():
                    setattr(account, column, value)
                if password is not None:
                    account.password_encrypted = self.vault.encrypt(account.uuid, password)
                if moved:
                    repo.forget_progress(session, account.id)
                # A change is the user's answer to whatever failed: try again soon.
                account.auth_failed = False
                account.consecutive_failures = 0
                account.next_sync_at = 0
                account.updated_at = self._clock()
                changed = sorted(set(body) - {"password"}) + (["password"] if password is not None else [])
                self.audit.add(session, who, ACCOUNT_UPDATED, target_type="account", target_id=account.uuid,
                               details={"fields": changed})
                return self._json(who, account)
            foreign = account
        raise self._refuse_foreign(who, account_uuid, foreign.other_tenant)

    def delete(self, who: Principal, account_uuid: str) -> None:
        """A soft delete: the account stays for the record, disabled, and nothing syncs it again."""
        self._may_change(who)
        with self.db.write() as session:
            account = self._find(session, who, account_uuid)
            if not isinstance(account, _Foreign):
                account.is_enabled = False
                account.is_sync_enabled = False
                account.updated_at = self._clock()
                self.audit.add(session, who, ACCOUNT_DELETED, target_type="account", target_id=account.uuid,
                               details={"emailAddress": account.email_address})
                return
            foreign = account
        raise self._refuse_foreign(who, account_uuid, foreign.other_tenant)

    def request_sync(self, who: Principal, account_uuid: str) -> dict[str, Any]:
        """Sync as soon as a scheduler looks (within ``accounts.dispatch_interval``), even after a
        failed login: asking is the user's way of saying "try again"."""
        self._may_change(who)
        with self.db.write() as session:
            account = self._find(session, who, account_uuid)
            if not isinstance(account, _Foreign):
                session.execute(update(MailAccount).where(MailAccount.id == account.id)
                                .values(next_sync_at=0, auth_failed=False, consecutive_failures=0))
                session.refresh(account)
                return self._json(who, account)
            foreign = account
        raise self._refuse_foreign(who, account_uuid, foreign.other_tenant)

    def connection_details(self, who: Principal, account_uuid: str) -> dict[str, Any]:
        """What a login test needs, the password decrypted; only for the account's owner."""
        self._may_change(who)
        with self.db.read() as session:
            account = self._find(session, who, account_uuid)
            if not isinstance(account, _Foreign):
                return {"protocol": account.protocol, "hostname": account.hostname, "port": account.port,
                        "encryption": account.encryption, "username": account.username,
                        "password": self.vault.decrypt(account.uuid, account.password_encrypted)}
            foreign = account
        raise self._refuse_foreign(who, account_uuid, foreign.other_tenant)

    def test_login(self, who: Principal, account_uuid: str) -> dict[str, Any]:
        """Can logmail log in? Connects and logs in without importing anything.

        The check itself speaks IMAP/POP3, which is the ``imap`` package's business; the daemon
        hands it in as ``login_checker`` (services never import the protocol clients).
        """
        details = self.connection_details(who, account_uuid)
        if self.login_checker is None:
            raise TemporaryError("mailbox login checks are not available in this process")
        return self.login_checker(details, self.settings.timeout)

    # -- helpers ------------------------------------------------------------------------------

    def _find(self, session, who: Principal, account_uuid: str) -> MailAccount | _Foreign:
        account = repo.by_uuid(session, account_uuid)
        if account is None:
            raise NotFoundError("account not found")
        if account.organization_id != who.organization_id or account.user_id != who.user_id:
            return _Foreign(account.organization_id != who.organization_id)
        if not account.is_enabled:
            raise NotFoundError("account not found (it was deleted)")
        return account

    def _json(self, who: Principal, account: MailAccount) -> dict[str, Any]:
        return account_json(account, who.organization_uuid, who.user_uuid)

    def _validate(self, body: dict[str, Any], *, partial: bool) -> dict[str, Any]:
        if not partial:
            missing = [f for f in _REQUIRED if f not in body]
            if missing:
                raise BadRequestError(f"missing required field{'s' if len(missing) > 1 else ''}: {', '.join(missing)}")
        unknown = sorted(set(body) - set(_FIELDS))
        if unknown:
            raise BadRequestError(f"unknown field{'s' if len(unknown) > 1 else ''}: {', '.join(unknown)}")
        out: dict[str, Any] = {}
        for name, value in body.items():
            column, check = _FIELDS[name]
            out[column] = check(name, value, self.settings)
        if not partial:
            out.setdefault("encryption", "tls")
            out.setdefault("is_sync_enabled", True)
            out.setdefault("sync_interval", 300 if 300 >= self.settings.min_sync_interval
                           else self.settings.min_sync_interval)
            out.setdefault("folders", ["INBOX"])
            out.setdefault("use_idle", False)
        return out


class _Foreign:
    """Somebody else's account: the caller gets a 403 once the read transaction is over."""

    def __init__(self, other_tenant: bool) -> None:
        self.other_tenant = other_tenant


def _text(maximum: int, *, minimum: int = 1):
    def check(name: str, value: Any, settings: AccountsSettings) -> str:
        if not isinstance(value, str):
            raise BadRequestError(f"{name} must be a string")
        value = value.strip() if name != "password" else value
        if len(value) < minimum:
            raise BadRequestError(f"{name} must not be empty")
        if len(value) > maximum:
            raise BadRequestError(f"{name} must be at most {maximum} characters long")
        if any(c in value for c in "\r\n\0"):
            raise BadRequestError(f"{name} must not contain line breaks or NUL")
        if name != "password":  # the password is stored encrypted as bytes (surrogatepass)
            _unicode(name, value)
        return value
    return check


def _unicode(name: str, value: str) -> None:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate escaped in the JSON ("\ud800"): not text
        raise BadRequestError(f"{name} must be valid Unicode text") from None


def _email(name: str, value: Any, settings: AccountsSettings) -> str:
    value = _text(320)(name, value, settings)
    if not _EMAIL.match(value):
        raise BadRequestError(f"{name} must be a valid email address such as user@example.com")
    return value


def _choice(options: tuple[str, ...]):
    def check(name: str, value: Any, settings: AccountsSettings) -> str:
        if not isinstance(value, str) or value.lower() not in options:
            raise BadRequestError(f"{name} must be one of {', '.join(options)}")
        return value.lower()
    return check


def _hostname(name: str, value: Any, settings: AccountsSettings) -> str:
    value = _text(255)(name, value, settings)
    if not _HOST.match(value):
        raise BadRequestError(f"{name} must be a host name such as imap.example.com, or an IP address")
    return value.lower()


def _port(name: str, value: Any, settings: AccountsSettings) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 65535:
        raise BadRequestError(f"{name} must be an integer from 1 to 65535")
    return value


def _bool(name: str, value: Any, settings: AccountsSettings) -> bool:
    if not isinstance(value, bool):
        raise BadRequestError(f"{name} must be true or false")
    return value


def _interval(name: str, value: Any, settings: AccountsSettings) -> int:
    low = settings.min_sync_interval
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= MAX_SYNC_INTERVAL:
        raise BadRequestError(f"{name} must be a whole number of seconds from {low} to {MAX_SYNC_INTERVAL}")
    return value


def _folders(name: str, value: Any, settings: AccountsSettings) -> list[str]:
    if (not isinstance(value, list) or not value or len(value) > MAX_FOLDERS
            or not all(isinstance(f, str) and 0 < len(f) <= 255 and not any(c in f for c in "\r\n\0")
                       for f in value)):
        raise BadRequestError(f"{name} must be a list of 1 to {MAX_FOLDERS} folder names")
    for folder in value:
        _unicode(name, folder)
    return list(dict.fromkeys(value))


_FIELDS: dict[str, tuple[str, Callable[[str, Any, AccountsSettings], Any]]] = {
    "accountName": ("account_name", _text(200)),
    "emailAddress": ("email_address", _email),
    "protocol": ("protocol", _choice(PROTOCOLS)),
    "hostname": ("hostname", _hostname),
    "port": ("port", _port),
    "encryption": ("encryption", _choice(ENCRYPTIONS)),
    "username": ("username", _text(320)),
    "password": ("password", _text(1000)),
    "isSyncEnabled": ("is_sync_enabled", _bool),
    "syncInterval": ("sync_interval", _interval),
    "folders": ("folders", _folders),
    "useIdle": ("use_idle", _bool),
}
FIELDS = tuple(_FIELDS)
