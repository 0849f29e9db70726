"""A private MariaDB server for fault tests: the machine's shared one is never stopped.

The server runs as the ``mysql`` user on a free loopback port with its data in a temporary
directory; ``stop()`` and ``start()`` may be called repeatedly to simulate a restart.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pymysql
from ports import free_port as _free_port


class MariaDBPeer:
    def __init__(self) -> None:
        # Not under pytest's tmp_path: its 0700 parents would keep the mysql user out.
        base = Path(tempfile.mkdtemp(prefix="logmail-mariadb-"))
        self.base = base
        self.datadir = base / "data"
        self.socket = base / "mysqld.sock"
        self.port = _free_port()
        self.proc: subprocess.Popen | None = None
        os.chmod(base, 0o777)  # the server runs as mysql and needs its socket and pid here
        subprocess.run(
            ["mariadb-install-db", f"--datadir={self.datadir}", "--user=mysql", "--auth-root-authentication-method=normal",
             "--skip-test-db", "--skip-name-resolve"],
            check=True, capture_output=True, timeout=120,
        )

    @property
    def root_url(self) -> str:
        return f"mysql+pymysql://root@127.0.0.1:{self.port}"

    def start(self, timeout: float = 60) -> None:
        self.proc = subprocess.Popen(
            ["mariadbd", f"--datadir={self.datadir}", "--user=mysql", f"--port={self.port}",
             "--bind-address=127.0.0.1", f"--socket={self.socket}", f"--pid-file={self.base / 'mysqld.pid'}",
             "--skip-grant-tables=0", "--innodb-buffer-pool-size=32M", "--skip-log-bin",
             f"--log-error={self.base / 'error.log'}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("private MariaDB exited: " + (self.base / "error.log").read_text()[-2000:])
            try:
                pymysql.connect(host="127.0.0.1", port=self.port, user="root", password="", connect_timeout=1).close()
                return
            except pymysql.err.OperationalError:
                time.sleep(0.1)
        raise RuntimeError("private MariaDB did not start in time")

    def create_database(self, name: str) -> str:
        conn = pymysql.connect(host="127.0.0.1", port=self.port, user="root", password="")
        try:
            with conn.cursor() as cur:
                cur.execute(f"CREATE DATABASE {name} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
        finally:
            conn.close()
        return f"{self.root_url}/{name}?charset=utf8mb4"

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.base, ignore_errors=True)
