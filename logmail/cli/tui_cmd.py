"""``logmail tui``: the operator console, a client of the REST API like any frontend."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Annotated, Optional
from urllib.parse import urlsplit

import typer

from logmail.cli.common import ConfigOption, fail, load

LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}


def tui(
    url: Annotated[Optional[str], typer.Option(help="The API to connect to (default: this machine's daemon, "
                                                    "http://127.0.0.1:8025 unless logmail.toml says otherwise).",
                                               show_default=False)] = None,
    token: Annotated[Optional[str], typer.Option(help="An API token to use instead of signing in "
                                                      "(default: $LOGMAIL_TOKEN, then the local owner.token).",
                                                 show_default=False)] = None,
    area: Annotated[str, typer.Option(help="The area to open: mail, health, outbound, accounts or tenants.")] = "mail",
    config: ConfigOption = None,
) -> None:
    """Open the terminal console: live mail, messages, health, outbound mail, accounts and tenants.

    Against the daemon on this machine it signs in by itself with <data_dir>/owner.token. For another
    installation give --url and either --token or your email and password on the login screen; the
    refresh token is then kept (mode 0600) in ~/.config/logmail/tui-sessions.json.

    Example: logmail tui --url https://logmail.example.com
    """
    from logmail.tui.client import LogmailClient, RefreshTokenStore, config_dir

    local_url, owner_token = _local_daemon(config)
    target = (url or local_url).rstrip("/")
    token = token or os.environ.get("LOGMAIL_TOKEN") or None
    if token is None and owner_token and _same_endpoint(target, local_url):
        token = owner_token  # never sent anywhere but the daemon whose data directory holds it
    try:
        client = LogmailClient(target, token=token,
                               refresh_store=RefreshTokenStore(config_dir() / "tui-sessions.json"))
    except ValueError as exc:
        fail(str(exc), 2)
    _quiet_logging()
    from logmail.tui.app import LogmailConsole

    LogmailConsole(client, start=area).run()


def _local_daemon(config: str | None) -> tuple[str, str | None]:
    """This machine's API URL and owner token, from logmail.toml (or the embedded defaults)."""
    settings = load(config)
    host = settings.api.host
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    local_url = f"http://{host}:{settings.api.port}"
    try:
        token = (Path(settings.data_path) / "owner.token").read_text().strip() or None
    except OSError:
        token = None  # not this machine's daemon, or not readable by this user: sign in instead
    return local_url, token


def _same_endpoint(a: str, b: str) -> bool:
    try:
        pa, pb = urlsplit(a), urlsplit(b)
        ha, hb = (pa.hostname or "").lower(), (pb.hostname or "").lower()
        same_host = ha == hb or (ha in LOOPBACK and hb in LOOPBACK)
        return same_host and pa.scheme == pb.scheme and (pa.port or 80) == (pb.port or 80)
    except ValueError:  # a port that is not a number: not this machine's daemon (the client says why)
        return False


def _quiet_logging() -> None:
    """Nothing may write to the terminal while Textual owns it: no log records, no warnings."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.addHandler(logging.NullHandler())
    logging.captureWarnings(True)
