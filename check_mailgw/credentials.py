"""Where the secrets come from: an option, a secret file, the environment or the config
profile; the app's client secret or its certificate and key."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from check_mailgw.errors import SettingsError
from check_mailgw.secret import SECRET_FILE_LIMIT, Secret, loose_permissions, read_bounded
from check_mailgw.settings import GUID
from check_mailgw.text import one_line
from check_mailgw.validators import DEFAULT_TIMEOUT

if TYPE_CHECKING:
    from check_mailgw.microsoft.certificate import ClientCertificate

PASSWORD_ENV = "MAILGW_PASSWORD"
CLIENT_SECRET_ENV = "MAILGW_CLIENT_SECRET"
KEY_PASSPHRASE_ENV = "MAILGW_CLIENT_KEY_PASSPHRASE"


def find_secret(name: str, env_name: str, cli: Mapping[str, Any], profile: Mapping[str, Any],
                env: Mapping[str, str], notes: list[str] | None = None,
                wait: float = DEFAULT_TIMEOUT) -> Secret | None:
    """The first of: --NAME, --NAME-file, $ENV_NAME, the profile's NAME or NAME_file."""
    option = f"--{name.replace('_', '-')}"
    found = secret_given(cli, name, (f"{option} and {option}-file", f"{option}-file"),
                         notes, wait)
    if found is None and env.get(env_name):
        found = Secret(env[env_name])
    if found is None:
        found = secret_given(profile, name, (f"config: {name} and {name}_file",
                                             f"config {name}_file"), notes, wait)
    return found


def secret_given(source: Mapping[str, Any], name: str, shown: tuple[str, str],
                 notes: list[str] | None, wait: float) -> Secret | None:
    """NAME or NAME_file of one source, the options or the profile, and never both;
    `shown` names the pair and the file in messages."""
    file_key = f"{name}_file"
    if name in source and file_key in source:
        raise SettingsError(f"{shown[0]}: give only one of them")
    if name in source:
        return Secret(str(source[name]))
    if file_key in source:
        return read_secret_file(source[file_key], shown[1], notes, wait)
    return None


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


def secret_file_notes(files: Mapping[str, Any]) -> Iterable[str]:
    """Advice for each named file that holds a secret and is readable by group or others."""
    for option, path in files.items():
        if path is not None and (note := loose_permissions(str(path), f"{option} {path}")):
            yield one_line(note)


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
        if re.fullmatch(GUID, secret.reveal().strip()):
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
