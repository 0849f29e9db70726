"""``logmail admin orgs`` and ``logmail admin tiers``: organisations and what their tiers allow."""

from __future__ import annotations

from typing import Annotated, Any, Optional

import typer

from logmail.cli.admin_common import (
    JsonOption,
    LimitOption,
    OffsetOption,
    PasswordStdinOption,
    YesOption,
    admin_services,
    confirm,
    listing,
    operator,
    page_caption,
    print_json,
    read_password,
    show_fields,
    show_table,
    size,
    when,
)
from logmail.cli.common import ConfigOption, fail

orgs_app = typer.Typer(help="Organisations: list, create, suspend, change tier.", no_args_is_help=True)
tiers_app = typer.Typer(help="Tiers: limits and features, as data.", no_args_is_help=True)

OrgArgument = Annotated[str, typer.Argument(help="The organisation's id, or its name if no other has it.")]


def _org_row(o: dict[str, Any]) -> list[Any]:
    return [o["id"], o["name"], o["status"], o["tier"], o.get("userCount"), o["messageCount"],
            size(o["storageBytes"]), when(o["createdAt"])]


def _print_org(o: dict[str, Any], as_json: bool, done: str) -> None:
    if as_json:
        print_json(o)
    else:
        typer.echo(f"{o['name']} ({o['id']}) {done}: {o['status']}, tier {o['tier']}")


@orgs_app.command("list")
def list_orgs(config: ConfigOption = None,
              search: Annotated[Optional[str], typer.Option(help="Only names containing this.")] = None,
              status: Annotated[Optional[str], typer.Option(help="active or suspended.")] = None,
              tier: Annotated[Optional[str], typer.Option(help="Only organisations on this tier.")] = None,
              limit: LimitOption = 50, offset: OffsetOption = 0, as_json: JsonOption = False) -> None:
    """List organisations, oldest first.

    Example: logmail admin orgs list --status suspended --json
    """
    if status not in (None, "active", "suspended"):
        fail("--status must be active or suspended", 2)
    with admin_services(config) as services:
        items, total = services.admin.organizations.list(operator(services), search=search, status=status,
                                                         tier=tier, limit=limit, offset=offset)
    data = listing("organizations", items, total, limit, offset)
    if as_json:
        print_json(data)
        return
    show_table("organisations", ["id", "name", "status", "tier", "users", "messages", "storage", "created (UTC)"],
               [_org_row(o) for o in items], empty="no organisations",
               caption=page_caption(data["pagination"], len(items)))


@orgs_app.command("show")
def show_org(org: OrgArgument, config: ConfigOption = None, as_json: JsonOption = False) -> None:
    """Show one organisation with its owners.

    Example: logmail admin orgs show Acme
    """
    with admin_services(config) as services:
        who = operator(services)
        data = services.admin.organizations.get(who, services.admin.organizations.find(who, org))
    if as_json:
        print_json(data)
        return
    show_fields(data["name"], [
        ("id", data["id"]), ("status", data["status"]), ("suspended", when(data["suspendedAt"])),
        ("reason", data["suspendedReason"]), ("tier", data["tier"]), ("users", data["userCount"]),
        ("owners", ", ".join(o["email"] for o in data["owners"]) or "-"), ("addresses", data["addressCount"]),
        ("API tokens", data["apiTokenCount"]), ("messages", data["messageCount"]),
        ("storage", size(data["storageBytes"])), ("created", when(data["createdAt"])),
    ])


@orgs_app.command("create")
def create_org(name: Annotated[str, typer.Argument(help="The organisation's name.")],
               owner: Annotated[str, typer.Option("--owner", help="Email of its first owner, a new user.")],
               config: ConfigOption = None,
               tier: Annotated[Optional[str], typer.Option(help="Its tier (default: platform.default_tier in "
                                                                "platform mode, unlimited in local mode).")] = None,
               password_stdin: PasswordStdinOption = False, as_json: JsonOption = False) -> None:
    """Create an organisation with its first owner (asked for the owner's password).

    Examples:
      logmail admin orgs create "Acme" --owner alice@acme.example --tier pro
      printf '%s\\n' "$PASSWORD" | logmail admin orgs create Acme --owner alice@acme.example --password-stdin
    """
    with admin_services(config) as services:
        password = read_password(password_stdin, prompt=f"Password for {owner}")
        data = services.admin.organizations.create(operator(services), name, owner_email=owner,
                                                   owner_password=password, tier=tier)
    _print_org(data, as_json, "created")


@orgs_app.command("suspend")
def suspend(org: OrgArgument, config: ConfigOption = None,
            reason: Annotated[Optional[str], typer.Option(help="Why (kept with the organisation).")] = None,
            yes: YesOption = False, as_json: JsonOption = False) -> None:
    """Suspend an organisation: its mail is refused (550 5.7.1) and its logins, sessions and API tokens stop
    working, at once. Nothing is deleted; unsuspend gives everything back.

    Example: logmail admin orgs suspend Acme --reason "unpaid invoice" --yes
    """
    with admin_services(config) as services:
        who = operator(services)
        org_uuid = services.admin.organizations.find(who, org)
        confirm(f"Suspend {org}? Its mail is refused and nobody of it can sign in until it is unsuspended.", yes)
        data = services.admin.organizations.suspend(who, org_uuid, reason)
    _print_org(data, as_json, "suspended")


@orgs_app.command("unsuspend")
def unsuspend(org: OrgArgument, config: ConfigOption = None, as_json: JsonOption = False) -> None:
    """Give a suspended organisation its mail, logins, sessions and tokens back.

    Example: logmail admin orgs unsuspend Acme
    """
    with admin_services(config) as services:
        who = operator(services)
        data = services.admin.organizations.unsuspend(who, services.admin.organizations.find(who, org))
    _print_org(data, as_json, "unsuspended")


@orgs_app.command("set-tier")
def set_tier(org: OrgArgument, tier: Annotated[str, typer.Argument(help="The tier's name.")],
             config: ConfigOption = None, as_json: JsonOption = False) -> None:
    """Move an organisation to another tier; its limits apply at once.

    Example: logmail admin orgs set-tier Acme pro
    """
    with admin_services(config) as services:
        who = operator(services)
        data = services.admin.organizations.set_tier(who, services.admin.organizations.find(who, org), tier)
    _print_org(data, as_json, "moved")


# -- tiers -----------------------------------------------------------------------------------------


@tiers_app.command("list")
def list_tiers(config: ConfigOption = None, as_json: JsonOption = False) -> None:
    """List the tiers with their limits (- means no limit) and features.

    Example: logmail admin tiers list --json
    """
    with admin_services(config) as services:
        tiers = [t.to_json() for t in services.tiers.all()]
    if as_json:
        print_json({"tiers": tiers})
        return
    from logmail.services.tiers import LIMITS

    show_table("tiers", ["name", "display name", *LIMITS, "features"],
               [[t["name"], t["displayName"], *(t["limits"][k] for k in LIMITS),
                 ", ".join(f for f, on in t["features"].items() if on) or "-"] for t in tiers], empty="no tiers")


@tiers_app.command("set")
def set_tier_limits(
    name: Annotated[str, typer.Argument(help="The tier's name; created when it does not exist.")],
    config: ConfigOption = None,
    display_name: Annotated[Optional[str], typer.Option("--display-name", help="Its name for people.")] = None,
    limit: Annotated[Optional[list[str]], typer.Option(
        "--limit", help="LIMIT=N, or LIMIT=none for no limit; repeatable. Limits: maxAddresses, emailsPerMonth, "
                        "emailsPerMinute, storageBytes, retentionDays, maxMessageSize, apiRequestsPerMinute.")] = None,
    feature: Annotated[Optional[list[str]], typer.Option(
        "--feature", help="FEATURE=on|off; repeatable. Features: api, webhooks, imapAccounts, "
                          "prioritySupport.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Create a tier, or change some of its limits and features (the others stay as they are).

    Examples:
      logmail admin tiers set team --display-name Team --limit emailsPerMonth=50000 --feature api=on
      logmail admin tiers set free --limit retentionDays=none
    """
    body: dict[str, Any] = {}
    if display_name is not None:
        body["displayName"] = display_name
    if limit:
        body["limits"] = {key: _number(key, value) for key, value in (_pair(item, "--limit") for item in limit)}
    if feature:
        body["features"] = {key: _switch(key, value) for key, value in (_pair(item, "--feature") for item in feature)}
    with admin_services(config) as services:
        who = operator(services)
        exists = any(t.name == name for t in services.tiers.all())
        if exists:
            tier = services.admin.organizations.update_tier(who, name, body)
        else:
            tier = services.admin.organizations.create_tier(who, {"name": name, **body})
    if as_json:
        print_json(tier.to_json())
    else:
        typer.echo(f"tier {tier.name} {'changed' if exists else 'created'}")


def _pair(item: str, option: str) -> tuple[str, str]:
    key, sep, value = item.partition("=")
    if not sep or not key:
        fail(f"{option} takes NAME=VALUE, not {item!r}", 2)
    return key.strip(), value.strip()


def _number(key: str, value: str) -> int | None | str:
    if value.lower() in ("none", "null", "unlimited", ""):
        return None
    try:
        return int(value)
    except ValueError:
        fail(f"--limit {key} must be a whole number or none, not {value!r}", 2)


def _switch(key: str, value: str) -> bool:
    switches = {"on": True, "true": True, "yes": True, "off": False, "false": False, "no": False}
    if value.lower() not in switches:
        fail(f"--feature {key} must be on or off, not {value!r}", 2)
    return switches[value.lower()]
