"""Tenants: every organisation on the installation, its usage against its tier, and its users.

Platform admins change an organisation's tier, suspend and unsuspend it, and end its sessions or
one user's from here. Everyone else gets a plain explanation instead of a list, since the
``/admin`` endpoints answer them 403 whatever they try.

Names, emails and tier names come from the API and are shown as plain text, never as markup.
"""

from __future__ import annotations

import asyncio
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.timer import Timer
from textual.widgets import DataTable, Footer, Header, Input, Static

from logmail.tui.formatting import one_line, size, when
from logmail.tui.screens.base import AreaScreen, Forbidden, forbidden_as_value
from logmail.tui.widgets.tenant_parts import TenantConfirmDialog, TenantTierDialog, UsageBar

PAGE = 200  # organisations listed at once; the search box narrows a longer list
SEARCH_DELAY = 0.3  # seconds of quiet typing before the list is searched

NOT_ADMIN = (
    "The Tenants area is for platform admins.\n\n"
    "It lists every organisation on this installation, with its tier, usage and users, and lets a "
    "platform admin suspend one or change its tier. You are signed in without the platform-admin "
    "flag, so logmail does not show this to you.\n\n"
    "Your own organisation's mail, accounts and health are in the other areas (keys 1 to 4). "
    "An operator with a shell on the server can make a platform admin with `logmail admin create-admin`."
)


def _count(n: Any) -> str:
    return f"{n:,}" if isinstance(n, int) else "—"


class TenantsScreen(AreaScreen):
    """Organisations on the left (or on top in a narrow terminal), the selected one's details beside."""

    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (120, "-wide")]
    AUTO_FOCUS = "#tenants-table"
    # The footer of an 80-column terminal has room for the organisation's actions and the app's keys;
    # search (its box says "/") and the user's sessions are listed by the help screen (?).
    BINDINGS = [
        Binding("slash", "search", "Search organisations", show=False),
        Binding("t", "change_tier", "Set tier", tooltip="Change the organisation's tier"),
        Binding("s", "toggle_suspend", "Suspend", tooltip="Suspend or unsuspend the organisation"),
        Binding("x", "revoke_organisation", "End sessions", tooltip="End every session of the organisation"),
        Binding("u", "revoke_user", "End the highlighted user's sessions", show=False),
        Binding("escape", "leave_search", "Back to the list", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.organisations: dict[str, dict[str, Any]] = {}
        self.selected: str | None = None
        self.users: dict[str, dict[str, Any]] = {}
        self.usage: dict[str, Any] | None = None
        self.denied: str | None = None  # why the caller may not see this area, once known
        self._tiers: list[dict[str, Any]] | None = None
        self._search_timer: Timer | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("", id="tenants-status", classes="area-status")
        yield Static("", id="tenants-denied")
        with Vertical(id="tenants-main"):
            yield Input(placeholder="Search organisations by name  (/)", compact=True, id="tenants-search")
            with Horizontal(id="tenants-body"):
                table: DataTable = DataTable(id="tenants-table", cursor_type="row", zebra_stripes=True)
                table.add_column("Organisation", key="name")
                table.add_column("Status", key="status")
                table.add_column("Tier", key="tier")
                table.add_column("Users", key="users")
                table.add_column("Messages", key="messages")
                table.add_column("Storage", key="storage")
                yield table
                with Vertical(id="tenant-detail"):
                    yield Static("", id="tenant-title")
                    yield UsageBar("Mail this month", id="usage-mail")
                    yield UsageBar("Storage", id="usage-storage")
                    yield UsageBar("Addresses", id="usage-addresses")
                    yield Static("", id="tenant-facts")
                    users: DataTable = DataTable(id="tenant-users", cursor_type="row", zebra_stripes=True)
                    users.add_column("User", key="email")
                    users.add_column("Role", key="role")
                    users.add_column("Admin", key="admin")
                    users.add_column("Since", key="since")
                    yield users
        yield Footer()

    # -- loading ---------------------------------------------------------------------------------

    def reload(self) -> None:
        if not self.console.ready:
            self._status("Loading…")
            return  # the app reloads this screen once it knows who is signed in
        if not self.console.is_platform_admin:
            self._deny("not a platform admin")
            return
        self._load_organisations()

    @work(exclusive=True, group="tenants-list", exit_on_error=False)
    async def _load_organisations(self) -> None:
        search = self.query_one("#tenants-search", Input).value.strip() or None
        body = await self.api(forbidden_as_value(self.client.organisations(limit=PAGE, search=search)),
                              action="Loading organisations")
        if body is None:
            return
        if isinstance(body, Forbidden):
            self._deny(body.message)
            return
        self._allow()
        self._show_organisations(body.get("organizations") or [], body.get("pagination") or {}, search)

    def _show_organisations(self, items: list[dict[str, Any]], pagination: dict[str, Any], search: str | None) -> None:
        table = self.query_one("#tenants-table", DataTable)
        # Where the cursor is now, not what was last selected: the user may have moved while the
        # list was on its way, and the highlight saying so is not handled yet.
        previous = self._cursor_key(table) or self.selected
        self.organisations = {org["id"]: org for org in items if org.get("id")}
        alarm = self.app.get_css_variables().get("error", "red")
        name_width = 24 if self.size.width < 120 else 48  # what an 80-column terminal has room for
        table.clear()
        for org_id, org in self.organisations.items():
            table.add_row(*self._org_cells(org, alarm, name_width), key=org_id)
        total = pagination.get("total", len(items))
        shown = f"{len(items)} of {total:,}" if isinstance(total, int) and total > len(items) else f"{len(items)}"
        what = "organisation" if len(items) == 1 else "organisations"
        where = Text(f"{shown} {what}")
        if search:
            where.append(f" matching “{one_line(search, 40)}”")
        self._status(where)
        if not self.organisations:
            self._select(None)
            return
        row = table.get_row_index(previous) if previous in self.organisations else 0
        table.move_cursor(row=row)
        # Moving to the row it was on already sends no highlight event: load its details here.
        self._select(self._cursor_key(table))

    @staticmethod
    def _org_cells(org: dict[str, Any], alarm: str, name_width: int) -> list[Any]:
        status = org.get("status") or "—"
        status_cell = Text(one_line(status, 12))
        if status == "suspended":
            status_cell.stylize(f"bold {alarm}")
        name = one_line(org.get("name"), name_width) + (" (built-in)" if org.get("isBuiltin") else "")
        return [Text(name), status_cell, Text(one_line(org.get("tier"), 16)),
                Text(_count(org.get("userCount")), justify="right"),
                Text(_count(org.get("messageCount")), justify="right"),
                Text(size(org.get("storageBytes")), justify="right")]

    @staticmethod
    def _cursor_key(table: DataTable) -> str | None:
        if not table.row_count:
            return None
        return table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value

    @on(DataTable.RowHighlighted, "#tenants-table")
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        # Refilling the table highlights its first row on the way, before the cursor goes back to the
        # selected one: only the row the cursor is on now counts. A reload loads the details itself.
        if event.cursor_row != event.data_table.cursor_row or event.row_key.value == self.selected:
            return
        self._select(event.row_key.value)

    @on(DataTable.RowSelected, "#tenants-table")
    def _chosen(self) -> None:
        self.query_one("#tenant-users", DataTable).focus()

    def _select(self, org_id: str | None) -> None:
        changed = org_id != self.selected
        self.selected = org_id
        if changed:
            self.usage, self.users = None, {}
            for bar in self.query(UsageBar):
                bar.clear()
            self.query_one("#tenant-users", DataTable).clear()
            self.query_one("#tenant-facts", Static).update("")
        self._show_title()
        self.refresh_bindings()
        if org_id is not None:
            self._load_detail(org_id)

    @work(exclusive=True, group="tenants-detail", exit_on_error=False)
    async def _load_detail(self, org_id: str) -> None:
        usage, users = await asyncio.gather(
            self.api(forbidden_as_value(self.client.usage(org_id)), action="Loading usage"),
            self.api(forbidden_as_value(self.client.users(org_id, limit=PAGE)), action="Loading users"))
        for answer in (usage, users):
            if isinstance(answer, Forbidden):
                self._deny(answer.message)
                return
        if org_id != self.selected:
            return
        if usage is not None:
            self.usage = usage
            self._show_usage(usage)
        if users is not None:
            self._show_users(users.get("users") or [])

    def _show_title(self) -> None:
        org = self.organisations.get(self.selected or "")
        title = self.query_one("#tenant-title", Static)
        if org is None:
            title.update(Text("No organisation selected", style="italic"))
            return
        text = Text(one_line(org.get("name"), 60), style="bold")
        text.append(f"  ·  tier {one_line(org.get('tier'), 20)}  ·  {one_line(org.get('status'), 12)}")
        if org.get("status") == "suspended":
            text.append("\nSuspended " + when(org.get("suspendedAt")))
            if org.get("suspendedReason"):
                text.append(": " + one_line(org.get("suspendedReason"), 120))
        title.update(text)

    def _show_usage(self, usage: dict[str, Any]) -> None:
        used = usage.get("usage") or {}
        limits = (usage.get("tier") or {}).get("limits") or {}
        percent = usage.get("percent") or {}

        def limit(key: str, fmt=_count) -> str | None:
            return None if limits.get(key) is None else fmt(limits.get(key))

        self.query_one("#usage-mail", UsageBar).show(_count(used.get("emailsReceived")), limit("emailsPerMonth"),
                                                     percent.get("emailsReceived"))
        self.query_one("#usage-storage", UsageBar).show(size(used.get("storageBytes")), limit("storageBytes", size),
                                                        percent.get("storageBytes"))
        self.query_one("#usage-addresses", UsageBar).show(_count(used.get("addresses")), limit("maxAddresses"),
                                                          percent.get("addresses"))
        facts = Text(f"{_count(used.get('messages'))} messages stored · {_count(used.get('apiCalls'))} API calls "
                     f"in {one_line(usage.get('period'), 10)}", style="dim")
        self.query_one("#tenant-facts", Static).update(facts)

    def _show_users(self, items: list[dict[str, Any]]) -> None:
        table = self.query_one("#tenant-users", DataTable)
        previous = None
        if table.row_count:
            previous = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        self.users = {u["id"]: u for u in items if u.get("id")}
        table.clear()
        for user_id, user in self.users.items():
            table.add_row(Text(one_line(user.get("email"), 48)), Text(one_line(user.get("role"), 10)),
                          Text("yes" if user.get("isPlatformAdmin") else ""), Text(when(user.get("createdAt"))),
                          key=user_id)
        if previous in self.users:
            table.move_cursor(row=table.get_row_index(previous))
        self.refresh_bindings()

    # -- who may see this ------------------------------------------------------------------------

    def _deny(self, why: str) -> None:
        self.denied = why
        self.organisations, self.selected, self.users = {}, None, {}
        self._status("Platform admins only")
        self.query_one("#tenants-denied", Static).update(Text(NOT_ADMIN))
        self.set_class(True, "-denied")
        self.refresh_bindings()

    def _allow(self) -> None:
        if self.denied is not None:
            self.denied = None
            self.set_class(False, "-denied")
            self.refresh_bindings()

    def _status(self, text: str | Text) -> None:
        self.query_one("#tenants-status", Static).update(text if isinstance(text, Text) else Text(text))

    # -- search ----------------------------------------------------------------------------------

    def action_search(self) -> None:
        self.query_one("#tenants-search", Input).focus()

    def action_leave_search(self) -> None:
        self.query_one("#tenants-table", DataTable).focus()

    @on(Input.Changed, "#tenants-search")
    def _typed(self) -> None:
        if self._search_timer is not None:
            self._search_timer.stop()
        self._search_timer = self.set_timer(SEARCH_DELAY, self.reload)

    @on(Input.Submitted, "#tenants-search")
    def _searched(self) -> None:
        if self._search_timer is not None:
            self._search_timer.stop()
        self.reload()
        self.query_one("#tenants-table", DataTable).focus()

    # -- actions ---------------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Actions on an organisation or a user are greyed out until there is one to act on, and
        hidden from someone who may not use them at all."""
        if action in ("change_tier", "toggle_suspend", "revoke_organisation", "revoke_user", "search"):
            if self.denied is not None:
                return False
        if action in ("change_tier", "toggle_suspend", "revoke_organisation"):
            return None if self.selected is None else True
        if action == "revoke_user":
            return None if self._highlighted_user() is None else True
        return True

    def _highlighted_user(self) -> dict[str, Any] | None:
        table = self.query_one("#tenant-users", DataTable)
        if not table.row_count:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        return self.users.get(key or "")

    @on(DataTable.RowHighlighted, "#tenant-users")
    def _user_highlighted(self) -> None:
        self.refresh_bindings()

    def _current(self) -> dict[str, Any] | None:
        return self.organisations.get(self.selected or "")

    # Each action is one worker: ask (a modal), call the API, say what happened, show the result.

    async def _ask(self, question: str, confirm: str, *, ask_reason: bool = False) -> str | None:
        return await self.ask(TenantConfirmDialog(question, confirm, ask_reason=ask_reason))

    def _done(self, result: Any, title: str, message: str) -> None:
        if result is not None:
            self.notify(message, title=title, timeout=4, markup=False)  # names are data, not markup
            self.reload()

    @work(exclusive=True, group="tenants-action", exit_on_error=False)
    async def action_change_tier(self) -> None:
        org = self._current()
        if org is None:
            return
        if self._tiers is None:
            body = await self.api(self.client.tiers(), action="Loading tiers")
            if body is None:
                return
            self._tiers = body.get("tiers") or []
        tier = await self.ask(TenantTierDialog(org.get("name") or "", org.get("tier") or "",
                                                                self._tiers))
        if tier is not None and tier != org.get("tier"):
            done = await self.api(self.client.set_tier(org["id"], tier), action="Changing the tier")
            self._done(done, "Tier changed",
                       f"{one_line(org.get('name'), 40)} is now on the {one_line(tier, 20)} tier.")

    @work(exclusive=True, group="tenants-action", exit_on_error=False)
    async def action_toggle_suspend(self) -> None:
        org = self._current()
        if org is None:
            return
        name = one_line(org.get("name"), 40)
        if org.get("status") == "suspended":
            if await self._ask(f"Unsuspend {name}? Its mail, logins and API tokens work again at once.",
                               "Unsuspend") is not None:
                done = await self.api(self.client.unsuspend(org["id"]), action="Unsuspending")
                self._done(done, "Organisation updated", f"{name} is active again.")
        elif org.get("isBuiltin"):
            self.notify("The built-in organisation belongs to the installation: it cannot be suspended.",
                        severity="warning", timeout=5)
        else:
            reason = await self._ask(f"Suspend {name}? Its mail is refused and its users and API tokens stop "
                                     f"working until it is unsuspended. Nothing is deleted.", "Suspend",
                                     ask_reason=True)
            if reason is not None:
                done = await self.api(self.client.suspend(org["id"], reason or None), action="Suspending")
                self._done(done, "Organisation updated", f"{name} is suspended.")

    @work(exclusive=True, group="tenants-action", exit_on_error=False)
    async def action_revoke_organisation(self) -> None:
        org = self._current()
        if org is None:
            return
        name = one_line(org.get("name"), 40)
        yours = org.get("id") == (self.console.identity or {}).get("organisationId")
        if await self._ask(f"End every session of {name}? Its users must sign in again; API tokens keep working."
                           + (" Yours is one of them: the console will ask you to sign in." if yours else ""),
                           "End sessions") is not None:
            done = await self.api(self.client.revoke_organisation_sessions(org["id"]), action="Ending sessions")
            self._done(done, "Sessions revoked", f"Ended {_sessions((done or {}).get('revoked'))} of {name}.")

    @work(exclusive=True, group="tenants-action", exit_on_error=False)
    async def action_revoke_user(self) -> None:
        user = self._highlighted_user()
        if user is None:
            return
        email = one_line(user.get("email"), 60)
        yours = user.get("id") == (self.console.identity or {}).get("userId")
        if await self._ask(f"End every session of {email}? They must sign in again; their API tokens keep working."
                           + (" That is you: the console will ask you to sign in." if yours else ""),
                           "End sessions") is not None:
            done = await self.api(self.client.revoke_user_sessions(user["id"]), action="Ending sessions")
            self._done(done, "Sessions revoked", f"Ended {_sessions((done or {}).get('revoked'))} of {email}.")


def _sessions(n: Any) -> str:
    return "1 session" if n == 1 else f"{_count(n)} sessions"
