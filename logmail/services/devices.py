"""The device a session is bound to: browser family and platform, read from the User-Agent.

A deliberately small rule set, not a User-Agent database. Version numbers never count, so a browser
update keeps its sessions; a different browser or operating system is a different device.

Browser family, first rule that matches wins (the order matters: Edge and Chrome also say
"Safari", Chrome on iOS says "CriOS"):

1. ``Edg/``, ``Edge/``, ``EdgA/`` or ``EdgiOS/`` → Edge
2. ``Firefox/`` or ``FxiOS/`` → Firefox
3. ``Chrome/``, ``Chromium/`` or ``CriOS/`` → Chrome
4. ``Safari/`` → Safari
5. starts with ``curl/`` → curl
6. starts with ``python-httpx/`` → python-httpx
7. anything else, or no User-Agent → other

Platform, first rule that matches wins (Android also says "Linux", iOS says "like Mac OS X"):

1. ``Android`` → Android
2. ``iPhone``, ``iPad``, ``iPod`` or ``iOS`` → iOS
3. ``Windows`` → Windows
4. ``Macintosh`` or ``Mac OS X`` → macOS
5. ``Linux``, ``X11`` or ``CrOS`` → Linux
6. anything else → other
"""

from __future__ import annotations

from dataclasses import dataclass

_BROWSERS = (
    ("Edge", ("Edg/", "Edge/", "EdgA/", "EdgiOS/")),
    ("Firefox", ("Firefox/", "FxiOS/")),
    ("Chrome", ("Chrome/", "Chromium/", "CriOS/")),
    ("Safari", ("Safari/",)),
)
_TOOLS = (("curl", "curl/"), ("python-httpx", "python-httpx/"))
_PLATFORMS = (
    ("Android", ("Android",)),
    ("iOS", ("iPhone", "iPad", "iPod", "iOS")),
    ("Windows", ("Windows",)),
    ("macOS", ("Macintosh", "Mac OS X")),
    ("Linux", ("Linux", "X11", "CrOS")),
)


@dataclass(frozen=True, slots=True)
class Device:
    browser: str
    platform: str

    @property
    def fingerprint(self) -> str:
        """What a session is bound to: equal fingerprints are the same device."""
        return f"{self.browser.lower()}/{self.platform.lower()}"

    @property
    def label(self) -> str:
        return f"{self.browser} on {self.platform}"


def parse_user_agent(user_agent: str | None) -> Device:
    ua = (user_agent or "").strip()
    return Device(_browser(ua), _platform(ua))


def _browser(ua: str) -> str:
    for family, markers in _BROWSERS:
        if any(m in ua for m in markers):
            return family
    for family, prefix in _TOOLS:
        if ua.lower().startswith(prefix):
            return family
    return "other"


def _platform(ua: str) -> str:
    for platform, markers in _PLATFORMS:
        if any(m in ua for m in markers):
            return platform
    return "other"


@dataclass(frozen=True, slots=True)
class Client:
    """Where a request came from: its address and its User-Agent (for sessions and the trails)."""

    ip: str = ""
    user_agent: str = ""

    @property
    def device(self) -> Device:
        return parse_user_agent(self.user_agent)
