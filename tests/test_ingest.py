"""The ingest consumer: idempotent, never crashes on bad input, isolates poison jobs."""

from __future__ import annotations

import os
import smtplib
import stat
import time

import pytest

from conftest import claim_all, wait_for_messages
from logmail.daemon.ingest_consumer import IngestConsumer
from logmail.services.accept import INGEST_QUEUE, Envelope
from logmail.services.container import build_services


@pytest.fixture
def services(settings):
    s = build_services(settings)
    yield s
    s.close()


def listed(services):
    from logmail.store import messages as repo

    with services.db.read() as session:
        page = repo.list_messages(session, services.boot.organization_id, repo.MessageFilter(), limit=1000)
    return page.rows


def test_first_start_writes_owner_token_0600_and_stores_only_its_hash(services, settings):
    token_file = settings.data_path / "owner.token"
    token = token_file.read_text().strip()
    assert stat.S_IMODE(os.stat(token_file).st_mode) == 0o600
    assert token.startswith("lm_") and len(token) > 40
    from sqlalchemy import select

    from logmail.services.tokens import hash_token
    from logmail.store.models import ApiToken

    with services.db.read() as session:
        rows = session.execute(select(ApiToken)).scalars().all()
    assert [r.token_hash for r in rows] == [hash_token(token)]
    assert all(token not in str(vars(r)) for r in rows)  # only the hash (and a short prefix) is kept
    if services.db.dialect == "sqlite":
        for suffix in ("", "-wal"):
            path = settings.data_path / f"logmail.db{suffix}"
            if path.exists():
                assert token.encode() not in path.read_bytes()
    assert services.tokens.authenticate(token) is not None
    assert services.tokens.authenticate(token + "x") is None


def test_redelivered_job_is_stored_once(services):
    services.acceptor.accept_many([(b"Subject: once\r\n\r\nbody\r\n", Envelope("a@x.org", ["b@x.org"]))])
    (job,) = claim_all(services, 1)
    assert services.ingest.store([job]) == 1
    # The consumer died before acking: the same job comes back, perhaps twice in one batch.
    assert services.ingest.store([job, job]) == 0
    assert [r.subject for r in listed(services)] == ["once"]


def test_a_poison_job_is_isolated_and_dead_lettered(services, monkeypatch):
    services.acceptor.accept_many([(f"Subject: m{i}\r\n\r\nx\r\n".encode(), Envelope("a@x.org", ["b@x.org"]))
                                   for i in range(3)])
    jobs = claim_all(services, 3)
    # One job points at content that has vanished: a permanent failure for that job alone.
    services.content.delete_many([jobs[1].payload["rawKey"]])
    services.queue.ack([])
    consumer = IngestConsumer(services.queue, services.ingest, batch_size=10)
    consumer.process(jobs)
    assert sorted(r.subject for r in listed(services)) == ["m0", "m2"]
    deadline = time.monotonic() + 30
    while not services.queue.dead_letters(INGEST_QUEUE):  # retried with (short) backoff, then dead
        assert time.monotonic() < deadline, "the poison job was never dead-lettered"
        consumer.run_once()
        time.sleep(0.05)
    dead = services.queue.dead_letters(INGEST_QUEUE)
    assert len(dead) == 1 and "not found" in dead[0].error


MALFORMED = {
    "truncated multipart": b"Content-Type: multipart/mixed; boundary=XX\r\nSubject: trunc\r\n\r\n--XX\r\n"
                           b"Content-Type: text/plain\r\n\r\nstart of the text",
    "bad base64": b"Subject: b64\r\nContent-Transfer-Encoding: base64\r\n\r\n!!!not base64 at all===\r\n",
    "no boundary": b"Subject: nob\r\nContent-Type: multipart/alternative\r\n\r\nsome text\r\n",
    "8-bit headers": b"Subject: caf\xe9 cr\xe8me\r\nFrom: J\xf6rg <j@example.com>\r\n\r\nbody\r\n",
    "empty": b"",
    "garbage": bytes(range(256)) * 20,
    "deep nesting": b"Subject: deep\r\n" + b"".join(
        f"Content-Type: multipart/mixed; boundary=b{i}\r\n\r\n--b{i}\r\n".encode() for i in range(1000)
    ) + b"Content-Type: text/plain\r\n\r\nbottom\r\n",
}


def test_malformed_mail_over_smtp_is_stored_raw_with_its_problems(daemon, api):
    with smtplib.SMTP("127.0.0.1", daemon.smtp_port) as client:
        client.ehlo()
        for raw in MALFORMED.values():
            code, _ = client.docmd("MAIL FROM:<a@example.com>")
            assert code == 250
            assert client.docmd("RCPT TO:<b@example.com>")[0] == 250
            assert client.data(raw)[0] == 250
    messages = wait_for_messages(api, len(MALFORMED))
    by_size = {}
    for m in messages:
        raw = api.get(f"/messages/{m['id']}/raw").content
        detail = api.get(f"/messages/{m['id']}")
        assert detail.status_code == 200
        by_size[raw] = detail.json()
    for name, raw in MALFORMED.items():
        sent = raw if raw.endswith(b"\r\n") else raw + b"\r\n"
        assert sent in by_size, f"{name}: raw original not stored byte for byte"
    flagged = [name for name, raw in MALFORMED.items()
               if by_size[raw if raw.endswith(b"\r\n") else raw + b"\r\n"]["parseErrors"]]
    for name in ("truncated multipart", "bad base64", "no boundary", "8-bit headers", "deep nesting"):
        assert name in flagged, f"{name}: no parse error recorded"
    assert daemon.services.queue.dead_letters(INGEST_QUEUE) == []


CHARSETS = [
    ("iso-8859-1", "Déjà vu à Paris"),
    ("windows-1252", "“Smart quotes” – and €uros"),
    ("shift_jis", "日本語のメール"),
    ("gb2312", "中文邮件测试"),
    ("koi8-r", "Привет из Москвы"),
]


@pytest.mark.parametrize("charset, text", CHARSETS)
def test_legacy_charsets_are_decoded_and_searchable(daemon, api, charset, text):
    from email.header import Header

    subject = Header(text, charset).encode()
    raw = (f"Subject: {subject}\r\nContent-Type: text/plain; charset={charset}\r\n"
           f"Content-Transfer-Encoding: 8bit\r\n\r\n").encode() + text.encode(charset) + b"\r\n"
    with smtplib.SMTP("127.0.0.1", daemon.smtp_port) as client:
        client.sendmail("a@example.com", ["b@example.com"], raw)
    (summary,) = wait_for_messages(api, 1)
    assert summary["subject"] == text
    assert api.get(f"/messages/{summary['id']}").json()["text"].strip() == text
    if charset in ("iso-8859-1", "windows-1252", "koi8-r"):  # word-based tokenizer: whole words match
        word = text.split()[0].strip("“”")
        assert api.get("/messages", params={"q": word}).json()["pagination"]["total"] == 1


def test_a_content_store_outage_never_dead_letters_mail(services, monkeypatch):
    from logmail.errors import StorageUnavailableError

    services.acceptor.accept_many([(b"Subject: patient\r\n\r\nx\r\n", Envelope("a@x.org", ["b@x.org"]))])
    consumer = IngestConsumer(services.queue, services.ingest, batch_size=10, max_backoff=0.01)
    real_get = services.content.get
    attempts = []

    def down(key):
        attempts.append(key)
        raise StorageUnavailableError("content store unreachable")

    monkeypatch.setattr(services.content, "get", down)
    # Far more rounds than max_attempts (5, with 0.05 s backoff) would allow for a failing job.
    deadline = time.monotonic() + 30
    while len(attempts) < services.settings.queue.max_attempts * 3:
        assert time.monotonic() < deadline
        consumer.run_once()
        time.sleep(0.02)
    assert services.queue.dead_letters(INGEST_QUEUE) == []
    monkeypatch.setattr(services.content, "get", real_get)
    deadline = time.monotonic() + 30
    while not listed(services):
        assert time.monotonic() < deadline, "the job did not come back after the outage"
        consumer.run_once()
        time.sleep(0.05)
    assert [r.subject for r in listed(services)] == ["patient"]
    assert services.queue.dead_letters(INGEST_QUEUE) == []


def test_a_stale_owner_token_file_is_replaced(settings):
    from logmail.services.container import build_services

    first = build_services(settings)
    first.close()
    token_file = settings.data_path / "owner.token"
    token_file.write_text("lm_a-token-from-another-installation\n")  # e.g. a database restored from backup
    second = build_services(settings)
    try:
        token = token_file.read_text().strip()
        assert token != "lm_a-token-from-another-installation"
        assert second.tokens.authenticate(token) is not None
        assert second.boot.token_created
    finally:
        second.close()


def test_a_new_data_directory_is_private(settings):
    s = build_services(settings)
    s.close()
    assert stat.S_IMODE(os.stat(settings.data_path).st_mode) == 0o700
