"""Runs the installed check_mailgw command and splits its output as Nagios reads it."""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

PLUGIN = Path(sys.executable).parent / "check_mailgw"
_PERF = re.compile(r"('[^']+'|[^ =]+)=(\S+)")


@dataclass(frozen=True)
class CheckRun:
    """What Nagios sees of one run: exit code, first line, long output, perfdata."""

    exit_code: int
    stdout: str
    stderr: str

    @property
    def first_line(self) -> str:
        """The status text without the perfdata part."""
        return self.stdout.splitlines()[0].split(" | ", 1)[0] if self.stdout else ""

    @property
    def long_output(self) -> str:
        lines = self.stdout.splitlines()[1:]
        return "\n".join(line for line in lines if not line.startswith("| "))

    @property
    def perfdata(self) -> dict[str, str]:
        """label -> 'value;warn;crit;min;max', from the first line and the trailing '| ' line."""
        text = " ".join(part.split("|", 1)[1] for part in self.stdout.splitlines() if "|" in part)
        return {label.strip("'"): value for label, value in _PERF.findall(text)}

    def value(self, label: str) -> float:
        return float(re.match(r"-?[\d.]+", self.perfdata[label]).group())  # type: ignore[union-attr]


def run_check(*args: object, env: dict[str, str] | None = None, timeout: float = 60) -> CheckRun:
    """Runs the console script that `pip install` put beside this interpreter."""
    assert PLUGIN.exists(), f"{PLUGIN} missing: install the package first (pip install .)"
    completed = subprocess.run(
        [str(PLUGIN), *map(str, args)],
        capture_output=True, text=True, timeout=timeout, env=env, stdin=subprocess.DEVNULL,
    )
    return CheckRun(completed.returncode, completed.stdout, completed.stderr)
