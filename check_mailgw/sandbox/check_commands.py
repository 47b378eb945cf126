"""The plugin command lines that check a running sandbox."""

import ipaddress
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

from check_mailgw.sandbox.accounts import SANDBOX_USER
from check_mailgw.sandbox.m365.tenant import (
    CLIENT_CERTIFICATE_FILE_NAME,
    CLIENT_SECRET_FILE_NAME,
    SANDBOX_CLIENT_ID,
    SANDBOX_TENANT_ID,
)

__all__ = [
    "CA_FILE_NAME",
    "CLIENT_CERTIFICATE_FILE_NAME",
    "CLIENT_SECRET_FILE_NAME",
    "DEMO_FAILURES",
    "PASSWORD_FILE_NAME",
    "DemoFailure",
    "OAuthEndpoints",
    "OAuthMode",
    "SandboxPorts",
    "check_commands",
    "expiry_args",
    "expiry_commands",
    "oauth_args",
    "oauth_commands",
    "shell_line",
    "smtp_commands",
]

PLUGIN = "check_mailgw"
CA_FILE_NAME = "ca.pem"
PASSWORD_FILE_NAME = "password"
# Lowest and highest --port-base that keep every port in range.
PORT_BASE_MIN = 58
PORT_BASE_MAX = 65535 - 88
SANDBOX_MAIL_HOST = "mail.sandbox.test"

OAuthMode = Literal["o365-smtp", "graph"]


class OAuthEndpoints(Protocol):
    """Where a local Microsoft 365 listens and who it knows (an M365Sandbox, for one)."""

    @property
    def authority(self) -> str: ...
    @property
    def graph_url(self) -> str: ...
    @property
    def smtp_host(self) -> str: ...
    @property
    def smtp_port(self) -> int: ...
    @property
    def tenant_id(self) -> str: ...
    @property
    def client_id(self) -> str: ...
    @property
    def mailbox(self) -> str: ...


@dataclass(frozen=True)
class SandboxPorts:
    """Where a sandbox's listeners run."""

    starttls: int
    implicit: int
    plain: int
    dns: int
    https: int
    exchange: int
    host: str = "127.0.0.1"

    @classmethod
    def from_base(cls, base: int, host: str = "127.0.0.1") -> "SandboxPorts":
        """Ports base+87, base-35, base+25, base+53, base-57 and base+88 (2587, 2465,
        2525, 2553, 2443 and 2588 for 2500, echoing 587, 465, 25 and 443); base 0
        means any free ports."""
        if base == 0:
            return cls(0, 0, 0, 0, 0, 0, host)
        return cls(base + 87, base - 35, base + 25, base + 53, base - 57, base + 88, host)

    @property
    def authority(self) -> str:
        shown = f"[{self.host}]" if ipaddress.ip_address(self.host).version == 6 else self.host
        return f"https://{shown}:{self.https}"

    @property
    def graph_url(self) -> str:
        return self.authority

    @property
    def smtp_host(self) -> str:
        return self.host

    @property
    def smtp_port(self) -> int:
        return self.exchange

    @property
    def tenant_id(self) -> str:
        return SANDBOX_TENANT_ID

    @property
    def client_id(self) -> str:
        return SANDBOX_CLIENT_ID

    @property
    def mailbox(self) -> str:
        return SANDBOX_USER


def check_commands(directory: Path, ports: SandboxPorts) -> list[list[str]]:
    """Plugin arguments (without the program name) that check every sandbox listener:
    the SMTP ones first, then Exchange SMTP with OAuth, then Graph, then the app's
    credential expiry with its certificate."""
    return (
        smtp_commands(directory, ports)
        + oauth_commands(directory, ports)
        + expiry_commands(directory, ports)
    )


def oauth_commands(directory: Path, sandbox: OAuthEndpoints) -> list[list[str]]:
    """Plugin arguments for the o365-smtp and graph modes against a local Microsoft 365."""
    ca_file = directory / CA_FILE_NAME
    secret_file = directory / CLIENT_SECRET_FILE_NAME
    return [oauth_args(sandbox, mode, ca_file, secret_file) for mode in ("o365-smtp", "graph")]


def expiry_commands(directory: Path, sandbox: OAuthEndpoints) -> list[list[str]]:
    """Plugin arguments for a daily service on the app's credential expiry: Graph mode,
    the certificate credential, --check expiry."""
    ca_file = directory / CA_FILE_NAME
    certificate_file = directory / CLIENT_CERTIFICATE_FILE_NAME
    return [expiry_args(sandbox, "graph", ca_file, certificate_file)]


def oauth_args(
    sandbox: OAuthEndpoints, mode: OAuthMode, ca_file: str | Path, secret_file: str | Path
) -> list[str]:
    """Plugin arguments that check a local Microsoft 365 in one of the OAuth modes."""
    return _oauth_args(sandbox, mode, ca_file, ["--client-secret-file", str(secret_file)])


def expiry_args(
    sandbox: OAuthEndpoints,
    mode: OAuthMode,
    ca_file: str | Path,
    certificate_file: str | Path,
) -> list[str]:
    """Plugin arguments that check only the app's credential expiry, signing in with its
    certificate (a PEM file with the certificate and the private key)."""
    credential = ["--client-certificate", str(certificate_file)]
    return [*_oauth_args(sandbox, mode, ca_file, credential), "--check", "expiry"]


def _oauth_args(
    sandbox: OAuthEndpoints, mode: OAuthMode, ca_file: str | Path, credential: list[str]
) -> list[str]:
    transport = ["-H", sandbox.smtp_host, "-p", str(sandbox.smtp_port)]
    return [
        "--mode",
        mode,
        # o365-smtp speaks STARTTLS on -p by default; graph needs no SMTP host.
        *(transport if mode == "o365-smtp" else []),
        "--authority",
        sandbox.authority,
        "--graph-url",
        sandbox.graph_url,
        "--tenant-id",
        sandbox.tenant_id,
        "--client-id",
        sandbox.client_id,
        *credential,
        "--from",
        sandbox.mailbox,
        "--ca-file",
        str(ca_file),
    ]


def smtp_commands(directory: Path, ports: SandboxPorts) -> list[list[str]]:
    """Plugin arguments (without the program name) that check each sandbox SMTP listener.

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


@dataclass(frozen=True)
class DemoFailure:
    """A failing scenario the demo shows for one mode, and the exit code it must give."""

    mode: Literal["smtp", "o365-smtp", "graph"]
    scenario: str
    exit_code: int = 2  # CRITICAL


# One per mode: what a broken gateway looks like, each in the words of a real service.
DEMO_FAILURES = (
    DemoFailure("smtp", "auth-disabled"),
    DemoFailure("o365-smtp", "sp-not-registered"),
    DemoFailure("graph", "graph-denied"),
)


def shell_line(arguments: list[str]) -> str:
    """A plugin command line as a user would type it."""
    return shlex.join([PLUGIN, *arguments])
