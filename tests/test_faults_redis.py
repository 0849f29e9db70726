"""Redis stopped under a running daemon: the shared cache falls back, everything else works."""

from __future__ import annotations

import logging
import smtplib
import time

import httpx
import pytest

from conftest import make_settings, wait_for_messages
from redis_peer import RedisPeer

pytestmark = [pytest.mark.redis, pytest.mark.slow]


def test_redis_stopped_and_started(tmp_path, caplog):
    from logmail.daemon.runner import Daemon

    peer = RedisPeer()
    peer.start()
    settings = make_settings(tmp_path / "data", cache={"url": peer.url, "prefix": "fault:", "retry_interval": 0.2})
    d = Daemon(settings).start_in_thread()
    try:
        token = (tmp_path / "data" / "owner.token").read_text().strip()
        api = httpx.Client(base_url=f"http://127.0.0.1:{d.api_port}", headers={"Authorization": f"Bearer {token}"},
                           timeout=30)
        assert api.get("/messages").status_code == 200
        cache = d.services.cache
        assert not cache.degraded

        peer.stop()
        caplog.set_level(logging.INFO, logger="logmail.cache")
        with smtplib.SMTP("127.0.0.1", d.smtp_port) as client:
            for i in range(3):
                client.sendmail("a@example.com", ["b@example.com"], f"Subject: r{i}\r\n\r\nx\r\n".encode())
        for _ in range(20):  # authentication keeps working from memory; no request fails
            assert api.get("/messages").status_code == 200
        assert [m["subject"] for m in wait_for_messages(api, 3)] == ["r2", "r1", "r0"]
        assert cache.degraded
        assert api.get("/messages", headers={"Authorization": "Bearer lm_forged"}).status_code == 401

        peer.start()
        deadline = time.monotonic() + 10
        while cache.degraded:
            api.get("/messages")
            assert time.monotonic() < deadline, "the cache did not go back to Redis"
            time.sleep(0.1)
        assert api.get("/messages").status_code == 200
    finally:
        d.stop()
        peer.stop()
