"""Settings from the parsed options, the config profile under them and the environment:
every value checked, then the combinations (a mode's options, TLS before a password)."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

from check_mailgw.credentials import PASSWORD_ENV, app_credential, find_secret
from check_mailgw.errors import SettingsError
from check_mailgw.microsoft.clouds import CLOUDS, EXCHANGE_SMTP_PORT
from check_mailgw.modes import MODES
from check_mailgw.secret import Secret, check_readable_file
from check_mailgw.settings import OAUTH_MODES, OAuthSettings, Settings, TlsMode
from check_mailgw.thresholds import check_certificate_days, check_secret_days, check_time_thresholds
from check_mailgw.validators import (
    DEFAULT_TIMEOUT,
    HTTPS_PORT,
    as_bool,
    check_address,
    check_address_family,
    check_auth_mechanism,
    check_cache_directory,
    check_dns_server,
    check_guid,
    check_helo,
    check_hostname,
    check_https_url,
    check_lookup_denied,
    check_moment,
    check_port,
    check_retirement_state,
    check_tenant,
    check_timeout,
    check_timeout_state,
    check_tls,
    check_url,
    check_what,
    default_helo,
    option_name,
    refuse_control_characters_in,
    resolve_tls,
)


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
        refuse_app_options(given)
    # check_smtp's -S keeps its port, 25; --tls starttls means submission, 587.
    port_default = 25 if letter_tls == "starttls" else None
    hostname, port, tls = gateway_address(mode, option, oauth, port_default)
    send_to = check_address(option("send_to"), "--send-to") if option("send_to") else None
    check = check_what(option("check", "full"), mode, send_to)
    if option("sender") is None and check != "expiry":  # the expiry check sends nothing
        raise SettingsError("-f/--from is missing: the sender address the gateway uses")
    sender = check_address(option("sender"), "-f/--from") \
        if option("sender") is not None else ""

    auth, username, password, allow_cleartext, mechanism = password_login(
        mode, tls, oauth is not None, cli, profile, env, notes, timeout)

    ca_file, insecure = server_trust(option("ca_file"), option("insecure", False))
    warning, critical = check_time_thresholds(given, "warning", "critical")
    family = check_address_family(option("address_family", 0), hostname)

    return Settings(
        mode=mode,
        hostname=hostname,
        port=port,
        tls=tls,
        sender=sender,
        auth=auth or oauth is not None,
        username=username,
        password=password,
        allow_cleartext_auth=allow_cleartext,
        helo=check_helo(option("helo")) if option("helo") else default_helo(),
        address_family=family,
        ca_file=ca_file,
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


def refuse_app_options(given: Mapping[str, Any]) -> None:
    """--mode smtp: the app's options have no use; its thresholds are still checked."""
    for key in ("tenant_id", "client_id", "client_secret", "client_secret_file", "scope",
                "client_certificate", "secret_expires"):
        if key in given:
            raise SettingsError(f"--{key.replace('_', '-')}: only for --mode o365-smtp "
                                "or graph (this is --mode smtp)")
    # Unused here, but a [defaults] table may hold them for every profile: still checked.
    check_time_thresholds(given, "token_warning", "token_critical")
    check_secret_days(given.get("secret_warning", 30), given.get("secret_critical", 7))


def password_login(mode: str, tls: TlsMode, app_login: bool, cli: Mapping[str, Any],
                   profile: Mapping[str, Any], env: Mapping[str, str], notes: list[str],
                   wait: float) -> tuple[bool, str | None, Secret | None, bool, str | None]:
    """Whether to log in with a password, as whom and with what, in clear or not, and -A.

    The app modes sign in with a token: a password given to them is refused, and their
    token goes only over TLS.
    """
    given = {**profile, **cli}
    username = given.get("username")
    password = None if app_login else \
        find_secret("password", PASSWORD_ENV, cli, profile, env, notes, wait)
    if password and "\0" in password.reveal():
        raise SettingsError("the password holds a NUL character, which SMTP AUTH cannot carry")
    auth_option = given.get("auth")
    auth = as_bool(auth_option, "--auth") if auth_option is not None else username is not None
    if app_login and (username or "password" in given or "password_file" in given):
        raise SettingsError(f"--username/--password: --mode {mode} signs in with the app's "
                            "client secret (--client-secret-file), not a password")
    if not app_login:
        if auth and not username:
            raise SettingsError("--username is missing: authentication is on (--auth)")
        if auth and password is None:
            raise SettingsError(
                f"no password for {username}: give --password-file FILE, ${PASSWORD_ENV}, "
                "or password_file in the config profile"
            )
        if not auth and (username or password) and auth_option is False:
            raise SettingsError("--no-auth conflicts with --username/--password")
    allow_cleartext = as_bool(given.get("allow_cleartext_auth", False), "--allow-cleartext-auth")
    mechanism = check_auth_mechanism(given.get("auth_mechanism"), mode, auth and not app_login)
    if auth and tls == "none" and not allow_cleartext:
        raise SettingsError(
            "refusing to send the password in clear: add --tls (STARTTLS), or "
            "--allow-cleartext-auth if this gateway really has no TLS"
        )
    if app_login and tls == "none":
        raise SettingsError(f"--tls none: --mode {mode} sends an access token, always over TLS")
    login = auth and not app_login
    return (auth, str(username) if login else None, password if auth else None,
            allow_cleartext, mechanism)


def server_trust(ca_file: Any, insecure: Any) -> tuple[str | None, bool]:
    """The CA file that verifies the servers, or --insecure: never both."""
    insecure = as_bool(insecure, "--insecure")
    if ca_file is None:
        return None, insecure
    if insecure:
        raise SettingsError("--ca-file and --insecure: give only one of them")
    check_readable_file(str(ca_file), "--ca-file")
    return str(ca_file), insecure


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
        discovery_cache=check_cache_directory(given["discovery_cache"])
        if "discovery_cache" in given else None,
    )
