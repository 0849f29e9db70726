"""The message reader: a header block, parse problems, and tabs for text, HTML, headers, raw source
and attachments. Pushed over the mail list; Esc or q goes back.

Everything shown came from a stranger's mail: it goes into widgets as plain text (TextArea,
``rich.text.Text``) with control characters made visible, never as markup. HTML is reduced to text
here; nothing in a message is executed or fetched.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Footer, Header, Static, TabbedContent, TabPane, TextArea

from logmail.tui import formatting
from logmail.tui.screens.base import AreaScreen
from logmail.tui.widgets.mail_dialogs import ConfirmDialog, PathDialog
from logmail.tui.widgets.mail_text import (FOLD_AT, default_save_path, fold_long_lines, html_to_text, readable,
                                           safe_filename)

RAW_LIMIT = 1024 * 1024  # the raw tab shows at most this much; the rest would only make it crawl
TABS = ("tab-text", "tab-html", "tab-headers", "tab-raw", "tab-attachments")


class MessageScreen(AreaScreen):
    """One message. Dismissed with what changed on the server (``{"isRead": True}``, or
    ``{"deleted": True}``), so the list can show it without loading everything again."""

    BINDINGS = [
        Binding("escape,q", "back", "Back"),
        Binding("r", "reload", "Refresh", show=False),  # the footer's room goes to the tab keys
        Binding("t", "tab('tab-text')", "Text"),
        Binding("h", "tab('tab-html')", "HTML"),
        Binding("e", "tab('tab-headers')", "Headers"),
        Binding("v", "tab('tab-raw')", "Raw"),
        Binding("a", "tab('tab-attachments')", "Files"),
        Binding("right_square_bracket", "next_tab(1)", "Next tab", show=False),
        Binding("left_square_bracket", "next_tab(-1)", "Previous tab", show=False),
        Binding("s", "save", "Save file"),
        Binding("d", "delete", "Delete", show=False),
    ]

    def __init__(self, summary: dict[str, Any]) -> None:
        super().__init__()
        self.message_id: str = summary["id"]
        self.summary = summary
        self.detail: dict[str, Any] | None = None
        self.changes: dict[str, Any] = {}
        self.raw_loaded = False

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(self._head(self.summary), id="message-head")
        yield Static("", id="message-problems")
        with TabbedContent(id="message-tabs"):
            with TabPane("Text", id="tab-text"):
                yield _reader("message-text")
            with TabPane("HTML", id="tab-html"):
                yield _reader("message-html")
            with TabPane("Headers", id="tab-headers"):
                yield DataTable(id="message-headers", cursor_type="row", zebra_stripes=True)
                yield Static("", id="message-header-value")
            with TabPane("Raw", id="tab-raw"):
                yield Static("", id="message-raw-note")
                yield _reader("message-raw")
            with TabPane("Attachments", id="tab-attachments"):
                yield DataTable(id="message-attachments", cursor_type="row", zebra_stripes=True)
                yield Static("", id="message-attachments-note")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#message-problems").display = False
        attachments = self.query_one("#message-attachments", DataTable)
        attachments.add_columns("File", "Type", "Size")
        # AreaScreen.on_mount runs after this (Textual calls each class's handler) and loads the message.

    def resumed(self) -> None:
        # The message does not change under a dialog, and loading it again would lose the reader's
        # place. "r" still reloads.
        if self.detail is None:
            self.reload()

    # -- loading ----------------------------------------------------------------------------------

    def reload(self) -> None:
        self._load()

    @work(group="message", exclusive=True, exit_on_error=False)
    async def _load(self) -> None:
        detail = await self.api(self.client.message(self.message_id), action="Opening the message")
        if detail is None:
            return
        self.detail = detail
        # Converting a large HTML body takes a while: off the event loop, so the screen stays responsive.
        bodies = await asyncio.to_thread(_bodies, detail)
        self._show(detail, *bodies)
        if not detail.get("isRead"):
            if await self.api(self.client.mark_read(self.message_id, True), action="Mark read") is not None:
                self.changes["isRead"] = True

    def _show(self, detail: dict[str, Any], text_body: str, html_body: str) -> None:
        self.query_one("#message-head", Static).update(self._head(detail))
        problems = [formatting.one_line(p) for p in detail.get("parseErrors") or []]
        box = self.query_one("#message-problems", Static)
        box.display = bool(problems)
        if problems:
            text = Text("This message could not be read cleanly:\n", style="bold")
            text.append("\n".join(f"• {p}" for p in problems), style="not bold")
            box.update(text)
        self.query_one("#message-text", TextArea).load_text(text_body)
        self.query_one("#message-html", TextArea).load_text(html_body)
        self._show_headers(detail.get("headers") or [])
        self._show_attachments(detail.get("attachments") or [])
        self.query_one("#message-tabs", TabbedContent).get_tab("tab-attachments").label = (
            f"Attachments ({len(detail.get('attachments') or [])})")

    def _head(self, message: dict[str, Any]) -> Text:
        rows = [("From", formatting.address(message.get("from"))),
                ("To", formatting.addresses(message.get("to")) or ", ".join(
                    (message.get("envelope") or {}).get("rcptTo") or []))]
        if message.get("cc"):
            rows.append(("Cc", formatting.addresses(message.get("cc"))))
        rows.append(("Subject", message.get("subject") or "(no subject)"))
        when = _when(message.get("receivedAt"))
        if message.get("date") and message.get("date") != message.get("receivedAt"):
            when = f"{_when(message.get('date'))} (received {when})"
        count = message.get("attachmentCount") or len(message.get("attachments") or [])
        extra = f" · {count} attachment{'s' if count != 1 else ''}" if count else ""
        rows.append(("Date", f"{when} · {formatting.size(message.get('size'))}{extra}"))
        text = Text(no_wrap=True, overflow="ellipsis")
        for i, (label, value) in enumerate(rows):
            text.append(f"{label:>8}  ", style="bold")
            text.append(formatting.one_line(value))
            if i < len(rows) - 1:
                text.append("\n")
        return text

    def _show_headers(self, headers: list[dict[str, Any]]) -> None:
        # Fixed widths that fill the screen: the value is cut to fit, and shown whole below the table.
        name_width = 24 if self.size.width >= 100 else 16
        value_width = max(20, self.size.width - name_width - 6)  # 4: cell padding, 2: the scrollbar
        table = self.query_one("#message-headers", DataTable)
        row = table.cursor_row
        table.clear(columns=True)
        table.add_column("Name", key="name", width=name_width)
        table.add_column("Value", key="value", width=value_width)
        for header in headers:
            table.add_row(Text(formatting.one_line(header.get("name"), 60), no_wrap=True, overflow="ellipsis"),
                          Text(formatting.one_line(header.get("value"), value_width), no_wrap=True))
        if headers:
            table.move_cursor(row=min(max(row, 0), len(headers) - 1), animate=False)
        self._show_header_value(table.cursor_row)

    def on_resize(self) -> None:
        if self.detail is not None:
            self._show_headers(self.detail.get("headers") or [])

    def _show_attachments(self, attachments: list[dict[str, Any]]) -> None:
        table = self.query_one("#message-attachments", DataTable)
        table.clear()
        for attachment in attachments:
            table.add_row(Text(formatting.one_line(attachment.get("filename") or "(unnamed)", 60)),
                          Text(formatting.one_line(attachment.get("contentType"), 40)),
                          Text(formatting.size(attachment.get("size")), justify="right"),
                          key=str(attachment.get("id")))
        self.query_one("#message-attachments-note", Static).update(
            "Enter or s saves the selected attachment." if attachments else "No attachments.")

    @on(DataTable.RowHighlighted, "#message-headers")
    def _header_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._show_header_value(event.cursor_row)

    def _show_header_value(self, row: int) -> None:
        """The whole of the highlighted header, which the table has to cut short."""
        headers = (self.detail or {}).get("headers") or []
        note = self.query_one("#message-header-value", Static)
        if 0 <= row < len(headers):
            note.update(Text(readable(f"{headers[row].get('name')}: {headers[row].get('value')}")))
        else:
            note.update("")

    # -- tabs -------------------------------------------------------------------------------------

    def action_tab(self, pane_id: str) -> None:
        self.query_one("#message-tabs", TabbedContent).active = pane_id

    def action_next_tab(self, step: int) -> None:
        tabs = self.query_one("#message-tabs", TabbedContent)
        current = TABS.index(tabs.active) if tabs.active in TABS else 0
        tabs.active = TABS[(current + step) % len(TABS)]

    @on(TabbedContent.TabActivated, "#message-tabs")
    def _tab_activated(self, event: TabbedContent.TabActivated) -> None:
        pane_id = event.pane.id or ""
        if pane_id == "tab-raw" and not self.raw_loaded:
            self.raw_loaded = True
            self._load_raw()
        # The pane's content takes the keys, so arrows and page keys scroll what is shown.
        for widget in event.pane.query("TextArea, DataTable"):
            widget.focus()
            break

    @work(group="raw", exclusive=True, exit_on_error=False)
    async def _load_raw(self) -> None:
        note = self.query_one("#message-raw-note", Static)
        note.update("Loading the raw source…")
        raw = await self.api(self.client.raw(self.message_id), action="Raw source")
        if raw is None:
            self.raw_loaded = False  # let the next visit try again
            note.update("The raw source could not be loaded; open this tab again to retry.")
            return
        text, folded = await asyncio.to_thread(
            lambda: fold_long_lines(readable(raw[:RAW_LIMIT].decode("utf-8", errors="replace"))))
        self.query_one("#message-raw", TextArea).load_text(text)
        said = (f"Showing the first {formatting.size(RAW_LIMIT)} of {formatting.size(len(raw))}"
                if len(raw) > RAW_LIMIT else f"{formatting.size(len(raw))}, as received")
        note.update(said + (f"; lines over {FOLD_AT} characters are folded." if folded else "."))

    # -- attachments ------------------------------------------------------------------------------

    @on(DataTable.RowSelected, "#message-attachments")
    def _attachment_chosen(self, event: DataTable.RowSelected) -> None:
        self.action_save()

    def action_save(self) -> None:
        attachments = (self.detail or {}).get("attachments") or []
        if not attachments:
            self.notify("This message has no attachments.", timeout=3)
            return
        table = self.query_one("#message-attachments", DataTable)
        row = min(max(table.cursor_row, 0), len(attachments) - 1)
        self._save(attachments[row])

    @work(group="save", exclusive=True, exit_on_error=False)
    async def _save(self, attachment: dict[str, Any]) -> None:
        name = safe_filename(attachment.get("filename"))
        answer = await self.app.push_screen_wait(
            PathDialog(f"Save {formatting.one_line(attachment.get('filename') or name, 60)} to:",
                       str(default_save_path(name))))
        if not answer:
            return
        try:
            target = Path(answer).expanduser()
            if target.is_dir():
                target = target / name
            exists = target.exists()
        except (OSError, ValueError, RuntimeError) as exc:  # "~nobody/x", a NUL byte, no permission
            self.notify(f"Not a path this computer can save to: {exc}", title="Not saved", severity="error",
                        timeout=8, markup=False)
            return
        overwrite = False
        if exists:
            if not await self.app.push_screen_wait(
                    ConfirmDialog(f"{target} already exists. Replace it?", confirm="Replace")):
                return
            overwrite = True
        data = await self.api(self.client.attachment(self.message_id, str(attachment.get("id"))),
                              action="Saving the attachment")
        if data is None:
            return
        try:
            await asyncio.to_thread(_write, target, data, overwrite)
        except OSError as exc:
            self.notify(f"Could not save to {target}: {exc.strerror or exc}", title="Not saved",
                        severity="error", timeout=8, markup=False)
            return
        self.notify(f"Saved {formatting.size(len(data))} to {target}", title="Attachment saved", markup=False)

    # -- leaving ----------------------------------------------------------------------------------

    def action_delete(self) -> None:
        self._delete()

    @work(group="delete", exclusive=True, exit_on_error=False)
    async def _delete(self) -> None:
        subject = formatting.one_line(self.summary.get("subject"), 60) or "(no subject)"
        if not await self.app.push_screen_wait(ConfirmDialog(f"Delete “{subject}”?", confirm="Delete")):
            return
        if await self.api(self.client.delete_message(self.message_id), action="Delete") is not None:
            self.notify("Message deleted.", timeout=3)
            self.dismiss({"deleted": True})

    def action_back(self) -> None:
        self.dismiss(dict(self.changes))


def _when(epoch_ms: Any) -> str:
    """A date for the header block. The Date header is the sender's to write: anything but a number
    (or a year past what datetime can show, which formatting handles) is shown as it came."""
    if not isinstance(epoch_ms, (int, float)) and epoch_ms is not None:
        return formatting.one_line(epoch_ms)
    return formatting.when_full(epoch_ms)


def _bodies(detail: dict[str, Any]) -> tuple[str, str]:
    """The text and HTML tabs' contents: untrusted text made visible, HTML reduced to text."""
    text, html = detail.get("text"), detail.get("html")
    shown_text = fold_long_lines(readable(text))[0] if text else "(This message has no plain-text part.)"
    shown_html = (fold_long_lines(html_to_text(html) or "(The HTML part has no text.)")[0] if html
                  else "(This message has no HTML part.)")
    return shown_text, shown_html


def _reader(widget_id: str) -> TextArea:
    """A read-only pane for untrusted text: no markup, wrapped, selectable for copying."""
    return TextArea("", id=widget_id, read_only=True, soft_wrap=True, show_line_numbers=False)


def _write(path: Path, data: bytes, overwrite: bool) -> None:
    # "x" refuses a file that appeared after the user was asked, so nothing is replaced unasked.
    with open(path, "wb" if overwrite else "xb") as fh:
        fh.write(data)
