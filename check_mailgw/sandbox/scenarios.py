"""The sandbox's named scenarios: each one changes only what its description says.

One namespace for every part of the sandbox. Fields without a prefix shape every
SMTP listener (the Exchange one too); token_* the identity provider's token
endpoint, graph_* the Graph API's sendMail, exchange_* (and xoauth2_*,
end_of_data_*, tls_ehlo_*) only the Exchange SMTP listener; secret_*,
certificate_* and app_* the app registration's credentials (what the identity
provider accepts and Graph's applications(appId=...) lists).
"""

from dataclasses import dataclass
from typing import Literal

from check_mailgw.sandbox.m365 import entra_errors, graph_errors
from check_mailgw.sandbox.m365.entra_errors import EntraError
from check_mailgw.sandbox.m365.graph_errors import GraphError
from check_mailgw.sandbox.plumbing.http_answers import BAD_GATEWAY, ProxyFailure
from check_mailgw.sandbox.smtp import canned_replies

# A Postfix submission server whose SASL is Dovecot's, set up for Entra ID tokens.
POSTFIX_GREETING_TEXT = "ESMTP Postfix (Debian/GNU)"
DOVECOT_ERROR_STATUS = (
    '{"status":"401","schemes":"bearer","scope":"https://outlook.office365.com/.default"}'
)

# Whether the app may read its own registration (Application.Read.All).
AppLookup = Literal["allowed", "forbidden"]

TlsSetup = Literal["valid", "wrong-host", "expired", "expiring", "handshake-failure"]

# What aiosmtpd cannot play (misbehaviour too crude for an SMTP engine, and small
# dialogues of its own), played by check_mailgw.sandbox.smtp.scripted.
Script = Literal[
    "reply-and-close", "reply-and-await-quit", "reply-and-idle", "idle", "blackhole",
    "endless-reply", "no-pipelining", "terse-replies",
]

# The part of the sandbox a scenario changes, for --list-scenarios.
Part = Literal["all", "smtp", "token", "graph", "exchange", "credentials", "several"]
PART_TITLES: dict[Part, str] = {
    "all": "Everything healthy",
    "smtp": "Every SMTP listener (the Exchange one too)",
    "token": "Identity provider: token endpoint and the tokens it issues",
    "graph": "Graph API",
    "exchange": "Exchange SMTP listener (XOAUTH2)",
    "credentials": "App credentials: secrets, certificates, their lookup",
    "several": "Several parts at once",
}


@dataclass(frozen=True)
class Scenario:
    """Behaviour of the sandbox's servers, as data."""

    name: str
    description: str
    part: Part = "smtp"
    hostname: str = canned_replies.SANDBOX_HOSTNAME
    greeting_text: str = canned_replies.SANDBOX_GREETING_TEXT
    offers_starttls: bool = True
    offers_auth: bool = True
    # None: the listener's own (PLAIN LOGIN; Exchange: LOGIN XOAUTH2).
    auth_mechanisms: tuple[str, ...] | None = None
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
    # Outages (throttling, 5xx, a proxy's page) answer before the request is
    # looked at; refusals (EntraError) once the request itself is fine.
    token_failure: EntraError | ProxyFailure | None = None
    token_delay: float = 0.0
    # Whether tokens carry the app's roles (consented API permissions).
    token_roles: bool = True
    # Outages answer before the token is looked at; refusals once the token
    # and the user are fine.
    graph_failure: GraphError | ProxyFailure | None = None
    exchange_greeting_delay: float = 0.0
    # Answer to AUTH XOAUTH2 once the client has sent its blob.
    xoauth2_reply: str | None = None
    # SMTP listeners other than Exchange's: XOAUTH2 refused with this JSON status in an
    # error challenge (RFC 7628 3.2.3), as Dovecot does; 535 once the client answers empty.
    xoauth2_error_status: str | None = None
    exchange_mail_reply: str | None = None
    # Answer at the end of DATA, instead of accepting the message.
    end_of_data_reply: str | None = None
    # Answer to the EHLO after STARTTLS, before the connection is closed.
    tls_ehlo_reply: str | None = None
    # Days from the sandbox's start until the configured client secret ends
    # (negative: ended); its end date is half a day later, so that "days left"
    # reads this number all day.
    secret_days: float = 180
    # The app's other client secrets: (display name, hint, days until they end).
    other_secrets: tuple[tuple[str, str, float], ...] = ()
    # False: Graph does not list the configured secret (the identity provider
    # still accepts it), as when the lookup reads another app or the secret is gone.
    secret_listed: bool = True
    # Whether Graph lets the app read its registration, or answers 403.
    app_lookup: AppLookup = "allowed"
    # Days until the certificate handed to the plugin ends (half a day later, too).
    certificate_days: float = 365
    # False: the app knows another certificate only, not the one handed out.
    certificate_uploaded: bool = True
    # False: customKeyIdentifier holds other bytes than the thumbprint, as some
    # PowerShell uploads leave it; only the certificate itself (key) identifies it.
    certificate_key_id_is_thumbprint: bool = True
    # Where accepted messages for the tenant's mailboxes land (plumbing.mail_store), and
    # how many seconds after their acceptance; "never": accepted and lost.
    delivery: Literal["inbox", "junk", "never"] = "inbox"
    delivery_delay: float = 0.0
    # Headers the receiving side adds on delivery (Authentication-Results with verdicts).
    delivery_headers: tuple[tuple[str, str], ...] = ()
    # Graph's answer to reading a mailbox's messages, instead of the messages.
    graph_read_failure: GraphError | None = None
    # The IMAP server: every login refused; IDLE offered.
    imap_login_refused: bool = False
    imap_idle: bool = True


_SCENARIOS = (
    Scenario(
        "ok",
        "all healthy: SMTP with AUTH PLAIN/LOGIN, tokens, Graph sendMail, Exchange XOAUTH2",
        part="all",
        # Another secret of the app that ends sooner than the one in use.
        other_secrets=(("old gateway secret", "Xq2", 12),),
    ),
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
        hostname=canned_replies.EXCHANGE_HOSTNAME,
        greeting_text=canned_replies.EXCHANGE_GREETING_TEXT,
        auth_reply=canned_replies.EXCHANGE_AUTH_DISABLED,
        xoauth2_reply=canned_replies.EXCHANGE_AUTH_DISABLED,
    ),
    Scenario(
        "basic-auth-retired",
        "Exchange Online after basic authentication was retired (550 5.7.30)",
        hostname=canned_replies.EXCHANGE_HOSTNAME,
        greeting_text=canned_replies.EXCHANGE_GREETING_TEXT,
        auth_reply=canned_replies.EXCHANGE_BASIC_AUTH_RETIRED,
    ),
    Scenario(
        "dovecot-token-refused",
        "Postfix with Dovecot's SASL (not Exchange) offers XOAUTH2 and refuses every token: "
        "an error challenge with a JSON status, then 535 5.7.8 once the client answers empty",
        greeting_text=POSTFIX_GREETING_TEXT,
        auth_mechanisms=("PLAIN", "LOGIN", "XOAUTH2"),
        xoauth2_error_status=DOVECOT_ERROR_STATUS,
    ),
    Scenario(
        "busy-at-mail",
        "offers PIPELINING, answers MAIL FROM with 421 and closes the connection",
        mail_reply=canned_replies.SERVICE_NOT_AVAILABLE,
    ),
    Scenario(
        "busy",
        "greets with 421 and closes the connection",
        script="reply-and-close",
        opening=canned_replies.SERVICE_NOT_AVAILABLE,
    ),
    Scenario(
        "tempfail",
        "MAIL FROM answered 451 4.7.500 (Exchange throttling)",
        mail_reply=canned_replies.EXCHANGE_SERVER_BUSY,
    ),
    Scenario(
        "bad-greeting",
        "greets with 554 and only waits for QUIT",
        script="reply-and-await-quit",
        opening=canned_replies.NO_SMTP_SERVICE,
    ),
    Scenario(
        "not-smtp",
        "an SSH server on the port: sends its banner, never speaks SMTP",
        script="reply-and-idle",
        opening=canned_replies.SSH_BANNER,
    ),
    Scenario(
        "drop-mid-session",
        "closes the TCP connection, without a reply, when AUTH arrives",
        drop_on_auth=True,
    ),
    Scenario(
        "endless-reply",
        "greets, then answers EHLO with 250- continuation lines that never end",
        script="endless-reply",
        opening=f"220 {canned_replies.SANDBOX_HOSTNAME} {canned_replies.SANDBOX_GREETING_TEXT}",
    ),
    Scenario(
        "no-pipelining",
        "an ESMTP relay without PIPELINING, STARTTLS or AUTH: one reply per command; "
        "senders outside sandbox.test refused",
        script="no-pipelining",
        opening=f"220 {canned_replies.SANDBOX_HOSTNAME} {canned_replies.SANDBOX_GREETING_TEXT}",
    ),
    Scenario(
        "terse-replies",
        "every reply is its code alone or with an empty text (220, 250-, 250), no PIPELINING",
        script="terse-replies",
        opening="220",
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
    # Identity provider
    Scenario(
        "secret-expired",
        "the client secret has expired (401 AADSTS7000222)",
        part="token",
        token_failure=entra_errors.SECRET_EXPIRED,
        # What Graph lists agrees with the refusal.
        secret_days=-2,
    ),
    Scenario(
        "app-disabled",
        "the enterprise application is disabled (400 AADSTS7000112)",
        part="token",
        token_failure=entra_errors.APP_DISABLED,
    ),
    Scenario(
        "conditional-access",
        "Conditional Access blocks the app's token (400 AADSTS53003)",
        part="token",
        token_failure=entra_errors.CONDITIONAL_ACCESS,
    ),
    Scenario(
        "certificate-unknown",
        "no certificate registered for the client assertion (401 AADSTS700027)",
        part="token",
        token_failure=entra_errors.CERTIFICATE_UNKNOWN,
    ),
    Scenario(
        "token-throttled",
        "the token endpoint throttles (429, Retry-After: 30)",
        part="token",
        token_failure=entra_errors.THROTTLED,
    ),
    Scenario(
        "token-unavailable",
        "the token endpoint is unavailable (503)",
        part="token",
        token_failure=entra_errors.UNAVAILABLE,
    ),
    Scenario(
        "token-not-json",
        "a proxy answers the token request with an HTML page (502)",
        part="token",
        token_failure=BAD_GATEWAY,
    ),
    Scenario(
        "token-slow",
        "the token endpoint answers after 1.5 seconds",
        part="token",
        token_delay=1.5,
    ),
    Scenario(
        "rbac-only",
        "tokens carry no roles (Exchange RBAC for Applications); Graph and Exchange accept them",
        part="token",
        token_roles=False,
    ),
    # Graph
    Scenario(
        "graph-denied",
        "sendMail refused: no Mail.Send (403 ErrorAccessDenied)",
        part="graph",
        graph_failure=graph_errors.ACCESS_DENIED,
    ),
    Scenario(
        "graph-no-roles",
        "tokens carry no roles and Graph refuses them (401 NoPermissionsInAccessToken)",
        part="graph",
        token_roles=False,
        graph_failure=graph_errors.NO_PERMISSIONS,
    ),
    Scenario(
        "graph-access-policy",
        "an Application Access Policy excludes the mailbox (403 Access to OData is disabled)",
        part="graph",
        graph_failure=graph_errors.ACCESS_POLICY,
    ),
    Scenario(
        "graph-mailbox-not-enabled",
        "the mailbox is inactive or on-premises (404 MailboxNotEnabledForRESTAPI)",
        part="graph",
        graph_failure=graph_errors.MAILBOX_NOT_ENABLED,
    ),
    Scenario(
        "graph-resource-not-found",
        "the user has no mailbox (404 ResourceNotFound)",
        part="graph",
        graph_failure=graph_errors.RESOURCE_NOT_FOUND,
    ),
    Scenario(
        "graph-throttled",
        "Graph throttles the app (429 ApplicationThrottled, Retry-After: 10)",
        part="graph",
        graph_failure=graph_errors.THROTTLED,
    ),
    Scenario(
        "graph-unavailable",
        "Graph is unavailable (503, Retry-After: 20)",
        part="graph",
        graph_failure=graph_errors.UNAVAILABLE,
    ),
    Scenario(
        "graph-not-json",
        "a proxy answers Graph requests with an HTML page (502)",
        part="graph",
        graph_failure=BAD_GATEWAY,
    ),
    # Exchange SMTP
    Scenario(
        "sp-not-registered",
        "the service principal is not registered in Exchange (535 5.7.3 with a valid token)",
        part="exchange",
        xoauth2_reply=canned_replies.EXCHANGE_AUTH_UNSUCCESSFUL,
    ),
    Scenario(
        "smtp-auth-disabled-mailbox",
        "SMTP AUTH is disabled for the mailbox (535 5.7.139)",
        part="exchange",
        xoauth2_reply=canned_replies.EXCHANGE_MAILBOX_AUTH_DISABLED,
    ),
    Scenario(
        "smtp-conditional-access",
        "Conditional Access refuses the SMTP login (535 5.7.139)",
        part="exchange",
        xoauth2_reply=canned_replies.EXCHANGE_CONDITIONAL_ACCESS,
    ),
    Scenario(
        "xoauth2-malformed",
        "every XOAUTH2 blob is refused as malformed (501 5.5.124)",
        part="exchange",
        xoauth2_reply=canned_replies.EXCHANGE_XOAUTH2_MALFORMED,
    ),
    Scenario(
        "mailbox-logon-failure",
        "AUTH succeeds, then the mailbox cannot be opened at the end of DATA (430 4.2.0)",
        part="exchange",
        end_of_data_reply=canned_replies.EXCHANGE_MAILBOX_LOGON_FAILURE,
    ),
    Scenario(
        "mailbox-logon-failure-mail",
        "AUTH succeeds, then MAIL FROM is answered 430 4.2.0 (mailbox logon failure)",
        part="exchange",
        exchange_mail_reply=canned_replies.EXCHANGE_MAILBOX_LOGON_FAILURE,
    ),
    Scenario(
        "mailbox-logon-failure-auth",
        "the mailbox cannot be opened, answered to AUTH (430 4.2.0)",
        part="exchange",
        xoauth2_reply=canned_replies.EXCHANGE_MAILBOX_LOGON_FAILURE,
    ),
    Scenario(
        "send-as-denied",
        "the end of DATA is refused: no send-as right (554 5.2.252 SendAsDenied)",
        part="exchange",
        end_of_data_reply=canned_replies.EXCHANGE_SEND_AS_DENIED,
    ),
    Scenario(
        "send-as-denied-5760",
        "the end of DATA is refused: no send-as permission (550 5.7.60)",
        part="exchange",
        end_of_data_reply=canned_replies.EXCHANGE_NO_SEND_AS_PERMISSION,
    ),
    Scenario(
        "tls-too-old",
        "the EHLO after STARTTLS is answered 421 4.7.66 (TLS below 1.2) and the line closed",
        part="exchange",
        tls_ehlo_reply=canned_replies.EXCHANGE_TLS_TOO_OLD,
    ),
    Scenario(
        "exchange-tempfail",
        "MAIL FROM answered 451 4.7.0 Temporary server error (PRX4)",
        part="exchange",
        exchange_mail_reply=canned_replies.EXCHANGE_TEMPORARY_ERROR,
    ),
    Scenario(
        "exchange-slow",
        "the Exchange listener greets after 1.5 seconds",
        part="exchange",
        exchange_greeting_delay=1.5,
    ),
    # App credentials
    Scenario(
        "secret-ends-in-20-days",
        "the client secret in use ends in 20 days",
        part="credentials",
        secret_days=20,
    ),
    Scenario(
        "secret-ends-in-3-days",
        "the client secret in use ends in 3 days",
        part="credentials",
        secret_days=3,
    ),
    Scenario(
        "secret-hint-shared",
        "two secrets share the hint of the one in use; one ends in 25 days, the other in 200",
        part="credentials",
        secret_days=200,
        other_secrets=(("check_mailgw monitor (rotated)", "Sbx", 25),),
    ),
    Scenario(
        "secret-not-listed",
        "the app's one listed secret is not the configured one (its hint differs)",
        part="credentials",
        secret_listed=False,
        other_secrets=(("gateway secret", "Q7w", 90),),
    ),
    Scenario(
        "lookup-forbidden",
        "the app may not read its registration (403 Authorization_RequestDenied)",
        part="credentials",
        app_lookup="forbidden",
    ),
    Scenario(
        "certificate-accepted",
        "the certificate's customKeyIdentifier is not its thumbprint; its key still matches",
        part="credentials",
        certificate_key_id_is_thumbprint=False,
    ),
    Scenario(
        "certificate-expiring",
        "the certificate handed out ends in 10 days",
        part="credentials",
        certificate_days=10,
    ),
    Scenario(
        "certificate-not-uploaded",
        "the app knows another certificate, not the one handed out (401 AADSTS700027)",
        part="credentials",
        certificate_uploaded=False,
    ),
    Scenario(
        "no-roles-refused",
        "tokens carry no roles and Exchange refuses them (535 5.7.3): no consent, no "
        "service principal in Exchange, or no RBAC assignment",
        part="several",
        token_roles=False,
        xoauth2_reply=canned_replies.EXCHANGE_AUTH_UNSUCCESSFUL,
    ),
    Scenario(
        "no-roles-send-as-denied",
        "tokens carry no roles; AUTH passes, the end of DATA is refused (554 5.2.252)",
        part="several",
        token_roles=False,
        end_of_data_reply=canned_replies.EXCHANGE_SEND_AS_DENIED,
    ),
    Scenario(
        "slow-token-and-transport",
        "token endpoint and Exchange greeting each take 1.5 seconds",
        part="several",
        token_delay=1.5,
        exchange_greeting_delay=1.5,
    ),
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
