"""What an incomplete installation tells the user: one line naming what is missing and the fix.

Each case runs a real interpreter that lacks some of the distributions: a virtual
environment whose site-packages links everything of this one's but those, or Debian's
own /usr/bin/python3, which has none of the package.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import select
import signal
import socket
import ssl
import subprocess
import sys
import sysconfig
import time
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from check_mailgw.sandbox.mailgw_sandbox import READY_LINE, SANDBOX_REQUIREMENTS

REPO = Path(__file__).resolve().parent.parent
PLUGIN_SCRIPT = REPO / "plugins" / "check_mailgw"
DEBIAN_PYTHON = Path("/usr/bin/python3")
DEPENDENCIES = ("nagiosplugin", "dnspython", "cryptography", "msal", "requests")

Interpreter = Callable[..., Path]


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def top_level_entries(site: Path, distribution: str) -> set[str]:
    """The names in site-packages that belong to an installed distribution."""
    entries: set[str] = set()
    for found in importlib.metadata.distributions(path=[str(site)]):
        if normalized(found.metadata["Name"]) == normalized(distribution):
            entries |= {file.parts[0] for file in found.files or ()}
    return entries - {"..", "__pycache__"}


@pytest.fixture
def interpreter_without(tmp_path: Path) -> Interpreter:
    """Factory: a virtual environment with everything this interpreter has, less some
    distributions (check_mailgw itself too), and a pipx-made one if asked; returns its python.
    """

    def make(*hidden: str, name: str = "venv", pipx: bool = False) -> Path:
        venv = tmp_path / name
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True,
                       timeout=120)
        target = Path(sysconfig.get_paths(vars={"base": str(venv), "platbase": str(venv)})
                      ["purelib"])
        for site in {Path(sysconfig.get_paths()[key]) for key in ("purelib", "platlib")}:
            left_out = set().union(*(top_level_entries(site, name) for name in hidden))
            for entry in site.iterdir():
                if entry.name not in left_out and not (target / entry.name).exists():
                    (target / entry.name).symlink_to(entry)
        if pipx:
            (venv / "pipx_metadata.json").write_text("{}")
        return venv / "bin" / "python"

    return make


def run(*command: object, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(part) for part in command], capture_output=True, text=True,
                          timeout=120, cwd=cwd, stdin=subprocess.DEVNULL)


def test_sandbox_requirements_are_the_sandbox_extra() -> None:
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert sorted(SANDBOX_REQUIREMENTS.values()) == \
        sorted(pyproject["project"]["optional-dependencies"]["sandbox"])


@pytest.mark.parametrize("command", [
    ["-m", "check_mailgw.sandbox", "--port-base", "0"],
    # What the mailgw-sandbox entry point runs.
    ["-c", "import sys; from check_mailgw.sandbox.mailgw_sandbox import main; sys.exit(main())",
     "--demo"],
])
def test_sandbox_without_its_extra_says_how_to_install_it(
        interpreter_without: Interpreter, tmp_path: Path, command: list[str]) -> None:
    python = interpreter_without("aiosmtpd", "trustme")
    done = run(python, *command, cwd=tmp_path)
    assert done.returncode == 3, done.stderr
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith(
        "mailgw-sandbox: the sandbox needs aiosmtpd and trustme (the check_mailgw[sandbox] "
        f"extra), not installed for {python}: ")
    assert done.stderr.rstrip().endswith(f"{python} -m pip install 'aiosmtpd>=1.4' 'trustme>=1.1'")


def test_pytest_fixtures_without_the_sandbox_extra_say_how_to_install_it(
        interpreter_without: Interpreter, tmp_path: Path) -> None:
    python = interpreter_without("aiosmtpd", "trustme")
    (tmp_path / "test_app.py").write_text(
        "def test_without_the_sandbox():\n    pass\n\n\n"
        "def test_with_it(mailgw_sandbox):\n    pass\n")
    done = run(python, "-m", "pytest", "-p", "no:cacheprovider", "-q", "test_app.py",
               cwd=tmp_path)
    assert done.returncode == 1, done.stdout
    assert "1 passed, 1 error" in done.stdout
    assert "the mailgw_sandbox fixtures: the sandbox needs aiosmtpd and trustme (the " \
        f"check_mailgw[sandbox] extra), not installed for {python}: " in done.stdout
    assert "Traceback" not in done.stdout


def test_sandbox_in_a_pipx_venv_without_its_extra_says_pipx_inject(
        interpreter_without: Interpreter, tmp_path: Path) -> None:
    python = interpreter_without("trustme", name="check-mailgw", pipx=True)
    done = run(python, "-m", "check_mailgw.sandbox", cwd=tmp_path)
    assert done.returncode == 3, done.stderr
    assert "the sandbox needs trustme (the check_mailgw[sandbox] extra)" in done.stderr
    assert "pipx inject check-mailgw 'trustme>=1.1' (or, from the clone: pipx install " \
        "--force '.[sandbox]')" in done.stderr
    assert "Traceback" not in done.stderr


def test_sandbox_lists_its_scenarios_without_its_extra(
        interpreter_without: Interpreter, tmp_path: Path) -> None:
    python = interpreter_without("aiosmtpd", "trustme")
    done = run(python, "-m", "check_mailgw.sandbox", "--list-scenarios", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "auth-disabled" in done.stdout


def assert_one_unknown_line(done: subprocess.CompletedProcess[str], start: str) -> str:
    assert done.returncode == 3, done.stdout + done.stderr
    assert done.stderr == ""
    lines = done.stdout.splitlines()
    assert done.returncode == 3, done.stdout
    # The problem on a first line that fits 160 characters; a long fix on a second line.
    assert 1 <= len(lines) <= 2 and len(lines[0]) <= 160, done.stdout
    # A long interpreter path may move to the second line: the words before it stay first.
    assert lines[0].startswith(f"MAILGW UNKNOWN - {start.split(' for ')[0]}"), lines[0]
    assert start.split(" for ")[-1].rstrip(": ") in done.stdout
    return done.stdout.rstrip("\n")


def test_plugin_run_by_an_interpreter_without_the_package_names_the_production_install(
        interpreter_without: Interpreter, tmp_path: Path) -> None:
    python = interpreter_without("check_mailgw")
    line = assert_one_unknown_line(
        run(python, PLUGIN_SCRIPT, "-H", "127.0.0.1", cwd=tmp_path),
        f"the check_mailgw package is not installed for {python}: ")
    assert line.endswith(
        f": python3 -m venv /opt/check_mailgw && /opt/check_mailgw/bin/pip install {REPO} "
        "&& ln -sf /opt/check_mailgw/bin/check_mailgw /usr/lib/nagios/plugins/check_mailgw")


@pytest.mark.skipif(not DEBIAN_PYTHON.exists(), reason="no /usr/bin/python3 on this system")
def test_plugin_linked_into_a_plugin_directory_under_debians_python(tmp_path: Path) -> None:
    plugin_directory = tmp_path / "plugins"
    plugin_directory.mkdir()
    (plugin_directory / "check_mailgw").symlink_to(PLUGIN_SCRIPT)
    line = assert_one_unknown_line(
        run(DEBIAN_PYTHON, plugin_directory / "check_mailgw", cwd=tmp_path),
        "the check_mailgw package is not installed for /usr/bin/python3: ")
    # The fix replaces the link that was run by the virtual environment's command.
    assert line.endswith(
        f"/opt/check_mailgw/bin/pip install {REPO} && ln -sf /opt/check_mailgw/bin/check_mailgw "
        f"{plugin_directory / 'check_mailgw'}")


@pytest.mark.parametrize("dependency", DEPENDENCIES)
def test_plugin_run_without_a_dependency_names_it(
        interpreter_without: Interpreter, tmp_path: Path, dependency: str) -> None:
    python = interpreter_without(dependency)
    line = assert_one_unknown_line(
        run(python, PLUGIN_SCRIPT, "-H", "127.0.0.1", "--from", "a@example.com", cwd=tmp_path),
        f"check_mailgw needs {dependency}, not installed for {python}: ")
    assert line.endswith(f": {python} -m pip install {dependency}")


def test_plugin_run_by_an_interpreter_with_everything_runs_the_check(tmp_path: Path) -> None:
    done = run(sys.executable, PLUGIN_SCRIPT, "--version", cwd=tmp_path)
    assert re.fullmatch(r"check_mailgw \d+\.\d+\.\d+\S*\n", done.stdout), done.stdout
    assert done.returncode == 3


def read_until(stream: int, marker: str, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    seen = b""
    while f"\n{marker}\n".encode() not in b"\n" + seen:
        ready, _, _ = select.select([stream], [], [], max(0.0, deadline - time.monotonic()))
        chunk = os.read(stream, 65536) if ready else b""
        if not chunk:
            raise AssertionError(f"no {marker!r} within {timeout} s; got:\n{seen.decode()}")
        seen += chunk
    return seen.decode()


def read_reply(connection: socket.socket) -> bytes:
    """One SMTP reply, read a byte at a time so nothing of what follows is consumed."""
    reply = b""
    while not re.search(rb"(?:^|\n)\d{3} [^\n]*\r\n$", reply):
        byte = connection.recv(1)
        assert byte, f"connection closed after {reply!r}"
        reply += byte
    return reply


@pytest.fixture
def sandbox_command(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """A running mailgw-sandbox on free ports, and its banner; killed if a test leaves it."""
    child = subprocess.Popen(
        [sys.executable, "-m", "check_mailgw.sandbox", "--port-base", "0", "--dir",
         str(tmp_path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert child.stdout is not None
    try:
        yield child, read_until(child.stdout.fileno(), READY_LINE, timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
        child.communicate()


def test_sandbox_stops_cleanly_on_sigterm_with_tls_sessions_it_closed(
        sandbox_command: tuple[subprocess.Popen[bytes], str], tmp_path: Path) -> None:
    # Python 3.11.2 (Debian 12) failed here: aborting an SSL transport that the session
    # had already closed raised at shutdown, and the command ended with a traceback.
    child, banner = sandbox_command
    ports = {name: int(port) for name, port in re.findall(
        r"^  (SMTP with STARTTLS|SMTP with TLS|Exchange SMTP) +\S+?:(\d+)", banner, re.M)}
    context = ssl.create_default_context(cafile=tmp_path / "ca.pem")
    held: list[socket.socket] = []
    try:
        implicit = context.wrap_socket(
            socket.create_connection(("127.0.0.1", ports["SMTP with TLS"]), timeout=10),
            server_hostname="127.0.0.1")
        held.append(implicit)
        implicit.recv(1000)
        implicit.sendall(b"QUIT\r\n")
        for port in (ports["SMTP with STARTTLS"], ports["Exchange SMTP"]):
            plain = socket.create_connection(("127.0.0.1", port), timeout=10)
            held.append(plain)
            read_reply(plain)  # the greeting
            for command in (b"EHLO client.test", b"STARTTLS"):
                plain.sendall(command + b"\r\n")
                read_reply(plain)
            held.append(context.wrap_socket(plain, server_hostname="127.0.0.1"))
            held[-1].sendall(b"QUIT\r\n")
        time.sleep(0.5)  # the sessions answer QUIT and close their side
        child.send_signal(signal.SIGTERM)
        out, errors = child.communicate(timeout=30)
    finally:
        for connection in held:
            connection.close()
    assert child.returncode == 0, errors.decode()
    assert errors == b""
    assert out.decode().rstrip().endswith("Stopping.")
