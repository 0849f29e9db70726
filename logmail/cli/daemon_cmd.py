from __future__ import annotations

from typing import Annotated, Optional

import typer

from logmail.cli.common import ConfigOption, fail, load, stderr


def daemon(
    config: ConfigOption = None,
    role: Annotated[Optional[str], typer.Option(help="Comma-separated roles to run: api,smtp,worker,scheduler (default: all).")] = None,
    data_dir: Annotated[Optional[str], typer.Option(help="Override data_dir for this run.")] = None,
) -> None:
    """Run the API, the SMTP listener and the ingest consumers.

    With no configuration it listens for SMTP on 127.0.0.1:1025 and serves the API on
    http://127.0.0.1:8025, keeping everything in the data directory.

    Example: logmail daemon --config /etc/logmail/logmail.toml
    """
    from logmail.daemon.runner import Daemon, parse_roles
    from logmail.errors import LogmailError
    from logmail.logs import configure_logging

    settings = load(config, data_dir=data_dir)
    configure_logging(settings.log_level)
    try:
        d = Daemon(settings, roles=parse_roles(role), on_ready=_banner)
        stderr(f"logmail: data directory {settings.data_path}")
        d.run()
    except LogmailError as exc:
        fail(exc.message)
    except KeyboardInterrupt:
        pass


def _banner(d) -> None:
    s = d.settings
    if d.smtp_port:
        stderr(f"logmail: SMTP on {s.smtp.host}:{d.smtp_port}")
    if d.api_port:
        stderr(f"logmail: API on http://{s.api.host}:{d.api_port}")
    stderr(f"logmail: owner API token in {d.services.boot.token_file}")
    stderr("logmail: press Ctrl-C to stop")
