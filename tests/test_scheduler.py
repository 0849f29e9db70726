"""Leases, the job runner and retention: work runs once among many daemons, and only what is due."""

from __future__ import annotations

import threading

import pytest

from conftest import claim_all
from logmail.daemon.jobs import RetentionJob
from logmail.services.retention import DAY_MS
from logmail.daemon.scheduler import JobRunner, ScheduledJob
from logmail.services.accept import Envelope
from logmail.services.container import build_services
from logmail.store import leases


class Clock:
    def __init__(self, now: int = 10**12) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


@pytest.fixture
def services(settings):
    s = build_services(settings)
    yield s
    s.close()


def test_a_lease_has_one_holder_until_it_expires(services):
    db = services.db
    assert leases.acquire(db, "job:x", "a", 1000, now_ms=0)
    assert not leases.acquire(db, "job:x", "b", 1000, now_ms=500)
    assert leases.acquire(db, "job:x", "a", 1000, now_ms=900)  # renewal by the holder
    assert not leases.acquire(db, "job:x", "b", 1000, now_ms=1800)
    assert leases.holder(db, "job:x", 1800) == "a"
    assert leases.acquire(db, "job:x", "b", 1000, now_ms=1900)  # a died: its lease ran out
    assert not leases.release(db, "job:x", "a")
    assert leases.release(db, "job:x", "b")
    assert leases.holder(db, "job:x", 1900) is None


def test_concurrent_acquires_have_exactly_one_winner(services):
    wins = []
    barrier = threading.Barrier(8)

    def contend(owner: str) -> None:
        barrier.wait()
        if leases.acquire(services.db, "job:race", owner, 60_000, now_ms=1):
            wins.append(owner)

    threads = [threading.Thread(target=contend, args=(f"d{i}",)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(wins) == 1


class CountingJob(ScheduledJob):
    name = "counting"
    lease_seconds = 60

    def __init__(self, entered: threading.Event, proceed: threading.Event) -> None:
        self.runs = 0
        self.entered, self.proceed = entered, proceed

    def run(self, keep_alive) -> None:
        self.runs += 1
        self.entered.set()
        self.proceed.wait(10)


def test_only_one_of_several_runners_runs_a_job_at_a_time(services):
    clock = Clock()
    entered, proceed = threading.Event(), threading.Event()
    job = CountingJob(entered, proceed)
    job.interval = 60
    first = JobRunner(services.db, owner="daemon-1", clock=clock)
    second = JobRunner(services.db, owner="daemon-2", clock=clock)
    t = threading.Thread(target=first.run_once, args=(job,))
    t.start()
    assert entered.wait(10)
    assert second.run_once(job) is False  # daemon-1 is still at it
    proceed.set()
    t.join()
    clock.now += 30_000
    assert second.run_once(job) is False  # once per interval across daemons, not once per daemon
    clock.now += 24_001  # 90 % of the interval after the first run started
    assert second.run_once(job) is True
    assert job.runs == 2


def test_a_dead_daemons_lease_is_picked_up(services):
    clock = Clock()
    dead = JobRunner(services.db, owner="dead", clock=clock)
    assert leases.acquire(services.db, "job:counting", dead.owner, 60_000, clock())  # then SIGKILL
    entered, proceed = threading.Event(), threading.Event()
    proceed.set()
    job = CountingJob(entered, proceed)
    alive = JobRunner(services.db, owner="alive", clock=clock)
    assert alive.run_once(job) is False
    clock.now += 60_001
    assert alive.run_once(job) is True and job.runs == 1


class FailingJob(ScheduledJob):
    name = "failing"

    def run(self, keep_alive) -> None:
        raise RuntimeError("boom")


def test_a_failing_job_releases_its_lease_and_is_logged(services, caplog):
    runner = JobRunner(services.db, owner="me")
    assert runner.run_once(FailingJob()) is True
    assert "failing failed" in caplog.text
    assert leases.holder(services.db, "job:failing", 0) is None
    assert JobRunner(services.db, owner="other").run_once(FailingJob()) is True  # anyone may retry


def store_messages(services, received: list[int]) -> None:
    ids = services.acceptor.accept_many([(f"Subject: m{i}\r\n\r\nx\r\n".encode(), Envelope("a@x.org", ["b@x.org"]))
                                         for i in range(len(received))])
    jobs = claim_all(services, len(received))
    by_id = dict(zip(ids, received))
    for job in jobs:
        job.payload["receivedAt"] = by_id[job.payload["ingestId"]]
    services.ingest.store(jobs)
    services.queue.ack(jobs)


def remaining(services) -> list[str]:
    from logmail.store import messages as repo

    with services.db.read() as session:
        page = repo.list_messages(session, services.boot.organization_id, repo.MessageFilter(), limit=100)
    return sorted(r.subject for r in page.rows)


def test_retention_deletes_exactly_what_is_due_content_included(services):
    clock = Clock(100 * DAY_MS)
    services.settings.retention.max_age_days = 30
    services.settings.retention.batch_size = 2  # several batches
    store_messages(services, [clock.now - 31 * DAY_MS, clock.now - 30 * DAY_MS - 1, clock.now - 40 * DAY_MS,
                              clock.now - 30 * DAY_MS, clock.now - 1 * DAY_MS])
    blobs_before = services.content.stats()["blobs"]
    job = RetentionJob(services.retention, services.settings.retention, clock=clock)
    assert JobRunner(services.db, clock=clock).run_once(job)
    assert remaining(services) == ["m3", "m4"]  # exactly 30 days old is kept
    assert services.content.stats()["blobs"] == blobs_before - 3 * 2  # raw and body of each
    clock.now += DAY_MS  # a day later, m3 is due
    assert JobRunner(services.db, clock=clock).run_once(job)
    assert remaining(services) == ["m4"]


def test_retention_is_off_by_default(services):
    clock = Clock(100 * DAY_MS)
    store_messages(services, [0])
    JobRunner(services.db, clock=clock).run_once(RetentionJob(services.retention, services.settings.retention,
                                                              clock=clock))
    assert remaining(services) == ["m0"]


def test_retention_stops_when_its_lease_is_lost(services):
    store_messages(services, [1, 2, 3, 4])
    calls = []

    def keep_alive() -> bool:
        calls.append(1)
        return len(calls) < 2  # lost after the first batch

    assert services.retention.purge(10, batch_size=2, keep_alive=keep_alive) == 2
    assert remaining(services) == ["m2", "m3"]
