"""The work queue: a protocol with a durable outbox (SQL) implementation."""

from logmail.queue.base import Job, WorkQueue, open_queue

__all__ = ["Job", "WorkQueue", "open_queue"]
