"""Notifications: what users and platform admins must know, in the app and by email.

One notification per *event*, never one per retry or per re-check: every event has a dedupe key
("quota:2026-11:emailsReceived:90", "new-device:<session>") and ``(user, dedupe_key)`` is unique, so
calling a helper twice for the same event creates nothing the second time.

Each user chooses per kind whether a notification shows in the app and whether it is emailed;
absent a choice the kind's default applies (all of them: both). Email goes through the outbound
queue (:mod:`logmail.services.outbound`) and only when it is configured; ``in_app`` is applied when
listing, so turning a kind back on shows what arrived meanwhile.

The event helpers (``quota_warning``, ``new_device_login``, ...) never raise: the event they
report (a login, a stored batch, a failed sync) must never fail because a notification did. Given
the caller's ``session`` they write inside its transaction, under a savepoint, so the notification
commits with the event or not at all.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from logmail.errors import ForbiddenError, NotFoundError
from logmail.services.outbound import OutboundService
from logmail.services.principal import Principal
from logmail.store.database import Database
from logmail.store.models import MailAccount, User
from logmail.store.models_outbound import Notification, NotificationPreference
from logmail.store.models_webhooks import Webhook

log = logging.getLogger("logmail.notifications")


@dataclass(frozen=True, slots=True)
class Kind:
    description: str
    in_app: bool = True
    email: bool = True
    admins_only: bool = False


QUOTA_WARNING = "quotaWarning"
NEW_DEVICE_LOGIN = "newDeviceLogin"
SESSIONS_REVOKED = "sessionsRevoked"
ACCOUNT_SYNC_FAILED = "accountSyncFailed"
WEBHOOK_DISABLED = "webhookDisabled"
SERVICE_STATUS = "serviceStatus"
KINDS: dict[str, Kind] = {
    QUOTA_WARNING: Kind("Your organisation's usage reached 80, 90 or 100 % of a limit of its tier "
                        "(organisation owners and admins)"),
    NEW_DEVICE_LOGIN: Kind("Someone signed in to your account from a device it had not used before"),
    SESSIONS_REVOKED: Kind("Sessions of yours were ended: a refresh token used twice, a session used from "
                           "another device, or signing out everywhere"),
    ACCOUNT_SYNC_FAILED: Kind("A mailbox account of yours keeps failing to sync, or its password was refused"),
    WEBHOOK_DISABLED: Kind("A webhook endpoint of your organisation was disabled (organisation owners and admins)"),
    SERVICE_STATUS: Kind("A service logmail depends on went down, degraded or recovered", admins_only=True),
}
PAYMENT_FAILED = "paymentFailed"
KINDS[PAYMENT_FAILED] = Kind("A payment for your organisation's subscription failed (organisation owners)")
SEVERITIES = ("info", "warning", "critical")
ORGANISATION_ADMIN_ROLES = ("owner", "admin")
FAILURES_BEFORE_NOTICE = 3  # a sync that fails once or twice usually recovers by itself
_FOOTER = ("\n\n-- \nlogmail. Choose which notifications reach you by email with "
           "PUT /notifications/preferences.\n")


class NotificationService:
    def __init__(self, db: Database, outbound: OutboundService, clock: Callable[[], int]) -> None:
        self.db = db
        self.outbound = outbound
        self._clock = clock

    # -- creating ----------------------------------------------------------------------------------

    def notify(self, user_id: int, kind: str, title: str, body: str, *, dedupe_key: str, severity: str = "info",
               data: dict[str, Any] | None = None, session: Session | None = None) -> str | None:
        """Tell one user, once per ``dedupe_key``; the notification's id, or None if it existed already.

        It is emailed too when the user's preference for ``kind`` says so and outbound mail is set up.
        """
        if kind not in KINDS or severity not in SEVERITIES:
            raise ValueError(f"unknown notification kind {kind!r} or severity {severity!r}")
        args = (user_id, kind, title, body, dedupe_key, severity, data or {})
        try:
            if session is not None:
                with session.begin_nested():
                    return self._create(session, *args)
            with self.db.write() as s:
                return self._create(s, *args)
        except IntegrityError:  # the same event, recorded meanwhile by another process
            return None

    def _create(self, session: Session, user_id: int, kind: str, title: str, body: str, dedupe_key: str,
                severity: str, data: dict[str, Any]) -> str | None:
        dedupe_key = dedupe_key[:191]
        if session.execute(select(Notification.id).where(Notification.user_id == user_id,
                                                         Notification.dedupe_key == dedupe_key)).first():
            return None
        user = session.get(User, user_id)
        if user is None:
            return None
        row = Notification(organization_id=user.organization_id, user_id=user.id, kind=kind, severity=severity,
                           title=title[:300], body=body, data=data, dedupe_key=dedupe_key, emailed=False,
                           created_at=self._clock())
        session.add(row)
        session.flush()
        if self.outbound.enabled and self._preference(session, user.id, kind)[1]:
            self.outbound.send_notification(user, f"[logmail] {title}", body + _FOOTER, session=session)
            row.emailed = True
        log.info("notification %s (%s) for user %s", row.uuid, kind, user.uuid)
        return row.uuid

    def notify_users(self, user_ids: Iterable[int], kind: str, title: str, body: str, **kw: Any) -> int:
        """:meth:`notify` each user; how many notifications were new."""
        return sum(1 for user_id in user_ids if self.notify(user_id, kind, title, body, **kw) is not None)

    def notify_admins(self, kind: str, title: str, body: str, **kw: Any) -> int:
        """Tell every platform admin."""
        with self.db.read() as session:
            ids = session.execute(select(User.id).where(User.is_platform_admin.is_(True))).scalars().all()
        return self.notify_users(ids, kind, title, body, **kw)

    def notify_organisation_admins(self, organization_id: int, kind: str, title: str, body: str, **kw: Any) -> int:
        """Tell the owners and admins of one organisation."""
        with self.db.read() as session:
            ids = session.execute(select(User.id).where(User.organization_id == organization_id,
                                                        User.role.in_(ORGANISATION_ADMIN_ROLES))).scalars().all()
        return self.notify_users(ids, kind, title, body, **kw)

    # -- the events ----------------------------------------------------------------------------------

    def quota_warning(self, organization_id: int, metric: str, threshold: int, *, period: str, used: int,
                      limit: int) -> int:
        """Usage of ``metric`` reached ``threshold`` % of the tier's ``limit`` in ``period`` (YYYY-MM)."""
        what = {"emailsReceived": "Mail received this month", "storageBytes": "Storage",
                "addresses": "Addresses"}.get(metric, metric)
        title = f"{what} at {threshold} % of your tier's limit"
        body = (f"{what} has reached {threshold} % of what your organisation's tier allows ({used} of {limit}). "
                + ("New mail is refused until the next month or a larger tier."
                   if threshold >= 100 and metric == "emailsReceived" else
                   "New mail is refused until space is freed or the tier is larger."
                   if threshold >= 100 and metric == "storageBytes" else
                   "Consider a larger tier before the limit is reached."))
        return self._safely(self.notify_organisation_admins, organization_id, QUOTA_WARNING, title, body,
                            dedupe_key=f"quota:{period}:{metric}:{threshold}",
                            severity="critical" if threshold >= 100 else "warning",
                            data={"metric": metric, "threshold": threshold, "period": period, "used": used,
                                  "limit": limit})

    def new_device_login(self, user_id: int, device: str, ip: str, *, session_uuid: str,
                         session: Session | None = None) -> int:
        """A login from a device (browser and platform) this user's sessions never used before."""
        where = f" from the address {ip}" if ip else ""
        body = (f"Your account was signed in to on {device}{where}, a device it had not used before. If this "
                "was you, there is nothing to do. If not, change your password and end that session.")
        return self._safely(self.notify, user_id, NEW_DEVICE_LOGIN, f"New sign-in on {device}", body,
                            dedupe_key=f"new-device:{session_uuid}", severity="warning", session=session,
                            data={"device": device, "ip": ip, "sessionId": session_uuid})

    def sessions_revoked(self, user_id: int, reason: str, *, key: str, count: int = 1,
                         details: dict[str, Any] | None = None, session: Session | None = None) -> int:
        """Sessions of the user were ended; ``key`` names the event (a session id)."""
        details = details or {}
        if reason == "refresh_token_reused":
            title, severity = "A session was ended for your safety", "critical"
            body = ("A session of yours was ended because its refresh token was used twice, which happens when "
                    "a token has been copied. Sign in again; if this was not a browser glitch, change your "
                    "password.")
        elif reason == "device_changed":
            title, severity = "A session was used from another device", "warning"
            body = (f"A session started on {details.get('was', 'one device')} was used from "
                    f"{details.get('now', 'another')} and has been ended. If that was not you, change your "
                    "password.")
        elif reason == "admin_revoked":
            title, severity = "Signed out by an administrator", "warning"
            body = (f"{_sessions(count)} ended by a platform administrator. Sign in again to continue; "
                    "your API tokens still work.")
        else:
            title, severity = "Signed out everywhere", "info"
            body = (f"All {count} of your sessions were ended at your request. If you did not ask for this, "
                    "change your password.")
        return self._safely(self.notify, user_id, SESSIONS_REVOKED, title, body, severity=severity,
                            dedupe_key=f"sessions-revoked:{key}", session=session,
                            data={"reason": reason, "count": count, **details})

    def account_sync_failed(self, account: Any) -> int:
        """Call after recording a failed sync of a mailbox account (a ``MailAccount`` or its id).

        It tells the account's user (or its organisation's admins) when the password was refused, or
        when the sync has failed ``FAILURES_BEFORE_NOTICE`` times in a row; once per failing streak.
        """
        return self._safely(self._account_sync_failed, account)

    def _account_sync_failed(self, account: Any) -> int:
        if not isinstance(account, MailAccount):
            with self.db.read() as session:
                account = session.get(MailAccount, int(account))
            if account is None:
                return 0
        if not account.auth_failed and (account.consecutive_failures or 0) < FAILURES_BEFORE_NOTICE:
            return 0
        why = "its password was refused" if account.auth_failed else \
            f"it failed {account.consecutive_failures} times in a row"
        body = (f"logmail cannot pull mail from {account.account_name} ({account.email_address}): {why}. "
                f"The last error: {account.last_error or 'unknown'}. "
                + ("Update the account's password to start again." if account.auth_failed
                   else "logmail keeps trying, less and less often."))
        # A streak is named by the last success and the last edit: a fix that fails again tells again.
        streak = f"{account.updated_at}:{account.last_sync_at or 0}:{'auth' if account.auth_failed else 'error'}"
        kw = {"dedupe_key": f"account-sync:{account.uuid}:{streak}", "severity": "warning",
              "data": {"accountId": account.uuid, "authFailed": account.auth_failed,
                       "failures": account.consecutive_failures, "error": account.last_error}}
        title = f"Mailbox {account.account_name} is not syncing"
        if account.user_id is not None:
            return 1 if self.notify(account.user_id, ACCOUNT_SYNC_FAILED, title, body, **kw) else 0
        return self.notify_organisation_admins(account.organization_id, ACCOUNT_SYNC_FAILED, title, body, **kw)

    def webhook_disabled(self, webhook: Any) -> int:
        """Call after disabling a webhook endpoint (a ``Webhook`` or its id); tells the org's admins."""
        return self._safely(self._webhook_disabled, webhook)

    def _webhook_disabled(self, webhook: Any) -> int:
        if not isinstance(webhook, Webhook):
            with self.db.read() as session:
                webhook = session.get(Webhook, int(webhook))
            if webhook is None:
                return 0
        reason = webhook.disabled_reason or "it kept failing"
        body = (f"Deliveries to {webhook.url} have stopped: the endpoint was disabled ({reason}). Fix the "
                "endpoint and enable it again to resume.")
        return self.notify_organisation_admins(
            webhook.organization_id, WEBHOOK_DISABLED, "A webhook endpoint was disabled", body, severity="warning",
            dedupe_key=f"webhook-disabled:{webhook.uuid}:{webhook.updated_at}",
            data={"webhookId": webhook.uuid, "url": webhook.url, "reason": reason})

    def service_status_changed(self, service: str, old: str | None, new: str, detail: str | None = None, *,
                               at: int | None = None) -> int:
        """A service went ``old`` → ``new`` (up | degraded | down); tells the platform admins.

        Call it on transitions only; a first sample that is ``up`` is not news.
        """
        if old == new or (old is None and new == "up"):
            return 0
        if new == "up":
            title, severity = f"{service} recovered", "info"
        elif new == "down":
            title, severity = f"{service} is down", "critical"
        else:
            title, severity = f"{service} is {new}", "warning"
        body = f"{service}: {old or 'unknown'} → {new}." + (f" {detail}" if detail else "")
        at = self._clock() if at is None else at
        return self._safely(self.notify_admins, SERVICE_STATUS, title, body, severity=severity,
                            dedupe_key=f"service:{service}:{new}:{at}",
                            data={"service": service, "from": old, "to": new, "detail": detail, "at": at})

    def _safely(self, fn: Callable[..., Any], *args: Any, **kw: Any) -> int:
        try:
            result = fn(*args, **kw)
        except Exception:
            log.warning("could not create a notification (%s)", getattr(fn, "__name__", fn), exc_info=True)
            return 0
        return result if isinstance(result, int) else int(result is not None)

    # -- the API: the caller's own notifications -------------------------------------------------------

    def list(self, who: Principal, *, unread_only: bool, limit: int, offset: int,
             ) -> tuple[list[dict[str, Any]], int, int]:
        """The caller's notifications, newest first, and (total, unread) counts."""
        user_id = _require_user(who)
        with self.db.read() as session:
            visible = self._visible(session, who, user_id)
            unread = session.execute(select(func.count()).select_from(Notification)
                                     .where(visible, Notification.read_at.is_(None))).scalar_one()
            where = [visible] + ([Notification.read_at.is_(None)] if unread_only else [])
            total = unread if unread_only else session.execute(
                select(func.count()).select_from(Notification).where(*where)).scalar_one()
            rows = session.execute(select(Notification).where(*where)
                                   .order_by(Notification.created_at.desc(), Notification.id.desc())
                                   .limit(limit).offset(offset)).scalars().all()
            return [notification_json(r) for r in rows], total, unread

    def _visible(self, session: Session, who: Principal, user_id: int):
        hidden = [k for k, (in_app, _) in self._preferences(session, user_id).items() if not in_app]
        condition = (Notification.user_id == user_id) & (Notification.organization_id == who.organization_id)
        return condition & Notification.kind.not_in(hidden) if hidden else condition

    def mark_read(self, who: Principal, notification_uuid: str) -> dict[str, Any]:
        user_id = _require_user(who)
        now = self._clock()
        with self.db.write() as session:
            row = session.execute(select(Notification).where(
                Notification.uuid == notification_uuid, Notification.user_id == user_id,
                Notification.organization_id == who.organization_id)).scalar_one_or_none()
            if row is None:
                raise NotFoundError("notification not found")
            if row.read_at is None:
                row.read_at = now
            return notification_json(row)

    def mark_all_read(self, who: Principal) -> int:
        user_id = _require_user(who)
        with self.db.write() as session:
            return session.execute(update(Notification).where(
                Notification.user_id == user_id, Notification.organization_id == who.organization_id,
                Notification.read_at.is_(None)).values(read_at=self._clock())).rowcount

    # -- preferences -----------------------------------------------------------------------------------

    def preferences(self, who: Principal) -> dict[str, dict[str, Any]]:
        user_id = _require_user(who)
        with self.db.read() as session:
            chosen = self._preferences(session, user_id)
        return {kind: {"inApp": chosen[kind][0], "email": chosen[kind][1], "description": k.description}
                for kind, k in KINDS.items() if who.is_platform_admin or not k.admins_only}

    def set_preferences(self, who: Principal, changes: dict[str, dict[str, bool]]) -> dict[str, dict[str, Any]]:
        """Change some kinds' ``inApp``/``email``; the rest stay as they are."""
        user_id = _require_user(who)
        with self.db.write() as session:
            current = self._preferences(session, user_id)
            for kind, change in changes.items():
                row = session.get(NotificationPreference, (user_id, kind))
                if row is None:
                    in_app, email = current[kind]
                    row = NotificationPreference(user_id=user_id, kind=kind, in_app=in_app, email=email)
                    session.add(row)
                if "inApp" in change:
                    row.in_app = change["inApp"]
                if "email" in change:
                    row.email = change["email"]
        return self.preferences(who)

    def _preferences(self, session: Session, user_id: int) -> dict[str, tuple[bool, bool]]:
        out = {kind: (k.in_app, k.email) for kind, k in KINDS.items()}
        for row in session.execute(select(NotificationPreference).where(
                NotificationPreference.user_id == user_id)).scalars():
            if row.kind in out:
                out[row.kind] = (row.in_app, row.email)
        return out

    def _preference(self, session: Session, user_id: int, kind: str) -> tuple[bool, bool]:
        row = session.get(NotificationPreference, (user_id, kind))
        default = KINDS[kind]
        return (row.in_app, row.email) if row is not None else (default.in_app, default.email)


def _sessions(count: int) -> str:
    return "Your session was" if count == 1 else f"All {count} of your sessions were"


def _require_user(who: Principal) -> int:
    if who.user_id is None:
        raise ForbiddenError("notifications belong to users, and this API token belongs to no user")
    return who.user_id


def notification_json(row: Notification) -> dict[str, Any]:
    return {"id": row.uuid, "kind": row.kind, "severity": row.severity, "title": row.title, "body": row.body,
            "data": row.data or {}, "read": row.read_at is not None, "readAt": row.read_at, "emailed": row.emailed,
            "createdAt": row.created_at}
