"""The console's Mail area, driven through Pilot against a real daemon: mail appears live, search and
the address filter narrow the list, the reader shows every tab, attachments save to disk, and mail
written to break a terminal is shown as the text it is."""

from __future__ import annotations

import asyncio
import smtplib
import time
from email.message import EmailMessage

import pytest
from textual.widgets import Input, Select, Static, TabbedContent, TextArea

from conftest import make_settings, wait_for_messages
from logmail.daemon.runner import Daemon
from logmail.tui.screens.mail import MailScreen
from logmail.tui.screens.message import MessageScreen
from logmail.tui.widgets.mail_dialogs import ConfirmDialog, PathDialog
from logmail.tui.widgets.mail_list import MessageList
from tui_helpers import make_console, notifications, run, send_mail, wait_until
from ports import free_port

HOSTILE = "[bold]x[/] \x1b[31m red [link=file:///etc/passwd]y"
BROKEN = (b"Subject: broken on purpose\r\nFrom: <<<bad\r\nDate: Fri, 31 Dec 9999 23:59:59 -1200\r\nContent-Type: multipart/mixed; boundary=\"zz\"\r\n\r\n"
          b"--zz\r\nContent-Type: text/plain; charset=nonexistent\r\n\r\nhello \xff\r\n")


@pytest.fixture
def settings(tmp_path):
    # Ingest polls a little less eagerly than the suite's default: a process that is never idle makes
    # every Pilot key press wait for it. Mail still shows up well within a second.
    return make_settings(tmp_path / "data", queue={"poll_interval": 0.1})


async def send_many(port: int, mails: list[tuple[str, str]]) -> None:
    """(subject, to) pairs over one SMTP connection, from a thread."""
    def send() -> None:
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
            for subject, to in mails:
                msg = EmailMessage()
                msg["From"], msg["To"], msg["Subject"] = "app@example.com", to, subject
                msg.set_content(f"Body of {subject}.\n")
                client.send_message(msg)

    await asyncio.to_thread(send)


async def send_raw(port: int, raw: bytes, to: str = "dev@example.com") -> None:
    def send() -> None:
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
            client.sendmail("x@example.com", [to], raw)

    await asyncio.to_thread(send)


def mail_list(app) -> MessageList:
    return app.screen.query_one("#mail-list", MessageList)


def subjects(app) -> list[str]:
    table = mail_list(app)
    return [table.summaries[i]["subject"] for i in table.order]


async def live_list(pilot, count: int) -> MessageList:
    """The list once it shows ``count`` messages and follows the live stream."""
    screen = pilot.app.screen
    assert isinstance(screen, MailScreen)
    await wait_until(pilot, lambda: screen.live == "live" and len(mail_list(pilot.app).order) == count, 10,
                     f"{count} messages and the live stream")
    return mail_list(pilot.app)


def status(app) -> str:
    return str(app.screen.query_one("#mail-status", Static).render())


def screen_text(app) -> str:
    return "\n".join("".join(seg.text for seg in strip) for strip in app.screen._compositor.render_strips())


async def search(pilot, query: str) -> None:
    search_box = pilot.app.screen.query_one("#mail-search", Input)
    search_box.value = query
    search_box.focus()
    await pilot.press("enter")


def test_mail_arrives_live_without_moving_the_cursor(daemon, owner_token, api):
    async def main():
        await send_many(daemon.smtp_port, [("first", "dev@example.com"), ("second", "dev@example.com")])
        wait_for_messages(api, 2)
        app = make_console(daemon, owner_token)
        async with app.run_test(size=(80, 24), notifications=True) as pilot:
            table = await live_list(pilot, 2)
            assert subjects(app) == ["second", "first"]
            await pilot.press("j")
            assert table.selected["subject"] == "first"

            started = time.monotonic()
            await send_mail(daemon.smtp_port, "third, live")
            await wait_until(pilot, lambda: len(table.order) == 3, 3, "the new mail to appear by itself")
            assert time.monotonic() - started < 2.5
            assert subjects(app) == ["third, live", "second", "first"]
            assert table.selected["subject"] == "first"  # the cursor stayed on the message it was on
            assert "3 messages" in status(app) and "live" in status(app)

            # A burst arrives whole and once, however the events are batched.
            await send_many(daemon.smtp_port, [(f"burst {n}", "dev@example.com") for n in range(5)])
            await wait_until(pilot, lambda: len(table.order) == 8, 15, "the burst")
            await pilot.pause(0.3)
            assert subjects(app)[:5] == [f"burst {n}" for n in reversed(range(5))]
            assert len(set(table.order)) == len(table.order) == table.row_count == 8
            assert table.selected["subject"] == "first"

    run(main())


def test_hostile_and_broken_mail_is_shown_as_text(daemon, owner_token):
    async def main():
        app = make_console(daemon, owner_token)
        async with app.run_test(size=(80, 24), notifications=True) as pilot:
            table = await live_list(pilot, 0)
            assert "No mail yet" in status(app)
            await send_mail(daemon.smtp_port, HOSTILE, sender="evil@example.com", body="a \x1b[2J body\n")
            await send_raw(daemon.smtp_port, BROKEN)
            await wait_until(pilot, lambda: len(table.order) == 2, 15, "both messages")

            row = table.get_row(table.order[1])
            subject_cell = next(str(cell) for cell in row if "[bold]" in str(cell))
            assert subject_cell.startswith("[bold]x[/]") and "\x1b" not in subject_cell
            assert "[bold]x[/]" in screen_text(app)
            assert table.get_row(table.order[0])[0].plain.strip().endswith("!")  # the parse problem marker

            # The broken one: its parse problems are said plainly, above the tabs.
            await pilot.press("enter")
            assert isinstance(app.screen, MessageScreen)
            problems = app.screen.query_one("#message-problems", Static)
            await wait_until(pilot, lambda: problems.display, 15, "the parse problems")
            said = str(problems.render())
            assert "truncated multipart" in said and "unknown charset 'nonexistent'" in said
            assert "hello" in app.screen.query_one("#message-text", TextArea).text
            assert "not a date this computer can show" in str(app.screen.query_one("#message-head", Static).render())
            await pilot.press("escape")

            # The hostile one: literal in the header block, and the body's escape is made visible.
            await pilot.press("j", "enter")
            screen = app.screen
            assert isinstance(screen, MessageScreen)
            text = screen.query_one("#message-text", TextArea)
            await wait_until(pilot, lambda: "body" in text.text, 15, "the text body")
            assert "\x1b" not in text.text and "␛[2J" in text.text
            assert "[bold]x[/]" in str(screen.query_one("#message-head", Static).render())
            assert "[link=file:///etc/passwd]y" in screen_text(app)
            app.theme = "textual-light"
            await pilot.pause(0.1)
            assert "[bold]x[/]" in screen_text(app)
            await pilot.press("q")
            assert isinstance(app.screen, MailScreen) and app.is_running

    run(main())


def test_search_narrows_the_list_and_a_bad_query_is_explained(daemon, owner_token, api):
    async def main():
        await send_many(daemon.smtp_port, [("alpha report", "dev@example.com"), ("beta report", "dev@example.com"),
                                           ("gamma", "dev@example.com")])
        wait_for_messages(api, 3)
        app = make_console(daemon, owner_token)
        async with app.run_test(size=(80, 24), notifications=True) as pilot:
            table = await live_list(pilot, 3)
            await pilot.press("slash", *"subject:beta", "enter")
            await wait_until(pilot, lambda: subjects(app) == ["beta report"], 15, "the search result")
            assert app.focused is table and "search: subject:beta" in status(app)

            # While searching, only matching mail joins the list as it arrives.
            await send_many(daemon.smtp_port, [("delta", "dev@example.com"), ("beta again", "dev@example.com")])
            await wait_until(pilot, lambda: subjects(app) == ["beta again", "beta report"], 15, "the new match")
            await pilot.pause(0.3)
            assert subjects(app) == ["beta again", "beta report"]

            # The server's complaint, quoted user text and all, is shown as it is: no markup, no crash.
            await search(pilot, "larger:[/]")
            await wait_until(pilot, lambda: any("needs a size" in n for n in notifications(app)), 15, "the error")
            assert "Search not understood" in status(app) and "[/]" in status(app)
            assert subjects(app) == ["beta again", "beta report"]  # the last good result stays

            await pilot.press("escape")
            await wait_until(pilot, lambda: len(table.order) == 5, 15, "the whole list again")
            assert app.screen.query_one("#mail-search", Input).value == ""
            assert "Search not understood" not in status(app)

    run(main())


def test_filter_by_address(daemon, owner_token, api):
    async def main():
        await send_many(daemon.smtp_port, [("for a", "a@example.com"), ("for b", "b@example.com")])
        wait_for_messages(api, 2)
        app = make_console(daemon, owner_token)
        async with app.run_test(size=(160, 48), notifications=True) as pilot:
            table = await live_list(pilot, 2)
            assert "to" in table.widths  # wide enough for the To column
            select = app.screen.query_one("#mail-filter", Select)
            # A local daemon has no configured addresses: the filter offers the recipients seen.
            await wait_until(pilot, lambda: app.screen.offered == ["a@example.com", "b@example.com"], 5,
                             "the recipients offered")
            await pilot.press("f", "enter", "down", "down", "enter")
            assert select.value == "b@example.com"
            await wait_until(pilot, lambda: subjects(app) == ["for b"], 15, "only b's mail")
            assert "to b@example.com" in status(app)

            await send_many(daemon.smtp_port, [("a again", "a@example.com"), ("b again", "b@example.com")])
            await wait_until(pilot, lambda: subjects(app) == ["b again", "for b"], 15, "b's new mail only")

            # Filtered, the other recipients are still offered: the filter can be switched directly.
            assert app.screen.offered == ["a@example.com", "b@example.com"]
            select.value = "a@example.com"
            await wait_until(pilot, lambda: subjects(app) == ["a again", "for a"], 15, "a's mail")
            select.clear()
            await wait_until(pilot, lambda: len(table.order) == 4, 15, "everything again")

    run(main())


def test_read_every_tab_and_save_the_attachment(daemon, owner_token, api, tmp_path):
    payload = bytes(range(256)) * 40
    html = "<html><head><style>p{color:red}</style></head><body><p>Hello <a href='https://example.com/x'>there</a>" \
           "</p><ul><li>one</li><li>two</li></ul><script>alert(1)</script></body></html>"

    async def main():
        await send_mail(daemon.smtp_port, "with everything", body="The plain text.\n", html=html,
                        attachment=(".report [v2]?.bin", payload))
        wait_for_messages(api, 1)
        app = make_console(daemon, owner_token)
        async with app.run_test(size=(80, 24), notifications=True) as pilot:
            table = await live_list(pilot, 1)
            assert table.get_row(table.order[0])[0].plain.startswith("●@")
            await pilot.press("enter")
            screen = app.screen
            assert isinstance(screen, MessageScreen)
            tabs = screen.query_one("#message-tabs", TabbedContent)
            text = screen.query_one("#message-text", TextArea)
            await wait_until(pilot, lambda: text.text == "The plain text.\n", 15, "the text tab")
            assert "with everything" in str(screen.query_one("#message-head", Static).render())

            await pilot.press("h")
            assert tabs.active == "tab-html"
            html_text = screen.query_one("#message-html", TextArea).text
            assert "Hello there <https://example.com/x>" in html_text
            assert "• one\n• two" in html_text
            assert "alert" not in html_text and "color" not in html_text and "<p>" not in html_text

            await pilot.press("e")
            assert tabs.active == "tab-headers"
            header_rows = screen.query_one("#message-headers").row_count
            names = [str(screen.query_one("#message-headers").get_row_at(i)[0]) for i in range(header_rows)]
            assert {"From", "To", "Subject", "Content-Type"} <= set(names)

            await pilot.press("v")
            raw = screen.query_one("#message-raw", TextArea)
            await wait_until(pilot, lambda: "MIME-Version: 1.0" in raw.text, 15, "the raw source")
            assert "Subject: with everything" in raw.text

            await pilot.press("a")
            attachments = screen.query_one("#message-attachments")
            assert attachments.row_count == 1
            assert [str(c) for c in attachments.get_row_at(0)][:2] == [".report [v2]?.bin", "application/octet-stream"]

            # Save: the suggested name is a plain, visible file name; the user's path wins.
            await pilot.press("enter")
            dialog = app.screen
            assert isinstance(dialog, PathDialog)
            assert dialog.query_one(Input).value.endswith("/report _v2_.bin")
            target = tmp_path / "saved.bin"
            dialog.query_one(Input).value = str(target)
            await pilot.press("enter")
            await wait_until(pilot, lambda: target.exists() and target.read_bytes() == payload, 15, "the saved file")
            assert any(str(target) in n for n in notifications(app))

            # An existing file is not replaced unless the user says so.
            target.write_bytes(b"keep me")
            await pilot.press("s")
            app.screen.query_one(Input).value = str(target)
            await pilot.press("enter")
            await wait_until(pilot, lambda: isinstance(app.screen, ConfirmDialog), 15, "the question")
            await pilot.press("n")
            assert target.read_bytes() == b"keep me"
            await pilot.press("s")
            app.screen.query_one(Input).value = str(target)
            await pilot.press("enter")
            await wait_until(pilot, lambda: isinstance(app.screen, ConfirmDialog), 15, "the question")
            await pilot.press("y")
            await wait_until(pilot, lambda: target.read_bytes() == payload, 15, "the replaced file")

            # A path that cannot be written is a notification, not a crash.
            await pilot.press("s")
            app.screen.query_one(Input).value = str(tmp_path / "no" / "such" / "dir" / "x.bin")
            await pilot.press("enter")
            await wait_until(pilot, lambda: any("Could not save" in n for n in notifications(app)), 15, "the error")
            assert app.screen is screen

            # Opening marked it read; back in the list the row says so.
            await pilot.press("escape")
            assert isinstance(app.screen, MailScreen)
            assert table.selected["isRead"] is True
            assert not table.get_row(table.order[0])[0].plain.startswith("●")
            assert api.get(f"/messages/{table.order[0]}").json()["isRead"] is True

    run(main())


def test_toggle_read_and_delete(daemon, owner_token, api):
    async def main():
        await send_many(daemon.smtp_port, [("keep", "dev@example.com"), ("doomed", "dev@example.com")])
        wait_for_messages(api, 2)
        app = make_console(daemon, owner_token)
        async with app.run_test(size=(80, 24), notifications=True) as pilot:
            table = await live_list(pilot, 2)
            doomed = table.selected_id
            assert table.selected["subject"] == "doomed"

            await pilot.press("u")
            await wait_until(pilot, lambda: table.selected["isRead"] is True, 15, "marked read")
            assert api.get(f"/messages/{doomed}").json()["isRead"] is True
            await pilot.press("u")
            await wait_until(pilot, lambda: table.selected["isRead"] is False, 15, "marked unread")
            assert api.get(f"/messages/{doomed}").json()["isRead"] is False

            await pilot.press("d")
            await wait_until(pilot, lambda: isinstance(app.screen, ConfirmDialog), 15, "the question")
            await pilot.press("n")
            assert doomed in table and api.get(f"/messages/{doomed}").status_code == 200

            await pilot.press("d")
            await wait_until(pilot, lambda: isinstance(app.screen, ConfirmDialog), 15, "the question")
            await pilot.press("y")
            await wait_until(pilot, lambda: doomed not in table, 15, "the row to go")
            assert api.get(f"/messages/{doomed}").status_code == 404
            assert subjects(app) == ["keep"] and table.selected["subject"] == "keep"

    run(main())


def test_older_mail_loads_at_the_bottom(daemon, owner_token, api):
    async def main():
        await send_many(daemon.smtp_port, [(f"mail {n:02}", "dev@example.com") for n in range(55)])
        wait_for_messages(api, 55)
        app = make_console(daemon, owner_token)
        async with app.run_test(size=(80, 24), notifications=True) as pilot:
            table = await live_list(pilot, 50)
            assert "50 of 55 messages" in status(app)
            await pilot.press("G")
            await wait_until(pilot, lambda: len(table.order) == 55, 15, "the older page")
            assert subjects(app)[-1] == "mail 00" and len(set(table.order)) == 55
            assert table.selected["subject"] == "mail 05"  # the cursor stays where it was

            # Reading a message and coming back loads nothing again: the live stream kept the list
            # current, and the reader keeps its place while a dialog is open over it.
            calls = {"messages": 0, "message": 0}
            for name in calls:
                def counted(*args, _real=getattr(app.client, name), _name=name, **kwargs):
                    calls[_name] += 1
                    return _real(*args, **kwargs)
                setattr(app.client, name, counted)
            await pilot.press("enter")
            assert isinstance(app.screen, MessageScreen)
            await wait_until(pilot, lambda: app.screen.detail is not None, 15, "the message")
            await pilot.pause(0.3)
            opened = dict(calls)
            await pilot.press("d")
            await wait_until(pilot, lambda: isinstance(app.screen, ConfirmDialog), 15, "the question")
            await pilot.press("escape")
            await pilot.pause(0.3)
            assert isinstance(app.screen, MessageScreen) and calls == opened
            await pilot.press("escape")
            await pilot.pause(0.3)
            assert isinstance(app.screen, MailScreen) and calls == opened == {"messages": 0, "message": 1}
            assert len(table.order) == 55 and table.selected["subject"] == "mail 05"

    run(main())


def test_the_live_list_survives_a_daemon_restart(tmp_path):
    # Fixed ports, so the restarted daemon is where the console left it.
    smtp_port, api_port = free_port(), free_port()
    settings = make_settings(tmp_path / "data", queue={"poll_interval": 0.1}, smtp={"port": smtp_port},
                             api={"port": api_port})
    daemons = [Daemon(settings).start_in_thread()]
    token = (tmp_path / "data" / "owner.token").read_text().strip()

    async def main():
        await send_mail(smtp_port, "before")
        app = make_console(daemons[0], token)
        async with app.run_test(size=(80, 24), notifications=True) as pilot:
            screen = app.screen
            await wait_until(pilot, lambda: screen.live == "live" and subjects(app) == ["before"], 10, "the list")
            seen = screen.stream.last_event_id

            await asyncio.to_thread(daemons[0].stop)
            await wait_until(pilot, lambda: any("Connection lost" in n for n in notifications(app)), 10,
                             "the console to notice")
            assert screen.live == "reconnecting" and "reconnecting" in status(app)

            daemons.append(await asyncio.to_thread(Daemon(settings).start_in_thread))
            await send_mail(smtp_port, "after the restart")
            await wait_until(pilot, lambda: screen.live == "live" and len(mail_list(app).order) == 2, 10,
                             "the stream back and the new mail")
            await pilot.pause(0.3)
            assert subjects(app) == ["after the restart", "before"] and mail_list(app).row_count == 2
            assert app.connection == "connected" and screen.stream.last_event_id != seen

    try:
        run(main())
    finally:
        daemons[-1].stop()


def test_following_live_mail_keeps_the_newest_rows_and_explains_paging(daemon, owner_token, api, monkeypatch):
    from logmail.tui.widgets import mail_list

    monkeypatch.setattr(mail_list, "MAX_ROWS", 4)

    async def main():
        await send_many(daemon.smtp_port, [("old 0", "dev@example.com"), ("old 1", "dev@example.com")])
        wait_for_messages(api, 2)
        app = make_console(daemon, owner_token)
        async with app.run_test(size=(80, 24), notifications=True) as pilot:
            table = await live_list(pilot, 2)
            await send_many(daemon.smtp_port, [(f"live {n}", "dev@example.com") for n in range(4)])
            await wait_until(pilot, lambda: subjects(app)[:1] == ["live 3"], 15, "the live mail")
            await pilot.pause(0.3)
            # The oldest row went; the one under the cursor stays, however old it is.
            assert table.selected["subject"] == "old 1"
            assert subjects(app) == ["live 3", "live 2", "live 1", "live 0", "old 1"] and table.row_count == 5
            assert table.trimmed
            await pilot.press("m")
            await wait_until(pilot, lambda: any("press r to reload" in n for n in notifications(app)), 3,
                             "the explanation")
            await pilot.press("r")
            await wait_until(pilot, lambda: len(table.order) == 6 and not table.trimmed, 15, "everything again")

    run(main())
