"""Start and stop sandbox SMTP listeners, whichever scenario they play."""

import asyncio
import ssl
from collections.abc import Callable
from functools import partial
from typing import get_args

from check_mailgw.sandbox.accounts import SANDBOX_PASSWORD, SANDBOX_USER, default_accounts
from check_mailgw.sandbox.plumbing.background import RunningServer, listen_on, serve_tcp
from check_mailgw.sandbox.plumbing.ca import SandboxCA
from check_mailgw.sandbox.scenarios import Scenario, get_scenario
from check_mailgw.sandbox.smtp import scripted
from check_mailgw.sandbox.smtp.dialect import Mailbox, Received, SandboxSMTP, Security
from check_mailgw.sandbox.smtp.tls_refusal import RefusedHandshake
from check_mailgw.sandbox.smtp.transcript import Transcript

__all__ = [
    "SANDBOX_PASSWORD",
    "SANDBOX_USER",
    "Received",
    "Security",
    "SmtpServer",
    "start_smtp",
]


class SmtpServer(RunningServer):
    """A running sandbox SMTP listener: where it listens, what it received, how to stop it."""

    def __init__(
        self,
        mailbox: Mailbox,
        smtp_class: type[SandboxSMTP],
        *,
        security: Security,
        ca: SandboxCA,
        host: str,
        port: int,
    ) -> None:
        self.host = host
        self.security = security
        self._mailbox = mailbox
        self._smtp_class = smtp_class
        self._ca = ca
        self._stopped = False
        self.port, self._stop = _serve(mailbox, smtp_class, security, ca, host, port)

    @property
    def scenario(self) -> Scenario:
        return self._mailbox.scenario

    @property
    def messages(self) -> list[Received]:
        """Messages accepted, oldest first."""
        return self._mailbox.messages

    @property
    def dialogues(self) -> list[Transcript]:
        """Every connection's dialogue, oldest first (not the scripted scenarios')."""
        return self._mailbox.dialogues

    def play(self, scenario: Scenario) -> None:
        """Play another scenario from the next connection on, on the same port.

        A scenario of other certificates or of a scripted server needs another kind of
        listener: the port is closed and opened again for it; the others switch in place.
        """
        same_kind = _listener_kind(scenario) == _listener_kind(self._mailbox.scenario)
        self._mailbox.scenario = scenario
        if same_kind or self._stopped:
            return
        self._stop()
        _, self._stop = _serve(
            self._mailbox, self._smtp_class, self.security, self._ca, self.host, self.port
        )

    def stop(self) -> None:
        """Close the listener and every connection; safe to call twice."""
        if not self._stopped:
            self._stopped = True
            self._stop()

    def __repr__(self) -> str:
        return f"<SmtpServer {self.scenario.name} {self.security} on {self.host}:{self.port}>"


def start_smtp(
    *,
    security: Security,
    scenario: str = "ok",
    ca: SandboxCA,
    host: str = "127.0.0.1",
    port: int = 0,
    accounts: dict[str, str] | None = None,
) -> SmtpServer:
    """Start an SMTP listener on an IP literal (port 0: any free port) playing a scenario."""
    if security not in get_args(Security):
        raise ValueError(f"unknown security {security!r}; choose one of {get_args(Security)}")
    chosen = get_scenario(scenario)
    mailbox = Mailbox(chosen, dict(accounts or default_accounts()))
    return SmtpServer(mailbox, SandboxSMTP, security=security, ca=ca, host=host, port=port)


def _listener_kind(scenario: Scenario) -> tuple[str, str]:
    """What a listener is made for at its start: a scripted server plays one scenario only;
    an SMTP engine plays any with the certificates it was given."""
    if scenario.script is not None:
        return "scripted", scenario.name
    return "engine", scenario.tls


def _serve(
    mailbox: Mailbox,
    smtp_class: type[SandboxSMTP],
    security: Security,
    ca: SandboxCA,
    host: str,
    port: int,
) -> tuple[int, Callable[[], None]]:
    """Serve mailbox's scenario on host:port: the port bound, and how to stop serving."""
    chosen = mailbox.scenario
    if chosen.script == "blackhole":
        hole = scripted.Blackhole(host, port)
        return hole.port, hole.close
    context = _server_context(ca, chosen)
    sock = listen_on(host, port)
    bound_port: int = sock.getsockname()[1]
    stop = serve_tcp(
        f"sandbox-smtp-{bound_port}",
        sock,
        lambda loop: _session_factory(mailbox, smtp_class, security, context, loop),
    )
    return bound_port, stop


def _server_context(ca: SandboxCA, scenario: Scenario) -> ssl.SSLContext:
    if scenario.tls == "handshake-failure":
        return ca.handshake_failure_context()
    return ca.server_context(scenario.tls)


def _session_factory(
    mailbox: Mailbox,
    smtp_class: type[SandboxSMTP],
    security: Security,
    context: ssl.SSLContext,
    loop: asyncio.AbstractEventLoop,
) -> tuple[Callable[[], asyncio.Protocol], ssl.SSLContext | None]:
    """What plays each connection, and the TLS to wrap around it first, if any."""
    scenario = mailbox.scenario
    if scenario.script is not None:
        behind_tls = security == "implicit" and scripted.speaks_tls(scenario)
        return partial(scripted.ScriptedSession, scenario), context if behind_tls else None
    if security == "implicit":
        if scenario.tls == "handshake-failure":
            return partial(RefusedHandshake, context), None
        smtp = partial(smtp_class, mailbox, security=security, starttls_context=None, loop=loop)
        return smtp, context
    smtp = partial(smtp_class, mailbox, security=security, starttls_context=context, loop=loop)
    return smtp, None
