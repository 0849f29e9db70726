"""What every work-queue backend promises.

``publish_many`` returns only when the jobs are durable. ``claim`` hands out jobs under a lease:
unless they are acked or failed before the lease ends, they are delivered again (at-least-once), so
consumers must apply a job idempotently. ``fail`` schedules a retry with exponential backoff and,
after ``max_attempts``, dead-letters the job with its error, where it stays visible and can be
replayed. ``release`` hands jobs back without counting an attempt, for outages of a dependency:
an hour-long content-store outage must not dead-letter the mail that arrived before it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from logmail.errors import ConfigError


@dataclass(slots=True)
class Job:
    id: int | str
    queue: str
    payload: dict[str, Any]
    attempts: int = 0


@dataclass(slots=True)
class DeadLetter:
    id: int | str
    queue: str
    payload: dict[str, Any]
    attempts: int
    error: str
    created_at: int


class WorkQueue(Protocol):
    def publish_many(self, queue: str, payloads: list[dict[str, Any]]) -> None: ...

    def claim(self, queue: str, limit: int) -> list[Job]: ...

    def ack(self, jobs: list[Job]) -> None: ...

    def fail(self, job: Job, error: str) -> bool:
        """Retry later or dead-letter; returns True when the job was dead-lettered."""
        ...

    def release(self, jobs: list[Job], delay: float) -> None:
        """Give jobs back untouched, to be delivered again after ``delay`` seconds. Not a failed
        attempt: used when a dependency is down, which is no fault of the jobs."""
        ...

    def depth(self, queue: str) -> int: ...

    def dead_letters(self, queue: str, limit: int = 100) -> list[DeadLetter]: ...

    def replay(self, queue: str, ids: list[int | str] | None = None) -> int: ...

    def close(self) -> None: ...


def open_queue(url: str, db, *, lease_seconds: int, max_attempts: int, retry_base_delay: float,
               prefix: str = "logmail", prefetch: int = 200) -> WorkQueue:
    """The queue named by ``url``: empty for the outbox table in ``db``, amqp:// for RabbitMQ."""
    scheme = url.split(":", 1)[0].lower() if url else ""
    if scheme in ("", "outbox", "sql"):
        from logmail.queue.outbox import OutboxQueue

        return OutboxQueue(db, lease_seconds=lease_seconds, max_attempts=max_attempts,
                           retry_base_delay=retry_base_delay)
    if scheme in ("amqp", "amqps"):
        from logmail.queue.rabbitmq import RabbitQueue  # pika is loaded only by those who use it

        return RabbitQueue(url, prefix=prefix, lease_seconds=lease_seconds, max_attempts=max_attempts,
                           retry_base_delay=retry_base_delay, prefetch=prefetch)
    raise ConfigError(f"queue.url has an unknown scheme {scheme!r}")
