"""Outbound: the mail logmail sends itself (notifications, alerts), for platform admins.

A table of the queue with a status filter and the last 24 hours in numbers; Enter shows one mail
with its attempt log, ``R`` queues it again. Anyone else is told plainly why there is nothing here,
and no call is made that would only be refused.
"""

from __future__ import annotations

import time
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import DataTable, Footer, Header, Select, Static

from logmail.tui.formatting import one_line, when, when_full
from logmail.tui.screens.base import AreaScreen, Forbidden, forbidden_as_value

STATUSES = ("queued", "sending", "sent", "failed", "expired")
PAGE = 200
COLUMNS = (("to", "To"), ("subject", "Subject"), ("status", "Status"), ("tries", "Tries"),
           ("next", "Next attempt"), ("error", "Last error"))
STATUS_TONES = {"queued": "warning", "sending": "accent", "sent": "success", "failed": "error", "expired": "error"}
NOT_ADMIN = ("The outbound mail queue is for platform admins only; this console is signed in with {who}.\n\n"
             "Sign in as a platform admin to see it (`logmail admin create-admin` makes one), or use "
             "`logmail admin outbound` on the server.")


def tone(screen_or_app: Any, status: str) -> str:
    """The theme's colour for a status, so the table reads in light and dark themes alike."""
    variables = screen_or_app.app.theme_variables
    return variables.get(STATUS_TONES.get(status, ""), "") or ""


def next_attempt(email: dict[str, Any]) -> str:
    if email.get("status") not in ("queued", "sending"):
        return "—"
    due = email.get("nextAttemptAt")
    if isinstance(due, int) and due <= time.time() * 1000:
        return "due now"
    return when(due if isinstance(due, int) else None)


class OutboundScreen(AreaScreen):
    BINDINGS = [
        Binding("enter", "details", "Attempts", show=False),
        Binding("R", "retry", "Retry mail"),
        Binding("f", "filter", "Filter"),
    ]

    AUTO_FOCUS = "#outbound-table"

    def __init__(self) -> None:
        super().__init__()
        self.emails: dict[str, dict[str, Any]] = {}
        self.stats: dict[str, Any] | None = None
        self.status_filter: str | None = None
        self.allowed: bool | None = None  # None: not known yet

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="outbound-bar"):
            yield Select([(s.capitalize(), s) for s in STATUSES], prompt="All statuses", compact=True,
                         id="outbound-filter")
            yield Static("", id="outbound-stats")
        yield Static("Loading…", id="outbound-status", classes="area-status")
        table: DataTable = DataTable(id="outbound-table", cursor_type="row", zebra_stripes=True)
        for key, label in COLUMNS:
            table.add_column(label, key=key)
        yield table
        yield Static("", id="outbound-selected", classes="area-selected")
        yield Static("", id="outbound-explain")
        yield Footer()

    def on_mount(self) -> None:
        # AreaScreen.on_mount (called too, by Textual) does the first load. The status colours
        # come from the theme, so the rows are painted again when it changes.
        self.app.theme_changed_signal.subscribe(self, self._repaint)

    def _repaint(self, _theme: object) -> None:
        for email in list(self.emails.values()):
            self._update_row(email)
        if self.stats:
            self._show_stats(self.stats)

    # -- loading -------------------------------------------------------------------------------

    def reload(self) -> None:
        if not self.console.ready:
            return  # the app reloads this screen once it knows who is signed in
        if not self.console.is_platform_admin:
            self._explain(None)
            return
        self._load()

    @work(exclusive=True, exit_on_error=False)
    async def _load(self) -> None:
        page = await self.api(forbidden_as_value(self.client.outbound(self.status_filter, limit=PAGE)),
                              action="Loading the outbound queue")
        if page is None:
            return
        if isinstance(page, Forbidden):
            self._explain(page.message)
            return
        stats = await self.api(forbidden_as_value(self.client.outbound_stats()), action="Loading outbound statistics")
        self._show_admin_view()
        self._fill(page)
        if isinstance(stats, dict):
            self._show_stats(stats)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # Retry and filter mean nothing to someone who may not see the queue: keep them out of the footer.
        if action in ("retry", "filter", "details"):
            return bool(self.allowed)
        return True

    def _explain(self, message: str | None) -> None:
        self.allowed = False
        self.refresh_bindings()
        identity = self.console.identity or {}
        who = ("an API token that is not a platform admin's" if identity.get("method") == "token"
               else "an account that is not a platform admin")
        text = NOT_ADMIN.format(who=who)
        if message:
            text += f"\n\nThe server said: {one_line(message, 200)}"
        explain = self.query_one("#outbound-explain", Static)
        explain.update(Text(text))
        explain.display = True
        for widget in ("#outbound-bar", "#outbound-table", "#outbound-status", "#outbound-selected"):
            self.query_one(widget).display = False

    def _show_admin_view(self) -> None:
        if not self.allowed:
            self.allowed = True
            self.refresh_bindings()
        self.query_one("#outbound-explain").display = False
        for widget in ("#outbound-bar", "#outbound-table", "#outbound-status"):
            self.query_one(widget).display = True

    def _fill(self, page: dict[str, Any]) -> None:
        table = self.query_one("#outbound-table", DataTable)
        keep = self.selected_id
        emails = [e for e in page.get("emails") or [] if isinstance(e, dict) and e.get("id")]
        self.emails = {str(e["id"]): e for e in emails}
        table.clear()
        for email in emails:
            table.add_row(*self._cells(email), key=str(email["id"]))
        if keep in self.emails:
            table.move_cursor(row=table.get_row_index(keep))
        self._show_selected()
        total = (page.get("pagination") or {}).get("total", len(emails))
        which = f"{self.status_filter} " if self.status_filter else ""
        status = self.query_one("#outbound-status", Static)
        if not emails:
            status.update(f"No {which}mail in the queue.")
            return
        shown = f"{len(emails)} {which}mail" + ("" if len(emails) == 1 else "s")
        more = f" of {total}" if isinstance(total, int) and total > len(emails) else ""
        status.update(f"{shown}{more} · Enter: attempts · R: retry")

    def _cells(self, email: dict[str, Any]) -> list[Text]:
        status = str(email.get("status") or "")
        tries = f"{email.get('attemptCount', 0)}/{email.get('maxAttempts', '?')}"
        return [Text(one_line(email.get("recipient"), 26)), Text(one_line(email.get("subject"), 30)),
                Text(one_line(status, 10), style=tone(self, status)), Text(tries),
                Text(next_attempt(email)), Text(one_line(email.get("lastError"), 60), style="italic")]

    def _update_row(self, email: dict[str, Any]) -> None:
        key = str(email.get("id"))
        if key not in self.emails:
            return
        self.emails[key] = email
        table = self.query_one("#outbound-table", DataTable)
        for (column, _), value in zip(COLUMNS, self._cells(email)):
            table.update_cell(key, column, value)
        self._show_selected()

    def _show_selected(self) -> None:
        """The highlighted mail's last error in full, under the table, where 80 columns leave room."""
        line = self.query_one("#outbound-selected", Static)
        email = self.emails.get(self.selected_id or "")
        error = email.get("lastError") if email else None
        line.display = bool(error) and bool(self.allowed)
        if email and error:
            text = Text(f"{one_line(email.get('recipient'), 60)}: ", style="bold")
            text.append(one_line(error, 400))
            line.update(text)

    @on(DataTable.RowHighlighted, "#outbound-table")
    def _row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._show_selected()

    def _show_stats(self, stats: dict[str, Any]) -> None:
        counts = stats.get("counts") or {}
        text = Text(f"Last {stats.get('windowHours', 24)} h: ")
        shown = [s for s in STATUSES if counts.get(s)]
        for n, status in enumerate(shown):
            text.append(" · " if n else "")
            text.append(f"{counts[status]} {status}", style=tone(self, status))
        if not shown:
            text.append("no mail")
        if stats.get("configured") is False:
            text.append("  no SMTP server configured: nothing is sent", style=tone(self, "failed"))
        self.stats = stats
        self.query_one("#outbound-stats", Static).update(text)

    # -- actions -------------------------------------------------------------------------------

    @property
    def selected_id(self) -> str | None:
        table = self.query_one("#outbound-table", DataTable)
        if not self.emails or table.row_count == 0:
            return None
        row_key, _ = table.coordinate_to_cell_key(table.cursor_coordinate)
        return row_key.value

    @on(Select.Changed, "#outbound-filter")
    def _filter_changed(self, event: Select.Changed) -> None:
        self.status_filter = None if event.value == Select.NULL else str(event.value)
        self.reload()
        self.query_one("#outbound-table").focus()

    def action_filter(self) -> None:
        if self.allowed:
            select = self.query_one("#outbound-filter", Select)
            select.focus()
            select.expanded = True

    @on(DataTable.RowSelected, "#outbound-table")
    def _row_selected(self, event: DataTable.RowSelected) -> None:
        self.action_details()

    def action_details(self) -> None:
        email_id = self.selected_id
        if email_id:
            self._open_details(email_id)

    @work(group="details", exclusive=True, exit_on_error=False)
    async def _open_details(self, email_id: str) -> None:
        email = await self.api(self.client.outbound_detail(email_id), action="Loading the mail")
        if email is None:
            return
        self._update_row(email)

        def after(choice: str | None) -> None:
            if choice == "retry":
                self._retry(email_id)

        # Closing it reloads nothing: that would race the retry asked for in it (and drop the row
        # under a filter).
        self.show_dialog(OutboundDetailScreen(email), after)

    def action_retry(self) -> None:
        email_id = self.selected_id
        if email_id:
            self._retry(email_id)

    @work(group="retry", exit_on_error=False)
    async def _retry(self, email_id: str) -> None:
        email = await self.api(self.client.outbound_retry(email_id), action="Retrying the mail")
        if email is None:
            return
        self._update_row(email)
        to = one_line(email.get("recipient"), 60)
        self.notify(f"Mail to {to} queued again; it is sent on the next pass.", title="Retry", timeout=4,
                    markup=False)  # the address is data, not markup
        stats = await self.api(self.client.outbound_stats())
        if isinstance(stats, dict):
            self._show_stats(stats)


class OutboundDetailScreen(ModalScreen[str | None]):
    """One outbound mail and every attempt to send it."""

    BINDINGS = [Binding("escape,q", "dismiss(None)", "Close"), Binding("R", "dismiss('retry')", "Retry mail")]

    def __init__(self, email: dict[str, Any]) -> None:
        super().__init__()
        self.email = email

    def compose(self) -> ComposeResult:
        e = self.email
        with VerticalScroll(id="outbound-detail", classes="area-detail"):
            yield Static(Text(one_line(e.get("subject"), 200) or "(no subject)"), classes="detail-title")
            yield Static(self._facts(), classes="detail-facts")
            yield Static("Attempts", classes="detail-heading")
            table: DataTable = DataTable(id="outbound-attempts", cursor_type="row", zebra_stripes=True)
            table.add_columns("When", "Server", "Outcome", "Code", "Took", "Message")
            for a in e.get("attempts") or []:
                if not isinstance(a, dict):
                    continue
                took = a.get("durationMs")
                table.add_row(Text(when(a.get("createdAt"))), Text(one_line(a.get("server"), 40)),
                              Text(one_line(a.get("outcome"), 12)), Text(str(a.get("code") or "—")),
                              Text(f"{took} ms" if isinstance(took, int) else "—"),
                              Text(one_line(a.get("message"), 200)))
            if not table.row_count:
                table.display = False
            yield table
            if not table.row_count:
                yield Static("No attempts yet.", classes="area-status")
            yield Static("Esc: close · R: retry this mail", classes="detail-foot")

    def _facts(self) -> Text:
        e = self.email
        rows = [("To", e.get("recipient")), ("Kind", e.get("kind")), ("Status", e.get("status")),
                ("Attempts", f"{e.get('attemptCount', 0)} of {e.get('maxAttempts', '?')}"),
                ("Created", when_full(e.get("createdAt"))), ("Next attempt", next_attempt(e)),
                ("Expires", when_full(e.get("expiresAt"))), ("Sent", when_full(e.get("sentAt"))),
                ("Message-ID", e.get("messageId")), ("Last error", e.get("lastError") or "—")]
        text = Text()
        for n, (label, value) in enumerate(rows):
            if n:
                text.append("\n")
            text.append(f"{label:<13}", style="bold")
            text.append(one_line(value, 300))
        return text
