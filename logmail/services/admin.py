"""Platform administration: what the ``/admin`` API and ``logmail admin`` both call.

Every method takes the :class:`Principal` acting and refuses anyone without the platform-admin flag,
so the rule holds whichever front end asks. The command line acts as the operator
(:mod:`logmail.services.operator`).
"""

from __future__ import annotations

from dataclasses import dataclass

from logmail.services.admin_accounts import AccountAdmin
from logmail.services.admin_orgs import OrganizationAdmin
from logmail.services.admin_sessions import SessionAdmin
from logmail.services.admin_stats import PlatformStats
from logmail.services.admin_users import UserAdmin


@dataclass(frozen=True)
class PlatformAdmin:
    users: UserAdmin
    organizations: OrganizationAdmin
    sessions: SessionAdmin
    stats: PlatformStats
    accounts: AccountAdmin


def build_admin(services) -> PlatformAdmin:
    """Wire the administration services from the container's (``Services.admin``)."""
    auth = services.auth
    sessions = SessionAdmin(services.db, auth.sessions, services.tokens, services.cache, auth.audit, auth.events,
                            auth.now)
    organizations = OrganizationAdmin(services.db, services.content, services.tiers, services.policy,
                                      auth.passwords, auth.audit, sessions, auth.now,
                                      default_tier=services.users.new_organisation_tier)
    users = UserAdmin(services.db, auth.passwords, auth.audit, sessions, organizations, auth.now,
                      home_organization_id=services.boot.organization_id)
    stats = PlatformStats(services.db, services.queue, auth.now,
                          idle_limit_days=services.settings.auth.session_idle_limit_days)
    return PlatformAdmin(users, organizations, sessions, stats, AccountAdmin(services.db))
