"""Access tokens: short-lived HS256 JWTs naming a user, an organisation and a session.

Decoding accepts HS256 only (so ``alg: none`` and algorithm confusion are refused), requires every
claim logmail issues, and checks expiry against the auth service's clock rather than PyJWT's (so
tests can move time, and every daemon judges by the same clock). A token that decodes is not yet
enough: the caller also checks that its session is still alive.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import jwt

from logmail.errors import ConfigError, UnauthorisedError
from logmail.services.bootstrap import write_secret_file

log = logging.getLogger("logmail.auth")

ALGORITHM = "HS256"
MIN_SECRET_BYTES = 32  # RFC 7518 §3.2: an HS256 key at least as long as the hash
KEY_FILE = "jwt.key"
_REQUIRED = ["exp", "iat", "sub", "org", "sid", "typ", "jti"]
INVALID = "the access token is invalid or expired"


@dataclass(frozen=True, slots=True)
class AccessClaims:
    user_uuid: str
    organization_uuid: str
    session_uuid: str
    expires_at: int  # epoch ms


class AccessTokens:
    def __init__(self, secret: bytes, lifetime_minutes: int, clock: Callable[[], int]) -> None:
        if len(secret) < MIN_SECRET_BYTES:
            raise ConfigError(f"auth.jwt_secret must be at least {MIN_SECRET_BYTES} characters long")
        self._secret = secret
        self.lifetime_seconds = lifetime_minutes * 60
        self._clock = clock

    def issue(self, user_uuid: str, organization_uuid: str, session_uuid: str) -> tuple[str, int]:
        """A signed access token and its lifetime in seconds."""
        now = self._clock() // 1000
        claims = {"sub": user_uuid, "org": organization_uuid, "sid": session_uuid, "iat": now,
                  "exp": now + self.lifetime_seconds, "typ": "access", "jti": secrets.token_urlsafe(12)}
        return jwt.encode(claims, self._secret, algorithm=ALGORITHM), self.lifetime_seconds

    def decode(self, token: str) -> AccessClaims:
        """The claims of a valid, unexpired access token; UnauthorisedError for anything else."""
        try:
            claims = jwt.decode(token, self._secret, algorithms=[ALGORITHM],
                                options={"require": _REQUIRED, "verify_exp": False, "verify_iat": False,
                                         "verify_nbf": False})
        except jwt.PyJWTError:
            raise UnauthorisedError(INVALID) from None
        exp, iat = claims["exp"], claims["iat"]
        if (claims["typ"] != "access" or not all(isinstance(claims[c], str) for c in ("sub", "org", "sid"))
                or not _is_int(exp) or not _is_int(iat)):
            raise UnauthorisedError(INVALID)
        if exp * 1000 <= self._clock():
            raise UnauthorisedError(INVALID)
        return AccessClaims(claims["sub"], claims["org"], claims["sid"], exp * 1000)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def signing_key(configured: str, data_dir: Path) -> bytes:
    """``auth.jwt_secret`` when set; else the key in ``<data_dir>/jwt.key``, made on first start.

    Two daemons starting together on one data directory agree on one key: the file is published
    with a link that fails if another daemon got there first, and then everyone reads the winner's.
    """
    if configured:
        return configured.encode()
    path = data_dir / KEY_FILE
    if not path.exists():
        if write_secret_file(path, secrets.token_hex(32) + "\n", replace=False):
            log.info("created a signing key for access tokens in %s (mode 0600)", path)
    try:
        key = path.read_text().strip()
    except OSError as exc:
        raise ConfigError(f"cannot read the access-token signing key {path}: {exc.strerror}") from None
    if len(key) < MIN_SECRET_BYTES:
        raise ConfigError(f"{path} holds a key shorter than {MIN_SECRET_BYTES} characters; delete it to make "
                          "a new one (everyone will have to log in again)")
    return key.encode()
