"""Sign in with email and password; the refresh token is kept so the next start needs neither."""

from __future__ import annotations

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

from logmail.tui.client import ApiError, ApiUnavailable


class LoginScreen(ModalScreen[bool]):
    """Dismissed with True once signed in."""

    BINDINGS = [Binding("escape", "app.quit", "Quit")]

    def compose(self) -> ComposeResult:
        with Vertical(id="login-box"):
            yield Static("Sign in to logmail", id="login-title")
            yield Static(Text(self.app.client.url), id="login-url")  # type: ignore[attr-defined]
            yield Label("Email")
            yield Input(placeholder="you@example.com", id="login-email")
            yield Label("Password")
            yield Input(placeholder="password", password=True, id="login-password")
            yield Static("", id="login-error")
            yield Button("Sign in", variant="primary", id="login-submit")

    def on_mount(self) -> None:
        self.query_one("#login-email", Input).focus()

    @on(Input.Submitted, "#login-email")
    def _next_field(self) -> None:
        self.query_one("#login-password", Input).focus()

    @on(Input.Submitted, "#login-password")
    @on(Button.Pressed, "#login-submit")
    def _submit(self) -> None:
        email = self.query_one("#login-email", Input).value.strip()
        password = self.query_one("#login-password", Input).value
        if not email or not password:
            self._show_error("Enter your email address and password.")
            return
        self.query_one("#login-submit", Button).disabled = True
        self._show_error("Signing in…")
        self._sign_in(email, password)

    @work(exclusive=True, exit_on_error=False)
    async def _sign_in(self, email: str, password: str) -> None:
        try:
            await self.app.client.login(email, password)  # type: ignore[attr-defined]
        except ApiUnavailable as exc:
            self._show_error(f"Cannot reach the server: {exc.message}")
        except ApiError as exc:
            self._show_error(exc.message)
        else:
            self.query_one("#login-password", Input).value = ""
            self.dismiss(True)
            return
        finally:
            self.query_one("#login-submit", Button).disabled = False
        self.query_one("#login-password", Input).focus()

    def _show_error(self, text: str) -> None:
        self.query_one("#login-error", Static).update(Text(text))  # server text is never markup
