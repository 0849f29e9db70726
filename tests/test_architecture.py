"""The dependency directions of ARCHITECTURE.md, checked with import-linter's contracts."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_import_contracts_hold():
    exe = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(exe), "--config", str(ROOT / "pyproject.toml")], cwd=ROOT, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Contracts: 5 kept, 0 broken" in result.stdout


def test_no_engine_or_app_is_created_at_import_time():
    code = ("import logmail.api.app, logmail.daemon.runner, logmail.services.container, logmail.cli.main;"
            "import sqlalchemy.pool, gc;"
            "from sqlalchemy.engine import Engine;"
            "assert not [o for o in gc.get_objects() if isinstance(o, Engine)], 'an engine exists at import'")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
