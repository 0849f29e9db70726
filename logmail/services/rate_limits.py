"""Request and login-attempt limits, counted in the shared cache.

The cache's ``hit()`` is an exact sliding window, shared through Redis by every daemon (see
:mod:`logmail.store.cache`), so logmail needs no separate rate-limit library: a limit of 50 a minute
holds across processes, and while Redis is away each daemon falls back to counting alone.
"""

from __future__ import annotations

import hashlib

from logmail.config import AuthSettings
from logmail.errors import RateLimitedError, TooManyAttemptsError
from logmail.store.cache import Cache

REQUEST_WINDOW_SECONDS = 60.0


class RateLimits:
    def __init__(self, cache: Cache, settings: AuthSettings) -> None:
        self.cache = cache
        self.settings = settings

    def request(self, key: str) -> None:
        """Count one request for ``key`` (a user, a token or an address); 429 when over the limit."""
        limit = self.settings.rate_limit_per_minute
        if limit <= 0:
            return
        result = self.cache.hit("rate:" + key, limit, REQUEST_WINDOW_SECONDS)
        if not result.allowed:
            raise RateLimitedError(f"more than {limit} requests a minute; slow down and retry later",
                                   retry_after=result.retry_after)

    def login_attempt(self, email: str, ip: str) -> None:
        """Count one login attempt for the address and for the account; TooManyAttemptsError when over.

        The address is counted first, so one address guessing at many accounts is stopped by its own
        limit without using up theirs.
        """
        s = self.settings
        window = s.login_attempt_window_minutes * 60.0
        minutes = s.login_attempt_window_minutes
        by_address = self.cache.hit("login:address:" + ip, s.login_attempts_per_address, window)
        if not by_address.allowed:
            raise TooManyAttemptsError(f"too many login attempts from this address in {minutes} minutes; "
                                       "try again later", retry_after=by_address.retry_after)
        # A digest, not the address: emails do not belong in cache keys or Redis dumps.
        account = hashlib.sha256(email.encode("utf-8", "surrogatepass")).hexdigest()[:32]
        by_account = self.cache.hit("login:account:" + account, s.login_attempts_per_account, window)
        if not by_account.allowed:
            raise TooManyAttemptsError(f"too many login attempts for this account in {minutes} minutes; "
                                       "try again later", retry_after=by_account.retry_after)
