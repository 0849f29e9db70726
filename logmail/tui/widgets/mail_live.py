"""Following new mail: ``GET /events`` read for as long as the mail list lives, reconnecting when it drops.

The stream resumes from the last event id it saw, so mail that arrived meanwhile is replayed rather
than lost (the list drops what it already shows). Whatever the server could not replay is caught by
``on_catch_up``, called each time the stream is joined, which looks at the first page again. A daemon
without ``GET /events`` (an older installation) is polled instead.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, Callable

from logmail.tui.client import ApiError, ApiUnavailable, AuthRequired

if TYPE_CHECKING:
    from logmail.tui.app import LogmailConsole

# Waiting before the stream is tried again, doubling while the daemon stays away.
RETRY_FIRST, RETRY_MAX = 1.0, 10.0
POLL_SECONDS = 2.0


class MailStream:
    """The live stream's state (``connecting``, ``live``, ``reconnecting``, ``polling``) and its loop.

    ``on_message`` gets each ``message.received`` summary, ``on_catch_up`` is called when the stream is
    joined (and, when polling, every few seconds), ``on_state`` when the state changes. Failures are
    the console's to show: a daemon that went away is its "reconnecting" status, a refused token its
    login screen.
    """

    def __init__(self, console: "LogmailConsole", *, on_message: Callable[[dict[str, Any]], None],
                 on_catch_up: Callable[[], None], on_state: Callable[[str], None]) -> None:
        self.console = console
        self.on_message, self.on_catch_up, self.on_state = on_message, on_catch_up, on_state
        self.state = "connecting"
        self.last_event_id: str | None = None
        self._retry_now = asyncio.Event()

    def retry_now(self) -> None:
        """Cut the wait before the next attempt short (the daemon is known to be back)."""
        if self.state != "live":
            self._retry_now.set()

    def _set(self, state: str) -> None:
        if self.state != state:
            self.state = state
            self.on_state(state)

    async def follow(self) -> None:
        """Runs until cancelled (the worker running it ends with the screen)."""
        client = self.console.client
        delay = RETRY_FIRST
        while True:
            try:
                async for event in client.events(self.last_event_id):
                    if event.id:
                        self.last_event_id = event.id
                    if event.type == "ready":
                        delay = RETRY_FIRST
                        self._set("live")
                        self.console.connection_ok()
                        self.on_catch_up()
                    elif event.type == "message.received" and isinstance(event.data, dict):
                        self.on_message(event.data)
            except AuthRequired:
                self._set("reconnecting")
                self.console.need_login()
                # Wait a moment even when the app still looks signed in (a late answer to an older
                # call may say so): never ask the server again and again without a pause.
                await asyncio.sleep(RETRY_FIRST)
                while not self.console.ready:  # until the user has signed in again
                    await asyncio.sleep(0.5)
                delay = RETRY_FIRST
                continue
            except ApiUnavailable as exc:
                self._set("reconnecting")
                self.console.connection_lost(exc)
            except ApiError as exc:
                if exc.status == 404:
                    await self._poll()  # returns only when cancelled
                elif exc.status == 400:
                    self.last_event_id = None  # an id the server no longer knows: start afresh, catch up
                elif exc.status < 500:
                    delay = RETRY_MAX  # refused (a token without "read", say): asking often will not help
                # 5xx (a daemon shutting down, say) is tried again soon, with the usual backoff.
                self._set("reconnecting")
            else:
                self._set("reconnecting")  # the server ended the stream (a restart, say)
            try:
                await asyncio.wait_for(self._retry_now.wait(), delay)
            except asyncio.TimeoutError:
                pass
            self._retry_now.clear()
            delay = min(delay * 2, RETRY_MAX)

    async def _poll(self) -> None:
        self._set("polling")
        while True:
            await asyncio.sleep(POLL_SECONDS)
            if self.console.connection == "connected":
                self.on_catch_up()
