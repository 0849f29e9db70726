"""Signing in to the console against a real platform-mode daemon: the login screen, the refresh token
kept in a private file and rotated on every start, silent refreshes of a refused access token, and
a session revoked by an admin sending the user back to the login screen instead of crashing."""

from __future__ import annotations

import json
import os
import stat

import pytest
from textual.widgets import Input, Static

from auth_helpers import PASSWORD
from conftest import make_settings
from logmail.services.operator import operator
from logmail.tui.client import RefreshTokenStore
from logmail.tui.screens.login import LoginScreen
from logmail.tui.screens.mail import MailScreen
from logmail.tui.screens.tenants import TenantsScreen
from tui_helpers import make_console, notifications, run, wait_until

USER = "dev@acme.example"
ADMIN = "root@platform.example"


@pytest.fixture
def settings(tmp_path):
    # No mail flows here: a slow ingest poll keeps the process idle enough for Pilot's key presses.
    return make_settings(tmp_path / "data", mode="platform", queue={"poll_interval": 1.0})


@pytest.fixture
def people(daemon):
    """An organisation's owner and a platform admin, made as ``logmail admin`` makes them."""
    services = daemon.services
    who = operator(services.boot.organization_id, services.boot.organization_uuid)
    org = services.admin.organizations.create(who, "Acme", owner_email=USER, owner_password=PASSWORD)
    admin = services.admin.users.create_admin(who, ADMIN, PASSWORD)
    return {"who": who, "user": org["owners"][0]["id"], "admin": admin["id"]}


def url(daemon) -> str:
    return f"http://127.0.0.1:{daemon.api_port}"


async def sign_in(pilot, email: str, password: str) -> None:
    screen = await wait_until(pilot, lambda: isinstance(pilot.app.screen, LoginScreen) and pilot.app.screen,
                              what="the login screen")
    screen.query_one("#login-email", Input).value = email
    screen.query_one("#login-password", Input).value = password
    screen.query_one("#login-password", Input).focus()
    await pilot.press("enter")


def login_error(app) -> str:
    return str(app.screen.query_one("#login-error", Static).render())


def test_the_login_screen_signs_in_and_a_second_start_needs_no_password(daemon, people, tmp_path):
    path = tmp_path / "config" / "sessions.json"

    async def first_start() -> str:
        app = make_console(daemon, refresh_store=RefreshTokenStore(path))
        async with app.run_test(size=(80, 24), notifications=True) as pilot:
            await sign_in(pilot, USER, "not the password")
            await wait_until(pilot, lambda: "invalid email or password" in login_error(app), what="the error")
            assert isinstance(app.screen, LoginScreen) and not app.ready
            assert not path.exists()

            await sign_in(pilot, USER, PASSWORD)
            await wait_until(pilot, lambda: app.ready, what="signed in")
            assert isinstance(app.screen, MailScreen)
            assert app.identity["userId"] == people["user"] and app.connection == "connected"
            await wait_until(pilot, lambda: any("Signed in" in n for n in notifications(app)), what="a notification")
            assert not any("wrong" in n.lower() or "error" in n.lower() for n in notifications(app))
        # The refresh token outlives the console, readable by its owner alone.
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        token = json.loads(path.read_text())[url(daemon)]
        assert token == app.client.refresh_token and token.startswith("lmr_")
        return token

    async def second_start() -> str:
        app = make_console(daemon, refresh_store=RefreshTokenStore(path))
        assert app.client.token is None and app.client.refresh_token is not None
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_until(pilot, lambda: app.ready or isinstance(app.screen, LoginScreen), what="start-up")
            assert app.ready and not isinstance(app.screen, LoginScreen)
            assert app.identity["userId"] == people["user"]
        return json.loads(path.read_text())[url(daemon)]

    first = run(first_start())
    second = run(second_start())
    assert second != first  # rotated: each refresh token is good for one refresh
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_a_refused_access_token_is_refreshed_without_asking(daemon, people, tmp_path):
    store = RefreshTokenStore(tmp_path / "sessions.json")

    async def main():
        app = make_console(daemon, refresh_store=store, start="tenants")
        await app.client.login(ADMIN, PASSWORD)
        before = store.load(url(daemon))
        async with app.run_test(size=(80, 24), notifications=True) as pilot:
            screen = await wait_until(pilot, lambda: app.ready and isinstance(app.screen, TenantsScreen)
                                      and app.screen, what="the tenants area")
            table = screen.query_one("#tenants-table")
            await wait_until(pilot, lambda: table.row_count == 2, what="the organisations")
            table.clear()
            app.client.token = "garbage"  # as an expired or revoked access token is: refused with a 401
            await pilot.press("r")
            await wait_until(pilot, lambda: table.row_count == 2, what="the organisations again")
            assert app.client.token != "garbage"
            assert not isinstance(app.screen, LoginScreen) and app.connection == "connected"
            assert not [n for n in notifications(app) if "Signed in" not in n]
        after = store.load(url(daemon))
        assert after and after != before

    run(main())


def test_sessions_revoked_by_an_admin_bring_back_the_login_screen(daemon, people, tmp_path):
    store = RefreshTokenStore(tmp_path / "sessions.json")

    async def main():
        app = make_console(daemon, refresh_store=store, start="tenants")
        await app.client.login(ADMIN, PASSWORD)
        async with app.run_test(size=(80, 24), notifications=True) as pilot:
            screen = await wait_until(pilot, lambda: app.ready and isinstance(app.screen, TenantsScreen)
                                      and app.screen, what="the tenants area")
            table = screen.query_one("#tenants-table")
            await wait_until(pilot, lambda: table.row_count == 2, what="the organisations")

            daemon.services.admin.sessions.revoke_user(people["who"], people["admin"])
            await pilot.press("r")
            await wait_until(pilot, lambda: isinstance(app.screen, LoginScreen), what="the login screen")
            assert not app.ready
            assert store.load(url(daemon)) is None  # the refused refresh token is forgotten
            assert not [n for n in notifications(app) if "Something went wrong" in n]

            # Signing in again carries on where the user was.
            await sign_in(pilot, ADMIN, PASSWORD)
            await wait_until(pilot, lambda: app.ready and isinstance(app.screen, TenantsScreen), what="back")
            await wait_until(pilot, lambda: table.row_count == 2, what="the organisations again")
            assert store.load(url(daemon)) is not None

    run(main())


def test_two_consoles_sharing_the_sessions_file_refresh_without_ending_the_session(daemon, people, tmp_path):
    """Refresh tokens rotate and a spent one ends the session: two consoles of one person must each
    present the newest token in the shared file, never the one they started with."""
    from logmail.tui.client import LogmailClient

    store = RefreshTokenStore(tmp_path / "sessions.json")

    async def main():
        first = LogmailClient(url(daemon), refresh_store=store, timeout=5.0)
        await first.login(USER, PASSWORD)
        second = LogmailClient(url(daemon), refresh_store=store, timeout=5.0)  # starts with the same token
        try:
            for client in (first, second, first, second):
                client.token = "expired"
                assert (await client.me())["userId"] == people["user"]
            assert store.load(url(daemon)) == second.refresh_token
        finally:
            await first.close()
            await second.close()

    run(main())


def test_a_server_error_on_refresh_keeps_the_refresh_token(daemon, people, tmp_path, monkeypatch):
    from logmail.tui.client import ApiError, LogmailClient

    store = RefreshTokenStore(tmp_path / "sessions.json")

    async def main():
        client = LogmailClient(url(daemon), refresh_store=store, timeout=5.0)
        try:
            await client.login(USER, PASSWORD)
            kept = client.refresh_token
            sessions = daemon.services.auth.sessions

            def unavailable(*args, **kwargs):
                from logmail.errors import StorageUnavailableError
                raise StorageUnavailableError("the database is restarting")

            monkeypatch.setattr(sessions, "refresh", unavailable)
            client.token = "expired"
            with pytest.raises(ApiError) as caught:
                await client.me()
            assert caught.value.status == 503
            assert client.refresh_token == kept and store.load(url(daemon)) == kept
            monkeypatch.undo()
            assert (await client.me())["userId"] == people["user"]
        finally:
            await client.close()

    run(main())
