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
