"""The shared cache: one behavioural set run on memory and on Redis, then Redis outages and recovery.

Redis tests use the shared server on 127.0.0.1:6379 under a prefix unique to this run and delete only
their own keys; tests that stop Redis use a private redis-server (tests/redis_peer.py).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Iterator

import pytest
import redis

from logmail.errors import ConfigError, TemporaryError
from logmail.store.cache import (CacheUnavailableError, MemoryCache, RateLimitResult, RedisCache, ResilientCache,
                                 open_cache)
try:
    from tests.redis_peer import RedisPeer, free_port
except ImportError:  # tests/ itself is on sys.path
    from redis_peer import RedisPeer, free_port

SHARED_URL = "redis://127.0.0.1:6379/0"
RUN_PREFIX = f"logmail-test:{uuid.uuid4().hex[:12]}:"


def _drop_keys(client: redis.Redis, prefix: str) -> None:
    # SCAN + DEL on our own prefix only: the server is shared, FLUSHDB is not ours to run.
    batch = []
    for key in client.scan_iter(match=prefix + "*", count=500):
        batch.append(key)
        if len(batch) >= 500:
            client.delete(*batch)
            batch.clear()
    if batch:
        client.delete(*batch)


@pytest.fixture
def prefix() -> Iterator[str]:
    prefix = f"{RUN_PREFIX}{uuid.uuid4().hex[:8]}:"
    yield prefix
    client = redis.Redis.from_url(SHARED_URL, socket_timeout=2)
    try:
        _drop_keys(client, prefix)
    finally:
        client.close()


@pytest.fixture
def raw() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(SHARED_URL, socket_timeout=2)
    yield client
    client.close()


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def cache(request) -> Iterator:
    if request.param == "memory":
        c = MemoryCache()
    else:
        c = RedisCache(SHARED_URL, prefix=request.getfixturevalue("prefix"))
    yield c
    c.close()


@pytest.fixture
def cache_log() -> Iterator[list[logging.LogRecord]]:
    """Records of ``logmail.cache``, captured on the logger itself so that nothing upstream (a
    non-propagating ``logmail`` logger set up by another test) can hide them."""
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.DEBUG)
    handler.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger("logmail.cache")
    level = logger.level
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    yield records
    logger.removeHandler(handler)
    logger.setLevel(level)


def warnings_in(records: list[logging.LogRecord]) -> list[str]:
    return [r.getMessage() for r in records if r.levelno >= logging.WARNING]


def infos_in(records: list[logging.LogRecord]) -> list[str]:
    return [r.getMessage() for r in records if r.levelno == logging.INFO]


# --- the behaviour both backends share -------------------------------------------------------------------

def test_get_set_and_expiry(cache):
    assert cache.get("missing") is None
    cache.set("k", b"v1", 0.3)
    assert cache.get("k") == b"v1"
    cache.set("k", b"\x00v2", 0.3)
    assert cache.get("k") == b"\x00v2"
    time.sleep(0.4)
    assert cache.get("k") is None
    with pytest.raises(TypeError):
        cache.set("k", "text", 1)
    with pytest.raises(ValueError):
        cache.set("k", b"v", 0)


def test_delete(cache):
    cache.delete("never-set")
    cache.set("k", b"v", 10)
    cache.delete("k")
    assert cache.get("k") is None


def test_incr_counts_and_sets_ttl_only_on_creation(cache):
    assert cache.incr("n") == 1
    assert cache.incr("n", 5) == 6
    assert cache.incr("n", -2) == 4
    assert cache.get("n") == b"4"
    assert cache.incr("t", ttl=0.4) == 1
    time.sleep(0.2)
    assert cache.incr("t", ttl=0.4) == 2   # does not push the expiry out
    time.sleep(0.3)
    assert cache.get("t") is None
    assert cache.incr("t", ttl=0.4) == 1
    cache.set("text", b"abc", 10)
    with pytest.raises(ValueError):
        cache.incr("text")


def test_rate_limit_allows_limit_then_refuses_then_allows_again(cache):
    results = [cache.hit("user:1", 3, 0.5) for _ in range(3)]
    assert [r.allowed for r in results] == [True, True, True]
    assert [r.remaining for r in results] == [2, 1, 0]
    assert all(r.retry_after == 0 for r in results)
    refused = cache.hit("user:1", 3, 0.5)
    assert isinstance(refused, RateLimitResult)
    assert not refused.allowed and refused.remaining == 0
    assert 0.3 < refused.retry_after <= 0.5
    assert cache.hit("user:2", 3, 0.5).allowed   # keys are independent
    time.sleep(refused.retry_after + 0.05)
    assert cache.hit("user:1", 3, 0.5).allowed


def test_rate_limit_window_slides(cache):
    assert cache.hit("k", 3, 0.6).allowed
    time.sleep(0.3)
    assert cache.hit("k", 3, 0.6).allowed
    assert cache.hit("k", 3, 0.6).allowed
    refused = cache.hit("k", 3, 0.6)
    assert not refused.allowed
    assert 0.1 < refused.retry_after <= 0.31   # when the first hit leaves, not when the last one does
    time.sleep(refused.retry_after + 0.05)
    assert cache.hit("k", 3, 0.6).allowed      # exactly one slot came free
    again = cache.hit("k", 3, 0.6)
    assert not again.allowed and 0.1 < again.retry_after < 0.3


def test_rate_limits_do_not_collide_with_values_or_locks(cache):
    cache.set("x", b"value", 10)
    assert cache.hit("x", 1, 10).allowed
    assert cache.acquire("x", "me", 10)
    assert cache.get("x") == b"value"
    with pytest.raises(ValueError):
        cache.hit("x", 0, 10)


def test_lock_acquire_extend_release_only_by_owner(cache):
    assert cache.acquire("job", "A", 10)
    assert not cache.acquire("job", "B", 10)
    assert cache.acquire("job", "A", 10)        # the owner extends
    assert not cache.release("job", "B")
    assert not cache.acquire("job", "B", 10)    # B's release did nothing
    assert cache.release("job", "A")
    assert not cache.release("job", "A")
    assert cache.acquire("job", "B", 10)


def test_lock_expires_and_extension_moves_the_expiry(cache):
    assert cache.acquire("lease", "A", 0.3)
    time.sleep(0.2)
    assert cache.acquire("lease", "A", 0.3)     # now held until ~0.5 s
    time.sleep(0.2)
    assert not cache.acquire("lease", "B", 0.3)  # the original 0.3 s are over; the extension holds
    time.sleep(0.2)
    assert cache.acquire("lease", "B", 0.3)
    assert not cache.release("lease", "A")


def test_concurrent_hits_allow_exactly_the_limit(cache):
    allowed = []
    start = threading.Barrier(8)

    def worker():
        start.wait()
        allowed.append(sum(cache.hit("org:1", 100, 60).allowed for _ in range(25)))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(allowed) == 100


def test_concurrent_increments_are_not_lost(cache):
    def worker():
        for _ in range(50):
            cache.incr("quota", ttl=60)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert cache.get("quota") == b"400"


# --- Redis only: sharing between processes ----------------------------------------------------------------

@pytest.mark.redis
def test_two_redis_caches_share_values_limits_and_locks(prefix, raw):
    a, b = RedisCache(SHARED_URL, prefix=prefix), RedisCache(SHARED_URL, prefix=prefix)
    try:
        a.set("policy:1", b"allow", 10)
        assert b.get("policy:1") == b"allow"
        assert raw.get(prefix + "policy:1") == b"allow"   # keys are prefixed
        assert a.hit("user:9", 2, 10).allowed and b.hit("user:9", 2, 10).allowed
        assert not a.hit("user:9", 2, 10).allowed
        assert raw.zcard(prefix + "rate:user:9") == 2
        assert a.acquire("sync:acct", "daemon-a", 10)
        assert not b.acquire("sync:acct", "daemon-b", 10)
        assert raw.get(prefix + "lock:sync:acct") == b"daemon-a"
        assert not b.release("sync:acct", "daemon-b")
        assert b.release("sync:acct", "daemon-a")       # the owner's identity, not the object, holds it
        assert b.acquire("sync:acct", "daemon-b", 10)

        counts = []

        def worker(c):
            counts.append(sum(c.hit("org:2", 100, 60).allowed for _ in range(30)))

        threads = [threading.Thread(target=worker, args=(a if i % 2 else b,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sum(counts) == 100
    finally:
        a.close()
        b.close()


def test_redis_connection_problems_raise_cache_unavailable():   # needs no server: nothing listens there
    c = RedisCache(f"redis://127.0.0.1:{free_port()}/0", prefix="x:")
    try:
        with pytest.raises(CacheUnavailableError) as caught:
            c.get("k")
        assert isinstance(caught.value, TemporaryError)
    finally:
        c.close()


# --- open_cache -------------------------------------------------------------------------------------------

def test_open_cache_memory_and_bad_urls():
    assert isinstance(open_cache(""), MemoryCache)
    for url in ("memcached://host:11211", "localhost:6379", "http://redis"):
        with pytest.raises(ConfigError, match="redis://"):
            open_cache(url)
    with pytest.raises(ConfigError) as caught:
        open_cache("redis://:s3cret@127.0.0.1:notaport/0")
    assert "s3cret" not in caught.value.message


# --- resilience: a private server that we stop and start ---------------------------------------------------

@pytest.fixture
def peer() -> Iterator[RedisPeer]:
    p = RedisPeer().start()
    yield p
    p.stop()


def wait_until_recovered(cache: ResilientCache, timeout: float = 5.0) -> float:
    started = time.monotonic()
    while cache.degraded:
        assert time.monotonic() - started < timeout, "the cache never went back to Redis"
        cache.get("probe")
        time.sleep(0.01)
    return time.monotonic() - started


@pytest.mark.redis
def test_resilient_cache_falls_back_logs_once_and_recovers(peer, cache_log):
    cache = open_cache(peer.url, prefix="t:", retry_interval=0.2)
    raw = redis.Redis.from_url(peer.url, socket_timeout=2)
    try:
        assert not cache.degraded
        cache.set("k", b"v", 30)
        cache.hit("r", 5, 30)
        assert cache.acquire("job", "A", 30)
        assert raw.get("t:k") == b"v" and raw.exists("t:rate:r") and raw.get("t:lock:job") == b"A"

        # Four threads are busy when Redis goes away, as in a daemon, and keep going for several retry
        # intervals, so both concurrent first failures and failed probes must stay quiet.
        stop = threading.Event()
        calls, errors = [], []

        def worker(n):
            try:
                while not stop.is_set():
                    # No read-your-write check here: a value written to Redis just before it died is not
                    # in the fallback, and that is by design.
                    cache.set(f"k{n}", b"x", 30)
                    cache.get(f"k{n}")
                    cache.incr("c")
                    assert cache.hit("r2", 10**6, 30).allowed
                    calls.append(4)
            except Exception as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        time.sleep(0.05)
        peer.stop()
        time.sleep(0.7)
        stop.set()
        for t in threads:
            t.join()
        assert not errors, errors
        assert cache.degraded and sum(calls) > 100
        cache.set("k2", b"x", 30)
        assert cache.get("k2") == b"x"
        assert cache.acquire("job2", "A", 30) and not cache.acquire("job2", "B", 30)   # per process now
        assert len(warnings_in(cache_log)) == 1, warnings_in(cache_log)
        assert "unavailable" in warnings_in(cache_log)[0]

        peer.start()   # same port
        assert wait_until_recovered(cache) < 0.2 + 0.5
        cache.set("k3", b"y", 30)
        assert raw.get("t:k3") == b"y"
        assert [m for m in infos_in(cache_log) if "reachable again" in m] != []
        assert len(infos_in(cache_log)) == 1 and len(warnings_in(cache_log)) == 1
    finally:
        raw.close()
        cache.close()


@pytest.mark.redis
def test_outage_invalidations_and_memory_leases_survive_recovery(peer, cache_log):
    cache = ResilientCache(RedisCache(peer.url, prefix="t:"), retry_interval=0.2)
    raw = redis.Redis.from_url(peer.url, socket_timeout=2)
    try:
        cache.set("token:abc", b"valid", 30)
        peer.stop()
        cache.delete("token:abc")                      # revoked during the outage
        assert cache.acquire("job", "A", 30)           # granted from memory
        peer.start()
        # As after a partition rather than a restart: Redis still has the value from before.
        raw.set("t:token:abc", b"valid", ex=30)
        wait_until_recovered(cache)
        assert cache.get("token:abc") is None          # the invalidation was replayed
        assert not cache.acquire("job", "B", 30)       # A's lease from memory still excludes B here
        assert cache.release("job", "A")
        assert cache.acquire("job", "B", 30)
        assert raw.get("t:lock:job") == b"B"
    finally:
        raw.close()
        cache.close()


@pytest.mark.redis
def test_unreachable_at_start_works_degraded_and_recovers(cache_log):
    port = free_port()
    cache = open_cache(f"redis://127.0.0.1:{port}/0", prefix="t:", retry_interval=0.2)
    try:
        assert cache.degraded                          # found out at start-up
        assert len(warnings_in(cache_log)) == 1
        cache.set("k", b"v", 30)
        assert cache.get("k") == b"v"
        assert cache.hit("r", 1, 30).allowed and not cache.hit("r", 1, 30).allowed
        with RedisPeer(port) as peer:
            wait_until_recovered(cache)
            cache.set("k", b"w", 30)
            raw = redis.Redis.from_url(peer.url, socket_timeout=2)
            assert raw.get("t:k") == b"w"
            raw.close()
        assert len(warnings_in(cache_log)) == 1 and len(infos_in(cache_log)) == 1
    finally:
        cache.close()


# --- MemoryCache stays bounded ----------------------------------------------------------------------------

def test_memory_cache_caps_entries_and_evicts_least_recently_used():
    c = MemoryCache(max_entries=1000)
    for i in range(20_000):
        c.set(f"k{i}", b"x" * 10, 60)
        c.hit(f"r{i}", 5, 60)
    assert len(c) <= 2000
    small = MemoryCache(max_entries=10)
    for i in range(10):
        small.set(f"k{i}", b"x", 60)
    assert small.get("k0") == b"x"               # used recently: survives the eviction below
    small.set("k10", b"x", 60)
    assert small.get("k0") == b"x" and small.get("k1") is None


def test_memory_cache_sweeps_expired_entries():
    now = [1000.0]
    c = MemoryCache(sweep_interval=0.05, clock=lambda: now[0])
    for i in range(3000):
        c.set(f"k{i}", b"x", 0.3)
        c.hit(f"r{i}", 5, 0.3)
        c.acquire(f"l{i}", "me", 0.3)
    assert len(c) == 9000
    now[0] += 0.35
    c.set("fresh", b"x", 60)
    assert len(c) == 1
