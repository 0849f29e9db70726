"""What every area screen shares: the API call wrapper that turns failures into notifications."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Awaitable, Callable

from textual.binding import Binding
from textual.screen import Screen

from logmail.tui.client import ApiError, ApiUnavailable, AuthRequired, LogmailClient

if TYPE_CHECKING:
    from logmail.tui.app import LogmailConsole


@dataclass(frozen=True)
class Forbidden:
    """The API's 403 as a value: the caller is not (or no longer) allowed, e.g. no platform admin."""

    message: str


async def forbidden_as_value(awaitable: Awaitable[Any]) -> Any:
    """A 403 becomes a :class:`Forbidden` value, so a screen explains it once instead of notifying
    on every refresh; any other failure goes on as it was."""
    try:
        return await awaitable
    except ApiError as exc:
        if exc.status == 403:
            return Forbidden(exc.message)
        raise


class AreaScreen(Screen):
    """A top-level area of the console. Subclasses load their data in :meth:`reload`.

    Network calls run in workers (``@work(exclusive=True, exit_on_error=False)``) and go through
    :meth:`api`, so an API error is a notification and a daemon that went away is the app's
    "reconnecting" status, never a crash.
    """

    BINDINGS = [Binding("r", "reload", "Refresh")]

    @property
    def console(self) -> "LogmailConsole":
        return self.app  # type: ignore[return-value]

    @property
    def client(self) -> LogmailClient:
        return self.console.client

    async def api(self, awaitable: Awaitable[Any], *, action: str | None = None) -> Any | None:
        """The result of one API call, or None when it failed (the failure has been shown)."""
        try:
            result = await awaitable
        except ApiUnavailable as exc:
            self.console.connection_lost(exc)
            return None
        except AuthRequired:
            self.console.need_login()
            return None
        except ApiError as exc:
            self.console.connection_ok()
            what = f"{action}: " if action else ""
            # Server messages quote what the user typed: never read them as markup.
            self.notify(f"{what}{exc.message}", title=exc.error, severity="error", timeout=6, markup=False)
            return None
        self.console.connection_ok()
        return result

    def reload(self) -> None:
        """Fetch this screen's data again (on mount, on resume, on reconnect, on ``r``)."""

    def action_reload(self) -> None:
        self.reload()

    _shown = False          # between a ScreenResume and the next ScreenSuspend
    _loaded_on_mount = False
    _in_own_dialog = False  # one of this screen's dialogs is on top of it

    def on_mount(self) -> None:
        self._loaded_on_mount = not self._shown  # else the resume came first and has loaded already
        self.reload()

    def on_screen_resume(self) -> None:
        # Textual resumes a screen as it is first shown, right after Mount, and twice when a mode is
        # first switched to: only a return after a suspend is a real one. Each load is a request
        # counted against the user's rate limit, so none is made for nothing.
        if self._shown:
            return
        self._shown = True
        if self._loaded_on_mount:
            self._loaded_on_mount = False
            return
        if self._in_own_dialog:
            # What the dialog was for reloads by itself once the API has answered (a reload now
            # would race it), and a dialog that was cancelled changed nothing.
            self._in_own_dialog = False
            return
        if self.console.ready:
            self.resumed()

    def on_screen_suspend(self) -> None:
        self._shown = False

    def show_dialog(self, dialog: Screen, callback: Callable[[Any], None] | None = None) -> None:
        """Push one of this screen's own dialogs: closing it does not reload the screen."""
        self._in_own_dialog = True
        self.app.push_screen(dialog, callback)

    async def ask(self, dialog: Screen) -> Any:
        """:meth:`show_dialog`, waiting for the dialog's answer (call it from a worker)."""
        self._in_own_dialog = True
        return await self.app.push_screen_wait(dialog)

    def resumed(self) -> None:
        """Back on top: a dialog or a pushed screen closed, or the user came back from another area.

        Reloads by default; a screen whose data cannot have changed meanwhile (or is kept current
        another way) overrides this to keep the user's place.
        """
        self.reload()
