from __future__ import annotations

import smtplib
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import Annotated, Optional

import typer

from logmail.cli.common import ConfigOption, fail, load, stderr


def send(
    config: ConfigOption = None,
    to: Annotated[str, typer.Option("--to", help="Recipient address.")] = "someone@example.com",
    sender: Annotated[str, typer.Option("--from", help="Sender address.")] = "logmail@localhost",
    subject: Annotated[str, typer.Option(help="Subject line.")] = "Test message from logmail send",
    body: Annotated[str, typer.Option(help="Plain-text body.")] = "Hello from logmail.",
    html: Annotated[Optional[str], typer.Option(help="Optional HTML alternative.")] = None,
    attach: Annotated[Optional[list[Path]], typer.Option(help="File to attach; repeatable.")] = None,
    count: Annotated[int, typer.Option(min=1, help="How many copies to send.")] = 1,
    host: Annotated[Optional[str], typer.Option(help="SMTP host (default: smtp.host).")] = None,
    port: Annotated[Optional[int], typer.Option(help="SMTP port (default: smtp.port).")] = None,
) -> None:
    """Send a test message to the logmail SMTP listener.

    Example: logmail send --to dev@example.com --subject "Hello" --attach report.pdf
    """
    import mimetypes

    settings = load(config)
    host = host or settings.smtp.host
    port = port or settings.smtp.port
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = formatdate(localtime=True)
    msg.set_content(body)
    if html:
        msg.add_alternative(html, subtype="html")
    for path in attach or []:
        try:
            data = path.read_bytes()
        except OSError as exc:
            fail(f"cannot read {path}: {exc.strerror}")
        ctype = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        maintype, subtype = ctype.split("/", 1)
        msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=path.name)
    try:
        with smtplib.SMTP(host, port, timeout=30) as client:
            if settings.smtp.auth_username and settings.smtp.auth_password:
                client.login(settings.smtp.auth_username, settings.smtp.auth_password)
            for _ in range(count):
                del msg["Message-ID"]
                msg["Message-ID"] = make_msgid(domain="logmail.local")
                client.send_message(msg)
    except (OSError, smtplib.SMTPException) as exc:
        fail(f"could not send to {host}:{port}: {exc}")
    stderr(f"logmail: sent {count} message(s) to {to} via {host}:{port}")
