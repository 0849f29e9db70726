"""`logmail ingest` in platform mode: recipients routed by the policy, pipe(8) exit statuses."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import write_config
from logmail.cli.ingest_cmd import EX_NOUSER, EX_TEMPFAIL, EX_UNAVAILABLE
from logmail.cli.main import app
from logmail.config import load_settings
from logmail.errors import StorageUnavailableError
from logmail.services.container import build_services
from platform_helpers import add_org, add_tier, suspend

runner = CliRunner()

EML = b"From: app@example.net\r\nTo: dev@acme.test\r\nSubject: piped\r\n\r\n" + b"body line\r\n" * 20


@pytest.fixture
def config(tmp_path) -> Path:
    return write_config(tmp_path / "logmail.toml", {"data_dir": str(tmp_path / "data"), "mode": "platform",
                                                     "policy": {"cache_seconds": 0}})


@pytest.fixture
def services(config):
    s = build_services(load_settings(config, environ={}))
    yield s
    s.close()


def ingest(config: Path, *rcpts: str, message: bytes = EML):
    args = ["ingest", "--config", str(config), "--quiet", "--mail-from=app@example.net"]
    return runner.invoke(app, args + [f"--rcpt={r}" for r in rcpts] + ["-"], input=message)


def jobs(services, expect_some: bool = True) -> list[dict]:
    found, deadline = [], time.monotonic() + (5 if expect_some else 1)
    while time.monotonic() < deadline:
        got = services.queue.claim("ingest", 100)
        found += got
        if found and not got:
            break
        time.sleep(0.05)
    return [j.payload for j in found]


def test_each_organisation_gets_its_own_recipients(config, services):
    acme = add_org(services, "dev@acme.test", "ops@acme.test")
    globex = add_org(services, "*@globex.test")
    result = ingest(config, "dev@acme.test", "who@globex.test", "ops@acme.test")
    assert result.exit_code == 0, result.output
    (job,) = jobs(services)
    assert job["rcptTo"] == ["dev@acme.test", "who@globex.test", "ops@acme.test"]
    assert job["routes"] == {str(acme): ["dev@acme.test", "ops@acme.test"], str(globex): ["who@globex.test"]}
    assert job["source"] == "cli"


def test_refused_recipients_beside_accepted_ones_are_reported_and_skipped(config, services):
    acme = add_org(services, "dev@acme.test")
    suspend(services, add_org(services, "held@globex.test"))
    result = ingest(config, "nobody@acme.test", "dev@acme.test", "held@globex.test")
    assert result.exit_code == 0, result.output
    assert "<nobody@acme.test>: 550 5.1.1" in result.output
    assert "<held@globex.test>: 550 5.7.1" in result.output
    (job,) = jobs(services)
    assert job["rcptTo"] == ["dev@acme.test"] and job["routes"] == {str(acme): ["dev@acme.test"]}


def test_only_unknown_recipients_exit_67(config, services):
    add_org(services, "dev@acme.test")
    result = ingest(config, "nobody@acme.test", "else@nowhere.test")
    assert result.exit_code == EX_NOUSER, result.output
    assert "550 5.1.1" in result.output
    assert jobs(services, expect_some=False) == []


@pytest.mark.parametrize("limits, status", [
    ({"emails_per_month": 0}, "552 5.2.2"),
    ({"storage_bytes": 0}, "552 5.2.2"),
    ({"max_message_size": 100}, "552 5.3.4"),
    (None, "550 5.7.1"),
])
def test_permanent_refusals_exit_69(config, services, limits, status):
    if limits is None:
        suspend(services, add_org(services, "dev@acme.test"))
    else:
        add_org(services, "dev@acme.test", tier=add_tier(services, **limits))
    result = ingest(config, "dev@acme.test", "unknown@acme.test")
    assert result.exit_code == EX_UNAVAILABLE, result.output
    assert f"<dev@acme.test>: {status}" in result.output
    assert jobs(services, expect_some=False) == []


def test_a_rate_limited_recipient_defers_the_whole_message(config, services):
    add_org(services, "a@acme.test", "b@acme.test", "c@acme.test", tier=add_tier(services, emails_per_minute=2))
    add_org(services, "other@globex.test")
    result = ingest(config, "other@globex.test", "a@acme.test", "b@acme.test", "c@acme.test")
    assert result.exit_code == EX_TEMPFAIL, result.output
    assert "<c@acme.test>: 451 4.7.1" in result.output
    assert jobs(services, expect_some=False) == []  # Postfix retries all four; none was lost


def test_policy_trouble_defers(config, services, monkeypatch):
    from logmail.services.policy import PolicyService

    add_org(services, "dev@acme.test")

    def down(self, *args, **kwargs):
        raise StorageUnavailableError("the database is unavailable")

    monkeypatch.setattr(PolicyService, "check_recipient", down)
    result = ingest(config, "dev@acme.test")
    assert result.exit_code == EX_TEMPFAIL
    assert "the database is unavailable" in result.output
    assert jobs(services, expect_some=False) == []


def test_local_mode_is_unchanged(tmp_path):
    cfg = write_config(tmp_path / "logmail.toml", {"data_dir": str(tmp_path / "data")})
    result = ingest(cfg, "anyone@anywhere.test")
    assert result.exit_code == 0, result.output
    s = build_services(load_settings(cfg, environ={}))
    try:
        (job,) = jobs(s)
        assert job["rcptTo"] == ["anyone@anywhere.test"] and "routes" not in job
    finally:
        s.close()


def test_exit_status_of_the_real_process(config, services):
    add_org(services, "dev@acme.test")
    exe = Path(sys.executable).with_name("logmail")
    run = lambda rcpt: subprocess.run([str(exe), "ingest", "--config", str(config), "--quiet", "--mail-from=",
                                       f"--rcpt={rcpt}"], input=EML, capture_output=True, timeout=60)
    assert run("nobody@acme.test").returncode == EX_NOUSER
    done = run("dev@acme.test")
    assert done.returncode == 0 and done.stderr == b""


def test_policy_checked_recipients_are_not_counted_again(config, services):
    add_org(services, "a@acme.test", "b@acme.test", tier=add_tier(services, emails_per_minute=1))
    assert ingest(config, "a@acme.test", "b@acme.test").exit_code == EX_TEMPFAIL
    args = ["ingest", "--config", str(config), "--quiet", "--policy-checked", "--rcpt=a@acme.test", "--rcpt=b@acme.test"]
    result = runner.invoke(app, args, input=EML)
    assert result.exit_code == 0, result.output
    (job,) = jobs(services)
    assert job["rcptTo"] == ["a@acme.test", "b@acme.test"]
