"""`logmail admin`: every command through Typer's runner against a real database made from a config
file, in human and --json output, with its failure exit codes and confirmations."""

from __future__ import annotations

import json

import pytest
import typer
from sqlalchemy import select
from typer.testing import CliRunner

from conftest import claim_all, mariadb_database, stack_overrides, write_config
from logmail.cli.main import app
from logmail.config import load_settings
from logmail.errors import NotFoundError
from logmail.services.accept import Envelope
from logmail.services.container import build_services
from logmail.services.devices import Client
from logmail.services.tokens import TokenAuthenticator
from logmail.store.models import AuditEntry, MailAccount, Message, Organization, User, UserSession
from logmail.store.models_outbound import OutboundEmail

runner = CliRunner()
PASSWORD = "a long enough passphrase"


@pytest.fixture
def config(tmp_path):
    return write_config(tmp_path / "logmail.toml", {"data_dir": str(tmp_path / "data"), "mode": "platform",
                                                     "platform": {"default_tier": "free"}})


@pytest.fixture
def services(config):
    s = build_services(load_settings(config, environ={}))
    yield s
    s.close()


def admin(config, *args: str, input: str | None = None):
    return runner.invoke(app, ["admin", *args, "--config", str(config)], input=input)


def ok(result) -> dict | list | None:
    assert result.exit_code == 0, (result.stdout, result.stderr)
    return json.loads(result.stdout) if result.stdout.lstrip().startswith(("{", "[")) else None


def new_org(config, name: str = "Acme", owner: str = "alice@acme.example") -> dict:
    return ok(admin(config, "orgs", "create", name, "--owner", owner, "--password-stdin", "--json",
                    input=PASSWORD + "\n"))


def cli_entries(services, action: str) -> list[AuditEntry]:
    with services.db.read() as session:
        return list(session.execute(select(AuditEntry).where(AuditEntry.action == action)).scalars())


# -- help --------------------------------------------------------------------------------------------


def _commands(group, prefix: list[str]):
    for name, command in group.commands.items():
        if hasattr(command, "commands"):  # a group (Typer brings its own click)
            yield from _commands(command, prefix + [name])
        else:
            yield prefix + [name]


ADMIN_COMMANDS = list(_commands(typer.main.get_command(app).commands["admin"], ["admin"]))


def test_every_command_of_the_issue_is_there():
    names = {" ".join(c[1:]) for c in ADMIN_COMMANDS}
    assert names >= {
        "create-admin", "users list", "users show", "users delete", "orgs list", "orgs create", "orgs suspend",
        "orgs unsuspend", "orgs set-tier", "tiers list", "tiers set", "tokens create", "tokens list",
        "tokens revoke", "sessions revoke", "stats", "health", "outbound list", "outbound retry",
        "outbound process", "accounts list", "accounts sync", "rotate-keys", "db upgrade"}


@pytest.mark.parametrize("command", ADMIN_COMMANDS, ids=" ".join)
def test_every_command_has_help_with_an_example(command):
    result = runner.invoke(app, [*command, "--help"])
    assert result.exit_code == 0 and "Usage" in result.stdout
    assert "Example" in result.stdout, f"{' '.join(command)} --help shows no example"
    options = result.stdout
    listing = command[-1] in ("list", "show", "stats", "health") or command[-2:] == ["db", "upgrade"]
    assert "--json" in options or not listing


# -- create-admin and db upgrade -------------------------------------------------------------------------


def test_create_admin_from_stdin_or_a_prompt_never_an_argument(config, services):
    made = ok(admin(config, "create-admin", "ops@example.com", "--password-stdin", "--json", input=PASSWORD + "\n"))
    assert made["isPlatformAdmin"] and made["role"] == "owner"
    assert made["organisationId"] == services.boot.organization_uuid
    assert services.auth.login("ops@example.com", PASSWORD, Client()).user["isPlatformAdmin"]
    prompted = admin(config, "create-admin", "ops2@example.com", input=f"{PASSWORD}\n{PASSWORD}\n")
    assert prompted.exit_code == 0, prompted.stderr
    assert "Password" in prompted.stderr and PASSWORD not in prompted.stdout + prompted.stderr
    assert "ops2@example.com" in prompted.stdout and "platform admin" in prompted.stdout
    # There is no --password: secrets in arguments end up in the process list and shell history.
    assert admin(config, "create-admin", "x@example.com", "--password", PASSWORD).exit_code == 2
    short = admin(config, "create-admin", "x@example.com", "--password-stdin", input="short\n")
    assert short.exit_code == 1 and "at least" in short.stderr
    empty = admin(config, "create-admin", "x@example.com", "--password-stdin", input="")
    assert empty.exit_code == 1 and "no password" in empty.stderr
    taken = admin(config, "create-admin", "ops@example.com", "--password-stdin", input=PASSWORD + "\n")
    assert taken.exit_code == 1 and "already exists" in taken.stderr
    org = new_org(config)
    promoted = ok(admin(config, "create-admin", "alice@acme.example", "--existing", "--json"))
    assert promoted["isPlatformAdmin"] and promoted["organisationId"] == org["id"]
    (entry, *_) = cli_entries(services, "user.platform_admin_granted")
    assert entry.actor_user_uuid is None and entry.details["via"] == "cli" and "@" in entry.details["operator"]


def test_db_upgrade_on_a_fresh_database(tmp_path):
    stack = stack_overrides()
    if "database" in stack:  # the production stack hands out migrated copies; this wants an empty one
        stack["database"] = {"url": mariadb_database()}
    config = write_config(tmp_path / "fresh.toml", {"data_dir": str(tmp_path / "fresh")}, stack=stack)
    first = ok(admin(config, "db", "upgrade", "--json"))
    assert first["upgraded"] and first["from"] is None and first["to"] == first["head"]
    again = admin(config, "db", "upgrade")
    assert again.exit_code == 0 and f"already at {first['head']}" in again.stdout
    broken = write_config(tmp_path / "broken.toml", {"data_dir": str(tmp_path / "b"),
                                                     "database": {"url": "mysql+pymysql://nobody@127.0.0.1:1/x"}})
    failed = admin(broken, "db", "upgrade")
    assert failed.exit_code == 1 and failed.stderr.startswith("logmail: ")


# -- organisations and tiers -----------------------------------------------------------------------------


def test_organisations_create_list_show_suspend_and_set_tier(config, services):
    org = new_org(config)
    assert org["tier"] == "free" and org["owners"][0]["email"] == "alice@acme.example"
    listed = ok(admin(config, "orgs", "list", "--json"))
    assert org["id"] in [o["id"] for o in listed["organizations"]]
    assert listed["pagination"]["total"] == 2  # and the built-in one
    human = admin(config, "orgs", "list")
    assert human.exit_code == 0 and "Acme" in human.stdout and org["id"] in human.stdout
    assert "alice@acme.example" in admin(config, "orgs", "show", "Acme").stdout
    # A destructive command asks; "n" aborts and changes nothing.
    aborted = admin(config, "orgs", "suspend", "Acme", input="n\n")
    assert aborted.exit_code == 1 and "Aborted" in aborted.stderr
    assert ok(admin(config, "orgs", "show", org["id"], "--json"))["status"] == "active"
    asked = admin(config, "orgs", "suspend", "Acme", "--reason", "unpaid", input="y\n")
    assert asked.exit_code == 0 and "suspended" in asked.stdout
    assert services.policy.check_organization(_org_id(services, org["id"])).status == "5.7.1"
    again = admin(config, "orgs", "suspend", "Acme", "--yes")
    assert again.exit_code == 1 and "already suspended" in again.stderr
    assert ok(admin(config, "orgs", "unsuspend", "Acme", "--json"))["status"] == "active"
    assert ok(admin(config, "orgs", "set-tier", "Acme", "pro", "--json"))["tier"] == "pro"
    bad = admin(config, "orgs", "set-tier", "Acme", "nope")
    assert bad.exit_code == 1 and "no tier called 'nope'" in bad.stderr
    missing = admin(config, "orgs", "show", "Globex")
    assert missing.exit_code == 1 and missing.stderr == "logmail: no organisation has the id or name 'Globex'\n"
    builtin = admin(config, "orgs", "suspend", services.boot.organization_uuid, "--yes")
    assert builtin.exit_code == 1 and "built-in" in builtin.stderr
    (entry,) = cli_entries(services, "organization.suspended")
    assert entry.organization_id == _org_id(services, org["id"]) and entry.details["reason"] == "unpaid"
    assert entry.details["via"] == "cli" and entry.actor_user_uuid is None


def _org_id(services, uuid: str) -> int:
    with services.db.read() as session:
        return session.execute(select(Organization.id).where(Organization.uuid == uuid)).scalar_one()


def test_tiers_list_and_set(config, services):
    tiers = ok(admin(config, "tiers", "list", "--json"))["tiers"]
    assert {"unlimited", "free", "pro"} <= {t["name"] for t in tiers}
    assert "emailsPerMonth" in admin(config, "tiers", "list").stdout
    made = ok(admin(config, "tiers", "set", "team", "--display-name", "Team", "--limit", "emailsPerMonth=500",
                    "--feature", "api=on", "--json"))
    assert made["limits"]["emailsPerMonth"] == 500 and made["features"]["api"] and made["displayName"] == "Team"
    changed = ok(admin(config, "tiers", "set", "team", "--limit", "emailsPerMonth=none", "--json"))
    assert changed["limits"]["emailsPerMonth"] is None and changed["features"]["api"]  # the rest stays
    assert admin(config, "tiers", "set", "team", "--limit", "emailsPerMonth").exit_code == 2
    assert admin(config, "tiers", "set", "team", "--feature", "api=maybe").exit_code == 2
    unknown = admin(config, "tiers", "set", "team", "--limit", "bogus=1")
    assert unknown.exit_code == 1 and "not a limit" in unknown.stderr
    assert [e.details["tier"] for e in cli_entries(services, "tier.created")] == ["team"]


# -- users and sessions -------------------------------------------------------------------------------


def _add_user(services, org_uuid: str, email: str, role: str = "member") -> str:
    from logmail.services.operator import operator_in

    return services.users.create(operator_in(services.db, org_uuid), email, PASSWORD, role)["id"]


def test_users_list_show_and_unknown_users(config, services):
    org = new_org(config)
    _add_user(services, org["id"], "bob@acme.example")
    listed = ok(admin(config, "users", "list", "--email", "acme", "--json"))
    assert [u["email"] for u in listed["users"]] == ["alice@acme.example", "bob@acme.example"]
    assert "bob@acme.example" in admin(config, "users", "list", "--org", "Acme").stdout
    shown = ok(admin(config, "users", "show", "bob@acme.example", "--json"))
    assert shown["role"] == "member" and shown["activeSessions"] == 0
    missing = admin(config, "users", "show", "nobody@acme.example")
    assert missing.exit_code == 1 and "no user has the id or email" in missing.stderr and not missing.stdout
    assert admin(config, "users", "delete", "nobody@acme.example", "--yes").exit_code == 1


def test_deleting_users_revokes_first_and_never_orphans(config, services):
    org = new_org(config)
    bob = _add_user(services, org["id"], "bob@acme.example", "admin")
    login = services.auth.login("bob@acme.example", PASSWORD, Client())
    assert services.auth.sessions.live(login.tokens.session_uuid) is not None
    refused = admin(config, "users", "delete", "alice@acme.example", "--yes")
    assert refused.exit_code == 1 and "last owner" in refused.stderr
    assert admin(config, "users", "delete", "bob@acme.example", input="n\n").exit_code == 1
    gone = ok(admin(config, "users", "delete", "bob@acme.example", "--yes", "--json"))
    assert gone == {"id": bob, "organization": {"id": org["id"], "action": "kept"}}
    with services.db.read() as session:
        assert session.execute(select(User).where(User.uuid == bob)).first() is None
    carol = _add_user(services, org["id"], "carol@acme.example")
    moved = admin(config, "users", "delete", "alice@acme.example", "--transfer-to", "carol@acme.example", "--yes")
    assert moved.exit_code == 0 and "carol@acme.example now owns Acme" in moved.stdout
    assert ok(admin(config, "users", "show", carol, "--json"))["role"] == "owner"


def test_deleting_the_last_owner_with_the_organisation(config, services):
    org = new_org(config)
    org_id = _org_id(services, org["id"])
    raws = [f"Subject: m{n}\r\n\r\nbody {n}\r\n".encode() for n in range(3)]
    services.acceptor.accept_many([(r, Envelope("a@x.example", ["a@acme.example"], routes={org_id: ["a@acme.example"]}))
                                   for r in raws])
    jobs = claim_all(services, 3)
    services.ingest.store(jobs)
    services.queue.ack(jobs)
    with services.db.read() as session:
        keys = list(session.execute(select(Message.raw_key).where(Message.organization_id == org_id)).scalars())
    assert len(keys) == 3
    out = ok(admin(config, "users", "delete", "alice@acme.example", "--delete-organization", "--yes", "--json"))
    assert out["organization"]["action"] == "deleted" and out["organization"]["messagesDeleted"] == 3
    for key in keys:
        with pytest.raises(NotFoundError):
            services.content.get(key)
    with services.db.read() as session:
        assert session.get(Organization, org_id) is None
    (entry,) = cli_entries(services, "organization.deleted")
    assert entry.organization_id == services.boot.organization_id and entry.details["via"] == "cli"


def test_sessions_revoke_one_user_an_organisation_or_everyone(config, services):
    org = new_org(config)
    _add_user(services, org["id"], "bob@acme.example")
    sessions = {email: services.auth.login(email, PASSWORD, Client()).tokens.session_uuid
                for email in ("alice@acme.example", "bob@acme.example")}

    def live() -> set[str]:
        with services.db.read() as session:
            return set(session.execute(select(UserSession.uuid).where(UserSession.revoked_at.is_(None))).scalars())

    assert admin(config, "sessions", "revoke", "--user", "bob@acme.example", "--all").exit_code == 2
    assert admin(config, "sessions", "revoke").exit_code == 2
    assert ok(admin(config, "sessions", "revoke", "--user", "bob@acme.example", "--yes", "--json")) == {
        "revoked": 1, "userId": ok(admin(config, "users", "show", "bob@acme.example", "--json"))["id"]}
    assert live() == {sessions["alice@acme.example"]}
    services.auth.login("bob@acme.example", PASSWORD, Client())
    assert ok(admin(config, "sessions", "revoke", "--org", "Acme", "--yes", "--json"))["revoked"] == 2
    assert live() == set()
    services.auth.login("bob@acme.example", PASSWORD, Client())
    aborted = admin(config, "sessions", "revoke", "--all", input="n\n")
    assert aborted.exit_code == 1 and len(live()) == 1
    done = admin(config, "sessions", "revoke", "--all", input="y\n")
    assert done.exit_code == 0 and "1 session(s) ended" in done.stdout and live() == set()


# -- tokens -------------------------------------------------------------------------------------------


def test_tokens_create_list_and_revoke(config, services):
    new_org(config)
    bob = _add_user(services, _uuid_of(services, "Acme"), "bob@acme.example")
    made = ok(admin(config, "tokens", "create", "ci", "--org", "Acme", "--scopes", "ingest,read", "--json"))
    assert made["token"].startswith("lm_") and made["scopes"] == ["read", "ingest"] and made["createdBy"] is None
    found = TokenAuthenticator(services.db).authenticate(made["token"])
    assert found is not None and found.organization_uuid == made["organizationId"]
    human = admin(config, "tokens", "create", "human", "--org", "Acme")
    assert human.exit_code == 0 and human.stdout.strip().startswith("lm_") and "only once" in human.stderr
    # A user's token is bounded by their role, as through the API.
    beyond = admin(config, "tokens", "create", "x", "--user", "bob@acme.example", "--scopes", "admin")
    assert beyond.exit_code == 1 and "more power than its creator" in beyond.stderr
    theirs = ok(admin(config, "tokens", "create", "x", "--user", "bob@acme.example", "--expires-in-days", "7",
                      "--json"))
    assert theirs["createdBy"] == bob and theirs["expiresAt"] > made["createdAt"]
    listed = ok(admin(config, "tokens", "list", "--org", "Acme", "--json"))
    assert {t["name"] for t in listed["tokens"]} == {"ci", "human", "x"}
    assert all("token" not in t for t in listed["tokens"])  # values are shown once, at creation
    assert ok(admin(config, "tokens", "revoke", made["id"], "--yes", "--json"))["revoked"]
    assert TokenAuthenticator(services.db).authenticate(made["token"]) is None
    again = admin(config, "tokens", "revoke", made["id"], "--yes")
    assert again.exit_code == 1 and "not found" in again.stderr
    (entry, *_) = cli_entries(services, "token.created")
    assert entry.details["via"] == "cli"


def _uuid_of(services, name: str) -> str:
    with services.db.read() as session:
        return session.execute(select(Organization.uuid).where(Organization.name == name)).scalar_one()


# -- numbers, health, outbound and mailbox accounts ----------------------------------------------------------


def test_stats_and_health(config, services):
    new_org(config)
    stats = ok(admin(config, "stats", "--json"))
    assert stats["users"]["total"] == 1 and stats["organizations"]["total"] == 2
    assert stats["messages"] == 0 and stats["queueDepth"] == 0
    human = admin(config, "stats")
    assert human.exit_code == 0 and "organisations" in human.stdout
    health = admin(config, "health", "--json")
    report = json.loads(health.stdout)
    assert {"database", "content", "queue"} <= {s["service"] for s in report["services"]}
    assert health.exit_code == {"healthy": 0, "degraded": 1, "down": 2}[report["status"]]
    assert "database" in admin(config, "health").stdout


def test_outbound_list_retry_and_process(config, services):
    now = services.auth.now()
    with services.db.write() as session:
        mail = OutboundEmail(kind="notification", recipient="a@x.example", subject="hello", text_body="hi",
                             message_id="<m@x>", status="failed", attempts=5, expires_at=now, last_error="550 no")
        session.add(mail)
        session.flush()
        mail_id = mail.uuid
    listed = ok(admin(config, "outbound", "list", "--status", "failed", "--json"))
    assert [e["id"] for e in listed["emails"]] == [mail_id]
    assert "a@x.example" in admin(config, "outbound", "list").stdout
    assert admin(config, "outbound", "list", "--status", "lost").exit_code == 2
    retried = ok(admin(config, "outbound", "retry", mail_id, "--json"))
    assert retried["status"] == "queued" and retried["attemptCount"] == 0
    assert admin(config, "outbound", "retry", "00000000-0000-4000-8000-000000000000").exit_code == 1
    processed = ok(admin(config, "outbound", "process", "--json"))
    assert processed["configured"] is False and set(processed["processed"]) >= {"sent", "failed"}
    assert cli_entries(services, "email.retried") and cli_entries(services, "emails.processed")


def test_accounts_list_and_sync(config, services):
    with services.db.write() as session:
        account = MailAccount(organization_id=services.boot.organization_id, user_id=None, account_name="box",
                              email_address="box@x.example", protocol="imap", hostname="127.0.0.1", port=1,
                              encryption="none", username="box", password_encrypted="", next_sync_at=10**15)
        session.add(account)
        session.flush()
        account.password_encrypted = services.vault.encrypt(account.uuid, "secret")
        uuid, account_id = account.uuid, account.id
    listed = ok(admin(config, "accounts", "list", "--json"))
    assert [a["id"] for a in listed["accounts"]] == [uuid]
    assert "password" not in json.dumps(listed).lower()
    assert "box@x.example" in admin(config, "accounts", "list").stdout
    later = ok(admin(config, "accounts", "sync", uuid, "--later", "--json"))
    assert later["results"][0]["status"] == "requested"
    with services.db.read() as session:
        assert session.get(MailAccount, account_id).next_sync_at == 0
    failed = admin(config, "accounts", "sync", "--all", "--json")  # nothing listens on port 1
    assert failed.exit_code == 1 and json.loads(failed.stdout)["results"][0]["status"] == "error"
    assert admin(config, "accounts", "sync").exit_code == 2
    unknown = admin(config, "accounts", "sync", "00000000-0000-4000-8000-000000000000")
    assert unknown.exit_code == 1 and "no mailbox account" in unknown.stderr
