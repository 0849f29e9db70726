"""The listeners' side of the admission decision: ask the policy off the event loop, and turn
trouble into "try again later" instead of a crash.

The policy itself (``logmail.services.policy``) is synchronous and may touch SQL, so every question
runs in a worker thread. A decision that cannot be made (the database is away, or anything else goes
wrong) comes back as ``None``: SMTP and LMTP then answer ``451 4.3.0`` and the Postfix policy service
says nothing and hangs up. Trouble is logged once per outage, not once per recipient.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

from logmail.errors import LogmailError
from logmail.services.policy import Decision, PolicyService

# A recipient check that could not be made; the sender keeps the mail and asks again.
POLICY_TROUBLE = "451 4.3.0 Recipient check temporarily unavailable, please try again later"


class Admission:
    """One listener's way to the policy (each listener has its own, so each logs its own outage)."""

    def __init__(self, policy: PolicyService | None, log: logging.Logger, *, meanwhile: str = "answering 451") -> None:
        self.policy = policy
        self.log = log
        self.meanwhile = meanwhile  # what the listener does while it cannot decide, for the log
        self._troubled = False

    @property
    def platform(self) -> bool:
        """False in local mode (or without a policy): every recipient is caught, nothing is asked."""
        return self.policy is not None and self.policy.platform

    async def recipient(self, address: str, *, size: int | None = None, count: bool = True) -> Decision | None:
        assert self.policy is not None
        return await self._ask(self.policy.check_recipient, address, size=size, count=count)

    async def sizes(self, organization_ids: Iterable[int], size: int) -> dict[int, Decision] | None:
        """The real size after DATA against each organisation's tier (and its other limits)."""
        assert self.policy is not None
        policy, orgs = self.policy, sorted(set(organization_ids))
        return await self._ask(lambda: {org: policy.check_size(org, size) for org in orgs})

    async def _ask(self, fn, *args, **kwargs):
        try:
            result = await asyncio.to_thread(fn, *args, **kwargs)
        except LogmailError as exc:
            self._note_trouble(exc, expected=True)
            return None
        except Exception as exc:  # a decision we cannot make is a "later", never a crash or a yes
            self._note_trouble(exc, expected=False)
            return None
        if self._troubled:
            self.log.info("recipient checks work again")
            self._troubled = False
        return result

    def _note_trouble(self, exc: BaseException, *, expected: bool) -> None:
        if self._troubled:
            return
        self._troubled = True
        if expected:
            self.log.warning("cannot check recipients, %s until it recovers: %s", self.meanwhile, exc)
        else:
            self.log.warning("cannot check recipients, %s until it recovers: %s", self.meanwhile,
                             type(exc).__name__, exc_info=exc)


def declared_size(mail_options: Iterable[str]) -> int | None:
    """The ``SIZE=`` the client declared in MAIL FROM (aiosmtpd keeps the options upper-cased)."""
    for option in mail_options:
        name, _, value = option.partition("=")
        if name.upper() == "SIZE" and value.isdigit():
            return int(value) or None
    return None


def build_routes(recipients: list[str], organizations: list[int]) -> dict[int, list[str]]:
    """Organisation → its admitted envelope recipients, in RCPT order, each address once."""
    routes: dict[int, list[str]] = {}
    for address, org in zip(recipients, organizations):
        rcpts = routes.setdefault(org, [])
        if address not in rcpts:
            rcpts.append(address)
    return routes


def first_refusal(decisions: Iterable[Decision]) -> Decision | None:
    """The refusal to give for a whole message: a permanent one first (a 4xx would only make the
    sender retry into the same 5xx), then a temporary one; None when everyone accepts."""
    refused = [d for d in decisions if not d.accepted]
    if not refused:
        return None
    return min(refused, key=lambda d: (d.temporary, d.code))
