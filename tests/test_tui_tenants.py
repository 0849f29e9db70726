"""The console's Tenants area, driven through Pilot against a real platform-mode daemon: a platform
admin sees the organisations with their tiers, usage and users, changes a tier, suspends and
unsuspends, and ends sessions; anyone else gets an explanation instead."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from sqlalchemy import select, update
from textual.widgets import Button, DataTable, Input, Select, Static

from auth_helpers import PASSWORD, login, refresh
from conftest import make_settings
from logmail.services.operator import operator
from logmail.store.models import EmailAddress, Organization, User
from logmail.tui.screens.tenants import TenantsScreen
from logmail.tui.widgets.tenant_parts import TenantConfirmDialog, TenantTierDialog, UsageBar
from tui_helpers import make_console, notifications, run, wait_until

ADMIN = "root@platform.example"


@pytest.fixture
def settings(tmp_path):
    # No mail flows here, so the ingest consumer may poll slowly: a daemon in this process that polls
    # every 20 ms keeps Textual's Pilot from seeing the process idle, and each key press waits 1 s.
    return make_settings(tmp_path / "data", mode="platform", queue={"poll_interval": 1.0})


@pytest.fixture
def tenants(daemon):
    """A platform admin in the built-in organisation, and two customers: Acme (free) and Beta (pro)."""
    services = daemon.services
    who = operator(services.boot.organization_id, services.boot.organization_uuid)
    services.admin.users.create_admin(who, ADMIN, PASSWORD)
    acme = services.admin.organizations.create(who, "Acme [bold]Corp[/]", owner_email="owner@acme.example",
                                               owner_password=PASSWORD, tier="free")
    beta = services.admin.organizations.create(who, "Beta", owner_email="owner@beta.example",
                                               owner_password=PASSWORD, tier="pro")
    with services.db.write() as session:  # four of the free tier's five addresses: a warning
        org_id = session.execute(select(Organization.id).where(Organization.uuid == acme["id"])).scalar_one()
        session.add_all(EmailAddress(organization_id=org_id, address=f"box{n}@acme.example", domain="acme.example")
                        for n in range(4))
    return {"acme": acme["id"], "beta": beta["id"], "who": who}


def organisation(daemon, tenants, org_id: str) -> dict:
    return daemon.services.admin.organizations.get(tenants["who"], org_id)


async def signed_in(daemon, email: str = ADMIN):
    app = make_console(daemon, start="tenants")
    await app.client.login(email, PASSWORD)
    return app


def table_rows(table: DataTable) -> dict[str, list[str]]:
    return {key.value: [str(cell) for cell in table.get_row(key)] for key in table.rows}


async def loaded(pilot, screen: TenantsScreen, count: int = 3) -> DataTable:
    table = screen.query_one("#tenants-table", DataTable)
    await wait_until(pilot, lambda: table.row_count == count, what=f"{count} organisations listed")
    return table


async def choose(pilot, screen: TenantsScreen, org_id: str) -> None:
    table = screen.query_one("#tenants-table", DataTable)
    table.focus()
    table.move_cursor(row=table.get_row_index(org_id))
    users = screen.query_one("#tenant-users", DataTable)
    await wait_until(pilot, lambda: screen.selected == org_id and screen.usage is not None
                     and screen.usage.get("organizationId") == org_id and users.row_count > 0,
                     what="the organisation's usage and users")


async def notified(pilot, text: str) -> None:
    await wait_until(pilot, lambda: any(text in n for n in notifications(pilot.app)), what=f"a notification: {text}")


async def answer(pilot, dialog_type, button: str, reason: str | None = None) -> None:
    await wait_until(pilot, lambda: isinstance(pilot.app.screen, dialog_type), what=dialog_type.__name__)
    if reason is not None:
        pilot.app.screen.query_one("#confirm-reason", Input).value = reason
    pilot.app.screen.query_one(button, Button).press()
    await wait_until(pilot, lambda: isinstance(pilot.app.screen, TenantsScreen), what="the dialog to close")


def test_an_admin_sees_every_organisation_with_its_tier_usage_and_users(daemon, tenants):
    async def main():
        app = await signed_in(daemon)
        async with app.run_test(size=(80, 24)) as pilot:
            screen = await wait_until(pilot, lambda: isinstance(app.screen, TenantsScreen) and app.screen)
            table = await loaded(pilot, screen)
            rows = table_rows(table)
            assert rows[tenants["acme"]][:3] == ["Acme [bold]Corp[/]", "active", "free"]
            # Names are shown as they are: markup in a name is text, not styling.
            shown = "\n".join(table.render_line(y).text for y in range(table.size.height))
            assert "Acme [bold]Corp[/]" in shown
            assert rows[tenants["beta"]][:3] == ["Beta", "active", "pro"]
            assert rows[tenants["beta"]][3] == "1"  # its owner

            await choose(pilot, screen, tenants["beta"])
            assert "Beta" in str(screen.query_one("#tenant-title", Static).render())
            users = table_rows(screen.query_one("#tenant-users", DataTable))
            assert [row[:2] for row in users.values()] == [["owner@beta.example", "owner"]]
            mail = screen.query_one("#usage-mail", UsageBar)
            assert mail.figures == "0 / 50,000 (0%)" and mail.has_class("-ok")
            assert screen.query_one("#usage-addresses", UsageBar).figures == "0 / 50 (0%)"

            # The search box narrows the list on the server.
            await pilot.press("slash", *"acm", "enter")
            await wait_until(pilot, lambda: list(table_rows(screen.query_one("#tenants-table", DataTable)))
                             == [tenants["acme"]], what="only Acme listed")
            assert "matching" in str(screen.query_one("#tenants-status", Static).render())
            assert screen.selected == tenants["acme"]

    run(main())


def test_an_admin_changes_a_tier_and_suspends_and_unsuspends_from_the_screen(daemon, tenants):
    async def main():
        app = await signed_in(daemon)
        async with app.run_test(size=(80, 24), notifications=True) as pilot:
            screen = await wait_until(pilot, lambda: isinstance(app.screen, TenantsScreen) and app.screen)
            table = await loaded(pilot, screen)
            await choose(pilot, screen, tenants["acme"])

            await pilot.press("t")
            await wait_until(pilot, lambda: isinstance(app.screen, TenantTierDialog), what="the tier picker")
            picker = app.screen.query_one("#tier-select", Select)
            assert picker.value == "free"
            picker.value = "enterprise"
            await answer(pilot, TenantTierDialog, "#tier-ok")
            await wait_until(pilot, lambda: table_rows(table)[tenants["acme"]][2] == "enterprise",
                             what="the new tier in the table")
            assert organisation(daemon, tenants, tenants["acme"])["tier"] == "enterprise"
            await notified(pilot, "enterprise tier")
            await wait_until(pilot, lambda: screen.query_one("#usage-mail", UsageBar).figures
                             == "0 / 1,000,000 (0%)", what="usage against the new tier's limits")

            await pilot.press("s")
            await answer(pilot, TenantConfirmDialog, "#confirm-ok", reason="unpaid invoice")
            await wait_until(pilot, lambda: table_rows(table)[tenants["acme"]][1] == "suspended",
                             what="suspended in the table")
            acme = organisation(daemon, tenants, tenants["acme"])
            assert (acme["status"], acme["suspendedReason"]) == ("suspended", "unpaid invoice")
            assert "unpaid invoice" in str(screen.query_one("#tenant-title", Static).render())

            # Cancelling changes nothing.
            await pilot.press("s")
            await answer(pilot, TenantConfirmDialog, "#confirm-cancel")
            assert organisation(daemon, tenants, tenants["acme"])["status"] == "suspended"

            await pilot.press("s")
            await answer(pilot, TenantConfirmDialog, "#confirm-ok")
            await wait_until(pilot, lambda: table_rows(table)[tenants["acme"]][1] == "active",
                             what="active again in the table")
            assert organisation(daemon, tenants, tenants["acme"])["status"] == "active"
            await notified(pilot, "active again")

            # The installation's own organisation is not suspended, and the screen says why.
            await choose(pilot, screen, daemon.services.boot.organization_uuid)
            await pilot.press("s")
            await notified(pilot, "built-in organisation")
            assert isinstance(app.screen, TenantsScreen)  # no confirmation asked

    run(main())


def test_moving_while_the_list_reloads_keeps_the_row_moved_to(daemon, tenants):
    """A reload that lands after the user moved puts the cursor where the user is, not where it was."""
    async def main():
        app = await signed_in(daemon)
        async with app.run_test(size=(80, 24), notifications=True) as pilot:
            screen = await wait_until(pilot, lambda: isinstance(app.screen, TenantsScreen) and app.screen)
            table = await loaded(pilot, screen)
            await choose(pilot, screen, tenants["acme"])
            held, real = asyncio.Event(), app.client.organisations
            asked = []

            async def slow_organisations(*args, **kwargs):
                asked.append(1)
                body = await real(*args, **kwargs)
                await held.wait()  # the answer is on its way while the user moves
                return body

            app.client.organisations = slow_organisations
            await pilot.press("r")
            await wait_until(pilot, lambda: asked, what="the reload asked")
            table.move_cursor(row=table.get_row_index(tenants["beta"]))
            held.set()
            await choose(pilot, screen, tenants["beta"])
            await pilot.pause(0.3)
            assert screen.selected == tenants["beta"] and screen.usage["organizationId"] == tenants["beta"]
            assert table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value == tenants["beta"]

    run(main())


def test_a_question_answered_reloads_once_and_one_cancelled_not_at_all(daemon, tenants):
    async def main():
        app = await signed_in(daemon)
        async with app.run_test(size=(80, 24), notifications=True) as pilot:
            screen = await wait_until(pilot, lambda: isinstance(app.screen, TenantsScreen) and app.screen)
            await loaded(pilot, screen)
            await choose(pilot, screen, tenants["beta"])
            await pilot.pause(0.3)
            asked, real = [], app.client.organisations

            async def counted(*args, **kwargs):
                asked.append(1)
                return await real(*args, **kwargs)

            app.client.organisations = counted
            await pilot.press("x")
            await answer(pilot, TenantConfirmDialog, "#confirm-cancel")
            await pilot.pause(0.5)
            assert asked == []
            await pilot.press("x")
            await answer(pilot, TenantConfirmDialog, "#confirm-ok")
            await notified(pilot, "Ended")
            await pilot.pause(0.5)
            assert asked == [1]

    run(main())


def test_an_admin_ends_a_users_sessions_and_an_organisations(daemon, tenants):
    with httpx.Client(base_url=f"http://127.0.0.1:{daemon.api_port}", timeout=10) as http:
        first = login(http, "owner@acme.example")
        second = login(http, "owner@acme.example")

        async def main():
            app = await signed_in(daemon)
            async with app.run_test(size=(80, 24), notifications=True) as pilot:
                screen = await wait_until(pilot, lambda: isinstance(app.screen, TenantsScreen) and app.screen)
                await loaded(pilot, screen)
                await choose(pilot, screen, tenants["acme"])
                screen.query_one("#tenant-users", DataTable).focus()
                await pilot.press("u")
                await answer(pilot, TenantConfirmDialog, "#confirm-ok")
                await notified(pilot, "Ended 2 sessions of owner@acme.example")
                assert refresh(http, first.refresh).status_code == 401
                assert refresh(http, second.refresh).status_code == 401

                third = login(http, "owner@acme.example")
                await pilot.press("x")
                await answer(pilot, TenantConfirmDialog, "#confirm-ok")
                await notified(pilot, "Ended 1 session of Acme")
                assert refresh(http, third.refresh).status_code == 401
                # The admin's own session, in another organisation, is untouched.
                assert isinstance(app.screen, TenantsScreen) and app.ready

        run(main())


def test_someone_who_is_no_platform_admin_gets_an_explanation(daemon, tenants):
    async def main():
        app = await signed_in(daemon, "owner@acme.example")
        async with app.run_test(size=(80, 24), notifications=True) as pilot:
            screen = await wait_until(pilot, lambda: isinstance(app.screen, TenantsScreen) and app.screen)
            await wait_until(pilot, lambda: screen.denied is not None, what="the explanation")
            denied = screen.query_one("#tenants-denied", Static)
            assert denied.display and "platform admins" in str(denied.render())
            assert not screen.query_one("#tenants-main").display
            await pilot.press("t", "s", "r")
            await pilot.pause()
            assert isinstance(app.screen, TenantsScreen) and screen.denied is not None
            assert not notifications(app)  # an explanation, not errors

    async def withdrawn():
        """An admin whose flag goes while the console runs: the API's 403 gets the same explanation."""
        app = await signed_in(daemon)
        async with app.run_test(size=(80, 24), notifications=True) as pilot:
            screen = await wait_until(pilot, lambda: isinstance(app.screen, TenantsScreen) and app.screen)
            await loaded(pilot, screen)
            with daemon.services.db.write() as session:
                session.execute(update(User).where(User.email == ADMIN).values(is_platform_admin=False))
            daemon.services.admin.sessions.forget(sessions=[app.identity["sessionId"]])
            await pilot.press("r")
            await wait_until(pilot, lambda: screen.denied is not None, what="the explanation")
            assert screen.query_one("#tenants-denied", Static).display
            assert not screen.query_one("#tenants-main").display and not screen.organisations
            assert not notifications(app)

    run(main())
    run(withdrawn())


def test_the_area_fits_a_small_terminal_and_uses_a_large_one(daemon, tenants):
    async def main():
        app = await signed_in(daemon)
        async with app.run_test(size=(80, 24)) as pilot:
            screen = await wait_until(pilot, lambda: isinstance(app.screen, TenantsScreen) and app.screen)
            await loaded(pilot, screen)
            await choose(pilot, screen, tenants["acme"])
            addresses = screen.query_one("#usage-addresses", UsageBar)
            assert addresses.figures == "4 / 5 (80%)" and addresses.has_class("-warn")
            for size in ((80, 24), (160, 48)):
                await pilot.resize_terminal(*size)
                await pilot.pause()
                for theme in ("textual-dark", "textual-light"):
                    app.theme = theme
                    await pilot.pause()
                    app.export_screenshot()  # renders every visible widget
                    # The bar takes the theme's warning colour, so it reads on light and dark alike.
                    fill = addresses.get_component_rich_style("usage-bar--fill").color
                    assert fill is not None and fill.triplet.hex.lower() == app.get_css_variables()["warning"].lower()
                region = screen.region
                assert region.size == size
                parts = {name: screen.query_one(name).region for name in
                         ("#tenants-search", "#tenants-table", "#tenant-title", "#usage-mail", "#usage-storage",
                          "#usage-addresses", "#tenant-users")}
                for name, part in parts.items():
                    assert part.height >= 1 and region.contains_region(part), f"{name} is not visible at {size}"
                assert parts["#tenant-users"].height >= 3  # a header and a user, at the least
                table, users = parts["#tenants-table"], parts["#tenant-users"]
                if size[0] >= 120:
                    assert users.x >= table.right, "the details sit beside the table"
                    assert table.height >= 30 and users.height >= 20
                else:
                    assert users.y >= table.bottom, "the details sit under the table"
                    assert table.height >= 5

    run(main())
