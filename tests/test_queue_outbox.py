"""The outbox work queue: durability, leases, retries, dead letters."""

import pytest

from logmail.queue.outbox import OutboxQueue
from logmail.store.database import Database
from logmail.store.migrate import upgrade


class Clock:
    def __init__(self):
        self.now = 1_000_000

    def __call__(self):
        return self.now


@pytest.fixture
def queue(tmp_path):
    db = Database(f"sqlite:///{tmp_path / 'q.db'}")
    upgrade(db)
    clock = Clock()
    q = OutboxQueue(db, lease_seconds=10, max_attempts=3, retry_base_delay=1, clock=clock)
    q.clock_ = clock
    yield q
    db.dispose()


def test_publish_claim_ack(queue):
    queue.publish_many("ingest", [{"n": 1}, {"n": 2}, {"n": 3}])
    assert queue.depth("ingest") == 3
    jobs = queue.claim("ingest", 2)
    assert [j.payload["n"] for j in jobs] == [1, 2]
    # Claimed jobs are invisible to others while leased.
    assert [j.payload["n"] for j in queue.claim("ingest", 10)] == [3]
    queue.ack(jobs)
    assert queue.depth("ingest") == 1
    assert queue.claim("other", 10) == []


def test_expired_lease_is_redelivered(queue):
    queue.publish_many("ingest", [{"n": 1}])
    assert len(queue.claim("ingest", 10)) == 1
    assert queue.claim("ingest", 10) == []
    queue.clock_.now += 10_001
    again = queue.claim("ingest", 10)
    assert [j.payload["n"] for j in again] == [1]


def test_failures_back_off_then_dead_letter_and_replay(queue):
    queue.publish_many("ingest", [{"n": 1}])
    job = queue.claim("ingest", 1)[0]
    assert queue.fail(job, "boom 1") is False
    assert queue.claim("ingest", 1) == []  # backing off: 1 s
    queue.clock_.now += 1000
    job = queue.claim("ingest", 1)[0]
    assert job.attempts == 1
    assert queue.fail(job, "boom 2") is False
    queue.clock_.now += 1999
    assert queue.claim("ingest", 1) == []  # second retry waits 2 s
    queue.clock_.now += 1
    job = queue.claim("ingest", 1)[0]
    assert queue.fail(job, "boom 3") is True
    queue.clock_.now += 10**9
    assert queue.claim("ingest", 1) == []
    dead = queue.dead_letters("ingest")
    assert len(dead) == 1 and dead[0].error == "boom 3" and dead[0].attempts == 3
    assert queue.replay("ingest") == 1
    job = queue.claim("ingest", 1)[0]
    assert job.payload == {"n": 1} and job.attempts == 0
