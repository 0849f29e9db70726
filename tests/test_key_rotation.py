"""`logmail admin rotate-keys`: every stored mailbox password moves to a new key, readers keep working
throughout, and the old keys are retired only when nothing needs them."""

from __future__ import annotations

import json

from sqlalchemy import select
from typer.testing import CliRunner

from conftest import stack_overrides, write_config
from logmail.cli.main import app
from logmail.config import load_settings
from logmail.services.container import build_services
from logmail.services.credentials import CredentialVault, key_id
from logmail.store.models import MailAccount

runner = CliRunner()


def add_accounts(services, passwords: list[str]) -> list[str]:
    uuids = []
    with services.db.write() as session:
        for n, password in enumerate(passwords):
            account = MailAccount(organization_id=services.boot.organization_id, user_id=None,
                                  account_name=f"a{n}", email_address=f"a{n}@x.example", protocol="imap",
                                  hostname="imap.x.example", port=993, encryption="tls", username=f"a{n}",
                                  password_encrypted="")
            session.add(account)
            session.flush()
            account.password_encrypted = services.vault.encrypt(account.uuid, password)
            uuids.append(account.uuid)
    return uuids


def stored(services) -> dict[str, str]:
    with services.db.read() as session:
        return {a.uuid: a.password_encrypted for a in session.execute(select(MailAccount)).scalars()}


def test_rotate_keys_reencrypts_everything_and_retires_the_old_key(tmp_path):
    cfg = write_config(tmp_path / "logmail.toml", {"data_dir": str(tmp_path / "data")})
    services = build_services(load_settings(cfg, environ={}))
    passwords = [f"pw-{n}-ü" for n in range(250)]  # more than one batch
    uuids = add_accounts(services, passwords)
    old_id = services.vault.primary_id
    # A daemon that read the key ring before the rotation and keeps running through it.
    running = CredentialVault(key_file=services.settings.data_path / "credentials.keys")

    result = runner.invoke(app, ["admin", "rotate-keys", "--json", "--config", str(cfg)])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["reencrypted"] == 250 and report["unreadable"] == [] and report["retired_key_ids"] == [old_id]
    now = stored(services)
    assert {v.split(":")[1] for v in now.values()} == {report["new_key_id"]} != {old_id}
    ring = json.loads((services.settings.data_path / "credentials.keys").read_text())["keys"]
    assert len(ring) == 1
    # The running daemon meets a key id it does not know, re-reads the file, and decrypts.
    assert [running.decrypt(u, now[u]) for u in uuids] == passwords
    again = runner.invoke(app, ["admin", "rotate-keys", "--json", "--config", str(cfg)])
    assert json.loads(again.output)["reencrypted"] == 250
    services.close()


def test_unreadable_passwords_keep_the_old_keys_and_fail_the_command(tmp_path):
    cfg = write_config(tmp_path / "logmail.toml", {"data_dir": str(tmp_path / "data")})
    services = build_services(load_settings(cfg, environ={}))
    (good, bad) = add_accounts(services, ["fine", "lost"])
    with services.db.write() as session:  # as if encrypted under a key nobody has any more
        row = session.execute(select(MailAccount).where(MailAccount.uuid == bad)).scalar_one()
        row.password_encrypted = "v1:000000000000:" + row.password_encrypted.split(":", 2)[2]
    result = runner.invoke(app, ["admin", "rotate-keys", "--config", str(cfg)])
    assert result.exit_code == 2 and bad in result.output and "enter it again" in result.output
    ring = json.loads((services.settings.data_path / "credentials.keys").read_text())["keys"]
    assert len(ring) == 2  # nothing retired while something is unreadable
    assert services.vault.decrypt(good, stored(services)[good]) == "fine"
    services.close()


def test_configured_keys_rotate_to_the_first_one(tmp_path):
    import base64

    from logmail.services.credentials import new_key

    old, new = (base64.b64encode(new_key()).decode() for _ in range(2))
    data = {"data_dir": str(tmp_path / "data")}
    stack = stack_overrides()  # both configurations are one installation: the same engines
    cfg = write_config(tmp_path / "logmail.toml", {**data, "accounts": {"encryption_keys": [old]}}, stack=stack)
    services = build_services(load_settings(cfg, environ={}))
    (uuid,) = add_accounts(services, ["secret"])
    services.close()
    cfg = write_config(tmp_path / "logmail.toml", {**data, "accounts": {"encryption_keys": [new, old]}},
                       stack=stack)
    result = runner.invoke(app, ["admin", "rotate-keys", "--json", "--config", str(cfg)])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["new_key_id"] == key_id(base64.b64decode(new))
    assert not (tmp_path / "data" / "credentials.keys").exists()  # configured keys: no key file at all
    only_new = CredentialVault(configured_keys=[new])
    services = build_services(load_settings(cfg, environ={}))
    assert only_new.decrypt(uuid, stored(services)[uuid]) == "secret"
    services.close()


def test_webhook_secrets_move_to_the_new_key_too(tmp_path):
    from logmail.store.models_webhooks import Webhook

    cfg = write_config(tmp_path / "logmail.toml", {"data_dir": str(tmp_path / "data")})
    services = build_services(load_settings(cfg, environ={}))
    with services.db.write() as session:
        hook = Webhook(organization_id=services.boot.organization_id, url="https://hooks.example/x",
                       events=["message.received"], secret_encrypted="")
        session.add(hook)
        session.flush()
        hook.secret_encrypted = services.vault.encrypt(hook.uuid, "whsec_c2VjcmV0")
        uuid = hook.uuid
    result = runner.invoke(app, ["admin", "rotate-keys", "--json", "--config", str(cfg)])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["reencrypted"] == 1 and report["retired_key_ids"]
    fresh = CredentialVault(key_file=services.settings.data_path / "credentials.keys")
    with services.db.read() as session:
        stored_secret = session.execute(select(Webhook.secret_encrypted)).scalar_one()
    assert fresh.decrypt(uuid, stored_secret) == "whsec_c2VjcmV0"
    services.close()
