from __future__ import annotations

import json

import typer

from logmail.cli.common import ConfigOption, load

app = typer.Typer(help="Inspect the configuration.", no_args_is_help=True)


@app.command("show")
def show(
    config: ConfigOption = None,
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of TOML."),
) -> None:
    """Print the effective settings (defaults, file and environment), secrets masked.

    Example: LOGMAIL_SMTP__PORT=2525 logmail config show
    """
    from logmail.config import as_dict

    settings = load(config)
    data = as_dict(settings)
    if as_json:
        typer.echo(json.dumps({"source": settings.source or None, "settings": data}, indent=2))
        return
    typer.echo(f"# source: {settings.source or 'defaults (no config file found)'}")
    typer.echo(to_toml(data))


def to_toml(data: dict) -> str:
    lines = []
    for key, value in data.items():
        if not isinstance(value, dict):
            lines.append(f"{key} = {json.dumps(value)}")
    for key, value in data.items():
        if isinstance(value, dict):
            lines.append(f"\n[{key}]")
            lines.extend(f"{k} = {json.dumps(v)}" for k, v in value.items())
    return "\n".join(lines)
