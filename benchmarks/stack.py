"""The engines under the capture benchmark: embedded (SQLite files) or the production stack.

``EmbeddedStack`` adds nothing to the daemon's config: metadata, work queue (outbox table) and
content live in SQLite files in ``data_dir``.

``ProductionStack`` provisions, for one run, on this machine's shared servers:

* a MariaDB database ``logmail_bench_<hex>`` (utf8mb4), dropped afterwards;
* a RabbitMQ vhost ``logmail-bench-<pid>-<hex>`` (``rabbitmqctl add_vhost`` / ``set_permissions``
  for guest), deleted afterwards with every queue in it (``--queue outbox`` uses the outbox table in
  the MariaDB database instead);
* a Redis key prefix ``logmail-bench:<hex>:``; keys under it are deleted afterwards;
* unless the content store stays embedded (``content.db``), a private SecantusDB server (a MongoDB
  wire-protocol server written in Python) on a free loopback port with its data in a temporary
  directory, killed and removed afterwards.

``cleanup()`` undoes everything ``setup()`` did, step by step, each step on its own: a failure in
one never keeps the others from running. Names are registered *before* they are created, so an
interruption half-way through ``setup()`` is cleaned up as well (dropping what does not exist is
harmless).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import quote

import psutil

MARIADB = {"host": "127.0.0.1", "port": 3306, "user": "root", "password": ""}
MARIADB_URL = "mysql+pymysql://root@127.0.0.1:3306"
RABBIT_USER, RABBIT_PASSWORD, RABBIT_HOST = "guest", "guest", "127.0.0.1:5672"
REDIS_URL = "redis://127.0.0.1:6379/0"
INGEST = "ingest"  # logmail.services.accept.INGEST_QUEUE
_LISTENING = re.compile(rb"secantus listening on ([0-9.]+):(\d+)")


class StackError(Exception):
    """An engine could not be provisioned or reached."""


def _dir_bytes(path: Path) -> int:
    total = 0
    for p in path.rglob("*"):
        try:
            if p.is_file():
                total += p.stat().st_size
        except OSError:
            pass
    return total


def sqlite_files(data_dir: Path) -> dict:
    """Sizes of logmail.db and content.db (with their -wal/-shm files) in ``data_dir``."""
    files = {}
    for p in sorted(data_dir.glob("*")):
        if p.is_file() and p.name.startswith(("logmail.db", "content.db")):
            files[p.name] = p.stat().st_size
    return {"files": files,
            "logmail_db_bytes": sum(v for k, v in files.items() if k.startswith("logmail.db")),
            "content_db_bytes": sum(v for k, v in files.items() if k.startswith("content.db"))}


# -- queue depth probes -------------------------------------------------------------------------------


class SqliteDepth:
    """Ready jobs of the outbox in logmail.db: ``SELECT count(*) FROM jobs WHERE status = 'ready'``."""

    source = "outbox (SQLite jobs table, status='ready')"

    def __init__(self, db_path: Path) -> None:
        self.db_path = db_path
        self.conn: sqlite3.Connection | None = None

    def __call__(self) -> int | None:
        if self.conn is None:
            if not self.db_path.exists():
                return None
            self.conn = sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True, timeout=5,
                                        check_same_thread=False)
        return self.conn.execute("SELECT count(*) FROM jobs WHERE queue = ? AND status = 'ready'",
                                 (INGEST,)).fetchone()[0]

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


class MariaDepth:
    """Ready jobs of the outbox in the MariaDB database (READ COMMITTED, autocommit)."""

    source = "outbox (MariaDB jobs table, status='ready')"

    def __init__(self, database: str) -> None:
        self.database = database
        self.conn = None

    def __call__(self) -> int | None:
        import pymysql

        if self.conn is None:
            self.conn = pymysql.connect(**MARIADB, database=self.database, autocommit=True)
            with self.conn.cursor() as cur:
                cur.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
        with self.conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM jobs WHERE queue = %s AND status = 'ready'", (INGEST,))
            return cur.fetchone()[0]

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


class RabbitDepth:
    """Messages ready in ``{prefix}.ingest``: a passive queue.declare, about a millisecond.

    The declare-ok count leaves out messages delivered to a consumer and not yet acknowledged (up
    to ``queue.prefetch`` per consumer thread) and those waiting in the delay queues (retries)."""

    def __init__(self, url: str, queue: str) -> None:
        self.url, self.queue = url, queue
        self.source = f"RabbitMQ {queue} (passive queue.declare: ready, not counting unacked deliveries)"
        self.conn = self.channel = None

    def __call__(self) -> int | None:
        import pika
        from pika.exceptions import ChannelClosedByBroker

        if self.conn is None or not self.conn.is_open:
            self.conn = pika.BlockingConnection(pika.URLParameters(self.url))
            self.channel = None
        if self.channel is None or not self.channel.is_open:
            self.channel = self.conn.channel()
        try:
            return self.channel.queue_declare(self.queue, passive=True).method.message_count
        except ChannelClosedByBroker:  # 404: not declared yet (no daemon has used it)
            self.channel = None
            return None

    def close(self) -> None:
        try:
            if self.conn is not None and self.conn.is_open:
                self.conn.close()
        except Exception:
            pass
        self.conn = self.channel = None


# -- the stacks ---------------------------------------------------------------------------------------


class EmbeddedStack:
    """SQLite for everything, in the daemons' (shared) data_dir."""

    name = "embedded"
    shares_data_dir = True   # every process of an installation must use the one data_dir
    queue = "outbox"
    content = "embedded"

    def __init__(self, log=print) -> None:
        self.log = log

    def describe(self) -> str:
        return "embedded: SQLite logmail.db (metadata + outbox queue) and content.db in data_dir"

    def setup(self) -> None:
        pass

    def settings(self) -> dict[str, dict[str, object]]:
        return {}

    def depth_probe(self, data_dir: Path):
        return SqliteDepth(data_dir / "logmail.db")

    def engine_processes(self) -> list[tuple[str, psutil.Process]]:
        return []

    def storage(self, data_dirs: list[Path], stored: int) -> dict:
        st = sqlite_files(data_dirs[0])
        return _per_message({"metadata": {"engine": "SQLite logmail.db (incl. -wal/-shm)",
                                          "bytes": st["logmail_db_bytes"], "files": st["files"]},
                             "content": {"engine": "SQLite content.db (incl. -wal/-shm)",
                                         "bytes": st["content_db_bytes"]}}, stored)

    def cleanup(self) -> list[str]:
        return []


class ProductionStack:
    """MariaDB + RabbitMQ vhost + Redis prefix (+ SecantusDB), all private to one run."""

    name = "production"

    def __init__(self, *, content: str = "mongodb", queue: str = "rabbitmq", log=print) -> None:
        self.content = content
        self.queue = queue
        self.log = log
        tag = uuid.uuid4().hex[:10]
        self.database = f"logmail_bench_{tag}"
        self.vhost = f"logmail-bench-{os.getpid()}-{tag}"
        self.queue_prefix = f"lmb-{tag}"
        self.redis_prefix = f"logmail-bench:{tag}:"
        self.mongo_db = f"lm_bench_{tag}"
        self.mongo_dir: Path | None = None
        self.mongo_proc: subprocess.Popen | None = None
        self.mongo_port: int | None = None
        self._created: list[str] = []   # what cleanup() has to undo, in the order created
        self.shares_data_dir = content == "embedded"  # content.db must be shared by every process

    # -- names and URLs -----------------------------------------------------------------------------

    @property
    def amqp_url(self) -> str:
        return f"amqp://{RABBIT_USER}:{RABBIT_PASSWORD}@{RABBIT_HOST}/{quote(self.vhost, safe='')}"

    @property
    def database_url(self) -> str:
        return f"{MARIADB_URL}/{self.database}?charset=utf8mb4"

    @property
    def mongo_url(self) -> str:
        return f"mongodb://127.0.0.1:{self.mongo_port}/{self.mongo_db}"

    def describe(self) -> str:
        parts = [f"MariaDB database {self.database}"]
        parts.append(f"RabbitMQ vhost {self.vhost} (queues {self.queue_prefix}.*)" if self.queue == "rabbitmq"
                     else "outbox queue in that database")
        parts.append(f"Redis prefix {self.redis_prefix!r}")
        parts.append(f"SecantusDB (MongoDB wire protocol) database {self.mongo_db} on 127.0.0.1:{self.mongo_port}"
                     if self.content == "mongodb" else "content embedded (content.db in the shared data_dir)")
        return "production: " + ", ".join(parts)

    # -- setup --------------------------------------------------------------------------------------

    def setup(self) -> None:
        import pymysql

        self._created.append("database")
        try:
            conn = pymysql.connect(**MARIADB)
        except pymysql.MySQLError as exc:
            raise StackError(f"cannot reach MariaDB on 127.0.0.1:3306: {exc}") from None
        try:
            with conn.cursor() as cur:
                cur.execute(f"CREATE DATABASE `{self.database}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
        finally:
            conn.close()
        if self.queue == "rabbitmq":
            self._created.append("vhost")
            _rabbitmqctl("add_vhost", self.vhost)
            _rabbitmqctl("set_permissions", "-p", self.vhost, RABBIT_USER, ".*", ".*", ".*")
        self._created.append("redis")
        import redis

        try:
            redis.Redis.from_url(REDIS_URL, socket_timeout=5).ping()
        except redis.RedisError as exc:
            raise StackError(f"cannot reach Redis at {REDIS_URL}: {exc}") from None
        if self.content == "mongodb":
            self._created.append("mongo")
            self._start_secantus()

    def _start_secantus(self, timeout: float = 30.0) -> None:
        self.mongo_dir = Path(tempfile.mkdtemp(prefix="logmail-bench-secantus-"))
        config = self.mongo_dir / "secantusd.toml"
        # An explicit empty config: otherwise it would read ./secantusd.toml or ~/.secantus/secantusd.toml.
        config.write_text("# empty: every setting is on the command line\n")
        log_path = self.mongo_dir / "secantus.log"
        with open(log_path, "wb") as out:
            # Its own session: a Ctrl-C in the terminal reaches us, and we stop it after the daemons.
            self.mongo_proc = subprocess.Popen(
                [sys.executable, "-m", "secantus", "--config", str(config), "--host", "127.0.0.1", "--port", "0",
                 "--storage-path", str(self.mongo_dir / "data"), "--log-level", "INFO"],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, cwd=self.mongo_dir,
                start_new_session=True)
        deadline = time.monotonic() + timeout
        while True:
            # It chooses its own port (--port 0) and logs it: no window for another process to take it.
            match = _LISTENING.search(log_path.read_bytes())
            if match:
                self.mongo_port = int(match.group(2))
                break
            if self.mongo_proc.poll() is not None:
                raise StackError(f"SecantusDB exited with {self.mongo_proc.returncode}: "
                                 f"{log_path.read_text(errors='replace')[-2000:]}")
            if time.monotonic() > deadline:
                raise StackError(f"SecantusDB did not start within {timeout:.0f} s")
            time.sleep(0.05)
        import pymongo

        client = pymongo.MongoClient(self.mongo_url, serverSelectionTimeoutMS=int(timeout * 1000))
        try:
            client.admin.command("ping")
        finally:
            client.close()

    def settings(self) -> dict[str, dict[str, object]]:
        out: dict[str, dict[str, object]] = {
            "database": {"url": self.database_url},
            "cache": {"url": REDIS_URL, "prefix": self.redis_prefix},
        }
        if self.queue == "rabbitmq":
            out["queue"] = {"url": self.amqp_url, "prefix": self.queue_prefix}
        if self.content == "mongodb":
            out["content"] = {"url": self.mongo_url}
        return out

    def depth_probe(self, data_dir: Path):
        if self.queue == "rabbitmq":
            return RabbitDepth(self.amqp_url, f"{self.queue_prefix}.{INGEST}")
        return MariaDepth(self.database)

    def engine_processes(self) -> list[tuple[str, psutil.Process]]:
        """The engine server processes: whoever listens on 3306, 5672 and 6379 (shared with anyone else
        using those servers), and our SecantusDB."""
        listeners: dict[int, int] = {}
        try:
            for c in psutil.net_connections(kind="tcp"):
                if c.status == psutil.CONN_LISTEN and c.pid and c.laddr.port in (3306, 5672, 6379):
                    listeners.setdefault(c.laddr.port, c.pid)
        except (psutil.Error, OSError):
            pass
        out = []
        for port, label in ((3306, "MariaDB"), (5672, "RabbitMQ"), (6379, "Redis")):
            if port in listeners:
                try:
                    p = psutil.Process(listeners[port])
                    out.append((f"{label} ({p.name()}, shared server)", p))
                except psutil.Error:
                    pass
        if self.mongo_proc is not None and self.mongo_proc.poll() is None:
            try:
                out.append(("SecantusDB (python -m secantus, ours)", psutil.Process(self.mongo_proc.pid)))
            except psutil.NoSuchProcess:
                pass
        return out

    # -- sizes --------------------------------------------------------------------------------------

    def storage(self, data_dirs: list[Path], stored: int) -> dict:
        out: dict = {"metadata": self._mariadb_size()}
        if self.content == "mongodb":
            out["content"] = self._mongo_size()
        else:
            st = sqlite_files(data_dirs[0])
            out["content"] = {"engine": "SQLite content.db (incl. -wal/-shm)", "bytes": st["content_db_bytes"]}
        return _per_message(out, stored)

    def _mariadb_size(self) -> dict:
        import pymysql

        conn = pymysql.connect(**MARIADB, database=self.database, autocommit=True)
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
                            (self.database,))
                tables = [r[0] for r in cur.fetchall()]
                for t in tables:
                    cur.execute(f"ANALYZE TABLE `{t}`")
                    cur.fetchall()
                cur.execute("SELECT table_name, table_rows, data_length, index_length FROM information_schema.tables "
                            "WHERE table_schema = %s ORDER BY data_length + index_length DESC", (self.database,))
                per_table = {r[0]: {"rows_estimate": r[1], "data_length": r[2], "index_length": r[3]}
                             for r in cur.fetchall()}
                # The .ibd files, FULLTEXT auxiliary tables (FTS_*) included, which information_schema.tables
                # leaves out.
                cur.execute("SELECT name, file_size, allocated_size FROM information_schema.innodb_sys_tablespaces "
                            "WHERE name LIKE %s", (self.database + "/%",))
                spaces = {r[0].split("/", 1)[1]: {"file_size": r[1], "allocated_size": r[2]} for r in cur.fetchall()}
                cur.execute("SELECT count(*) FROM messages")
                messages = cur.fetchone()[0]
                cur.execute("SELECT count(*) FROM jobs")
                jobs = cur.fetchone()[0]
        finally:
            conn.close()
        data = sum(v["data_length"] or 0 for v in per_table.values())
        index = sum(v["index_length"] or 0 for v in per_table.values())
        fts = {k: v for k, v in spaces.items() if k.upper().startswith("FTS_")}
        return {"engine": f"MariaDB database {self.database}",
                "bytes": data + index, "data_length": data, "index_length": index,
                "ibd_file_bytes": sum(v["file_size"] or 0 for v in spaces.values()),
                "ibd_fulltext_aux_bytes": sum(v["file_size"] or 0 for v in fts.values()),
                "ibd_files": len(spaces), "messages_rows": messages, "jobs_rows": jobs, "tables": per_table}

    def _mongo_size(self) -> dict:
        import pymongo

        client = pymongo.MongoClient(self.mongo_url, serverSelectionTimeoutMS=10000)
        try:
            db = client.get_default_database()
            stats = db.command("dbStats")
            blobs = db["blobs"].estimated_document_count()
        finally:
            client.close()
        disk = _dir_bytes(self.mongo_dir / "data") if self.mongo_dir else None
        return {"engine": f"SecantusDB database {self.mongo_db}",
                "bytes": int(stats.get("dataSize", 0)), "dataSize": int(stats.get("dataSize", 0)),
                "storageSize": int(stats.get("storageSize", 0)), "indexSize": int(stats.get("indexSize", 0)),
                "objects": int(stats.get("objects", 0)), "blobs_documents": blobs,
                "server_data_dir_bytes": disk}

    # -- cleanup ------------------------------------------------------------------------------------

    def cleanup(self) -> list[str]:
        """Undo setup(); returns what could not be undone (empty when all went)."""
        problems = []
        for what in reversed(self._created):
            try:
                getattr(self, f"_drop_{what}")()
            except Exception as exc:  # each on its own: one failure must not keep the rest
                problems.append(f"{what}: {type(exc).__name__}: {exc}")
        self._created.clear()
        return problems

    def _drop_database(self) -> None:
        import pymysql

        conn = pymysql.connect(**MARIADB)
        try:
            with conn.cursor() as cur:
                cur.execute(f"DROP DATABASE IF EXISTS `{self.database}`")
        finally:
            conn.close()

    def _drop_vhost(self) -> None:
        out = subprocess.run(["rabbitmqctl", "list_vhosts", "--quiet", "--no-table-headers"], capture_output=True,
                             text=True, timeout=60)
        if self.vhost in out.stdout.split():
            _rabbitmqctl("delete_vhost", self.vhost)

    def _drop_redis(self) -> None:
        import redis

        r = redis.Redis.from_url(REDIS_URL, socket_timeout=10)
        pattern = _redis_glob_escape(self.redis_prefix) + "*"
        batch = []
        for key in r.scan_iter(match=pattern, count=1000):
            batch.append(key)
            if len(batch) >= 1000:
                r.delete(*batch)
                batch.clear()
        if batch:
            r.delete(*batch)
        r.close()

    def _drop_mongo(self) -> None:
        proc, self.mongo_proc = self.mongo_proc, None
        if proc is not None and proc.poll() is None:
            # SIGKILL, as the test suite's peer does: its data goes with the directory, and a clean
            # shutdown costs SecantusDB seconds.
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(10)
        if self.mongo_dir is not None:
            shutil.rmtree(self.mongo_dir, ignore_errors=True)


def _per_message(out: dict, stored: int) -> dict:
    total = sum(v.get("bytes") or 0 for v in out.values())
    out["stored"] = stored
    out["total_bytes"] = total
    for v in (out["metadata"], out["content"]):
        v["bytes_per_100k_messages"] = round(v["bytes"] * 100_000 / stored) if stored and v.get("bytes") is not None else None
    out["total_bytes_per_100k_messages"] = round(total * 100_000 / stored) if stored else None
    return out


def _redis_glob_escape(text: str) -> str:
    return re.sub(r"([*?\[\]\\])", r"\\\1", text)


def _rabbitmqctl(*args: str) -> str:
    ctl = shutil.which("rabbitmqctl")
    if ctl is None:
        raise StackError("rabbitmqctl is not installed")
    proc = subprocess.run([ctl, *args], capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        raise StackError(f"rabbitmqctl {' '.join(args)} failed: {proc.stderr.strip() or proc.stdout.strip()}")
    return proc.stdout


def make_stack(kind: str, *, content: str = "mongodb", queue: str = "rabbitmq", log=print):
    if kind == "embedded":
        return EmbeddedStack(log=log)
    return ProductionStack(content=content, queue=queue, log=log)
