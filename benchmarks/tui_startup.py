"""How long `logmail tui` takes to show its first screen, and to show mail on it.

Starts `logmail daemon` on free local ports with a fresh data directory, sends a few messages, then
runs `logmail tui --url ... --token ...` several times in a pseudo-terminal (80×24 by default), as
a person would, and times each run from the process start to:

- the first screen: the console's title is on the terminal;
- the first mail: the subject of a message sent before the start is on the terminal;

and, while it runs, from the SMTP 250 of a new message to its subject on the terminal (the live
list follows `GET /events`).

It presses `q` and checks the console exits cleanly. A benchmark, not a test: it prints figures
beside the issue's target (under one second to the first screen) and exits 2 only when something
failed.

    .venv/bin/python benchmarks/tui_startup.py [--runs 10] [--size 80x24]
"""

from __future__ import annotations

import argparse
import fcntl
import os
import pty
import re
import select
import signal
import smtplib
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
LOGMAIL = [sys.executable, "-m", "logmail"]
ANSI = re.compile(rb"\x1b\[[0-9;?<>=]*[ -/]*[@-~]|\x1b[PX^_].*?\x1b\\|\x1b\][^\x07\x1b]*(\x07|\x1b\\)|\x1b[@-Z\\-_]",
                  re.S)
PROBE_SUBJECT = "startup-probe-7fd3"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_daemon(tmp: Path) -> tuple[subprocess.Popen, str, int, str]:
    api_port, smtp_port = free_port(), free_port()
    config = tmp / "logmail.toml"
    # The per-user request limit is off: eleven starts and the wait for the messages to be listed
    # would otherwise use up a minute's 50 requests, and this measures start-up, not the limit.
    config.write_text(f'data_dir = "{tmp / "data"}"\nlog_level = "warning"\n'
                      f"[api]\nport = {api_port}\n[smtp]\nport = {smtp_port}\n"
                      "[auth]\nrate_limit_per_minute = 0\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOGMAIL_")}
    proc = subprocess.Popen([*LOGMAIL, "daemon", "--config", str(config)], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{api_port}"
    token_file = tmp / "data" / "owner.token"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200 and token_file.exists():
                return proc, url, smtp_port, token_file.read_text().strip()
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            raise SystemExit(f"the daemon exited with {proc.returncode}")
        time.sleep(0.1)
    proc.kill()
    raise SystemExit("the daemon did not answer within 60 s")


def send_mail(port: int, count: int, url: str, token: str) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        for i in range(count):
            subject = PROBE_SUBJECT if i == count - 1 else f"warm-up {i}"
            client.sendmail("app@example.com", ["dev@example.com"],
                            f"From: app@example.com\r\nTo: dev@example.com\r\nSubject: {subject}\r\n\r\nhello\r\n")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        listed = httpx.get(f"{url}/messages", params={"limit": 1},
                           headers={"Authorization": f"Bearer {token}"}).json()["pagination"]["total"]
        if listed >= count:
            return
        time.sleep(0.05)
    raise SystemExit("the messages were not listed within 30 s")


def read_until(master: int, needle: bytes, seen: bytes, deadline: float) -> tuple[bytes, float | None]:
    """Read the terminal until ``needle`` is on it; (everything read, when it appeared or None)."""
    while time.monotonic() < deadline:
        if not select.select([master], [], [], 0.02)[0]:
            continue
        try:
            seen += os.read(master, 65536)
        except OSError:
            break
        if needle in ANSI.sub(b"", seen):
            return seen, time.monotonic()
    return seen, None


def one_run(url: str, token: str, smtp_port: int, cols: int, rows: int, tmp: Path,
            run: int) -> tuple[float, float, float]:
    """Seconds to the first screen and to the first mail for one start of the console, and from an
    SMTP 250 to that message on the screen while it runs."""
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("LOGMAIL_")},
           "TERM": "xterm-256color", "COLUMNS": str(cols), "LINES": str(rows),
           "XDG_CONFIG_HOME": str(tmp / "config")}  # no refresh tokens of the person running this
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    started = time.monotonic()
    proc = subprocess.Popen([*LOGMAIL, "tui", "--url", url, "--token", token], cwd=ROOT, env=env,
                            stdin=slave, stdout=slave, stderr=slave, start_new_session=True)
    os.close(slave)
    seen = b""
    first_screen = first_mail = None
    try:
        deadline = started + 30
        while time.monotonic() < deadline and first_mail is None:
            ready, _, _ = select.select([master], [], [], 0.05)
            if not ready:
                continue
            try:
                chunk = os.read(master, 65536)
            except OSError:
                break
            seen += chunk
            text = ANSI.sub(b"", seen)
            now = time.monotonic() - started
            if first_screen is None and b"logmail" in text:
                first_screen = now
            if PROBE_SUBJECT.encode() in text:
                first_mail = now
        if first_screen is None or first_mail is None:
            raise SystemExit(f"the console did not show {'its screen' if first_screen is None else 'the mail'} "
                             f"within 30 s; it wrote: {ANSI.sub(b'', seen)[-500:]!r}")
        # Live mail: the stream joins once the first page is in; give it a moment, then send.
        seen, _ = read_until(master, b"\0never", seen, time.monotonic() + 1.0)
        subject = f"live-probe-{run}"
        with smtplib.SMTP("127.0.0.1", smtp_port, timeout=30) as client:
            client.sendmail("app@example.com", ["dev@example.com"],
                            f"From: app@example.com\r\nTo: dev@example.com\r\nSubject: {subject}\r\n\r\nhi\r\n")
        accepted = time.monotonic()
        seen, shown = read_until(master, subject.encode(), seen, accepted + 10)
        if shown is None:
            raise SystemExit("mail sent while the console ran was not on the screen within 10 s")
        live = shown - accepted
        os.write(master, b"q")
        # Keep reading while it exits: a terminal nobody reads blocks the writer, as a real one would.
        quit_deadline = time.monotonic() + 10
        while proc.poll() is None and time.monotonic() < quit_deadline:
            if select.select([master], [], [], 0.05)[0]:
                try:
                    os.read(master, 65536)
                except OSError:
                    break
        try:
            proc.wait(timeout=max(0.1, quit_deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            raise SystemExit("the console did not exit within 10 s of q") from None
        if proc.returncode != 0:
            raise SystemExit(f"the console exited with {proc.returncode}")
        return first_screen, first_mail, live
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        os.close(master)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--size", default="80x24", help="terminal size, COLSxROWS")
    parser.add_argument("--messages", type=int, default=200, help="mail in the store before the console starts")
    args = parser.parse_args()
    cols, rows = (int(v) for v in args.size.lower().split("x"))
    with tempfile.TemporaryDirectory(prefix="logmail-tui-bench-") as tmpdir:
        tmp = Path(tmpdir)
        daemon, url, smtp_port, token = start_daemon(tmp)
        try:
            send_mail(smtp_port, args.messages, url, token)
            one_run(url, token, smtp_port, cols, rows, tmp, 0)  # warm the page cache, as a second start would be
            screens, mails, lives = [], [], []
            for n in range(args.runs):
                screen, mail, live = one_run(url, token, smtp_port, cols, rows, tmp, n + 1)
                screens.append(screen)
                mails.append(mail)
                lives.append(live)
        finally:
            daemon.send_signal(signal.SIGINT)
            try:
                daemon.wait(timeout=30)
            except subprocess.TimeoutExpired:
                daemon.kill()
    print(f"logmail tui at {cols}×{rows}, {args.runs} starts, {args.messages} messages in the store")
    print(f"{'':<24}{'median':>10}{'max':>10}   target")
    print(f"{'first screen':<24}{statistics.median(screens):>9.3f}s{max(screens):>9.3f}s   < 1 s")
    print(f"{'first mail listed':<24}{statistics.median(mails):>9.3f}s{max(mails):>9.3f}s")
    print(f"{'live: 250 to on screen':<24}{statistics.median(lives):>9.3f}s{max(lives):>9.3f}s   < 1 s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
