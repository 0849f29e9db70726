"""The key bindings of the screen underneath, the console's own and the command palette's."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import DataTable, Static


def key_label(key: str) -> str:
    return {"question_mark": "?", "slash": "/", "escape": "Esc", "enter": "Enter", "delete": "Del",
            "tab": "Tab"}.get(key, key)


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,question_mark", "dismiss", "Close")]

    def __init__(self, rows: list[tuple[str, str, str]]) -> None:
        super().__init__()
        self.rows = rows

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-box"):
            yield Static("Keys", id="help-title")
            table: DataTable = DataTable(id="help-table", cursor_type="row", zebra_stripes=True)
            table.add_columns("Key", "Action", "Where")
            for key, description, where in self.rows:
                table.add_row(key, description, where)
            yield table
            yield Static("Ctrl+P opens the command palette: type to go to an area or run an action. "
                         "Esc or ? closes this help.", id="help-foot")
