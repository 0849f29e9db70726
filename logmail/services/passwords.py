"""Password hashing (Argon2id) and the rules a new password must meet.

argon2-cffi's defaults (Argon2id, 64 MiB, 3 passes, 4 lanes) exceed OWASP's minimum; hashes carry
their parameters, so raising them later only means rehashing at the next successful login.
"""

from __future__ import annotations

import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from logmail.errors import BadRequestError

# argon2-cffi's defaults over a random password that was thrown away.
_DUMMY_HASH = "$argon2id$v=19$m=65536,t=3,p=4$VuJmptPPWwKj/N0UlIhfgg$nKAGvwdBVlG/M5OtDEysJ2gTq2ZF9Aoe1saWe62ZzIA"
# Long enough for any passphrase; short enough that nobody makes us hash megabytes per attempt.
MAX_PASSWORD_LENGTH = 1024


class Passwords:
    """Hashes and verifies passwords; ``verify_nobody`` spends the same time for unknown accounts."""

    def __init__(self, min_length: int = 10) -> None:
        self.min_length = min_length
        self._hasher = PasswordHasher()
        # Verifying against a real hash of a password nobody knows costs what a real check costs, so
        # "no such user" and "wrong password" cannot be told apart by timing. The stored one matches
        # the current parameters (no hashing at every start); if they ever change, make a new one.
        self._dummy_hash = _DUMMY_HASH
        if self._hasher.check_needs_rehash(_DUMMY_HASH):
            self._dummy_hash = self._hasher.hash(secrets.token_urlsafe(24))

    def check_policy(self, password: str) -> None:
        if len(password) < self.min_length:
            raise BadRequestError(f"password must be at least {self.min_length} characters long")
        if len(password) > MAX_PASSWORD_LENGTH:
            raise BadRequestError(f"password must be at most {MAX_PASSWORD_LENGTH} characters long")

    def hash(self, password: str) -> str:
        return self._hasher.hash(password)

    def verify(self, password_hash: str | None, password: str) -> bool:
        if not password_hash or len(password) > MAX_PASSWORD_LENGTH:
            self.verify_nobody(password)
            return False
        try:
            return self._hasher.verify(password_hash, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def verify_nobody(self, password: str) -> None:
        try:
            self._hasher.verify(self._dummy_hash, password[:MAX_PASSWORD_LENGTH])
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            pass

    def needs_rehash(self, password_hash: str) -> bool:
        return self._hasher.check_needs_rehash(password_hash)
