"""``logmail daemon``: the API, the listeners and the ingest consumers in one process tree.

One asyncio loop serves the SMTP listener and the REST API; database and content-store work runs
in threads so neither protocol waits for disk. Ingest consumers run as worker processes
(``ingest.workers``) so that parsing uses the second core instead of competing with the listener
for the GIL; with ``ingest.workers = 0`` they run as a thread in the daemon itself.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from logmail.config import Settings
from logmail.daemon import mailboxes, worker
from logmail.daemon.health_job import HealthSampler, add_outbound_checks, alert_admins
from logmail.daemon.ingest_consumer import IngestConsumer
from logmail.errors import ConfigError
from logmail.services.auth import check_settings as check_auth_settings
from logmail.services.container import Services, build_services

log = logging.getLogger("logmail.daemon")

ALL_ROLES = ("api", "smtp", "worker", "scheduler")


def parse_roles(text: str | None) -> tuple[str, ...]:
    if not text:
        return ALL_ROLES
    roles = tuple(r.strip() for r in text.split(",") if r.strip())
    unknown = [r for r in roles if r not in ALL_ROLES]
    if unknown:
        raise ConfigError(f"unknown role(s) {', '.join(unknown)}; choose from {', '.join(ALL_ROLES)}")
    return roles


def bind(host: str, port: int) -> socket.socket:
    """Bind a listening socket ourselves, so port 0 works and errors are clear."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP explicitly: asyncio turns on TCP_NODELAY for accepted connections only when the
    # listening socket says TCP. Without it, Nagle holds pipelined SMTP replies for a delayed ACK
    # (about 40 ms a transaction).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.listen(512)
    sock.setblocking(False)
    return sock


@dataclass
class Daemon:
    settings: Settings
    roles: tuple[str, ...] = ALL_ROLES
    services: Services | None = None
    smtp_port: int | None = None
    api_port: int | None = None
    lmtp_port: int | None = None
    policy_port: int | None = None
    _loop: asyncio.AbstractEventLoop | None = None
    _stop: asyncio.Event | None = None
    _ready: threading.Event = field(default_factory=threading.Event)
    _error: BaseException | None = None
    _consumers: list[tuple[IngestConsumer, threading.Thread]] = field(default_factory=list)
    _threads: list[threading.Thread] = field(default_factory=list)
    _workers: list[subprocess.Popen] = field(default_factory=list)
    on_ready: Callable[["Daemon"], None] | None = None

    # -- running ---------------------------------------------------------------------------------

    def run(self, *, install_signals: bool = True) -> None:
        """Run until SIGINT/SIGTERM (or ``stop()``)."""
        asyncio.run(self._main(install_signals))

    def start_in_thread(self, timeout: float = 30) -> "Daemon":
        """Start in a background thread and return once listening (tests, benchmarks)."""
        thread = threading.Thread(target=self.run, kwargs={"install_signals": False}, name="logmail-daemon",
                                  daemon=True)
        thread.start()
        self._threads.append(thread)
        if not self._ready.wait(timeout):
            raise RuntimeError("the daemon did not start in time")
        if self._error:
            raise self._error
        return self

    def stop(self) -> None:
        if self._loop and self._stop:
            self._loop.call_soon_threadsafe(self._stop.set)
        for t in self._threads:
            t.join(timeout=30)

    async def _main(self, install_signals: bool) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        try:
            await self._start()
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            await self._shutdown()
            raise
        if install_signals:
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._loop.add_signal_handler(sig, self._stop.set)
        self._ready.set()
        if self.on_ready is not None:
            self.on_ready(self)
        await self._stop.wait()
        log.info("stopping")
        await self._shutdown()
        log.info("stopped")

    async def _start(self) -> None:
        s = self.settings
        if "api" in self.roles and s.api.enabled:
            check_auth_settings(s)  # before anything is opened: unsafe settings never serve a request
        self.services = await asyncio.to_thread(build_services, s)
        self.services.accounts.login_checker = mailboxes.check_login
        from logmail.daemon.outbound_job import install_sender

        install_sender(self.services)
        add_outbound_checks(self.services.health, s.outbound)
        self.services.health.on_transition = alert_admins(self.services)
        boot = self.services.boot
        if boot.token_created:
            log.info("created an owner API token; it is in %s (mode 0600)", boot.token_file)
        self._servers = []
        self._sanic = None
        if "smtp" in self.roles and s.smtp.enabled:
            from logmail.smtp.inbound import InboundHandler
            from logmail.smtp.server import protocol_factory

            sock = bind(s.smtp.host, s.smtp.port)
            self.smtp_port = sock.getsockname()[1]
            handler = InboundHandler(self.services.acceptor, policy=self._policy(),
                                     max_recipients=s.smtp.max_recipients, max_message_size=s.smtp.max_message_size)
            server = await self._loop.create_server(protocol_factory(s.smtp, handler), sock=sock)
            self._servers.append(server)
            log.info("SMTP listening on %s:%d", s.smtp.host, self.smtp_port)
        if "smtp" in self.roles and s.lmtp.enabled:
            from logmail.smtp.lmtp import LmtpHandler, start_lmtp

            sock = bind(s.lmtp.host, s.lmtp.port)
            self.lmtp_port = sock.getsockname()[1]
            handler = LmtpHandler(self.services.acceptor, policy=self._policy(),
                                  max_recipients=s.smtp.max_recipients, max_message_size=s.smtp.max_message_size)
            self._servers.append(await start_lmtp(s.smtp, handler, sock))
            log.info("LMTP listening on %s:%d", s.lmtp.host, self.lmtp_port)
        if "smtp" in self.roles and s.policy.enabled:
            from logmail.smtp.policy_server import PolicyServer

            sock = bind(s.policy.host, s.policy.port)
            self.policy_port = sock.getsockname()[1]
            self._policy_server = PolicyServer(self.services.policy)
            await self._policy_server.start(sock)
            log.info("policy service listening on %s:%d", s.policy.host, self.policy_port)
        if "api" in self.roles and s.api.enabled:
            from logmail.api.app import create_app

            await asyncio.to_thread(lambda: self.services.auth)  # the signing key now, not on the first request
            sock = bind(s.api.host, s.api.port)
            self.api_port = sock.getsockname()[1]
            app = create_app(self.services)
            self._sanic = await app.create_server(sock=sock, return_asyncio_server=True, access_log=False)
            await self._sanic.startup()
            await self._sanic.before_start()
            await self._sanic.after_start()
            log.info("API listening on http://%s:%d", s.api.host, self.api_port)
        if "worker" in self.roles:
            self._start_consumers()
        if "scheduler" in self.roles:
            from logmail.daemon.jobs import RetentionJob
            from logmail.daemon.scheduler import JobRunner

            self._jobs = JobRunner(self.services.db)
            self._jobs.add(RetentionJob(self.services.retention, s.retention))
            from logmail.daemon.outbound_job import OutboundRetryJob

            self._jobs.add(OutboundRetryJob(self.services.outbound, s.outbound))
            self._jobs.add(HealthSampler(self.services.health, s.health, self.services.auth.now))
            from logmail.daemon.billing_job import BillingDowngradeJob

            self._jobs.add(BillingDowngradeJob(self.services.billing, s.billing))
            self._jobs.start()
            from logmail.daemon.jobs import AccountSyncDispatcher
            from logmail.imap.sync_service import AccountSyncService

            # Not a JobRunner job: every daemon dispatches, each account is leased on its own.
            sync = AccountSyncService.from_services(self.services, owner=self._jobs.owner)
            sync.on_failure = mailboxes.report_sync_failures(self.services)
            self._account_sync = AccountSyncDispatcher(sync, s.accounts)
            self._account_sync.start()
            from logmail.daemon.webhook_job import WebhookDispatcher

            # Like the sync dispatcher, every daemon runs one; each delivery is claimed on its own.
            self._webhook_dispatcher = WebhookDispatcher.from_services(self.services, owner=self._jobs.owner).start()

    def _policy(self):
        """The admission policy for the listeners; None in local mode, where they catch everything."""
        return self.services.policy if self.services.platform else None

    def _start_consumers(self) -> None:
        s = self.settings
        if s.ingest.workers <= 0:
            consumer = IngestConsumer(self.services.queue, self.services.ingest, batch_size=s.queue.batch_size,
                                      poll_interval=s.queue.poll_interval)
            thread = threading.Thread(target=consumer.run, name="logmail-ingest", daemon=True)
            thread.start()
            self._consumers.append((consumer, thread))
            return
        for n in range(s.ingest.workers):
            self._workers.append(worker.spawn(s, f"ingest-{n + 1}"))
        log.info("started %d ingest worker process(es)", len(self._workers))
        self._watchdog = asyncio.get_running_loop().create_task(self._supervise_workers())

    async def _supervise_workers(self, interval: float = 2.0) -> None:
        """A worker that dies is reported and replaced; its unfinished jobs come back by lease."""
        restarts: dict[int, float] = {}
        while True:
            await asyncio.sleep(interval)
            for n, proc in enumerate(self._workers):
                code = proc.poll()
                if code is None:
                    continue
                now = asyncio.get_running_loop().time()
                if now - restarts.get(n, -1e9) < 10:
                    continue  # dying at once again: wait a little rather than spin
                log.error("ingest worker %d (pid %d) exited with %s; starting a new one", n + 1, proc.pid, code)
                restarts[n] = now
                self._workers[n] = worker.spawn(self.settings, f"ingest-{n + 1}")

    async def _shutdown(self) -> None:
        if getattr(self, "_watchdog", None) is not None:
            self._watchdog.cancel()
        if getattr(self, "_jobs", None) is not None:
            await asyncio.to_thread(self._jobs.shutdown)
        if getattr(self, "_account_sync", None) is not None:
            await asyncio.to_thread(self._account_sync.stop)
        if getattr(self, "_webhook_dispatcher", None) is not None:
            await asyncio.to_thread(self._webhook_dispatcher.stop)
        if getattr(self, "_policy_server", None) is not None:
            await self._policy_server.close()
        for server in getattr(self, "_servers", []):
            server.close()
        for server in getattr(self, "_servers", []):
            await server.wait_closed()
        if getattr(self, "_sanic", None) is not None:
            await self._sanic.before_stop()
            self._sanic.close()
            await self._sanic.wait_closed()
            await self._sanic.after_stop()
        for consumer, _ in self._consumers:
            consumer.stop()
        for _, thread in self._consumers:
            await asyncio.to_thread(thread.join, 30)
        for proc in self._workers:
            proc.terminate()
        for proc in self._workers:
            try:
                await asyncio.to_thread(proc.wait, 30)
            except subprocess.TimeoutExpired:
                log.warning("ingest worker %d did not stop; killing it", proc.pid)
                proc.kill()
        if self.services is not None:
            await asyncio.to_thread(self.services.close)
