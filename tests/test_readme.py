"""The README's copy of --help is the command's own."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from checkrun import PLUGIN

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_has_the_verbatim_help() -> None:
    section = README.read_text(encoding="utf-8").split("### The whole `--help`", 1)[1]
    copy = re.search(r"```text\n(.*?)\n```", section, re.S)
    assert copy, "README: no ```text block after 'The whole --help'"
    shown = subprocess.run([str(PLUGIN), "--help"], capture_output=True, text=True,
                           env={**os.environ, "COLUMNS": "80"}, check=False)
    assert shown.returncode == 3
    assert copy.group(1) == shown.stdout.rstrip("\n")


CI_RUN = README.parent / ".ci" / "run"
VENV_LINE = "python3 -m venv .venv && . .venv/bin/activate"


def readme_section(heading: str) -> str:
    """The text under a '## heading', up to the next '## '."""
    text = README.read_text(encoding="utf-8")
    return text.split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]


def ci_quick_start() -> list[str]:
    """The command lines .ci/run takes from the README, word for word."""
    script = CI_RUN.read_text(encoding="utf-8")
    array = re.search(r"^quick_start=\(\n(.*?)\n\)", script, re.S | re.M)
    assert array, ".ci/run: no quick_start=( ... ) array"
    return [line.strip()[1:-1] for line in array.group(1).splitlines()]


def test_quick_start_makes_the_virtual_environment_before_any_pip_install() -> None:
    # Debian 12's and Ubuntu 24.04's Python refuse pip install outside a venv.
    block = re.search(r"```sh\n(.*?)\n```", readme_section("Quick start"), re.S)
    assert block, "README Quick start: no ```sh block"
    assert block.group(1).splitlines() == [VENV_LINE, *ci_quick_start()]
    assert f'venv_line="{VENV_LINE}"' in CI_RUN.read_text(encoding="utf-8")


def test_production_venv_is_made_with_the_distributions_python() -> None:
    # A Python under /root (pyenv, for one) cannot be run by the nagios user.
    block = re.search(r"```sh\n(.*?)\n```", readme_section("Installing in production"), re.S)
    assert block, "README Installing in production: no ```sh block"
    assert "/usr/bin/python3 -m venv /opt/check_mailgw" in block.group(1).splitlines()
