"""A check_mailgw config file (TOML) with one profile per mode, pointing at a running sandbox."""

import json
from pathlib import Path

from check_mailgw.sandbox.accounts import SANDBOX_USER
from check_mailgw.sandbox.check_commands import (
    CA_FILE_NAME,
    CLIENT_CERTIFICATE_FILE_NAME,
    CLIENT_SECRET_FILE_NAME,
    PASSWORD_FILE_NAME,
    OAuthEndpoints,
    SandboxPorts,
)

Table = dict[str, str | int]

# The profile of a daily service on the app's credential expiry.
EXPIRY_PROFILE = "sandbox-expiry"


def config_profiles(
    directory: Path, ports: SandboxPorts, cloud: OAuthEndpoints
) -> dict[str, Table]:
    """[defaults] and the profiles, as tables of config keys (long option names)."""
    app: Table = {"tenant_id": cloud.tenant_id, "client_id": cloud.client_id}
    endpoints: Table = {"authority": cloud.authority, "graph_url": cloud.graph_url}
    oauth: Table = {
        **app,
        "client_secret_file": str(directory / CLIENT_SECRET_FILE_NAME),
        **endpoints,
    }
    return {
        "defaults": {"from": SANDBOX_USER, "ca_file": str(directory / CA_FILE_NAME)},
        "smtp": {
            "mode": "smtp",
            "hostname": ports.host,
            "port": ports.starttls,
            "tls": "starttls",
            "username": SANDBOX_USER,
            "password_file": str(directory / PASSWORD_FILE_NAME),
        },
        "o365-smtp": {
            "mode": "o365-smtp",
            "hostname": cloud.smtp_host,
            "port": cloud.smtp_port,
            **oauth,
        },
        "graph": {"mode": "graph", **oauth},
        EXPIRY_PROFILE: {
            "mode": "graph",
            **app,
            "client_certificate": str(directory / CLIENT_CERTIFICATE_FILE_NAME),
            **endpoints,
            "check": "expiry",
        },
    }


def config_text(profiles: dict[str, Table], heading: str) -> str:
    """The profiles as TOML: [defaults] first, then [profiles.NAME] tables."""
    lines = [f"# {line}".rstrip() for line in heading.splitlines()]
    for name, table in profiles.items():
        lines += ["", "[defaults]" if name == "defaults" else f"[profiles.{name}]"]
        # A JSON string is a valid TOML basic string.
        lines += [f"{key} = {json.dumps(value)}" for key, value in table.items()]
    return "\n".join(lines) + "\n"


def write_config(
    path: Path, directory: Path, ports: SandboxPorts, cloud: OAuthEndpoints
) -> Path:
    """Write the sandbox's config file; it names secret files, never holds a secret."""
    heading = (
        "check_mailgw profiles for a running mailgw-sandbox, one per mode, and the app's\n"
        "credential expiry with its certificate:\n"
        f"  check_mailgw --config {path} --profile smtp|o365-smtp|graph|{EXPIRY_PROFILE}\n"
        "Keys are the long option names with '_' for '-'."
    )
    path.write_text(config_text(config_profiles(directory, ports, cloud), heading), "utf-8")
    return path
