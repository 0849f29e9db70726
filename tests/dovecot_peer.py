"""A private Dovecot (IMAP and POP3) for tests and benchmarks.

Its own configuration, base_dir, log and maildirs live in one temporary directory (mode 0755: as
root, Dovecot's mail processes run as ``nobody`` and must get through); users come from a
passwd-file; IMAP, IMAPS, POP3 and POP3S listen on free loopback ports. TLS uses a certificate
for ``localhost`` made on the fly by a throwaway CA (``trustme``), whose certificate is in
``ca_file`` for clients that should trust it (``SSL_CERT_FILE``).

Mail is put in place by writing maildir files straight into ``new/`` (a thousand messages take a
fraction of a second), as a local delivery agent would; ``append`` goes through IMAP instead.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterable
from pathlib import Path
from ports import free_port

DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"

CONFIG = """\
base_dir = {dir}/run
state_dir = {dir}/state
instance_name = logmail-test-{name}
log_path = {dir}/dovecot.log
protocols = imap pop3
listen = 127.0.0.1
ssl = yes
ssl_cert = <{dir}/tls/cert.pem
ssl_key = <{dir}/tls/key.pem
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = 0
mail_location = maildir:~/Maildir
mail_max_userip_connections = 100
first_valid_uid = 1
{identity}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {dir}/users
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {dir}/users
}}
service imap-login {{
{login_chroot}
  inet_listener imap {{
    port = {imap}
  }}
  inet_listener imaps {{
    port = {imaps}
    ssl = yes
  }}
}}
service pop3-login {{
{login_chroot}
  inet_listener pop3 {{
    port = {pop3}
  }}
  inet_listener pop3s {{
    port = {pop3s}
    ssl = yes
  }}
}}
# No auth penalty (a growing delay for an address after failed logins, up to 15 s, even for the
# next good login): the tests fail logins on purpose, all from 127.0.0.1.
service anvil {{
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
service stats {{
  unix_listener stats-reader {{
    mode = 0666
  }}
  unix_listener stats-writer {{
    mode = 0666
  }}
}}
"""


def dovecot_available() -> bool:
    return all(Path(p).exists() for p in (DOVECOT, "/usr/lib/dovecot/imap", "/usr/lib/dovecot/pop3"))


class DovecotPeer:
    def __init__(self, directory: Path | None = None) -> None:
        self.dir = directory or Path(tempfile.mkdtemp(prefix="logmail-dovecot-"))
        self.dir.mkdir(parents=True, exist_ok=True)
        self.dir.chmod(0o755)
        self.name = uuid.uuid4().hex[:8]
        self.imap_port, self.imaps_port, self.pop3_port, self.pop3s_port = (free_port() for _ in range(4))
        self.users: dict[str, str] = {}
        if os.geteuid() == 0:
            # Mail must not be handled as root; nobody owns the maildirs.
            self.uid, self.gid = pwd.getpwnam("nobody").pw_uid, pwd.getpwnam("nobody").pw_gid
            identity = "mail_uid = nobody\nmail_gid = {}\ndefault_internal_user = dovecot\n" \
                       "default_login_user = dovenull".format(_group_of(self.gid))
            chroot = ""
        else:
            me = pwd.getpwuid(os.getuid()).pw_name
            self.uid, self.gid = os.getuid(), os.getgid()
            identity = f"default_internal_user = {me}\ndefault_login_user = {me}"
            chroot = "  chroot ="
        for sub in ("run", "state", "mail", "tls"):
            (self.dir / sub).mkdir(exist_ok=True)
            (self.dir / sub).chmod(0o755)
        self._chown(self.dir / "mail")
        (self.dir / "users").write_text("")
        self._pool = self._add_users([f"pw-{uuid.uuid4().hex[:12]}" for _ in range(48)])
        self._make_certificates()
        self.config = self.dir / "dovecot.conf"
        self.config.write_text(CONFIG.format(dir=self.dir, name=self.name, identity=identity, login_chroot=chroot,
                                             imap=self.imap_port, imaps=self.imaps_port, pop3=self.pop3_port,
                                             pop3s=self.pop3s_port))
        self.running = False

    def _make_certificates(self) -> None:
        import trustme

        ca = trustme.CA()
        cert = ca.issue_cert("localhost")  # not 127.0.0.1: connecting by address shows a name mismatch
        cert.private_key_pem.write_to_path(str(self.dir / "tls" / "key.pem"))
        cert.cert_chain_pems[0].write_to_path(str(self.dir / "tls" / "cert.pem"))
        self.ca_file = self.dir / "tls" / "ca.pem"
        ca.cert_pem.write_to_path(str(self.ca_file))

    # -- the server -------------------------------------------------------------------------------

    def start(self) -> "DovecotPeer":
        # Not a pipe: the daemonised master keeps the descriptors open, so a pipe would never end.
        out = self.dir / "start.out"
        with out.open("wb") as f:
            result = subprocess.run([DOVECOT, "-c", str(self.config)], stdout=f, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, timeout=30)
        if result.returncode != 0:
            raise RuntimeError(f"dovecot did not start: {out.read_text()}\n{self.log()}")
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.imap_port), timeout=2) as s:
                    if s.recv(100).startswith(b"* OK"):
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"dovecot did not answer on port {self.imap_port}\n{self.log()}")
            time.sleep(0.05)
        self.running = True
        return self

    def stop(self) -> None:
        pid = self._master_pid()
        if pid is None:
            return
        try:
            os.kill(pid, signal.SIGTERM)  # what `dovecot stop` sends, without its wait of a few seconds
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + 15
        while pid and Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        while time.monotonic() < deadline:  # the ports close with the master
            try:
                socket.create_connection(("127.0.0.1", self.imap_port), timeout=0.2).close()
            except OSError:
                break
            time.sleep(0.05)
        self.running = False

    def close(self, remove: bool = True) -> None:
        if self.running:
            self.stop()
        if remove:
            shutil.rmtree(self.dir, ignore_errors=True)

    def _master_pid(self) -> int | None:
        try:
            return int((self.dir / "run" / "master.pid").read_text().strip())
        except (OSError, ValueError):
            return None

    def log(self) -> str:
        try:
            return (self.dir / "dovecot.log").read_text()[-5000:]
        except OSError:
            return ""

    # -- users and mail ------------------------------------------------------------------------------

    def new_user(self, password: str | None = None) -> tuple[str, str]:
        """A fresh user with an empty INBOX; returns (name, password)."""
        if password is not None:
            name = self._add_users([password])[0]
            time.sleep(1.1)
            return name, password
        if not self._pool:
            self._pool = self._add_users([f"pw-{uuid.uuid4().hex[:12]}" for _ in range(32)])
            if self.running:
                time.sleep(1.1)
        name = self._pool.pop(0)
        return name, self.users[name]

    def _add_users(self, passwords: list[str]) -> list[str]:
        # Dovecot looks at a passwd-file again at most once a second (when its mtime or size has
        # changed): users are added in batches, and a new batch waits out that second.
        lines, names = [], []
        for password in passwords:
            name = f"u{uuid.uuid4().hex[:10]}"
            home = self.dir / "mail" / name
            for sub in ("cur", "new", "tmp"):
                (home / "Maildir" / sub).mkdir(parents=True, exist_ok=True)
            self._chown_tree(home)
            self.users[name] = password
            names.append(name)
            lines.append(f"{name}:{{PLAIN}}{password}:{self.uid}:{self.gid}::{home}::\n")
        with (self.dir / "users").open("a") as f:
            f.write("".join(lines))
        return names

    def maildir(self, user: str, folder: str = "INBOX") -> Path:
        root = self.dir / "mail" / user / "Maildir"
        return root if folder == "INBOX" else root / f".{folder}"

    def create_folder(self, user: str, folder: str) -> None:
        path = self.maildir(user, folder)
        for sub in ("cur", "new", "tmp"):
            (path / sub).mkdir(parents=True, exist_ok=True)
        (path / "maildirfolder").touch()
        self._chown_tree(path)

    def deliver(self, user: str, messages: Iterable[bytes], folder: str = "INBOX") -> int:
        """Put messages into the folder as new, unread mail (maildir ``new/``); returns how many."""
        path = self.maildir(user, folder)
        if not path.exists():
            self.create_folder(user, folder)
        n = 0
        stamp = int(time.time())
        for raw in messages:
            raw = raw.replace(b"\r\n", b"\n")  # maildir files hold mail with local line ends
            name = f"{stamp}.M{time.time_ns() % 10**9}R{uuid.uuid4().hex[:12]}.logmail-test"
            tmp = path / "tmp" / name
            tmp.write_bytes(raw)
            os.chown(tmp, self.uid, self.gid) if os.geteuid() == 0 else None
            os.rename(tmp, path / "new" / f"{name},S={len(raw)}")
            n += 1
        return n

    def reset_uidvalidity(self, user: str, folder: str = "INBOX") -> None:
        """Make the server forget the folder's UIDs, as a restored backup or a rebuilt index does:
        a new UIDVALIDITY, and every message numbered afresh."""
        path = self.maildir(user, folder)
        for entry in path.iterdir():
            # dovecot-uidvalidity stays: it makes the next UIDVALIDITY differ from the last.
            if entry.name == "dovecot-uidlist" or entry.name.startswith("dovecot.index"):
                entry.unlink()

    def client(self, user: str):
        """An imapclient session as ``user`` (plain IMAP on loopback), for looking at the mailbox."""
        from imapclient import IMAPClient

        client = IMAPClient("127.0.0.1", self.imap_port, ssl=False, timeout=30)
        client.login(user, self.users[user])
        return client

    def append(self, user: str, messages: Iterable[bytes], folder: str = "INBOX") -> None:
        client = self.client(user)
        try:
            for raw in messages:
                client.append(folder, raw)
        finally:
            client.logout()

    def status(self, user: str, folder: str = "INBOX") -> dict:
        client = self.client(user)
        try:
            return {k.decode(): v for k, v in client.folder_status(folder, ["MESSAGES", "UIDNEXT", "UIDVALIDITY",
                                                                             "UNSEEN"]).items()}
        finally:
            client.logout()

    def flags(self, user: str, folder: str = "INBOX") -> dict[int, tuple]:
        client = self.client(user)
        try:
            client.select_folder(folder, readonly=True)
            uids = client.search("ALL")
            return {uid: item[b"FLAGS"] for uid, item in client.fetch(uids, ["FLAGS"]).items()} if uids else {}
        finally:
            client.logout()

    def pop3_count(self, user: str) -> int:
        import poplib

        client = poplib.POP3("127.0.0.1", self.pop3_port, timeout=30)
        try:
            client.user(user)
            client.pass_(self.users[user])
            return client.stat()[0]
        finally:
            client.quit()

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_file))

    # -- ownership -------------------------------------------------------------------------------------

    def _chown(self, path: Path) -> None:
        if os.geteuid() == 0:
            os.chown(path, self.uid, self.gid)

    def _chown_tree(self, path: Path) -> None:
        if os.geteuid() != 0:
            return
        for parent in [path, *path.parents]:
            if parent == self.dir / "mail" or self.dir / "mail" not in parent.parents:
                break
            os.chown(parent, self.uid, self.gid)
        for root, dirs, files in os.walk(path):
            for name in dirs + files:
                os.chown(os.path.join(root, name), self.uid, self.gid)


def _group_of(gid: int) -> str:
    import grp

    return grp.getgrgid(gid).gr_name


def message(n: int, *, subject: str | None = None, msgid: str | None = "auto", to: str = "inbox@example.test",
            body: str | None = None) -> bytes:
    """A small plain-text message; ``msgid=None`` leaves out the Message-ID."""
    subject = subject or f"pulled message {n}"
    headers = [f"From: Sender {n} <sender{n}@example.net>", f"To: {to}", f"Subject: {subject}",
               "Date: Sat, 21 Nov 2026 10:00:00 +0000", "MIME-Version: 1.0",
               "Content-Type: text/plain; charset=utf-8"]
    if msgid == "auto":
        msgid = f"<pulled-{n}-{uuid.uuid4().hex[:8]}@example.net>"
    if msgid:
        headers.append(f"Message-ID: {msgid}")
    text = body or f"Hello, this is message number {n}.\n" + "Some more text to make it a realistic size. " * 20
    return ("\r\n".join(headers) + "\r\n\r\n" + text.replace("\n", "\r\n") + "\r\n").encode()
