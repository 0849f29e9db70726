"""RabbitMQ stopped during ingest: 451 while the queue is away, never a 250 for mail that is not
safe, and after it returns nothing is lost or doubled."""

from __future__ import annotations

import time

import httpx
import pytest

from conftest import make_settings, smtp_send_code as send, wait_for_messages
from rabbit_peer import PrivateBroker

pytestmark = [pytest.mark.rabbitmq, pytest.mark.slow]


@pytest.fixture
def broker():
    b = PrivateBroker()
    b.start()
    yield b
    b.cleanup()




def test_rabbitmq_stopped_during_ingest(tmp_path, broker):
    from logmail.daemon.runner import Daemon

    settings = make_settings(tmp_path / "data", queue={"url": broker.url, "prefix": "fault"})
    d = Daemon(settings).start_in_thread()
    try:
        token = (tmp_path / "data" / "owner.token").read_text().strip()
        api = httpx.Client(base_url=f"http://127.0.0.1:{d.api_port}", headers={"Authorization": f"Bearer {token}"},
                           timeout=30)
        acknowledged = [s for s in (f"before-{i}" for i in range(5)) if send(d.smtp_port, s) == 250]
        assert len(acknowledged) == 5
        wait_for_messages(api, 5)

        broker.stop(kill=True)
        codes = [send(d.smtp_port, f"during-{i}") for i in range(3)]
        assert codes == [451, 451, 451]  # never 250 for mail the queue has not confirmed

        broker.start()
        deadline = time.monotonic() + 60
        while send(d.smtp_port, "probe") != 250:
            assert time.monotonic() < deadline, "ingestion did not resume after RabbitMQ came back"
            time.sleep(0.5)
        acknowledged.append("probe")
        acknowledged += [s for s in (f"after-{i}" for i in range(5)) if send(d.smtp_port, s) == 250]
        assert len(acknowledged) == 11
        subjects = [m["subject"] for m in wait_for_messages(api, 11, timeout=60)]
        time.sleep(1)  # anything doubled would show up now
        subjects = [m["subject"] for m in api.get("/messages", params={"limit": 1000}).json()["messages"]]
        assert sorted(subjects) == sorted(acknowledged)
    finally:
        d.stop()
