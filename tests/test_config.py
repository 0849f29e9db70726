import tomllib
from pathlib import Path

import pytest

from logmail.config import as_dict, iter_keys, load_settings
from logmail.errors import ConfigError

EXAMPLE = Path(__file__).resolve().parent.parent / "logmail.toml.example"


def test_defaults_need_no_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "nowhere"))
    s = load_settings(None, environ={})
    assert (s.smtp.host, s.smtp.port) == ("127.0.0.1", 1025)
    assert (s.api.host, s.api.port) == ("127.0.0.1", 8025)
    assert s.mode == "local"
    assert s.smtp.max_message_size == 25 * 1024 * 1024
    assert s.smtp.max_recipients == 100
    assert s.database_url.startswith("sqlite:///") and s.database_url.endswith("logmail.db")


def test_file_then_environment(tmp_path):
    cfg = tmp_path / "logmail.toml"
    cfg.write_text('data_dir = "/srv/lm"\n[smtp]\nport = 2525\nmax_recipients = 5\n[api]\nport = 9000\n')
    s = load_settings(cfg, environ={"LOGMAIL_SMTP__PORT": "2626", "LOGMAIL_MODE": "platform"})
    assert s.data_dir == "/srv/lm"
    assert s.smtp.port == 2626  # environment beats the file
    assert s.smtp.max_recipients == 5
    assert s.api.port == 9000
    assert s.mode == "platform"
    assert s.source == str(cfg)


def test_logmail_config_variable_is_used(tmp_path, monkeypatch):
    cfg = tmp_path / "elsewhere.toml"
    cfg.write_text("[api]\nport = 8123\n")
    monkeypatch.setenv("LOGMAIL_CONFIG", str(cfg))
    assert load_settings(None).api.port == 8123


@pytest.mark.parametrize("text, fragment", [
    ("[smtp]\nprot = 25\n", "unknown setting 'smtp.prot'"),
    ("[smtp]\nport = 'abc'\n", "smtp.port must be a number"),
    ('mode = "cloud"\n', "mode must be one of local, platform"),
    ("[smtp\n", "cannot read"),
    ("smtp = 3\n", "[smtp] must be a table"),
])
def test_bad_files_get_clear_errors(tmp_path, text, fragment):
    cfg = tmp_path / "logmail.toml"
    cfg.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_settings(cfg, environ={})
    assert fragment in info.value.message


def test_missing_explicit_file_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.toml", environ={})


def test_example_documents_every_key_and_nothing_else():
    example = tomllib.loads(EXAMPLE.read_text())
    documented = {(s, k) for s, values in example.items() if isinstance(values, dict) for k in values}
    documented |= {("", k) for k, v in example.items() if not isinstance(v, dict)}
    model = {(s, k) for s, k, _ in iter_keys()}
    assert documented == model
    text = EXAMPLE.read_text()
    for sect, key, field in iter_keys():
        assert field.metadata["help"].split()[0] in text, f"help for {sect}.{key} missing from the example"


def test_example_loads_as_a_config_file():
    s = load_settings(EXAMPLE, environ={})
    assert s.smtp.port == 1025


def test_secrets_are_masked(tmp_path):
    cfg = tmp_path / "logmail.toml"
    cfg.write_text('[smtp]\nauth_username = "u"\nauth_password = "hunter2"\n'
                   '[database]\nurl = "mysql+pymysql://lm:s3cret@db/logmail"\n')
    shown = as_dict(load_settings(cfg, environ={}))
    assert shown["smtp"]["auth_password"] == "********"
    assert "s3cret" not in str(shown)
    assert shown["database"]["url"] == "mysql+pymysql://lm:********@db/logmail"


def test_example_is_exactly_what_the_model_renders():
    import runpy

    renderer = runpy.run_path(str(EXAMPLE.parent / "tools" / "render_config_example.py"))
    assert EXAMPLE.read_text() == renderer["render"](), "run: python tools/render_config_example.py"


def test_outbound_mail_answers_to_the_seed_environment_names(tmp_path):
    s = load_settings(None, environ={"SMTP_HOST": "mail.example.com", "SMTP_PORT": "2525", "SMTP_USE_TLS": "false",
                                     "EMAIL_MAX_ATTEMPTS": "7", "LOGMAIL_OUTBOUND__SMTP_PORT": "26"})
    assert s.outbound.smtp_host == "mail.example.com" and s.outbound.smtp_use_tls is False
    assert s.outbound.max_attempts == 7
    assert s.outbound.smtp_port == 26  # the LOGMAIL_ name wins over the alias
