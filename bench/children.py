"""Fresh processes, as a monitoring core starts one per check, and what each one cost.

Shared by the benchmarks in this directory (run them as scripts: bench/ is on sys.path).
"""

from __future__ import annotations

import os
import re
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

PLUGIN = Path(sys.executable).parent / "check_mailgw"
_PERF = re.compile(r"('[^']+'|[^ =]+)=(-?[\d.]+)")


@dataclass(frozen=True)
class Sample:
    """One child process: its CPU (user+sys) and wall seconds, and what it printed."""

    cpu: float
    wall: float
    stdout: str

    def perfdata(self) -> dict[str, float]:
        text = " ".join(line.split("|", 1)[1] for line in self.stdout.splitlines()
                        if "|" in line)
        return {label.strip("'"): float(value) for label, value in _PERF.findall(text)}


def child_environment(pycache: Path | None) -> dict[str, str]:
    """The environment of both sides: no proxy (loopback only), the same bytecode cache."""
    left_out = ("MSAL_FORCE_REGION", "PYTHONDONTWRITEBYTECODE", "PYTHONPYCACHEPREFIX")
    environment = {name: value for name, value in os.environ.items()
                   if not name.lower().endswith("_proxy") and name not in left_out}
    if pycache:
        # A cache of its own: nothing is written into the source tree or site-packages.
        environment["PYTHONPYCACHEPREFIX"] = str(pycache)
    else:
        environment["PYTHONDONTWRITEBYTECODE"] = "1"
    return environment


def run_child(argv: list[str], what: str, environment: dict[str, str]) -> Sample:
    """Run one process to its end; its CPU comes from the rusage of waited-for children."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.monotonic()
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL, env=environment)
    wall = time.monotonic() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if done.returncode != 0:
        # The plugin's first line is redacted; of a bare script only its last words.
        said = done.stdout.splitlines()[:1] or done.stderr.splitlines()[-1:] or ["no output"]
        raise SystemExit(f"{what} exited {done.returncode}: {said[0]}")
    return Sample(cpu, wall, done.stdout)


def imported_modules(argv: list[str], environment: dict[str, str]) -> int:
    """How many modules one run of argv imports, as `python -X importtime` lists them (the
    interpreter's own start-up modules before it are the same for every side)."""
    script = argv[1:] if argv[0] == sys.executable else argv
    done = subprocess.run([sys.executable, "-X", "importtime", *script], capture_output=True,
                          text=True, timeout=60, stdin=subprocess.DEVNULL, env=environment)
    names = {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines()
             if line.startswith("import time:")}
    return len(names - {"imported package"})  # its header line


def interleaved(sides: dict[str, list[str]], runs: int,
                environment: dict[str, str]) -> dict[str, list[Sample]]:
    """Each side `runs` times after one warm-up, alternating who goes first."""
    for name, argv in sides.items():  # warm the page cache and the bytecode cache
        run_child(argv, name, environment)
    samples: dict[str, list[Sample]] = {name: [] for name in sides}
    for run in range(runs):
        order = list(sides) if run % 2 == 0 else list(reversed(sides))
        for name in order:
            samples[name].append(run_child(sides[name], name, environment))
    return samples


def median(samples: Iterable[Sample], field: Callable[[Sample], float]) -> float:
    return statistics.median(field(sample) for sample in samples)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"
