"""One webhook attempt over HTTP: Standard Webhooks signing and a request pinned to a checked address.

Signing (https://www.standardwebhooks.com): the secret is ``whsec_`` + base64 of random bytes; each
request carries ``webhook-id`` (the delivery's id, the same on every retry), ``webhook-timestamp``
(integer seconds, the time of this attempt) and ``webhook-signature`` = ``v1,`` + base64 of
HMAC-SHA256(secret bytes, ``"{id}.{timestamp}.{body}"``).

Pinning, against DNS rebinding: the host is resolved and every address checked
(:mod:`logmail.services.webhook_targets`); the request then goes to the checked IP address itself
(the URL's host replaced by the address), while the ``Host`` header keeps the name and, for https,
TLS sends the name as SNI and verifies the certificate against the name (httpcore's
``sni_hostname`` extension). Nothing resolves the name a second time. Connections are not kept
alive, so a TLS connection made for one name is never reused for another name on the same address;
redirects are not followed and proxies from the environment are ignored.

The timeout (``webhooks.timeout``) bounds the whole attempt, from connecting to the last byte read,
so an endpoint that trickles its answer cannot hold a dispatcher slot for longer.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import os
import ssl
import time
from dataclasses import dataclass

import httpx

from logmail import __version__
from logmail.config import WebhookSettings
from logmail.services.webhook_targets import TargetRefusedError, check_url, resolve_async

SECRET_PREFIX = "whsec_"
RESPONSE_LIMIT = 2048  # characters of a reply kept in the delivery history
USER_AGENT = f"logmail-webhooks/{__version__}"


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(os.urandom(32)).decode()


def secret_bytes(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix(SECRET_PREFIX))


def sign(secret: str, message_id: str, timestamp: int, body: str) -> str:
    """The ``webhook-signature`` header value for one request."""
    digest = hmac.new(secret_bytes(secret), f"{message_id}.{timestamp}.{body}".encode(), hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one attempt came to. ``status_code`` is None when no HTTP answer came back."""

    status_code: int | None
    duration_ms: int
    response: str | None = None
    error: str | None = None

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300

    @property
    def gone(self) -> bool:
        """410 Gone: the receiver asks never to be sent anything again."""
        return self.status_code == 410


class WebhookSender:
    """Sends attempts; one instance per event loop (it holds an ``httpx.AsyncClient``)."""

    def __init__(self, settings: WebhookSettings, *, verify: ssl.SSLContext | bool = True) -> None:
        """``settings`` are read at every attempt (``timeout``, ``allow_private``); ``verify`` is the TLS
        trust (tests pass a context that trusts their own CA)."""
        self.settings = settings
        self._client = httpx.AsyncClient(
            follow_redirects=False, trust_env=False, verify=verify,
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=0))

    async def aclose(self) -> None:
        await self._client.aclose()

    async def send(self, url: str, message_id: str, body: str, secret: str) -> Outcome:
        started = time.monotonic()
        timeout = self.settings.timeout
        try:
            return await asyncio.wait_for(self._send(url, message_id, body, secret, started, timeout), timeout)
        except (asyncio.TimeoutError, httpx.TimeoutException):
            return Outcome(None, _ms(started), error=f"timed out after {timeout:g} s")
        except TargetRefusedError as exc:
            return Outcome(None, _ms(started), error=exc.message)
        except httpx.HTTPError as exc:
            return Outcome(None, _ms(started), error=f"{type(exc).__name__}: {exc}"[:1000] or type(exc).__name__)
        except (OSError, ssl.SSLError) as exc:
            return Outcome(None, _ms(started), error=f"{type(exc).__name__}: {exc}"[:1000])

    async def _send(self, url: str, message_id: str, body: str, secret: str, started: float,
                    timeout: float) -> Outcome:
        target = check_url(url)
        addresses = await resolve_async(target, self.settings.allow_private)
        timestamp = int(time.time())  # the receiver compares it with its own clock
        original = httpx.URL(url)
        headers = {
            "Host": original.netloc.decode("ascii"),
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "Accept-Encoding": "identity",  # the start of the reply is kept as sent; no decompression
            "webhook-id": message_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(secret, message_id, timestamp, body),
        }
        content = body.encode("utf-8")
        last_error: httpx.ConnectError | None = None
        for address in addresses:  # the next checked address only when one refuses the connection
            pinned = original.copy_with(host=str(address), fragment=None)
            try:
                async with self._client.stream("POST", pinned, content=content, headers=headers, timeout=timeout,
                                               extensions={"sni_hostname": target.host}) as reply:
                    text = await _read_start(reply)
                    return Outcome(reply.status_code, _ms(started), text)
            except httpx.ConnectError as exc:
                last_error = exc
        assert last_error is not None
        raise last_error


async def _read_start(reply: httpx.Response) -> str:
    """The first RESPONSE_LIMIT characters of the reply body; the rest is not even read."""
    data = b""
    async for chunk in reply.aiter_raw():
        data += chunk
        if len(data) >= RESPONSE_LIMIT * 4:
            break
    return data.decode("utf-8", "replace")[:RESPONSE_LIMIT]


def _ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)
