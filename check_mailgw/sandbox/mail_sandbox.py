"""The whole sandbox at once: DNS, the three SMTP listeners and a local Microsoft 365.

start_mail_sandbox starts every server on loopback; the MailSandbox it returns says
where each listens, which credentials and files a client needs, plays one scenario at
a time on the same ports, and keeps what the servers received until told to forget it.
mailgw-sandbox serves one; the pytest plugin hands one to tests.
"""

from contextlib import ExitStack
from pathlib import Path
from typing import Any, NamedTuple

from check_mailgw.sandbox.accounts import SANDBOX_PASSWORD, SANDBOX_USER, write_password_file
from check_mailgw.sandbox.check_commands import (
    CA_FILE_NAME,
    CLIENT_CERTIFICATE_FILE_NAME,
    CLIENT_SECRET_FILE_NAME,
    PASSWORD_FILE_NAME,
    SandboxPorts,
)
from check_mailgw.sandbox.m365.cloud import M365Sandbox, RequestSeen, start_m365
from check_mailgw.sandbox.m365.graph_api import GraphMessage
from check_mailgw.sandbox.m365.tenant import (
    SANDBOX_CLIENT_SECRET,
    SANDBOX_OPS_MAILBOX,
    SigningKey,
    write_client_secret_file,
)
from check_mailgw.sandbox.plumbing.background import RunningServer, listening
from check_mailgw.sandbox.plumbing.ca import SandboxCA
from check_mailgw.sandbox.plumbing.dns_server import DEFAULT_RECORDS, DnsServer, start_dns
from check_mailgw.sandbox.scenarios import get_scenario
from check_mailgw.sandbox.smtp.dialect import Received
from check_mailgw.sandbox.smtp.listeners import Security, SmtpServer, start_smtp
from check_mailgw.sandbox.smtp.transcript import Transcript

SMTP_LISTENERS: tuple[tuple[Security, str], ...] = (
    ("starttls", "SMTP with STARTTLS"),
    ("implicit", "SMTP with TLS"),
    ("plain", "SMTP, plain"),
)


class Endpoint(NamedTuple):
    """Where a listener is: an IP literal and a port."""

    host: str
    port: int


class MailSandbox(RunningServer):
    """Every sandbox server, the credentials that reach them, and what they received."""

    def __init__(
        self,
        *,
        ca: SandboxCA,
        dns: DnsServer,
        smtp: dict[Security, SmtpServer],
        cloud: M365Sandbox,
        servers: ExitStack,
    ) -> None:
        self.ca = ca
        self.dns = dns
        self.smtp = smtp
        self.cloud = cloud
        self.directory: Path | None = None
        self._servers = servers
        self._stopped = False

    # The account of the SMTP listeners, and the mailboxes of the tenant.
    username = SANDBOX_USER
    password = SANDBOX_PASSWORD
    mailbox = SANDBOX_USER
    other_mailbox = SANDBOX_OPS_MAILBOX
    client_secret = SANDBOX_CLIENT_SECRET

    @property
    def starttls(self) -> Endpoint:
        return self._endpoint("starttls")

    @property
    def implicit_tls(self) -> Endpoint:
        return self._endpoint("implicit")

    @property
    def plain(self) -> Endpoint:
        return self._endpoint("plain")

    @property
    def exchange(self) -> Endpoint:
        """Exchange Online's SMTP submission: STARTTLS, AUTH XOAUTH2 with the tenant's tokens."""
        return Endpoint(self.cloud.smtp_host, self.cloud.smtp_port)

    @property
    def dns_server(self) -> Endpoint:
        """A DNS server knowing mail.sandbox.test (the STARTTLS and plain listeners' host)."""
        return Endpoint(self.dns.host, self.dns.port)

    @property
    def authority(self) -> str:
        """The identity provider's URL, without the tenant: msal's authority is
        f"{authority}/{tenant_id}"."""
        return self.cloud.authority

    @property
    def graph_url(self) -> str:
        """Graph's root: POST {graph_url}/v1.0/users/{mailbox}/sendMail."""
        return self.cloud.graph_url

    @property
    def tenant_id(self) -> str:
        return self.cloud.tenant_id

    @property
    def client_id(self) -> str:
        return self.cloud.client_id

    @property
    def ports(self) -> SandboxPorts:
        starttls, implicit, plain = self.starttls, self.implicit_tls, self.plain
        return SandboxPorts(
            starttls=starttls.port,
            implicit=implicit.port,
            plain=plain.port,
            dns=self.dns.port,
            https=self.cloud.https.port,
            exchange=self.cloud.smtp_port,
            host=starttls.host,
        )

    # The files a client reads, once write_files has written them.
    @property
    def ca_file(self) -> Path:
        """The sandbox CA's certificate (PEM): every listener's certificate is signed by it."""
        return self._file(CA_FILE_NAME)

    @property
    def password_file(self) -> Path:
        return self._file(PASSWORD_FILE_NAME)

    @property
    def client_secret_file(self) -> Path:
        return self._file(CLIENT_SECRET_FILE_NAME)

    @property
    def client_certificate_file(self) -> Path:
        """The app's certificate and private key, one PEM file (written again by play)."""
        return self._file(CLIENT_CERTIFICATE_FILE_NAME)

    @property
    def client_certificate_thumbprint(self) -> str:
        """SHA-1 thumbprint of the app's certificate, in hex, as Entra ID shows it."""
        return self.cloud.app.certificate.sha1_thumbprint

    def write_files(self, directory: Path) -> list[Path]:
        """Write the CA certificate, the password, the client secret and the app's
        certificate into directory (secrets mode 0600); the paths written."""
        self.directory = directory
        return [
            self.ca.write_ca(directory / CA_FILE_NAME),
            write_password_file(directory / PASSWORD_FILE_NAME),
            write_client_secret_file(directory / CLIENT_SECRET_FILE_NAME),
            self.cloud.write_client_certificate(directory / CLIENT_CERTIFICATE_FILE_NAME),
        ]

    # The scenario every server plays.
    @property
    def scenario(self) -> str:
        return self.cloud.scenario.name

    def play(self, scenario: str) -> None:
        """Every server plays scenario from its next connection or request on, on the same
        ports (mailgw-sandbox --list-scenarios lists them). ValueError if unknown."""
        chosen = get_scenario(scenario)
        for server in self.smtp.values():
            server.play(chosen)
        self.cloud.play(chosen.name)
        if self.directory is not None:
            # Its end date is the scenario's.
            self.cloud.write_client_certificate(self.directory / CLIENT_CERTIFICATE_FILE_NAME)

    # What the servers received since the start or the last forget().
    @property
    def messages(self) -> list[Received]:
        """Messages the SMTP listeners accepted (Exchange's too): envelope and message."""
        listeners = [*self.smtp.values(), self.cloud.exchange]
        return [message for server in listeners for message in server.messages]

    @property
    def graph_messages(self) -> list[GraphMessage]:
        """Messages Graph's sendMail accepted."""
        return self.cloud.graph_messages

    @property
    def smtp_dialogues(self) -> list[Transcript]:
        """Every SMTP connection's dialogue, credentials masked; per listener, oldest first."""
        listeners = [*self.smtp.values(), self.cloud.exchange]
        return [dialogue for server in listeners for dialogue in server.dialogues]

    @property
    def http_requests(self) -> list[RequestSeen]:
        """Requests to the identity provider and Graph: service, method, path, status."""
        return self.cloud.requests

    @property
    def issued_tokens(self) -> list[dict[str, Any]]:
        """The claims of every access token issued (aud, roles, appid, exp...)."""
        return self.cloud.issued_tokens

    def forget(self) -> None:
        """Forget what the servers received so far."""
        for server in [*self.smtp.values(), self.cloud.exchange]:
            server.messages.clear()
            server.dialogues.clear()
        for record in (self.graph_messages, self.http_requests, self.issued_tokens):
            record.clear()

    def stop(self) -> None:
        """Stop every server; safe to call twice."""
        if not self._stopped:
            self._stopped = True
            self._servers.close()

    def _endpoint(self, security: Security) -> Endpoint:
        server = self.smtp[security]
        return Endpoint(server.host, server.port)

    def _file(self, name: str) -> Path:
        if self.directory is None:
            raise RuntimeError("the sandbox's files are not written yet: call write_files")
        return self.directory / name

    def __repr__(self) -> str:
        ports = self.ports
        return (f"<MailSandbox {self.scenario} on {ports.host}: smtp {ports.starttls} "
                f"{ports.implicit} {ports.plain}, https {ports.https}, exchange "
                f"{ports.exchange}, dns {ports.dns}>")


def start_mail_sandbox(
    *,
    ca: SandboxCA,
    scenario: str = "ok",
    ports: SandboxPorts | None = None,
    signing_key: SigningKey | None = None,
) -> MailSandbox:
    """Start every server (ports: where; default any free ports on 127.0.0.1).

    PortInUse (of plumbing.background) names the listener whose port is taken.
    """
    wanted = ports or SandboxPorts.from_base(0)
    host = wanted.host
    with ExitStack() as stack:
        with listening(host, DNS=wanted.dns):
            dns = stack.enter_context(start_dns(DEFAULT_RECORDS, host=host, port=wanted.dns))
        listening_ports = {"starttls": wanted.starttls, "implicit": wanted.implicit,
                           "plain": wanted.plain}
        smtp: dict[Security, SmtpServer] = {}
        for security, listener in SMTP_LISTENERS:
            port = listening_ports[security]
            with listening(host, **{listener: port}):
                smtp[security] = stack.enter_context(
                    start_smtp(security=security, scenario=scenario, ca=ca, host=host, port=port))
        with listening(host, **{"identity + Graph": wanted.https,
                                 "Exchange SMTP": wanted.exchange}):
            cloud = stack.enter_context(start_m365(
                ca=ca, scenario=scenario, host=host, https_port=wanted.https,
                smtp_port=wanted.exchange, signing_key=signing_key))
        return MailSandbox(ca=ca, dns=dns, smtp=smtp, cloud=cloud, servers=stack.pop_all())
