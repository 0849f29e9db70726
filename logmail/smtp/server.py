"""Starting the inbound SMTP listener on the daemon's event loop."""

from __future__ import annotations

import asyncio
import hmac
import re
import ssl

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

from logmail.config import SmtpSettings
from logmail.errors import ConfigError


# RFC 5321 caps lines at 1,000 octets, but applications under test often send longer ones (HTML
# from templating engines). A capture tool that refused them would hide the very mail a developer
# wants to see, so lines up to 1 MiB are accepted.
MAX_LINE_LENGTH = 1024 * 1024


# The everyday <local@domain> path, which needs no RFC 5322 machinery to take apart.
_SIMPLE_PATH = re.compile(
    r"<([A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?)>\s*(.*)\Z",
    re.S,
)


class _FastPaths:
    """aiosmtpd parses every MAIL/RCPT path with the email package's header parser and defines a
    class on each call (about 50 µs a command, a tenth of the listener's time under load); simple
    paths take a regular expression instead, and everything else still goes the thorough way."""

    line_length_limit = MAX_LINE_LENGTH

    def _getaddr(self, arg):
        m = _SIMPLE_PATH.match(arg.lstrip()) if arg else None
        if m is not None and not (self.local_part_limit and len(m.group(1).rpartition("@")[0]) > self.local_part_limit):
            return m.group(1), m.group(2)
        return super()._getaddr(arg)


class CaptureSMTP(_FastPaths, SMTP):
    pass


class _StaticAuthenticator:
    """Checks AUTH PLAIN/LOGIN against the one configured username and password."""

    def __init__(self, username: str, password: str) -> None:
        self.username = username.encode()
        self.password = password.encode()

    def __call__(self, server, session, envelope, mechanism, auth_data) -> AuthResult:
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        ok = hmac.compare_digest(auth_data.login, self.username) & hmac.compare_digest(auth_data.password, self.password)
        return AuthResult(success=bool(ok), handled=False)


def tls_context(cert: str, key: str) -> ssl.SSLContext:
    try:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"cannot load the SMTP TLS certificate: {exc}") from None
    return ctx


def protocol_factory(settings: SmtpSettings, handler, *, lmtp: bool = False):
    ctx = tls_context(settings.tls_cert, settings.tls_key) if settings.tls_cert and settings.tls_key else None
    auth = None
    if settings.auth_username and settings.auth_password:
        auth = _StaticAuthenticator(settings.auth_username, settings.auth_password)
    if settings.require_tls and ctx is None:
        raise ConfigError("smtp.require_tls needs smtp.tls_cert and smtp.tls_key")
    kwargs = dict(
        data_size_limit=settings.max_message_size,
        enable_SMTPUTF8=True,
        decode_data=False,
        hostname=settings.hostname,
        ident="logmail ESMTP",
        tls_context=ctx,
        require_starttls=settings.require_tls,
        timeout=settings.timeout,
        authenticator=auth,
        auth_required=auth is not None,
        # Without TLS configured, AUTH over plain text on a local catch-all is what users expect.
        auth_require_tls=ctx is not None,
    )
    if lmtp:
        from aiosmtpd.lmtp import LMTP

        class CaptureLMTP(_FastPaths, LMTP):
            pass

        return lambda: CaptureLMTP(handler, **kwargs)
    return lambda: CaptureSMTP(handler, **kwargs)


async def start_smtp(settings: SmtpSettings, handler, *, host: str | None = None, port: int | None = None) -> asyncio.Server:
    loop = asyncio.get_running_loop()
    factory = protocol_factory(settings, handler)
    try:
        return await loop.create_server(factory, host or settings.host, settings.port if port is None else port,
                                        reuse_address=True)
    except OSError as exc:
        raise ConfigError(f"cannot listen for SMTP on {settings.host}:{settings.port}: {exc.strerror}") from None
