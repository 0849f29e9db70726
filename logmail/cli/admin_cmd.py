"""``logmail admin``: scripted administration, straight against the configured database."""

from __future__ import annotations

import json

import typer

from logmail.cli.common import ConfigOption, fail, load

app = typer.Typer(help="Administer an installation directly (no running daemon needed).", no_args_is_help=True)


def _services(config):
    from logmail.errors import LogmailError
    from logmail.services.container import build_services

    try:
        return build_services(load(config))
    except LogmailError as exc:
        fail(exc.message)


@app.command("rotate-keys")
def rotate_keys(config: ConfigOption = None,
                as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Re-encrypt every stored mailbox password and webhook secret under a new key, daemons running.

    With the key file in the data directory a new key is made, every password re-encrypted under it,
    and the old keys retired. With accounts.encryption_keys, put the new key first in every daemon's
    configuration and restart them before running this; then remove the old key.

    Example: logmail admin rotate-keys --json
    """
    from rich.progress import Progress

    from logmail.errors import LogmailError
    from logmail.services.key_rotation import rotate_keys as rotate

    services = _services(config)
    try:
        with Progress(transient=True, disable=as_json) as bar:
            task = bar.add_task("re-encrypting", total=None)
            result = rotate(services.db, services.vault, progress=lambda n: bar.advance(task, n),
                            others=(services.webhooks.reencrypt_secrets,))
    except LogmailError as exc:
        fail(exc.message)
    finally:
        services.close()
    if as_json:
        typer.echo(json.dumps(result.__dict__))
    else:
        typer.echo(f"key {result.new_key_id}: {result.reencrypted} password(s) re-encrypted, "
                   f"{result.already_current} already current"
                   + (f", old key(s) {', '.join(result.retired_key_ids)} retired" if result.retired_key_ids else ""))
    if result.unreadable:
        fail(f"{len(result.unreadable)} account(s) or webhook(s) have a secret no key decrypts (their owners "
             f"must enter it again): {', '.join(result.unreadable[:20])}", 2)
