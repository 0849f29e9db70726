"""Snapshots of the console's main screens at 80×24 and 160×48 (pytest-textual-snapshot).

They pin layout: what fits where, what the footer shows, how the areas use a bigger terminal. The
data is real (a daemon on loopback); only what changes from run to run is pinned: the clock shown
in the time column, sizes that include a Received header's date, and the daemon's random port.
After an intended change of layout, look at the new SVGs and accept them with
``pytest tests/test_tui_snapshots.py --snapshot-update``.
"""

from __future__ import annotations

import pytest
from textual.widgets import Input

from logmail.tui import formatting
from tui_helpers import make_console, send_mail, wait_until

SIZES = [(80, 24), (160, 48)]


@pytest.fixture
def steady_formatting(monkeypatch):
    monkeypatch.setattr(formatting, "when", lambda *args, **kwargs: "12:00:00")
    monkeypatch.setattr(formatting, "when_full", lambda *args, **kwargs: "2026-11-21 12:00:00 UTC")
    monkeypatch.setattr(formatting, "size", lambda n: "1.2 KB" if n is not None else "—")


@pytest.fixture
def three_messages(daemon, api, steady_formatting):
    import asyncio

    from conftest import wait_for_messages

    for n, (subject, to) in enumerate([("Welcome to the service", "new.user@example.com"),
                                       ("Your invoice 1042", "billing@example.com"),
                                       ("Password reset [urgent]", "dev@example.com")]):
        asyncio.run(send_mail(daemon.smtp_port, subject, to=to, sender=f"app{n}@example.com",
                              attachment=("report.pdf", b"%PDF-1.4 ...") if n == 1 else None))
        wait_for_messages(api, n + 1)


async def _mail_listed(pilot) -> None:
    from logmail.tui.screens.mail import MailScreen

    await wait_until(pilot, lambda: isinstance(pilot.app.screen, MailScreen)
                     and pilot.app.screen.table.row_count == 3 and pilot.app.screen.live == "live",
                     what="three messages listed, live")
    await pilot.pause(0.2)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_mail_list(snap_compare, daemon, owner_token, three_messages, size):
    assert snap_compare(make_console(daemon, owner_token), terminal_size=size, run_before=_mail_listed)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_message_view(snap_compare, daemon, owner_token, three_messages, size):
    async def open_invoice(pilot):
        from logmail.tui.screens.message import MessageScreen

        await _mail_listed(pilot)
        await pilot.press("j", "enter")
        await wait_until(pilot, lambda: isinstance(pilot.app.screen, MessageScreen)
                         and pilot.app.screen.detail is not None, what="the message open")
        await pilot.pause(0.2)

    assert snap_compare(make_console(daemon, owner_token), terminal_size=size, run_before=open_invoice)


def test_help(snap_compare, daemon, owner_token, steady_formatting):
    async def open_help(pilot):
        await wait_until(pilot, lambda: pilot.app.ready, what="signed in")
        await pilot.press("question_mark")
        await pilot.pause(0.2)

    assert snap_compare(make_console(daemon, owner_token), terminal_size=(80, 24), run_before=open_help)


def test_login(snap_compare, daemon):
    async def login_shown(pilot):
        from logmail.tui.screens.login import LoginScreen

        await wait_until(pilot, lambda: isinstance(pilot.app.screen, LoginScreen), what="the login screen")
        for field in pilot.app.screen.query(Input):
            field.cursor_blink = False  # a blinking cursor is in either state when the picture is taken
        await pilot.pause(0.2)

    app = make_console(daemon, None, url="http://127.0.0.1:8025")  # never contacted before signing in
    assert snap_compare(app, terminal_size=(80, 24), run_before=login_shown)
