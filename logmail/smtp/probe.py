"""Is an SMTP server there? Connect, read the greeting, EHLO, QUIT: the health check of outbound servers."""

from __future__ import annotations

import smtplib
import ssl


def smtp_greets(host: str, port: int, *, timeout: float = 5.0) -> None:
    """Raise if ``host:port`` does not greet with 220 and answer EHLO; implicit TLS on port 465."""
    if port == 465:
        client: smtplib.SMTP = smtplib.SMTP_SSL(host, port, timeout=timeout, context=ssl.create_default_context())
    else:
        client = smtplib.SMTP(host, port, timeout=timeout)
    try:
        code, _ = client.ehlo()
        if code != 250:
            raise smtplib.SMTPResponseException(code, b"EHLO refused")
    finally:
        try:
            client.quit()
        except (smtplib.SMTPException, OSError):
            client.close()
