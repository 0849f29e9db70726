"""New mail, noticed by every API process: the watcher behind ``GET /events``.

The ingest consumer may run in another daemon on the same database, so an in-process signal is
not enough. One watcher per process (started with its first stream, stopped with its last) polls
the internal ids of ``messages`` — a cheap query on the primary key, for every organisation at once —
and wakes the streams of the organisations that got mail; each of them then asks for its own
organisation's mail. Streams read only up to the watcher's *horizon*:

- On MySQL two consumers may commit out of id order: id 11 can be visible while 10 is still in
  flight. An id missing below the newest one holds the horizon back until it appears or for
  ``grace`` seconds (then it was rolled back), so a stream never steps past mail about to arrive.
- SQLite hands out the ids of deleted newest rows again. When the newest id goes down, every
  stream is told to step back to it (:attr:`Subscription.floor`), so a reused id is not skipped.
"""

from __future__ import annotations

import asyncio
import logging
import time

from logmail.api.util import blocking
from logmail.errors import TemporaryError
from logmail.services.messages import IdScan, MessageService

log = logging.getLogger("logmail.api.live")

POLL_SECONDS = 0.25
GRACE_SECONDS = 2.0
SCAN_LIMIT = 1000
# A jump in ids wider than this is not a commit in flight (an auto-increment step, a restart): not waited for.
MAX_MISSING = 200
CLOSE_WAIT_SECONDS = 2.0


class Subscription:
    """One open stream of one organisation: :attr:`wake` is set when there may be mail to read (and
    at first, so the stream catches up)."""

    __slots__ = ("organization_id", "wake", "floor", "closed")

    def __init__(self, organization_id: int) -> None:
        self.organization_id = organization_id
        self.wake = asyncio.Event()
        self.wake.set()
        self.floor: int | None = None  # ids above it were deleted: a stream at a later id steps back to it
        self.closed = False  # the server is stopping: end the stream

    def rebase(self, position: int) -> int:
        """``position``, stepped back past ids that were deleted (and may be handed out again)."""
        if self.floor is not None:
            position, self.floor = min(position, self.floor), None
        return position


class MailWatcher:
    """Polls the newest message ids while anyone listens; every id at or below :attr:`horizon` is
    stored or never will be."""

    def __init__(self, messages: MessageService, *, interval: float = POLL_SECONDS,
                 grace: float = GRACE_SECONDS) -> None:
        self._messages = messages
        self.interval = interval
        self.grace = grace
        self.seen = 0
        self.horizon = 0
        self._missing: dict[int, float] = {}  # id -> when it was first missed
        self._unsettled: dict[int, int] = {}  # id -> organisation, of ids seen above the horizon
        self._subscribers: set[Subscription] = set()
        self._task: asyncio.Task | None = None
        self._lock = asyncio.Lock()
        self._closed = False
        self._drained = asyncio.Event()

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    @property
    def running(self) -> bool:
        return self._task is not None

    async def subscribe(self, organization_id: int) -> Subscription:
        """A new stream; the first one starts polling. Raises TemporaryError when stopping or when
        the database cannot be read (the caller has sent nothing yet: that is a 503)."""
        async with self._lock:
            if self._closed:
                raise TemporaryError("the server is shutting down; reconnect shortly")
            if self._task is None:
                scan = await blocking(self._messages.scan_ids, 0, [], 0)
                self.seen = self.horizon = scan.newest
                self._missing.clear()
                self._unsettled.clear()
                self._task = asyncio.get_running_loop().create_task(self._poll(), name="logmail-mail-watcher")
            sub = Subscription(organization_id)
            self._subscribers.add(sub)
            self._drained.clear()
            return sub

    def unsubscribe(self, sub: Subscription) -> None:
        self._subscribers.discard(sub)
        if not self._subscribers:
            self._drained.set()
            if self._task is not None:
                self._task.cancel()
                self._task = None

    async def close(self) -> None:
        """Server shutdown: end every stream and wait (a little) for them to finish."""
        self._closed = True
        for sub in self._subscribers:
            sub.closed = True
            sub.wake.set()
        if self._subscribers:
            try:
                await asyncio.wait_for(self._drained.wait(), CLOSE_WAIT_SECONDS)
            except TimeoutError:
                log.warning("%d event stream(s) did not end in time", len(self._subscribers))
        if self._task is not None:
            self._task.cancel()
            self._task = None

    async def _poll(self) -> None:
        failing = False
        while True:
            await asyncio.sleep(self.interval)
            try:
                scan = await blocking(self._messages.scan_ids, self.seen, sorted(self._missing)[:MAX_MISSING], SCAN_LIMIT)
            except Exception as exc:  # never die: every open stream would silently stop
                if not failing:
                    log.warning("cannot look for new mail (streams wait until it works again): %s", exc,
                                exc_info=not isinstance(exc, TemporaryError))
                    failing = True
                continue
            if failing:
                log.info("looking for new mail works again")
                failing = False
            self.advance(scan, time.monotonic())

    def advance(self, scan: IdScan, now: float) -> None:
        """Take in one scan; wake the streams of every organisation with mail the horizon passed."""
        rewound = scan.newest < self.seen and not scan.after
        if rewound:
            self.seen = scan.newest
            self._missing = {pk: t for pk, t in self._missing.items() if pk <= scan.newest}
            self._unsettled = {pk: org for pk, org in self._unsettled.items() if pk <= scan.newest}
        expected = self.seen + 1
        for pk, org in scan.after:
            if pk - expected <= MAX_MISSING:
                for gap in range(expected, pk):
                    self._missing.setdefault(gap, now)
            expected = pk + 1
            self._unsettled[pk] = org
        if scan.after:
            self.seen = scan.after[-1][0]
        for pk, org in scan.present.items():
            self._missing.pop(pk, None)
            self._unsettled[pk] = org
        for pk in [pk for pk, since in self._missing.items() if now - since > self.grace]:
            del self._missing[pk]  # rolled back, or deleted before we saw it
        self.horizon = min(self._missing) - 1 if self._missing else self.seen
        settled = {org for pk, org in self._unsettled.items() if pk <= self.horizon}
        self._unsettled = {pk: org for pk, org in self._unsettled.items() if pk > self.horizon}
        for sub in self._subscribers:
            if rewound:
                sub.floor = scan.newest if sub.floor is None else min(sub.floor, scan.newest)
            if rewound or sub.organization_id in settled:
                sub.wake.set()


def mail_watcher(app) -> MailWatcher:
    """The process's watcher (one per app), made on first use."""
    watcher = getattr(app.ctx, "mail_watcher", None)
    if watcher is None:
        watcher = app.ctx.mail_watcher = MailWatcher(app.ctx.services.messages)
    return watcher
