"""RabbitMQ peers for the queue tests.

Two kinds, because the tests need two things the shared server cannot give:

* a private **vhost** on the shared server (127.0.0.1:5672, or ``LOGMAIL_TEST_RABBITMQ_URL``), so a
  test run neither sees nor leaves behind anybody else's queues; created and deleted with
  ``rabbitmqctl``, which is the only way to manage vhosts without the management plugin;
* a private **rabbitmq-server** on free ports in a temporary directory, which the fault tests may
  stop and start at will. The shared server must never be stopped.

The private node runs the packaged scripts directly (not the Debian wrapper, which would switch to
the ``rabbitmq`` user and ignore our environment), with its own config, enabled-plugins file (none),
Erlang cookie (``HOME``) and epmd port, so nothing of it listens on a fixed port or touches
/etc/rabbitmq or /var/lib/rabbitmq.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

from ports import free_port

SHARED_URL = os.environ.get("LOGMAIL_TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/")
# Where the real scripts live: the ones on PATH are a wrapper that drops privileges.
SBIN_CANDIDATES = [os.environ.get("LOGMAIL_TEST_RABBITMQ_SBIN", ""), "/usr/lib/rabbitmq/bin", "/usr/sbin"]


class PeerUnavailable(RuntimeError):
    """The peer cannot be provided here; tests should skip, not fail."""


# -- a private vhost on the shared server -------------------------------------------------------------


def _rabbitmqctl(*args: str) -> str:
    ctl = shutil.which("rabbitmqctl")
    if ctl is None:
        raise PeerUnavailable("rabbitmqctl is not installed")
    proc = subprocess.run([ctl, *args], capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        raise PeerUnavailable(f"rabbitmqctl {' '.join(args)} failed: {proc.stderr.strip() or proc.stdout.strip()}")
    return proc.stdout


def create_vhost(prefix: str = "logmail-test") -> tuple[str, str]:
    """Create a vhost for this run, grant the URL's user everything on it; returns (name, url)."""
    name = f"{prefix}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    parts = urlsplit(SHARED_URL)
    user = parts.username or "guest"
    _rabbitmqctl("add_vhost", name)
    try:
        _rabbitmqctl("set_permissions", "-p", name, user, ".*", ".*", ".*")
    except Exception:
        delete_vhost(name)
        raise
    return name, urlunsplit(parts._replace(path="/" + quote(name, safe="")))


def delete_vhost(name: str) -> None:
    """Delete a vhost this run created (and every queue in it); never call it for anything else."""
    _rabbitmqctl("delete_vhost", name)


# -- a private rabbitmq-server ------------------------------------------------------------------------




def _sbin() -> Path:
    for candidate in SBIN_CANDIDATES:
        if candidate and (Path(candidate) / "rabbitmq-server").exists() and \
                (Path(candidate) / "rabbitmq-env").exists():
            return Path(candidate)
    raise PeerUnavailable("the RabbitMQ server scripts were not found (set LOGMAIL_TEST_RABBITMQ_SBIN)")


class _ExitedAtBoot(Exception):
    pass


class PrivateBroker:
    """One rabbitmq-server node of our own; ``start``/``stop`` may be repeated, data is kept."""

    def __init__(self, base_dir: str | Path | None = None) -> None:
        self._own_dir = base_dir is None
        self.dir = Path(base_dir or tempfile.mkdtemp(prefix="logmail-rabbit-"))
        self.proc: subprocess.Popen | None = None
        self.startup_seconds: list[float] = []
        self._choose_ports()

    def _choose_ports(self) -> None:
        # free_port() stays below 32000: the CLI tools derive their own distribution ports from
        # the node's (+10000), which must stay below 65536.
        self.port = free_port()
        self.dist_port = free_port()
        self.epmd_port = free_port()
        self.nodename = f"logmail-test-{self.port}@localhost"
        self.url = f"amqp://guest:guest@127.0.0.1:{self.port}/%2F"
        self._write_files()

    def _write_files(self) -> None:
        (self.dir / "log").mkdir(parents=True, exist_ok=True)
        (self.dir / "mnesia").mkdir(exist_ok=True)
        (self.dir / "rabbitmq.conf").write_text(
            f"listeners.tcp.default = 127.0.0.1:{self.port}\n"
            "loopback_users = none\n"
            "disk_free_limit.absolute = 10MB\n"
            "log.console = false\n"
            "log.file.level = warning\n"
            # A graceful stop should not wait long for clients to go.
            "tcp_listen_options.linger.on = true\n"
            "tcp_listen_options.linger.timeout = 0\n"
        )
        (self.dir / "enabled_plugins").write_text("[].\n")  # no management (fixed port 15672), nothing
        (self.dir / "rabbitmq-env.conf").write_text("")  # so /etc/rabbitmq/rabbitmq-env.conf is not read

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RABBITMQ_", "ERL_"))}
        env.update({
            "HOME": str(self.dir),  # our own Erlang cookie
            "RABBITMQ_CONF_ENV_FILE": str(self.dir / "rabbitmq-env.conf"),
            "RABBITMQ_NODENAME": self.nodename,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(self.dir / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.dir / "log"),
            "RABBITMQ_CONFIG_FILE": str(self.dir / "rabbitmq.conf"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(self.dir / "advanced.config"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.dir / "enabled_plugins"),
            "RABBITMQ_PID_FILE": str(self.dir / "rabbitmq.pid"),
            # Erlang distribution on loopback only, as the AMQP listener.
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
            # A private epmd: the node starts it on this port, ``cleanup`` kills it again.
            "ERL_EPMD_PORT": str(self.epmd_port),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
        })
        return env

    def start(self, timeout: float = 60.0, attempts: int = 3) -> float:
        """Start the node and wait until it accepts AMQP connections; returns the seconds it took.

        A port chosen as free can be taken (by any test binding port 0) before the node listens on
        it, and the node then exits at boot. Before the first successful start we choose new ports
        and try again; after it, clients know the URL, so the same ports are tried again a moment later.
        """
        for attempt in range(1, attempts + 1):
            try:
                return self._start_once(timeout)
            except _ExitedAtBoot as exc:
                if attempt == attempts:
                    raise PeerUnavailable(str(exc)) from None
                if not self.startup_seconds:
                    self.stop(kill=True)
                    self._kill_epmd()
                    self._choose_ports()
                time.sleep(1.0)
        raise AssertionError("unreachable")

    def _start_once(self, timeout: float) -> float:
        if self.proc is not None and self.proc.poll() is None:
            return 0.0
        t0 = time.monotonic()
        with open(self.dir / "log" / "stdout.log", "ab") as out:
            # Its own session, so stopping it can never signal the test runner.
            self.proc = subprocess.Popen([str(_sbin() / "rabbitmq-server")], env=self.env(), cwd=self.dir,
                                         stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        while True:
            if self.proc.poll() is not None:
                raise _ExitedAtBoot(f"rabbitmq-server exited with {self.proc.returncode}:\n{self._log_tail()}")
            if self._amqp_ready():
                break
            if time.monotonic() - t0 > timeout:
                self.stop(kill=True)
                raise PeerUnavailable(f"rabbitmq-server did not start within {timeout:.0f} s; see {self.dir / 'log'}")
            time.sleep(0.1)
        elapsed = time.monotonic() - t0
        self.startup_seconds.append(elapsed)
        return elapsed

    def _log_tail(self, lines: int = 25) -> str:
        """The end of the node's own logs: they are removed with the directory, so say it now."""
        out = []
        for path in sorted((self.dir / "log").glob("*.log")):
            text = path.read_text(errors="replace").splitlines()[-lines:]
            out.append(f"--- {path.name}\n" + "\n".join(text))
        return "\n".join(out)

    def _amqp_ready(self) -> bool:
        # The listener opens only once the node has booted, but a full handshake is the real proof.
        import pika

        try:
            conn = pika.BlockingConnection(pika.URLParameters(self.url + "?connection_attempts=1&socket_timeout=2"))
        except Exception:
            return False
        conn.close()
        return True

    def stop(self, kill: bool = False, timeout: float = 30.0) -> None:
        """Stop the node: gracefully (SIGTERM to the start script), or like a crash (SIGKILL to all of it)."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        if kill:
            os.killpg(proc.pid, signal.SIGKILL)  # our own session: the script, beam and its helpers
        else:
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        if not kill:
            # erl_child_setup and friends leave with the VM; make sure nothing of ours lingers.
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def cleanup(self) -> None:
        """Stop the node, its private epmd, and remove the directory (if we made it)."""
        self.stop()
        self._kill_epmd()
        if self._own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    def _kill_epmd(self) -> None:
        epmd = shutil.which("epmd") or next(iter(sorted(Path("/usr/lib/erlang").glob("erts-*/bin/epmd"))), None)
        if epmd:
            subprocess.run([str(epmd), "-port", str(self.epmd_port), "-kill"], capture_output=True, timeout=10,
                           env={**os.environ, "ERL_EPMD_PORT": str(self.epmd_port)})
