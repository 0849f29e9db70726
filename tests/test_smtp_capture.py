"""Mail in over real SMTP sockets, out over the real API."""

from __future__ import annotations

import asyncio
import email.policy
import hashlib
import smtplib
import ssl
from email.message import EmailMessage

import aiosmtplib
import pytest

from conftest import make_settings, wait_for_messages
from logmail.smtp import replies


def multipart_message(subject="Report", attachment=b"%PDF-1.4 fake pdf bytes\x00\x01\x02" * 100) -> bytes:
    msg = EmailMessage()
    msg["From"] = "Alice Example <alice@example.com>"
    msg["To"] = "Bob <bob@example.net>, carol@example.org"
    msg["Cc"] = "dave@example.com"
    msg["Subject"] = subject
    msg["Message-ID"] = "<report-1@example.com>"
    msg["Date"] = "Tue, 03 Nov 2026 10:00:00 +0000"
    msg.set_content("Hello Bob,\nthe report is attached.\n")
    msg.add_alternative("<p>Hello <b>Bob</b></p><script>alert(1)</script><img src=x onerror=alert(2)>",
                        subtype="html")
    msg.add_attachment(attachment, maintype="application", subtype="pdf", filename="rapport été.pdf")
    return msg.as_bytes(policy=email.policy.SMTP)  # CRLF line endings, as on the wire


def test_smtplib_message_is_listed_read_and_downloaded_byte_for_byte(daemon, api):
    raw = multipart_message()
    with smtplib.SMTP("127.0.0.1", daemon.smtp_port) as client:
        code, _ = client.ehlo()
        assert code == 250
        refused = client.sendmail("sender@example.com", ["bob@example.net", "carol@example.org"], raw)
        assert refused == {}
    (summary,) = wait_for_messages(api, 1)
    assert summary["subject"] == "Report"
    assert summary["from"] == {"name": "Alice Example", "address": "alice@example.com"}
    assert summary["envelope"] == {"mailFrom": "sender@example.com", "rcptTo": ["bob@example.net", "carol@example.org"]}

    detail = api.get(f"/messages/{summary['id']}").json()
    assert detail["messageId"] == "report-1@example.com"
    assert [a["address"] for a in detail["to"]] == ["bob@example.net", "carol@example.org"]
    assert detail["cc"] == [{"name": "", "address": "dave@example.com"}]
    assert detail["date"] == 1793700000000
    assert detail["text"].startswith("Hello Bob,")
    assert "<b>Bob</b>" in detail["html"]
    assert "script" not in detail["html"] and "onerror" not in detail["html"]
    assert any(h["name"] == "Subject" and h["value"] == "Report" for h in detail["headers"])
    assert detail["parseErrors"] == []
    (att,) = detail["attachments"]
    assert att["filename"] == "rapport été.pdf" and att["contentType"] == "application/pdf"

    raw_resp = api.get(f"/messages/{summary['id']}/raw")
    assert raw_resp.status_code == 200
    assert raw_resp.headers["content-type"].startswith("message/rfc822")
    assert raw_resp.content == raw
    assert raw_resp.headers["x-content-type-options"] == "nosniff"
    assert "sandbox" in raw_resp.headers["content-security-policy"]

    file_resp = api.get(f"/messages/{summary['id']}/attachments/{att['id']}")
    assert file_resp.status_code == 200
    assert file_resp.headers["content-type"] == "application/pdf"
    assert file_resp.headers["content-disposition"].startswith("attachment;")
    assert "filename*=UTF-8''rapport%20%C3%A9t%C3%A9.pdf" in file_resp.headers["content-disposition"]
    assert hashlib.sha256(file_resp.content).hexdigest() == att["sha256"]
    assert file_resp.content == b"%PDF-1.4 fake pdf bytes\x00\x01\x02" * 100


def test_raw_round_trip_keeps_8bit_and_odd_bytes(daemon, api):
    raw = (b"From: x@example.com\r\nTo: y@example.com\r\nSubject: caf\xc3\xa9 \xff\r\n"
           b"\r\n.leading dot line\r\n\xe9t\xe9 in latin-1\r\nlast line without newline")
    with smtplib.SMTP("127.0.0.1", daemon.smtp_port) as client:
        client.sendmail("x@example.com", ["y@example.com"], raw)
    (summary,) = wait_for_messages(api, 1)
    got = api.get(f"/messages/{summary['id']}/raw").content
    # smtplib terminates the data with CRLF; everything else must be untouched (dot-stuffing undone).
    assert got == raw + b"\r\n"


def test_aiosmtplib_with_pipelining_and_smtputf8(daemon, api):
    async def send():
        client = aiosmtplib.SMTP(hostname="127.0.0.1", port=daemon.smtp_port)
        await client.connect()
        assert client.supports_extension("pipelining")
        assert client.supports_extension("8bitmime")
        assert client.supports_extension("smtputf8")
        assert client.supports_extension("size")
        msg = EmailMessage()
        msg["From"] = "jöran@exämple.com"
        msg["To"] = "ünïcode@exämple.com"
        msg["Subject"] = "Grüße aus Köln"
        msg.set_content("Ünïcödé body")
        await client.send_message(msg)
        await client.quit()

    asyncio.run(send())
    (summary,) = wait_for_messages(api, 1)
    assert summary["subject"] == "Grüße aus Köln"
    assert summary["envelope"]["rcptTo"] == ["ünïcode@exämple.com"]


def test_oversize_message_is_refused_with_552(tmp_path):
    from logmail.daemon.runner import Daemon

    d = Daemon(make_settings(tmp_path, smtp={"max_message_size": 10_000})).start_in_thread()
    try:
        with smtplib.SMTP("127.0.0.1", d.smtp_port) as client:
            client.ehlo()
            assert client.esmtp_features["size"] == "10000"
            with pytest.raises(smtplib.SMTPSenderRefused) as info:  # SIZE= announced up front
                client.sendmail("a@example.com", ["b@example.com"], b"Subject: big\r\n\r\n" + b"x" * 20_000)
            assert info.value.smtp_code == 552
            # A client that does not announce the size is refused after DATA.
            client.rset()
            client.mail("a@example.com")
            client.rcpt("b@example.com")
            code, _ = client.data(b"Subject: big\r\n\r\n" + b"y" * 20_000)
            assert code == 552
    finally:
        d.stop()


def test_too_many_recipients_get_452(tmp_path):
    from logmail.daemon.runner import Daemon

    d = Daemon(make_settings(tmp_path, smtp={"max_recipients": 3})).start_in_thread()
    try:
        with smtplib.SMTP("127.0.0.1", d.smtp_port) as client:
            client.ehlo()
            client.mail("a@example.com")
            for i in range(3):
                assert client.rcpt(f"r{i}@example.com")[0] == 250
            code, text = client.rcpt("r4@example.com")
            assert f"{code} {text.decode()}" == replies.TOO_MANY_RECIPIENTS
            # The first three still get the message.
            assert client.data(b"Subject: three\r\n\r\nhi\r\n")[0] == 250
    finally:
        d.stop()


def test_syntax_errors_get_501(daemon):
    with smtplib.SMTP("127.0.0.1", daemon.smtp_port) as client:
        client.ehlo()
        assert client.docmd("MAIL", "FROM:garbage<<")[0] == 501
        assert client.docmd("MAIL FROM:<a@example.com>")[0] == 250
        assert client.docmd("RCPT", "TO:")[0] == 501
        assert client.docmd("RCPT TO:<b@example.com> BOGUS=1")[0] == 555


def test_long_lines_are_accepted(daemon, api):
    html_line = b"<p>" + b"x" * 5000 + b"</p>"
    with smtplib.SMTP("127.0.0.1", daemon.smtp_port) as client:
        client.sendmail("a@example.com", ["b@example.com"],
                        b"Subject: long\r\nContent-Type: text/html\r\n\r\n" + html_line + b"\r\n")
    (summary,) = wait_for_messages(api, 1)
    assert html_line in api.get(f"/messages/{summary['id']}/raw").content


def test_storage_failure_answers_451_and_accepts_again_after(daemon, api, monkeypatch):
    from logmail.errors import StorageUnavailableError

    content = daemon.services.content
    original = content.put_many

    def broken(items):
        raise StorageUnavailableError("disk on fire")

    monkeypatch.setattr(content, "put_many", broken)
    with smtplib.SMTP("127.0.0.1", daemon.smtp_port) as client:
        client.ehlo()
        client.mail("a@example.com")
        client.rcpt("b@example.com")
        code, text = client.data(b"Subject: lost?\r\n\r\nno\r\n")
        assert (code, text.decode()) == (451, replies.TEMPORARY_FAILURE[4:])
        monkeypatch.setattr(content, "put_many", original)
        client.mail("a@example.com")
        client.rcpt("b@example.com")
        assert client.data(b"Subject: kept\r\n\r\nyes\r\n")[0] == 250
    (summary,) = wait_for_messages(api, 1)
    assert summary["subject"] == "kept"


def test_starttls_and_auth_when_configured(tmp_path):
    trustme = pytest.importorskip("trustme")
    from logmail.daemon.runner import Daemon

    ca = trustme.CA()
    cert = ca.issue_cert("localhost", "127.0.0.1")
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(str(cert_file))
    cert.private_key_pem.write_to_path(str(key_file))
    d = Daemon(make_settings(tmp_path / "data", smtp={
        "tls_cert": str(cert_file), "tls_key": str(key_file), "auth_username": "dev", "auth_password": "s3cret",
    })).start_in_thread()
    try:
        ctx = ssl.create_default_context()
        ca.configure_trust(ctx)
        with smtplib.SMTP("127.0.0.1", d.smtp_port) as client:
            client.ehlo()
            assert client.has_extn("starttls")
            # Without AUTH, mail is refused.
            assert client.docmd("MAIL FROM:<a@example.com>")[0] == 530
            client.starttls(context=ctx)
            client.ehlo()
            with pytest.raises(smtplib.SMTPAuthenticationError):
                client.login("dev", "wrong")
            client.login("dev", "s3cret")
            assert client.sendmail("a@example.com", ["b@example.com"], b"Subject: tls\r\n\r\nhi\r\n") == {}
    finally:
        d.stop()
