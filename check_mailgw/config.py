"""The TOML config file: named profiles holding whole gateway definitions."""

from __future__ import annotations

import tomllib
from typing import Any

from check_mailgw.errors import SettingsError
from check_mailgw.secret import PIPE_WAIT, read_bounded
from check_mailgw.validators import FREE_TEXT_KEYS, refuse_control_characters

# A file of gateway profiles is a few kilobytes; the cap keeps a wrong file (a log, a
# 50 MB dump of keys) from costing seconds of parsing outside -t.
CONFIG_LIMIT = 1024 * 1024

# Names a config profile may set; each matches a long option.
CONFIG_KEYS = {
    "mode", "hostname", "port", "tls", "sender", "auth", "username", "password",
    "password_file", "allow_cleartext_auth", "helo", "address_family", "ca_file", "insecure",
    "send_to", "timeout", "timeout_state", "warning", "critical", "certificate_days",
    "dns_server", "tenant_id", "client_id", "client_secret", "client_secret_file", "scope",
    "cloud", "authority", "graph_url", "proxy", "azure_region", "token_warning",
    "token_critical", "basic_auth_retirement", "client_certificate", "client_key",
    "client_key_passphrase_file", "secret_warning", "secret_critical", "secret_expires",
    "expiry_lookup_denied", "check", "auth_mechanism", "discovery_cache",
}

# Config keys as the gateway's settings form names them, onto settings names.
KEY_ALIASES = {
    "server": "hostname",
    "host": "hostname",
    "from": "sender",
    "need_authentication": "auth",
    "secure_tls_connection": "tls",
}


def normalise_key(key: str) -> str:
    key = key.replace("-", "_").lower()
    return KEY_ALIASES.get(key, key)


def load_profile(path: str, profile: str | None, known_keys: set[str],
                 wait: float = PIPE_WAIT) -> dict[str, Any]:
    """The settings of one profile: [defaults] overlaid with [profiles.NAME].

    Values that reach the output or the wire (all but secrets and file names) must hold no
    control characters; a pipe as the file is waited for at most `wait` seconds.
    """
    data = read_bounded(path, "--config", CONFIG_LIMIT,
                        "a config file of gateway profiles is a few kilobytes", wait)
    try:
        document = tomllib.loads(data.decode("utf-8-sig"))  # Notepad's byte order mark too
    except UnicodeDecodeError:
        raise SettingsError(f"--config {path}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as error:
        raise SettingsError(f"--config {path}: not valid TOML: {error}") from None

    profiles = document.get("profiles", {})
    unexpected = set(document) - {"defaults", "profiles"}
    if unexpected or not isinstance(profiles, dict):
        raise SettingsError(
            f"--config {path}: unexpected top-level key(s) {', '.join(sorted(unexpected))}; "
            "use [defaults] and [profiles.NAME] tables"
        )
    if profile is None:
        if len(profiles) != 1:
            names = ", ".join(sorted(profiles)) or "none"
            raise SettingsError(
                f"--config {path}: choose a profile with --profile (profiles: {names})"
            )
        profile = next(iter(profiles))
    if profile not in profiles:
        names = ", ".join(sorted(profiles)) or "none"
        raise SettingsError(
            f"--profile {profile}: no such profile in {path} (profiles: {names})"
        )

    merged: dict[str, Any] = {}
    for where, table in (("defaults", document.get("defaults", {})),
                         (f"profiles.{profile}", profiles[profile])):
        if not isinstance(table, dict):
            raise SettingsError(f"--config {path}: [{where}] must be a table")
        for key, value in table.items():
            name = normalise_key(key)
            if name not in known_keys:
                raise SettingsError(f"--config {path}: [{where}] unknown key {key!r}")
            if name not in FREE_TEXT_KEYS:
                refuse_control_characters(value, f"--config {path}: [{where}] {key}")
            merged[name] = value
    return merged
