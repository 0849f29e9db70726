"""Durable acceptance: the one door every captured message walks through.

``accept`` returns only when the raw bytes are in the content store and the ingest job is on the
work queue; only then may a front-end say 250 (SMTP) or 202 (HTTP). Concurrent acceptances are
committed together by one writer thread (group commit): each commit is durable (fsync) yet costs
the same for one message as for a hundred, which is what lets the listener keep up under load.
"""

from __future__ import annotations

import asyncio
import logging
import queue as queuelib
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from logmail.errors import StorageUnavailableError, TemporaryError
from logmail.queue.base import WorkQueue
from logmail.store.content import ContentStore

log = logging.getLogger("logmail.accept")

INGEST_QUEUE = "ingest"
MAX_BATCH = 256


@dataclass(slots=True)
class Envelope:
    mail_from: str
    rcpt_to: list[str]
    source: str = "smtp"
    organization_id: int | None = None  # None: decided by the ingest service (local mode: built-in)
    extra: dict[str, Any] = field(default_factory=dict)
    # Platform mode: organisation → the envelope recipients the policy admitted for it. The ingest
    # service stores one copy per organisation, showing each only its own recipients.
    routes: dict[int, list[str]] | None = None
    # A stable id makes accepting the same message twice harmless: it is stored once per organisation
    # (mail pulled from a mailbox uses one derived from the account and the message).
    ingest_id: str | None = None


@dataclass(slots=True)
class _Pending:
    raw: bytes
    envelope: Envelope
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future


class DurableAcceptor:
    def __init__(self, content: ContentStore, work_queue: WorkQueue) -> None:
        self.content = content
        self.queue = work_queue
        self._pending: queuelib.SimpleQueue[_Pending | None] = queuelib.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    # -- synchronous API (CLI, HTTP handlers in threads) ------------------------------------------

    def accept_many(self, items: list[tuple[bytes, Envelope]]) -> list[str]:
        """Store raw messages and enqueue their ingest jobs in one durable step; returns ingest ids."""
        if not items:
            return []
        now = int(time.time() * 1000)
        ids = [env.ingest_id or str(uuid.uuid4()) for _, env in items]
        blobs = [(f"raw/{i}", raw) for i, (raw, _) in zip(ids, items)]
        self.content.put_many(blobs)
        jobs = [_job_payload(i, raw, env, now) for i, (raw, env) in zip(ids, items)]
        try:
            self.queue.publish_many(INGEST_QUEUE, jobs)
        except Exception as exc:
            # Nothing was acknowledged: the raw blobs are orphans, so give their space back. Not those
            # with a caller's stable id: an earlier acceptance of the same message may own that blob.
            try:
                self.content.delete_many(key for (key, _), (_, env) in zip(blobs, items) if env.ingest_id is None)
            except Exception:  # pragma: no cover - best effort; orphans are harmless
                log.warning("could not remove %d orphaned raw blobs", len(blobs))
            if isinstance(exc, TemporaryError):
                raise
            raise StorageUnavailableError("the work queue is unavailable") from exc
        return ids

    # -- asynchronous API (listeners), with group commit --------------------------------------------

    async def accept(self, raw: bytes, envelope: Envelope) -> str:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[str] = loop.create_future()
        self._ensure_writer()
        self._pending.put(_Pending(raw, envelope, loop, future))
        return await future

    def _ensure_writer(self) -> None:
        if self._thread is None:
            with self._lock:
                if self._thread is None:
                    self._thread = threading.Thread(target=self._write_loop, name="logmail-accept", daemon=True)
                    self._thread.start()

    def _write_loop(self) -> None:
        while True:
            first = self._pending.get()
            if first is None:
                return
            batch = [first]
            stop = False
            # Everything that queued up while the previous commit ran goes into this one.
            while len(batch) < MAX_BATCH:
                try:
                    item = self._pending.get_nowait()
                except queuelib.Empty:
                    break
                if item is None:
                    stop = True
                    break
                batch.append(item)
            self._commit(batch)
            if stop:
                return

    def _commit(self, batch: list[_Pending]) -> None:
        try:
            ids: list[str | None] = list(self.accept_many([(p.raw, p.envelope) for p in batch]))
            error: BaseException | None = None
        except BaseException as exc:  # every waiter must hear about it, whatever it is
            log.error("could not accept %d message(s): %s", len(batch), exc)
            ids, error = [None] * len(batch), exc
        # One wake-up of each event loop per commit, not one per message.
        by_loop: dict[asyncio.AbstractEventLoop, list] = {}
        for p, ingest_id in zip(batch, ids):
            by_loop.setdefault(p.loop, []).append((p.future, ingest_id, error))
        for loop, settlements in by_loop.items():
            try:
                loop.call_soon_threadsafe(_settle_all, settlements)
            except RuntimeError:  # that loop has closed: nobody is waiting any more
                pass

    def close(self) -> None:
        """Finish what is pending, then stop the writer."""
        if self._thread is not None:
            self._pending.put(None)
            self._thread.join(timeout=30)
            self._thread = None


def _settle_all(settlements: list[tuple[asyncio.Future, str | None, BaseException | None]]) -> None:
    for future, result, error in settlements:
        if future.done():  # the client went away while we were committing
            continue
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)


def _job_payload(ingest_id: str, raw: bytes, env: Envelope, now: int) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "ingestId": ingest_id,
        "rawKey": f"raw/{ingest_id}",
        "size": len(raw),
        "mailFrom": env.mail_from,
        "rcptTo": list(env.rcpt_to),
        "source": env.source,
        "receivedAt": now,
    }
    if env.organization_id is not None:
        payload["organizationId"] = env.organization_id
    if env.routes:
        payload["routes"] = {str(org): list(rcpts) for org, rcpts in env.routes.items()}
    if env.extra:
        payload["extra"] = env.extra
    return payload
