"""The Redis backend of the shared cache, and the fallback to memory that goes with it.

See :mod:`logmail.store.cache` for the contract. Everything that must be atomic across daemons is one
Lua script or one MULTI block, so concurrent processes never see a half-done read-modify-write.
Connection problems surface as :class:`~logmail.store.cache.CacheUnavailableError`, which
:class:`ResilientCache` turns into a fallback to memory.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections.abc import Iterator
from typing import Any
from contextlib import contextmanager
from urllib.parse import urlsplit

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from logmail.store.cache import (Cache, CacheUnavailableError, MemoryCache, RateLimitResult, check_rate, check_ttl,
                                 check_value)

log = logging.getLogger("logmail.cache")

# Errors that mean "Redis cannot serve us right now", as opposed to a bug in the caller. Loading,
# read-only replicas after a failover, OOM and a lost master are all passing states of the server.
_UNAVAILABLE = (
    redis.exceptions.ConnectionError,   # includes BusyLoadingError and AuthenticationError
    redis.exceptions.TimeoutError,
    redis.exceptions.ReadOnlyError,
    redis.exceptions.OutOfMemoryError,
    redis.exceptions.MasterDownError,
    redis.exceptions.NoPermissionError,
)

# Sliding-window log: one sorted-set member per accepted hit, scored by the server's clock in
# microseconds. Using TIME inside the script gives every daemon the same clock, so skew between
# hosts cannot widen the window. Refused hits are not recorded, so a client that keeps hammering
# is let in again as soon as its oldest accepted hit leaves the window.
# ARGV: limit, window (µs), unique member. Returns {allowed, remaining, retry_after (µs)}.
_HIT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local count = redis.call('ZCARD', KEYS[1])
if count < limit then
  redis.call('ZADD', KEYS[1], now, ARGV[3])
  redis.call('PEXPIRE', KEYS[1], math.ceil(window / 1000))
  return {1, limit - count - 1, 0}
end
-- The hit that must leave the window before one more fits (count may exceed a lowered limit).
local blocking = redis.call('ZRANGE', KEYS[1], count - limit, count - limit, 'WITHSCORES')
return {0, 0, tonumber(blocking[2]) + window - now}
"""

# Take the lock if it is free (SET NX PX), or extend it if this owner already holds it. One script
# rather than SET NX followed by a separate extend, so a lease expiring between the two cannot
# make the owner lose a lock nobody else holds.
_ACQUIRE = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
"""

# Compare-and-delete: only the owner may release, and nobody can slip in between the check and the DEL.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def _ms(seconds: float) -> int:
    # Round up: a lease or TTL must never be shorter than asked, and PX 0 is an error.
    return max(1, math.ceil(seconds * 1000))


def redact(url: str) -> str:
    """``url`` without credentials, fit for logs."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}{parts.path}"


class RedisCache:
    """The shared cache in Redis (5.0 or later: the scripts write after TIME, which needs effects replication).

    Keys are ``prefix + key`` for values and counters, ``prefix + "rate:" + key`` for rate-limit
    windows and ``prefix + "lock:" + name`` for locks. Timeouts are short because a slow cache is worse
    than none: :class:`ResilientCache` would rather fall back to memory.
    """

    def __init__(self, url: str, *, prefix: str = "logmail:", connect_timeout: float = 1.0,
                 op_timeout: float = 1.0, health_check_interval: int = 30) -> None:
        self.prefix = prefix
        self.where = redact(url)
        # One immediate retry, on connection errors only: it replaces a pooled connection the server
        # dropped (restart, failover) without a false alarm, yet never repeats a command that timed
        # out (it may have run). redis-py's default would retry ten times with back-off.
        self._client = redis.Redis.from_url(
            url, socket_connect_timeout=connect_timeout, socket_timeout=op_timeout,
            retry=Retry(NoBackoff(), 1, supported_errors=(redis.exceptions.ConnectionError,)),
            health_check_interval=health_check_interval, client_name="logmail")
        self._hit = self._client.register_script(_HIT)
        self._acquire = self._client.register_script(_ACQUIRE)
        self._release = self._client.register_script(_RELEASE)

    def __repr__(self) -> str:
        return f"RedisCache({self.where!r}, prefix={self.prefix!r})"

    @contextmanager
    def _guard(self) -> Iterator[None]:
        try:
            yield
        except _UNAVAILABLE as exc:
            raise CacheUnavailableError(f"Redis at {self.where} is unavailable: {exc}") from exc

    def get(self, key: str) -> bytes | None:
        with self._guard():
            return self._client.get(self.prefix + key)

    def set(self, key: str, value: bytes, ttl: float) -> None:
        check_value(value)
        check_ttl(ttl)
        with self._guard():
            self._client.set(self.prefix + key, value, px=_ms(ttl))

    def delete(self, key: str) -> None:
        with self._guard():
            self._client.delete(self.prefix + key)

    def incr(self, key: str, amount: int = 1, ttl: float | None = None) -> int:
        if ttl is not None:
            check_ttl(ttl)
        full = self.prefix + key
        with self._guard():
            try:
                if ttl is None:
                    return int(self._client.incrby(full, amount))
                # SET NX creates the key with its TTL only if it is missing; MULTI makes the pair atomic,
                # so the TTL is set exactly once, when the key is created.
                pipe = self._client.pipeline(transaction=True)
                pipe.set(full, 0, nx=True, px=_ms(ttl))
                pipe.incrby(full, amount)
                return int(pipe.execute()[1])
            except redis.exceptions.ResponseError as exc:
                if isinstance(exc, _UNAVAILABLE):
                    raise
                raise ValueError(f"cache key {key!r} does not hold an integer: {exc}") from exc

    def hit(self, key: str, limit: int, window: float) -> RateLimitResult:
        check_rate(limit, window)
        with self._guard():
            allowed, remaining, retry_us = self._hit(
                keys=[self.prefix + "rate:" + key],
                args=[limit, math.ceil(window * 1_000_000), os.urandom(8).hex()])
        return RateLimitResult(bool(allowed), int(remaining), max(0.0, int(retry_us) / 1_000_000))

    def acquire(self, name: str, owner: str, ttl: float) -> bool:
        check_ttl(ttl)
        with self._guard():
            return bool(self._acquire(keys=[self.prefix + "lock:" + name], args=[owner, _ms(ttl)]))

    def release(self, name: str, owner: str) -> bool:
        with self._guard():
            return bool(self._release(keys=[self.prefix + "lock:" + name], args=[owner]))

    def ping(self) -> None:
        with self._guard():
            self._client.ping()

    def close(self) -> None:
        self._client.close()
        self._client.connection_pool.disconnect()


class ResilientCache:
    """A shared cache (``primary``, normally :class:`RedisCache`) that falls back to memory while it is down.

    On :class:`CacheUnavailableError` the call is served from ``fallback`` and the cache becomes
    ``degraded``: one warning is logged for the whole outage, and the primary is tried again at most
    every ``retry_interval`` seconds, by one caller while the others keep using memory. When it answers,
    one info message is logged and the primary is used again.

    While degraded, locks only exclude within this process (callers that must never double-run also
    hold a database lease), rate limits are per process, and counters count from zero in memory.
    Two things carry over on recovery: keys set or deleted during the outage are deleted from the
    primary, so a value cached before the outage cannot come back stale (an invalidation must not be
    lost); and a lock granted from memory keeps excluding other owners in this process until it expires
    or is released.
    """

    # Enough for any realistic outage; beyond it a stale value may be served until its TTL.
    MAX_PENDING_INVALIDATIONS = 10_000

    def __init__(self, primary: Cache, fallback: MemoryCache | None = None, *, retry_interval: float = 5.0) -> None:
        if retry_interval < 0:
            raise ValueError("retry_interval must not be negative")
        self.primary = primary
        self.fallback = fallback if fallback is not None else MemoryCache()
        self.retry_interval = retry_interval
        self._state = threading.Lock()
        self._degraded = False
        self._since = 0.0          # when the outage began
        self._next_probe = 0.0
        self._stale: set[str] = set()
        self._stale_overflow = False

    def __repr__(self) -> str:
        return f"ResilientCache({self.primary!r}, degraded={self._degraded})"

    @property
    def degraded(self) -> bool:
        """True while calls are served from the per-process fallback."""
        return self._degraded

    def get(self, key: str) -> bytes | None:
        return self._run("get", key)

    def set(self, key: str, value: bytes, ttl: float) -> None:
        self._run("set", key, value, ttl, stale_key=key)

    def delete(self, key: str) -> None:
        self._run("delete", key, stale_key=key)

    def incr(self, key: str, amount: int = 1, ttl: float | None = None) -> int:
        return self._run("incr", key, amount, ttl)

    def hit(self, key: str, limit: int, window: float) -> RateLimitResult:
        return self._run("hit", key, limit, window)

    def acquire(self, name: str, owner: str, ttl: float) -> bool:
        if self._primary_usable():
            holder = self.fallback.lock_owner(name)
            if holder is not None and holder != owner:
                return False   # granted from memory during the outage and not yet expired
            try:
                return self.primary.acquire(name, owner, ttl)
            except CacheUnavailableError as exc:
                self._failed(exc)
        return self.fallback.acquire(name, owner, ttl)

    def release(self, name: str, owner: str) -> bool:
        # Released in both places: the lease may have been granted by either side of an outage.
        released = False
        if self._primary_usable():
            try:
                released = self.primary.release(name, owner)
            except CacheUnavailableError as exc:
                self._failed(exc)
        return self.fallback.release(name, owner) or released

    def ping(self) -> None:
        """Check the primary if it is due; never raises for an outage (read ``degraded`` for health)."""
        if self._primary_usable():
            try:
                self.primary.ping()
            except CacheUnavailableError as exc:
                self._failed(exc)

    def close(self) -> None:
        self.primary.close()
        self.fallback.close()

    def _run(self, op: str, *args: Any, stale_key: str | None = None) -> Any:
        if self._primary_usable():
            try:
                return getattr(self.primary, op)(*args)
            except CacheUnavailableError as exc:
                self._failed(exc)
        if stale_key is not None:
            self._note_stale(stale_key)
        return getattr(self.fallback, op)(*args)

    def _primary_usable(self) -> bool:
        with self._state:
            if not self._degraded:
                return True
            now = time.monotonic()
            if now < self._next_probe:
                return False
            # This caller probes; pushing the next probe out first keeps the others on the fallback
            # instead of all waiting on a connect timeout together.
            self._next_probe = now + self.retry_interval
        return self._probe()

    def _probe(self) -> bool:
        try:
            self.primary.ping()
            self._replay_invalidations()
        except CacheUnavailableError as exc:
            log.debug("shared cache %r still unavailable: %s", self.primary, exc)
            return False
        return True

    def _replay_invalidations(self) -> None:
        # Loop until no key is pending under the lock: other callers may still write to the fallback
        # (and note keys) while this one deletes, and recovery must not leave any of them behind.
        while True:
            with self._state:
                keys, self._stale = self._stale, set()
                if not keys:
                    if not self._degraded:
                        return
                    self._degraded = False
                    overflowed, self._stale_overflow = self._stale_overflow, False
                    outage = time.monotonic() - self._since
                    break
            try:
                for key in keys:
                    self.primary.delete(key)
            except CacheUnavailableError:
                with self._state:
                    self._stale |= keys
                raise
        log.info("shared cache %r is reachable again after %.1f s; limits, counters and locks are shared again",
                 self.primary, outage)
        if overflowed:
            log.warning("more than %d keys were written during the outage; some of them may read stale from "
                        "the shared cache until their TTL runs out", self.MAX_PENDING_INVALIDATIONS)

    def _note_stale(self, key: str) -> None:
        with self._state:
            if len(self._stale) < self.MAX_PENDING_INVALIDATIONS:
                self._stale.add(key)
            else:
                self._stale_overflow = True

    def _failed(self, exc: CacheUnavailableError) -> None:
        with self._state:
            now = time.monotonic()
            self._next_probe = now + self.retry_interval
            if self._degraded:
                return
            self._degraded = True
            self._since = now
        log.warning("%s; carrying on with per-process memory (rate limits and locks now apply per process) "
                    "and trying again every %g s", str(exc).rstrip("."), self.retry_interval)
