"""Re-encrypting every stored mailbox password under the vault's current key, without downtime.

With the key file (no ``accounts.encryption_keys``): a new key is put in front of the ring (every
daemon still decrypts with the old ones, and re-reads the file when it meets the new key's id), every
password is re-encrypted under it in small transactions, and once none is left under an old key the
old keys are retired. With configured keys, the operator puts the new key first in every daemon's
configuration, restarts them one by one, runs this, and then removes the old key from the list.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from logmail.services.credentials import CredentialError, CredentialVault
from logmail.store import accounts as repo
from logmail.store.database import Database

log = logging.getLogger("logmail.keys")
BATCH = 200


@dataclass
class RotationResult:
    new_key_id: str
    reencrypted: int = 0
    already_current: int = 0
    unreadable: list[str] = field(default_factory=list)  # uuids (accounts, webhooks) no key decrypts
    retired_key_ids: list[str] = field(default_factory=list)


def rotate_keys(db: Database, vault: CredentialVault, *, new_key: bool = True,
                progress: Callable[[int], None] | None = None,
                others: tuple[Callable[[], tuple[int, list[str]]], ...] = ()) -> RotationResult:
    """Re-encrypt mailbox passwords, and whatever else ``others`` re-encrypt (webhook signing
    secrets: each returns how many it changed and the ids no key decrypts), then retire old keys."""
    key = vault.add_primary_key() if new_key and vault.from_file else vault.primary_id
    result = RotationResult(new_key_id=key)
    after = 0
    while True:
        with db.read() as session:
            rows = repo.all_encrypted(session, after, BATCH)
        if not rows:
            break
        after = rows[-1][0]
        with db.write() as session:
            for account_id, uuid, stored in rows:
                if not vault.needs_reencryption(stored):
                    result.already_current += 1
                    continue
                try:
                    password = vault.decrypt(uuid, stored)
                except CredentialError:
                    result.unreadable.append(uuid)
                    continue
                if repo.set_encrypted(session, account_id, stored, vault.encrypt(uuid, password)):
                    result.reencrypted += 1
                else:
                    result.already_current += 1  # changed meanwhile (a new password): already current
        if progress is not None:
            progress(len(rows))
    for reencrypt in others:
        changed, unreadable = reencrypt()
        result.reencrypted += changed
        result.unreadable.extend(unreadable)
    if vault.from_file and not result.unreadable:
        result.retired_key_ids = vault.retire_old_keys()
    log.info("mailbox passwords re-encrypted under key %s: %d changed, %d already current, %d unreadable",
             key, result.reencrypted, result.already_current, len(result.unreadable))
    return result
