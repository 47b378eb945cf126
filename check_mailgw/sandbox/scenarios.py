"""The sandbox's named scenarios: each one changes only what its description says."""

from dataclasses import dataclass
from typing import Literal

from check_mailgw.sandbox import replies

TlsSetup = Literal["valid", "wrong-host", "expired", "expiring", "handshake-failure"]

# Misbehaviour too crude for an SMTP engine, played by check_mailgw.sandbox.scripted.
Script = Literal["reply-and-close", "reply-and-await-quit", "reply-and-idle", "idle", "blackhole"]


@dataclass(frozen=True)
class Scenario:
    """Behaviour of a sandbox SMTP server, as data."""

    name: str
    description: str
    hostname: str = replies.SANDBOX_HOSTNAME
    greeting_text: str = replies.SANDBOX_GREETING_TEXT
    offers_starttls: bool = True
    offers_auth: bool = True
    auth_mechanisms: tuple[str, ...] = ("PLAIN", "LOGIN")
    # AUTH is advertised before TLS but refused until STARTTLS.
    auth_needs_starttls: bool = False
    # Answer to every AUTH once the client has sent its credentials.
    auth_reply: str | None = None
    auth_delay: float = 0.0
    drop_on_auth: bool = False
    mail_reply: str | None = None
    tls: TlsSetup = "valid"
    script: Script | None = None
    opening: str | None = None


_SCENARIOS = (
    Scenario("ok", "a healthy submission server: STARTTLS or TLS, AUTH PLAIN/LOGIN, delivery"),
    Scenario(
        "no-starttls",
        "STARTTLS neither offered nor accepted; AUTH offered in cleartext",
        offers_starttls=False,
    ),
    Scenario(
        "no-auth", "AUTH never offered; the AUTH command is not implemented", offers_auth=False
    ),
    Scenario(
        "login-only",
        "AUTH offers LOGIN only; AUTH PLAIN is an unrecognized mechanism",
        auth_mechanisms=("LOGIN",),
    ),
    Scenario(
        "starttls-required",
        "AUTH offered before TLS but refused with 530 until STARTTLS",
        auth_needs_starttls=True,
    ),
    Scenario(
        "auth-disabled",
        "Exchange Online with SMTP AUTH disabled for the tenant (535 5.7.139)",
        hostname=replies.EXCHANGE_HOSTNAME,
        greeting_text=replies.EXCHANGE_GREETING_TEXT,
        auth_reply=replies.EXCHANGE_AUTH_DISABLED,
    ),
    Scenario(
        "basic-auth-retired",
        "Exchange Online after basic authentication was retired (550 5.7.30)",
        hostname=replies.EXCHANGE_HOSTNAME,
        greeting_text=replies.EXCHANGE_GREETING_TEXT,
        auth_reply=replies.EXCHANGE_BASIC_AUTH_RETIRED,
    ),
    Scenario(
        "busy",
        "greets with 421 and closes the connection",
        script="reply-and-close",
        opening=replies.SERVICE_NOT_AVAILABLE,
    ),
    Scenario(
        "tempfail",
        "MAIL FROM answered 451 4.7.500 (Exchange throttling)",
        mail_reply=replies.EXCHANGE_SERVER_BUSY,
    ),
    Scenario(
        "bad-greeting",
        "greets with 554 and only waits for QUIT",
        script="reply-and-await-quit",
        opening=replies.NO_SMTP_SERVICE,
    ),
    Scenario(
        "not-smtp",
        "an SSH server on the port: sends its banner, never speaks SMTP",
        script="reply-and-idle",
        opening=replies.SSH_BANNER,
    ),
    Scenario(
        "drop-mid-session",
        "closes the TCP connection, without a reply, when AUTH arrives",
        drop_on_auth=True,
    ),
    Scenario("silent", "accepts TCP connections and never sends a byte", script="idle"),
    Scenario("blackhole", "TCP connections never complete (SYNs dropped)", script="blackhole"),
    Scenario("slow-auth", "the AUTH reply comes after 60 seconds", auth_delay=60.0),
    Scenario(
        "tls-handshake-failure",
        "the TLS handshake fails for any standard client",
        tls="handshake-failure",
    ),
    Scenario("cert-expired", "the server certificate expired 3 days ago", tls="expired"),
    Scenario(
        "cert-wrong-host",
        "the server certificate names only other.example.net",
        tls="wrong-host",
    ),
    Scenario("cert-expiring", "the server certificate expires in 10 days", tls="expiring"),
)

SCENARIOS: dict[str, Scenario] = {scenario.name: scenario for scenario in _SCENARIOS}


def get_scenario(name: str) -> Scenario:
    """Look a scenario up by name; ValueError lists the valid names."""
    try:
        return SCENARIOS[name]
    except KeyError:
        raise ValueError(
            f"unknown scenario {name!r}; choose one of: {', '.join(SCENARIOS)}"
        ) from None
