"""The shared cache: rate limits, counters, locks (leases) and short-lived values, shared by every daemon.

One daemon needs nothing but memory (:class:`MemoryCache`, the default when ``cache.url`` is empty).
Several daemons on shared engines use Redis (``redis://...``): :func:`open_cache` then returns a
:class:`ResilientCache`, which serves from Redis while it answers and from per-process memory while it
does not, logging once when Redis goes away and once when it comes back.

While degraded, everything is per process: a rate limit of N lets N through *per daemon*, counters
restart from zero, and a lock only excludes threads of the same daemon. Callers that must never run
twice (scheduled jobs, account syncs) therefore also hold a lease in the database; this cache only
makes the common case cheap. Likewise quota counters here are a fast path, reconciled from the database.

Keys are strings and values are bytes. Callers namespace their keys (``"policy:..."``, ``"token:..."``);
rate-limit windows and locks live in their own namespaces, so ``hit("x")`` never collides with ``get("x")``.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import OrderedDict, deque
from dataclasses import dataclass
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from logmail.errors import ConfigError, TemporaryError

if TYPE_CHECKING:
    from logmail.store.cache_redis import RedisCache, ResilientCache

log = logging.getLogger("logmail.cache")

__all__ = ["Cache", "CacheUnavailableError", "MemoryCache", "RateLimitResult", "RedisCache", "ResilientCache",
           "open_cache"]


class CacheUnavailableError(TemporaryError):
    """The shared cache cannot be reached (connection refused, timeout, failover in progress)."""

    error = "Cache unavailable"


@dataclass(frozen=True)
class RateLimitResult:
    allowed: bool
    remaining: int       # hits still allowed in the current window after this one
    retry_after: float   # seconds until a hit would be allowed (0 when allowed)


class Cache(Protocol):
    def get(self, key: str) -> bytes | None: ...

    def set(self, key: str, value: bytes, ttl: float) -> None: ...

    def delete(self, key: str) -> None: ...

    def incr(self, key: str, amount: int = 1, ttl: float | None = None) -> int:
        """Add ``amount`` and return the new value; ``ttl`` applies only when this call creates the key."""

    def hit(self, key: str, limit: int, window: float) -> RateLimitResult:
        """Record one hit if fewer than ``limit`` were accepted in the last ``window`` seconds (sliding window)."""

    def acquire(self, name: str, owner: str, ttl: float) -> bool:
        """Take the lease ``name`` for ``ttl`` seconds; the current owner calling again extends it."""

    def release(self, name: str, owner: str) -> bool:
        """Give the lease back; False (and nothing changes) unless ``owner`` holds it."""

    def ping(self) -> None: ...

    def close(self) -> None: ...


def check_value(value: Any) -> None:
    # Both backends accept exactly bytes, so code tested against memory behaves the same on Redis
    # (redis-py would silently encode a str or an int).
    if not isinstance(value, bytes):
        raise TypeError(f"cache values are bytes, not {type(value).__name__}")


def check_ttl(ttl: float) -> None:
    if not ttl > 0:
        raise ValueError(f"a cache TTL must be positive, not {ttl!r}")


def check_rate(limit: int, window: float) -> None:
    if limit < 1 or not window > 0:
        raise ValueError(f"a rate limit needs limit >= 1 and a positive window, not {limit!r} per {window!r} s")


class MemoryCache:
    """The cache in this process: thread-safe, expiring, and bounded.

    At most ``max_entries`` values and as many rate-limit windows are kept. Expired entries are swept
    every ``sweep_interval`` seconds and whenever a cap is reached; if live entries still exceed it,
    the least recently used go (a warning says so, as that loosens limits). Live locks are never
    evicted. The rate limit is an exact sliding window: a deque of accepted hit times per key.
    """

    def __init__(
        self,
        *,
        max_entries: int = 100_000,
        sweep_interval: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_entries = max_entries
        self._sweep_interval = sweep_interval
        self._clock = clock  # injectable so tests can move time instead of sleeping
        self._lock = threading.Lock()
        self._values: OrderedDict[str, tuple[bytes, float]] = OrderedDict()   # key -> (value, expires)
        self._windows: OrderedDict[str, tuple[float, deque[float]]] = OrderedDict()  # key -> (window, hits)
        self._locks: dict[str, tuple[str, float]] = {}   # name -> (owner, expires)
        self._next_sweep = self._clock() + sweep_interval
        self._next_eviction_warning = 0.0

    def __repr__(self) -> str:
        return f"MemoryCache(max_entries={self.max_entries})"

    def __len__(self) -> int:
        """Entries held, live or not yet swept (for tests and metrics)."""
        with self._lock:
            return len(self._values) + len(self._windows) + len(self._locks)

    def get(self, key: str) -> bytes | None:
        with self._lock:
            item = self._values.get(key)
            if item is None:
                return None
            if item[1] <= self._clock():
                del self._values[key]
                return None
            self._values.move_to_end(key)
            return item[0]

    def set(self, key: str, value: bytes, ttl: float) -> None:
        check_value(value)
        check_ttl(ttl)
        with self._lock:
            now = self._clock()
            self._values[key] = (value, now + ttl)
            self._values.move_to_end(key)
            self._housekeep(now)

    def delete(self, key: str) -> None:
        with self._lock:
            self._values.pop(key, None)

    def incr(self, key: str, amount: int = 1, ttl: float | None = None) -> int:
        if ttl is not None:
            check_ttl(ttl)
        with self._lock:
            now = self._clock()
            item = self._values.get(key)
            if item is None or item[1] <= now:
                current, expires = 0, (now + ttl if ttl is not None else math.inf)
            else:
                try:
                    current = int(item[0])
                except ValueError:
                    raise ValueError(f"cache key {key!r} does not hold an integer") from None
                expires = item[1]
            current += amount
            # Stored as decimal bytes, as Redis does, so get() after incr() reads the same on both backends.
            self._values[key] = (str(current).encode(), expires)
            self._values.move_to_end(key)
            self._housekeep(now)
            return current

    def hit(self, key: str, limit: int, window: float) -> RateLimitResult:
        check_rate(limit, window)
        with self._lock:
            now = self._clock()
            entry = self._windows.get(key)
            hits: deque[float] = entry[1] if entry is not None else deque()
            while hits and hits[0] <= now - window:
                hits.popleft()
            if len(hits) < limit:
                hits.append(now)
                self._windows[key] = (window, hits)
                self._windows.move_to_end(key)
                self._housekeep(now)
                return RateLimitResult(True, limit - len(hits), 0.0)
            # The hit that must leave the window before one more fits (there may be more than ``limit``
            # if the caller lowered it).
            blocking = hits[len(hits) - limit]
            return RateLimitResult(False, 0, max(0.0, blocking + window - now))

    def acquire(self, name: str, owner: str, ttl: float) -> bool:
        check_ttl(ttl)
        with self._lock:
            now = self._clock()
            held = self._locks.get(name)
            if held is not None and held[1] > now and held[0] != owner:
                return False
            self._locks[name] = (owner, now + ttl)
            self._housekeep(now)
            return True

    def release(self, name: str, owner: str) -> bool:
        with self._lock:
            held = self._locks.get(name)
            if held is None or held[0] != owner or held[1] <= self._clock():
                return False
            del self._locks[name]
            return True

    def lock_owner(self, name: str) -> str | None:
        """Who holds the lease ``name`` now, if anyone."""
        with self._lock:
            held = self._locks.get(name)
            return held[0] if held is not None and held[1] > self._clock() else None

    def ping(self) -> None:
        pass

    def close(self) -> None:
        with self._lock:
            self._values.clear()
            self._windows.clear()
            self._locks.clear()

    def _housekeep(self, now: float) -> None:
        # Called with the lock held after every insert. A full sweep is O(n), so it runs on a timer or
        # when a cap is hit; eviction then goes down to 90 % of the cap so the next one is far away.
        over = (len(self._values) > self.max_entries or len(self._windows) > self.max_entries
                or len(self._locks) > self.max_entries)
        if not over and now < self._next_sweep:
            return
        self._next_sweep = now + self._sweep_interval
        for key in [k for k, (_, expires) in self._values.items() if expires <= now]:
            del self._values[key]
        for key in [k for k, (window, hits) in self._windows.items() if not hits or hits[-1] <= now - window]:
            del self._windows[key]
        for name in [n for n, (_, expires) in self._locks.items() if expires <= now]:
            del self._locks[name]
        low_water = int(self.max_entries * 0.9)
        evicted = 0
        for table in (self._values, self._windows):
            while len(table) > low_water:
                table.popitem(last=False)
                evicted += 1
        if evicted and now >= self._next_eviction_warning:
            self._next_eviction_warning = now + 60.0
            log.warning("memory cache full: evicted %d live entries (max_entries=%d); limits and counters "
                        "for those keys restart from zero", evicted, self.max_entries)


def open_cache(url: str, *, prefix: str = "logmail:", retry_interval: float = 5.0) -> Cache:
    """The cache named by ``cache.url``: memory when empty, Redis with a memory fallback for ``redis(s)://``."""
    url = url.strip()
    if not url:
        return MemoryCache()
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme not in ("redis", "rediss"):
        shown = f"scheme {scheme!r}" if scheme else "no scheme"
        raise ConfigError(f"cache.url has {shown}: use redis://host:6379/0 or rediss://host:6380/0, "
                          "or leave it empty for in-process memory (one daemon only)")
    from logmail.store.cache_redis import RedisCache, ResilientCache, redact

    try:
        primary = RedisCache(url, prefix=prefix)
    except ValueError as exc:
        raise ConfigError(f"cache.url {redact(url)} is not a usable Redis URL: {exc}") from exc
    cache = ResilientCache(primary, MemoryCache(), retry_interval=retry_interval)
    # Find out now, so an unreachable Redis is reported at start-up rather than on the first request.
    cache.ping()
    return cache


def __getattr__(name: str) -> Any:
    # RedisCache and ResilientCache live in their own module and are imported on first use: a
    # memory-only daemon never loads redis-py, and cache_redis can import this module without a cycle.
    if name in ("RedisCache", "ResilientCache"):
        from logmail.store import cache_redis

        return getattr(cache_redis, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
