"""A webhook receiver on loopback that checks requests exactly as a Standard Webhooks consumer does.

It verifies ``webhook-signature`` (any of the space-separated ``v1,`` signatures) over
``{webhook-id}.{webhook-timestamp}.{body}`` with the base64-decoded part of the ``whsec_`` secret,
refuses timestamps more than five minutes from its own clock (401), and answers what the test
scripts: a list of statuses (then 200), a delay before answering (a hanging endpoint), or 410.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import ssl
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TOLERANCE_SECONDS = 5 * 60


class VerificationError(Exception):
    pass


def verify(secret: str, headers: dict[str, str], body: bytes, *, now: float | None = None) -> dict:
    """The event, if the request is authentic and fresh; VerificationError otherwise (Standard Webhooks)."""
    headers = {k.lower(): v for k, v in headers.items()}
    try:
        msg_id, stamp, signatures = headers["webhook-id"], headers["webhook-timestamp"], headers["webhook-signature"]
    except KeyError as exc:
        raise VerificationError(f"missing header {exc}") from None
    try:
        timestamp = int(stamp)
    except ValueError:
        raise VerificationError("bad timestamp") from None
    if abs((time.time() if now is None else now) - timestamp) > TOLERANCE_SECONDS:
        raise VerificationError("timestamp too far from now")
    key = base64.b64decode(secret.removeprefix("whsec_"))
    expected = base64.b64encode(hmac.new(key, f"{msg_id}.{stamp}.".encode() + body, hashlib.sha256).digest()).decode()
    for candidate in signatures.split(" "):
        version, _, signature = candidate.partition(",")
        if version == "v1" and hmac.compare_digest(signature, expected):
            return json.loads(body)
    raise VerificationError("no valid signature")


@dataclass
class Request:
    path: str
    headers: dict[str, str]
    body: bytes
    verified: bool
    problem: str | None
    at: float
    sni: str | None = None

    @property
    def id(self) -> str:
        return self.headers.get("webhook-id") or self.headers.get("Webhook-Id", "")

    @property
    def event(self) -> dict:
        return json.loads(self.body)


@dataclass
class Receiver:
    """Start with ``Receiver().start()``; set ``secret`` once the webhook exists."""

    secret: str | None = None
    statuses: list[int] = field(default_factory=list)  # answered in turn; afterwards ``default_status``
    default_status: int = 200
    delay: float = 0.0  # seconds to wait before answering
    tls: ssl.SSLContext | None = None
    requests: list[Request] = field(default_factory=list)

    def start(self) -> "Receiver":
        receiver = self
        self._lock = threading.Lock()
        self._sni = threading.local()

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                headers = {k: v for k, v in self.headers.items()}
                problem = None
                try:
                    verify(receiver.secret or "whsec_", headers, body)
                except VerificationError as exc:
                    problem = str(exc)
                sni = getattr(self.connection, "sni", None) if receiver.tls else None
                with receiver._lock:
                    receiver.requests.append(Request(self.path, headers, body, problem is None, problem, time.time(),
                                                     sni))
                    status = receiver.statuses.pop(0) if receiver.statuses else receiver.default_status
                if receiver.delay:
                    time.sleep(receiver.delay)
                if problem is not None:
                    status = 401
                reply = json.dumps({"status": status, "problem": problem}).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(reply)))
                    self.end_headers()
                    self.wfile.write(reply)
                except OSError:  # the sender gave up waiting
                    pass

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        if self.tls is not None:
            def remember_sni(sock, name, _ctx):
                sock.sni = name

            self.tls.sni_callback = remember_sni
            self.server.socket = self.tls.wrap_socket(self.server.socket, server_side=True)
        threading.Thread(target=self.server.serve_forever, name="webhook-receiver", daemon=True).start()
        return self

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def wait(self, count: int, timeout: float = 15) -> list[Request]:
        deadline = time.monotonic() + timeout
        while len(self.requests) < count:
            assert time.monotonic() < deadline, f"only {len(self.requests)} of {count} webhook requests arrived"
            time.sleep(0.02)
        return list(self.requests)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
