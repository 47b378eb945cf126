"""Validated settings: options and config profile merged, checked, and typed."""

from __future__ import annotations

import ipaddress
import os
import re
import socket
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

from nagiosplugin import Range

from check_mailgw.errors import SettingsError
from check_mailgw.microsoft.clouds import CLOUDS, EXCHANGE_SMTP_PORT
from check_mailgw.modes import MODES
from check_mailgw.net.resolve import is_ip_literal
from check_mailgw.outcome import State
from check_mailgw.secret import (
    SECRET_FILE_LIMIT,
    Secret,
    check_readable_file,
    loose_permissions,
    read_bounded,
)
from check_mailgw.text import escaped, is_control_character, one_line

if TYPE_CHECKING:
    import datetime

    from check_mailgw.microsoft.certificate import ClientCertificate

TlsMode = Literal["none", "starttls", "implicit"]

PASSWORD_ENV = "MAILGW_PASSWORD"
CLIENT_SECRET_ENV = "MAILGW_CLIENT_SECRET"
KEY_PASSPHRASE_ENV = "MAILGW_CLIENT_KEY_PASSPHRASE"
OAUTH_MODES = ("o365-smtp", "graph")
IMPLICIT_TLS_PORT = 465  # RFC 8314: submission over implicit TLS; never cleartext
HTTPS_PORT = 443
DEFAULT_PORTS: dict[str, int] = {"none": 25, "starttls": 587, "implicit": IMPLICIT_TLS_PORT}

_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")
_ADDRESS = re.compile(r"[^@\s<>()\[\],;:\"]+@[^@\s<>()\[\],;:\"]+")
_GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
# Plain decimals only: no exponent (1e400 is inf), no nan/inf, no _ or non-ASCII digits, and
# few enough digits that int() and float() stay exact.
_DECIMAL = r"(?:[0-9]{1,12}(?:\.[0-9]{0,9})?|\.[0-9]{1,9})"
_SECONDS = re.compile(_DECIMAL)
_NAGIOS_RANGE = re.compile(
    rf"(?P<invert>@)?(?:(?P<start>~|[+-]?{_DECIMAL})?:)?(?P<end>[+-]?{_DECIMAL})?")
_DAYS = re.compile(r"[0-9]{1,6}")

DEFAULT_TIMEOUT = 10.0
# Monitoring cores kill a check long before this (Nagios and Icinga 2 after 60 s by default),
# and the longest service, the daily expiry check, needs seconds: a larger -t is a mistake,
# most often milliseconds (-t 10000).
MAX_TIMEOUT = 3600.0
MAX_DAYS = 36500  # a hundred years: more is a typo, not a certificate's lifetime
RANGE_EXAMPLES = "5, 10:, ~:20 or @1:3"
AUTH_MECHANISMS = ("PLAIN", "LOGIN")
CHECKS = ("full", "chain", "expiry")  # --check; in smtp mode full and chain are one chain
# Values that never reach the output or the wire as text: secrets (masked, base64 on the
# wire) and file names (any character a file system allows; shown escaped).
FREE_TEXT_KEYS = frozenset({
    "password", "client_secret", "password_file", "client_secret_file", "client_certificate",
    "client_key", "client_key_passphrase_file", "ca_file", "config",
})
# Settings only a password login uses, and those only an SMTP dialogue uses.
PASSWORD_LOGIN_ONLY = frozenset({
    "username", "password", "allow_cleartext_auth", "auth_mechanism", "basic_auth_retirement",
})
SMTP_ONLY = PASSWORD_LOGIN_ONLY | {"tls", "auth", "helo"}
# Options whose messages name their letter too; the others are --key-with-dashes.
OPTION_NAMES = {
    "hostname": "-H/--hostname", "port": "-p/--port", "sender": "-f/--from",
    "username": "-U/--username", "password": "-P/--password", "helo": "-F/--helo",
    "timeout": "-t/--timeout", "warning": "-w/--warning", "critical": "-c/--critical",
    "certificate_days": "-D/--certificate-days", "auth_mechanism": "-A/--auth-mechanism",
    "output_format": "--format",
}


@dataclass(frozen=True)
class OAuthSettings:
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

    @property
    def tenant_is_guid(self) -> bool:
        return bool(_GUID.fullmatch(self.tenant_id))

    @property
    def credential(self) -> str:
        return "client certificate" if self.certificate else "client secret"


@dataclass(frozen=True)
class Settings:
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
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in left_out}

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


# Names a config profile may set; each matches a long option.
CONFIG_KEYS = {
    "mode", "hostname", "port", "tls", "sender", "auth", "username", "password",
    "password_file", "allow_cleartext_auth", "helo", "address_family", "ca_file", "insecure",
    "send_to", "timeout", "timeout_state", "warning", "critical", "certificate_days",
    "dns_server", "tenant_id", "client_id", "client_secret", "client_secret_file", "scope",
    "cloud", "authority", "graph_url", "proxy", "azure_region", "token_warning",
    "token_critical", "basic_auth_retirement", "client_certificate", "client_key",
    "client_key_passphrase_file", "secret_warning", "secret_critical", "secret_expires",
    "expiry_lookup_denied", "check", "auth_mechanism",
}


def option_name(key: str) -> str:
    return OPTION_NAMES.get(key, f"--{key.replace('_', '-')}")


def refuse_control_characters(value: Any, option: str) -> None:
    """A value that reaches the output or the wire must not carry a line break or the like."""
    texts = [value] if isinstance(value, str) else \
        [v for v in value if isinstance(v, str)] if isinstance(value, list) else []
    found = dict.fromkeys(c for text in texts for c in text if is_control_character(c))
    if found:
        shown = "".join(escaped(c) for c in found)
        if any(0xD800 <= ord(c) <= 0xDFFF for c in found):  # surrogates: bytes, not text
            raise SettingsError(f"{option}: bytes that are not UTF-8 text ({shown})")
        raise SettingsError(f"{option}: control characters ({shown}) are not allowed")


def refuse_control_characters_in(values: Mapping[str, Any],
                                 name: Callable[[str], str]) -> None:
    for key, value in values.items():
        if key not in FREE_TEXT_KEYS:
            refuse_control_characters(value, name(key))


def check_hostname(value: Any) -> str:
    host = str(value).strip().removeprefix("[").removesuffix("]")
    if is_ip_literal(host):
        return host
    name = host.rstrip(".")
    if not name or len(name) > 253 or not all(_LABEL.fullmatch(p) for p in name.split(".")):
        raise SettingsError(f"-H/--hostname {value!r}: not a valid host name or IP address")
    return name


def check_port(value: Any, option: str = "-p/--port") -> int:
    text = str(value).strip()
    if isinstance(value, bool) or not re.fullmatch(r"[0-9]{1,5}", text):
        raise SettingsError(f"{option} {value!r}: expected a port number from 1 to 65535, "
                            "such as 587")
    port = int(text)
    if not 1 <= port <= 65535:
        raise SettingsError(f"{option} {port}: out of range (1-65535)")
    return port


def check_address(value: Any, option: str) -> str:
    address = str(value).strip()
    if address.startswith("<") and address.endswith(">"):  # as check_smtp's -f accepts it
        address = address[1:-1].strip()
    if not _ADDRESS.fullmatch(address) or address.startswith(".") or ".." in address:
        raise SettingsError(f"{option} {value!r}: not a valid e-mail address")
    return address


def check_tls(value: Any) -> str:
    """'auto', 'none', 'starttls' or 'implicit'; a config file may say true/false."""
    if value is True:
        return "auto"
    if value is False:
        return "none"
    text = str(value).lower()
    if text not in ("auto", "none", "starttls", "implicit"):
        raise SettingsError(f"--tls {value!r}: expected starttls, implicit (or none in a config)")
    return text


def resolve_tls(tls: str | None, port: int | None) -> tuple[TlsMode, int]:
    """The TLS mode and port: 465 means implicit TLS, --tls alone means STARTTLS elsewhere."""
    tls = tls or "none"
    if tls == "auto":
        tls = "implicit" if port == IMPLICIT_TLS_PORT else "starttls"
    if tls == "none" and port == IMPLICIT_TLS_PORT:
        tls = "implicit"
    return tls, port or DEFAULT_PORTS[tls]  # type: ignore[return-value]


def check_timeout(value: Any) -> float:
    """Seconds for the whole run: a plain number above 0, at most MAX_TIMEOUT."""
    text = str(value).strip()
    if isinstance(value, bool) or not _SECONDS.fullmatch(text) or float(text) <= 0:
        raise SettingsError(f"-t/--timeout {value!r}: expected seconds, a number greater "
                            "than 0 such as 10")
    if float(text) > MAX_TIMEOUT:
        raise SettingsError(f"-t/--timeout {value!r}: at most {MAX_TIMEOUT:g} seconds; -t "
                            "counts seconds, not milliseconds")
    return float(text)


def check_range(value: Any, option: str) -> str | None:
    """A Nagios range ([@][start:][end]) with finite, plain numbers; empty means none."""
    if value is None:
        return None
    text = str(value).strip()
    if not text:
        return None
    expected = f"expected a Nagios range such as {RANGE_EXAMPLES}"
    match = _NAGIOS_RANGE.fullmatch(text) if not isinstance(value, bool) else None
    if not match or (match["start"] in (None, "~") and match["end"] is None):
        raise SettingsError(f"{option} {value!r}: {expected}")
    start = match["start"] if match["start"] not in (None, "~") else "0"
    if match["start"] != "~" and match["end"] is not None and float(start) > float(match["end"]):
        raise SettingsError(f"{option} {value!r}: {expected} (here the start, {start}, is "
                            f"above the end, {match['end']})")
    Range(text)  # the grammar above is a subset of what nagiosplugin parses
    return text


def check_time_thresholds(given: Mapping[str, Any], warning_key: str,
                          critical_key: str) -> tuple[str | None, str | None]:
    """A WARNING and a CRITICAL range of seconds taken, each valid and in order."""
    names = option_name(warning_key), option_name(critical_key)
    warning = check_range(given.get(warning_key), names[0])
    critical = check_range(given.get(critical_key), names[1])
    what = "the token's acquisition time" if warning_key.startswith("token") else \
        "the total time"
    check_range_order(warning, critical, names, what)
    return warning, critical


def check_certificate_days(value: Any) -> tuple[int, int]:
    expected = f"-D/--certificate-days {value!r}: expected WARN[,CRIT] days such as 14,7"
    parts = str(value).strip().split(",")
    if isinstance(value, bool) or len(parts) not in (1, 2) or \
            not all(_DAYS.fullmatch(p.strip()) for p in parts):
        raise SettingsError(expected)
    days = [int(p) for p in parts]
    if any(d > MAX_DAYS for d in days):
        raise SettingsError(f"{expected}, at most {MAX_DAYS} (a hundred years)")
    warn, crit = (days[0], days[1]) if len(days) == 2 else (days[0], 0)
    check_threshold_order((f"WARN {warn}", warn), (f"CRIT {crit}", crit),
                          "days left on the server certificate",
                          worse="fewer", given=f"-D/--certificate-days {str(value).strip()!r}: ")
    return warn, crit


def check_threshold_order(warning: tuple[str, float], critical: tuple[str, float],
                          counts: str, worse: Literal["more", "fewer"], given: str = "") -> None:
    """WARNING comes before CRITICAL: one rule for every pair of thresholds.

    Each threshold is (how the message names it and its value, the value); `given` opens
    the message. Times get worse as they grow, so warning is the smaller number; days left
    get worse as they shrink, so critical is. Equal values are allowed: CRITICAL at once.
    """
    unit, role = ("seconds", "warning") if worse == "more" else ("days", "critical")
    smaller, larger = (warning, critical) if worse == "more" else (critical, warning)
    if smaller[1] > larger[1]:
        raise SettingsError(f"{given}{smaller[0]}: more {unit} than {larger[0]}; both count "
                            f"{counts}, so {role} is the smaller number")


def check_range_order(warning: str | None, critical: str | None, options: tuple[str, str],
                      counts: str) -> None:
    """Time ranges: the warning range lies inside the critical one, so WARNING comes first.

    A range with @ alerts inside itself: there, any order may be meant.
    """
    if warning is None or critical is None:
        return
    warn, crit = Range(warning), Range(critical)
    if warn.invert or crit.invert:
        return
    shown = f"{options[0]} {warning!r}", f"{options[1]} {critical!r}"
    check_threshold_order((shown[0], warn.end), (shown[1], crit.end), counts, "more")
    if warn.start < crit.start:
        raise SettingsError(f"{shown[0]} starts below {shown[1]}: the warning range must lie "
                            "inside the critical one, so that WARNING comes before CRITICAL")


def check_dns_server(value: Any) -> tuple[str, int] | None:
    if value is None:
        return None
    text = str(value).strip()
    match = re.fullmatch(r"\[(?P<v6>[^\]]+)\](?::(?P<p6>\d+))?|(?P<host>[^:]+)(?::(?P<port>\d+))?"
                         r"|(?P<bare6>[0-9A-Fa-f:]+)", text)
    host = match and (match["v6"] or match["host"] or match["bare6"])
    if not host or not is_ip_literal(host):
        raise SettingsError(f"--dns-server {value!r}: expected an IP address, optionally :PORT")
    port = (match["p6"] or match["port"]) if match else None
    return host, check_port(port, "--dns-server port") if port else 53


def check_timeout_state(value: Any) -> State:
    try:
        return State[str(value).upper()]
    except KeyError:
        raise SettingsError(
            f"--timeout-state {value!r}: expected ok, warning, critical or unknown"
        ) from None


def read_secret_file(path: Any, option: str, notes: list[str] | None = None,
                     wait: float = DEFAULT_TIMEOUT) -> Secret:
    """The secret on the file's first line, bounded in size and time.

    The line break (LF or CR LF) is not part of it, nor is the UTF-8 byte order mark that
    Notepad writes first; a further non-empty line gets a note, as it is not sent.
    """
    notes = [] if notes is None else notes
    data = read_bounded(str(path), option, SECRET_FILE_LIMIT,
                        "a secret file holds one line", wait)
    try:
        text = data.decode("utf-8-sig")  # -sig: without a leading byte order mark
    except UnicodeDecodeError:
        raise SettingsError(f"{option} {path}: not UTF-8 text") from None
    first, _, rest = text.partition("\n")
    value = first.removesuffix("\r")
    ignored = sum(1 for line in rest.splitlines() if line.strip())
    if not value:
        if ignored:
            raise SettingsError(f"{option} {path}: the first line is empty; the secret goes "
                                "alone on the first line")
        raise SettingsError(f"{option} {path}: the file is empty")
    if ignored:
        lines = "line after it is" if ignored == 1 else f"{ignored} lines after it are"
        notes.append(one_line(f"{option} {path}: only the first line is read; the non-empty "
                              f"{lines} ignored"))
    notes.extend(secret_file_notes({option: path}))
    return Secret(value)


def find_secret(name: str, env_name: str, cli: Mapping[str, Any], profile: Mapping[str, Any],
                env: Mapping[str, str], notes: list[str] | None = None,
                wait: float = DEFAULT_TIMEOUT) -> Secret | None:
    """The first of: --NAME, --NAME-file, $ENV_NAME, the profile's NAME or NAME_file."""
    option, file_key = f"--{name.replace('_', '-')}", f"{name}_file"
    if name in cli and file_key in cli:
        raise SettingsError(f"{option} and {option}-file: give only one of them")
    if name in cli:
        return Secret(str(cli[name]))
    if file_key in cli:
        return read_secret_file(cli[file_key], f"{option}-file", notes, wait)
    if env.get(env_name):
        return Secret(env[env_name])
    if name in profile and file_key in profile:
        raise SettingsError(f"config: {name} and {file_key}: give only one of them")
    if name in profile:
        return Secret(str(profile[name]))
    if file_key in profile:
        return read_secret_file(profile[file_key], f"config {file_key}", notes, wait)
    return None


def as_bool(value: Any, option: str) -> bool:
    if isinstance(value, bool):
        return value
    raise SettingsError(f"{option} {value!r}: expected true or false")


def build_settings(cli: Mapping[str, Any], profile: Mapping[str, Any] | None = None,
                   env: Mapping[str, str] | None = None, verbosity: int = 0) -> Settings:
    """Merge the profile under the command line options and validate the whole."""
    profile = profile or {}
    env = os.environ if env is None else env
    refuse_control_characters_in(cli, option_name)
    refuse_control_characters_in(profile, lambda key: f"config {key}")
    letter_tls = cli.get("check_smtp_tls")  # -S or -s: check_smtp's TLS letters
    if letter_tls is not None:
        cli = {**cli, "tls": letter_tls}
    given = {**profile, **cli}

    def option(name: str, default: Any = None) -> Any:
        return given.get(name, default)

    notes: list[str] = []
    timeout = check_timeout(option("timeout", DEFAULT_TIMEOUT))
    mode = str(option("mode", "smtp"))
    if mode not in MODES:
        raise SettingsError(f"--mode {mode!r}: unknown mode (available: {', '.join(MODES)})")
    oauth = build_oauth(mode, cli, profile, env, notes, timeout) if mode in OAUTH_MODES else None
    if oauth is None:
        for key in ("tenant_id", "client_id", "client_secret", "client_secret_file", "scope",
                    "client_certificate", "secret_expires"):
            if key in given:
                raise SettingsError(f"--{key.replace('_', '-')}: only for --mode o365-smtp "
                                    "or graph (this is --mode smtp)")
        # Unused here, but a [defaults] table may hold them for every profile: still checked.
        check_time_thresholds(given, "token_warning", "token_critical")
        check_secret_days(option("secret_warning", 30), option("secret_critical", 7))
    # check_smtp's -S keeps its port, 25; --tls starttls means submission, 587.
    port_default = 25 if letter_tls == "starttls" else None
    hostname, port, tls = gateway_address(mode, option, oauth, port_default)
    send_to = check_address(option("send_to"), "--send-to") if option("send_to") else None
    check = check_what(option("check", "full"), mode, send_to)
    if option("sender") is None and check != "expiry":  # the expiry check sends nothing
        raise SettingsError("-f/--from is missing: the sender address the gateway uses")
    sender = check_address(option("sender"), "-f/--from") \
        if option("sender") is not None else ""

    username = option("username")
    password = None if oauth else \
        find_secret("password", PASSWORD_ENV, cli, profile, env, notes, timeout)
    if password and "\0" in password.reveal():
        raise SettingsError("the password holds a NUL character, which SMTP AUTH cannot carry")
    auth_option = option("auth")
    auth = as_bool(auth_option, "--auth") if auth_option is not None else username is not None
    if oauth and (username or "password" in given or "password_file" in given):
        raise SettingsError(f"--username/--password: --mode {mode} signs in with the app's "
                            "client secret (--client-secret-file), not a password")
    if not oauth:
        if auth and not username:
            raise SettingsError("--username is missing: authentication is on (--auth)")
        if auth and password is None:
            raise SettingsError(
                f"no password for {username}: give --password-file FILE, ${PASSWORD_ENV}, "
                "or password_file in the config profile"
            )
        if not auth and (username or password) and auth_option is False:
            raise SettingsError("--no-auth conflicts with --username/--password")
    allow_cleartext = as_bool(option("allow_cleartext_auth", False), "--allow-cleartext-auth")
    mechanism = check_auth_mechanism(option("auth_mechanism"), mode, auth and not oauth)
    if auth and tls == "none" and not allow_cleartext:
        raise SettingsError(
            "refusing to send the password in clear: add --tls (STARTTLS), or "
            "--allow-cleartext-auth if this gateway really has no TLS"
        )
    if oauth and tls == "none":
        raise SettingsError(f"--tls none: --mode {mode} sends an access token, always over TLS")

    ca_file = option("ca_file")
    insecure = as_bool(option("insecure", False), "--insecure")
    if ca_file is not None:
        if insecure:
            raise SettingsError("--ca-file and --insecure: give only one of them")
        check_readable_file(str(ca_file), "--ca-file")

    warning, critical = check_time_thresholds(given, "warning", "critical")
    family = option("address_family", 0) or 0
    if family not in (0, 4, 6, "4", "6"):
        raise SettingsError(f"address_family {family!r}: expected 4 or 6")
    family = int(family)
    if family and is_ip_literal(hostname) and ipaddress.ip_address(hostname).version != family:
        raise SettingsError(f"-{family}: conflicts with -H {hostname}")

    return Settings(
        mode=mode,
        hostname=hostname,
        port=port,
        tls=tls,
        sender=sender,
        auth=auth or oauth is not None,
        username=str(username) if auth and not oauth else None,
        password=password if auth else None,
        allow_cleartext_auth=allow_cleartext,
        helo=check_helo(option("helo")) if option("helo") else default_helo(),
        address_family=family,
        ca_file=str(ca_file) if ca_file is not None else None,
        insecure=insecure,
        send_to=send_to,
        timeout=timeout,
        timeout_state=check_timeout_state(option("timeout_state", "unknown")),
        warning=warning,
        critical=critical,
        certificate_days=check_certificate_days(option("certificate_days", "14,7")),
        dns_server=check_dns_server(option("dns_server")),
        verbosity=verbosity,
        output_format=str(option("output_format", "nagios")),
        oauth=oauth,
        basic_auth_retirement=check_retirement_state(option("basic_auth_retirement", "warning")),
        check=check,
        now=check_moment(option("now"), "--now") if option("now") is not None else None,
        auth_mechanism=mechanism,
        notes=tuple(notes),
    )


def check_auth_mechanism(value: Any, mode: str, password_login: bool) -> str | None:
    """-A: the SASL mechanism for the password login; None lets the server's offer decide."""
    if value is None:
        return None
    mechanism = str(value).strip().upper()
    if mechanism not in AUTH_MECHANISMS:
        raise SettingsError(f"-A/--auth-mechanism {value!r}: expected PLAIN or LOGIN")
    if mode in OAUTH_MODES:
        raise SettingsError(f"-A/--auth-mechanism: --mode {mode} signs in with the app's "
                            "token, not a password; -A is for --mode smtp")
    if not password_login:
        raise SettingsError("-A/--auth-mechanism: needs -U/--username and a password "
                            "(authentication is off)")
    return mechanism


def check_what(value: Any, mode: str, send_to: str | None) -> str:
    """--check full (the whole chain and the credential's expiry), chain (without the
    expiry, which a daily service watches) or expiry (only the token and the expiry)."""
    text = str(value).lower()
    if text not in CHECKS:
        raise SettingsError(f"--check {value!r}: expected {', '.join(CHECKS[:-1])} or "
                            f"{CHECKS[-1]}")
    if text == "expiry" and mode not in OAUTH_MODES:
        raise SettingsError("--check expiry: only for --mode o365-smtp or graph (an app's "
                            "client secret or certificate)")
    if text == "expiry" and send_to:
        raise SettingsError("--send-to: --check expiry sends nothing (no mail traffic at all)")
    return text


def gateway_address(mode: str, option: Callable[..., Any], oauth: OAuthSettings | None,
                    port_default: int | None = None) -> tuple[str, int, TlsMode]:
    """Host, port and TLS of the server the chain talks to first."""
    if mode == "graph":
        assert oauth is not None
        for key in ("hostname", "port", "tls"):
            if option(key) is not None:
                raise SettingsError(f"--{key}: --mode graph talks to --graph-url, not an "
                                    "SMTP server")
        url = urlsplit(oauth.graph_url)
        return check_hostname(url.hostname), url.port or HTTPS_PORT, "implicit"
    if mode == "o365-smtp":
        assert oauth is not None
        host = option("hostname") or CLOUDS[oauth.cloud].smtp_host
        port = check_port(option("port")) if option("port") is not None else EXCHANGE_SMTP_PORT
        tls, port = resolve_tls(
            check_tls(option("tls")) if option("tls") is not None else "starttls", port)
        return check_hostname(host), port, tls
    if option("hostname") is None:
        raise SettingsError("-H/--hostname is missing: name the mail gateway's server")
    hostname = check_hostname(option("hostname"))
    port = check_port(option("port")) if option("port") is not None else port_default
    tls, port = resolve_tls(check_tls(option("tls")) if option("tls") is not None else None, port)
    return hostname, port, tls


def build_oauth(mode: str, cli: Mapping[str, Any], profile: Mapping[str, Any],
                env: Mapping[str, str], notes: list[str] | None = None,
                wait: float = DEFAULT_TIMEOUT) -> OAuthSettings:
    """The Entra ID app's settings, each checked the way the settings form should have."""
    given = {**profile, **cli}
    for key, what in (("tenant_id", "the directory (tenant) ID or domain of the Entra ID app"),
                      ("client_id", "the application (client) ID of the Entra ID app")):
        if not given.get(key):
            raise SettingsError(f"--{key.replace('_', '-')} is missing: {what}")
    tenant = check_tenant(given["tenant_id"])
    client_id = check_guid(given["client_id"], "--client-id", "the application (client) ID")
    secret, certificate, passphrase = app_credential(cli, profile, env, notes, wait)
    cloud = str(given.get("cloud", "global")).lower()
    if cloud not in CLOUDS:
        raise SettingsError(f"--cloud {given['cloud']!r}: expected one of {', '.join(CLOUDS)}")
    endpoints = CLOUDS[cloud]
    authority = check_https_url(given.get("authority") or endpoints.authority, "--authority")
    graph_url = check_https_url(given.get("graph_url") or endpoints.graph_url, "--graph-url")
    scopes = tuple(str(given.get("scope") or "").split()) or (endpoints.default_scope(mode),)
    for scope in scopes:
        if any(ord(c) < 33 for c in scope):
            raise SettingsError(f"--scope {scope!r}: control characters are not allowed")
    expires = given.get("secret_expires")
    if expires is not None:
        if certificate:
            raise SettingsError("--secret-expires: a certificate's end is read from the "
                                "certificate itself; give it only with a client secret")
        expires = check_moment(expires, "--secret-expires")
    proxy = given.get("proxy")
    if proxy is not None:
        proxy = check_url(str(proxy), "--proxy", ("http", "https"))
    region = given.get("azure_region")
    token_warning, token_critical = check_time_thresholds(given, "token_warning",
                                                          "token_critical")
    return OAuthSettings(
        tenant_id=tenant,
        client_id=client_id,
        client_secret=secret,
        certificate=certificate,
        scopes=scopes,
        cloud=cloud,
        authority=authority,
        graph_url=graph_url,
        proxy=proxy,
        azure_region=str(region) if region else None,
        token_warning=token_warning,
        token_critical=token_critical,
        secret_days=check_secret_days(given.get("secret_warning", 30),
                                      given.get("secret_critical", 7)),
        secret_expires=expires,
        lookup_denied=check_lookup_denied(given.get("expiry_lookup_denied", "warning")),
        key_passphrase=passphrase,
    )


def app_credential(cli: Mapping[str, Any], profile: Mapping[str, Any], env: Mapping[str, str],
                   notes: list[str] | None = None, wait: float = DEFAULT_TIMEOUT,
                   ) -> tuple[Secret | None, ClientCertificate | None, Secret | None]:
    """The app's client secret, or its certificate (and the key's passphrase): exactly one."""
    notes = [] if notes is None else notes
    given = {**profile, **cli}
    certificate_file = given.get("client_certificate")
    if certificate_file is None:
        if "client_key" in given or "client_key_passphrase_file" in given:
            raise SettingsError("--client-key: only with --client-certificate FILE")
        secret = find_secret("client_secret", CLIENT_SECRET_ENV, cli, profile, env, notes, wait)
        if secret is None:
            raise SettingsError(
                "no client secret: give --client-secret-file FILE, $MAILGW_CLIENT_SECRET, or "
                "client_secret_file in the config profile (or --client-certificate FILE)"
            )
        if _GUID.fullmatch(secret.reveal().strip()):
            raise SettingsError(
                "client secret: this looks like the secret's ID; the check needs its Value "
                "(Entra ID, App registrations, Certificates & secrets: copy the Value column, "
                "shown only when the secret is created)"
            )
        return Secret(secret.reveal().strip()), None, None
    for key in ("client_secret", "client_secret_file"):
        if key in given:
            raise SettingsError(f"--{key.replace('_', '-')} and --client-certificate: the app "
                                "signs in with one credential; give only one of them")
    passphrase = find_secret("client_key_passphrase", KEY_PASSPHRASE_ENV, cli, profile, env,
                             notes, wait)
    from check_mailgw.microsoft.certificate import load_client_certificate

    key_file = given.get("client_key")
    certificate = load_client_certificate(str(certificate_file),
                                          str(key_file) if key_file else None, passphrase)
    notes.extend(secret_file_notes({"--client-certificate": certificate_file,
                                    "--client-key": key_file}))
    return None, certificate, passphrase


def secret_file_notes(files: Mapping[str, Any]) -> Iterable[str]:
    """Advice for each named file that holds a secret and is readable by group or others."""
    for option, path in files.items():
        if path is not None and (note := loose_permissions(str(path), f"{option} {path}")):
            yield one_line(note)


def check_days(value: Any, option: str) -> int:
    text = str(value).strip()
    if isinstance(value, bool) or not _DAYS.fullmatch(text):
        raise SettingsError(f"{option} {value!r}: expected a whole number of days, such as 30")
    if int(text) > MAX_DAYS:
        raise SettingsError(f"{option} {value!r}: at most {MAX_DAYS} days (a hundred years)")
    return int(text)


def check_secret_days(warning: Any, critical: Any) -> tuple[int, int]:
    """Days left below which the credential is WARNING, and CRITICAL (never a Nagios range)."""
    warn, crit = check_days(warning, "--secret-warning"), check_days(critical, "--secret-critical")
    check_threshold_order((f"--secret-warning {warn}", warn), (f"--secret-critical {crit}", crit),
                          "days left", worse="fewer")
    return warn, crit


def check_moment(value: Any, option: str) -> datetime.datetime:
    """YYYY-MM-DD (the start of that day, UTC) or an ISO 8601 time; TOML dates too."""
    import datetime

    if isinstance(value, datetime.datetime):
        moment = value
    elif isinstance(value, datetime.date):
        moment = datetime.datetime(value.year, value.month, value.day)
    else:
        try:
            moment = datetime.datetime.fromisoformat(str(value).strip())
        except ValueError:
            raise SettingsError(f"{option} {value!r}: expected a date such as 2027-01-31 "
                                "(or 2027-01-31T12:00:00Z)") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=datetime.UTC)


def check_lookup_denied(value: Any) -> State:
    states = {"warning": State.WARNING, "critical": State.CRITICAL, "info": State.OK}
    if str(value).lower() not in states:
        raise SettingsError(f"--expiry-lookup-denied {value!r}: expected warning, critical "
                            "or info")
    return states[str(value).lower()]


def check_guid(value: Any, option: str, what: str) -> str:
    text = str(value).strip()
    if not _GUID.fullmatch(text):
        raise SettingsError(f"{option} {value!r}: {what} is a GUID such as "
                            "00000000-0000-0000-0000-000000000000")
    return text.lower()


def check_tenant(value: Any) -> str:
    """A tenant is its GUID or one of its domain names (contoso.onmicrosoft.com)."""
    text = str(value).strip()
    if _GUID.fullmatch(text):
        return text.lower()
    name = text.rstrip(".")
    if "." in name and len(name) <= 253 and all(_LABEL.fullmatch(p) for p in name.split(".")):
        return name.lower()
    raise SettingsError(f"--tenant-id {value!r}: expected the tenant's GUID (Directory ID) or "
                        "a domain name such as contoso.onmicrosoft.com")


def check_url(value: str, option: str, schemes: tuple[str, ...]) -> str:
    try:
        url = urlsplit(value.strip())
        url.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError as error:
        raise SettingsError(f"{option} {shown_url(value)!r}: not a valid URL ({error})") from None
    if url.scheme not in schemes or not url.hostname:
        raise SettingsError(
            f"{option} {shown_url(value)!r}: expected {'|'.join(schemes)}://host[:port]")
    check_hostname(url.hostname)
    return value.strip().rstrip("/")


def shown_url(value: str) -> str:
    """A URL as it may be shown: without the password of user:password@."""
    return re.sub(r"//([^/@:]*):[^/@]*@", r"//\1:****@", value)


def check_https_url(value: Any, option: str) -> str:
    """https://host[:port] with nothing after it (the tenant or /v1.0 are added later)."""
    url = check_url(str(value), option, ("https",))
    if urlsplit(url).path not in ("", "/") or urlsplit(url).query:
        raise SettingsError(f"{option} {value!r}: give only https://host[:port]")
    return url


def check_retirement_state(value: Any) -> State:
    text = str(value).lower()
    if text not in ("warning", "info"):
        raise SettingsError(f"--basic-auth-retirement {value!r}: expected warning or info")
    return State.WARNING if text == "warning" else State.OK


def check_helo(value: Any) -> str:
    """A host name or an address literal such as [192.0.2.1]: nothing that could end a line."""
    text = str(value)
    literal = text.startswith("[") and text.endswith("]") and is_ip_literal(text[1:-1])
    if not literal and not all(_LABEL.fullmatch(p) for p in text.rstrip(".").split(".")):
        raise SettingsError(f"-F/--helo {value!r}: expected a host name or [address literal]")
    return text


def default_helo() -> str:
    """This machine's name, without a DNS lookup (the resolver may be the thing that is down)."""
    name = socket.gethostname()
    return name if "." in name else f"{name}.localdomain" if name else "localhost.localdomain"
