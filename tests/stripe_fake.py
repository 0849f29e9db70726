"""A stand-in for Stripe's API on loopback, speaking its wire format: form-encoded requests with a
bearer secret key, JSON objects back, errors as ``{"error": {"type", "message", ...}}``.

It serves what logmail calls: ``POST /v1/checkout/sessions`` and ``GET /v1/subscriptions/{id}``
(subscriptions the test puts in ``subscriptions``). Every request is recorded, so a test can check
the price and metadata sent. Point ``billing.api_base`` at ``url``.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    form: dict[str, str]  # Stripe's encoding flattened: "metadata[tier]", "line_items[0][price]", ...


@dataclass
class FakeStripe:
    secret_key: str = "sk_test_logmail"
    subscriptions: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)
    fail_with: tuple[int, str] | None = None  # (HTTP status, Stripe error type) answered to every request

    def start(self) -> "FakeStripe":
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                fake._serve(self, "GET")

            def do_POST(self) -> None:
                fake._serve(self, "POST")

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def checkout_requests(self) -> list[Request]:
        return [r for r in self.requests if r.method == "POST" and r.path == "/v1/checkout/sessions"]

    # -- the API ---------------------------------------------------------------------------------

    def _serve(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length).decode() if length else ""
        path, _, query = handler.path.partition("?")
        form = dict(parse_qsl(body if method == "POST" else query, keep_blank_values=True))
        self.requests.append(Request(method, path, dict(handler.headers.items()), form))
        if handler.headers.get("Authorization") != f"Bearer {self.secret_key}":
            return self._error(handler, 401, "invalid_request_error", "Invalid API Key provided")
        if self.fail_with is not None:
            status, kind = self.fail_with
            return self._error(handler, status, kind, "The fake was told to fail")
        if method == "POST" and path == "/v1/checkout/sessions":
            return self._answer(handler, 200, self._checkout_session(form))
        if method == "GET" and path.startswith("/v1/subscriptions/"):
            sub = self.subscriptions.get(path.rsplit("/", 1)[1])
            if sub is None:
                return self._error(handler, 404, "invalid_request_error", f"No such subscription: '{path}'",
                                   code="resource_missing")
            return self._answer(handler, 200, sub)
        return self._error(handler, 404, "invalid_request_error", f"Unrecognized request URL ({method}: {path})")

    def _checkout_session(self, form: dict[str, str]) -> dict[str, Any]:
        session_id = f"cs_test_{secrets.token_hex(12)}"
        metadata = {k[len("metadata["):-1]: v for k, v in form.items() if k.startswith("metadata[")}
        return {"id": session_id, "object": "checkout.session", "livemode": False, "created": int(time.time()),
                "mode": form.get("mode"), "status": "open", "payment_status": "unpaid",
                "url": f"https://checkout.stripe.com/c/pay/{session_id}",
                "success_url": form.get("success_url"), "cancel_url": form.get("cancel_url"),
                "client_reference_id": form.get("client_reference_id"), "customer": form.get("customer"),
                "customer_email": form.get("customer_email"), "metadata": metadata, "subscription": None}

    @staticmethod
    def _answer(handler: BaseHTTPRequestHandler, status: int, data: dict[str, Any]) -> None:
        body = json.dumps(data).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(body)))
        handler.send_header("Request-Id", f"req_{secrets.token_hex(7)}")
        handler.send_header("Connection", "close")  # no kept-alive connection outlives stop()
        handler.close_connection = True
        handler.end_headers()
        handler.wfile.write(body)

    def _error(self, handler: BaseHTTPRequestHandler, status: int, kind: str, message: str, **extra: Any) -> None:
        self._answer(handler, status, {"error": {"type": kind, "message": message, **extra}})
