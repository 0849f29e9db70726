"""``logmail admin tokens``: API tokens of any organisation, through the same rules as ``/tokens``."""

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
    show_table,
    when,
)
from logmail.cli.common import ConfigOption, fail, stderr

app = typer.Typer(help="API tokens: create, list, revoke.", no_args_is_help=True)

DAY_MS = 86_400_000
OrgOption = Annotated[Optional[str], typer.Option("--org", help="The organisation (id or name; default: the "
                                                                "built-in one).")]


def _org_uuid(services, who, org: str | None) -> str:
    return services.admin.organizations.find(who, org) if org else services.boot.organization_uuid


@app.command("create")
def create(name: Annotated[str, typer.Argument(help="What the token is for, shown in listings.")],
           config: ConfigOption = None, org: OrgOption = None,
           user: Annotated[Optional[str], typer.Option(
               "--user", help="Make it the token of this user (id or email), bounded by their role; by default "
                              "it belongs to no user and acts for the organisation.")] = None,
           scopes: Annotated[str, typer.Option(help="Comma-separated: read, write, ingest, admin.")] = "read",
           expires_in_days: Annotated[Optional[int], typer.Option(
               "--expires-in-days", min=1, help="Expire after this many days (default: never).")] = None,
           as_json: JsonOption = False) -> None:
    """Create an API token; its value is printed once and stored only as a hash.

    Examples:
      logmail admin tokens create ci --org Acme --scopes ingest
      logmail admin tokens create backup --user alice@acme.example --scopes read --expires-in-days 30 --json
    """
    from logmail.services.operator import operator_as, operator_in

    wanted = [s.strip() for s in scopes.split(",") if s.strip()]
    with admin_services(config) as services:
        who = operator(services)
        if user is not None:
            if org is not None:
                fail("give --user or --org, not both: a user's token is in their organisation", 2)
            acting = operator_as(services.db, services.admin.users.find(who, user))
        else:
            acting = operator_in(services.db, _org_uuid(services, who, org))
        expires = services.auth.now() + expires_in_days * DAY_MS if expires_in_days else None
        out = services.api_tokens.create(acting, name, wanted, expires)
    if as_json:
        print_json({**out, "organizationId": acting.organization_uuid})
        return
    typer.echo(out["token"])
    stderr(f"logmail: token {out['id']} ({', '.join(out['scopes'])}) created; its value above is shown only once")


@app.command("list")
def list_tokens(config: ConfigOption = None, org: OrgOption = None, limit: LimitOption = 50,
                offset: OffsetOption = 0, as_json: JsonOption = False) -> None:
    """List an organisation's live API tokens (prefixes only, never values), newest first.

    Example: logmail admin tokens list --org Acme
    """
    from logmail.services.operator import operator_in

    with admin_services(config) as services:
        acting = operator_in(services.db, _org_uuid(services, operator(services), org))
        items, total = services.api_tokens.list(acting, limit=limit, offset=offset)
    data = listing("tokens", items, total, limit, offset)
    if as_json:
        print_json(data)
        return
    show_table("API tokens", ["id", "name", "prefix", "scopes", "user", "created (UTC)", "expires", "last used"],
               [[t["id"], t["name"], t["prefix"], ",".join(t["scopes"]), t["createdBy"], when(t["createdAt"]),
                 when(t["expiresAt"]), when(t["lastUsedAt"])] for t in items], empty="no tokens",
               caption=page_caption(data["pagination"], len(items)))


@app.command("revoke")
def revoke(token: Annotated[str, typer.Argument(help="The token's id (from tokens list).")],
           config: ConfigOption = None, yes: YesOption = False, as_json: JsonOption = False) -> None:
    """Revoke an API token; it stops working at once.

    Example: logmail admin tokens revoke 1b4e28ba-2fa1-11d2-883f-0016d3cca427 --yes
    """
    from logmail.services.operator import operator_in, token_organization

    with admin_services(config) as services:
        acting = operator_in(services.db, token_organization(services.db, token))
        confirm(f"Revoke the token {token}? Whatever uses it stops working at once.", yes)
        services.api_tokens.revoke(acting, token.lower())
    if as_json:
        print_json({"id": token.lower(), "revoked": True})
    else:
        typer.echo(f"token {token.lower()} revoked")
