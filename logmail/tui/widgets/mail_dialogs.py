"""The small questions the mail screens ask: "really delete?" and "save where?".

Both take untrusted text (a subject, a file name) and show it as plain text, never as markup.
"""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Static
from rich.text import Text


class ConfirmDialog(ModalScreen[bool]):
    """A yes/no question; dismissed with True only when the user confirms."""

    BINDINGS = [
        Binding("y", "answer(True)", "Yes"),
        Binding("n,escape", "answer(False)", "No"),
    ]

    def __init__(self, question: str, *, confirm: str = "Yes", cancel: str = "Cancel") -> None:
        super().__init__(classes="mail-dialog")
        self.question = question
        self.confirm_label = confirm
        self.cancel_label = cancel

    def compose(self) -> ComposeResult:
        with Vertical(classes="mail-dialog-box"):
            yield Static(Text(self.question), classes="mail-dialog-question")
            yield Static("y confirms, n or Esc cancels.", classes="mail-dialog-hint")
            with Horizontal(classes="mail-dialog-buttons"):
                yield Button(self.confirm_label, variant="error", id="dialog-confirm")
                yield Button(self.cancel_label, id="dialog-cancel")

    def on_mount(self) -> None:
        # The safe answer has the focus, so a stray Enter never destroys anything.
        self.query_one("#dialog-cancel", Button).focus()

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "dialog-confirm")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)


class PathDialog(ModalScreen["str | None"]):
    """Asks for a file path (pre-filled); dismissed with the path, or None when cancelled."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, title: str, default: str) -> None:
        super().__init__(classes="mail-dialog")
        self.title_text = title
        self.default = default

    def compose(self) -> ComposeResult:
        with Vertical(classes="mail-dialog-box"):
            yield Static(Text(self.title_text), classes="mail-dialog-question")
            yield Input(value=self.default, id="dialog-path", placeholder="~/Downloads/file")
            yield Static("Enter saves, Esc cancels. An existing file is only replaced if you say so.",
                         classes="mail-dialog-hint")

    def on_mount(self) -> None:
        self.query_one("#dialog-path", Input).focus()

    @on(Input.Submitted, "#dialog-path")
    def _submitted(self, event: Input.Submitted) -> None:
        path = event.value.strip()
        self.dismiss(path or None)

    def action_cancel(self) -> None:
        self.dismiss(None)
