"""The plugin command lines that check a running sandbox."""

import shlex
from dataclasses import dataclass
from pathlib import Path

from check_mailgw.sandbox.accounts import SANDBOX_USER

PLUGIN = "check_mailgw"
CA_FILE_NAME = "ca.pem"
PASSWORD_FILE_NAME = "password"
# Lowest and highest --port-base that keep every port in range.
PORT_BASE_MIN = 36
PORT_BASE_MAX = 65535 - 87
SANDBOX_MAIL_HOST = "mail.sandbox.test"


@dataclass(frozen=True)
class SandboxPorts:
    """Where a sandbox's listeners run."""

    starttls: int
    implicit: int
    plain: int
    dns: int
    host: str = "127.0.0.1"

    @classmethod
    def from_base(cls, base: int, host: str = "127.0.0.1") -> "SandboxPorts":
        """Ports base+87, base-35, base+25 and base+53 (2587, 2465, 2525 and 2553 for
        2500, echoing 587, 465 and 25); base 0 means any free ports."""
        if base == 0:
            return cls(0, 0, 0, 0, host)
        return cls(base + 87, base - 35, base + 25, base + 53, host)


def check_commands(directory: Path, ports: SandboxPorts) -> list[list[str]]:
    """Plugin arguments (without the program name) that check each sandbox listener.

    In order: STARTTLS on an IP literal, implicit TLS, STARTTLS via the
    sandbox's DNS server, and plain SMTP without authentication.
    """
    authenticated = [
        "--from",
        SANDBOX_USER,
        "--username",
        SANDBOX_USER,
        "--password-file",
        str(directory / PASSWORD_FILE_NAME),
        "--ca-file",
        str(directory / CA_FILE_NAME),
    ]
    smtp = ["--mode", "smtp"]
    return [
        [*smtp, "-H", ports.host, "-p", str(ports.starttls), "--tls", *authenticated],
        # Off port 465, the plugin needs telling that TLS comes first.
        [*smtp, "-H", ports.host, "-p", str(ports.implicit), "--tls", "implicit", *authenticated],
        [
            *smtp,
            "-H",
            SANDBOX_MAIL_HOST,
            "--dns-server",
            f"{ports.host}:{ports.dns}",
            "-p",
            str(ports.starttls),
            "--tls",
            *authenticated,
        ],
        [*smtp, "-H", ports.host, "-p", str(ports.plain), "--from", SANDBOX_USER],
    ]


def shell_line(arguments: list[str]) -> str:
    """A plugin command line as a user would type it."""
    return shlex.join([PLUGIN, *arguments])
