"""MariaDB restarted under a running daemon: 503s and 451s while it is away, nothing lost after."""

from __future__ import annotations

import time
import uuid

import httpx
import pytest

from conftest import make_settings, smtp_send_code as send, wait_for_messages
from mariadb_peer import MariaDBPeer

pytestmark = [pytest.mark.mariadb, pytest.mark.slow]


@pytest.fixture
def peer():
    p = MariaDBPeer()
    p.start()
    yield p
    p.destroy()




def test_mariadb_restart(tmp_path, peer):
    from logmail.daemon.runner import Daemon

    url = peer.create_database(f"lm_{uuid.uuid4().hex[:8]}")
    settings = make_settings(tmp_path / "data", database={"url": url}, content={"url": ""}, queue={"url": ""})
    d = Daemon(settings).start_in_thread()
    try:
        token = (tmp_path / "data" / "owner.token").read_text().strip()
        api = httpx.Client(base_url=f"http://127.0.0.1:{d.api_port}", headers={"Authorization": f"Bearer {token}"},
                           timeout=30)
        acknowledged = [s for s in (f"before-{i}" for i in range(5)) if send(d.smtp_port, s) == 250]
        assert len(acknowledged) == 5
        wait_for_messages(api, 5)

        peer.stop()
        d.services.tokens.forget()  # the token cache must not hide the outage from this test
        started = time.monotonic()
        resp = api.get("/messages")
        assert resp.status_code == 503, resp.text
        assert resp.json()["error"] in ("Storage unavailable", "Service unavailable")
        assert time.monotonic() - started < 10, "the API did not fail fast"
        assert send(d.smtp_port, "during") == 451  # the outbox lives in MariaDB: not safe, so not 250

        peer.start()
        deadline = time.monotonic() + 30
        while api.get("/messages").status_code != 200:
            assert time.monotonic() < deadline, "the connection pool did not recover"
            time.sleep(0.2)
        acknowledged += [s for s in (f"after-{i}" for i in range(5)) if send(d.smtp_port, s) == 250]
        assert len(acknowledged) == 10
        subjects = [m["subject"] for m in wait_for_messages(api, 10, timeout=30)]
        assert sorted(subjects) == sorted(acknowledged)
    finally:
        d.stop()
