"""First start: the built-in organisation and the owner token.

The owner token is written to ``<data_dir>/owner.token`` with mode 0600; only its hash is kept in
the database. If the file goes missing, the next start issues a new token (old ones stay valid
until revoked) so that a local developer can always get back in.
"""

from __future__ import annotations

import logging
import os
import secrets
import uuid
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from logmail.services.tokens import create_token
from logmail.store.database import Database
from logmail.store.models import Organization

log = logging.getLogger("logmail.bootstrap")

BUILTIN_ORG_NAME = "Local"


@dataclass(slots=True)
class BootstrapResult:
    organization_id: int
    organization_uuid: str
    token_file: Path
    token_created: bool


# The built-in organisation has a fixed id, so that daemons starting together on an empty database
# cannot each create one: the unique uuid lets exactly one insert win.
BUILTIN_ORG_UUID = str(uuid.uuid5(uuid.NAMESPACE_URL, "https://logmail.invalid/builtin-organisation"))


def ensure_builtin_organization(db: Database) -> Organization:
    def find() -> Organization | None:
        with db.read() as session:
            return session.execute(select(Organization).where(Organization.is_builtin.is_(True))
                                   .order_by(Organization.id).limit(1)).scalar_one_or_none()

    org = find()
    if org is not None:
        return org
    try:
        with db.write() as session:
            org = Organization(uuid=BUILTIN_ORG_UUID, name=BUILTIN_ORG_NAME, is_builtin=True, tier="unlimited")
            session.add(org)
        log.info("created the built-in organisation %s", org.uuid)
        return org
    except IntegrityError:  # another daemon created it a moment ago
        org = find()
        assert org is not None
        return org


def bootstrap(db: Database, data_dir: Path) -> BootstrapResult:
    org = ensure_builtin_organization(db)
    token_file = data_dir / "owner.token"
    created = False
    if not _token_file_valid(db, token_file):
        token, _ = create_token(db, org.id, "owner (written to owner.token)")
        write_secret_file(token_file, token + "\n")
        created = True
    return BootstrapResult(org.id, org.uuid, token_file, created)


def _token_file_valid(db: Database, token_file: Path) -> bool:
    """The file exists and its token still works (a restored database may not know it)."""
    from logmail.services.tokens import TokenAuthenticator

    try:
        token = token_file.read_text().strip()
    except FileNotFoundError:
        return False
    if token and TokenAuthenticator(db).authenticate(token) is not None:
        return True
    log.warning("%s holds a token this database does not accept; writing a new owner token", token_file)
    return False


def write_secret_file(path: Path, content: str, *, replace: bool = True) -> bool:
    """Create a file only its owner can read, atomically, never briefly world-readable.

    With ``replace=False`` an existing file wins and False is returned: a hard link publishes the new
    file only if nothing is there yet, so concurrent writers agree on one content.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, content.encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.chmod(tmp, 0o600)
        if replace:
            os.replace(tmp, path)
            return True
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        return True
    finally:
        if tmp.exists():
            tmp.unlink()
