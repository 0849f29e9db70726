"""The console's Health, Outbound and Accounts areas, driven through Pilot against a real daemon.

The daemon samples health every second, sends outbound mail to an aiosmtpd server on loopback that
refuses one address for good, and syncs mailbox accounts within half a second of being asked.
"""

from __future__ import annotations

import socket
import time

import pytest
from sqlalchemy import update

from auth_helpers import client, create_user, login
from conftest import make_settings
from logmail.store.models import User
from logmail.tui.screens import accounts as accounts_screen
from logmail.tui.screens import health as health_screen
from logmail.tui.screens.accounts import AccountDetailScreen, AccountsScreen
from logmail.tui.screens.health import HealthScreen
from logmail.tui.screens.outbound import OutboundDetailScreen, OutboundScreen
from smtp_peers import Peer, Server, free_port
from tui_helpers import make_console, notifications, run, wait_until

from textual.widgets import DataTable, Label, Sparkline, Static

BOUNCING = "nobody@example.com"


@pytest.fixture
def smtp_server():
    server = Server(Peer(refuse_rcpt={BOUNCING: "550 5.1.1 unknown user"}))
    yield server
    server.stop()


@pytest.fixture
def settings(tmp_path, smtp_server):
    return make_settings(
        tmp_path / "data",
        health={"interval": 1},
        accounts={"timeout": 0.5, "min_sync_interval": 1, "dispatch_interval": 0.5},
        outbound={"smtp_host": "127.0.0.1", "smtp_port": smtp_server.port, "smtp_use_tls": False, "timeout": 5,
                  "interval": 3600},
    )


def platform_admin_token(daemon, api) -> str:
    """A signed-in platform admin (the owner token of a local daemon is not one)."""
    create_user(api, "root@example.com", "owner")
    with daemon.services.db.write() as session:
        session.execute(update(User).where(User.email == "root@example.com").values(is_platform_admin=True))
    with client(daemon) as http:
        return login(http, "root@example.com").access


def text(widget) -> str:
    return str(widget.content)


def cell(table: DataTable, row: str, column: str) -> str:
    return str(table.get_cell(row, column))


# -- Health ---------------------------------------------------------------------------------------

def test_health_shows_services_with_latency_history_and_refreshes_itself(daemon, api, monkeypatch):
    monkeypatch.setattr(health_screen, "REFRESH_SECONDS", 0.3)
    token = platform_admin_token(daemon, api)
    daemon.services.health.sample()
    daemon.services.health.sample()

    async def main() -> None:
        app = make_console(daemon, token, start="health")
        async with app.run_test(size=(80, 24), notifications=True) as pilot:
            screen = app.screen
            assert isinstance(screen, HealthScreen)
            expected = {"database", "content", "queue", "smtp-primary"}
            await wait_until(pilot, lambda: expected <= set(screen._rows) and screen.from_daemon_history
                             and all(screen._rows[name].status for name in expected),
                             what="every service with the daemon's history")
            reported = {s["service"]: s["status"] for s in screen.report["services"]}
            for name in expected:
                row = screen._rows[name]
                # A check slower than 1 s is "degraded" (CI's loaded machine has seen one): both answer.
                assert reported[name] in ("up", "degraded"), (name, reported[name])
                assert text(row.query_one(".svc-status", Label)) == reported[name]
                assert text(row.query_one(".svc-latency", Label)).endswith("ms")
                assert len(row.query_one(Sparkline).data) >= 2, name
            overall = screen.query_one("#health-overall", Static)
            status = screen.report["status"]
            assert status in ("healthy", "degraded") and overall.has_class(f"-{status}")
            assert text(overall).startswith(status.upper())
            assert not notifications(app)

            # Nothing pressed: the live check and the sampled history move on by themselves.
            checked, points = screen.report["checkedAt"], len(screen._rows["database"].history)
            await wait_until(pilot, lambda: screen.report["checkedAt"] != checked
                             and len(screen._rows["database"].history) > points, timeout=8,
                             what="a refresh without a key press")

            # Hidden, it stops asking.
            await pilot.press("4")
            await pilot.pause(0.2)
            checked = screen.report["checkedAt"]
            await pilot.pause(1.0)
            assert screen.report["checkedAt"] == checked

            app.theme = "textual-light"
            await pilot.press("2")
            await wait_until(pilot, lambda: screen.report["checkedAt"] != checked, what="a refresh on return")
            assert app.screen is screen and screen._rows["database"].history
    run(main())


def test_health_shows_a_core_store_that_is_down(daemon, owner_token):
    closed = free_port()

    def queue_on_a_closed_port() -> None:
        socket.create_connection(("127.0.0.1", closed), timeout=1).close()

    daemon.services.health.add_check("queue", queue_on_a_closed_port)

    async def main() -> None:
        app = make_console(daemon, owner_token, start="health")
        async with app.run_test(size=(80, 24), notifications=True) as pilot:
            screen = app.screen
            await wait_until(pilot, lambda: app.ready and "queue" in screen._rows and screen._rows["queue"].status,
                             what="the health report")
            overall = screen.query_one("#health-overall", Static)
            assert text(overall).startswith("DOWN") and overall.has_class("-down")
            queue = screen._rows["queue"]
            assert text(queue.query_one(".svc-status", Label)) == "down" and queue.has_class("-down")
            detail = screen._details["queue"]
            assert detail.display and "ConnectionRefusedError" in text(detail)
            assert text(screen._rows["database"].query_one(".svc-status", Label)) in ("up", "degraded")  # answers
            # Not a platform admin: the history is the console's own checks.
            assert not screen.from_daemon_history and screen._rows["database"].history
            # logmail's 503 is an answer, not a lost connection.
            assert app.connection == "connected" and not notifications(app)
    run(main())


# -- Outbound -------------------------------------------------------------------------------------

def test_outbound_lists_the_queue_and_retries_a_failed_mail(daemon, api):
    token = platform_admin_token(daemon, api)
    out = daemon.services.outbound
    good = out.send_alert("ops@example.com", "Quota [bold]warning", "You are at 90 %.")
    bad = out.send_alert(BOUNCING, "Bounced [/] alert", "text")
    report = out.process_due()
    assert report["sent"] == 1 and report["failed"] == 1

    async def main() -> None:
        app = make_console(daemon, token, start="outbound")
        async with app.run_test(size=(80, 24), notifications=True) as pilot:
            screen = app.screen
            assert isinstance(screen, OutboundScreen)
            await wait_until(pilot, lambda: {good, bad} <= set(screen.emails) and screen.stats, what="the queue")
            table = screen.query_one("#outbound-table", DataTable)
            assert cell(table, bad, "subject") == "Bounced [/] alert"  # untrusted text, not markup
            assert cell(table, good, "subject") == "Quota [bold]warning"
            assert cell(table, bad, "status") == "failed" and cell(table, bad, "tries") == "1/5"
            assert "550" in cell(table, bad, "error")
            assert cell(table, good, "status") == "sent"
            stats = text(screen.query_one("#outbound-stats", Static))
            assert "1 sent" in stats and "1 failed" in stats

            # Status colours are the theme's, so they follow a switch to a light theme.
            dark_error = app.theme_variables["error"]
            assert table.get_cell(bad, "status").style == dark_error
            app.theme = "catppuccin-latte"
            await wait_until(pilot, lambda: table.get_cell(bad, "status").style == app.theme_variables["error"]
                             != dark_error, what="the light theme's colours")
            app.theme = "textual-light"

            # A sent mail cannot be sent again: the API's refusal is a notification.
            table.move_cursor(row=table.get_row_index(good))
            await pilot.press("R")
            await wait_until(pilot, lambda: any("delivery confirmed" in n for n in notifications(app)),
                             what="the refusal")
            assert out.get(good)["status"] == "sent"

            screen.query_one("#outbound-filter").value = "failed"
            await wait_until(pilot, lambda: set(screen.emails) == {bad}, what="only the failed mail")
            selected = screen.query_one("#outbound-selected", Static)
            assert selected.display and "550 5.1.1 unknown user" in text(selected)

            await pilot.press("enter")
            await wait_until(pilot, lambda: isinstance(app.screen, OutboundDetailScreen), what="the attempt log")
            attempts = app.screen.query_one("#outbound-attempts", DataTable)
            assert attempts.row_count == 1
            assert [str(c) for c in attempts.get_row_at(0)][2:4] == ["permanent", "550"]

            await pilot.press("R")
            await wait_until(pilot, lambda: cell(table, bad, "status") == "queued", what="the retried row")
            assert app.screen is screen and cell(table, bad, "tries") == "0/5"
            assert any("queued again" in n for n in notifications(app))
            assert out.get(bad)["status"] == "queued" and out.get(bad)["attemptCount"] == 0
    run(main())


def test_outbound_tells_someone_who_is_not_a_platform_admin_why_it_is_empty(daemon, owner_token):
    async def main() -> None:
        app = make_console(daemon, owner_token, start="outbound")
        async with app.run_test(size=(80, 24), notifications=True) as pilot:
            screen = app.screen
            await wait_until(pilot, lambda: screen.allowed is False, what="the explanation")
            explain = screen.query_one("#outbound-explain", Static)
            assert explain.display and "for platform admins only" in text(explain)
            assert not screen.query_one("#outbound-table").display
            await pilot.press("R", "r")
            await pilot.pause(0.3)
            assert screen.allowed is False and not notifications(app)
            assert "retry" not in {b.binding.action for b in app.active_bindings.values()}
    run(main())


# -- Accounts -------------------------------------------------------------------------------------

def test_accounts_show_the_last_error_and_sync_now_runs_a_sync(daemon, api, monkeypatch):
    monkeypatch.setattr(accounts_screen, "FOLLOW_UP_SECONDS", 0.3)
    created = api.post("/api/accounts", json={
        "accountName": "Support [b]", "emailAddress": "support@example.com", "protocol": "imap",
        "hostname": "127.0.0.1", "port": free_port(), "encryption": "none", "username": "support",
        "password": "secret-pw"})
    assert created.status_code == 201, created.text
    account_id = created.json()["id"]
    deadline = time.monotonic() + 10
    while not api.get(f"/api/accounts/{account_id}").json()["lastError"]:
        assert time.monotonic() < deadline, "the daemon never tried the account"
        time.sleep(0.05)

    async def main() -> None:
        app = make_console(daemon, api.headers["Authorization"].split()[1], start="accounts")
        async with app.run_test(size=(80, 24), notifications=True) as pilot:
            screen = app.screen
            assert isinstance(screen, AccountsScreen)
            await wait_until(pilot, lambda: account_id in screen.accounts, what="the account")
            table = screen.query_one("#accounts-table", DataTable)
            assert cell(table, account_id, "address") == "support@example.com"
            assert cell(table, account_id, "protocol") == "IMAP"
            assert cell(table, account_id, "status") == "error"
            assert "refused the connection" in cell(table, account_id, "error")
            selected = screen.query_one("#accounts-selected", Static)
            assert selected.display and "refused the connection" in text(selected)
            failed_at = screen.accounts[account_id]["lastErrorAt"]

            await pilot.press("s")
            await wait_until(pilot, lambda: any("requested" in n for n in notifications(app)),
                             what="the sync notification")
            await wait_until(pilot, lambda: screen.accounts[account_id]["lastErrorAt"] > failed_at, timeout=10,
                             what="the requested sync's outcome")
            assert cell(table, account_id, "status") == "error"

            await pilot.press("enter")
            await wait_until(pilot, lambda: isinstance(app.screen, AccountDetailScreen), what="the details")
            facts = text(app.screen.query_one(".detail-facts", Static))
            assert "Support [b]" in text(app.screen.query_one(".detail-title", Static))
            assert "refused the connection" in facts and "INBOX" in facts and "no encryption" in facts
            await pilot.press("escape")
            assert app.screen is screen
    run(main())
