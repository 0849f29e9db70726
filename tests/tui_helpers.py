"""Driving the console in tests: a real daemon on loopback, a real client, Textual's Pilot.

The app under test is the one users run; only the terminal is headless.
"""

from __future__ import annotations

import asyncio
import smtplib
import time
from email.message import EmailMessage
from typing import Any, Awaitable, Callable

from logmail.tui.app import LogmailConsole
from logmail.tui.client import LogmailClient, RefreshTokenStore


def make_console(daemon, token: str | None = None, *, refresh_store: RefreshTokenStore | None = None,
                 start: str = "mail", url: str | None = None) -> LogmailConsole:
    client = LogmailClient(url or f"http://127.0.0.1:{daemon.api_port}", token=token, refresh_store=refresh_store,
                           timeout=5.0)
    app = LogmailConsole(client, start=start)
    app.display_url = "http://127.0.0.1:8025"  # the port is random: keep it out of snapshots
    return app


def run(coro: Awaitable[Any]) -> Any:
    """Run one async test body (the suite has no async test plugin; Textual brings its own loop)."""
    return asyncio.run(coro)  # type: ignore[arg-type]


async def wait_until(pilot, predicate: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    """Let the app run until ``predicate()`` is truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await pilot.pause(0.05)


async def send_mail(port: int, subject: str, *, to: str = "dev@example.com", sender: str = "app@example.com",
                    body: str = "Hello from the tests.\n", attachment: tuple[str, bytes] | None = None,
                    html: str | None = None) -> None:
    """Send one message over SMTP from a thread, so the app's loop keeps running meanwhile."""
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = sender, to, subject
    msg.set_content(body)
    if html is not None:
        msg.add_alternative(html, subtype="html")
    if attachment is not None:
        name, data = attachment
        msg.add_attachment(data, maintype="application", subtype="octet-stream", filename=name)

    def send() -> None:
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
            client.send_message(msg)

    await asyncio.to_thread(send)


def notifications(app: LogmailConsole) -> list[str]:
    """The text of every notification currently shown (tests run with notifications enabled)."""
    return [f"{n.title or ''}: {n.message}" for n in app._notifications]
