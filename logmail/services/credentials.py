"""Mailbox passwords at rest: AES-256-GCM with the account's id as associated data.

A mailbox password must be presented to the remote server, so it cannot be hashed; it is encrypted
under a key that lives outside the database: ``accounts.encryption_keys`` in the configuration
(base64 keys, the first one encrypts, all of them decrypt) or, when none is configured, a key ring
in ``<data_dir>/credentials.keys`` (mode 0600, created on first start). The account's uuid is the
associated data, so a ciphertext copied onto another account's row does not decrypt.

A stored value is ``v1:<key id>:<base64 of nonce and ciphertext>``; the key id is a short digest of
the key, so any daemon finds the right key among its ring. ``logmail admin rotate-keys`` adds a new
key, re-encrypts every stored password under it, and then retires the old keys; a daemon meeting a
key id it does not know re-reads the key file first, so rotation needs no restart.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import threading
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from logmail.errors import ConfigError, LogmailError
from logmail.services.bootstrap import write_secret_file

KEY_FILE = "credentials.keys"
_VERSION = "v1"


class CredentialError(LogmailError):
    error = "Credential error"


def key_id(key: bytes) -> str:
    return hashlib.sha256(b"logmail-credential-key:" + key).hexdigest()[:12]


def new_key() -> bytes:
    return AESGCM.generate_key(bit_length=256)


def _decode_key(text: str, where: str) -> bytes:
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError(f"{where}: a key must be 32 bytes, base64-encoded") from None
    if len(key) != 32:
        raise ConfigError(f"{where}: a key must be 32 bytes, base64-encoded (this one is {len(key)})")
    return key


class CredentialVault:
    def __init__(self, *, configured_keys: list[str] | None = None, key_file: Path | None = None) -> None:
        self._configured = [_decode_key(k, "accounts.encryption_keys") for k in (configured_keys or [])]
        self.key_file = None if self._configured else key_file
        self._lock = threading.Lock()
        self._keys: list[bytes] = []
        self._load()

    @property
    def from_file(self) -> bool:
        return self.key_file is not None

    def _load(self) -> None:
        if self._configured:
            keys = list(self._configured)
        elif self.key_file is not None:
            keys = self._read_file(create=True)
        else:
            raise ConfigError("no key to encrypt mailbox passwords with")
        with self._lock:
            self._keys = keys

    def _read_file(self, *, create: bool) -> list[bytes]:
        assert self.key_file is not None
        if not self.key_file.exists() and create:
            write_secret_file(self.key_file, _ring_json([new_key()]), replace=False)
        try:
            data = json.loads(self.key_file.read_text())
            return [_decode_key(k, str(self.key_file)) for k in data["keys"]]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"cannot read the mailbox key file {self.key_file}: {exc}") from None

    @property
    def primary_id(self) -> str:
        with self._lock:
            return key_id(self._keys[0])

    def key_ids(self) -> list[str]:
        with self._lock:
            return [key_id(k) for k in self._keys]

    def encrypt(self, account_uuid: str, password: str) -> str:
        with self._lock:
            key = self._keys[0]
        nonce = os.urandom(12)
        sealed = AESGCM(key).encrypt(nonce, password.encode("utf-8", "surrogatepass"), account_uuid.encode())
        return f"{_VERSION}:{key_id(key)}:{base64.b64encode(nonce + sealed).decode()}"

    def decrypt(self, account_uuid: str, stored: str) -> str:
        version, _, rest = stored.partition(":")
        kid, _, blob = rest.partition(":")
        if version != _VERSION or not kid or not blob:
            raise CredentialError("the stored mailbox password is not in a format this version reads")
        key = self._find(kid)
        if key is None and self.key_file is not None:
            self._load()  # rotated by another process since we read the file
            key = self._find(kid)
        if key is None:
            raise CredentialError("the key that encrypted this mailbox password is not available; "
                                  "enter the password again")
        try:
            raw = base64.b64decode(blob, validate=True)
            return AESGCM(key).decrypt(raw[:12], raw[12:], account_uuid.encode()).decode("utf-8", "surrogatepass")
        except (InvalidTag, binascii.Error, ValueError):
            raise CredentialError("the stored mailbox password does not decrypt; enter the password again") from None

    def needs_reencryption(self, stored: str) -> bool:
        return stored.split(":", 2)[1:2] != [self.primary_id]

    def _find(self, kid: str) -> bytes | None:
        with self._lock:
            return next((k for k in self._keys if key_id(k) == kid), None)

    # -- rotation (key file only; configured keys are rotated in the configuration) ---------------------

    def add_primary_key(self) -> str:
        """A new key in front of the ring; the old ones still decrypt until :meth:`retire_old_keys`."""
        if self.key_file is None:
            raise ConfigError("keys come from accounts.encryption_keys: put a new key first in that list")
        keys = self._read_file(create=True)
        keys.insert(0, new_key())
        write_secret_file(self.key_file, _ring_json(keys))
        self._load()
        return key_id(keys[0])

    def retire_old_keys(self) -> list[str]:
        if self.key_file is None:
            return []
        keys = self._read_file(create=False)
        write_secret_file(self.key_file, _ring_json(keys[:1]))
        self._load()
        return [key_id(k) for k in keys[1:]]


def _ring_json(keys: list[bytes]) -> str:
    return json.dumps({"keys": [base64.b64encode(k).decode() for k in keys]}) + "\n"
