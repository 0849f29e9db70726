"""Write logmail.toml.example from the settings model: ``python tools/render_config_example.py``.

The model is the single source of every key, default and help text; tests/test_config.py checks
that the committed example is exactly what this prints.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import textwrap
from pathlib import Path

from logmail.config import iter_keys

HEADER = """\
# logmail.toml: every setting, with its default.
#
# logmail needs no configuration: these are the embedded defaults. Copy the keys you want to
# change into logmail.toml (searched: --config, $LOGMAIL_CONFIG, ./logmail.toml,
# ~/.config/logmail/logmail.toml, /etc/logmail/logmail.toml). Every key can also be set in the
# environment as LOGMAIL_<SECTION>__<KEY> (LOGMAIL_<KEY> at the top level), e.g. LOGMAIL_SMTP__PORT=2525.
"""


def _toml(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return json.dumps(value, ensure_ascii=False)


def _default(f: dataclasses.Field):
    if f.default is not dataclasses.MISSING:
        return f.default
    return f.default_factory()  # type: ignore[misc]


def render() -> str:
    lines = [HEADER]
    current = None
    for section, key, f in iter_keys():
        if section != current:
            if section:
                lines.append(f"\n[{section}]")
            current = section
        help_text = f.metadata["help"]
        lines.extend("# " + line for line in textwrap.wrap(help_text, 96))
        value = _default(f)
        if key == "data_dir":
            value = "~/.local/share/logmail"  # the model's default is the expanded path of whoever runs it
        lines.append(f"{key} = {_toml(value)}")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    target = Path(__file__).resolve().parent.parent / "logmail.toml.example"
    if "--check" in sys.argv:
        sys.exit(0 if target.read_text() == render() else 1)
    target.write_text(render())
