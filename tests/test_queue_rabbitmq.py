"""The RabbitMQ work queue: claims, redelivery, retries, dead letters, threads and broker outages.

Everything runs in a private vhost on the shared server, except the outage tests, which stop and
start a private rabbitmq-server of their own (see ``rabbit_peer``).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import Counter

import pika
import pytest

from logmail.daemon.consumer import Consumer
from logmail.errors import StorageUnavailableError
from logmail.queue.rabbitmq import RabbitQueue

try:
    from tests.rabbit_peer import PeerUnavailable, PrivateBroker, create_vhost, delete_vhost
except ImportError:  # pragma: no cover - run from inside tests/
    from rabbit_peer import PeerUnavailable, PrivateBroker, create_vhost, delete_vhost

pytestmark = pytest.mark.rabbitmq


@pytest.fixture(scope="module")
def vhost_url():
    try:
        name, url = create_vhost()
    except PeerUnavailable as exc:
        pytest.skip(str(exc))
    yield url
    delete_vhost(name)


@pytest.fixture
def make_queue(vhost_url):
    """RabbitQueues on the run's vhost, with a prefix of their own per test."""
    made: list[RabbitQueue] = []
    prefix = f"t{uuid.uuid4().hex[:8]}"

    def make(url: str = vhost_url, **kwargs) -> RabbitQueue:
        q = RabbitQueue(url, **{"prefix": prefix, "max_attempts": 3, "retry_base_delay": 0.2, **kwargs})
        made.append(q)
        return q

    yield make
    for q in made:
        q.close()


@pytest.fixture(scope="module")
def private_broker():
    try:
        broker = PrivateBroker()
    except PeerUnavailable as exc:
        pytest.skip(str(exc))
    try:
        broker.start()  # 3.5-6.5 s here; a restart 4.5 s
    except PeerUnavailable as exc:
        broker.cleanup()
        pytest.skip(str(exc))
    yield broker
    broker.cleanup()


def eventually(fn, timeout: float = 5.0, interval: float = 0.05):
    """Call ``fn`` until it returns something truthy; quorum queue counters may trail by a moment."""
    deadline = time.monotonic() + timeout
    while True:
        result = fn()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(interval)


def claim_all(q: RabbitQueue, queue: str, count: int, timeout: float = 5.0) -> list:
    jobs: list = []
    deadline = time.monotonic() + timeout
    while len(jobs) < count and time.monotonic() < deadline:
        jobs += q.claim(queue, 100)
    return jobs


def test_publish_claim_ack(make_queue):
    q = make_queue()
    q.publish_many("ingest", [{"n": 1}, {"n": 2}, {"n": 3}])
    assert eventually(lambda: q.depth("ingest") == 3)
    jobs = q.claim("ingest", 2)
    assert [j.payload["n"] for j in jobs] == [1, 2]
    assert all(isinstance(j.id, str) and j.attempts == 0 and j.queue == "ingest" for j in jobs)
    assert [j.payload["n"] for j in q.claim("ingest", 10)] == [3]
    q.ack(jobs)
    assert q.claim("ingest", 10) == []
    started = time.monotonic()
    assert q.claim("other", 10) == []
    assert time.monotonic() - started < 0.5  # an empty claim returns at once; the caller sleeps


def test_unacked_jobs_come_back_when_the_consumer_dies(make_queue):
    dying, survivor = make_queue(), make_queue()
    dying.publish_many("ingest", [{"n": n} for n in range(3)])
    claimed = dying.claim("ingest", 2)
    assert len(claimed) == 2
    dying.close()  # its connection goes without an ack, as when the process is killed
    again = claim_all(survivor, "ingest", 3)
    assert sorted(j.payload["n"] for j in again) == [0, 1, 2]
    assert {j.id for j in claimed} <= {j.id for j in again}
    survivor.ack(again)


def test_jobs_of_a_thread_that_ended_without_acking_come_back(make_queue):
    q = make_queue()
    q.publish_many("ingest", [{"n": 1}])
    claimed: list = []
    thread = threading.Thread(target=lambda: claimed.extend(claim_all(q, "ingest", 1)))
    thread.start()
    thread.join()
    assert len(claimed) == 1  # and the thread is gone, its connection left behind
    again = claim_all(q, "ingest", 1, timeout=5)
    assert [j.id for j in again] == [claimed[0].id]
    q.ack(again)


def test_jobs_held_beyond_the_lease_are_given_back(make_queue):
    q = make_queue(lease_seconds=0)
    q.publish_many("ingest", [{"n": 1}])
    first = q.claim("ingest", 1)
    assert len(first) == 1  # neither acked nor failed ...
    again = claim_all(q, "ingest", 1)  # ... so the next claim gives it back and gets it again
    assert [j.id for j in again] == [first[0].id]
    q.ack(first)  # too late: it is no longer held under that claim, and nothing breaks
    q.ack(again)


def test_failures_back_off_then_dead_letter_with_the_reason(make_queue):
    q = make_queue()
    q.publish_many("ingest", [{"n": 1}])
    job = claim_all(q, "ingest", 1)[0]
    for attempt, delay in ((1, 0.2), (2, 0.4)):
        assert q.fail(job, f"boom {attempt}") is False
        failed_at = time.monotonic()
        assert q.claim("ingest", 1) == []  # backing off
        assert eventually(lambda: q.depth("ingest") == 1)  # waiting in a retry queue still counts
        retried = claim_all(q, "ingest", 1, timeout=5)
        assert time.monotonic() - failed_at >= delay - 0.05
        assert retried[0].id == job.id and retried[0].attempts == attempt and retried[0].payload == {"n": 1}
        job = retried[0]
    assert q.fail(job, "Traceback (most recent call last):\nValueError: boom 3") is True
    letters = q.dead_letters("ingest")
    assert len(letters) == 1
    assert letters[0].id == job.id and letters[0].attempts == 3 and letters[0].payload == {"n": 1}
    assert letters[0].error.endswith("ValueError: boom 3") and letters[0].created_at > 0
    assert q.depth("ingest") == 0


def test_release_hands_jobs_back_after_the_delay_without_counting_an_attempt(make_queue):
    q = make_queue()
    q.publish_many("ingest", [{"n": 1}, {"n": 2}])
    jobs = claim_all(q, "ingest", 2)
    q.release(jobs, 0.3)  # rounded up to the 0.5 s step
    released_at = time.monotonic()
    assert q.claim("ingest", 10) == []  # not even to us
    assert eventually(lambda: q.depth("ingest") == 2)
    again = claim_all(q, "ingest", 2)
    assert time.monotonic() - released_at >= 0.45
    assert sorted((j.id, j.attempts) for j in again) == sorted((j.id, 0) for j in jobs)
    q.ack(again)


def test_dead_letters_are_peeked_not_consumed_and_replayed(make_queue):
    q = make_queue(max_attempts=1)
    q.publish_many("ingest", [{"n": n} for n in range(3)])
    for job in claim_all(q, "ingest", 3):
        assert q.fail(job, f"bad {job.payload['n']}") is True
    first = q.dead_letters("ingest")
    assert [d.payload["n"] for d in first] == [0, 1, 2]
    assert [(d.id, d.error) for d in q.dead_letters("ingest")] == [(d.id, d.error) for d in first]  # still there
    assert [d.payload["n"] for d in q.dead_letters("ingest", limit=2)] == [0, 1]
    assert q.claim("ingest", 10) == []

    assert q.replay("ingest", ["no-such-id"]) == 0
    assert q.replay("ingest", [first[1].id]) == 1
    back = claim_all(q, "ingest", 1)
    assert [(j.id, j.payload["n"], j.attempts) for j in back] == [(first[1].id, 1, 0)]
    q.ack(back)
    assert [d.payload["n"] for d in q.dead_letters("ingest")] == [0, 2]
    assert q.replay("ingest") == 2
    assert sorted(j.payload["n"] for j in claim_all(q, "ingest", 2)) == [0, 2]
    assert q.dead_letters("ingest") == []


def test_an_unreadable_message_goes_straight_to_the_dead_letters(make_queue, vhost_url):
    q = make_queue()
    q.publish_many("ingest", [{"n": 1}])  # declares the queues
    with pika.BlockingConnection(pika.URLParameters(vhost_url)) as conn:
        conn.channel().basic_publish("", f"{q.prefix}.ingest", b"not json", pika.BasicProperties(delivery_mode=2))
    assert [j.payload for j in claim_all(q, "ingest", 1)] == [{"n": 1}]
    letters = eventually(lambda: q.dead_letters("ingest"))
    assert len(letters) == 1 and "unreadable" in letters[0].error and letters[0].payload == {"raw": "not json"}


def test_the_consumer_loop_survives_an_outage_stores_good_jobs_and_dead_letters_a_bad_one(make_queue):
    q = make_queue(max_attempts=2)
    q.publish_many("ingest", [{"n": n} for n in range(5)])
    done: list[int] = []
    outage = [True]

    class Collect(Consumer):
        queue_name = "ingest"

        def handle_batch(self, jobs):
            if outage:  # the first batch meets an outage: handed back, not failed
                outage.clear()
                raise StorageUnavailableError("the content store is down")
            if any(j.payload["n"] == 3 for j in jobs):
                raise ValueError("poison")
            done.extend(j.payload["n"] for j in jobs)

    consumer = Collect(q, poll_interval=0.02)
    thread = threading.Thread(target=consumer.run)  # claims, acks and fails on its own thread
    thread.start()
    try:
        letters = eventually(lambda: q.dead_letters("ingest"), timeout=10)
    finally:
        consumer.stop()
        thread.join(10)
    assert sorted(done) == [0, 1, 2, 4]
    assert [(d.payload, d.attempts) for d in letters] == [({"n": 3}, 2)] and "ValueError: poison" in letters[0].error


def test_concurrent_publishers_and_claimers_lose_and_double_nothing(make_queue):
    q = make_queue()
    publishers, batches, per_batch = 8, 20, 25
    total = publishers * batches * per_batch
    seen: list[str] = []
    lock = threading.Lock()
    errors: list[BaseException] = []

    def publish(p: int) -> None:
        try:
            for b in range(batches):
                q.publish_many("ingest", [{"id": f"{p}-{b}-{i}"} for i in range(per_batch)])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    def consume() -> None:
        deadline = time.monotonic() + 30
        try:
            while time.monotonic() < deadline:
                with lock:
                    if len(seen) >= total:
                        return
                jobs = q.claim("ingest", 100)
                with lock:
                    seen.extend(j.payload["id"] for j in jobs)
                q.ack(jobs)
                if not jobs:
                    time.sleep(0.01)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=publish, args=(p,)) for p in range(publishers)]
    threads += [threading.Thread(target=consume) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    counts = Counter(seen)
    assert len(counts) == total
    assert [k for k, n in counts.items() if n > 1] == []
    assert q.claim("ingest", 10) == []


def test_broker_down_fails_fast_then_recovers_with_persistent_jobs(make_queue, private_broker, caplog):
    caplog.set_level(logging.INFO, logger="logmail.queue.rabbitmq")
    private_broker.start()
    q = make_queue(private_broker.url)
    q.publish_many("ingest", [{"id": f"before-{n}"} for n in range(5)])  # confirmed: they must survive
    private_broker.stop(kill=True)  # a crash, not a tidy shutdown

    for call in (lambda: q.publish_many("ingest", [{"id": "during"}]), lambda: q.claim("ingest", 10),
                 lambda: q.depth("ingest"), lambda: q.publish_many("ingest", [{"id": "during"}])):
        started = time.monotonic()
        with pytest.raises(StorageUnavailableError):
            call()
        assert time.monotonic() - started < 2
    outages = [r for r in caplog.records if "is unavailable" in r.getMessage()]
    assert len(outages) == 1  # once per outage, not per call

    private_broker.start()
    deadline = time.monotonic() + 15
    while True:  # reconnects are attempted at most once a second
        try:
            q.publish_many("ingest", [{"id": "after"}])
            break
        except StorageUnavailableError:
            assert time.monotonic() < deadline
            time.sleep(0.2)
    jobs = claim_all(q, "ingest", 6)
    assert sorted(j.payload["id"] for j in jobs) == ["after"] + [f"before-{n}" for n in range(5)]
    q.ack(jobs)
    assert any("reachable again" in r.getMessage() for r in caplog.records)


def test_a_connection_closed_while_idle_is_replaced_without_an_error(make_queue, private_broker):
    private_broker.start()
    q = make_queue(private_broker.url)
    q.publish_many("ingest", [{"id": "one"}])
    assert [j.payload["id"] for j in claim_all(q, "ingest", 1)] == ["one"]  # not acked
    private_broker.stop()  # closes our connection while we are not looking
    private_broker.start()
    q.publish_many("ingest", [{"id": "two"}])  # no StorageUnavailableError: a stale connection is no outage
    jobs = claim_all(q, "ingest", 2)
    assert sorted(j.payload["id"] for j in jobs) == ["one", "two"]  # "one" was never acked
    q.ack(jobs)
