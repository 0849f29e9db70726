"""Accepted means durable: SIGKILL the daemon while mail streams in, restart, count."""

from __future__ import annotations

import os
import signal
import smtplib
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from conftest import write_config
from ports import free_port

pytestmark = pytest.mark.slow


def start_daemon(cfg: Path, log: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "logmail", "daemon", "--config", str(cfg)],
                            stdout=log.open("ab"), stderr=subprocess.STDOUT, start_new_session=True)
    proc.log_path = log  # so a failed start can say why
    return proc


def _log_tail(proc: subprocess.Popen) -> str:
    log = getattr(proc, "log_path", None)
    if log is None or not log.exists():
        return "(no log)"
    return log.read_text(errors="replace")[-4000:]


def wait_healthy(port: int, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"the daemon exited during start-up:\n{_log_tail(proc)}"
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise AssertionError(f"the daemon did not become healthy:\n{_log_tail(proc)}")


def all_subjects(client: httpx.Client) -> list[str]:
    subjects, cursor = [], None
    while True:
        page = client.get("/messages", params={"limit": 1000, **({"cursor": cursor} if cursor else {})}).json()
        subjects += [m["subject"] for m in page["messages"]]
        cursor = page["pagination"]["nextCursor"]
        if not cursor:
            return subjects


def stored_subjects(client: httpx.Client, acknowledged: list[str], timeout: float) -> list[str]:
    """Every stored subject, once each acknowledged one is among them or ``timeout`` has passed.

    Not a count: mail whose 250 never reached its client may be stored too, so the total can reach
    the number acknowledged while an acknowledged message is still on its way (its job redelivered
    after the daemon that held it died)."""
    deadline = time.monotonic() + timeout
    while True:
        total = client.get("/messages", params={"limit": 1}).json()["pagination"]["total"]
        if total >= len(acknowledged):
            subjects = all_subjects(client)
            if set(acknowledged) <= set(subjects):
                return subjects
        if time.monotonic() > deadline:
            return all_subjects(client)
        time.sleep(0.3)


@pytest.mark.parametrize("workers", [0, 1])
def test_sigkill_while_streaming_loses_and_doubles_nothing(tmp_path, workers):
    smtp_port, api_port = free_port(), free_port()
    cfg = write_config(tmp_path / "logmail.toml", {
        "data_dir": str(tmp_path / "data"), "log_level": "warning",
        "smtp": {"port": smtp_port}, "api": {"port": api_port}, "ingest": {"workers": workers},
        "queue": {"lease_seconds": 2, "poll_interval": 0.05},
    })
    log = tmp_path / "daemon.log"
    proc = start_daemon(cfg, log)
    wait_healthy(api_port, proc)

    acknowledged: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def stream(worker: int) -> None:
        n = 0
        while not stop.is_set():
            try:
                with smtplib.SMTP("127.0.0.1", smtp_port, timeout=10) as client:
                    while not stop.is_set():
                        subject = f"durable-{worker}-{n}"
                        n += 1
                        client.sendmail("a@example.com", ["b@example.com"],
                                        f"Subject: {subject}\r\n\r\n{'payload ' * 200}\r\n".encode())
                        with lock:  # sendmail returned: the server said 250
                            acknowledged.append(subject)
            except (OSError, smtplib.SMTPException):
                return  # the daemon died under us: whatever was not acknowledged may be lost

    threads = [threading.Thread(target=stream, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    time.sleep(1.5)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    stop.set()
    for t in threads:
        t.join()
    assert len(acknowledged) > 50, "too little mail got through to make the test meaningful"

    proc = start_daemon(cfg, log)
    try:
        wait_healthy(api_port, proc)
        token = (tmp_path / "data" / "owner.token").read_text().strip()
        client = httpx.Client(base_url=f"http://127.0.0.1:{api_port}", headers={"Authorization": f"Bearer {token}"})
        subjects = stored_subjects(client, acknowledged, timeout=60)
        missing = set(acknowledged) - set(subjects)
        assert not missing, f"{len(missing)} acknowledged message(s) lost, e.g. {sorted(missing)[:5]}"
        assert len(subjects) == len(set(subjects)), "a message was stored twice"
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, log.read_text()[-3000:]


def test_a_killed_worker_process_is_replaced(tmp_path):
    import psutil

    smtp_port, api_port = free_port(), free_port()
    cfg = write_config(tmp_path / "logmail.toml", {
        "data_dir": str(tmp_path / "data"), "log_level": "info",
        "smtp": {"port": smtp_port}, "api": {"port": api_port}, "ingest": {"workers": 1},
        "queue": {"lease_seconds": 2, "poll_interval": 0.05},
    })
    log = tmp_path / "daemon.log"
    proc = start_daemon(cfg, log)
    try:
        wait_healthy(api_port, proc)

        def workers():
            found = []
            for child in psutil.Process(proc.pid).children():
                try:
                    if child.status() != psutil.STATUS_ZOMBIE and "logmail.daemon.worker" in " ".join(child.cmdline()):
                        found.append(child)
                except psutil.Error:  # gone, or a zombie not yet reaped
                    pass
            return found

        deadline = time.monotonic() + 20
        while not workers():
            assert time.monotonic() < deadline
            time.sleep(0.1)
        (old,) = workers()
        old.kill()
        deadline = time.monotonic() + 20
        while not [w for w in workers() if w.pid != old.pid and w.is_running()]:
            assert time.monotonic() < deadline, "the dead worker was not replaced"
            time.sleep(0.2)
        with smtplib.SMTP("127.0.0.1", smtp_port, timeout=10) as client:
            client.sendmail("a@example.com", ["b@example.com"], b"Subject: after the restart\r\n\r\nx\r\n")
        token = (tmp_path / "data" / "owner.token").read_text().strip()
        api = httpx.Client(base_url=f"http://127.0.0.1:{api_port}", headers={"Authorization": f"Bearer {token}"})
        deadline = time.monotonic() + 20
        while api.get("/messages").json()["pagination"]["total"] < 1:
            assert time.monotonic() < deadline, "the new worker did not ingest"
            time.sleep(0.2)
        assert "exited with" in log.read_text()
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
    assert proc.returncode == 0
    assert "Fatal Python error" not in log.read_text()
