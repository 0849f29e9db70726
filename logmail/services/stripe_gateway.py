"""The only module that talks to Stripe: Checkout sessions, subscriptions and webhook signatures.

It wraps the official ``stripe`` library with one client per gateway (never the library's global
key), pointed at ``billing.api_base`` when that is set. Stripe's failures become logmail errors:
an unreachable Stripe is a 503 (retry), a refusal a 502 that names Stripe's reason.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from logmail.errors import BadRequestError, LogmailError, TemporaryError

log = logging.getLogger("logmail.billing")

TIMEOUT_SECONDS = 20.0
NETWORK_RETRIES = 1


class PaymentProviderError(LogmailError):
    """Stripe answered, but with an error."""

    status = 502
    error = "Payment provider error"


class PaymentProviderUnavailableError(TemporaryError):
    error = "Payment provider unavailable"


class SignatureError(BadRequestError):
    """A webhook whose Stripe-Signature does not prove it came from Stripe, recently."""

    error = "Invalid signature"


class StripeGateway:
    def __init__(self, secret_key: str, *, api_base: str = "") -> None:
        import stripe  # only daemons that bill load it

        self._stripe = stripe
        self._client = stripe.StripeClient(
            secret_key, base_addresses={"api": api_base.rstrip("/")} if api_base else None,
            http_client=stripe.RequestsClient(timeout=TIMEOUT_SECONDS), max_network_retries=NETWORK_RETRIES)

    def create_checkout_session(self, params: dict[str, Any]) -> dict[str, Any]:
        """A Checkout Session (its ``id`` and ``url`` among the rest)."""
        return self._call("create a checkout session", self._client.v1.checkout.sessions.create, params=params)

    def subscription(self, subscription_id: str) -> dict[str, Any]:
        """The subscription as Stripe holds it now."""
        return self._call("read the subscription", self._client.v1.subscriptions.retrieve, subscription_id)

    def _call(self, what: str, fn, *args: Any, **kw: Any) -> dict[str, Any]:
        stripe = self._stripe
        try:
            return fn(*args, **kw).to_dict()
        except stripe.APIConnectionError as exc:
            log.warning("cannot reach Stripe to %s: %s", what, exc.user_message or type(exc).__name__)
            raise PaymentProviderUnavailableError("Stripe cannot be reached; try again shortly") from None
        except stripe.StripeError as exc:
            status = getattr(exc, "http_status", None)
            reason = exc.user_message or type(exc).__name__
            log.warning("Stripe refused to %s (HTTP %s): %s", what, status, reason)
            if status is not None and status >= 500 or isinstance(exc, stripe.RateLimitError):
                raise PaymentProviderUnavailableError(f"Stripe could not {what} just now; try again shortly") \
                    from None
            raise PaymentProviderError(f"Stripe would not {what}: {reason}") from None


def verify_event(raw: bytes, header: str | None, secret: str, *, tolerance: int) -> Any:
    """The JSON of a webhook body whose ``Stripe-Signature`` is valid and at most ``tolerance`` s old.

    Stripe signs ``<t>.<body>`` with HMAC-SHA256 under the endpoint's secret; the header is
    ``t=<unix time>,v1=<hex signature>[,v1=...]`` (several during a secret's rotation).
    """
    import stripe

    if not header:
        raise SignatureError("the Stripe-Signature header is missing")
    try:
        stripe.WebhookSignature.verify_header(raw, header, secret, tolerance)
    except stripe.SignatureVerificationError as exc:
        raise SignatureError(f"the Stripe-Signature does not verify: {_reason(str(exc))}") from None
    except UnicodeDecodeError:
        raise SignatureError("the body is not UTF-8, so Stripe did not sign it") from None
    try:
        return json.loads(raw)
    except ValueError:
        raise BadRequestError("the signed body is not JSON") from None


def _reason(message: str) -> str:
    """Stripe's wording, without the advice meant for integrators."""
    if "tolerance" in message:
        return "its timestamp is too old (a replay?)"
    if "matching" in message:
        return "no signature matches the body"
    return "it cannot be read"
