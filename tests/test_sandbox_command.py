"""The mailgw-sandbox command: its scenario list, check commands, config file and demo."""

import os
import re
import select
import signal
import stat
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest
from checkrun import run_check
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from check_mailgw.sandbox.accounts import SANDBOX_PASSWORD, SANDBOX_USER
from check_mailgw.sandbox.check_commands import SandboxPorts, check_commands
from check_mailgw.sandbox.config_file import write_config
from check_mailgw.sandbox.m365.tenant import (
    SANDBOX_CLIENT_ID,
    SANDBOX_CLIENT_SECRET,
    SANDBOX_TENANT_ID,
)
from check_mailgw.sandbox.mailgw_sandbox import READY_LINE, main
from check_mailgw.sandbox.scenarios import PART_TITLES, SCENARIOS


def test_list_scenarios_prints_every_name_with_its_description_under_its_part(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["--list-scenarios"]) == 0
    printed = capsys.readouterr().out
    for scenario in SCENARIOS.values():
        assert re.search(
            rf"^  {re.escape(scenario.name)} +{re.escape(scenario.description)}$", printed, re.M
        )
        title = PART_TITLES[scenario.part]
        assert printed.index(f"{title}:") < printed.index(f"  {scenario.name} ")


def test_check_commands_point_at_the_sandbox_files(tmp_path: Path) -> None:
    commands = check_commands(tmp_path, SandboxPorts.from_base(2500))
    assert [command[:2] for command in commands] == [
        *[["--mode", "smtp"]] * 4,
        ["--mode", "o365-smtp"],
        ["--mode", "graph"],
        ["--mode", "graph"],
    ]
    assert [command[command.index("-p") + 1] for command in commands[:5]] == [
        "2587",
        "2465",
        "2587",
        "2525",
        "2588",
    ]
    assert commands[2][commands[2].index("--dns-server") + 1] == "127.0.0.1:2553"
    for command in commands[:3]:
        assert command[command.index("--password-file") + 1] == str(tmp_path / "password")
        assert command[command.index("--ca-file") + 1] == str(tmp_path / "ca.pem")
    assert commands[1][commands[1].index("--tls") + 1] == "implicit"
    assert "--tls" not in commands[3]
    assert "--username" not in commands[3]
    for command in commands[4:]:
        assert command[command.index("--authority") + 1] == "https://127.0.0.1:2443"
        assert command[command.index("--graph-url") + 1] == "https://127.0.0.1:2443"
        assert command[command.index("--tenant-id") + 1] == SANDBOX_TENANT_ID
        assert command[command.index("--client-id") + 1] == SANDBOX_CLIENT_ID
        assert command[command.index("--from") + 1] == SANDBOX_USER
        assert command[command.index("--ca-file") + 1] == str(tmp_path / "ca.pem")
        assert "--tls" not in command
    for command in commands[4:6]:
        assert command[command.index("--client-secret-file") + 1] == str(
            tmp_path / "client-secret"
        )
        assert "--check" not in command
    assert "-H" not in commands[5]
    # The last one: a daily service on the credential expiry, signing in with the certificate.
    expiry = commands[6]
    assert expiry[expiry.index("--client-certificate") + 1] == str(
        tmp_path / "client-certificate.pem"
    )
    assert expiry[-2:] == ["--check", "expiry"]
    assert "--client-secret-file" not in expiry and "-H" not in expiry


def read_until(fd: int, marker: str, timeout: float) -> str:
    """Read a child's output until a line equals marker, without blocking past timeout."""
    deadline = time.monotonic() + timeout
    seen = b""
    while f"\n{marker}\n".encode() not in b"\n" + seen:
        remaining = deadline - time.monotonic()
        ready, _, _ = select.select([fd], [], [], max(0.0, remaining))
        chunk = os.read(fd, 65536) if ready else b""
        if not chunk:
            raise AssertionError(f"no {marker!r} within {timeout} s; got:\n{seen.decode()}")
        seen += chunk
    return seen.decode()


def test_sandbox_command_serves_until_sigterm(tmp_path: Path) -> None:
    config = tmp_path / "check_mailgw.toml"
    child = subprocess.Popen(
        [
            *(sys.executable, "-m", "check_mailgw.sandbox", "--port-base", "0"),
            *("--dir", str(tmp_path), "--write-config", str(config)),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert child.stdout is not None
    try:
        banner = read_until(child.stdout.fileno(), READY_LINE, timeout=15)
        # The config file points at the running sandbox: the plugin checks it through it.
        via_config = run_check("--config", config, "--profile", "smtp")
        child.send_signal(signal.SIGTERM)
        _, errors = child.communicate(timeout=10)
    finally:
        if child.poll() is None:
            child.kill()
            child.communicate()
    assert child.returncode == 0, errors
    assert b"Traceback" not in errors
    assert "check_mailgw --mode smtp -H 127.0.0.1" in banner
    assert "check_mailgw --mode o365-smtp -H 127.0.0.1" in banner
    assert "check_mailgw --mode graph --authority https://127.0.0.1:" in banner
    certificate_file = tmp_path / "client-certificate.pem"
    assert f"client certificate    {certificate_file}  (certificate and key; thumbprint " in banner
    assert f"--client-certificate {certificate_file} " in banner
    assert re.search(r"^  check_mailgw --mode graph .* --check expiry$", banner, re.M)
    assert f"check_mailgw --config {config} --profile smtp" in banner
    assert SANDBOX_TENANT_ID in banner and SANDBOX_CLIENT_ID in banner
    assert SANDBOX_PASSWORD not in banner
    assert SANDBOX_CLIENT_SECRET not in banner
    for name, secret in (("password", SANDBOX_PASSWORD), ("client-secret", SANDBOX_CLIENT_SECRET)):
        assert (tmp_path / name).read_text() == secret
        assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == 0o600
    assert (tmp_path / "ca.pem").read_text().startswith("-----BEGIN CERTIFICATE-----")
    pem = certificate_file.read_text()
    assert pem.startswith("-----BEGIN CERTIFICATE-----")
    assert "-----BEGIN PRIVATE KEY-----" in pem
    assert stat.S_IMODE(os.stat(certificate_file).st_mode) == 0o600
    # The banner names the certificate by the thumbprint of the file's certificate.
    thumbprint = x509.load_pem_x509_certificate(pem.encode()).fingerprint(hashes.SHA1())
    assert f"thumbprint {thumbprint.hex().upper()}, ends " in banner
    assert via_config.exit_code == 0, via_config.stdout + via_config.stderr
    assert via_config.first_line.startswith("MAILGW OK")
    assert SANDBOX_CLIENT_SECRET not in config.read_text()


def test_written_config_has_a_profile_per_mode_matching_the_command_lines(
    tmp_path: Path,
) -> None:
    ports = SandboxPorts.from_base(2500)
    config = write_config(tmp_path / "sandbox.toml", tmp_path, ports, ports)
    document = tomllib.loads(config.read_text())
    assert document["defaults"] == {"from": SANDBOX_USER, "ca_file": str(tmp_path / "ca.pem")}
    profiles = document["profiles"]
    assert list(profiles) == ["smtp", "o365-smtp", "graph", "sandbox-expiry"]
    assert profiles["smtp"] == {
        "mode": "smtp",
        "hostname": "127.0.0.1",
        "port": 2587,
        "tls": "starttls",
        "username": SANDBOX_USER,
        "password_file": str(tmp_path / "password"),
    }
    oauth = zip(
        ("o365-smtp", "graph", "sandbox-expiry"), check_commands(tmp_path, ports)[4:], strict=True
    )
    for mode, arguments in oauth:
        options = dict(zip(arguments[::2], arguments[1::2], strict=True))
        profile = {**document["defaults"], **profiles[mode]}
        for option, value in options.items():
            key = {"-H": "hostname", "-p": "port"}.get(option, option[2:].replace("-", "_"))
            assert str(profile.pop(key)) == value, option
        assert profile == {}


def test_demo_runs_every_printed_check_including_the_expiry_service(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Needs the plugin's --client-certificate and --check expiry.
    exit_code = main(["--port-base", "0", "--demo"])
    printed = capsys.readouterr().out
    assert re.search(
        r"^\$ check_mailgw --mode graph .* --client-certificate \S+/client-certificate\.pem "
        r".* --check expiry -v$",
        printed,
        re.M,
    )
    assert "7 of 7 checks exited 0." in printed, printed
    assert exit_code == 0
    assert SANDBOX_CLIENT_SECRET not in printed
    assert "PRIVATE KEY" not in printed
