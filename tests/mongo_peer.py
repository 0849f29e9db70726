"""A private MongoDB wire-protocol server for tests: SecantusDB in a child process.

    peer = start_mongo_peer(tmp_path)          # free loopback port, data in tmp_path/"mongo-data"
    client = pymongo.MongoClient(peer.url_for("mydb"))
    peer.stop()                                # SIGTERM; stop(kill=True) for a crash
    peer.start()                               # again, same port and data directory
    peer.close()                               # done with it (also: ``with start_mongo_peer(...)``)

The server picks its own port (``--port 0``) and reports it in its log, so there is no window in
which another process could take a port chosen for it. A restart reuses that port: the server sets
SO_REUSEADDR, so sockets of the previous run in TIME_WAIT do not stand in the way.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from ports import free_port

_LISTENING = re.compile(rb"secantus listening on ([0-9.]+):(\d+)")


class MongoPeerError(RuntimeError):
    """The peer did not start or stop as asked; the message ends with the tail of its log."""


class MongoPeer:
    """One SecantusDB server process; see the module docstring."""

    host = "127.0.0.1"

    def __init__(self, work_dir: Path, *, port: int = 0, standalone: bool = False,
                 extra_args: tuple[str, ...] = ()) -> None:
        if importlib.util.find_spec("secantus") is None:
            pytest.skip("SecantusDB (the test extra secantusdb) is not installed")
        self.work_dir = Path(work_dir)
        self.data_dir = self.work_dir / "mongo-data"
        self.log_path = self.work_dir / "mongo-peer.log"
        self.port = port
        self.standalone = standalone
        self.extra_args = tuple(extra_args)
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        """``mongodb://127.0.0.1:<port>`` (no database: see ``url_for``)."""
        return f"mongodb://{self.host}:{self.port}"

    def url_for(self, database: str, **options: object) -> str:
        """The URL of ``database`` on this peer, with URL options (``serverSelectionTimeoutMS=1000``)."""
        query = "&".join(f"{k}={_option(v)}" for k, v in options.items())
        return f"{self.url}/{database}" + (f"?{query}" if query else "")

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def command_line(self) -> list[str]:
        # An explicit (empty) config file: the server would otherwise read ./secantusd.toml or
        # ~/.secantus/secantusd.toml if the developer happens to have one.
        config = self.work_dir / "secantusd.toml"
        if not config.exists():
            config.write_text("# empty: every setting is on the command line\n")
        args = [sys.executable, "-m", "secantus", "--config", str(config), "--host", self.host,
                "--port", str(self.port), "--storage-path", str(self.data_dir), "--log-level", "INFO"]
        if self.standalone:
            args.append("--standalone")
        return args + list(self.extra_args)

    def start(self, timeout: float = 20.0) -> MongoPeer:
        """Start the server (again) and wait until it accepts connections."""
        if self.running:
            raise MongoPeerError(f"the peer on port {self.port} is already running")
        self.work_dir.mkdir(parents=True, exist_ok=True)
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with open(self.log_path, "ab") as log_file:
            # Output to a file, not a pipe: nobody reads a pipe during the test, and a full one
            # would block the server.
            self.process = subprocess.Popen(self.command_line(), stdin=subprocess.DEVNULL, stdout=log_file,
                                            stderr=subprocess.STDOUT, cwd=self.work_dir)
        deadline = time.monotonic() + timeout
        while True:
            match = _LISTENING.search(self.log_path.read_bytes()[offset:])
            if match:
                self.port = int(match.group(2))
                break
            if self.process.poll() is not None:
                raise MongoPeerError(f"the peer exited with status {self.process.returncode}{self._log_tail()}")
            if time.monotonic() > deadline:
                self.stop(kill=True)
                raise MongoPeerError(f"the peer did not start within {timeout} s{self._log_tail()}")
            time.sleep(0.02)
        self._wait_for_port(deadline)
        return self

    def stop(self, *, kill: bool = False, timeout: float = 15.0) -> None:
        """Stop the server: SIGTERM (a clean shutdown) or, with ``kill``, SIGKILL (a crash)."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
            raise MongoPeerError(f"the peer ignored SIGTERM for {timeout} s and was killed{self._log_tail()}")

    def close(self, *, remove: bool = False) -> None:
        """Stop for good. SIGKILL: the data goes with the temporary directory, and a clean shutdown
        costs SecantusDB two seconds or more (it waits on its accept thread and open connections).
        With ``remove``, the peer's working directory is deleted too."""
        self.stop(kill=True)
        if remove:
            shutil.rmtree(self.work_dir, ignore_errors=True)

    def __enter__(self) -> MongoPeer:
        return self if self.running else self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _wait_for_port(self, deadline: float) -> None:
        # The log line comes right after listen(); this makes sure, cheaply.
        while True:
            try:
                with socket.create_connection((self.host, self.port), timeout=1):
                    return
            except OSError:
                if time.monotonic() > deadline:
                    raise MongoPeerError(f"the peer does not accept connections on {self.port}{self._log_tail()}")
                time.sleep(0.02)

    def _log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n--- peer log ---\n" + "\n".join(text.splitlines()[-lines:])


def start_mongo_peer(tmp_dir: Path | str, *, port: int = 0, standalone: bool = False,
                     extra_args: tuple[str, ...] = (), timeout: float = 20.0) -> MongoPeer:
    """Start a SecantusDB server on loopback, data and log in ``tmp_dir``; return it running.

    ``port=0`` lets the server choose a free port (``peer.port`` tells which). ``standalone`` makes
    it a standalone server rather than a single-node replica set.
    """
    return MongoPeer(Path(tmp_dir), port=port, standalone=standalone, extra_args=extra_args).start(timeout)


def _option(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


__all__ = ["MongoPeer", "MongoPeerError", "free_port", "start_mongo_peer"]
