"""One check_mailgw run as Nagios reads it: exit code, state, first line, long output, perfdata.

The output format is the Nagios plugin guidelines' (status text, then "|" and perfdata
on the first line; long output after it; more perfdata after a "|" further down); the
whole document instead of it with --format json.
"""

import json
import re
from dataclasses import dataclass
from typing import Any

STATES = ("OK", "WARNING", "CRITICAL", "UNKNOWN")
# label=value[unit];warn;crit;min;max, the label quoted when it holds blanks.
_PERFDATUM = re.compile(r"('[^']+'|[^ =]+)=(\S+)")
_NUMBER = re.compile(r"-?[\d.]+")


@dataclass(frozen=True)
class CheckResult:
    """What a monitoring core sees of one run."""

    exit_code: int
    stdout: str
    stderr: str

    @property
    def state(self) -> str:
        """OK, WARNING, CRITICAL or UNKNOWN, by the exit code."""
        return STATES[self.exit_code] if 0 <= self.exit_code < len(STATES) else "UNKNOWN"

    @property
    def first_line(self) -> str:
        """The status text, without its perfdata."""
        return self.stdout.splitlines()[0].split(" | ", 1)[0] if self.stdout else ""

    @property
    def long_output(self) -> str:
        """The lines after the first, without the perfdata line."""
        lines = self.stdout.splitlines()[1:]
        return "\n".join(line for line in lines if not line.startswith("| "))

    @property
    def perfdata(self) -> dict[str, str]:
        """label -> "value;warn;crit;min;max", from the first line and the trailing "| " line."""
        text = " ".join(part.split("|", 1)[1] for part in self.stdout.splitlines() if "|" in part)
        return {label.strip("'"): value for label, value in _PERFDATUM.findall(text)}

    def value(self, label: str) -> float:
        """A perfdata value as a number, without its unit: value("token_time") -> 0.0123."""
        number = _NUMBER.match(self.perfdata[label])
        if number is None:
            raise ValueError(f"perfdata {label}: no number in {self.perfdata[label]!r}")
        return float(number.group())

    @property
    def document(self) -> dict[str, Any]:
        """The JSON document of a run with --format json."""
        parsed = json.loads(self.stdout)
        if not isinstance(parsed, dict):
            raise ValueError("the output is not a JSON object")
        return parsed
