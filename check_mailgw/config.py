"""The TOML config file: named profiles holding whole gateway definitions."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from check_mailgw.errors import SettingsError

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


def load_profile(path: str, profile: str | None, known_keys: set[str]) -> dict[str, Any]:
    """The settings of one profile: [defaults] overlaid with [profiles.NAME]."""
    try:
        with Path(path).open("rb") as handle:
            document = tomllib.load(handle)
    except OSError as error:
        raise SettingsError(f"--config {path}: cannot read: {error.strerror}") from None
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
            merged[name] = value
    return merged
