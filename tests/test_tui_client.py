"""The console's HTTP client against a real daemon: errors it turns into ApiError, and the request
limit every client shares."""

from __future__ import annotations

import time

import httpx
import pytest

from conftest import make_settings
from logmail.tui import client as client_module
from logmail.tui.client import ApiError, ApiUnavailable, AuthRequired, LogmailClient
from tui_helpers import run


@pytest.fixture
def settings(tmp_path):
    return make_settings(tmp_path / "data", auth={"rate_limit_per_minute": 5})


def url(daemon) -> str:
    return f"http://127.0.0.1:{daemon.api_port}"


def test_over_the_request_limit_a_read_is_a_clear_error_not_a_long_wait(daemon, owner_token):
    async def main():
        client = LogmailClient(url(daemon), token=owner_token, timeout=5.0)
        try:
            for _ in range(5):
                await client.messages()
            started = time.monotonic()
            with pytest.raises(ApiError) as caught:
                await client.messages()  # the limit's window is a minute: longer than the console waits
            assert caught.value.status == 429 and "requests a minute" in caught.value.message
            assert time.monotonic() - started < client_module.MAX_RATE_LIMIT_WAIT
        finally:
            await client.close()

    run(main())


def test_a_short_retry_after_is_waited_for_once(daemon, owner_token, monkeypatch):
    calls = []
    real = httpx.AsyncClient.request

    async def limited_once(self, method, path, **kwargs):
        calls.append(path)
        if len(calls) == 1:
            return httpx.Response(429, headers={"Retry-After": "1"}, json={"error": "Rate limit exceeded",
                                                                             "message": "slow down"},
                                  request=httpx.Request(method, f"{url(daemon)}{path}"))
        return await real(self, method, path, **kwargs)

    monkeypatch.setattr(httpx.AsyncClient, "request", limited_once)

    async def main():
        client = LogmailClient(url(daemon), token=owner_token, timeout=5.0)
        try:
            started = time.monotonic()
            assert "messages" in await client.messages()
            assert 1.0 <= time.monotonic() - started < 3 and calls == ["/messages", "/messages"]
        finally:
            await client.close()

    run(main())


def test_refused_and_unreachable_are_told_apart(daemon, owner_token):
    async def main():
        bad = LogmailClient(url(daemon), token="lm_not-a-token", timeout=5.0)
        gone = LogmailClient("http://127.0.0.1:9", token=owner_token, timeout=2.0)
        try:
            with pytest.raises(AuthRequired):
                await bad.messages()
            with pytest.raises(ApiUnavailable) as caught:
                await gone.messages()
            assert caught.value.status == 0 and "cannot reach" in caught.value.message
        finally:
            await bad.close()
            await gone.close()

    run(main())
