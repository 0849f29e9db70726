#!/usr/bin/env python3
"""Mailbox pulling benchmark: how fast logmail imports a mailbox, and what polling an unchanged one costs.

1. A private Dovecot (``tests/dovecot_peer.py``) on loopback gets N messages of the capture
   benchmark's realistic mix (``mailmix.py``) written into one user's maildir; Dovecot indexes
   them once before the clock starts, as it would have when the mail was delivered.
2. ``logmail daemon --role scheduler,worker`` runs as a subprocess on a fresh data directory (or,
   with ``--stack production``, on a private MariaDB database, RabbitMQ vhost and Redis prefix).
   The benchmark registers the account (straight into the database, password through the vault)
   and makes it due; the daemon's dispatcher syncs it through the real path: IMAP ``UID FETCH``
   in chunks of ~100 → durable accept (content store + ingest queue) → progress committed, while
   the ingest worker process stores, parses and indexes.

   * *fetched and durably accepted*: N / the sync's own run time (``sync_stats.lastRunMs``);
   * *stored end to end*: N / (the moment the N-th message is stored − the sync's start).
3. Polling the unchanged mailbox P times through ``AccountSyncService.sync`` in this process:
   IMAP commands sent per poll (each is one round trip) and milliseconds per poll, the whole sync
   (lease, account row, session) and the IMAP session alone.

Example:
    python benchmarks/imap_sync.py --messages 5000
    python benchmarks/imap_sync.py --messages 5000 --protocol pop3 --polls 20
    python benchmarks/imap_sync.py --stack production --content embedded --messages 5000

This is a benchmark, not a test: it exits 0 when it ran, whether or not the targets were met.
"""

from __future__ import annotations

import argparse
import imaplib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))

import mailmix  # noqa: E402
from dovecot_peer import DovecotPeer, dovecot_available  # noqa: E402
from stack import make_stack  # noqa: E402

TARGETS = {"accepted_per_s": 300, "stored_per_s": 300, "poll_round_trips": 1}


def raw_of(m: mailmix.Message) -> bytes:
    """The message as a mailbox holds it (mailmix keeps it dot-stuffed for SMTP)."""
    body = m.data[:-3]  # ".\r\n"
    if body.startswith(b".."):
        body = body[1:]
    return body.replace(b"\r\n..", b"\r\n.")


def toml(data: dict) -> str:
    lines = [f"{k} = {json.dumps(v)}" for k, v in data.items() if not isinstance(v, dict)]
    for section, values in data.items():
        if isinstance(values, dict):
            lines.append(f"[{section}]")
            lines += [f"{k} = {json.dumps(v)}" for k, v in values.items()]
    return "\n".join(lines) + "\n"


def log(msg: str = "") -> None:
    print(msg, flush=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--messages", type=int, default=5000)
    p.add_argument("--protocol", choices=["imap", "pop3"], default="imap")
    p.add_argument("--polls", type=int, default=50, help="polls of the unchanged mailbox to time")
    p.add_argument("--workers", type=int, default=1, help="ingest worker processes of the daemon")
    p.add_argument("--stack", choices=["embedded", "production"], default="embedded")
    p.add_argument("--content", choices=["mongodb", "embedded"], default="mongodb",
                   help="production stack: SecantusDB or content.db for the content store")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--json", help="write the figures here")
    args = p.parse_args(argv)
    if not dovecot_available():
        log("Dovecot is not installed (Debian packages dovecot-imapd dovecot-pop3d)")
        return 2

    work = Path(tempfile.mkdtemp(prefix="logmail-imapbench-"))
    work.chmod(0o755)
    peer = DovecotPeer(work / "dovecot").start()
    stack = make_stack(args.stack, content=args.content, log=log)
    proc = None
    services = None
    try:
        user, password = peer.new_user()
        log(f"generating {args.messages} messages (mailmix seed {args.seed}) ...")
        messages = mailmix.make_messages(args.seed, 0, args.messages)
        raws = [raw_of(m) for m in messages]
        total_bytes = sum(len(r) for r in raws)
        peer.deliver(user, raws)
        started = time.monotonic()
        peer.status(user)  # Dovecot indexes the new maildir files now, not during the timed sync
        log(f"Dovecot holds {args.messages} messages, {total_bytes / 1e6:.1f} MB "
            f"(mean {total_bytes // args.messages} bytes); indexed in {time.monotonic() - started:.1f} s")

        stack.setup()
        config = work / "logmail.toml"
        data = {"data_dir": str(work / "data"), "log_level": "info",
                "ingest": {"workers": args.workers},
                "accounts": {"dispatch_interval": 0.1, "timeout": 30}}
        for section, values in stack.settings().items():
            data.setdefault(section, {}).update(values)
        config.write_text(toml(data))

        from logmail.config import load_settings
        from logmail.imap.sync_service import request_sync
        from logmail.services.container import build_services
        from logmail.store.models import MailAccount, MailAccountFolder, MailAccountSeen, Message
        from sqlalchemy import func, select, update

        services = build_services(load_settings(str(config), environ={}))
        account_uuid = "00000000-0000-4000-8000-00000000beef"
        port = peer.imap_port if args.protocol == "imap" else peer.pop3_port
        with services.db.write() as session:
            from logmail.store.models import User

            owner = User(organization_id=services.boot.organization_id, email="bench@example.test")
            session.add(owner)
            session.flush()
            account = MailAccount(uuid=account_uuid, organization_id=services.boot.organization_id, user_id=owner.id,
                                  account_name="bench", email_address=f"{user}@example.test",
                                  protocol=args.protocol, hostname="127.0.0.1", port=port, encryption="none",
                                  username=user, password_encrypted=services.vault.encrypt(account_uuid, password),
                                  folders=["INBOX"], sync_interval=3600, is_sync_enabled=False)
            session.add(account)
            session.flush()
            account_id = account.id

        daemon_log = work / "daemon.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("LOGMAIL_")}
        proc = subprocess.Popen([sys.executable, "-m", "logmail", "daemon", "--config", str(config),
                                 "--role", "scheduler,worker"], stdout=daemon_log.open("wb"),
                                stderr=subprocess.STDOUT, env=env, start_new_session=True, cwd=work)
        deadline = time.monotonic() + 60
        while b"mailbox sync dispatcher started" not in daemon_log.read_bytes():
            if proc.poll() is not None or time.monotonic() > deadline:
                log(daemon_log.read_text()[-3000:])
                return 2
            time.sleep(0.05)

        with services.db.write() as session:
            session.execute(update(MailAccount).where(MailAccount.id == account_id).values(is_sync_enabled=True))
        request_sync(services.db, account_id)
        log(f"syncing over {args.protocol.upper()} with `logmail daemon --role scheduler,worker` "
            f"({args.workers} ingest worker(s), {args.stack} stack) ...")

        def count_stored() -> int:
            with services.db.connect() as conn:
                return conn.execute(select(func.count()).select_from(Message)
                                    .where(Message.account_id == account_id)).scalar()

        def progress() -> int:
            with services.db.connect() as conn:
                if args.protocol == "imap":
                    return conn.execute(select(MailAccountFolder.last_uid)
                                        .where(MailAccountFolder.account_id == account_id)).scalar() or 0
                return conn.execute(select(func.count()).select_from(MailAccountSeen)
                                    .where(MailAccountSeen.account_id == account_id)).scalar()

        stored_at = None
        deadline = time.monotonic() + 1800
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                log("the daemon died:\n" + daemon_log.read_text()[-3000:])
                return 2
            if stored_at is None and count_stored() >= args.messages:
                stored_at = time.time()
                break
            time.sleep(0.02)
        with services.db.read() as session:
            row = session.get(MailAccount, account_id)
            stats, sync_started, last_error = dict(row.sync_stats or {}), row.sync_started_at, row.last_error
        if stored_at is None or last_error:
            log(f"did not finish: {count_stored()} stored, progress {progress()}, error {last_error!r}")
            return 2
        run_s = stats["lastRunMs"] / 1000
        e2e_s = stored_at - sync_started / 1000
        figures = {
            "protocol": args.protocol, "stack": args.stack, "messages": args.messages, "bytes": total_bytes,
            "ingest_workers": args.workers,
            "sync_seconds": round(run_s, 2), "accepted_per_s": round(args.messages / run_s, 1),
            "accepted_mb_per_s": round(total_bytes / 1e6 / run_s, 1),
            "stored_seconds": round(e2e_s, 2), "stored_per_s": round(args.messages / e2e_s, 1),
        }
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
        proc = None

        figures.update(poll_cost(services, account_id, args, peer, user, password))
        log("")
        log(f"fetched and durably accepted: {figures['accepted_per_s']:,.0f} msgs/s "
            f"({figures['accepted_mb_per_s']} MB/s; {args.messages} in {run_s:.2f} s)   target ≥ {TARGETS['accepted_per_s']}")
        log(f"stored end to end:            {figures['stored_per_s']:,.0f} msgs/s "
            f"({args.messages} in {e2e_s:.2f} s from the sync's start)   target ≥ {TARGETS['stored_per_s']}")
        log(f"poll of the unchanged mailbox: {figures['poll_commands_per_poll']} command(s) "
            f"[{' '.join(figures['poll_commands'])}] of which mailbox queries: {figures['poll_mailbox_queries']}; "
            f"whole sync p50 {figures['poll_ms_p50']} ms, p95 {figures['poll_ms_p95']} ms; "
            f"IMAP/POP3 session alone p50 {figures['session_ms_p50']} ms")
        if args.json:
            Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")
        return 0
    finally:
        if proc is not None and proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        if services is not None:
            services.close()
        for problem in stack.cleanup():
            log(f"cleanup: {problem}")
        peer.close()
        import shutil

        shutil.rmtree(work, ignore_errors=True)


def poll_cost(services, account_id: int, args, peer, user: str, password: str) -> dict:
    """Sync the unchanged mailbox ``args.polls`` times; count what goes over the wire."""
    import poplib

    from logmail.imap.connection import Endpoint, imap_session, pop3_session
    from logmail.imap.sync_service import AccountSyncService

    sent: list[str] = []
    imap_command = imaplib.IMAP4._command
    pop_short, pop_long = poplib.POP3._shortcmd, poplib.POP3._longcmd

    def counting_imap(self, name, *a):
        sent.append(name if name != "UID" else f"UID {a[0]}")
        return imap_command(self, name, *a)

    def counting_short(self, line):
        sent.append(line.split()[0].upper())
        return pop_short(self, line)

    def counting_long(self, line):
        sent.append(line.split()[0].upper())
        return pop_long(self, line)

    imaplib.IMAP4._command = counting_imap
    poplib.POP3._shortcmd, poplib.POP3._longcmd = counting_short, counting_long
    try:
        service = AccountSyncService.from_services(services, owner="benchmark")
        times, per_poll = [], []
        for _ in range(args.polls):
            sent.clear()
            started = time.perf_counter()
            result = service.sync(account_id)
            times.append((time.perf_counter() - started) * 1000)
            assert result["status"] == "ok" and result["imported"] == 0, result
            per_poll.append(list(sent))
        endpoint = Endpoint(args.protocol, "127.0.0.1", peer.imap_port if args.protocol == "imap" else peer.pop3_port,
                            "none", user, 30)
        session_times = []
        for _ in range(args.polls):
            started = time.perf_counter()
            if args.protocol == "imap":
                with imap_session(endpoint, password) as client:
                    client.folder_status("INBOX", ["UIDNEXT", "UIDVALIDITY"])
            else:
                with pop3_session(endpoint, password) as client:
                    client.uidl()
            session_times.append((time.perf_counter() - started) * 1000)
    finally:
        imaplib.IMAP4._command = imap_command
        poplib.POP3._shortcmd, poplib.POP3._longcmd = pop_short, pop_long
    commands = per_poll[-1]
    queries = [c for c in commands if c not in ("LOGIN", "LOGOUT", "CAPABILITY", "USER", "PASS", "QUIT")]

    def pct(values: list[float], q: float) -> float:
        values = sorted(values)
        return round(values[min(len(values) - 1, int(q * len(values)))], 2)

    return {"polls": args.polls, "poll_commands": commands, "poll_commands_per_poll": len(commands),
            "poll_mailbox_queries": len(queries),
            "poll_ms_p50": round(statistics.median(times), 2), "poll_ms_p95": pct(times, 0.95),
            "session_ms_p50": round(statistics.median(session_times), 2),
            "session_ms_p95": pct(session_times, 0.95)}


if __name__ == "__main__":
    sys.exit(main())
