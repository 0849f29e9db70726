"""The ingest consumer: accepted raw messages in, stored mail out."""

from __future__ import annotations

from logmail.daemon.consumer import Consumer
from logmail.queue.base import Job, WorkQueue
from logmail.services.accept import INGEST_QUEUE
from logmail.services.ingest import IngestService


class IngestConsumer(Consumer):
    queue_name = INGEST_QUEUE

    def __init__(self, work_queue: WorkQueue, ingest: IngestService, **kw) -> None:
        super().__init__(work_queue, **kw)
        self.ingest = ingest

    def handle_batch(self, jobs: list[Job]) -> None:
        self.ingest.store(jobs)
