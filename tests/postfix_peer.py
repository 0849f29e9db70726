"""A private Postfix instance for tests: its own config, queue and data directories in a temporary
directory, smtpd on a loopback port, started with ``postfix -c DIR start``.

The instance's own plumbing (paths, users, ports, quick retries) is written here; what it does with
mail comes from the documented snippets in ``docs/examples/postfix/``, appended as they are with
the test's ports in place of the defaults, so the documentation is what gets tested.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
from pathlib import Path
from ports import free_port

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "docs" / "examples" / "postfix"

# The stock services (Debian's master.cf without the optional extras), none chrooted: the
# instance lives in a temporary directory, not in a prepared chroot.
MASTER_CF = """\
{listen}  inet  n       -       n       -       -       smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""

MAIN_CF = """\
compatibility_level = 3.6
queue_directory = {dir}/spool
data_directory = {dir}/data
maillog_file = {dir}/maillog
maillog_file_prefixes = {dir}
mail_owner = postfix
setgid_group = postdrop
myhostname = postfix-peer.localdomain
mydomain = localdomain
myorigin = $myhostname
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
alias_maps =
alias_database =
local_recipient_maps =
local_transport = error:5.1.1 no local delivery here
smtputf8_enable = no
biff = no
# Deferred mail is retried within seconds, not minutes.
queue_run_delay = 1s
minimal_backoff_time = 1s
maximal_backoff_time = 2s
lmtp_connect_timeout = 2s
"""


def postfix_available() -> bool:
    return shutil.which("postfix") is not None or Path("/usr/sbin/postfix").exists()


def snippet(name: str, replacements: dict[str, str]) -> str:
    """A documented snippet with the test's values in place of the documented ones."""
    text = (EXAMPLES / name).read_text()
    for documented, actual in replacements.items():
        assert documented in text, f"{name} no longer mentions {documented!r}"
        text = text.replace(documented, actual)
    return text


class PostfixPeer:
    def __init__(self, directory: Path, *, main_cf: str = "", master_cf: str = "") -> None:
        self.dir = directory
        self.smtpd_port = free_port()
        directory.mkdir(parents=True, exist_ok=True)
        directory.chmod(0o755)  # Postfix's unprivileged daemons read the configuration
        (directory / "spool").mkdir(mode=0o755, exist_ok=True)  # `postfix check` fills it in
        (directory / "main.cf").write_text(MAIN_CF.format(dir=directory) + "\n" + main_cf)
        (directory / "master.cf").write_text(MASTER_CF.format(listen=f"127.0.0.1:{self.smtpd_port}") + master_cf)

    def postfix(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run(["postfix", "-c", str(self.dir), *args], capture_output=True, text=True, timeout=60)
        if check and result.returncode != 0:
            raise RuntimeError(f"postfix {' '.join(args)} failed: {result.stdout}{result.stderr}\n{self.log()}")
        return result

    def start(self) -> "PostfixPeer":
        self.postfix("check")
        self.postfix("start")
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.smtpd_port), timeout=2) as s:
                    if s.recv(100).startswith(b"220"):
                        return self
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"postfix smtpd did not answer on port {self.smtpd_port}\n{self.log()}")
            time.sleep(0.2)

    def stop(self) -> None:
        self.postfix("stop", check=False)
        # master exits asynchronously; wait so that the directory can go.
        pid_file = self.dir / "spool" / "pid" / "master.pid"
        deadline = time.monotonic() + 15
        while pid_file.exists() and time.monotonic() < deadline:
            try:
                pid = int(pid_file.read_text().strip())
                Path(f"/proc/{pid}").stat()
            except (OSError, ValueError):
                break
            time.sleep(0.1)

    def queue(self) -> list[dict]:
        """What ``postqueue -j`` lists: one JSON object per queued message."""
        result = subprocess.run(["postqueue", "-c", str(self.dir), "-j"], capture_output=True, text=True, timeout=30)
        return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]

    def flush(self) -> None:
        subprocess.run(["postqueue", "-c", str(self.dir), "-f"], capture_output=True, timeout=30)

    def wait_queue_empty(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while self.queue():
            if time.monotonic() > deadline:
                raise AssertionError(f"the Postfix queue did not empty: {self.queue()}\n{self.log()}")
            time.sleep(0.2)

    def log(self) -> str:
        path = self.dir / "maillog"
        return path.read_text(errors="replace") if path.exists() else "(no maillog)"
