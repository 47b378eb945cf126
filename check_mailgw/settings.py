"""Domain model: the validated, typed settings of one run (built by from_options).

NamedTuples: frozen and typed, without the dataclasses machinery a run would pay for at
start-up; a changed copy is settings._replace(...)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Literal, NamedTuple
from urllib.parse import urlsplit

from check_mailgw.outcome import State
from check_mailgw.secret import Secret

if TYPE_CHECKING:
    import datetime

    from check_mailgw.microsoft.certificate import ClientCertificate

TlsMode = Literal["none", "starttls", "implicit"]

OAUTH_MODES = ("o365-smtp", "graph")
# Compiled by re on first use (re.fullmatch(GUID, ...)): the smtp mode never needs it.
GUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
# Settings only a password login uses, and those only an SMTP dialogue uses.
PASSWORD_LOGIN_ONLY = frozenset({
    "username", "password", "allow_cleartext_auth", "auth_mechanism", "basic_auth_retirement",
})
SMTP_ONLY = PASSWORD_LOGIN_ONLY | {"tls", "auth", "helo"}


class OAuthSettings(NamedTuple):
    """Domain model: the Entra ID app a Microsoft 365 mode signs in as, and where."""

    tenant_id: str
    client_id: str
    client_secret: Secret | None  # exactly one of client_secret and certificate
    certificate: ClientCertificate | None
    scopes: tuple[str, ...]
    cloud: str
    authority: str  # https://host[:port], without the tenant
    graph_url: str  # https://host[:port], without /v1.0
    proxy: str | None
    azure_region: str | None
    token_warning: str | None
    token_critical: str | None
    secret_days: tuple[int, int] = (30, 7)  # warning and critical days left, secret or cert
    secret_expires: datetime.datetime | None = None  # given instead of the Graph lookup
    lookup_denied: State = State.WARNING  # the lookup was refused (no Application.Read.All)
    key_passphrase: Secret | None = None  # of the certificate's key; kept only to mask it
    discovery_cache: str | None = None  # a directory; None: the user's cache, "": none

    @property
    def tenant_is_guid(self) -> bool:
        return bool(re.fullmatch(GUID, self.tenant_id))

    @property
    def credential(self) -> str:
        return "client certificate" if self.certificate else "client secret"


class Settings(NamedTuple):
    """Domain model: everything one run needs to know, already validated."""

    mode: str
    hostname: str
    port: int
    tls: TlsMode
    sender: str
    auth: bool
    username: str | None
    password: Secret | None
    allow_cleartext_auth: bool
    helo: str
    address_family: int  # 0 both, 4 or 6
    ca_file: str | None
    insecure: bool
    send_to: str | None
    timeout: float
    timeout_state: State
    warning: str | None
    critical: str | None
    certificate_days: tuple[int, int]
    dns_server: tuple[str, int] | None
    verbosity: int
    output_format: str
    oauth: OAuthSettings | None = None
    basic_auth_retirement: State = State.WARNING  # smtp against Exchange Online
    check: str = "full"  # "chain": without the expiry step; "expiry": token and expiry only
    now: datetime.datetime | None = None  # pinned "now" for the expiry arithmetic (tests)
    auth_mechanism: str | None = None  # PLAIN or LOGIN (-A); None: by what the server offers
    notes: tuple[str, ...] = ()  # advice for the long output, no state change

    def current_time(self) -> datetime.datetime:
        import datetime  # only the expiry and countdown arithmetic need it

        return self.now or datetime.datetime.now(datetime.UTC)

    def shown(self) -> dict[str, Any]:
        """The settings that matter for this mode, as -vvv prints them: graph has no SMTP
        dialogue, the app modes no password login, smtp no app; notes have lines of their
        own, and an unpinned "now" is just the clock."""
        left_out = {"notes", *(("now",) if self.now is None else ())}
        if self.mode in OAUTH_MODES:
            left_out |= PASSWORD_LOGIN_ONLY
        else:
            left_out.add("oauth")
        if self.mode == "graph":
            left_out |= SMTP_ONLY
        return {name: getattr(self, name) for name in self._fields if name not in left_out}

    @property
    def target(self) -> str:
        host = f"[{self.hostname}]" if ":" in self.hostname else self.hostname
        return f"{host}:{self.port}"

    @property
    def secrets(self) -> list[str]:
        secrets = [self.password] if self.password else []
        if self.oauth:
            if self.oauth.client_secret:
                secrets.append(self.oauth.client_secret)
            if self.oauth.certificate:
                secrets.append(self.oauth.certificate.private_key_pem)
            if self.oauth.key_passphrase:
                secrets.append(self.oauth.key_passphrase)
            if self.oauth.proxy and (proxy_password := urlsplit(self.oauth.proxy).password):
                secrets.append(Secret(proxy_password))
        return [secret.reveal() for secret in secrets]
