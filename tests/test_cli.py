"""The logmail command through Typer's runner and as a real process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import claim_all
from logmail.cli.main import app
from logmail.cli.ingest_cmd import EX_DATAERR, EX_TEMPFAIL

runner = CliRunner()

EML = b"From: a@example.com\r\nTo: b@example.com, c@example.com\r\nSubject: from a file\r\n\r\nbody\r\n"
MBOX = (b"From a@example.com Mon Jan  1 00:00:00 2026\nSubject: one\nTo: x@example.com\n\n>From the start\n\n"
        b"From b@example.com Mon Jan  1 00:00:01 2026\nSubject: two\nTo: y@example.com\n\nsecond\n")


@pytest.fixture
def config(tmp_path) -> Path:
    cfg = tmp_path / "logmail.toml"
    cfg.write_text(f'data_dir = "{tmp_path / "data"}"\n[smtp]\nmax_message_size = 5000\n')
    return cfg


def jobs_in(config: Path):
    from logmail.config import load_settings
    from logmail.services.container import build_services

    services = build_services(load_settings(config, environ={}))
    try:
        jobs, empty = [], 0
        while empty < 5:  # a broker may hand jobs out over several claims
            got = services.queue.claim("ingest", 1000)
            jobs += got
            empty = 0 if got else empty + 1
            time.sleep(0.05 if not got else 0)
        return [(j.payload, services.content.get(j.payload["rawKey"])) for j in jobs]
    finally:
        services.close()


@pytest.mark.parametrize("command", [[], ["daemon"], ["ingest"], ["send"], ["config"], ["config", "show"]])
def test_help_everywhere(command):
    result = runner.invoke(app, command + ["--help"])
    assert result.exit_code == 0
    assert "Usage" in result.output


def test_every_command_takes_config_after_its_name(config):
    result = runner.invoke(app, ["config", "show", "--config", str(config), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["source"] == str(config)
    assert data["settings"]["smtp"]["max_message_size"] == 5000


def test_config_show_reads_logmail_config_variable(config):
    result = runner.invoke(app, ["config", "show"], env={"LOGMAIL_CONFIG": str(config)})
    assert result.exit_code == 0
    assert "max_message_size = 5000" in result.output


def test_bad_config_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[smtp]\nport = 'x'\n")
    result = runner.invoke(app, ["config", "show", "--config", str(bad)])
    assert result.exit_code == 1
    assert "smtp.port must be a number" in result.output


def test_ingest_eml_file_and_stdin(config, tmp_path):
    eml = tmp_path / "m.eml"
    eml.write_bytes(EML)
    result = runner.invoke(app, ["ingest", str(eml), "--config", str(config)])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["ingest", "-", "--config", str(config), "-f", "s@example.com", "-r", "r@example.com"],
                           input=EML)
    assert result.exit_code == 0, result.output
    jobs = jobs_in(config)
    assert [raw for _, raw in jobs] == [EML, EML]
    assert jobs[0][0]["rcptTo"] == ["b@example.com", "c@example.com"]  # from the headers
    assert jobs[1][0]["mailFrom"] == "s@example.com" and jobs[1][0]["rcptTo"] == ["r@example.com"]
    assert {p["source"] for p, _ in jobs} == {"cli"}


def test_ingest_mbox_splits_and_unquotes(config, tmp_path):
    box = tmp_path / "archive.mbox"
    box.write_bytes(MBOX)
    result = runner.invoke(app, ["ingest", str(box), "--config", str(config)])
    assert result.exit_code == 0, result.output
    raws = [raw for _, raw in jobs_in(config)]
    assert raws == [b"Subject: one\nTo: x@example.com\n\nFrom the start\n",
                    b"Subject: two\nTo: y@example.com\n\nsecond\n"]


@pytest.mark.parametrize("files, stdin, fragment", [
    (["/no/such/file.eml"], None, "no such file"),
    (["-"], b"", "no message found"),
    (["-"], b"Subject: big\r\n\r\n" + b"x" * 6000, "larger than smtp.max_message_size"),
])
def test_ingest_unusable_input_exits_65(config, files, stdin, fragment):
    result = runner.invoke(app, ["ingest", *files, "--config", str(config)], input=stdin)
    assert result.exit_code == EX_DATAERR
    assert fragment in result.output


def test_ingest_temporary_failure_exits_75(tmp_path):
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the data directory should be")
    cfg = tmp_path / "logmail.toml"
    cfg.write_text(f'data_dir = "{tmp_path / "data"}"\n[database]\nurl = "sqlite:///{blocked}/x/logmail.db"\n')
    result = runner.invoke(app, ["ingest", "-", "--config", str(cfg)], input=EML)
    assert result.exit_code == EX_TEMPFAIL, result.output


def test_send_reports_an_unreachable_listener(config):
    result = runner.invoke(app, ["send", "--config", str(config), "--port", "1"])
    assert result.exit_code == 1
    assert "could not send" in result.output


def test_send_delivers_to_a_running_daemon(daemon, api, tmp_path):
    from conftest import wait_for_messages

    attachment = tmp_path / "notes.txt"
    attachment.write_text("some notes")
    result = runner.invoke(app, ["send", "--port", str(daemon.smtp_port), "--to", "dev@example.com",
                                 "--subject", "Hello there", "--attach", str(attachment), "--count", "2"])
    assert result.exit_code == 0, result.output
    messages = wait_for_messages(api, 2)
    assert {m["subject"] for m in messages} == {"Hello there"}
    assert messages[0]["attachmentCount"] == 1


def test_console_script_runs(tmp_path):
    exe = Path(sys.executable).with_name("logmail")
    result = subprocess.run([str(exe), "--version"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout.startswith("logmail ")
    result = subprocess.run([sys.executable, "-m", "logmail", "config", "show", "--json"], capture_output=True,
                            text=True, timeout=60, env={**os.environ, "LOGMAIL_API__PORT": "9999"})
    assert json.loads(result.stdout)["settings"]["api"]["port"] == 9999


def test_queue_status_dead_letters_and_replay(config):
    from logmail.config import load_settings
    from logmail.services.container import build_services

    services = build_services(load_settings(config, environ={}))
    services.queue.publish_many("ingest", [{"ingestId": "x", "rawKey": "raw/x"}])
    (job,) = claim_all(services, 1)
    services.queue.max_attempts = 1
    assert services.queue.fail(job, "Traceback...\nNotFoundError: content raw/x not found") is True
    services.close()

    result = runner.invoke(app, ["queue", "status", "--config", str(config), "--json"])
    assert json.loads(result.output) == {"queue": "ingest", "ready": 0, "dead": 1}
    result = runner.invoke(app, ["queue", "dead", "--config", str(config)])
    assert "NotFoundError: content raw/x not found" in result.output
    result = runner.invoke(app, ["queue", "replay", "--config", str(config)])
    assert result.output.strip() == "replayed 1 job(s)"
    result = runner.invoke(app, ["queue", "status", "--config", str(config), "--json"])
    assert json.loads(result.output) == {"queue": "ingest", "ready": 1, "dead": 0}


def test_ingest_stdin_with_a_postfix_from_line_is_one_message(config):
    piped = (b"From sender@example.com  Sat Nov 21 10:00:00 2026\n"
             b"Subject: piped\nTo: x@example.com\n\nFrom the body, not a separator\nFrom here too\n")
    result = runner.invoke(app, ["ingest", "-", "--config", str(config), "-f", "sender@example.com",
                                 "-r", "x@example.com"], input=piped)
    assert result.exit_code == 0, result.output
    assert [raw for _, raw in jobs_in(config)] == [piped.split(b"\n", 1)[1]]


def test_ingest_with_a_broken_config_defers_rather_than_bounces(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[smtp]\nport = 'x'\n")
    result = runner.invoke(app, ["ingest", "-", "--config", str(bad)], input=EML)
    assert result.exit_code == EX_TEMPFAIL
    result = runner.invoke(app, ["ingest", "-", "--config", str(tmp_path / "missing.toml")], input=EML)
    assert result.exit_code == EX_TEMPFAIL


def test_queue_commands_report_an_unreachable_queue_in_one_line(tmp_path):
    cfg = tmp_path / "logmail.toml"
    cfg.write_text(f'data_dir = "{tmp_path / "data"}"\n[queue]\nurl = "amqp://guest:guest@127.0.0.1:1/%2F"\n')
    result = runner.invoke(app, ["queue", "status", "--config", str(cfg)])
    assert result.exit_code == 1
    assert result.output.startswith("logmail: ") and "Traceback" not in result.output


def test_ingest_defers_on_a_queue_url_the_driver_cannot_parse(tmp_path):
    cfg = tmp_path / "logmail.toml"
    cfg.write_text(f'data_dir = "{tmp_path / "data"}"\n[queue]\nurl = "amqp://guest:guest@127.0.0.1:notaport/x"\n')
    result = runner.invoke(app, ["ingest", "-", "--config", str(cfg)], input=EML)
    assert result.exit_code == EX_TEMPFAIL, result.output
