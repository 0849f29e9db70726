"""Helpers for the tests of users, sessions and tokens: users made over the API, logins, a movable clock."""

from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass

import httpx

FIREFOX_LINUX = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
FIREFOX_LINUX_NEWER = "Mozilla/5.0 (X11; Linux x86_64; rv:129.0) Gecko/20100101 Firefox/129.0"
CHROME_WINDOWS = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
                  "Chrome/126.0.0.0 Safari/537.36")
PASSWORD = "correct horse battery staple"
MINUTE = 60_000
DAY = 86_400_000


class MovableClock:
    """Epoch ms that tests move forward; installed as ``services.auth.clock``."""

    def __init__(self) -> None:
        self.now = int(time.time() * 1000)

    def __call__(self) -> int:
        return self.now

    def advance(self, ms: int) -> None:
        self.now += ms


def install_clock(daemon) -> MovableClock:
    clock = MovableClock()
    daemon.services.auth.clock = clock
    return clock


def base_url(daemon) -> str:
    return f"http://127.0.0.1:{daemon.api_port}"


def client(daemon, *, user_agent: str = FIREFOX_LINUX, headers: dict | None = None, **kw) -> httpx.Client:
    return httpx.Client(base_url=base_url(daemon), headers={"User-Agent": user_agent, **(headers or {})},
                        timeout=30, **kw)


def create_user(api: httpx.Client, email: str, role: str = "member", password: str = PASSWORD) -> dict:
    resp = api.post("/users", json={"email": email, "password": password, "role": role})
    assert resp.status_code == 201, resp.text
    return resp.json()


@dataclass
class Login:
    access: str
    refresh: str | None
    body: dict

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access}"}


def login(http: httpx.Client, email: str, password: str = PASSWORD, *, in_body: bool = True) -> Login:
    payload = {"email": email, "password": password}
    if in_body:
        payload["refreshTokenInBody"] = True
    resp = http.post("/auth/login", json=payload)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    return Login(body["accessToken"], body.get("refreshToken"), body)


def refresh(http: httpx.Client, token: str) -> httpx.Response:
    return http.post("/auth/refresh", json={"refreshToken": token})


def jwt_parts(token: str) -> tuple[dict, dict, str]:
    header, payload, signature = token.split(".")
    return _b64json(header), _b64json(payload), signature


def b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data, separators=(",", ":")).encode()).decode().rstrip("=")


def _b64json(part: str) -> dict:
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def events(http: httpx.Client, headers: dict, **params) -> list[dict]:
    resp = http.get("/auth/security-events", headers=headers, params=params)
    assert resp.status_code == 200, resp.text
    return resp.json()["events"]
