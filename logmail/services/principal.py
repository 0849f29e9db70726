"""Who is calling, and what the roles of an organisation may do.

Every authenticated request carries exactly one :class:`Principal`, however it authenticated (an
API token, an access token from a login, or trusted gateway headers). Endpoints ask it for a scope
with :meth:`Principal.can`; they never look at roles themselves.

The roles matrix lives here and nowhere else:

========  =========================================================================================
role      scopes (what its sessions may do; the ceiling of the tokens its users create)
========  =========================================================================================
member    ``read``: list and read messages, manage their own sessions and their own read tokens
admin     ``read write ingest admin``: also delete messages, manage every token and the users
owner     as admin, and also create other owners (billing and deleting the organisation, later)
========  =========================================================================================

An API token's power is its scopes *and* its creator's role, both at the time of use: demoting a
user shrinks the tokens they made. Tokens that belong to no user (the owner token written on first
start, and tokens it creates) act for the organisation with an owner's ceiling.
"""

from __future__ import annotations

from dataclasses import dataclass

ALL_SCOPES = ("read", "write", "ingest", "admin")
ROLES = ("owner", "admin", "member")
ROLE_SCOPES: dict[str, frozenset[str]] = {
    "owner": frozenset(ALL_SCOPES),
    "admin": frozenset(ALL_SCOPES),
    "member": frozenset({"read"}),
}
# A role may hand out (to a new user) only roles at or below its own.
ROLE_RANK = {"member": 0, "admin": 1, "owner": 2}
ORGANISATION_ROLE = "owner"  # what a token without a user acts as, bounded by its scopes

METHOD_TOKEN = "token"
METHOD_SESSION = "session"
METHOD_TRUSTED_HEADERS = "trusted_headers"
METHOD_CLI = "cli"  # ``logmail admin``: the operator at the command line (see services/operator.py)


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: always inside exactly one organisation."""

    organization_id: int
    organization_uuid: str
    user_id: int | None
    token_id: int | None
    scopes: frozenset[str]
    method: str = METHOD_TOKEN
    user_uuid: str | None = None
    role: str | None = None
    token_uuid: str | None = None
    session_id: int | None = None
    session_uuid: str | None = None
    is_platform_admin: bool = False
    client_ip: str = ""
    user_agent: str = ""
    expires_at: int | None = None  # of the credential, epoch ms; cached decisions are checked against it

    def can(self, scope: str) -> bool:
        return scope in self.scopes or "admin" in self.scopes

    @property
    def rate_key(self) -> str:
        """What the request rate limit counts: the user, or the token when no user is behind it."""
        if self.user_uuid is not None:
            return f"user:{self.user_uuid}"
        return f"token:{self.token_uuid or self.token_id}"

    @property
    def ceiling_role(self) -> str:
        """The role whose limits bound what this caller may create."""
        return self.role or ORGANISATION_ROLE


def scopes_for(role: str | None, token_scopes: frozenset[str] | None = None) -> frozenset[str]:
    """Effective scopes: the role's, narrowed to the token's when the call comes with a token."""
    ceiling = ROLE_SCOPES.get(role or ORGANISATION_ROLE, frozenset())
    return ceiling if token_scopes is None else ceiling & token_scopes
