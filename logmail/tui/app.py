"""The operator console: a Textual app over logmail's public REST API.

The app composes the areas (mail, health, outbound, accounts, tenants), binds the keys that move
between them, and owns the connection state: a failed call anywhere marks the daemon as gone and
starts a quiet reconnect loop; the screens reload once it answers again. It never talks to
anything but the :class:`~logmail.tui.client.LogmailClient` it is given.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

from textual import work
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.reactive import reactive
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Input, TextArea
from textual.worker import Worker, WorkerState

from logmail.tui.client import ApiError, ApiUnavailable, AuthRequired, LogmailClient
from logmail.tui.screens.accounts import AccountsScreen
from logmail.tui.screens.health import HealthScreen
from logmail.tui.screens.help import HelpScreen, key_label
from logmail.tui.screens.login import LoginScreen
from logmail.tui.screens.mail import MailScreen
from logmail.tui.screens.outbound import OutboundScreen
from logmail.tui.screens.tenants import TenantsScreen

STYLES = Path(__file__).parent / "styles"

AREAS: dict[str, tuple[str, str]] = {
    # mode: (key, what the palette says)
    "mail": ("1", "Mail: the live list of captured messages"),
    "health": ("2", "Health: each service's status and latency"),
    "outbound": ("3", "Outbound: notification mail waiting to be sent (platform admins)"),
    "accounts": ("4", "Accounts: your IMAP/POP3 mailboxes and their sync"),
    "tenants": ("5", "Tenants: organisations, tiers, usage and users (platform admins)"),
}

RECONNECT_SECONDS = 2.0


class LogmailConsole(App[None]):
    TITLE = "logmail"
    CSS_PATH = [STYLES / "console.tcss", STYLES / "mail.tcss", STYLES / "areas.tcss", STYLES / "tenants.tcss"]
    MODES = {"mail": MailScreen, "health": HealthScreen, "outbound": OutboundScreen,
             "accounts": AccountsScreen, "tenants": TenantsScreen}
    BINDINGS = [
        *(Binding(key, f"area('{mode}')", mode.capitalize(), show=False) for mode, (key, _) in AREAS.items()),
        Binding("question_mark", "help", "Help"),
        Binding("q", "quit", "Quit"),
    ]

    connection: reactive[str] = reactive("connecting")

    def __init__(self, client: LogmailClient, *, start: str = "mail") -> None:
        super().__init__()
        self.client = client
        self.start_area = start if start in AREAS else "mail"
        # The header names the installation; tests pin it so snapshots do not depend on a port.
        self.display_url = client.url
        self.identity: dict[str, Any] | None = None
        self.ready = False
        self._reconnect_timer: Timer | None = None
        self._login_open = False

    # -- start-up and identity --------------------------------------------------------------------

    def on_mount(self) -> None:
        self._show_status()
        self.switch_mode(self.start_area)
        if self.client.has_credentials:
            self._load_identity()
        else:
            self.need_login()

    @work(exclusive=True, group="identity", exit_on_error=False)
    async def _load_identity(self) -> None:
        try:
            self.identity = await self.client.me()
        except AuthRequired:
            self.need_login()
            return
        except ApiUnavailable as exc:
            self.connection_lost(exc)
            return
        except ApiError as exc:
            self.notify(exc.message, title=exc.error, severity="error", markup=False)
            return
        self.connection_ok()
        first = not self.ready
        self.ready = True
        self._show_status()
        if first and isinstance(self.screen, Screen) and hasattr(self.screen, "reload"):
            self.screen.reload()

    @property
    def is_platform_admin(self) -> bool:
        return bool(self.identity and self.identity.get("isPlatformAdmin"))

    def need_login(self) -> None:
        """Credentials are missing or were refused: ask for them (once, however many calls failed)."""
        if self._login_open:
            return
        self._login_open = True
        self.ready = False
        self.connection = "signed out"
        self.push_screen(LoginScreen(), self._logged_in)

    def _logged_in(self, ok: bool | None) -> None:
        self._login_open = False
        if ok:
            self.notify("Signed in.", timeout=3)
            self._load_identity()

    # -- connection state -------------------------------------------------------------------------

    def connection_ok(self) -> None:
        if self._login_open:
            return  # a late answer to a call made before the credentials were refused: still signed out
        if self.connection != "connected":
            was_lost = self.connection == "reconnecting"
            self.connection = "connected"
            self._stop_reconnecting()
            if was_lost:
                self.notify("Reconnected.", timeout=3)
                if not self.ready:
                    self._load_identity()
                elif hasattr(self.screen, "reload"):
                    self.screen.reload()

    def connection_lost(self, exc: ApiError) -> None:
        if self.connection == "reconnecting":
            return
        self.connection = "reconnecting"
        self.notify(f"{exc.message}. Reconnecting…", title="Connection lost", severity="warning", timeout=6,
                    markup=False)
        if self._reconnect_timer is None:
            self._reconnect_timer = self.set_interval(RECONNECT_SECONDS, self._probe)

    def _stop_reconnecting(self) -> None:
        if self._reconnect_timer is not None:
            self._reconnect_timer.stop()
            self._reconnect_timer = None

    @work(exclusive=True, group="reconnect", exit_on_error=False)
    async def _probe(self) -> None:
        try:
            await self.client.get("/health")
        except ApiError:
            return
        self.connection_ok()

    def watch_connection(self) -> None:
        self._show_status()

    def _show_status(self) -> None:
        who = ""
        if self.identity:
            who = " · platform admin" if self.is_platform_admin else f" · {self.identity.get('role') or 'token'}"
        self.sub_title = f"{self.display_url} · {self.connection}{who}"

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """The one place a worker's unexpected failure goes: a notification, never a crash."""
        if event.state == WorkerState.ERROR and event.worker.error is not None:
            error = event.worker.error
            if isinstance(error, ApiUnavailable):
                self.connection_lost(error)
            elif isinstance(error, ApiError):
                self.notify(error.message, title=error.error, severity="error", markup=False)
            else:
                self.notify(f"{type(error).__name__}: {error}", title="Something went wrong", severity="error",
                            markup=False)

    # -- actions ----------------------------------------------------------------------------------

    def action_area(self, mode: str) -> None:
        if mode in AREAS and self.current_mode != mode:
            self.switch_mode(mode)

    def action_help(self) -> None:
        rows: list[tuple[str, str, str]] = []
        seen: set[str] = set()
        for key, active in self.active_bindings.items():
            binding = active.binding
            if isinstance(active.node, (Input, TextArea)):
                continue  # the editing keys of a focused text field are not the console's
            if binding.description and key not in seen:
                seen.add(key)
                where = "everywhere" if active.node is self else type(active.node).__name__.replace("Screen", "")
                rows.append((key_label(key), binding.description, where))
        for mode, (key, text) in AREAS.items():
            if key not in seen:
                rows.append((key, text.split(":")[0], "everywhere"))
        rows.append(("Ctrl+P", "Command palette", "everywhere"))
        self.push_screen(HelpScreen(rows))

    async def action_sign_out(self) -> None:
        try:
            await self.client.logout()
        except ApiError:
            pass
        self.identity = None
        self.need_login()

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        for mode, (key, text) in AREAS.items():
            yield SystemCommand(f"Go to {mode.capitalize()}", f"{text} [{key}]",
                                lambda mode=mode: self.action_area(mode))
        yield SystemCommand("Refresh", "Load this screen again [r]",
                            lambda: getattr(self.screen, "reload", lambda: None)())
        yield SystemCommand("Keys", "Show every key binding [?]", self.action_help)
        if self.client.refresh_token or (self.identity and self.identity.get("method") == "session"):
            yield SystemCommand("Sign out", "End this session and forget its refresh token", self.action_sign_out)
        yield from super().get_system_commands(screen)

    async def on_unmount(self) -> None:
        self._stop_reconnecting()
        await self.client.close()
