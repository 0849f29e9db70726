"""Mail: the live list of captured messages, with search, a filter by address and the message reader.

The list follows ``GET /events`` (:class:`~logmail.tui.widgets.mail_live.MailStream`) in a
long-lived worker: each ``message.received`` event carries one item of ``GET /messages``, which goes
in at the top or, while a search or filter is active, triggers a fresh look at the first page of
results, so only matching mail appears. Rows are keyed by message id, so nothing shows twice.
"""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.timer import Timer
from textual.widgets import DataTable, Footer, Header, Input, Select, Static

from logmail.tui.client import ApiError
from logmail.tui.screens.base import AreaScreen
from logmail.tui.screens.message import MessageScreen
from logmail.tui.widgets.mail_dialogs import ConfirmDialog
from logmail.tui.widgets.mail_list import MAX_ROWS, MessageList, recipients
from logmail.tui.widgets.mail_live import MailStream
from logmail.tui import formatting

PAGE = 50
# A reload keeps as many rows as were shown (up to this many), so the cursor keeps its place.
MAX_RELOAD = 500
# How long a burst of events may gather before the list is laid out again, and how soon a search
# is run again after matching mail may have arrived.
BATCH_SECONDS = 0.1
RESEARCH_SECONDS = 0.3


class MailScreen(AreaScreen):
    """The message list under a search box and an address filter; Enter opens the reader."""

    AUTO_FOCUS = "#mail-list"
    BINDINGS = [
        Binding("slash", "search", "Search"),
        Binding("escape", "clear_search", "Clear search", show=False),
        Binding("f", "filter", "Address", show=False),
        Binding("j", "cursor('down')", "Down", show=False),
        Binding("k", "cursor('up')", "Up", show=False),
        Binding("enter", "open", "Open", show=False),
        Binding("d", "delete", "Delete"),
        Binding("u", "toggle_read", "(Un)read"),
        Binding("g", "edge('top')", "Newest", show=False),
        Binding("G", "edge('bottom')", "Oldest loaded", show=False),
        Binding("m", "more", "Older mail", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.query_text = ""                 # the search that is applied (not what is being typed)
        self.to_filter: str | None = None
        self.total: int | None = None
        self.next_cursor: str | None = None
        self.configured_addresses: list[str] = []
        self.seen_recipients: set[str] = set()  # only grows, so a filter can be switched, not just cleared
        self._pending: list[dict[str, Any]] = []
        self._batch_timer: Timer | None = None
        self._research_timer: Timer | None = None
        self._problem: str | None = None     # why the last search did not run, shown under the bar
        self.offered: list[str] = []         # the addresses the filter offers now
        self.stream: MailStream | None = None  # made on mount, with the app it reports to
        self._following = False
        self._arrived_during_load: list[dict[str, Any]] | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="mail-bar"):
            yield Input(placeholder="/ search: from: to: subject: has:attachment is:unread larger:1M",
                        id="mail-search", compact=True)
            yield Select([], prompt="All addresses", id="mail-filter", compact=True)
        yield Static("", id="mail-status", classes="area-status")
        yield MessageList(id="mail-list")
        yield Footer()

    def on_mount(self) -> None:
        # Runs before AreaScreen's on_mount, whose reload() starts the first load.
        self.stream = MailStream(self.console, on_message=self._arrived, on_catch_up=self._research_now,
                                 on_state=lambda state: self._show_status())

    @property
    def table(self) -> MessageList:
        return self.query_one("#mail-list", MessageList)

    @property
    def live(self) -> str:
        """The live stream: connecting, live, reconnecting or polling."""
        return self.stream.state if self.stream is not None else "connecting"

    @property
    def filtered(self) -> bool:
        return bool(self.query_text or self.to_filter)

    def resumed(self) -> None:
        # The live stream keeps the list current while another screen is on top (a message, a
        # dialog, another area): reloading would drop the older pages loaded, for nothing.
        if self.live != "live":
            self.reload()

    # -- loading ----------------------------------------------------------------------------------

    def reload(self) -> None:
        if self.stream is None:
            return  # not mounted yet (the app may ask as it signs in): on_mount loads
        if not self.client.has_credentials:
            return
        self.stream.retry_now()
        # A merge or an older page asked for under the previous search must not land in this one.
        self.workers.cancel_group(self, "more")
        self.workers.cancel_group(self, "merge")
        self._load_list()
        self._load_addresses()

    @work(group="list", exclusive=True, exit_on_error=False)
    async def _load_list(self) -> None:
        self._show_status("Searching…" if self.filtered else "Loading…")
        limit = min(max(PAGE, len(self.table.order)), MAX_RELOAD)
        # Mail the stream adds while the page is on its way may be newer than the page: keep it.
        arrived: list[dict[str, Any]] = []
        self._arrived_during_load = arrived
        try:
            page = await self.api(self._search(limit=limit), action="Loading mail")
        finally:
            if self._arrived_during_load is arrived:  # not already a newer load's
                self._arrived_during_load = None
        if page is None:
            self._show_status()
            return
        self._problem = None
        self.table.replace(page.get("messages") or [])
        if arrived and not self.filtered:
            self.table.add_newer(reversed(arrived))
        self._take_page(page)
        self._offer_recipients()
        if not self._following:
            # Joined after the first page is in, so the merge on "ready" covers the gap between them.
            self._following = True
            self._follow()

    async def _search(self, **params: Any) -> dict[str, Any] | None:
        """One page of the current search. A query the server rejects (400) is explained here in
        plain text; any other failure goes on to :meth:`api`."""
        try:
            return await self.client.messages(q=self.query_text or None, to=self.to_filter, **params)
        except ApiError as exc:
            if exc.status != 400:
                raise
            # The server's message quotes the query, which is the user's text: never markup.
            self._problem = exc.message
            self.notify(exc.message, title="Search not understood", severity="error", timeout=8, markup=False)
            return None

    def _take_page(self, page: dict[str, Any]) -> None:
        pagination = page.get("pagination") or {}
        self.total = pagination.get("total")
        self.next_cursor = pagination.get("nextCursor")
        self._show_status()

    @work(group="more", exclusive=True, exit_on_error=False)
    async def _load_more(self) -> None:
        if self.table.trimmed:
            # The page cursor points below rows that were let go for live mail; start again.
            self.notify(f"Following live mail keeps the newest {MAX_ROWS:,} messages; press r to reload "
                        "and page back from the top, or search.", timeout=6)
            return
        if not self.next_cursor:
            return
        self._show_status("Loading older mail…")
        page = await self.api(self._search(limit=PAGE, cursor=self.next_cursor), action="Loading older mail")
        if page is None:
            self._show_status()
            return
        self.table.add_older(page.get("messages") or [])
        self._take_page(page)
        self._offer_recipients()

    @work(group="addresses", exclusive=True, exit_on_error=False)
    async def _load_addresses(self) -> None:
        try:
            body = await self.client.addresses()
        except ApiError:
            return  # the filter still offers the recipients seen; the list shows what failed
        self.configured_addresses = sorted({str(a.get("address")) for a in body.get("addresses") or []
                                            if isinstance(a, dict) and a.get("address")})
        self._offer_recipients()

    def _offer_recipients(self) -> None:
        """Fill the address filter: the organisation's addresses, or (a local daemon has none) every
        recipient seen so far."""
        for summary in self.table.summaries.values():
            rcpt = (summary.get("envelope") or {}).get("rcptTo") or []
            self.seen_recipients.update(str(a) for a in rcpt if a)
            if not rcpt:
                self.seen_recipients.update(a for a in recipients(summary) if "@" in a and "<" not in a)
        choices = set(self.configured_addresses or self.seen_recipients)
        if self.to_filter:
            choices.add(self.to_filter)
        ordered = sorted(choices, key=str.lower)
        if ordered == self.offered:
            return
        self.offered = ordered
        select = self.query_one("#mail-filter", Select)
        # set_options clears the choice; it is put back at once, and the Changed messages this posts
        # are ignored because the handler looks at the value the Select has by then.
        select.set_options((Text(formatting.one_line(a, 60)), a) for a in ordered)
        if self.to_filter:
            select.value = self.to_filter

    # -- live mail --------------------------------------------------------------------------------

    @work(group="live", exclusive=True, exit_on_error=False)
    async def _follow(self) -> None:
        await self.stream.follow()

    def _arrived(self, summary: dict[str, Any]) -> None:
        if summary.get("id") in self.table:
            return
        if self.filtered:
            # Whether mail matches a search is the server's to say: ask again shortly, once per burst.
            if self._research_timer is None:
                self._research_timer = self.set_timer(RESEARCH_SECONDS, self._research_now)
            return
        self._pending.append(summary)
        if self._batch_timer is None:
            self._batch_timer = self.set_timer(BATCH_SECONDS, self._flush)

    def _flush(self) -> None:
        self._batch_timer = None
        pending, self._pending = self._pending, []
        if self.filtered:
            self._research_now()
            return
        # Events come oldest first; the list wants the newest on top.
        if self._arrived_during_load is not None:
            self._arrived_during_load.extend(pending)
        added = self.table.add_newer(reversed(pending))
        if added and self.total is not None:
            self.total += added
        self._offer_recipients()
        self._show_status()

    def _research_now(self) -> None:
        self._research_timer = None
        self._merge_first_page()

    @work(group="merge", exclusive=True, exit_on_error=False)
    async def _merge_first_page(self) -> None:
        try:
            page = await self.client.messages(q=self.query_text or None, to=self.to_filter, limit=PAGE)
        except ApiError:
            return  # the stream or the next reload reports a daemon that went away
        added = self.table.add_newer(page.get("messages") or [])
        if added:
            self.total = (page.get("pagination") or {}).get("total", self.total)
            self._offer_recipients()
            self._show_status()

    # -- the status line --------------------------------------------------------------------------

    def _show_status(self, doing: str | None = None) -> None:
        shown = len(self.table.order)
        if doing:
            text = Text(doing)
        elif self._problem:
            text = Text(f"Search not understood: {formatting.one_line(self._problem)}", style="bold")
        elif shown == 0 and self.total is not None:
            text = Text("No mail matches this search." if self.filtered
                        else "No mail yet. Send some to the SMTP port and it appears here.")
        else:
            total = f" of {self.total}" if self.total is not None and self.total != shown else ""
            text = Text(f"{shown}{total} message{'s' if shown != 1 else ''}")
            if self.query_text:
                text.append(f" · search: {formatting.one_line(self.query_text, 40)}")
            if self.to_filter:
                text.append(f" · to {formatting.one_line(self.to_filter, 40)}")
        text.append(f" · {self.live}", style="italic")
        self.query_one("#mail-status", Static).update(text)

    # -- search and filter ------------------------------------------------------------------------

    def action_search(self) -> None:
        self.query_one("#mail-search", Input).focus()

    def action_filter(self) -> None:
        self.query_one("#mail-filter", Select).focus()

    @on(Input.Submitted, "#mail-search")
    def _run_search(self, event: Input.Submitted) -> None:
        self.query_text = event.value.strip()
        self.table.focus()
        self._problem = None
        self.reload()

    def action_clear_search(self) -> None:
        search = self.query_one("#mail-search", Input)
        had_query = bool(self.query_text)
        search.value = ""
        self.query_text = ""
        self._problem = None
        self.table.focus()
        if had_query:
            self.reload()
        else:
            self._show_status()

    @on(Select.Changed, "#mail-filter")
    def _filter_changed(self, event: Select.Changed) -> None:
        value = event.select.value if isinstance(event.select.value, str) else None
        if value == self.to_filter:
            return
        self.to_filter = value
        self.reload()

    # -- the list ---------------------------------------------------------------------------------

    def action_cursor(self, direction: str) -> None:
        if direction == "down":
            self.table.action_cursor_down()
        else:
            self.table.action_cursor_up()

    def action_edge(self, where: str) -> None:
        if self.table.row_count:
            self.table.move_cursor(row=0 if where == "top" else self.table.row_count - 1)

    @on(DataTable.RowHighlighted, "#mail-list")
    def _near_the_end(self, event: DataTable.RowHighlighted) -> None:
        table = self.table
        if table.row_count and event.cursor_row >= table.row_count - 1 and self.next_cursor:
            self._load_more()

    def action_more(self) -> None:
        if self.next_cursor or self.table.trimmed:
            self._load_more()
        else:
            self.notify("No older mail.", timeout=3)

    @on(DataTable.RowSelected, "#mail-list")
    def _row_chosen(self, event: DataTable.RowSelected) -> None:
        self.action_open()

    def action_open(self) -> None:
        summary = self.table.selected
        if summary is None:
            return
        message_id = summary["id"]
        self.app.push_screen(MessageScreen(summary), lambda changes: self._came_back(message_id, changes))

    def _came_back(self, message_id: str, changes: dict[str, Any] | None) -> None:
        """What the message view changed: read, or deleted."""
        if not changes:
            return
        if changes.get("deleted"):
            self._forget(message_id)
        else:
            self.table.update_message(message_id, **changes)

    def _forget(self, message_id: str) -> None:
        if message_id in self.table:
            self.table.remove(message_id)
            if self.total:
                self.total -= 1
        self._show_status()

    def action_delete(self) -> None:
        if self.table.selected is not None:
            self._delete(self.table.selected)

    @work(group="delete", exclusive=True, exit_on_error=False)
    async def _delete(self, summary: dict[str, Any]) -> None:
        subject = formatting.one_line(summary.get("subject"), 60) or "(no subject)"
        if not await self.app.push_screen_wait(ConfirmDialog(f"Delete “{subject}”?", confirm="Delete")):
            return
        if await self.api(self.client.delete_message(summary["id"]), action="Delete") is not None:
            self._forget(summary["id"])
            self.notify("Message deleted.", timeout=3)

    def action_toggle_read(self) -> None:
        if self.table.selected is not None:
            self._toggle_read(self.table.selected)

    @work(group="read", exit_on_error=False)
    async def _toggle_read(self, summary: dict[str, Any]) -> None:
        read = not summary.get("isRead")
        if await self.api(self.client.mark_read(summary["id"], read), action="Mark read") is not None:
            self.table.update_message(summary["id"], isRead=read)
