"""What every command shares: the --config option, loading settings, and clean error exits."""

from __future__ import annotations

import sys
from typing import Annotated, Optional

import typer

ConfigOption = Annotated[
    Optional[str],
    typer.Option("--config", "-c", help="Path to logmail.toml (default: $LOGMAIL_CONFIG, ./logmail.toml, "
                                        "~/.config/logmail/logmail.toml, /etc/logmail/logmail.toml).",
                 show_default=False),
]


def load(config: str | None, *, error_code: int = 1, **overrides):
    from logmail.config import load_settings
    from logmail.errors import ConfigError

    try:
        return load_settings(config, overrides={k: v for k, v in overrides.items() if v is not None} or None)
    except ConfigError as exc:
        fail(exc.message, error_code)


def fail(message: str, code: int = 1):
    typer.echo(f"logmail: {message}", err=True)
    raise typer.Exit(code)


def stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
