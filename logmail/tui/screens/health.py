"""Health: the overall status, and each service's status, latency and recent latency history.

Everyone who may read sees the live check (``GET /health/detailed``). The daemon's sampled history
(``GET /admin/health/history``) is for platform admins; for anyone else the sparklines are drawn
from this screen's own checks since it opened. The screen refreshes itself while it is shown.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.timer import Timer
from textual.widgets import Footer, Header, Label, Sparkline, Static

from logmail.tui.formatting import one_line, when
from logmail.tui.screens.base import AreaScreen, Forbidden, forbidden_as_value

REFRESH_SECONDS = 10.0  # a few requests a minute of the caller's auth.rate_limit_per_minute (50)
HISTORY_POINTS = 40  # samples per sparkline: about its width at 80 columns
STATUSES = ("up", "degraded", "down")
NAMES = {"database": "Database", "content": "Content store", "queue": "Queue", "cache": "Cache",
         "smtp-primary": "SMTP primary", "smtp-backup": "SMTP backup"}


def latency_text(ms: float | None) -> str:
    if ms is None:
        return "—"
    if ms < 1:
        return "<1 ms"
    if ms < 1000:
        return f"{ms:.0f} ms" if ms >= 10 else f"{ms:.1f} ms"
    return f"{ms / 1000:.1f} s"


def service_name(service: str) -> str:
    return NAMES.get(service) or one_line(service, 20)


class ServiceRow(Horizontal):
    """One service: name, status, latency, a sparkline of its latency, and what went wrong."""

    def __init__(self, service: str) -> None:
        super().__init__(classes="service-row")
        self.service = service
        self.status = ""

    def compose(self) -> ComposeResult:
        yield Label(Text(service_name(self.service)), classes="svc-name")
        yield Label("", classes="svc-status")
        yield Label("", classes="svc-latency")
        yield Sparkline([], classes="svc-spark")

    def show(self, sample: dict[str, Any], history: list[float]) -> None:
        status = str(sample.get("status") or "unknown")
        self.status = status if status in STATUSES else "unknown"
        for name in (*STATUSES, "unknown"):
            self.set_class(name == self.status, f"-{name}")
        self.query_one(".svc-status", Label).update(Text(one_line(status, 10)))
        self.query_one(".svc-latency", Label).update(latency_text(_number(sample.get("latencyMs"))))
        spark = self.query_one(Sparkline)
        spark.data = history[-HISTORY_POINTS:]
        # One column per sample: a short history stays short instead of being stretched into blocks.
        spark.styles.width = max(1, len(spark.data))
        detail = sample.get("detail")
        self.tooltip = Text(one_line(detail)) if detail else None

    @property
    def history(self) -> list[float]:
        return list(self.query_one(Sparkline).data or [])


class DetailLine(Static):
    """What is wrong with a service that is not up, under its row."""


class HealthScreen(AreaScreen):
    def __init__(self) -> None:
        super().__init__()
        self.report: dict[str, Any] | None = None
        self.from_daemon_history = False
        self._rows: dict[str, ServiceRow] = {}
        self._details: dict[str, DetailLine] = {}
        # The console's own checks, for callers who may not read the daemon's history.
        self._own: dict[str, deque[float]] = {}
        self._timer: Timer | None = None
        self._loading = False

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(Text("Checking…"), id="health-overall", classes="-unknown")
        yield Static("", id="health-source", classes="area-status")
        with Horizontal(id="health-columns"):
            yield Label("Service", classes="svc-name")
            yield Label("Status", classes="svc-status")
            yield Label("Latency", classes="svc-latency")
            yield Label("History (latency, newest right)", classes="svc-spark")
        yield VerticalScroll(id="health-services")
        yield Footer()

    # -- refreshing on its own while shown -------------------------------------------------------

    def on_mount(self) -> None:
        # AreaScreen.on_mount (called too, by Textual) does the first load.
        self._timer = self.set_interval(REFRESH_SECONDS, self._tick)

    def on_screen_suspend(self) -> None:
        if self._timer is not None:
            self._timer.pause()

    def on_screen_resume(self) -> None:
        if self._timer is not None:
            self._timer.resume()

    def _tick(self) -> None:
        if not self._loading:  # a slow check is still running: let it finish rather than restart it
            self.reload()

    # -- loading -------------------------------------------------------------------------------

    def reload(self) -> None:
        self._load()

    @work(exclusive=True, exit_on_error=False)
    async def _load(self) -> None:
        self._loading = True
        try:
            report = await self.api(self._live_report(), action="Checking health")
            if report is None:
                return
            history = None
            if self.console.ready and self.console.is_platform_admin:
                limit = min(1000, HISTORY_POINTS * max(1, len(report.get("services") or [])))
                history = await self.api(forbidden_as_value(self.client.health_history(limit)),
                                         action="Loading health history")
                if isinstance(history, Forbidden):
                    history = None  # no longer a platform admin: the console's own history will do
            await self._show(report, history)
        finally:
            self._loading = False

    async def _live_report(self) -> dict[str, Any]:
        # logmail answers 503 when a core store is down; the client returns that report as data.
        return await self.client.health()

    # -- showing -------------------------------------------------------------------------------

    async def _show(self, report: dict[str, Any], history: dict[str, Any] | None) -> None:
        self.report = report
        samples = [s for s in report.get("services") or [] if isinstance(s, dict) and s.get("service")]
        series = self._series(samples, history)
        self._show_overall(report)
        container = self.query_one("#health-services", VerticalScroll)
        for sample in samples:
            name = str(sample["service"])
            row = self._rows.get(name)
            if row is None:
                row = self._rows[name] = ServiceRow(name)
                detail = self._details[name] = DetailLine("", classes="svc-detail")
                await container.mount(row, detail)
            row.show(sample, series.get(name, []))
            text = sample.get("detail")
            detail = self._details[name]
            detail.update(Text(one_line(text)) if text else "")
            detail.display = bool(text) and sample.get("status") != "up"
        for name in set(self._rows) - {str(s["service"]) for s in samples}:
            self._rows.pop(name).remove()
            self._details.pop(name).remove()

    def _series(self, samples: list[dict[str, Any]], history: dict[str, Any] | None) -> dict[str, list[float]]:
        """Latencies per service, oldest first: the daemon's samples, or else the console's own."""
        self.from_daemon_history = history is not None
        if history is not None:
            series: dict[str, list[float]] = {}
            for item in reversed(history.get("samples") or []):  # the API lists newest first
                value = _number(item.get("latencyMs")) if isinstance(item, dict) else None
                if value is not None:
                    series.setdefault(str(item.get("service")), []).append(value)
        else:
            for sample in samples:
                value = _number(sample.get("latencyMs"))
                if value is not None:
                    self._own.setdefault(str(sample["service"]), deque(maxlen=HISTORY_POINTS)).append(value)
            series = {name: list(values) for name, values in self._own.items()}
        if history is not None:
            source = "History: the daemon's health samples."
        elif self.console.is_platform_admin:
            source = "History: since this screen opened (the daemon's samples could not be loaded)."
        else:
            source = "History: since this screen opened (sampled history is for platform admins)."
        self.query_one("#health-source", Static).update(source)
        return series

    def _show_overall(self, report: dict[str, Any]) -> None:
        status = str(report.get("status") or "unknown")
        overall = self.query_one("#health-overall", Static)
        for name in ("healthy", "degraded", "down", "unknown"):
            overall.set_class(name == status, f"-{name}")
        text = Text(one_line(status.upper(), 12), style="bold")
        checked = report.get("checkedAt")
        text.append(f"   checked {when(checked if isinstance(checked, int) else None)}")
        if report.get("version"):
            text.append(f" · logmail {one_line(report['version'], 20)}")
        overall.update(text)


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None
