"""The RabbitMQ work queue.

Topology, declared by each connection before it first uses a logical queue ``Q``: durable **quorum**
queues on the default exchange (routing key = queue name: no bindings to keep in step).
``{prefix}.Q`` holds the work; ``{prefix}.Q.dead`` the jobs that failed ``max_attempts`` times, with
``x-logmail-error``; each ``{prefix}.Q.delay.{ms}`` keeps a job for ``ms`` milliseconds
(``x-message-ttl``), then dead-letters it back to ``{prefix}.Q`` (``at-least-once``, so it survives
the main queue being briefly unavailable). ``fail`` uses one per backoff step, ``release`` a ladder
of 0.5 s to 64 s. A fixed TTL per queue expires messages in arrival order, which per-message
expiration on one delay queue would not (only the head expires); named by delay, not attempt, so a
changed ``retry_base_delay`` makes new queues instead of clashing with the old ones' arguments.

Quorum, not classic: RabbitMQ's durable queue type (a Raft log, fsynced before the publisher confirm,
replicated in a cluster); TTL and at-least-once dead-lettering on them need RabbitMQ 3.10. They put a
returned (nacked) message at the back, so peeking at dead letters takes all of them and gives all back.

Threads: pika connections are not thread-safe, so each thread has its own, with a ``work`` channel
(confirmed publishing, consumers, acks) and an ``admin`` one (declarations, depth, dead letters, whose
bulk nack must never touch a consumer's deliveries). A delivery belongs to the channel that received
it: ``ack`` and ``fail`` must run on the thread that claimed, as ``Consumer`` does. Claims come from a
consumer per thread and queue, limited by ``basic_qos(prefetch)``; ``basic.get`` is a round trip per
message, some 20 times slower on a quorum queue.

Leases: RabbitMQ holds an unacked delivery until its channel closes, so the jobs of a consumer that
dies come back as soon as its connection drops; one that hangs keeps them until the broker's
``consumer_timeout`` (30 minutes by default) closes its channel. ``lease_seconds`` adds our own limit:
jobs neither acked nor failed within it are given back at that thread's next claim.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, TypeVar
from urllib.parse import parse_qs, urlsplit

import pika
from pika.exceptions import AMQPError
from pika.spec import Basic

from logmail.errors import StorageUnavailableError
from logmail.queue.base import DeadLetter, Job

log = logging.getLogger("logmail.queue.rabbitmq")
# pika logs every failed connection attempt at ERROR; we report an outage ourselves, once.
if logging.getLogger("pika").level == logging.NOTSET:
    logging.getLogger("pika").setLevel(logging.CRITICAL)

RECONNECT_INTERVAL = 1.0  # a thread tries to reconnect at most this often
CONFIRM_TIMEOUT = 15.0  # far beyond any fsync: a broker blocked by a resource alarm counts as unavailable
CLAIM_WAIT = 0.05  # how long an empty claim waits for a delivery; the caller sleeps between polls
PEEK_IDLE = 0.5  # fetching dead letters stops after this long without another one
REPLAY_BATCH = 1000
MAX_PREFETCH = 65535  # basic.qos counts in 16 bits
RELEASE_STEPS_MS = tuple(500 * 2 ** k for k in range(8))  # a release waits the first step >= its delay
ERROR_LIMIT = 4000  # characters of a failure reason kept (headers must fit in one frame)
_CONNECTION_DEFAULTS = {"connection_attempts": 1, "socket_timeout": 5, "stack_timeout": 10,
                        "blocked_connection_timeout": 30}
_FAILURES = (AMQPError, OSError)
T = TypeVar("T")
Message = tuple[int, pika.BasicProperties, bytes]  # delivery tag, properties, body


class _Refused(Exception):
    """The broker would not take a publish (nacked or not confirmed in time)."""


class _Unroutable(_Refused):
    """A queue we had declared is gone (deleted by hand): worth declaring it again at once."""


@dataclass(slots=True)
class _Held:
    """A delivery handed out by ``claim``, not yet acked or failed."""

    tag: int
    since: float
    props: pika.BasicProperties
    body: bytes


class _Link:
    """One thread's connection: confirmed publishing, its consumers and the deliveries they hold."""

    def __init__(self, params: pika.ConnectionParameters, prefetch: int) -> None:
        self.seq, self.unconfirmed, self.nacked, self.returned = 0, set(), 0, 0
        self.declared: set[str] = set()
        self.buffers: dict[str, deque[Message]] = {}
        self.consumers: dict[str, str] = {}  # queue -> consumer tag
        self.held: dict[str, list[_Held]] = {}
        self.used = False  # once it has served a call, a failure may only mean it went stale
        self.conn = pika.BlockingConnection(params)
        try:
            self.work, self.admin = self.conn.channel(), self.conn.channel()
            self.work.basic_qos(prefetch_count=min(prefetch, MAX_PREFETCH))
            # BlockingChannel.confirm_delivery() waits for each message's confirm before sending the
            # next: an fsync round trip per message (~1,500/s here). The underlying channel lets us send
            # a batch and wait once (10-18,000/s); pika's blocking adapter has no public API for that.
            self.work._impl.confirm_delivery(ack_nack_callback=self._on_confirm)
            self.work._impl.add_on_return_callback(self._on_return)
        except BaseException:
            self.close()
            raise

    def _on_confirm(self, frame: Any) -> None:
        method = frame.method
        done = {t for t in self.unconfirmed if t <= method.delivery_tag} if method.multiple \
            else {method.delivery_tag} & self.unconfirmed
        if isinstance(method, Basic.Nack):
            self.nacked += len(done)
        self.unconfirmed -= done
        if not self.unconfirmed:  # the underlying channel's callbacks do not end process_data_events()
            self.conn.call_later(0, lambda: None)

    def _on_return(self, *_args: Any) -> None:
        self.returned += 1

    def publish(self, messages: list[tuple[str, bytes, pika.BasicProperties]]) -> None:
        """Publish to the named queues; returns once the broker has confirmed every message."""
        self.nacked = self.returned = 0
        for routing_key, body, props in messages:
            self.work._impl.basic_publish("", routing_key, body, props, mandatory=True)
            self.seq += 1
            self.unconfirmed.add(self.seq)
        deadline = time.monotonic() + CONFIRM_TIMEOUT
        while self.unconfirmed:
            if time.monotonic() >= deadline:
                raise _Refused(f"no publisher confirm within {CONFIRM_TIMEOUT:.0f} s")
            self.conn.process_data_events(time_limit=min(deadline - time.monotonic(), 1.0))
        if self.nacked:
            raise _Refused(f"the broker refused {self.nacked} message(s)")
        if self.returned:
            self.declared.clear()
            raise _Unroutable(f"{self.returned} message(s) could not be routed to a queue")

    def subscribed(self, queue: str) -> bool:
        # False before we subscribe, and after the broker cancelled us (as it does when the queue is deleted).
        return self.consumers.get(queue) in self.work.consumer_tags

    def buffer(self, queue: str) -> deque[Message]:
        """What our consumer on ``queue`` has received and not handed out yet."""
        buf = self.buffers.setdefault(queue, deque())
        if not self.subscribed(queue):
            self.consumers[queue] = self.work.basic_consume(
                queue, lambda _ch, method, props, body: buf.append((method.delivery_tag, props, body)))
        return buf

    def take(self, job_id: int | str) -> _Held | None:
        entries = self.held.get(str(job_id))
        held = entries.pop(0) if entries else None
        if entries == []:
            del self.held[str(job_id)]
        return held

    def fetch(self, queue: str, want: int) -> list[Message]:
        """Up to ``want`` messages of ``queue``, in order, held unacked on the admin channel."""
        if want <= 0:
            return []
        # basic.get first: it is ordered after our own earlier nacks and counts exactly what remains,
        # whereas a quorum queue's declare-ok count may not yet include messages just returned.
        method, props, body = self.admin.basic_get(queue)
        if method is None:
            return []
        got: list[Message] = [(method.delivery_tag, props, body)]
        want = min(want, 1 + method.message_count, MAX_PREFETCH)
        if want > 1:
            self.admin.basic_qos(prefetch_count=want - 1)  # a basic.get delivery does not count
            tag = self.admin.basic_consume(
                queue, lambda _ch, method, props, body: got.append((method.delivery_tag, props, body)))
            idle_since, seen = time.monotonic(), 1
            while len(got) < want and time.monotonic() - idle_since < PEEK_IDLE:  # others may hold some
                self.conn.process_data_events(time_limit=0.1)
                if len(got) > seen:
                    idle_since, seen = time.monotonic(), len(got)
            self.admin.basic_cancel(tag)
        return got

    def close(self) -> None:
        try:
            if self.conn.is_open:
                self.conn.close()  # the broker requeues whatever this connection still holds
        except Exception:  # pragma: no cover - it is going away either way
            pass


class RabbitQueue:
    def __init__(self, url: str, *, prefix: str = "logmail", lease_seconds: int = 120, max_attempts: int = 5,
                 retry_base_delay: float = 2.0, prefetch: int = 200) -> None:
        self.url, self.prefix, self.lease_seconds = url, prefix, lease_seconds
        self.max_attempts = max(1, max_attempts)
        self.prefetch = max(1, prefetch)
        # The delay before retry n (1 .. max_attempts-1) is retry_base_delay * 2**(n-1).
        self.delays_ms = [max(1, round(retry_base_delay * 1000 * 2 ** (n - 1))) for n in range(1, self.max_attempts)]
        params = pika.URLParameters(url)
        self.where = f"{params.host}:{params.port}/{params.virtual_host}"  # for messages: no password
        self._local = threading.local()
        self._links: dict[threading.Thread, _Link] = {}
        self._lock = threading.Lock()
        self._outage = False
        self._next_sweep = 0.0

    # -- names, topology, connections ---------------------------------------------------------------

    def _name(self, queue: str, suffix: str = "") -> str:
        return f"{self.prefix}.{queue}{suffix}"

    def _delay_names(self, queue: str) -> dict[int, str]:
        return {ms: self._name(queue, f".delay.{ms}") for ms in sorted({*self.delays_ms, *RELEASE_STEPS_MS})}

    def queue_names(self, queue: str) -> list[str]:
        """Every RabbitMQ queue behind the logical queue ``queue``: work, dead letters, delays."""
        return [self._name(queue), self._name(queue, ".dead"), *self._delay_names(queue).values()]

    def _declare(self, link: _Link, queue: str) -> None:
        if queue in link.declared:
            return
        main, quorum = self._name(queue), {"x-queue-type": "quorum"}
        link.admin.queue_declare(main, durable=True, arguments=quorum)
        link.admin.queue_declare(self._name(queue, ".dead"), durable=True, arguments=quorum)
        for delay, name in self._delay_names(queue).items():
            link.admin.queue_declare(name, durable=True, arguments={
                **quorum, "x-message-ttl": delay, "x-dead-letter-exchange": "", "x-dead-letter-routing-key": main,
                "x-dead-letter-strategy": "at-least-once", "x-overflow": "reject-publish"})
        link.declared.add(queue)

    def _parameters(self) -> pika.URLParameters:
        params, given = pika.URLParameters(self.url), parse_qs(urlsplit(self.url).query)
        for key, value in _CONNECTION_DEFAULTS.items():
            if key not in given:
                setattr(params, key, value)
        if "client_properties" not in given:  # so that an operator can tell the connections apart
            params.client_properties = {"connection_name": f"logmail {socket.gethostname()}:{os.getpid()} "
                                                           f"{threading.current_thread().name}"}
        return params

    def _link(self, *, now_or_never: bool = False) -> _Link:
        if time.monotonic() >= self._next_sweep:
            self._sweep()
        link: _Link | None = getattr(self._local, "link", None)
        if link is not None and link.conn.is_open:
            return link
        if link is not None:
            self._drop(link)
        if not now_or_never and time.monotonic() < getattr(self._local, "retry_at", 0.0):
            raise StorageUnavailableError(f"RabbitMQ at {self.where} is unavailable")
        self._local.retry_at = time.monotonic() + RECONNECT_INTERVAL
        try:
            link = self._local.link = _Link(self._parameters(), self.prefetch)
        except _FAILURES as exc:
            raise self._unavailable(exc) from exc
        with self._lock:
            self._links[threading.current_thread()] = link
            recovered, self._outage = self._outage, False
        if recovered:
            log.info("RabbitMQ at %s is reachable again", self.where)
        return link

    def _sweep(self) -> None:
        # A thread that ended without close() left its connection, and the jobs it holds, behind.
        self._next_sweep = time.monotonic() + RECONNECT_INTERVAL
        with self._lock:
            orphans = [self._links.pop(t) for t in list(self._links) if not t.is_alive()]
        for orphan in orphans:
            orphan.close()

    def _drop(self, link: _Link) -> None:
        if getattr(self._local, "link", None) is link:
            self._local.link = None
        with self._lock:
            for thread in [t for t, other in self._links.items() if other is link]:
                del self._links[thread]
        link.close()

    def _unavailable(self, exc: BaseException) -> StorageUnavailableError:
        with self._lock:
            first, self._outage = not self._outage, True
        reason = f"{type(exc).__name__}: {exc}".rstrip(": ")
        if first:
            log.warning("RabbitMQ at %s is unavailable (%s); retrying at most every %.0f s",
                        self.where, reason, RECONNECT_INTERVAL)
        return StorageUnavailableError(f"RabbitMQ at {self.where} is unavailable: {reason}")

    def _run(self, op: Callable[[_Link], T]) -> T:
        """Run ``op`` on this thread's connection, replacing a connection that went stale once."""
        link = self._link()
        for last in (not link.used, True):
            try:
                result = op(link)
                link.used = True
                return result
            except (*_FAILURES, _Refused) as exc:
                self._drop(link)
                # A connection may have been closed while idle (nobody answered its heartbeats): that
                # is no outage, so try a new one at once. A new one failing is one.
                if last or (isinstance(exc, _Refused) and not isinstance(exc, _Unroutable)):
                    raise self._unavailable(exc) from exc
            link = self._link(now_or_never=True)
        raise AssertionError("unreachable")  # pragma: no cover

    # -- the WorkQueue protocol ---------------------------------------------------------------------

    def publish_many(self, queue: str, payloads: list[dict[str, Any]]) -> None:
        if not payloads:
            return
        now = _now_ms()
        messages = [(self._name(queue), _encode(p), _properties(uuid.uuid4().hex, 0, now)) for p in payloads]

        def op(link: _Link) -> None:
            self._declare(link, queue)
            link.publish(messages)

        self._run(op)

    def claim(self, queue: str, limit: int) -> list[Job]:
        main = self._name(queue)

        def op(link: _Link) -> list[Job]:
            if not link.subscribed(main):
                link.declared.discard(queue)  # declare it (again) before subscribing
            self._declare(link, queue)
            self._release_expired(link)
            buf = link.buffer(main)
            if len(buf) < limit:
                link.conn.process_data_events(0)
            if not buf:
                link.conn.process_data_events(time_limit=CLAIM_WAIT)  # returns at the first delivery
                link.conn.process_data_events(0)
            jobs: list[Job] = []
            while buf and len(jobs) < limit:
                job = self._job(link, queue, *buf.popleft())
                if job is not None:
                    jobs.append(job)
            return jobs

        return self._run(op) if limit > 0 else []

    def _job(self, link: _Link, queue: str, tag: int, props: pika.BasicProperties, body: bytes) -> Job | None:
        job_id, headers = props.message_id or uuid.uuid4().hex, props.headers or {}
        attempts = int(headers.get("x-logmail-attempts", 0))
        try:
            payload = json.loads(body)
            if not isinstance(payload, dict):
                raise ValueError("not a JSON object")
        except ValueError as exc:  # nobody can ever handle it: dead letters are where it can be seen
            link.publish([(self._name(queue, ".dead"), body, _properties(job_id, attempts, _created(props), {
                "x-logmail-error": f"unreadable job: {exc}", "x-logmail-failed-at": _now_ms()}))])
            link.work.basic_ack(tag)
            log.error("%s: dead-lettered an unreadable job: %s", queue, exc)
            return None
        link.held.setdefault(job_id, []).append(_Held(tag, time.monotonic(), props, body))
        return Job(id=job_id, queue=queue, payload=payload, attempts=attempts)

    def _release_expired(self, link: _Link) -> None:
        cutoff, released = time.monotonic() - self.lease_seconds, 0
        for job_id in [j for j, entries in link.held.items() if entries[0].since <= cutoff]:
            for held in link.held.pop(job_id):
                link.work.basic_nack(held.tag, requeue=True)
                released += 1
        if released:
            log.warning("gave back %d job(s) neither acked nor failed within the %d s lease",
                        released, self.lease_seconds)

    def _take(self, jobs: list[Job]) -> tuple[Any, list[tuple[Job, _Held]]]:
        """This thread's connection and the deliveries of ``jobs`` it holds (the others are gone)."""
        link: _Link | None = getattr(self._local, "link", None)
        pairs = [(j, h) for j in jobs if link is not None and (h := link.take(j.id)) is not None]
        if len(pairs) < len(jobs):
            log.warning("%d job(s) are no longer held by this thread's connection (lost, or handed back "
                        "after the lease); RabbitMQ delivers them again", len(jobs) - len(pairs))
        return link, pairs

    def _move(self, link: _Link, moves: list[tuple[_Held, str, pika.BasicProperties]]) -> None:
        # The copies first, then the originals go: a crash in between duplicates jobs, never loses them.
        try:
            link.publish([(target, held.body, props) for held, target, props in moves])
            for held, _, _ in moves:
                link.work.basic_ack(held.tag)
        except (*_FAILURES, _Refused) as exc:
            self._drop(link)
            raise self._unavailable(exc) from exc

    def ack(self, jobs: list[Job]) -> None:
        link, pairs = self._take(jobs)
        try:
            for _, held in pairs:
                link.work.basic_ack(held.tag)
        except _FAILURES as exc:
            self._drop(link)
            log.warning("could not ack %d job(s) (%s); RabbitMQ will deliver them again", len(pairs), exc)

    def fail(self, job: Job, error: str) -> bool:
        attempts = job.attempts + 1
        dead = attempts >= self.max_attempts
        link, pairs = self._take([job])
        if not pairs:
            return False
        held = pairs[0][1]
        if dead:
            target = self._name(job.queue, ".dead")
            extra = {"x-logmail-error": _truncate(error), "x-logmail-failed-at": _now_ms()}
        else:
            target = self._delay_names(job.queue)[self.delays_ms[attempts - 1]]
            extra = {"x-logmail-last-error": _truncate(error, 500)}
        self._move(link, [(held, target, _properties(str(job.id), attempts, _created(held.props), extra))])
        return dead

    def release(self, jobs: list[Job], delay: float) -> None:
        """Hand jobs back, attempts untouched, for about ``delay`` seconds (rounded up to 0.5 s · 2^k, at
        most 64 s): through a delay queue, so that no consumer, ours included, gets them sooner."""
        step = next((ms for ms in RELEASE_STEPS_MS if ms >= delay * 1000), RELEASE_STEPS_MS[-1])
        link, pairs = self._take(jobs)
        if pairs:
            self._move(link, [(held, self._delay_names(job.queue)[step], _properties(
                str(job.id), job.attempts, _created(held.props))) for job, held in pairs])

    def depth(self, queue: str) -> int:
        """Jobs waiting: ready in the main queue or waiting out a delay (not those handed out)."""
        names = [self._name(queue), *self._delay_names(queue).values()]

        def op(link: _Link) -> int:
            self._declare(link, queue)
            return sum(link.admin.queue_declare(n, passive=True).method.message_count for n in names)

        return self._run(op)

    def dead_letters(self, queue: str, limit: int = 100) -> list[DeadLetter]:
        """The first ``limit`` dead letters, in order, without consuming them."""

        def op(link: _Link) -> list[DeadLetter]:
            self._declare(link, queue)
            # All of them even for a few: giving back only the first few would rotate the queue, as
            # returned messages go to the back. (Beyond 65,535 dead letters it rotates anyway.)
            got = link.fetch(self._name(queue, ".dead"), MAX_PREFETCH)
            if got:
                link.admin.basic_nack(0, multiple=True, requeue=True)  # tag 0 + multiple: all it holds
            return [_dead_letter(queue, props, body) for _, props, body in got[:limit]]

        return self._run(op)

    def replay(self, queue: str, ids: list[int | str] | None = None) -> int:
        """Move dead letters (all, or those with these ids) back to the queue with attempts reset."""
        wanted = None if ids is None else {str(i) for i in ids}
        moved = [0]  # survives a retry of ``op`` on a new connection

        def op(link: _Link) -> int:
            self._declare(link, queue)
            while True:
                # With ids, one pass over (up to 65,535) dead letters; without, batches until none are left.
                got = link.fetch(self._name(queue, ".dead"), REPLAY_BATCH if wanted is None else MAX_PREFETCH)
                move = [(t, p, b) for t, p, b in got if wanted is None or p.message_id in wanted]
                if move:
                    link.publish([(self._name(queue), b, _properties(p.message_id or uuid.uuid4().hex, 0,
                                                                     _created(p))) for _, p, b in move])
                    for tag, _, _ in move:  # only now that the copies are confirmed
                        link.admin.basic_ack(tag)
                    moved[0] += len(move)
                if len(move) < len(got):
                    link.admin.basic_nack(0, multiple=True, requeue=True)
                if wanted is not None or len(got) < REPLAY_BATCH:
                    return moved[0]

        return self._run(op) if wanted != set() else 0

    def close(self) -> None:
        """Close every thread's connection; call it once the threads using this queue have stopped."""
        with self._lock:
            links, self._links = list(self._links.values()), {}
        self._local.link = None
        for link in links:
            link.close()


def _now_ms() -> int:
    return int(time.time() * 1000)


def _encode(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _properties(message_id: str, attempts: int, created_at: int,
                extra: dict[str, Any] | None = None) -> pika.BasicProperties:
    return pika.BasicProperties(
        content_type="application/json", delivery_mode=2, message_id=message_id,  # 2: persistent
        timestamp=created_at // 1000, app_id="logmail",
        headers={"x-logmail-attempts": attempts, "x-logmail-created-at": created_at, **(extra or {})})


def _created(props: pika.BasicProperties) -> int:
    return int((props.headers or {}).get("x-logmail-created-at") or (props.timestamp or 0) * 1000 or _now_ms())


def _truncate(text: str, limit: int = ERROR_LIMIT) -> str:
    # The end of a traceback says what went wrong, so that is the part to keep.
    return text if len(text) <= limit else "…" + text[-limit:]


def _dead_letter(queue: str, props: pika.BasicProperties, body: bytes) -> DeadLetter:
    headers = props.headers or {}
    try:
        payload = json.loads(body)
    except ValueError:
        payload = {"raw": body.decode("utf-8", "replace")}
    error = headers.get("x-logmail-error") or ""
    return DeadLetter(id=props.message_id or "", queue=queue, payload=payload,
                      attempts=int(headers.get("x-logmail-attempts", 0)), created_at=_created(props),
                      error=error.decode("utf-8", "replace") if isinstance(error, bytes) else str(error))
