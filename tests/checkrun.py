"""Runs the installed check_mailgw command and splits its output as Nagios reads it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from check_mailgw.sandbox.check_result import CheckResult

PLUGIN = Path(sys.executable).parent / "check_mailgw"


# What a run shows Nagios: the pytest plugin's reading of it, for the suite too.
CheckRun = CheckResult


def run_check(*args: object, env: dict[str, str] | None = None, timeout: float = 60) -> CheckRun:
    """Runs the console script that `pip install` put beside this interpreter."""
    assert PLUGIN.exists(), f"{PLUGIN} missing: install the package first (pip install .)"
    completed = subprocess.run(
        [str(PLUGIN), *map(str, args)],
        capture_output=True, text=True, timeout=timeout, env=env, stdin=subprocess.DEVNULL,
    )
    return CheckRun(completed.returncode, completed.stdout, completed.stderr)
