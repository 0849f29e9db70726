"""Where a webhook may point: URL rules and the SSRF guard.

A webhook makes logmail's servers send requests to a URL a tenant chose, so a URL must not reach
what only those servers can reach (the cloud metadata service, the database, the admin port of a
router). Unless ``webhooks.allow_private`` is on, every address the host resolves to (all A and
AAAA records) must be a public unicast address; one private, loopback, link-local, multicast,
reserved or unspecified address refuses the whole URL. The check runs on the *resolved* addresses,
so spellings like ``http://2130706433/`` or ``http://[::ffff:127.0.0.1]/`` are caught too.

The check runs when the URL is saved and again before every attempt, and the attempt connects to
the very address that was checked (see :mod:`logmail.services.webhook_sender`), so a DNS answer that
changes between the check and the connection (DNS rebinding) cannot slip a private address in.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from logmail.errors import BadRequestError

MAX_URL_LENGTH = 2000
SCHEMES = ("http", "https")
IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class TargetRefusedError(BadRequestError):
    """The URL may not be used as a webhook target (a 400 when saving, a failed attempt when sending)."""

    error = "Webhook target refused"


@dataclass(frozen=True, slots=True)
class Target:
    scheme: str
    host: str  # as written (IDN hosts in their Unicode form); an IPv6 literal without brackets
    port: int


def check_url(url: str) -> Target:
    """The URL's scheme, host and port, or TargetRefusedError naming what is wrong with it."""
    if len(url) > MAX_URL_LENGTH:
        raise TargetRefusedError(f"url must be at most {MAX_URL_LENGTH} characters long")
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in url):
        raise TargetRefusedError("url must not contain spaces or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise TargetRefusedError(f"url is not a valid URL ({exc})") from None
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise TargetRefusedError("url must start with https:// or http://")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise TargetRefusedError("url must not contain credentials (user:password@); authenticate the "
                                 "request by its signature")
    host = parts.hostname
    if not host:
        raise TargetRefusedError("url must name a host")
    if port == 0:
        raise TargetRefusedError("url must not use port 0")
    try:
        host.encode("idna") if not _is_ip(host) else None
    except UnicodeError:
        raise TargetRefusedError("url's host is not a valid host name") from None
    return Target(scheme, host, port or (443 if scheme == "https" else 80))


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return False


def refusal(address: IpAddress) -> str | None:
    """Why this address may not be a webhook target, or None if it is a public unicast address."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return refusal(address.ipv4_mapped)
        if address in _NAT64:  # a NAT64 gateway would carry it to the IPv4 address inside
            return refusal(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
        if address.sixtofour is not None and refusal(address.sixtofour) is not None:
            return refusal(address.sixtofour)
    for flag, what in (("is_loopback", "loopback"), ("is_link_local", "link-local"),
                       ("is_multicast", "multicast"), ("is_unspecified", "unspecified"),
                       ("is_reserved", "reserved"), ("is_private", "private")):
        if getattr(address, flag):
            return what
    if not address.is_global:  # shared (100.64/10), documentation, benchmarking, ... ranges
        return "not public"
    return None


def check_addresses(host: str, addresses: list[IpAddress], allow_private: bool) -> list[IpAddress]:
    """The addresses, if every one may be used; TargetRefusedError otherwise."""
    if not addresses:
        raise TargetRefusedError(f"{host} does not resolve to any address")
    if not allow_private:
        for address in addresses:
            why = refusal(address)
            if why is not None:
                raise TargetRefusedError(f"{host} resolves to {address}, a {why} address; webhooks may only "
                                         "reach public addresses (webhooks.allow_private allows others)")
    return addresses


def _unique(infos) -> list[IpAddress]:
    out: list[IpAddress] = []
    for *_, sockaddr in infos:
        address = ipaddress.ip_address(sockaddr[0].split("%", 1)[0])  # drop an IPv6 zone id
        if address not in out:
            out.append(address)
    return out


def resolve(target: Target, allow_private: bool) -> list[IpAddress]:
    """Every address of the target's host, checked (blocking; for the API's worker threads)."""
    try:
        infos = socket.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise TargetRefusedError(f"{target.host} cannot be resolved ({_reason(exc)})") from None
    return check_addresses(target.host, _unique(infos), allow_private)


async def resolve_async(target: Target, allow_private: bool) -> list[IpAddress]:
    """As :func:`resolve`, on the running event loop (the dispatcher)."""
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise TargetRefusedError(f"{target.host} cannot be resolved ({_reason(exc)})") from None
    return check_addresses(target.host, _unique(infos), allow_private)


def _reason(exc: Exception) -> str:
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
