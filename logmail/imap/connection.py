"""Opening and closing sessions with IMAP and POP3 servers, and turning their failures into
:mod:`logmail.imap.errors` with messages fit to show the user.

TLS always verifies the server's certificate and host name against the system's trust store
(``ssl.create_default_context()``; OpenSSL's ``SSL_CERT_FILE``/``SSL_CERT_DIR`` point it at
another bundle). ``encryption`` is ``tls`` (implicit TLS, ports 993/995), ``starttls`` (upgrade
a plain connection before logging in; the session fails if the server cannot) or ``none``.

Every socket has a timeout for connecting and for each reply: imapclient and poplib have none by
default, and a server that stops answering would otherwise hold a sync thread for ever.
"""

from __future__ import annotations

import imaplib
import logging
import poplib
import re
import socket
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from imapclient import IMAPClient
from imapclient import exceptions as imap_errors
from imapclient.imap4 import IMAP4WithTimeout
from imapclient.tls import IMAP4_TLS

from logmail.imap.errors import MailboxAuthError, MailboxError, MailboxUnreachableError, scrub

log = logging.getLogger("logmail.imap")

ENCRYPTIONS = ("none", "tls", "starttls")

# RFC 5530 codes on a refused IMAP LOGIN that mean "not now", not "wrong password".
_IMAP_TEMPORARY = ("UNAVAILABLE", "INUSE", "LIMIT", "SERVERBUG")
# RFC 2449/3206 codes on a refused POP3 login that mean "not now".
_POP3_TEMPORARY = ("SYS/TEMP", "IN-USE", "LOGIN-DELAY")
# Mail has long lines more often than it should (HTML without line breaks); poplib gives up at 2 KB.
_POP3_MAX_LINE = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where a mailbox is and how to log in (the password is passed separately, never stored here)."""

    protocol: str
    hostname: str
    port: int
    encryption: str
    username: str
    timeout: float

    @property
    def where(self) -> str:
        return f"{self.hostname}:{self.port}"


def tls_context() -> ssl.SSLContext:
    """Certificates and host names are always verified; there is deliberately no switch to turn it off."""
    return ssl.create_default_context()


# -- IMAP -------------------------------------------------------------------------------------------


class _GreetingCapabilities:
    """imaplib asks for CAPABILITY right after connecting even when the greeting already listed
    them (RFC 3501 7.1, as Dovecot, Cyrus and most servers do): one round trip saved on every poll.
    Only the greeting's list is taken; after STARTTLS the capabilities are always asked afresh."""

    _connecting = False

    def _connect(self):
        self._connecting = True
        try:
            return super()._connect()
        finally:
            self._connecting = False

    def _get_capabilities(self):
        said = self.untagged_responses.pop("CAPABILITY", None)
        if self._connecting and said and said[-1]:
            self.capabilities = tuple(str(said[-1], "ascii", "replace").upper().split())
            return
        super()._get_capabilities()


class _IMAP4(_GreetingCapabilities, IMAP4WithTimeout):
    pass


class _IMAP4_TLS(_GreetingCapabilities, IMAP4_TLS):
    pass


class _IMAPClient(IMAPClient):
    def _create_IMAP4(self):
        connect_timeout = getattr(self._timeout, "connect", None)
        if self.ssl:
            return _IMAP4_TLS(self.host, self.port, self.ssl_context, connect_timeout)
        return _IMAP4(self.host, self.port, connect_timeout)


@contextmanager
def imap_session(endpoint: Endpoint, password: str) -> Iterator[IMAPClient]:
    """A logged-in IMAP session, logged out at the end whatever happened."""
    with translated(endpoint, password):
        client = _IMAPClient(endpoint.hostname, endpoint.port, ssl=endpoint.encryption == "tls",
                             ssl_context=tls_context() if endpoint.encryption == "tls" else None,
                             timeout=endpoint.timeout)
    try:
        with translated(endpoint, password):
            if endpoint.encryption == "starttls":
                if not client.has_capability("STARTTLS"):
                    raise MailboxUnreachableError(f"{endpoint.where} does not offer STARTTLS; choose TLS or "
                                                  "check the port")
                client.starttls(tls_context())
            _imap_login(client, endpoint, password)
            yield client
    except MailboxUnreachableError:
        _shutdown(client)  # the connection is broken or stuck: LOGOUT would only wait for the timeout again
        raise
    except BaseException:
        close_imap(client)
        raise
    close_imap(client)


def _imap_login(client: IMAPClient, endpoint: Endpoint, password: str) -> None:
    if client.has_capability("LOGINDISABLED"):
        raise MailboxAuthError(f"{endpoint.where} refuses to log in without encryption; choose TLS or STARTTLS")
    try:
        client.login(endpoint.username, password)
    except imap_errors.LoginError as exc:
        text = scrub(_server_text(exc), password)
        if any(f"[{code}" in text.upper() for code in _IMAP_TEMPORARY):
            raise MailboxUnreachableError(f"{endpoint.where} cannot log in right now: {text}") from None
        raise MailboxAuthError(f"authentication failed: {text}") from None


def close_imap(client: IMAPClient) -> None:
    """LOGOUT politely; a connection already broken is just closed."""
    try:
        client.logout()
    except Exception:
        _shutdown(client)


def _shutdown(client: IMAPClient) -> None:
    try:
        client.shutdown()
    except Exception:
        pass


# -- POP3 -------------------------------------------------------------------------------------------


class _LongLines:
    def _getline(self):  # poplib's own, with a limit that real mail fits in
        line = self.file.readline(_POP3_MAX_LINE + 1)
        if len(line) > _POP3_MAX_LINE:
            raise poplib.error_proto("line too long")
        if not line:
            raise poplib.error_proto("-ERR EOF")
        octets = len(line)
        if line[-2:] == b"\r\n":
            return line[:-2], octets
        if line[:1] == b"\r":
            return line[1:-1], octets
        return line[:-1], octets


class POP3(_LongLines, poplib.POP3):
    pass


class POP3_SSL(_LongLines, poplib.POP3_SSL):
    pass


@contextmanager
def pop3_session(endpoint: Endpoint, password: str) -> Iterator[poplib.POP3]:
    """A logged-in POP3 session, ended with QUIT (which never deletes: logmail sends no DELE)."""
    with translated(endpoint, password):
        if endpoint.encryption == "tls":
            client: poplib.POP3 = POP3_SSL(endpoint.hostname, endpoint.port, context=tls_context(),
                                           timeout=endpoint.timeout)
        else:
            client = POP3(endpoint.hostname, endpoint.port, timeout=endpoint.timeout)
    try:
        with translated(endpoint, password):
            if endpoint.encryption == "starttls":
                try:
                    client.stls(tls_context())
                except poplib.error_proto as exc:
                    raise MailboxUnreachableError(f"{endpoint.where} could not start TLS (STLS): "
                                                  f"{_server_text(exc)}") from None
            _pop3_login(client, endpoint, password)
            yield client
    except MailboxUnreachableError:
        _close_pop3(client)
        raise
    except BaseException:
        _quit_pop3(client)
        raise
    _quit_pop3(client)


def _quit_pop3(client: poplib.POP3) -> None:
    try:
        client.quit()
    except Exception:
        _close_pop3(client)


def _close_pop3(client: poplib.POP3) -> None:
    try:
        client.close()
    except Exception:
        pass


def _pop3_login(client: poplib.POP3, endpoint: Endpoint, password: str) -> None:
    try:
        client.user(endpoint.username)
        client.pass_(password)
    except poplib.error_proto as exc:
        text = scrub(_server_text(exc), password)
        if any(f"[{code}" in text.upper() for code in _POP3_TEMPORARY):
            raise MailboxUnreachableError(f"{endpoint.where} cannot log in right now: {text}") from None
        raise MailboxAuthError(f"authentication failed: {text}") from None


# -- failures ----------------------------------------------------------------------------------------


@contextmanager
def translated(endpoint: Endpoint, password: str | None = None) -> Iterator[None]:
    """Socket, TLS and protocol failures as MailboxUnreachableError, in words for the user."""
    where = endpoint.where
    try:
        yield
    except MailboxError:
        raise
    except (socket.timeout, TimeoutError):
        raise MailboxUnreachableError(f"{where} did not answer within {endpoint.timeout:g} s") from None
    except ssl.SSLCertVerificationError as exc:
        raise MailboxUnreachableError(f"the TLS certificate of {where} is not trusted: "
                                      f"{exc.verify_message or exc.reason}") from None
    except ssl.SSLError as exc:
        raise MailboxUnreachableError(f"TLS with {where} failed: {exc.reason or exc}") from None
    except ConnectionRefusedError:
        raise MailboxUnreachableError(f"{where} refused the connection") from None
    except socket.gaierror as exc:
        raise MailboxUnreachableError(f"cannot find {endpoint.hostname}: {exc.strerror}") from None
    except (imaplib.IMAP4.abort, imap_errors.IMAPClientAbortError, EOFError) as exc:
        raise MailboxUnreachableError(f"{where} broke off the session: "
                                      f"{scrub(_server_text(exc), password)}") from None
    except OSError as exc:
        raise MailboxUnreachableError(f"cannot talk to {where}: {exc.strerror or exc}") from None
    except (imaplib.IMAP4.error, imap_errors.IMAPClientError) as exc:
        raise MailboxUnreachableError(f"{where} answered with an error: {scrub(_server_text(exc), password)}") from None
    except poplib.error_proto as exc:
        raise MailboxUnreachableError(f"{where} answered with an error: {scrub(_server_text(exc), password)}") from None


def _server_text(exc: BaseException) -> str:
    """The server's words without Python's decoration (``b'...'``, ``-ERR``)."""
    arg = exc.args[0] if exc.args else str(exc)
    text = arg.decode("utf-8", "replace") if isinstance(arg, bytes) else str(arg)
    text = re.sub(r"""b(['"])(.*?)\1""", r"\2", text)  # imapclient quotes replies as bytes reprs
    text = text.removeprefix("-ERR").strip()
    return text or type(exc).__name__
