"""A real Postfix in front of logmail, configured from the documented snippets in
docs/examples/postfix/: the policy service at RCPT with LMTP delivery, and the pipe(8) route."""

from __future__ import annotations

import dataclasses
import shutil
import smtplib
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

import pytest

from conftest import claim_all, write_config
from logmail.daemon.runner import Daemon
from logmail.services.accept import INGEST_QUEUE
from logmail.services.container import build_services
from platform_helpers import add_org, add_tier, platform_settings, set_limits, stored, suspend, wait_stored
from postfix_peer import PostfixPeer, postfix_available, snippet

pytestmark = pytest.mark.postfix

MESSAGE = b"From: app@example.net\r\nTo: dev@acme.example.test\r\nSubject: through postfix\r\n\r\nhello\r\n"


def _without(settings, **sections):
    return dataclasses.replace(settings, **{name: dataclasses.replace(getattr(settings, name), **values)
                                            for name, values in sections.items()})


class Logmail:
    """Two daemons on one installation, so that LMTP can stop while the policy service stays up:
    one answers Postfix's policy requests, the other takes LMTP deliveries and stores them."""

    def __init__(self, data_dir: Path) -> None:
        base = platform_settings(data_dir, smtp={"enabled": False}, api={"enabled": False})
        self.policy_settings = _without(base, lmtp={"enabled": False})
        self.policy = Daemon(self.policy_settings, roles=("smtp",)).start_in_thread()
        self.services = self.policy.services
        self.lmtp_settings = _without(base, policy={"enabled": False})
        self.lmtp = self.start_lmtp()

    def start_lmtp(self, port: int = 0) -> Daemon:
        settings = _without(self.lmtp_settings, lmtp={"port": port})
        return Daemon(settings, roles=("smtp", "worker")).start_in_thread()

    def stop(self) -> None:
        self.lmtp.stop()
        self.policy.stop()


@pytest.fixture
def workdir():
    if not postfix_available():
        pytest.skip("Postfix is not installed (Debian package postfix)")
    # Not pytest's tmp_path: it is mode 0700, and Postfix's unprivileged daemons must get through.
    path = Path(tempfile.mkdtemp(prefix="logmail-postfix-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def logmail(workdir):
    lm = Logmail(workdir / "data")
    yield lm
    lm.stop()


@pytest.fixture
def postfix(workdir, logmail):
    main_cf = snippet("main-lmtp.cf", {
        "127.0.0.1:2424": f"127.0.0.1:{logmail.lmtp.lmtp_port}",
        "127.0.0.1:10040": f"127.0.0.1:{logmail.policy.policy_port}",
    })
    peer = PostfixPeer(workdir / "postfix", main_cf=main_cf).start()
    yield peer
    peer.stop()


def send(peer: PostfixPeer, recipients: list[str], message: bytes = MESSAGE, sender: str = "app@example.net"):
    with smtplib.SMTP("127.0.0.1", peer.smtpd_port, timeout=30) as client:
        return client.sendmail(sender, recipients, message)


def test_mail_to_known_addresses_is_stored_once_per_organisation(logmail, postfix):
    s = logmail.services
    acme = add_org(s, "dev@acme.example.test", "ops@acme.example.test")
    globex = add_org(s, "*@globex.example.test")
    assert send(postfix, ["dev@acme.example.test", "anyone@globex.example.test", "ops@acme.example.test"]) == {}
    (a,) = wait_stored(s, 1, acme)
    (g,) = wait_stored(s, 1, globex)
    assert a.envelope_to == ["dev@acme.example.test", "ops@acme.example.test"]
    assert g.envelope_to == ["anyone@globex.example.test"]
    assert a.source == "lmtp" and a.envelope_from == "app@example.net"
    postfix.wait_queue_empty()


def test_an_unknown_address_is_refused_at_rcpt(logmail, postfix):
    add_org(logmail.services, "dev@acme.example.test")
    with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
        send(postfix, ["nobody@acme.example.test"])
    code, text = refused.value.recipients["nobody@acme.example.test"]
    assert code == 550 and text.startswith(b"5.1.1 <nobody@acme.example.test>"), text
    # Beside a known one, only the unknown one is refused; the other is delivered.
    assert list(send(postfix, ["nobody@acme.example.test", "dev@acme.example.test"])) == ["nobody@acme.example.test"]
    wait_stored(logmail.services, 1)
    postfix.wait_queue_empty()


def test_an_organisation_over_its_quota_gets_552(logmail, postfix):
    s = logmail.services
    tier = add_tier(s)
    org = add_org(s, "dev@acme.example.test", tier=tier)
    send(postfix, ["dev@acme.example.test"])
    wait_stored(s, 1, org)
    set_limits(s, tier, emails_per_month=1)  # what it has received this month
    with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
        send(postfix, ["dev@acme.example.test"])
    code, text = refused.value.recipients["dev@acme.example.test"]
    assert (code, text[:5]) == (552, b"5.2.2"), text
    # A tier's size limit, from the SIZE the client declares, is refused at RCPT as well.
    set_limits(s, tier, emails_per_month=None, max_message_size=50)
    with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
        send(postfix, ["dev@acme.example.test"])
    code, text = refused.value.recipients["dev@acme.example.test"]
    assert (code, text[:5]) == (552, b"5.3.4"), text
    # Without a declared SIZE, the real size is checked at the end of DATA (single recipient).
    with smtplib.SMTP("127.0.0.1", postfix.smtpd_port, timeout=30) as client:
        client.ehlo()
        client.mail("app@example.net")  # no SIZE=
        assert client.rcpt("dev@acme.example.test")[0] == 250
        code, text = client.data(MESSAGE)
    assert (code, text[:5]) == (552, b"5.3.4"), text
    assert len(stored(s, org)) == 1


def test_postfix_keeps_the_mail_while_lmtp_is_down_and_delivers_it_after(logmail, postfix):
    s = logmail.services
    org = add_org(s, "dev@acme.example.test")
    port = logmail.lmtp.lmtp_port
    logmail.lmtp.stop()
    for n in range(3):
        assert send(postfix, ["dev@acme.example.test"], MESSAGE.replace(b"through postfix", b"kept %d" % n)) == {}
    deadline = time.monotonic() + 30
    while True:  # deferred: in the queue with the reason, not bounced
        queued = postfix.queue()
        reasons = [r.get("delay_reason", "") for m in queued for r in m.get("recipients", [])]
        if len(queued) == 3 and all(reasons):
            break
        assert time.monotonic() < deadline, (queued, postfix.log())
        time.sleep(0.2)
    assert all("127.0.0.1" in reason for reason in reasons), reasons
    assert stored(s) == []
    logmail.lmtp = logmail.start_lmtp(port)
    postfix.flush()
    postfix.wait_queue_empty(timeout=60)
    messages = wait_stored(s, 3, org)
    assert sorted(m.subject for m in messages) == ["kept 0", "kept 1", "kept 2"]  # nothing lost, nothing twice
    time.sleep(1)
    assert len(stored(s)) == 3


# -- the pipe(8) route: main.cf and master.cf with `logmail ingest` ------------------------------------

def _python_for(user: str, staging: Path) -> tuple[str, bool]:
    """A command that runs this checkout's logmail as ``user`` (pipe(8) refuses root), and whether
    it can load the Redis client. The venv's interpreter may live where that user cannot go (pyenv
    under /root); the system Python of the same minor version with the venv's packages on its path
    does the same job, except that redis-py needs a package the venv lacks on Python < 3.11.3. When
    the checkout itself is out of the user's reach (a CI clone in a 0700 directory), its package and
    the venv's packages are staged in ``staging`` (hard links where the file system allows)."""
    here = Path(__file__).resolve().parent.parent
    site = Path(sysconfig.get_paths()["purelib"])
    command = _runnable(user, here, site)
    if command is None:
        staging.mkdir(mode=0o755, parents=True, exist_ok=True)
        staging.chmod(0o755)
        for source, target in ((here / "logmail", staging / "code" / "logmail"), (site, staging / "site")):
            target.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
            if subprocess.run(["cp", "-al", str(source), str(target)], capture_output=True).returncode != 0:
                shutil.rmtree(target, ignore_errors=True)
                shutil.copytree(source, target, symlinks=True)
        subprocess.run(["chmod", "-R", "a+rX", str(staging)], check=True)
        here, site = staging / "code", staging / "site"
        command = _runnable(user, here, site)
    if command is None:
        pytest.fail(f"no Python that {user} may run logmail with, even from {staging}")
    redis = subprocess.run(["su", "-s", "/bin/sh", user, "-c", f"/usr/bin/env PYTHONPATH={here}:{site} "
                            f"{command.split()[-3]} -c 'import logmail.store.cache_redis'"], cwd="/",
                           capture_output=True, timeout=60)
    return command, redis.returncode == 0


def _runnable(user: str, here: Path, site: Path) -> str | None:
    candidates = [Path(sys.executable).resolve(), Path(f"/usr/bin/python{sys.version_info[0]}.{sys.version_info[1]}")]
    for python in candidates:
        command = f"/usr/bin/env PYTHONPATH={here}:{site} {python} -m logmail"
        probe = subprocess.run(["su", "-s", "/bin/sh", user, "-c", f"{command} ingest --help"], cwd="/",
                               capture_output=True, timeout=60)
        if probe.returncode == 0:
            return command
    return None


def _logmail_toml(path: Path, settings, *, redis: bool) -> Path:
    data = {
        "data_dir": settings.data_dir, "mode": "platform", "log_level": "warning",
        "policy": {"cache_seconds": 0},
        "database": {"url": settings.database.url}, "content": {"url": settings.content.url},
        "queue": {"url": settings.queue.url, "prefix": settings.queue.prefix},
    }
    if redis:  # else the per-minute rate is counted in memory: this test does not reach it
        data["cache"] = {"url": settings.cache.url, "prefix": settings.cache.prefix}
    write_config(path, data, stack={})
    path.chmod(0o644)
    return path


def _delivery_lines(peer: PostfixPeer, recipient: str) -> list[str]:
    return [line for line in peer.log().splitlines() if f"to=<{recipient}>" in line and "status=" in line]


def test_the_pipe_route_stores_with_routes_and_bounces_with_the_right_status(workdir):
    user = "nobody"
    settings = platform_settings(workdir / "data")
    services = build_services(settings)
    try:
        acme = add_org(services, "dev@acme.example.test", "ops@acme.example.test")
        globex = add_org(services, "*@globex.example.test")
        suspend(services, add_org(services, "held@initech.example.test"))
    finally:
        services.close()  # the embedded stores are handed to the pipe user, closed
    subprocess.run(["chown", "-R", f"{user}:", settings.data_dir], check=True)
    python, redis = _python_for(user, workdir / "stage")
    config = _logmail_toml(workdir / "logmail.toml", settings, redis=redis)

    transport = workdir / "transport"
    transport.write_text("example.test     logmail:\n.example.test    logmail:\n")
    main_cf = snippet("main.cf", {"hash:/etc/postfix/transport": f"hash:{transport}",
                                  "soft_bounce = yes": "soft_bounce = no"})
    master_cf = snippet("master.cf", {"user=logmail": f"user={user}",
                                      "/opt/logmail/venv/bin/logmail": python,
                                      "/etc/logmail/logmail.toml": str(config)})
    peer = PostfixPeer(workdir / "postfix", main_cf=main_cf, master_cf=master_cf)
    subprocess.run(["postmap", "-c", str(peer.dir), f"hash:{transport}"], check=True)
    peer.start()
    try:
        assert send(peer, ["dev@acme.example.test", "who@globex.example.test", "ops@acme.example.test"]) == {}
        send(peer, ["nobody@acme.example.test"], sender="")  # bounces of a null sender go nowhere
        send(peer, ["held@initech.example.test"], sender="")
        peer.wait_queue_empty(timeout=60)
        for rcpt in ("dev@acme.example.test", "who@globex.example.test", "ops@acme.example.test"):
            (line,) = _delivery_lines(peer, rcpt)
            assert "status=sent" in line and "relay=logmail" in line, line
        (line,) = _delivery_lines(peer, "nobody@acme.example.test")
        assert "status=bounced" in line and "dsn=5.1.1" in line, line  # exit 67: user unknown
        (line,) = _delivery_lines(peer, "held@initech.example.test")
        assert "status=bounced" in line and "dsn=5.3.0" in line, line  # exit 69: unavailable
    finally:
        peer.stop()
    services = build_services(settings)
    try:
        # Postfix makes one pipe delivery per destination domain, with all of its recipients.
        payloads = sorted((j.payload for j in claim_all(services, 2)), key=lambda p: p["rcptTo"])
        assert [p["routes"] for p in payloads] == [
            {str(acme): ["dev@acme.example.test", "ops@acme.example.test"]},
            {str(globex): ["who@globex.example.test"]},
        ]
        assert services.queue.claim(INGEST_QUEUE, 10) == []  # nothing for the refused ones
        for payload in payloads:
            assert payload["source"] == "cli" and payload["mailFrom"] == "app@example.net"
            assert services.content.get(payload["rawKey"]).endswith(b"hello\r\n")  # eol=\r\n
    finally:
        services.close()
