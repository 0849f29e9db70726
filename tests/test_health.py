"""Health: liveness, every service checked now, the sampled history, and alerts on transitions only."""

from __future__ import annotations


import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import update

from auth_helpers import client, create_user, login
from conftest import make_settings
from logmail.services.health import Sample, overall
from logmail.store.models import User
from ports import free_port


class Sink:
    async def handle_DATA(self, server, session, envelope):
        return "250 OK"


@pytest.fixture
def smtp_server():
    port = free_port()
    controller = Controller(Sink(), hostname="127.0.0.1", port=port)
    controller.start()
    yield controller, port
    try:
        controller.stop()
    except AssertionError:  # already stopped by the test
        pass


@pytest.fixture
def settings(tmp_path, smtp_server):
    _, port = smtp_server
    return make_settings(tmp_path / "data", outbound={"smtp_host": "127.0.0.1", "smtp_port": port,
                                                      "smtp_backup_host": "127.0.0.1",
                                                      "smtp_backup_port": free_port()})


def test_liveness_is_public_and_detail_is_not(daemon, api):
    with client(daemon) as anonymous:
        assert anonymous.get("/health").json()["status"] == "healthy"
        assert anonymous.get("/health/detailed").status_code == 401
    report = api.get("/health/detailed").json()
    by_name = {s["service"]: s for s in report["services"]}
    assert {"database", "content", "queue", "smtp-primary", "smtp-backup"} <= set(by_name)
    # Slower than 1 s is "degraded", which a loaded machine can see; both mean the service answers.
    assert by_name["database"]["status"] in ("up", "degraded") and by_name["database"]["latencyMs"] >= 0
    assert by_name["smtp-primary"]["status"] in ("up", "degraded")
    assert by_name["smtp-backup"]["status"] == "down" and by_name["smtp-backup"]["detail"]
    assert report["status"] == "degraded"  # a backup server down is not an outage


def test_a_core_store_down_is_an_outage(daemon, api, monkeypatch):
    def broken() -> None:
        raise ConnectionRefusedError("queue unreachable")

    monkeypatch.setitem(daemon.services.health.checks, "queue", broken)
    resp = api.get("/health/detailed")
    assert resp.status_code == 503 and resp.json()["status"] == "down"
    assert overall([Sample("cache", "down", None, "x"), Sample("database", "up", 1.0, None)]) == "degraded"


def test_transitions_alert_once_each_way_with_a_server_stopped_and_started(daemon, smtp_server):
    controller, port = smtp_server
    health = daemon.services.health
    seen = []
    health.on_transition = lambda service, before, now, sample: seen.append((service, before, now))
    health.sample()
    assert ("smtp-primary", None, "down") not in seen
    assert ("smtp-backup", None, "down") in seen  # a service that starts out down is news
    seen.clear()
    controller.stop()
    health.sample()
    health.sample()  # still down: no second alert
    assert seen == [("smtp-primary", "up", "down")]
    restarted = Controller(Sink(), hostname="127.0.0.1", port=port)
    restarted.start()
    try:
        health.sample()
    finally:
        restarted.stop()
    assert seen == [("smtp-primary", "up", "down"), ("smtp-primary", "down", "up")]
    assert health.latest_statuses()["smtp-primary"] == "up"


def test_history_for_platform_admins_and_pruning(daemon, api):
    health = daemon.services.health
    for _ in range(3):
        health.sample()
    create_user(api, "ops@a.example", "admin")
    with client(daemon) as http:
        ops = login(http, "ops@a.example").auth
        assert http.get("/admin/health", headers=ops).status_code == 403
        assert http.get("/admin/health/history", headers=ops).status_code == 403
        with daemon.services.db.write() as session:
            session.execute(update(User).where(User.email == "ops@a.example").values(is_platform_admin=True))
        ops = login(http, "ops@a.example").auth
        latest = http.get("/admin/health", headers=ops).json()
        assert latest["status"] == "degraded" and {s["service"] for s in latest["services"]} >= {"database"}
        history = http.get("/admin/health/history", headers=ops, params={"service": "database", "limit": 2}).json()
        assert history["pagination"]["total"] == 3 and len(history["samples"]) == 2
        assert all(s["service"] == "database" for s in history["samples"])
        assert http.get("/admin/health/history", headers=ops, params={"hours": 0}).status_code == 400
    assert health.prune(daemon.services.auth.now() + 1) >= 15
    assert health.history(service=None, since_ms=0, limit=10, offset=0)[1] == 0


def test_platform_admins_are_notified_of_transitions(daemon, api, smtp_server):
    from sqlalchemy import select

    from logmail.daemon.health_job import alert_admins
    from logmail.store.models_outbound import Notification

    controller, _ = smtp_server
    create_user(api, "root@a.example", "admin")
    with daemon.services.db.write() as session:
        session.execute(update(User).where(User.email == "root@a.example").values(is_platform_admin=True))
    health = daemon.services.health
    health.on_transition = alert_admins(daemon.services)
    health.sample()  # primary up, backup down from the start
    controller.stop()
    health.sample()
    health.sample()
    with daemon.services.db.read() as session:
        titles = sorted(n.title for n in session.execute(select(Notification)).scalars())
    assert titles == ["smtp-backup is down", "smtp-primary is down"]
