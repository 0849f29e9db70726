"""Outbound mail against real SMTP servers on loopback: failover, retry on schedule, permanent
failures, expiry, two daemons racing, a daemon killed mid-send, the password kept secret, and the
admin endpoints."""

from __future__ import annotations

import base64
import json
import logging
import os
import signal
import subprocess
import sys
import threading

import pytest
from sqlalchemy import update

from auth_helpers import MovableClock, client, create_user, login
from conftest import make_settings
from logmail.config import as_dict
from logmail.daemon.outbound_job import OutboundRetryJob, install_sender
from logmail.daemon.scheduler import JobRunner
from logmail.services.container import build_services
from logmail.store.models import User, now_ms
from smtp_peers import Peer, Server, free_port, wait_for

HOUR = 3_600_000
PASSWORD = "Sup3r-S3cret!pw"


@pytest.fixture
def servers():
    started: list[Server] = []

    def start(peer: Peer | None = None, **kw) -> Server:
        server = Server(peer or Peer(), **kw)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def outbound(primary: int, backup: int | None = None, **extra) -> dict:
    section = {"smtp_host": "127.0.0.1", "smtp_port": primary, "smtp_use_tls": False, "timeout": 10,
               "interval": 3600, "from_email": "alerts@logmail.test", "from_name": "logmail alerts"}
    if backup is not None:
        section.update(smtp_backup_host="127.0.0.1", smtp_backup_port=backup)
    return {**section, **extra}


@pytest.fixture
def open_services(tmp_path):
    opened = []

    def open_(section: dict, name: str = "data", settings=None):
        settings = settings or make_settings(tmp_path / name, outbound=section)
        services = build_services(settings)
        install_sender(services)
        services.auth.clock = MovableClock()  # every service reads this clock; tests move it
        opened.append(services)
        return services

    yield open_
    for services in opened:
        services.close()


def add_user(services, email: str) -> int:
    with services.db.write() as session:
        user = User(organization_id=services.boot.organization_id, email=email, role="owner")
        session.add(user)
        session.flush()
        return user.id


def test_primary_down_backup_delivers(servers, open_services):
    backup = servers()
    services = open_services(outbound(free_port(), backup.port))
    down = services.settings.outbound.smtp_port
    user = add_user(services, "dev@example.com")
    mail = services.outbound.send_notification(user, "Quota\r\nBcc: evil@example.com", "You are at 90 %.",
                                               "<p>You are at <b>90 %</b>.</p>")
    assert services.outbound.process_due()["sent"] == 1
    email = services.outbound.get(mail)
    assert email["status"] == "sent" and email["deliveryConfirmed"] and email["attemptCount"] == 1
    tried = [(a["server"], a["outcome"], a["code"]) for a in email["attempts"]]
    assert tried == [(f"127.0.0.1:{down}", "temporary", None), (f"127.0.0.1:{backup.port}", "sent", 250)]
    assert email["attempts"][0]["message"]  # why the primary failed
    [received] = backup.peer.received
    message = received.message
    assert received.rcpt_tos == ["dev@example.com"] and received.mail_from == "alerts@logmail.test"
    assert message["Message-ID"] == email["messageId"] and message["From"] == "logmail alerts <alerts@logmail.test>"
    assert message["Subject"] == "Quota Bcc: evil@example.com" and message["Bcc"] is None  # no header injection
    assert {p.get_content_type() for p in message.walk()} >= {"text/plain", "text/html"}
    assert services.outbound.process_due()["sent"] == 0  # sent is sent


def test_4xx_is_retried_on_the_backoff_schedule_then_fails(servers, open_services):
    primary = servers(Peer(refuse={"RCPT": "451 4.3.0 try again later"}))
    backup = servers(Peer(refuse={"DATA": "452 4.3.1 insufficient storage"}))
    services = open_services(outbound(primary.port, backup.port))
    clock = services.auth.clock
    out = services.outbound
    assert [out.delay_ms(n) // 1000 for n in range(1, 6)] == [60, 120, 240, 480, 960]
    mail = out.send_alert("ops@example.com", "disk full", "the disk is full")
    for attempt, delay in enumerate((60, 120, 240, 480), start=1):
        assert out.process_due()["retrying"] == 1
        email = out.get(mail)
        assert email["status"] == "queued" and email["attemptCount"] == attempt
        assert email["nextAttemptAt"] == clock.now + delay * 1000
        assert "452" in email["lastError"] and f"next attempt in {delay} s" in email["lastError"]
        clock.advance(delay * 1000 - 1)
        assert out.process_due() == {"expired": 0, "reconciled": 0, "sent": 0, "unconfirmed": 0, "retrying": 0,
                                     "failed": 0}  # not yet due
        clock.advance(1)
    assert out.process_due()["failed"] == 1
    email = out.get(mail)
    assert email["status"] == "failed" and email["attemptCount"] == 5
    assert email["lastError"].startswith("gave up after 5 attempts")
    outcomes = [(a["server"].endswith(str(primary.port)), a["outcome"], a["code"]) for a in email["attempts"]]
    assert outcomes == [(True, "temporary", 451), (False, "temporary", 452)] * 5
    assert primary.peer.stages.count("RCPT") == 5 and backup.peer.stages.count("DATA") == 5
    clock.advance(100 * HOUR)
    assert out.process_due()["failed"] == 0 and backup.peer.received == []


def test_5xx_fails_at_once_without_failover_or_retry(servers, open_services):
    primary = servers(Peer(refuse={"RCPT": "550 5.1.1 no such user here"}))
    backup = servers()
    services = open_services(outbound(primary.port, backup.port))
    mail = services.outbound.send_alert("nobody@example.com", "alert", "text")
    assert services.outbound.process_due()["failed"] == 1
    email = services.outbound.get(mail)
    assert email["status"] == "failed" and email["attemptCount"] == 1
    assert email["lastError"] == f"refused permanently by 127.0.0.1:{primary.port}: 550 5.1.1 no such user here"
    assert [(a["outcome"], a["code"]) for a in email["attempts"]] == [("permanent", 550)]
    assert backup.peer.stages == []  # a permanent answer is not a reason to ask someone else
    services.auth.clock.advance(HOUR)
    assert services.outbound.process_due()["failed"] == 0 and primary.peer.stages == ["RCPT"]


def test_unsent_mail_expires_after_48_hours(servers, open_services):
    primary = servers()
    services = open_services(outbound(primary.port))
    clock = services.auth.clock
    mail = services.outbound.send_alert("ops@example.com", "old news", "text")
    clock.advance(48 * HOUR)  # the daemons were down all this time
    report = services.outbound.process_due()
    assert report["expired"] == 1 and report["sent"] == 0
    email = services.outbound.get(mail)
    assert email["status"] == "expired" and email["lastError"] == "expired: not sent within 48 h"
    assert email["attempts"] == [] and primary.peer.stages == []
    # An admin may still send it, with a fresh lifetime.
    assert services.outbound.retry(mail)["status"] == "queued"
    assert services.outbound.process_due()["sent"] == 1 and len(primary.peer.received) == 1


def test_nothing_is_queued_without_a_server(open_services):
    services = open_services(outbound(free_port(), smtp_host=""))
    assert services.outbound.send_alert("ops@example.com", "x", "y") is None
    assert services.outbound.list(status=None, kind=None, limit=10, offset=0) == ([], 0)


def test_two_daemons_racing_send_each_mail_exactly_once(servers, open_services):
    peer = servers(Peer(delay=0.03))
    section = outbound(peer.port)
    one = open_services(section)
    two = open_services(section, settings=one.settings)  # a second daemon on the same database
    mails = [one.outbound.send_alert(f"user{n}@example.com", f"n{n}", "text") for n in range(20)]
    start = threading.Barrier(2)
    reports = []

    def daemon(services) -> None:
        start.wait()
        reports.append(services.outbound.process_due())

    threads = [threading.Thread(target=daemon, args=(s,)) for s in (one, two)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sum(r["sent"] for r in reports) == 20
    ids = peer.peer.message_ids()
    assert len(ids) == 20 and len(set(ids)) == 20
    for mail in mails:
        email = one.outbound.get(mail)
        assert email["status"] == "sent" and len(email["attempts"]) == 1
    # The scheduled job: of two daemons' runners, one runs it per interval.
    extra = one.outbound.send_alert("late@example.com", "late", "text")
    runners = [JobRunner(s.db, clock=s.auth.clock) for s in (one, two)]
    jobs = [OutboundRetryJob(s.outbound, s.settings.outbound) for s in (one, two)]
    assert [runners[0].run_once(jobs[0]), runners[1].run_once(jobs[1])] == [True, False]
    assert one.outbound.get(extra)["status"] == "sent" and len(peer.peer.message_ids()) == 21


CHILD = """
import json, sys
from logmail.config import settings_from_dict
from logmail.daemon.outbound_job import install_sender
from logmail.services.container import build_services

services = build_services(settings_from_dict(json.loads(sys.stdin.readline())), migrate=False)
install_sender(services)
services.outbound.process_due()
"""


def _send_in_a_child(settings) -> subprocess.Popen:
    child = subprocess.Popen([sys.executable, "-c", CHILD], stdin=subprocess.PIPE)
    child.stdin.write(json.dumps(as_dict(settings, reveal_secrets=True)).encode() + b"\n")
    child.stdin.flush()
    return child


@pytest.mark.parametrize("killed_at", ["DATA", "RCPT"])
def test_a_daemon_killed_mid_send_never_causes_a_second_send(servers, open_services, killed_at):
    peer = Peer(hold=killed_at)
    server = servers(peer)
    services = open_services(outbound(server.port))
    out = services.outbound
    mail = out.send_alert("ops@example.com", "once", "only once")
    child = _send_in_a_child(services.settings)
    try:
        assert peer.held.wait(30), "the child never reached the server"
        os.kill(child.pid, signal.SIGKILL)  # dies waiting for the server's reply
        child.wait(10)
    finally:
        if child.poll() is None:
            child.kill()
    peer.hold = None
    peer.release.set()
    email = out.get(mail)
    assert email["status"] == "sending"
    # Data handed over: the attempt says so. Killed at RCPT: the server never had the message.
    assert email["attempts"][-1]["outcome"] == ("delivering" if killed_at == "DATA" else "started")
    assert out.process_due()["reconciled"] == 0  # its claim has not run out yet: hands off
    later = now_ms() + out.claim_ms + 1000
    report = out.process_due(later)
    assert report["reconciled"] == 1
    email = out.get(mail)
    if killed_at == "DATA":
        wait_for(lambda: len(peer.received) == 1, what="the held message")
        assert report["sent"] == 0 and email["status"] == "sent" and not email["deliveryConfirmed"]
        assert email["sentAt"] is None and email["lastError"].startswith("delivery unconfirmed")
        assert email["attempts"][-1]["outcome"] == "unknown"
    else:
        assert report["sent"] == 1 and email["status"] == "sent" and email["deliveryConfirmed"]
        assert [a["outcome"] for a in email["attempts"]] == ["temporary", "sent"]
        assert email["attemptCount"] == 2
    assert out.process_due(later + HOUR)["sent"] == 0
    assert len(peer.message_ids()) == 1


def test_the_smtp_password_is_never_stored_or_logged(servers, open_services, caplog):
    caplog.set_level(logging.DEBUG)
    plain = base64.b64encode(f"\0mailer\0{PASSWORD}".encode()).decode()
    echoing = servers(Peer(auth_reply=f"535 5.7.8 bad credentials {PASSWORD} {plain}"), auth=True)
    services = open_services(outbound(echoing.port, smtp_user="mailer", smtp_password=PASSWORD), name="a")
    mail = services.outbound.send_alert("ops@example.com", "x", "y")
    assert services.outbound.process_due()["failed"] == 1  # 535 is a 5xx: permanent
    email = services.outbound.get(mail)
    stored = json.dumps(email)
    assert "535" in stored and "********" in stored
    assert PASSWORD not in stored and plain not in stored
    assert base64.b64encode(PASSWORD.encode()).decode() not in stored
    # The right password gets through.
    good = servers(Peer(password=PASSWORD), auth=True)
    other = open_services(outbound(good.port, smtp_user="mailer", smtp_password=PASSWORD), name="b")
    other.outbound.send_alert("ops@example.com", "x", "y")
    assert other.outbound.process_due()["sent"] == 1 and len(good.peer.received) == 1
    ours = "\n".join(r.getMessage() + str(r.exc_info or "") for r in caplog.records
                     if r.name != "mail.log")  # mail.log: the test servers themselves, which echo it
    assert "outbound mail" in ours and PASSWORD not in ours and plain not in ours


# -- the admin endpoints ------------------------------------------------------------------------------


@pytest.fixture
def admin_servers(servers):
    return servers(Peer(refuse_rcpt={"nobody@example.com": "550 5.1.1 unknown user"}))


@pytest.fixture
def settings(tmp_path, admin_servers):
    return make_settings(tmp_path / "data", outbound=outbound(admin_servers.port))


def test_admin_endpoints_are_for_platform_admins(daemon, api, admin_servers):
    create_user(api, "root@example.com", "owner")
    with daemon.services.db.write() as session:
        session.execute(update(User).where(User.email == "root@example.com").values(is_platform_admin=True))
    create_user(api, "member@example.com", "admin")
    with client(daemon) as http:
        admin = login(http, "root@example.com").auth
        member = login(http, "member@example.com").auth
        out = daemon.services.outbound
        good = out.send_alert("ops@example.com", "fine", "text")
        bad = out.send_alert("nobody@example.com", "bounces", "text")
        for headers in (member, {"Authorization": api.headers["Authorization"]}):
            for method, path in (("GET", "/admin/emails"), ("GET", "/admin/emails/stats"),
                                 ("POST", "/admin/emails/process"), ("GET", f"/admin/emails/{good}"),
                                 ("POST", f"/admin/emails/{bad}/retry")):
                resp = http.request(method, path, headers=headers)
                assert resp.status_code == 403, (method, path, resp.text)
                assert resp.json()["error"] == "Forbidden"
        processed = http.post("/admin/emails/process", headers=admin).json()
        assert processed["processed"]["sent"] == 1 and processed["processed"]["failed"] == 1
        assert processed["configured"] is True
        page = http.get("/admin/emails", headers=admin, params={"status": "failed"}).json()
        assert [e["id"] for e in page["emails"]] == [bad] and page["pagination"]["total"] == 1
        everything = http.get("/admin/emails", headers=admin, params={"limit": 1}).json()
        assert everything["pagination"] == {"total": 2, "limit": 1, "offset": 0} and len(everything["emails"]) == 1
        assert http.get("/admin/emails", headers=admin, params={"status": "lost"}).status_code == 400
        detail = http.get(f"/admin/emails/{bad}", headers=admin).json()
        assert detail["status"] == "failed" and detail["textBody"] == "text"
        assert [(a["outcome"], a["code"]) for a in detail["attempts"]] == [("permanent", 550)]
        retried = http.post(f"/admin/emails/{bad}/retry", headers=admin)
        assert retried.status_code == 200 and retried.json()["status"] == "queued"
        assert retried.json()["attemptCount"] == 0
        assert http.post(f"/admin/emails/{good}/retry", headers=admin).status_code == 409
        assert http.get("/admin/emails/4c1a8a7e-0000-4000-8000-000000000000", headers=admin).status_code == 404
        assert http.get("/admin/emails/not-a-uuid", headers=admin).status_code == 400
        stats = http.get("/admin/emails/stats", headers=admin, params={"hours": 1}).json()
        assert stats["counts"]["sent"] == 1 and stats["counts"]["queued"] == 1 and stats["total"] == 2
        assert {(a["outcome"], a["count"]) for a in stats["attempts"]} == {("sent", 1), ("permanent", 1)}
        assert http.get("/admin/emails/stats", headers=admin, params={"hours": 0}).status_code == 400
        audit = http.get("/audit", headers=admin).json()
        assert {"email.retried", "emails.processed"} <= {e["action"] for e in audit["entries"]}
