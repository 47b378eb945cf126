"""Option validators: a raw value from the command line or a config profile in, a typed
value out, or a SettingsError that names the option and what it expects.

Thresholds (Nagios ranges, days left) have a module of their own, thresholds.py.
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from check_mailgw.errors import SettingsError
from check_mailgw.net.resolve import is_ip_literal
from check_mailgw.outcome import State
from check_mailgw.settings import GUID, OAUTH_MODES, TlsMode
from check_mailgw.text import escaped, is_control_character

if TYPE_CHECKING:
    import datetime

IMPLICIT_TLS_PORT = 465  # RFC 8314: submission over implicit TLS; never cleartext
HTTPS_PORT = 443
DEFAULT_PORTS: dict[str, int] = {"none": 25, "starttls": 587, "implicit": IMPLICIT_TLS_PORT}

_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")
_ADDRESS = re.compile(r"[^@\s<>()\[\],;:\"]+@[^@\s<>()\[\],;:\"]+")
# Plain decimals only: no exponent (1e400 is inf), no nan/inf, no _ or non-ASCII digits, and
# few enough digits that int() and float() stay exact.
DECIMAL = r"(?:[0-9]{1,12}(?:\.[0-9]{0,9})?|\.[0-9]{1,9})"
_SECONDS = re.compile(DECIMAL)

DEFAULT_TIMEOUT = 10.0
# Monitoring cores kill a check long before this (Nagios and Icinga 2 after 60 s by default),
# and the longest service, the daily expiry check, needs seconds: a larger -t is a mistake,
# most often milliseconds (-t 10000).
MAX_TIMEOUT = 3600.0
AUTH_MECHANISMS = ("PLAIN", "LOGIN")
CHECKS = ("full", "chain", "expiry")  # --check; in smtp mode full and chain are one chain
# Values that never reach the output or the wire as text: secrets (masked, base64 on the
# wire) and file names (any character a file system allows; shown escaped).
FREE_TEXT_KEYS = frozenset({
    "password", "client_secret", "password_file", "client_secret_file", "client_certificate",
    "client_key", "client_key_passphrase_file", "ca_file", "config", "discovery_cache",
})
# Options whose messages name their letter too; the others are --key-with-dashes.
OPTION_NAMES = {
    "hostname": "-H/--hostname", "port": "-p/--port", "sender": "-f/--from",
    "username": "-U/--username", "password": "-P/--password", "helo": "-F/--helo",
    "timeout": "-t/--timeout", "warning": "-w/--warning", "critical": "-c/--critical",
    "certificate_days": "-D/--certificate-days", "auth_mechanism": "-A/--auth-mechanism",
    "output_format": "--format",
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


def check_address_family(value: Any, hostname: str) -> int:
    """-4 or -6 (0: both), which an IP address as -H must not contradict."""
    family = value or 0
    if family not in (0, 4, 6, "4", "6"):
        raise SettingsError(f"address_family {family!r}: expected 4 or 6")
    family = int(family)
    if family and is_ip_literal(hostname) and ipaddress.ip_address(hostname).version != family:
        raise SettingsError(f"-{family}: conflicts with -H {hostname}")
    return family

def check_timeout_state(value: Any) -> State:
    try:
        return State[str(value).upper()]
    except KeyError:
        raise SettingsError(
            f"--timeout-state {value!r}: expected ok, warning, critical or unknown"
        ) from None


def as_bool(value: Any, option: str) -> bool:
    if isinstance(value, bool):
        return value
    raise SettingsError(f"{option} {value!r}: expected true or false")


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
    if not re.fullmatch(GUID, text):
        raise SettingsError(f"{option} {value!r}: {what} is a GUID such as "
                            "00000000-0000-0000-0000-000000000000")
    return text.lower()


def check_tenant(value: Any) -> str:
    """A tenant is its GUID or one of its domain names (contoso.onmicrosoft.com)."""
    text = str(value).strip()
    if re.fullmatch(GUID, text):
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


def check_cache_directory(value: Any) -> str:
    """--discovery-cache: an absolute path ("" turns the cache off). A relative one would
    depend on the monitoring core's working directory, which differs from a shell's."""
    option = "--discovery-cache"
    if not isinstance(value, str):
        raise SettingsError(f"{option} {value!r}: expected a directory's path, or \"\" for no "
                            "cache")
    if "\0" in value:
        raise SettingsError(f"{option}: a path cannot hold a NUL character")
    if value and not os.path.isabs(value):
        raise SettingsError(f"{option} {value!r}: expected an absolute path "
                            "(the monitoring core's working directory is not the shell's)")
    return value


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
