"""Shared fixtures: a real daemon on loopback ports with its own data directory.

``LOGMAIL_TEST_STACK=production`` runs the same tests on the production engines of this machine
(MariaDB on 127.0.0.1:3306, ...): every test gets its own database, dropped at the end.
"""

from __future__ import annotations

import json
import os
import queue
import threading
import time
import uuid
from pathlib import Path

import httpx
import pytest

from logmail.config import Settings, load_settings


STACK = os.environ.get("LOGMAIL_TEST_STACK", "embedded")
MARIADB_URL = os.environ.get("LOGMAIL_TEST_MARIADB", "mysql+pymysql://root@127.0.0.1:3306")
_created_databases: list[str] = []


def mariadb_database() -> str:
    """A fresh MariaDB database for one test; dropped when the session ends."""
    import pymysql

    name = f"logmail_t_{uuid.uuid4().hex[:12]}"
    conn = pymysql.connect(host="127.0.0.1", port=3306, user="root", password="")
    try:
        with conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE {name} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
    finally:
        conn.close()
    _created_databases.append(name)
    return f"{MARIADB_URL}/{name}?charset=utf8mb4"


_template: dict = {}
_ready: "queue.Queue[str]" = queue.Queue(maxsize=2)
_filling = threading.Event()
_stop_filling = threading.Event()


def mariadb_migrated_database() -> str:
    """A fresh MariaDB database already at the newest schema revision.

    Running the migrations costs about a second on MariaDB, and nearly every production-stack test
    starts a daemon on a new database; so the migrations run once per session into a template and
    each test gets a copy of it (``SHOW CREATE TABLE`` keeps keys, foreign keys and FULLTEXT
    indexes), made ahead by a background thread while the previous test runs. The migrations
    themselves are tested on empty databases (tests/test_migrations.py, tests/test_many_daemons.py,
    ``logmail admin db upgrade``), and the daemon still checks the revision on every start.
    """
    if not _template:
        _make_template()
    if not _filling.is_set():
        _filling.set()
        threading.Thread(target=_fill, name="mariadb-copies", daemon=True).start()
    return _ready.get(timeout=120)


def _make_template() -> None:
    import pymysql

    from logmail.store.database import Database
    from logmail.store.migrate import upgrade

    url = mariadb_database()
    db = Database(url)
    try:
        upgrade(db)
    finally:
        db.engine.dispose()
    name = url.rsplit("/", 1)[1].split("?")[0]
    conn = pymysql.connect(host="127.0.0.1", port=3306, user="root", password="", database=name)
    try:
        with conn.cursor() as cur:
            cur.execute("SHOW FULL TABLES WHERE Table_type = 'BASE TABLE'")
            tables = [row[0] for row in cur.fetchall()]
            creates, seeded = [], []
            for table in tables:
                cur.execute(f"SHOW CREATE TABLE `{table}`")
                creates.append(cur.fetchone()[1])
                cur.execute(f"SELECT 1 FROM `{table}` LIMIT 1")
                if cur.fetchone():
                    seeded.append(table)
    finally:
        conn.close()
    _template.update(name=name, creates=creates, seeded=seeded)


def _fill() -> None:
    while not _stop_filling.is_set():
        url = _copy_template()
        while not _stop_filling.is_set():
            try:
                _ready.put(url, timeout=0.2)
                break
            except queue.Full:
                continue


def _copy_template() -> str:
    import pymysql

    url = mariadb_database()
    name = url.rsplit("/", 1)[1].split("?")[0]
    conn = pymysql.connect(host="127.0.0.1", port=3306, user="root", password="", database=name)
    try:
        with conn.cursor() as cur:
            cur.execute("SET FOREIGN_KEY_CHECKS = 0")  # tables refer to each other in any order
            for ddl in _template["creates"]:
                cur.execute(ddl)
            for table in _template["seeded"]:
                cur.execute(f"INSERT INTO `{table}` SELECT * FROM `{_template['name']}`.`{table}`")
        conn.commit()
    finally:
        conn.close()
    return url


_mongo = {}


def mongo_url() -> str:
    """A fresh database on the session's MongoDB wire-protocol server (started on first use)."""
    if "peer" not in _mongo:
        import tempfile

        from mongo_peer import start_mongo_peer

        _mongo["peer"] = start_mongo_peer(Path(tempfile.mkdtemp(prefix="logmail-mongo-")))
    return _mongo["peer"].url_for(f"lm_{uuid.uuid4().hex[:12]}")


_rabbit = {}


def amqp_url() -> str:
    """The session's private vhost on the machine's RabbitMQ (created on first use)."""
    if "vhost" not in _rabbit:
        from rabbit_peer import create_vhost

        _rabbit["vhost"], _rabbit["url"] = create_vhost("logmail-test")
    return _rabbit["url"]


_queue_prefixes: list[str] = []


def _new_queue_prefix() -> str:
    prefix = f"lm-{uuid.uuid4().hex[:12]}"
    _queue_prefixes.append(prefix)
    return prefix


@pytest.fixture(autouse=True)
def _delete_test_queues():
    """Each test's RabbitMQ queues go when it ends: hundreds of idle quorum queues slow a broker down."""
    yield
    if not _queue_prefixes:
        return
    import pika

    from logmail.queue.rabbitmq import RabbitQueue

    prefixes, _queue_prefixes[:] = list(_queue_prefixes), []
    conn = pika.BlockingConnection(pika.URLParameters(amqp_url()))
    try:
        channel = conn.channel()
        for prefix in prefixes:
            names = RabbitQueue(amqp_url(), prefix=prefix, max_attempts=5, retry_base_delay=0.05).queue_names("ingest")
            for name in names:
                channel.queue_delete(name)
    finally:
        conn.close()


def pytest_sessionfinish(session, exitstatus):
    _stop_filling.set()
    for thread in threading.enumerate():
        if thread.name == "mariadb-copies":
            thread.join(timeout=30)  # its last copy is in _created_databases, dropped below
    if "vhost" in _rabbit:
        from rabbit_peer import delete_vhost

        delete_vhost(_rabbit.pop("vhost"))
    if "peer" in _mongo:
        _mongo.pop("peer").close(remove=True)
    if not _created_databases:
        return
    import pymysql

    conn = pymysql.connect(host="127.0.0.1", port=3306, user="root", password="")
    try:
        with conn.cursor() as cur:
            for name in _created_databases:
                cur.execute(f"DROP DATABASE IF EXISTS {name}")
    finally:
        conn.close()


def production_overrides() -> dict:
    return {
        "database": {"url": mariadb_migrated_database()},
        "content": {"url": mongo_url()},
        "queue": {"url": amqp_url(), "prefix": _new_queue_prefix()},
        "cache": {"url": "redis://127.0.0.1:6379/0", "prefix": f"logmail-test:{uuid.uuid4().hex[:12]}:"},
    }


def stack_overrides() -> dict:
    """The engines of the stack under test; share one result between daemons of one installation."""
    return production_overrides() if STACK == "production" else {}


# Tests poll the API far faster than people do (50 requests a minute by default); tests of the
# limiter itself set their own limit.
TEST_RATE_LIMIT = 1_000_000


def write_config(path: Path, data: dict, *, stack: dict | None = None) -> Path:
    """Write a logmail.toml for a daemon started as a process, on the stack under test. Values the
    test gives win over the stack's."""
    merged: dict = {"auth": {"rate_limit_per_minute": TEST_RATE_LIMIT},
                    "accounts": {"rate_limit_per_minute": TEST_RATE_LIMIT}}
    for section, values in (stack_overrides() if stack is None else stack).items():
        merged[section] = dict(values)
    for key, value in data.items():
        if isinstance(value, dict):
            merged.setdefault(key, {}).update(value)
        else:
            merged[key] = value
    data = merged
    lines = [f"{k} = {json.dumps(v)}" for k, v in data.items() if not isinstance(v, dict)]
    for section, values in data.items():
        if isinstance(values, dict):
            lines.append(f"[{section}]")
            lines += [f"{k} = {json.dumps(v)}" for k, v in values.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def make_settings(data_dir: Path, **overrides) -> Settings:
    base = {
        "data_dir": str(data_dir),
        "smtp": {"port": 0},
        "api": {"port": 0},
        "ingest": {"workers": 0},
        "queue": {"poll_interval": 0.02, "retry_base_delay": 0.05},
        "auth": {"rate_limit_per_minute": TEST_RATE_LIMIT},
        "accounts": {"rate_limit_per_minute": TEST_RATE_LIMIT},
    }
    if STACK == "production":
        for key, value in production_overrides().items():
            base.setdefault(key, {}).update(value)
    for key, value in overrides.items():
        if isinstance(value, dict):
            base.setdefault(key, {}).update(value)
        else:
            base[key] = value
    return load_settings(None, environ={}, overrides=base)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path / "data")


@pytest.fixture
def daemon(settings):
    from logmail.daemon.runner import Daemon

    d = Daemon(settings).start_in_thread()
    yield d
    d.stop()


@pytest.fixture
def owner_token(daemon) -> str:
    return (Path(daemon.settings.data_dir) / "owner.token").read_text().strip()


@pytest.fixture
def api(daemon, owner_token):
    with httpx.Client(base_url=f"http://127.0.0.1:{daemon.api_port}",
                      headers={"Authorization": f"Bearer {owner_token}"}, timeout=30) as client:
        yield client


def wait_for_messages(api: httpx.Client, count: int, timeout: float = 20, **params) -> list[dict]:
    """Poll the API until ``count`` messages are listed (ingest is asynchronous by design)."""
    deadline = time.monotonic() + timeout
    while True:
        resp = api.get("/messages", params={"limit": 1000, **params})
        assert resp.status_code == 200, resp.text
        messages = resp.json()["messages"]
        if len(messages) >= count or time.monotonic() > deadline:
            assert len(messages) >= count, f"only {len(messages)} of {count} messages arrived"
            return messages
        time.sleep(0.05)


@pytest.fixture(autouse=True)
def _logging_reaches_caplog():
    """Commands configure logmail's logging for a terminal; tests want records in caplog."""
    import logging

    logger = logging.getLogger("logmail")
    yield
    logger.handlers[:] = []
    logger.propagate = True
    logger.setLevel(logging.NOTSET)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Under CI (LOGMAIL_FORBID_SKIPS=1) a skipped test is a failure: a missing service must never
    pass for a green run."""
    outcome = yield
    report = outcome.get_result()
    if os.environ.get("LOGMAIL_FORBID_SKIPS") == "1" and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.longrepr = f"skipped under CI, which forbids skips: {reason}"


def claim_all(services, count: int, timeout: float = 20) -> list:
    """Claim ``count`` ingest jobs; a broker may hand them out over several claims."""
    from logmail.services.accept import INGEST_QUEUE

    jobs: list = []
    deadline = time.monotonic() + timeout
    while len(jobs) < count:
        assert time.monotonic() < deadline, f"only {len(jobs)} of {count} jobs arrived"
        jobs += services.queue.claim(INGEST_QUEUE, count - len(jobs))
        if len(jobs) < count:
            time.sleep(0.02)
    return jobs


def smtp_send_code(port: int, subject: str) -> int:
    """Send one small message; the final reply code (a refusal at any stage is its code, not acknowledged)."""
    import smtplib

    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
            client.ehlo()
            client.mail("a@example.com")
            client.rcpt("b@example.com")
            return client.data(f"Subject: {subject}\r\n\r\nbody\r\n".encode())[0]
    except smtplib.SMTPException as exc:
        return getattr(exc, "smtp_code", 0)
