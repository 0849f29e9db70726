"""The consumer contract: a base class owns the loop and the failure policy; a consumer only says
how to handle a batch of jobs.

Failure policy, in one place: a ``TemporaryError`` (storage unavailable) hands the jobs back
without counting an attempt, and the consumer backs off until the dependency returns; any other
exception in a batch is narrowed down by handling the jobs one at a
time, so one poisonous job is retried and finally dead-lettered on its own while its neighbours
are stored. Jobs are acked only after their work has committed.
"""

from __future__ import annotations

import logging
import threading
import traceback

from logmail.errors import TemporaryError
from logmail.queue.base import Job, WorkQueue

log = logging.getLogger("logmail.consumer")


class Consumer:
    queue_name: str = ""

    def __init__(self, work_queue: WorkQueue, *, batch_size: int = 100, poll_interval: float = 0.2,
                 max_backoff: float = 30.0) -> None:
        self.queue = work_queue
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self.max_backoff = max_backoff
        self.stopping = threading.Event()
        self._outage_backoff = 0.0

    def handle_batch(self, jobs: list[Job]) -> None:
        """Do the work of every job, atomically or idempotently. Raise to have them retried."""
        raise NotImplementedError

    def run(self) -> None:
        log.info("%s consumer started", self.queue_name)
        backoff = self.poll_interval
        while not self.stopping.is_set():
            try:
                worked = self.run_once()
                backoff = self.poll_interval
            except TemporaryError as exc:
                # The queue itself is unreachable: say so once per outage and back off.
                if backoff == self.poll_interval:
                    log.warning("%s consumer cannot reach the queue: %s", self.queue_name, exc)
                backoff = min(backoff * 2, self.max_backoff)
                worked = False
            except Exception:
                log.exception("%s consumer loop failed", self.queue_name)
                backoff = min(max(backoff, 0.5) * 2, 10.0)
                worked = False
            if self._outage_backoff:
                self.stopping.wait(self._outage_backoff)
            elif not worked:
                self.stopping.wait(backoff)
        log.info("%s consumer stopped", self.queue_name)

    def run_once(self) -> bool:
        """Claim and process one batch; returns whether there was any work."""
        jobs = self.queue.claim(self.queue_name, self.batch_size)
        if not jobs:
            return False
        self.process(jobs)
        return True

    def drain(self, max_batches: int = 10_000) -> int:
        """Process until the queue is empty (for the CLI and tests); returns batches processed."""
        n = 0
        while n < max_batches and self.run_once():
            n += 1
        return n

    def process(self, jobs: list[Job]) -> None:
        try:
            self.handle_batch(jobs)
        except TemporaryError as exc:
            # Not the jobs' fault: give them back untouched and wait, longer while it lasts.
            first = not self._outage_backoff
            self._outage_backoff = min(max(self._outage_backoff * 2, 0.5), self.max_backoff)
            if first:
                log.warning("%s: a dependency is unavailable (%s); %d job(s) handed back, retrying "
                            "with backoff until it returns", self.queue_name, exc, len(jobs))
            try:
                self.queue.release(jobs, self._outage_backoff)
            except TemporaryError:
                pass  # the queue is down too: the leases run out and the jobs come back anyway
            return
        except Exception:
            if len(jobs) > 1:
                for job in jobs:  # find the poisonous one; the others succeed on their own
                    self.process([job])
                return
            job = jobs[0]
            self._fail(job, traceback.format_exc(limit=20))
            return
        if self._outage_backoff:
            log.info("%s: storage is back; processing resumed", self.queue_name)
            self._outage_backoff = 0.0
        self.queue.ack(jobs)

    def _fail(self, job: Job, error: str) -> None:
        dead = self.queue.fail(job, error)
        if dead:
            log.error("%s job %s dead-lettered after %d attempts: %s", self.queue_name, job.id, job.attempts + 1,
                      error.strip().splitlines()[-1] if error.strip() else error)
        else:
            log.warning("%s job %s failed (attempt %d), will retry", self.queue_name, job.id, job.attempts + 1)

    def stop(self) -> None:
        self.stopping.set()
