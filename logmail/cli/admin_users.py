"""``logmail admin users`` and ``logmail admin sessions``: people of every organisation."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from logmail.cli.admin_common import (
    JsonOption,
    LimitOption,
    OffsetOption,
    YesOption,
    admin_services,
    confirm,
    listing,
    operator,
    page_caption,
    print_json,
    progress,
    show_fields,
    show_table,
    when,
)
from logmail.cli.common import ConfigOption, fail

users_app = typer.Typer(help="Users of every organisation.", no_args_is_help=True)
sessions_app = typer.Typer(help="Login sessions.", no_args_is_help=True)

UserArgument = Annotated[str, typer.Argument(help="The user's id or email address.")]


@users_app.command("list")
def list_users(config: ConfigOption = None,
               email: Annotated[Optional[str], typer.Option(help="Only emails containing this.")] = None,
               org: Annotated[Optional[str], typer.Option(
                   "--org", help="Only this organisation's (id or name).")] = None,
               limit: LimitOption = 50, offset: OffsetOption = 0, as_json: JsonOption = False) -> None:
    """List users of every organisation, oldest first.

    Example: logmail admin users list --email @example.com --json
    """
    with admin_services(config) as services:
        who = operator(services)
        org_uuid = services.admin.organizations.find(who, org) if org else None
        items, total = services.admin.users.list(who, email=email, organization_uuid=org_uuid, limit=limit,
                                                 offset=offset)
    data = listing("users", items, total, limit, offset)
    if as_json:
        print_json(data)
        return
    show_table("users", ["id", "email", "role", "organisation", "platform admin", "created (UTC)"],
               [[u["id"], u["email"], u["role"], u["organisationName"], u["isPlatformAdmin"], when(u["createdAt"])]
                for u in items], empty="no users", caption=page_caption(data["pagination"], len(items)))


@users_app.command("show")
def show_user(user: UserArgument, config: ConfigOption = None, as_json: JsonOption = False) -> None:
    """Show one user, with their sessions, API tokens and mailbox accounts counted.

    Example: logmail admin users show alice@example.com
    """
    with admin_services(config) as services:
        who = operator(services)
        data = services.admin.users.get(who, services.admin.users.find(who, user))
    if as_json:
        print_json(data)
        return
    show_fields(data["email"], [
        ("id", data["id"]), ("role", data["role"]), ("organisation", f"{data['organisationName']} "
                                                                     f"({data['organisationId']}, "
                                                                     f"{data['organisationStatus']})"),
        ("platform admin", data["isPlatformAdmin"]), ("created", when(data["createdAt"])),
        ("last login", when(data["lastLoginAt"])), ("active sessions", data["activeSessions"]),
        ("API tokens", data["apiTokens"]), ("mailbox accounts", data["mailboxAccounts"]),
    ])


@users_app.command("delete")
def delete_user(user: UserArgument, config: ConfigOption = None,
                transfer_to: Annotated[Optional[str], typer.Option(
                    "--transfer-to", help="Last owner only: another user of the organisation (id or email) "
                                          "who becomes its owner.")] = None,
                delete_organization: Annotated[bool, typer.Option(
                    "--delete-organization", help="Last owner only: delete the organisation too, with all its "
                                                  "mail and content.")] = False,
                yes: YesOption = False, as_json: JsonOption = False) -> None:
    """Delete a user; their sessions and API tokens are revoked first.

    The last owner of an organisation is deleted only with --transfer-to or --delete-organization:
    an organisation is never left without an owner.

    Examples:
      logmail admin users delete bob@example.com
      logmail admin users delete alice@example.com --transfer-to carol@example.com --yes
      logmail admin users delete alice@example.com --delete-organization
    """
    with admin_services(config) as services:
        who = operator(services)
        users = services.admin.users
        target = users.get(who, users.find(who, user))
        heir = users.find(who, transfer_to) if transfer_to else None
        if delete_organization:
            org = services.admin.organizations.get(who, target["organisationId"])
            confirm(f"Delete {target['email']} AND the organisation {org['name']} with its {org['messageCount']} "
                    f"message(s) and {org['userCount']} user(s)? This cannot be undone.", yes)
            with progress("deleting mail", total=org["messageCount"], disable=as_json) as advance:
                out = users.delete(who, target["id"], organization="delete", progress=advance)
        else:
            confirm(f"Delete {target['email']} of {target['organisationName']}? Their sessions and API tokens "
                    "stop working at once.", yes)
            out = users.delete(who, target["id"], transfer_to=heir)
    if as_json:
        print_json(out)
        return
    action = out["organization"]["action"]
    typer.echo(f"deleted {target['email']}" + {
        "kept": "",
        "transferred": f"; {transfer_to} now owns {target['organisationName']}",
        "deleted": f" and the organisation {target['organisationName']} "
                   f"({out['organization'].get('messagesDeleted', 0)} message(s))"}[action])


@sessions_app.command("revoke")
def revoke(config: ConfigOption = None,
           user: Annotated[Optional[str], typer.Option(
               "--user", help="End this user's sessions (id or email).")] = None,
           org: Annotated[Optional[str], typer.Option("--org", help="End every session of this organisation "
                                                                    "(id or name).")] = None,
           everyone: Annotated[bool, typer.Option("--all", help="Emergency: end every session of every "
                                                                "user.")] = False,
           yes: YesOption = False, as_json: JsonOption = False) -> None:
    """End login sessions at once: one user's, one organisation's, or everyone's. API tokens keep working.

    Examples:
      logmail admin sessions revoke --user alice@example.com
      logmail admin sessions revoke --all --yes
    """
    if sum((user is not None, org is not None, everyone)) != 1:
        fail("give exactly one of --user, --org and --all", 2)
    with admin_services(config) as services:
        who = operator(services)
        admin = services.admin
        if everyone:
            confirm("End every session of every user? Everyone must log in again.", yes)
            out = admin.sessions.revoke_all(who)
        elif user is not None:
            user_uuid = admin.users.find(who, user)
            confirm(f"End every session of {user}?", yes)
            out = admin.sessions.revoke_user(who, user_uuid)
        else:
            org_uuid = admin.organizations.find(who, org)
            confirm(f"End every session of the organisation {org}?", yes)
            out = admin.sessions.revoke_organization(who, org_uuid)
    if as_json:
        print_json(out)
    else:
        typer.echo(f"{out['revoked']} session(s) ended")
