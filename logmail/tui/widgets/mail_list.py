"""The message list: captured mail newest first, one row per message, keyed by the message's id.

It owns the order of the rows and keeps the cursor on the message the user selected while mail
arrives above it. Every cell is a ``rich.text.Text`` built from cleaned text: DataTable would read
a plain string as markup, and a subject is written by whoever sent the mail.
"""

from __future__ import annotations

from typing import Any, Iterable

from rich.text import Text
from textual.binding import Binding
from textual.events import Resize
from textual.widgets import DataTable

from logmail.tui import formatting

TIME_WIDTH, MARK_WIDTH, SIZE_WIDTH = 12, 3, 8
# Under this many columns the "to" column gives its room to the subject; the message view shows it.
WIDE_ENOUGH_FOR_TO = 100
MAX_ROWS = 1000  # rows kept while following live mail (each batch lays every row out again)


def column_widths(width: int) -> dict[str, int]:
    """The width of each column (in cells, without padding) for a table ``width`` cells wide."""
    show_to = width >= WIDE_ENOUGH_FOR_TO
    names = ["mark", "time", "from", *(["to"] if show_to else []), "subject", "size"]
    usable = max(50, width - 2) - 2 * len(names)  # 2: the scrollbar; 2 per column: cell padding
    rest = usable - MARK_WIDTH - TIME_WIDTH - SIZE_WIDTH
    sender = max(10, min(36, rest * 3 // 10))
    recipient = max(10, min(32, rest // 4)) if show_to else 0
    widths = {"mark": MARK_WIDTH, "time": TIME_WIDTH, "from": sender, "to": recipient,
              "subject": max(10, rest - sender - recipient), "size": SIZE_WIDTH}
    return {name: widths[name] for name in names}


LABELS = {"mark": "", "time": "Received", "from": "From", "to": "To", "subject": "Subject", "size": "Size"}


def recipients(message: dict[str, Any]) -> list[str]:
    """Who a message was for: the To header, else the SMTP envelope."""
    to = message.get("to")
    found = [formatting.address(a) for a in to] if isinstance(to, list) else []
    if not found:
        envelope = message.get("envelope")
        rcpt = envelope.get("rcptTo") if isinstance(envelope, dict) else None
        found = [formatting.one_line(a) for a in rcpt] if isinstance(rcpt, list) else []
    return [a for a in found if a]


def row_cells(message: dict[str, Any], widths: dict[str, int]) -> list[Text]:
    unread = not message.get("isRead")
    style = "bold" if unread else ""
    mark = Text(no_wrap=True)
    mark.append("●" if unread else " ", style="bold")
    mark.append("@" if message.get("attachmentCount") else " ")
    mark.append("!" if message.get("hasParseErrors") else " ", style="bold red")
    to = recipients(message)
    to_text = (to[0] + (f" +{len(to) - 1}" if len(to) > 1 else "")) if to else "—"
    subject = formatting.one_line(message.get("subject"))
    values = {
        "mark": mark,
        "time": Text(formatting.when(message.get("receivedAt")), no_wrap=True),
        "from": _cell(formatting.address(message.get("from")) or "—", widths.get("from", 0), style),
        "to": _cell(to_text, widths.get("to", 0), style),
        "subject": (_cell(subject, widths.get("subject", 0), style) if subject
                    else Text("(no subject)", style="italic dim", no_wrap=True)),
        "size": Text(formatting.size(message.get("size")), justify="right", no_wrap=True),
    }
    return [values[name] for name in widths]


def _cell(value: str, width: int, style: str) -> Text:
    return Text(formatting.one_line(value, width or None), style=style, no_wrap=True, overflow="ellipsis")


class MessageList(DataTable):
    """Rows of message summaries (the items of ``GET /messages``), newest first."""

    # DataTable's own Enter has no description; this one shows in the footer and the help.
    BINDINGS = [Binding("enter", "select_cursor", "Open")]

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)
        self.summaries: dict[str, dict[str, Any]] = {}
        self.order: list[str] = []
        self.widths: dict[str, int] = {}
        self.trimmed = False  # the oldest rows went to make room for live mail

    # -- what the screen asks ---------------------------------------------------------------------

    @property
    def selected_id(self) -> str | None:
        if not self.order:
            return None
        return self.order[min(max(self.cursor_row, 0), len(self.order) - 1)]

    @property
    def selected(self) -> dict[str, Any] | None:
        message_id = self.selected_id
        return self.summaries.get(message_id) if message_id else None

    def __contains__(self, message_id: object) -> bool:
        return message_id in self.summaries

    # -- changing the rows ------------------------------------------------------------------------

    def replace(self, messages: Iterable[dict[str, Any]]) -> None:
        """Show exactly these messages, keeping the cursor on the selected one if it is still there."""
        keep = self.selected_id
        self.summaries, self.order, self.trimmed = {}, [], False
        self._take(messages, self.order)
        self._rebuild(keep, shift=0)

    def add_newer(self, messages: Iterable[dict[str, Any]]) -> int:
        """Put messages not shown yet above the others (given newest first); how many were new."""
        fresh: list[str] = []
        self._take(messages, fresh)
        if fresh:
            self.order[:0] = fresh
            keep = self.selected_id_before(len(fresh))
            # A console left following a busy installation for hours must not grow (and re-lay)
            # without end: the oldest rows go, unless the cursor is on one; "older mail" brings
            # them back.
            if len(self.order) > MAX_ROWS:
                cut = max(MAX_ROWS, self.order.index(keep) + 1 if keep in self.summaries else 0)
                for message_id in self.order[cut:]:
                    self.summaries.pop(message_id, None)
                del self.order[cut:]
                self.trimmed = True
            self._rebuild(keep, shift=len(fresh))
        return len(fresh)

    def selected_id_before(self, inserted: int) -> str | None:
        """The id under the cursor before ``inserted`` rows went in above the old ones."""
        old = self.order[inserted:]
        if not old:
            return None
        return old[min(max(self.cursor_row, 0), len(old) - 1)]

    def add_older(self, messages: Iterable[dict[str, Any]]) -> int:
        """Append messages not shown yet below the others (the next page); how many were new."""
        fresh: list[str] = []
        self._take(messages, fresh)
        for message_id in fresh:
            self.add_row(*row_cells(self.summaries[message_id], self.widths), key=message_id)
        self.order.extend(fresh)
        return len(fresh)

    def update_message(self, message_id: str, **changes: Any) -> None:
        summary = self.summaries.get(message_id)
        if summary is None:
            return
        summary.update(changes)
        for name, cell in zip(self.widths, row_cells(summary, self.widths)):
            self.update_cell(message_id, name, cell)

    def remove(self, message_id: str) -> None:
        if message_id not in self.summaries:
            return
        self.remove_row(message_id)
        self.order.remove(message_id)
        del self.summaries[message_id]

    # -- internals --------------------------------------------------------------------------------

    def _take(self, messages: Iterable[dict[str, Any]], into: list[str]) -> None:
        for message in messages:
            message_id = message.get("id") if isinstance(message, dict) else None
            if isinstance(message_id, str) and message_id not in self.summaries:
                self.summaries[message_id] = dict(message)
                into.append(message_id)

    def _rebuild(self, keep: str | None, *, shift: int) -> None:
        """Lay every row out again (DataTable cannot insert above a row), then put the cursor back
        on ``keep`` and the view where it was, moved down by the ``shift`` rows that went in above."""
        old_row, old_scroll = self.cursor_row, self.scroll_y
        self.clear(columns=True)
        for name, width in self.widths.items():
            self.add_column(LABELS[name], width=width, key=name)
        for message_id in self.order:
            self.add_row(*row_cells(self.summaries[message_id], self.widths), key=message_id)
        if not self.order:
            return
        row = self.order.index(keep) if keep in self.summaries else min(max(old_row, 0), len(self.order) - 1)
        if old_scroll == 0 or not shift:
            # At the top the new mail should be seen arriving: the view stays, the cursor follows its row.
            self.move_cursor(row=row, animate=False)
        else:
            self.move_cursor(row=row, animate=False, scroll=False)
            self.call_after_refresh(self.scroll_to, y=old_scroll + shift, animate=False)

    def on_resize(self, event: Resize) -> None:
        # DataTable's own resize handler runs as well: Textual calls each class's handler in turn.
        widths = column_widths(event.size.width)
        if widths != self.widths:
            self.widths = widths
            self._rebuild(self.selected_id, shift=0)
