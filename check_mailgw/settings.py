"""Validated settings: options and config profile merged, checked, and typed."""

from __future__ import annotations

import ipaddress
import os
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from nagiosplugin import Range

from check_mailgw.errors import SettingsError
from check_mailgw.modes import MODES
from check_mailgw.outcome import State
from check_mailgw.secret import Secret

TlsMode = Literal["none", "starttls", "implicit"]

PASSWORD_ENV = "MAILGW_PASSWORD"
IMPLICIT_TLS_PORT = 465  # RFC 8314: submission over implicit TLS; never cleartext
DEFAULT_PORTS: dict[str, int] = {"none": 25, "starttls": 587, "implicit": IMPLICIT_TLS_PORT}

_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")
_ADDRESS = re.compile(r"[^@\s<>()\[\],;:\"]+@[^@\s<>()\[\],;:\"]+")


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

    @property
    def target(self) -> str:
        host = f"[{self.hostname}]" if ":" in self.hostname else self.hostname
        return f"{host}:{self.port}"

    @property
    def secrets(self) -> list[str]:
        return [self.password.reveal()] if self.password else []


# Names a config profile may set; each matches a long option.
CONFIG_KEYS = {
    "mode", "hostname", "port", "tls", "sender", "auth", "username", "password",
    "password_file", "allow_cleartext_auth", "helo", "address_family", "ca_file", "insecure",
    "send_to", "timeout", "timeout_state", "warning", "critical", "certificate_days",
    "dns_server",
}


def is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def check_hostname(value: Any) -> str:
    host = str(value).strip().removeprefix("[").removesuffix("]")
    if is_ip_literal(host):
        return host
    name = host.rstrip(".")
    if not name or len(name) > 253 or not all(_LABEL.fullmatch(p) for p in name.split(".")):
        raise SettingsError(f"-H/--hostname {value!r}: not a valid host name or IP address")
    return name


def check_port(value: Any, option: str = "-p/--port") -> int:
    try:
        port = int(value)
    except (TypeError, ValueError):
        raise SettingsError(f"{option} {value!r}: not a number") from None
    if not 1 <= port <= 65535:
        raise SettingsError(f"{option} {port}: out of range (1-65535)")
    return port


def check_address(value: Any, option: str) -> str:
    address = str(value).strip()
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


def check_positive(value: Any, option: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise SettingsError(f"{option} {value!r}: not a number") from None
    if number <= 0:
        raise SettingsError(f"{option} {value!r}: must be greater than 0")
    return number


def check_range(value: Any, option: str) -> str | None:
    if value is None:
        return None
    try:
        Range(str(value))
    except ValueError as error:
        raise SettingsError(f"{option} {value!r}: not a valid threshold range ({error})") from None
    return str(value)


def check_certificate_days(value: Any) -> tuple[int, int]:
    parts = str(value).split(",")
    try:
        days = [int(p) for p in parts]
    except ValueError:
        raise SettingsError(f"-D/--certificate-days {value!r}: expected WARN[,CRIT] days") from None
    if len(days) not in (1, 2) or any(d < 0 for d in days):
        raise SettingsError(f"-D/--certificate-days {value!r}: expected WARN[,CRIT] days")
    warn, crit = (days[0], days[1]) if len(days) == 2 else (days[0], 0)
    if crit > warn:
        raise SettingsError(
            f"-D/--certificate-days {value!r}: critical days ({crit}) exceed warning days ({warn})"
        )
    return warn, crit


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


def read_secret_file(path: Any, option: str) -> Secret:
    try:
        text = Path(str(path)).read_text(encoding="utf-8")
    except OSError as error:
        raise SettingsError(f"{option} {path}: cannot read: {error.strerror}") from None
    except UnicodeDecodeError:
        raise SettingsError(f"{option} {path}: not UTF-8 text") from None
    value = text.rstrip("\r\n")
    if not value:
        raise SettingsError(f"{option} {path}: the file is empty")
    return Secret(value)


def find_password(cli: Mapping[str, Any], profile: Mapping[str, Any],
                  env: Mapping[str, str]) -> Secret | None:
    """The first of: --password, --password-file, $MAILGW_PASSWORD, the profile's."""
    if "password" in cli and "password_file" in cli:
        raise SettingsError("--password and --password-file: give only one of them")
    if "password" in cli:
        return Secret(cli["password"])
    if "password_file" in cli:
        return read_secret_file(cli["password_file"], "--password-file")
    if env.get(PASSWORD_ENV):
        return Secret(env[PASSWORD_ENV])
    if "password" in profile and "password_file" in profile:
        raise SettingsError("config: password and password_file: give only one of them")
    if "password" in profile:
        return Secret(str(profile["password"]))
    if "password_file" in profile:
        return read_secret_file(profile["password_file"], "config password_file")
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
    given = {**profile, **cli}

    def option(name: str, default: Any = None) -> Any:
        return given.get(name, default)

    mode = str(option("mode", "smtp"))
    if mode not in MODES:
        raise SettingsError(f"--mode {mode!r}: unknown mode (available: {', '.join(MODES)})")
    if option("hostname") is None:
        raise SettingsError("-H/--hostname is missing: name the mail gateway's server")
    hostname = check_hostname(option("hostname"))
    port = check_port(option("port")) if option("port") is not None else None
    tls, port = resolve_tls(check_tls(option("tls")) if option("tls") is not None else None, port)
    if option("sender") is None:
        raise SettingsError("--from is missing: the sender address the gateway uses")
    sender = check_address(option("sender"), "--from")
    send_to = check_address(option("send_to"), "--send-to") if option("send_to") else None

    username = option("username")
    password = find_password(cli, profile, env)
    auth_option = option("auth")
    auth = as_bool(auth_option, "--auth") if auth_option is not None else username is not None
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
    if auth and tls == "none" and not allow_cleartext:
        raise SettingsError(
            "refusing to send the password in clear: add --tls (STARTTLS), or "
            "--allow-cleartext-auth if this gateway really has no TLS"
        )

    ca_file = option("ca_file")
    insecure = as_bool(option("insecure", False), "--insecure")
    if ca_file is not None:
        if insecure:
            raise SettingsError("--ca-file and --insecure: give only one of them")
        if not os.access(str(ca_file), os.R_OK) or not Path(str(ca_file)).is_file():
            raise SettingsError(f"--ca-file {ca_file}: cannot read the file")

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
        auth=auth,
        username=str(username) if auth else None,
        password=password if auth else None,
        allow_cleartext_auth=allow_cleartext,
        helo=check_helo(option("helo")) if option("helo") else default_helo(),
        address_family=family,
        ca_file=str(ca_file) if ca_file is not None else None,
        insecure=insecure,
        send_to=send_to,
        timeout=check_positive(option("timeout", 10), "-t/--timeout"),
        timeout_state=check_timeout_state(option("timeout_state", "unknown")),
        warning=check_range(option("warning"), "-w/--warning"),
        critical=check_range(option("critical"), "-c/--critical"),
        certificate_days=check_certificate_days(option("certificate_days", "14,7")),
        dns_server=check_dns_server(option("dns_server")),
        verbosity=verbosity,
        output_format=str(option("output_format", "nagios")),
    )


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
