"""Accounts: the caller's IMAP/POP3 mailboxes, how their sync is going, and "sync now".

``s`` asks the daemon to sync the selected account (``POST /api/accounts/{id}/sync``: a scheduler
picks it up within seconds), so the screen looks again a few seconds later, and again while the
sync is still pending. Enter shows everything about one account. Accounts are created elsewhere.
"""

from __future__ import annotations

import time
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import DataTable, Footer, Header, Static

from logmail.tui.formatting import one_line, when, when_full
from logmail.tui.screens.base import AreaScreen

FOLLOW_UP_SECONDS = 3.0  # a requested sync starts within the daemon's dispatch interval (5 s)
FOLLOW_UPS = 6           # looks after "sync now" while the sync is still pending
PAGE = 200
COLUMNS = (("address", "Address"), ("protocol", "Type"), ("host", "Host"), ("status", "Status"),
           ("last", "Last sync"), ("next", "Next sync"), ("count", "Imported"), ("error", "Last error"))
STATUS_TONES = {"ok": "success", "error": "error", "login failed": "error", "syncing…": "accent",
                "sync requested": "accent", "disabled": "text-muted", "paused": "text-muted"}

ENCRYPTION = {"tls": "TLS", "starttls": "STARTTLS", "none": "no encryption"}


def account_status(a: dict[str, Any]) -> str:
    """One word for where the account stands, the most pressing fact first."""
    if not a.get("isEnabled"):
        return "disabled"
    if a.get("authFailed"):
        return "login failed"
    if a.get("isSyncing"):
        return "syncing…"
    if not a.get("isSyncEnabled"):
        return "paused"
    if a.get("nextSyncAt") == 0:
        return "sync requested"
    if a.get("lastError"):
        return "error"
    return "ok" if a.get("lastSyncAt") else "never synced"


def pending(a: dict[str, Any]) -> bool:
    return account_status(a) in ("syncing…", "sync requested")


def relative(epoch_ms: Any, now_ms: float | None = None) -> str:
    """A time near now as "in 25 s" or "3 min ago"; farther away, as :func:`when` says it."""
    if not isinstance(epoch_ms, int) or epoch_ms <= 0:
        return "now" if epoch_ms == 0 else "—"
    delta = (epoch_ms - (now_ms if now_ms is not None else time.time() * 1000)) / 1000
    span = abs(delta)
    if span >= 3600:
        return when(epoch_ms)
    amount = f"{span:.0f} s" if span < 90 else f"{span / 60:.0f} min"
    return f"in {amount}" if delta > 0 else f"{amount} ago"


def imported(a: dict[str, Any]) -> str:
    total = (a.get("syncStats") or {}).get("totalImported")
    return str(total) if isinstance(total, int) else "—"


class AccountsScreen(AreaScreen):
    BINDINGS = [
        Binding("s", "sync", "Sync now"),
        Binding("enter", "details", "Details", show=False),
    ]

    AUTO_FOCUS = "#accounts-table"

    def __init__(self) -> None:
        super().__init__()
        self.accounts: dict[str, dict[str, Any]] = {}
        self._follow_ups = 0

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("Loading…", id="accounts-status", classes="area-status")
        table: DataTable = DataTable(id="accounts-table", cursor_type="row", zebra_stripes=True)
        for key, label in COLUMNS:
            table.add_column(label, key=key)
        yield table
        yield Static("", id="accounts-selected", classes="area-selected")
        yield Footer()

    def on_mount(self) -> None:
        # AreaScreen.on_mount (called too, by Textual) does the first load. The status colours
        # come from the theme, so the rows are painted again when it changes.
        self.app.theme_changed_signal.subscribe(self, self._repaint)

    def _repaint(self, _theme: object) -> None:
        for account in list(self.accounts.values()):
            self._update_row(account)

    # -- loading -------------------------------------------------------------------------------

    def reload(self) -> None:
        self._load()

    @work(exclusive=True, exit_on_error=False)
    async def _load(self) -> None:
        page = await self.api(self.client.accounts(limit=PAGE), action="Loading mailbox accounts")
        if page is None:
            return
        self._fill(page)
        if self._follow_ups and any(pending(a) for a in self.accounts.values()):
            self._follow_ups -= 1
            self.set_timer(FOLLOW_UP_SECONDS, self.reload)
        else:
            self._follow_ups = 0

    def _fill(self, page: dict[str, Any]) -> None:
        table = self.query_one("#accounts-table", DataTable)
        keep = self.selected_id
        accounts = [a for a in page.get("accounts") or [] if isinstance(a, dict) and a.get("id")]
        self.accounts = {str(a["id"]): a for a in accounts}
        table.clear()
        for account in accounts:
            table.add_row(*self._cells(account), key=str(account["id"]))
        if keep in self.accounts:
            table.move_cursor(row=table.get_row_index(keep))
        self._show_selected()
        status = self.query_one("#accounts-status", Static)
        if not accounts:
            status.update("No mailbox accounts yet. Add one through the API (POST /api/accounts).")
        else:
            failing = sum(1 for a in accounts if a.get("lastError") or a.get("authFailed"))
            text = f"{len(accounts)} account" + ("" if len(accounts) == 1 else "s")
            if failing:
                text += f", {failing} with errors"
            status.update(text + " · s: sync now · Enter: details")

    def _cells(self, a: dict[str, Any]) -> list[Text]:
        status = account_status(a)
        variables = self.app.theme_variables
        host = f"{one_line(a.get('hostname'), 24)}:{a.get('port', '')}"
        return [Text(one_line(a.get("emailAddress"), 28)), Text(one_line(a.get("protocol"), 5).upper()),
                Text(host), Text(status, style=variables.get(STATUS_TONES.get(status, ""), "") or ""),
                Text(relative(a.get("lastSyncAt")) if a.get("lastSyncAt") else "never"),
                Text(relative(a.get("nextSyncAt"))), Text(imported(a), justify="right"),
                Text(one_line(a.get("lastError"), 80), style=variables.get("error", "") or "")]

    def _update_row(self, account: dict[str, Any]) -> None:
        key = str(account.get("id"))
        if key not in self.accounts:
            return
        self.accounts[key] = account
        table = self.query_one("#accounts-table", DataTable)
        for (column, _), value in zip(COLUMNS, self._cells(account)):
            table.update_cell(key, column, value)
        self._show_selected()

    def _show_selected(self) -> None:
        """The highlighted account's last error in full, under the table, where 80 columns leave room."""
        line = self.query_one("#accounts-selected", Static)
        account = self.accounts.get(self.selected_id or "")
        error = account.get("lastError") if account else None
        line.display = bool(error)
        if account and error:
            text = Text(f"{one_line(account.get('emailAddress'), 60)}: ", style="bold")
            text.append(one_line(error, 400))
            if account.get("lastErrorAt"):
                text.append(f" ({relative(account.get('lastErrorAt'))})")
            line.update(text)

    @on(DataTable.RowHighlighted, "#accounts-table")
    def _row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._show_selected()

    # -- actions -------------------------------------------------------------------------------

    @property
    def selected_id(self) -> str | None:
        table = self.query_one("#accounts-table", DataTable)
        if not self.accounts or table.row_count == 0:
            return None
        row_key, _ = table.coordinate_to_cell_key(table.cursor_coordinate)
        return row_key.value

    def action_sync(self) -> None:
        account_id = self.selected_id
        if account_id:
            self._sync(account_id)

    @work(group="sync", exit_on_error=False)
    async def _sync(self, account_id: str) -> None:
        answer = await self.api(self.client.account_sync(account_id), action="Asking for a sync")
        if answer is None:
            return
        account = answer.get("account") if isinstance(answer.get("account"), dict) else None
        if account:
            self._update_row(account)
        name = one_line((account or self.accounts.get(account_id) or {}).get("emailAddress"), 60)
        self.notify(f"Sync of {name} requested; it starts within a few seconds.", title="Sync now", timeout=4,
                    markup=False)  # the address is data, not markup
        self._follow_ups = FOLLOW_UPS
        self.set_timer(FOLLOW_UP_SECONDS, self.reload)

    @on(DataTable.RowSelected, "#accounts-table")
    def _row_selected(self, event: DataTable.RowSelected) -> None:
        self.action_details()

    def action_details(self) -> None:
        account = self.accounts.get(self.selected_id or "")
        if account:
            self.app.push_screen(AccountDetailScreen(account))


class AccountDetailScreen(ModalScreen[None]):
    """Everything the API says about one account: settings, folders, the last sync's figures."""

    BINDINGS = [Binding("escape,q", "dismiss(None)", "Close")]

    def __init__(self, account: dict[str, Any]) -> None:
        super().__init__()
        self.account = account

    def compose(self) -> ComposeResult:
        a = self.account
        with VerticalScroll(id="account-detail", classes="area-detail"):
            title = one_line(a.get("accountName"), 80) or one_line(a.get("emailAddress"), 80)
            yield Static(Text(title), classes="detail-title")
            yield Static(self._facts(), classes="detail-facts")
            folders = ((a.get("syncStats") or {}).get("folders") or {})
            if isinstance(folders, dict) and folders:
                yield Static("Folders at the last sync", classes="detail-heading")
                table: DataTable = DataTable(id="account-folders", zebra_stripes=True)
                table.add_columns("Folder", "Imported", "Seen", "Error")
                for name, figures in folders.items():
                    figures = figures if isinstance(figures, dict) else {}
                    table.add_row(Text(one_line(name, 40)), Text(str(figures.get("imported", "—"))),
                                  Text(str(figures.get("seen", "—"))), Text(one_line(figures.get("error"), 120)))
                yield table
            yield Static("Esc: close", classes="detail-foot")

    def _facts(self) -> Text:
        a = self.account
        stats = a.get("syncStats") or {}
        last_run = stats.get("lastRunMs")
        rows = [
            ("Address", a.get("emailAddress")),
            ("Server", f"{(a.get('protocol') or '').upper()} {a.get('hostname')}:{a.get('port')}, "
                       + ENCRYPTION.get(str(a.get("encryption")), str(a.get("encryption")))),
            ("User name", a.get("username")),
            ("Folders", ", ".join(str(f) for f in a.get("folders") or []) or "—"),
            ("Status", account_status(a)),
            ("Sync", f"every {a.get('syncInterval')} s" + ("" if a.get("isSyncEnabled") else " (paused)")
                     + (", IDLE" if a.get("useIdle") else "")),
            ("Last sync", when_full(a.get("lastSyncAt"))),
            ("Next sync", relative(a.get("nextSyncAt"))),
            ("Last run", f"{last_run} ms, {stats.get('imported', 0)} imported, {stats.get('seen', 0)} seen, "
                         f"{stats.get('skippedTooBig', 0)} too big" if isinstance(last_run, int) else "—"),
            ("Imported", f"{imported(a)} in all"),
            ("Login failed", "yes: fix the password, then sync" if a.get("authFailed") else "no"),
            ("Last error", a.get("lastError") or "—"),
            ("Error at", when_full(a.get("lastErrorAt"))),
        ]
        text = Text()
        for n, (label, value) in enumerate(rows):
            if n:
                text.append("\n")
            text.append(f"{label:<13}", style="bold")
            text.append(one_line(value, 400))
        return text
