"""How the console shows times, sizes and addresses: small pure functions the screens share."""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Any, Iterable

SPARK_BLOCKS = " ▁▂▃▄▅▆▇█"


def _number(value: Any) -> bool:
    # The API's JSON is data from elsewhere: a string or a list where a number belongs is shown, not obeyed.
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def when(epoch_ms: int | None, now_ms: int | None = None) -> str:
    """A timestamp as people read it: the time today, the date before that."""
    if not _number(epoch_ms) or not epoch_ms:
        return "—" if not epoch_ms else one_line(epoch_ms, 20)
    try:
        moment = datetime.fromtimestamp(epoch_ms / 1000).astimezone()
    except (ValueError, OverflowError, OSError):
        return "—"  # a Date header far outside what the platform's clock can show
    today = datetime.fromtimestamp((now_ms or time.time() * 1000) / 1000).astimezone().date()
    if moment.date() == today:
        return moment.strftime("%H:%M:%S")
    if moment.year == today.year:
        return moment.strftime("%d %b %H:%M")
    return moment.strftime("%d %b %Y")


def when_full(epoch_ms: int | None) -> str:
    if not _number(epoch_ms) or not epoch_ms:
        return "—" if not epoch_ms else one_line(epoch_ms, 40)
    try:
        return datetime.fromtimestamp(epoch_ms / 1000, tz=timezone.utc).astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")
    except (ValueError, OverflowError, OSError):
        return f"{epoch_ms} ms after 1970 (not a date this computer can show)"


def size(n: int | None) -> str:
    if not _number(n):
        return "—" if n is None else one_line(n, 12)
    value = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if value < 1024 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


def address(value: Any) -> str:
    """An address object ``{"name", "address"}`` (or a plain string) as one short line."""
    if isinstance(value, dict):
        name, addr = value.get("name") or "", value.get("address") or ""
        return f"{name} <{addr}>" if name and addr else (addr or name)
    return str(value or "")


def addresses(values: Iterable[Any] | None) -> str:
    return ", ".join(address(v) for v in (values or []))


def one_line(text: Any, width: int | None = None) -> str:
    """Untrusted text made safe for one table cell: no control characters, no newlines."""
    s = "".join(ch if ch.isprintable() else " " for ch in str(text or ""))
    if width is not None and len(s) > width:
        s = s[: max(0, width - 1)] + "…"
    return s


def percent(used: float | None, limit: float | None) -> float | None:
    if used is None or not limit:
        return None
    return max(0.0, used * 100.0 / limit)


def spark(values: list[float], width: int = 20) -> str:
    """A text sparkline of the last ``width`` values (for places a Sparkline widget does not fit)."""
    values = [v for v in values if v is not None][-width:]
    if not values:
        return ""
    top = max(values) or 1.0
    return "".join(SPARK_BLOCKS[min(8, int(round(v / top * 8)))] for v in values)
