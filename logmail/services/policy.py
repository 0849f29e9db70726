"""The admission decision: may this recipient's mail come in, and into which organisation?

Every entrance asks the same question here: RCPT at the SMTP and LMTP listeners, the Postfix
policy service, ``POST /policy/check`` and ``POST /ingest``. In local mode every address is caught
into the built-in organisation on the unlimited tier. In platform mode:

=====================================  ===========================
unknown recipient                      550 5.1.1
organisation suspended                 550 5.7.1
monthly quota of received mail reached 552 5.2.2
storage full                           552 5.2.2
message larger than the tier allows    552 5.3.4
per-minute mail rate exceeded          451 4.7.1
=====================================  ===========================

Quotas are measured against stored mail: messages accepted but still in the ingest queue are not
yet counted, so a burst may overshoot a monthly quota by what is queued.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import select

from logmail.store import addresses as address_repo
from logmail.store import usage as usage_repo
from logmail.store.cache import Cache
from logmail.store.database import Database
from logmail.store.models import Organization
from logmail.services.tiers import TierService

RATE_WINDOW_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class Decision:
    code: int
    status: str
    text: str
    reason: str = "ok"
    organization_id: int | None = None
    address_id: int | None = None

    @property
    def accepted(self) -> bool:
        return self.code < 400

    @property
    def temporary(self) -> bool:
        return 400 <= self.code < 500

    def smtp_reply(self) -> str:
        return f"{self.code} {self.status} {self.text}"

    def postfix_action(self) -> str:
        # DUNNO lets Postfix's later restrictions still have their say; a refusal is the reply itself.
        return "DUNNO" if self.accepted else self.smtp_reply()

    def to_json(self) -> dict:
        return {"action": "accept" if self.accepted else ("defer" if self.temporary else "reject"),
                "code": self.code, "status": self.status, "message": self.text, "reason": self.reason}


def accept(organization_id: int, address_id: int | None = None) -> Decision:
    return Decision(250, "2.1.5", "Recipient OK", "ok", organization_id, address_id)


@dataclass(frozen=True, slots=True)
class _OrgState:
    status: str
    tier: str
    storage_bytes: int
    emails_this_month: int
    period: str


class PolicyService:
    def __init__(self, db: Database, cache: Cache, tiers: TierService, *, platform: bool,
                 default_organization_id: int, cache_seconds: float = 5.0,
                 clock: Callable[[], int] | None = None) -> None:
        self.db = db
        self.cache = cache
        self.tiers = tiers
        self.platform = platform
        self.default_organization_id = default_organization_id
        self.cache_seconds = cache_seconds
        self._clock = clock or (lambda: int(time.time() * 1000))
        self._lock = threading.Lock()
        self._addresses: dict[str, tuple[float, tuple[int, int] | None]] = {}
        self._orgs: dict[int, tuple[float, _OrgState | None]] = {}

    # -- the questions -----------------------------------------------------------------------

    def check_recipient(self, recipient: str, *, size: int | None = None, count: bool = True) -> Decision:
        """May mail for ``recipient`` come in (``size``: the declared size, if known)?

        ``count`` records the recipient against the per-minute rate; front doors count, a second look
        at the same mail (LMTP after Postfix's policy check) does not.
        """
        if not self.platform:
            return accept(self.default_organization_id)
        address = address_repo.normalise(recipient)
        owner = self._resolve(address)
        if owner is None:
            return Decision(550, "5.1.1", f"<{address}>: Recipient address rejected: no such address here",
                            "unknown_recipient")
        organization_id, address_id = owner
        return self.check_organization(organization_id, size=size, count=count, address_id=address_id)

    def check_organization(self, organization_id: int, *, size: int | None = None, count: bool = True,
                           address_id: int | None = None) -> Decision:
        """The organisation-level limits alone (``POST /ingest`` knows its organisation already)."""
        if not self.platform:
            return accept(organization_id, address_id)
        state = self._org_state(organization_id)
        if state is None:
            return Decision(550, "5.1.1", "Recipient address rejected: no such organisation", "unknown_recipient")
        if state.status != "active":
            return Decision(550, "5.7.1", "Recipient's organisation is suspended; mail is not accepted",
                            "suspended", organization_id)
        tier = self.tiers.get(state.tier)
        if tier.emails_per_month is not None and state.emails_this_month >= tier.emails_per_month:
            return Decision(552, "5.2.2", f"Monthly quota of {tier.emails_per_month} messages reached",
                            "monthly_quota", organization_id)
        if tier.storage_bytes is not None and state.storage_bytes >= tier.storage_bytes:
            return Decision(552, "5.2.2", "Mailbox storage full", "storage_full", organization_id)
        if size is not None and tier.max_message_size is not None and size > tier.max_message_size:
            return Decision(552, "5.3.4", f"Message too big: at most {tier.max_message_size} bytes accepted",
                            "too_big", organization_id)
        if count and tier.emails_per_minute is not None:
            result = self.cache.hit(f"rate:mail:{organization_id}", tier.emails_per_minute, RATE_WINDOW_SECONDS)
            if not result.allowed:
                return Decision(451, "4.7.1", f"Rate limit of {tier.emails_per_minute} messages a minute "
                                "exceeded; try again later", "rate_limited", organization_id)
        return accept(organization_id, address_id)

    def check_size(self, organization_id: int, size: int) -> Decision:
        """After DATA: the real size against the tier (the declared SIZE may be absent or wrong)."""
        return self.check_organization(organization_id, size=size, count=False)

    def organization_tier(self, organization_id: int):
        """The organisation's tier (cached like every other lookup here), or None if it is gone."""
        state = self._org_state(organization_id)
        return None if state is None else self.tiers.get(state.tier)

    # -- lookups, remembered for ``cache_seconds`` ----------------------------------------------------

    def forget(self, *, address: str | None = None, organization_id: int | None = None) -> None:
        """Drop what this process remembers (after a change it made itself); None forgets everything."""
        with self._lock:
            if address is None and organization_id is None:
                self._addresses.clear()
                self._orgs.clear()
            if address is not None:
                self._addresses.clear()  # a catch-all or plus form may have answered for many addresses
            if organization_id is not None:
                self._orgs.pop(organization_id, None)

    def _resolve(self, address: str) -> tuple[int, int] | None:
        now = time.monotonic()
        with self._lock:
            hit = self._addresses.get(address)
        if hit is not None and hit[0] > now:
            return hit[1]
        with self.db.connect() as conn:
            owner = address_repo.resolve(conn, address)
        if self.cache_seconds > 0:
            with self._lock:
                if len(self._addresses) > 100_000:
                    self._addresses.clear()
                self._addresses[address] = (now + self.cache_seconds, owner)
        return owner

    def _org_state(self, organization_id: int) -> _OrgState | None:
        now = time.monotonic()
        period = usage_repo.period_of(self._clock())
        with self._lock:
            hit = self._orgs.get(organization_id)
        if hit is not None and hit[0] > now and (hit[1] is None or hit[1].period == period):
            return hit[1]
        with self.db.connect() as conn:
            row = conn.execute(
                select(Organization.status, Organization.tier, Organization.storage_bytes)
                .where(Organization.id == organization_id)
            ).one_or_none()
            state = None
            if row is not None:
                state = _OrgState(row.status, row.tier, row.storage_bytes,
                                  usage_repo.emails_this_month(conn, organization_id, self._clock()), period)
        if self.cache_seconds > 0:
            with self._lock:
                self._orgs[organization_id] = (now + self.cache_seconds, state)
        return state
