"""The tenants area's parts: a usage bar against a tier's limit and the dialogs its actions ask in.

Names come from the API and are shown as plain text, never as markup.
"""

from __future__ import annotations

from typing import Any

from rich.style import Style
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widget import Widget
from textual.widgets import Button, Input, Select, Static

from logmail.tui.formatting import one_line


class UsageBar(Widget):
    """One metric against its limit: a label, a bar as wide as there is room for, and the figures.

    The bar's colour comes from the stylesheet (``-ok``, ``-warn``, ``-over`` on the widget, applied
    to its ``usage-bar--fill`` part), so themes decide it.
    """

    COMPONENT_CLASSES = {"usage-bar--fill"}
    LABEL_WIDTH = 16
    FIGURES_WIDTH = 22

    def __init__(self, label: str, *, id: str | None = None) -> None:
        super().__init__(id=id, classes="usage-bar")
        self.label = label
        self.percent: float | None = None
        self.figures = "—"

    def show(self, used: str, limit: str | None, percent: float | None) -> None:
        self.percent = percent
        self.figures = f"{used} / {limit}" if limit is not None else f"{used} · no limit"
        if percent is not None:
            self.figures += f" ({percent:.0f}%)"
        self.set_class(percent is not None and percent < 80, "-ok")
        self.set_class(percent is not None and 80 <= percent < 100, "-warn")
        self.set_class(percent is not None and percent >= 100, "-over")
        self.refresh()

    def clear(self) -> None:
        self.percent, self.figures = None, "—"
        self.remove_class("-ok", "-warn", "-over")
        self.refresh()

    def render(self) -> Text:
        width = self.content_size.width
        label = self.label.ljust(self.LABEL_WIDTH)[: self.LABEL_WIDTH]
        figures = " " + self.figures.rjust(self.FIGURES_WIDTH)  # so the bars of one pane line up
        room = max(0, width - len(label) - len(figures))
        text = Text(label, style="bold")
        if self.percent is None:
            text.append(" " * room)
        else:
            fill = self.get_component_rich_style("usage-bar--fill", partial=True)
            filled = min(room, round(room * min(self.percent, 100.0) / 100.0))
            if self.percent > 0 and filled == 0 and room:
                filled = 1  # any use at all shows
            text.append("█" * filled, style=fill)
            text.append("░" * (room - filled), style=fill + Style(dim=True))
        text.append(figures)
        return text


class TenantTierDialog(ModalScreen[str | None]):
    """Pick a tier for one organisation; dismissed with the tier's name, or None."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, organisation: str, current: str, tiers: list[dict[str, Any]]) -> None:
        super().__init__()
        self.organisation = organisation
        self.current = current
        self.tiers = tiers

    def compose(self) -> ComposeResult:
        options = [(Text(f"{one_line(t.get('displayName') or t['name'], 30)} ({one_line(t['name'], 30)})"), t["name"])
                   for t in self.tiers if t.get("name")]
        names = {value for _, value in options}
        with Vertical(classes="tenants-dialog"):
            yield Static(Text(f"Change the tier of {one_line(self.organisation, 40)}"), classes="dialog-title")
            yield Static(Text(f"Now on: {one_line(self.current, 30)}"), classes="dialog-note")
            yield Select(options, value=self.current if self.current in names else Select.NULL,
                         allow_blank=self.current not in names, prompt="Choose a tier", id="tier-select")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Change tier", variant="primary", id="tier-ok")
                yield Button("Cancel", id="tier-cancel")

    def on_mount(self) -> None:
        self.query_one("#tier-select", Select).focus()

    @on(Button.Pressed, "#tier-ok")
    def _ok(self) -> None:
        value = self.query_one("#tier-select", Select).value
        if value is Select.NULL:
            self.notify("Choose a tier first.", severity="warning", timeout=3)
            return
        self.dismiss(str(value))

    @on(Button.Pressed, "#tier-cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)


class TenantConfirmDialog(ModalScreen[str | None]):
    """Ask before a change: dismissed with the reason typed ("" when none was asked or given), or None."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, question: str, confirm: str, *, ask_reason: bool = False) -> None:
        super().__init__()
        self.question = question
        self.confirm = confirm
        self.ask_reason = ask_reason

    def compose(self) -> ComposeResult:
        with Vertical(classes="tenants-dialog"):
            yield Static(Text(self.question), classes="dialog-title")
            if self.ask_reason:
                yield Input(placeholder="Reason (optional, kept in the audit log)", max_length=200,
                            id="confirm-reason")
            with Horizontal(classes="dialog-buttons"):
                yield Button(self.confirm, variant="error", id="confirm-ok")
                yield Button("Cancel", id="confirm-cancel")

    def on_mount(self) -> None:
        self.query_one("#confirm-reason" if self.ask_reason else "#confirm-cancel").focus()

    @on(Input.Submitted, "#confirm-reason")
    @on(Button.Pressed, "#confirm-ok")
    def _ok(self) -> None:
        reason = self.query_one("#confirm-reason", Input).value.strip() if self.ask_reason else ""
        self.dismiss(reason)

    @on(Button.Pressed, "#confirm-cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)
