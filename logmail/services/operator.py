"""The operator: who ``logmail admin`` acts as.

Someone with a shell on the machine and the configuration file can already read the database, so
the command line acts as a platform administrator without logging in. It is still a
:class:`Principal`, so every rule of the services applies to it exactly as to the API, and its
changes are audited: entries have no actor user or token (none was used) and carry
``{"via": "cli", "operator": "<os user>@<host>"}`` in their details (see ``AuditLog.add``).

The operator stands in the built-in organisation (the installation's own) unless an action is about
one organisation, such as creating an API token for it.
"""

from __future__ import annotations

import getpass
import socket

from logmail.errors import NotFoundError
from logmail.services.principal import ALL_SCOPES, METHOD_CLI, Principal, scopes_for
from logmail.store import admin as admin_repo
from logmail.store import users as users_repo
from logmail.store.database import Database


def operator_label() -> str:
    """``user@host`` of whoever runs the command, for the audit log."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a bare container)
        user = "unknown"
    return f"{user}@{socket.gethostname()}"[:300]


def operator(organization_id: int, organization_uuid: str) -> Principal:
    """The operator acting for the organisation (an owner's ceiling, and platform-admin powers)."""
    return Principal(organization_id, organization_uuid, None, None, frozenset(ALL_SCOPES), method=METHOD_CLI,
                     is_platform_admin=True, user_agent=operator_label())


def operator_for_user(organization_id: int, organization_uuid: str, user_id: int, user_uuid: str, role: str,
                      ) -> Principal:
    """The operator acting on a user's behalf (their tokens): bounded by the user's role, as the user is."""
    return Principal(organization_id, organization_uuid, user_id, None, scopes_for(role), method=METHOD_CLI,
                     user_uuid=user_uuid, role=role, user_agent=operator_label())


def operator_in(db: Database, organization_uuid: str) -> Principal:
    """The operator acting inside the organisation ``organization_uuid`` (its tokens, for example)."""
    with db.read() as session:
        org = users_repo.organization_by_uuid(session, organization_uuid.lower())
    if org is None:
        raise NotFoundError("organisation not found")
    return operator(org.id, org.uuid)


def operator_as(db: Database, user_uuid: str) -> Principal:
    """The operator acting for the user ``user_uuid`` (a token of theirs, within their role)."""
    with db.read() as session:
        found = admin_repo.user_by_uuid(session, user_uuid.lower())
    if found is None:
        raise NotFoundError("user not found")
    user, org = found
    return operator_for_user(org.id, org.uuid, user.id, user.uuid, user.role)


def token_organization(db: Database, token_uuid: str) -> str:
    """The uuid of the organisation an API token belongs to."""
    with db.read() as session:
        org = admin_repo.token_owner(session, token_uuid.lower())
    if org is None:
        raise NotFoundError("token not found")
    return org.uuid
