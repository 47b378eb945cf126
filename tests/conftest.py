"""Fixtures: the sandbox's servers on loopback, and the files the plugin reads."""

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from check_mailgw.sandbox.accounts import write_password_file
from check_mailgw.sandbox.check_commands import CA_FILE_NAME, PASSWORD_FILE_NAME
from check_mailgw.sandbox.m365.cloud import M365Sandbox, start_m365
from check_mailgw.sandbox.m365.tenant import (
    CLIENT_SECRET_FILE_NAME,
    SigningKey,
    write_client_secret_file,
)
from check_mailgw.sandbox.plumbing.ca import SandboxCA
from check_mailgw.sandbox.plumbing.dns_server import DnsServer, start_dns
from check_mailgw.sandbox.smtp.listeners import Security, SmtpServer, start_smtp

# The pytest plugin's own tests run pytest on example test files.
pytest_plugins = ["pytester"]
# Their failed asserts show the values compared, as the tests' own do.
pytest.register_assert_rewrite("smtp_clients", "m365_clients")

SANDBOX_RECORDS = {
    "mail.sandbox.test": ["127.0.0.1"],
    "dual.sandbox.test": ["127.0.0.1", "::1"],
}


@pytest.fixture(autouse=True)
def own_cache_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test's runs keep their discovery cache in its own directory, not the user's."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))


@pytest.fixture(scope="session")
def sandbox_ca() -> SandboxCA:
    """The throwaway CA behind every sandbox certificate of the test run."""
    return SandboxCA()


@pytest.fixture(scope="session")
def sandbox_dir(sandbox_ca: SandboxCA, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding ca.pem and password, as mailgw-sandbox writes them."""
    directory = tmp_path_factory.mktemp("sandbox")
    sandbox_ca.write_ca(directory / CA_FILE_NAME)
    write_password_file(directory / PASSWORD_FILE_NAME)
    return directory


@pytest.fixture(scope="session")
def ca_file(sandbox_dir: Path) -> Path:
    """PEM file of the sandbox CA, for --ca-file."""
    return sandbox_dir / CA_FILE_NAME


@pytest.fixture(scope="session")
def password_file(sandbox_dir: Path) -> Path:
    """File (mode 0600) holding the sandbox account's password, for --password-file."""
    return sandbox_dir / PASSWORD_FILE_NAME


@pytest.fixture(scope="session")
def client_secret_file(sandbox_dir: Path) -> Path:
    """File (mode 0600) holding the sandbox app's client secret, for --client-secret-file."""
    return write_client_secret_file(sandbox_dir / CLIENT_SECRET_FILE_NAME)


@pytest.fixture(scope="session")
def sandbox_signing_key() -> SigningKey:
    """The sandbox tenant's token signing key, made once: RSA key generation takes time."""
    return SigningKey.generate()


@pytest.fixture
def m365(
    sandbox_ca: SandboxCA, sandbox_signing_key: SigningKey
) -> Iterator[Callable[..., M365Sandbox]]:
    """Factory: m365(scenario="ok") starts a local Microsoft 365 on free loopback ports.

    Identity provider and Graph over HTTPS, and the Exchange SMTP listener; every
    one it starts is stopped when the test ends.
    """
    started: list[M365Sandbox] = []

    def start(scenario: str = "ok") -> M365Sandbox:
        sandbox = start_m365(ca=sandbox_ca, scenario=scenario, signing_key=sandbox_signing_key)
        started.append(sandbox)
        return sandbox

    yield start
    for sandbox in started:
        sandbox.stop()


@pytest.fixture
def smtp_server(sandbox_ca: SandboxCA) -> Iterator[Callable[..., SmtpServer]]:
    """Factory: smtp_server(security="starttls", scenario="ok", *, host, port, accounts).

    Every server it starts is stopped when the test ends.
    """
    started: list[SmtpServer] = []

    def start(
        security: Security = "starttls",
        scenario: str = "ok",
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        accounts: dict[str, str] | None = None,
    ) -> SmtpServer:
        server = start_smtp(
            security=security,
            scenario=scenario,
            ca=sandbox_ca,
            host=host,
            port=port,
            accounts=accounts,
        )
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def dns_server() -> Iterator[DnsServer]:
    """A sandbox DNS server with mail.sandbox.test (IPv4) and dual.sandbox.test (both)."""
    with start_dns(SANDBOX_RECORDS) as server:
        yield server
