"""The exceptions logmail raises on purpose.

Each one knows how it is shown to the outside: the HTTP status and error name for the API, the SMTP
reply for the listeners. One handler per front-end turns them into responses; anything else is an
internal error whose details stay in the log.
"""

from __future__ import annotations

import math


class LogmailError(Exception):
    """Base of every deliberate logmail error; ``message`` is safe to show to the caller."""

    status = 500
    error = "Internal error"
    smtp_reply = "451 4.3.0 Temporary failure, please try again later"

    def __init__(self, message: str | None = None) -> None:
        self.message = message or self.error
        super().__init__(self.message)

    @property
    def headers(self) -> dict[str, str]:
        """Extra HTTP headers the response must carry."""
        return {}


class ConfigError(LogmailError):
    error = "Configuration error"


class BadRequestError(LogmailError):
    status = 400
    error = "Bad request"
    smtp_reply = "501 5.5.4 Syntax error in parameters or arguments"


class UnauthorisedError(LogmailError):
    status = 401
    error = "Unauthorised"

    @property
    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": 'Bearer realm="logmail"'}


class ForbiddenError(LogmailError):
    status = 403
    error = "Forbidden"


class NotFoundError(LogmailError):
    status = 404
    error = "Not found"


class ConflictError(LogmailError):
    status = 409
    error = "Conflict"


class PayloadTooLargeError(LogmailError):
    status = 413
    error = "Payload too large"
    smtp_reply = "552 5.3.4 Message size exceeds fixed maximum message size"


class RateLimitedError(LogmailError):
    """Too many requests: ``retry_after`` says how many seconds to wait (sent as ``Retry-After``)."""

    status = 429
    error = "Rate limit exceeded"

    def __init__(self, message: str | None = None, *, retry_after: float = 1.0) -> None:
        super().__init__(message)
        # Whole seconds, at least one: a client told "0" would retry at once and be refused again.
        self.retry_after = max(1, math.ceil(retry_after))

    @property
    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


class TooManyAttemptsError(RateLimitedError):
    """Too many login attempts for one account or from one address."""

    error = "Too many attempts"


class UnusableInputError(LogmailError):
    """Input that can never be stored, however often it is retried."""

    status = 422
    error = "Unusable input"
    smtp_reply = "554 5.6.0 Message content rejected"


class TemporaryError(LogmailError):
    """Storage or a dependency is unavailable: the caller should retry, and nothing was accepted."""

    status = 503
    error = "Service unavailable"
    smtp_reply = "451 4.3.0 Temporary storage failure, please try again later"


class StorageUnavailableError(TemporaryError):
    error = "Storage unavailable"
