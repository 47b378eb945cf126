"""A new user's first hour: the plugin run by the monitoring user, and the sandbox CLI.

The monitoring user is played by the real unprivileged user nobody (runuser, as root);
its virtual environments are real ones, made unusable for it as a careless install does.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_install import read_until

from check_mailgw.sandbox.m365.tenant import SANDBOX_CLIENT_SECRET
from check_mailgw.sandbox.mailgw_sandbox import READY_LINE

REPO = Path(__file__).resolve().parent.parent
PLUGIN_SCRIPT = REPO / "plugins" / "check_mailgw"
SANDBOX = Path(sys.executable).parent / "mailgw-sandbox"
SYSTEM_PYTHON = Path("/usr/bin/python3")
VENV_LINE = 'VENV = "/opt/check_mailgw"\n'

as_nobody = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("runuser") is None or not SYSTEM_PYTHON.exists(),
    reason="needs root, runuser and /usr/bin/python3 to run as nobody")


def run_as_nobody(*command: object, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["runuser", "-u", "nobody", "--", *map(str, command)],
                          capture_output=True, text=True, timeout=120, cwd=cwd,
                          stdin=subprocess.DEVNULL, check=False)


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A directory every user may enter (pytest's own tmp_path is root's alone)."""
    directory = Path(tempfile.mkdtemp(prefix="check_mailgw-first-hour-"))
    directory.chmod(0o755)
    try:
        yield directory
    finally:
        shutil.rmtree(directory)


def plugin_with_venv(directory: Path, venv: Path) -> Path:
    """plugins/check_mailgw as it stands, with its production venv at another path."""
    script = PLUGIN_SCRIPT.read_text(encoding="utf-8")
    assert script.count(VENV_LINE) == 1
    copy = directory / "check_mailgw"
    copy.write_text(script.replace(VENV_LINE, f'VENV = "{venv}"\n'), encoding="utf-8")
    copy.chmod(0o755)
    return copy


def venv_of(python: Path, where: Path) -> Path:
    subprocess.run([str(python), "-m", "venv", "--without-pip", str(where)], check=True,
                   timeout=120)
    where.chmod(0o755)
    return where


def assert_unknown(done: subprocess.CompletedProcess[str]) -> list[str]:
    assert done.returncode == 3, done.stdout + done.stderr
    assert done.stderr == ""
    lines = done.stdout.splitlines()
    assert 1 <= len(lines) <= 2 and len(lines[0]) <= 160, done.stdout
    assert lines[0].startswith("MAILGW UNKNOWN - "), lines[0]
    assert "Traceback" not in done.stdout
    return lines


@as_nobody
def test_production_venv_with_a_python_under_root_is_named_with_the_fix(open_dir: Path) -> None:
    # A Python in a directory only root may enter, as pyenv's under /root is.
    private = open_dir / "private"
    private.mkdir(mode=0o700)
    (private / "python3").symlink_to(sys.executable)
    venv = open_dir / "venv"
    (venv / "bin").mkdir(parents=True)
    venv.chmod(0o755)
    (venv / "bin").chmod(0o755)
    (venv / "bin" / "python").symlink_to(private / "python3")
    plugin = plugin_with_venv(open_dir, venv)
    lines = assert_unknown(run_as_nobody(SYSTEM_PYTHON, plugin, "-H", "127.0.0.1",
                                         cwd=open_dir))
    assert lines[0] == "MAILGW UNKNOWN - the venv's Python is not readable by this user " \
        "(nobody): build the venv with /usr/bin/python3 (the fix follows)"
    assert lines[1].startswith(f"fix ({venv}/bin/python -> {private}/python3): "
                               f"/usr/bin/python3 -m venv --clear {venv} && {venv}/bin/pip "
                               "install "), lines[1]


@as_nobody
def test_production_venv_of_the_systems_python_is_not_blamed(open_dir: Path) -> None:
    # nobody may run this venv's Python: the package is just not installed for it.
    venv = venv_of(SYSTEM_PYTHON, open_dir / "venv")
    plugin = plugin_with_venv(open_dir, venv)
    lines = assert_unknown(run_as_nobody(SYSTEM_PYTHON, plugin, "-H", "127.0.0.1",
                                         cwd=open_dir))
    assert lines[0].startswith("MAILGW UNKNOWN - the check_mailgw package is not installed "
                               "for /usr/bin/python3"), lines


@as_nobody
def test_venv_whose_packages_this_user_cannot_read_says_so(open_dir: Path) -> None:
    venv = venv_of(SYSTEM_PYTHON, open_dir / "venv")
    (venv / "lib").chmod(0o700)  # as pip leaves it under a umask of 077
    lines = assert_unknown(run_as_nobody(venv / "bin" / "python", PLUGIN_SCRIPT, "-H",
                                         "127.0.0.1", cwd=open_dir))
    assert lines[0] == "MAILGW UNKNOWN - the virtual environment is not readable by this " \
        "user (nobody) (the fix follows)"
    assert lines[1].startswith(f"fix ({venv}/lib/python3."), lines[1]
    assert lines[1].endswith(f"/site-packages): chmod -R a+rX {venv}"), lines[1]


def sandbox(*arguments: object, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(SANDBOX), *map(str, arguments)], capture_output=True, text=True,
                          timeout=300, cwd=cwd, stdin=subprocess.DEVNULL, check=False)


def test_demo_shows_an_expected_failure_for_each_mode_and_exits_0(tmp_path: Path) -> None:
    done = sandbox("--demo", "--port-base", "0", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stderr == ""
    out = done.stdout
    assert "7 of 7 checks exited 0." in out
    for mode, scenario in [("smtp", "auth-disabled"), ("o365-smtp", "sp-not-registered"),
                           ("graph", "graph-denied")]:
        shown = re.search(rf"^# EXPECTED FAILURE, {mode} mode, scenario {scenario}: .*\n"
                          rf"\$ check_mailgw --mode {mode} .* -v\n"
                          r"  MAILGW CRITICAL - .*\n(?:  .*\n)*?"
                          r"  exit code 2 \(as expected\)$", out, re.M)
        assert shown, f"no expected failure for {mode}:\n{out}"
    assert "3 of 3 expected failures failed as expected." in out
    # The printed lines are for a sandbox that stays up.
    assert out.rstrip().endswith(
        "These command lines need a running sandbox: this demo's servers and files are gone "
        "now. Run mailgw-sandbox (without --demo): it prints the same lines with its own "
        "files and serves until Ctrl-C; mailgw-sandbox --scenario NAME plays a failure.")
    assert SANDBOX_CLIENT_SECRET not in out


@pytest.mark.parametrize(("offset", "listener"), [
    (53, "DNS"), (87, "SMTP with STARTTLS"), (-35, "SMTP with TLS"), (25, "SMTP, plain"),
    (-57, "identity + Graph"), (88, "Exchange SMTP")])
def test_a_port_in_use_is_named_with_port_base(
        tmp_path: Path, offset: int, listener: str) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        done = sandbox("--port-base", port - offset, "--dir", tmp_path, cwd=tmp_path)
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stdout == ""
    assert done.stderr == (
        f"mailgw-sandbox: cannot listen on 127.0.0.1:{port} ({listener}): address already "
        "in use (another mailgw-sandbox?): stop what listens there, or give another "
        "--port-base N (0 picks free ports)\n")


def test_an_unknown_user_is_refused_by_name(tmp_path: Path) -> None:
    done = sandbox("--user", "no-such-user-here", cwd=tmp_path)
    assert done.returncode == 2
    assert "mailgw-sandbox: error: argument --user: no such user: no-such-user-here" \
        in done.stderr
    assert "Traceback" not in done.stderr


@as_nobody
@pytest.mark.parametrize("own_dir", [False, True])
def test_files_go_to_the_user_who_runs_the_checks(open_dir: Path, own_dir: bool) -> None:
    directory = open_dir / "sandbox"
    config = open_dir / "sandbox.toml"
    where = ["--dir", directory] if own_dir else []
    child = subprocess.Popen(
        [str(SANDBOX), "--port-base", "0", *map(str, where), "--user", "nobody",
         "--write-config", str(config)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert child.stdout is not None
    try:
        banner = read_until(child.stdout.fileno(), READY_LINE, timeout=60)
        files = re.search(r"^  files +(\S+)(?: \(removed on exit\))?, owned by nobody$",
                          banner, re.M)
        assert files, banner
        directory = Path(files.group(1))
        modes = {"ca.pem": 0o644, "password": 0o600, "client-secret": 0o600,
                 "client-certificate.pem": 0o600}
        for path in [directory, config, *(directory / name for name in modes)]:
            assert path.stat().st_uid == 65534, path
        for name, mode in modes.items():
            assert stat.S_IMODE((directory / name).stat().st_mode) == mode, name
        # What the plugin needs, read as that user.
        for path in [config, *(directory / name for name in modes)]:
            read = run_as_nobody("cat", path, cwd=open_dir)
            assert read.returncode == 0, read.stderr
    finally:
        child.terminate()
        _, errors = child.communicate(timeout=60)
    assert child.returncode == 0
    assert errors == b""  # no note: nobody may enter the directory


@as_nobody
def test_a_directory_the_user_cannot_enter_is_noted(open_dir: Path) -> None:
    closed = open_dir / "closed"
    closed.mkdir(mode=0o700)
    child = subprocess.Popen(
        [str(SANDBOX), "--port-base", "0", "--dir", str(closed / "sandbox"), "--user",
         "nobody"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert child.stdout is not None
    try:
        read_until(child.stdout.fileno(), READY_LINE, timeout=60)
    finally:
        child.terminate()
        _, errors = child.communicate(timeout=60)
    assert errors == (f"mailgw-sandbox: note: nobody cannot enter {closed / 'sandbox'} or a "
                      "directory above it: give it the way in, or another --dir\n")
