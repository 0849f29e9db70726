"""``logmail tui``'s command line: which installation it talks to and which credentials it sends."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from logmail.cli import tui_cmd
from logmail.cli.main import app


@pytest.mark.parametrize("url", ["http://127.0.0.1:abc", "ftp://example.com", "http://"])
def test_a_url_it_cannot_use_is_a_clear_error(url, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    result = CliRunner().invoke(app, ["tui", "--url", url])
    assert result.exit_code == 2
    assert "Traceback" not in result.output


@pytest.mark.parametrize(("target", "same"), [
    ("http://127.0.0.1:8025", True),
    ("http://localhost:8025", True),
    ("http://[::1]:8025", True),
    ("https://127.0.0.1:8025", False),     # another scheme is another server
    ("http://127.0.0.1:8026", False),
    ("http://logmail.example.com:8025", False),
    ("http://127.0.0.1.example.com:8025", False),
    ("http://127.0.0.1:abc", False),
])
def test_the_owner_token_goes_only_to_the_local_daemon(target, same):
    assert tui_cmd._same_endpoint(target, "http://127.0.0.1:8025") is same


def test_the_local_daemon_is_found_from_the_configuration(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "owner.token").write_text("lm_owner\n")
    config = tmp_path / "logmail.toml"
    config.write_text(f'data_dir = "{data}"\n[api]\nhost = "0.0.0.0"\nport = 9123\n')
    assert tui_cmd._local_daemon(str(config)) == ("http://127.0.0.1:9123", "lm_owner")
    (data / "owner.token").unlink()
    assert tui_cmd._local_daemon(str(config)) == ("http://127.0.0.1:9123", None)
