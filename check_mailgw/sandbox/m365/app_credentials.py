"""The sandbox app registration's credentials: its client secrets and certificates.

Made per sandbox run from the scenario and a reference time. Graph lists them
as applications(appId=...) does (Graph's application, passwordCredential and
keyCredential resource types); the identity
provider accepts client assertions signed with a registered certificate's key.
"""

import base64
import datetime
import functools
import os
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

from check_mailgw.sandbox.m365.tenant import (
    SANDBOX_APP_NAME,
    SANDBOX_CLIENT_SECRET,
    SANDBOX_SECRET_KEY_ID,
)
from check_mailgw.sandbox.scenarios import Scenario

SECRET_DISPLAY_NAME = "check_mailgw monitor"
# Entra shows a secret's first three characters as its hint.
HINT_LENGTH = 3
# "Days left" is the floor of the remaining days: half a day more keeps it at
# the scenario's number from the start of the run to hours later.
END_MARGIN = datetime.timedelta(hours=12)
SECRET_AGE = datetime.timedelta(days=30)
CERTIFICATE_AGE = datetime.timedelta(days=1)
# What a PowerShell upload can leave in customKeyIdentifier instead of the thumbprint.
OTHER_KEY_IDENTIFIER = b"check_mailgw-2026"
KEY_SIZE = 2048


def graph_datetime(moment: datetime.datetime) -> str:
    """A date-time as Graph writes credential dates: UTC, seconds, "Z"."""
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def ends_after(now: datetime.datetime, days: float) -> datetime.datetime:
    """The end date of a credential that has `days` days left at `now`."""
    return (now + datetime.timedelta(days=days) + END_MARGIN).replace(microsecond=0)


@functools.cache
def process_key(slot: int) -> rsa.RSAPrivateKey:
    """An RSA key made once per process and slot: making one takes time, tests make many."""
    return rsa.generate_private_key(public_exponent=65537, key_size=KEY_SIZE)


def _write_private(path: str | Path, data: bytes) -> Path:
    """Write a file only its owner can read, creating its directory."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as file:
        # An existing file keeps its old mode through os.open.
        os.fchmod(file.fileno(), 0o600)
        file.write(data)
    return path


@dataclass(frozen=True)
class AppCertificate:
    """A self-signed certificate and its RSA key, as one uploads to an app registration."""

    private_key: rsa.RSAPrivateKey
    certificate: x509.Certificate

    @classmethod
    def generate(
        cls,
        not_before: datetime.datetime,
        not_after: datetime.datetime,
        private_key: rsa.RSAPrivateKey | None = None,
    ) -> "AppCertificate":
        """A certificate for CN=<the sandbox app>, with a new key unless one is given."""
        key = private_key or rsa.generate_private_key(public_exponent=65537, key_size=KEY_SIZE)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, SANDBOX_APP_NAME)])
        certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=True,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
            )
            .sign(key, hashes.SHA256())
        )
        return cls(key, certificate)

    @property
    def der(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.DER)

    @property
    def sha1_thumbprint(self) -> str:
        """The SHA-1 thumbprint in hex, upper case, as the portal shows it."""
        return self.certificate.fingerprint(hashes.SHA1()).hex().upper()

    @property
    def sha256_thumbprint(self) -> str:
        return self.certificate.fingerprint(hashes.SHA256()).hex().upper()

    @property
    def not_before(self) -> datetime.datetime:
        return self.certificate.not_valid_before_utc

    @property
    def not_after(self) -> datetime.datetime:
        return self.certificate.not_valid_after_utc

    @property
    def subject(self) -> str:
        """The subject as the portal and Graph's displayName write it: CN=..."""
        return self.certificate.subject.rfc4514_string()

    @property
    def certificate_pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    def key_pem(self, passphrase: str | None = None) -> bytes:
        """The private key as PKCS#8 PEM, encrypted when a passphrase is given."""
        encryption: serialization.KeySerializationEncryption = (
            serialization.BestAvailableEncryption(passphrase.encode("utf-8"))
            if passphrase
            else serialization.NoEncryption()
        )
        return self.private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
        )

    def write_pem(self, path: str | Path, *, passphrase: str | None = None) -> Path:
        """Certificate then private key in one PEM file (mode 0600)."""
        return _write_private(path, self.certificate_pem + self.key_pem(passphrase))

    def write_certificate(self, path: str | Path) -> Path:
        return _write_private(path, self.certificate_pem)

    def write_key(self, path: str | Path, passphrase: str | None = None) -> Path:
        return _write_private(path, self.key_pem(passphrase))

    def write_pfx(self, path: str | Path, passphrase: str | None) -> Path:
        """PKCS#12 with the key and the certificate, as Windows exports them."""
        encryption: serialization.KeySerializationEncryption = (
            serialization.BestAvailableEncryption(passphrase.encode("utf-8"))
            if passphrase
            else serialization.NoEncryption()
        )
        data = pkcs12.serialize_key_and_certificates(
            SANDBOX_APP_NAME.encode("utf-8"), self.private_key, self.certificate, None, encryption
        )
        return _write_private(path, data)


@dataclass(frozen=True)
class PasswordCredential:
    """One client secret of the app, as Graph lists it (never its value)."""

    display_name: str
    hint: str
    key_id: str
    start: datetime.datetime
    end: datetime.datetime

    def graph_json(self) -> dict[str, Any]:
        return {
            "customKeyIdentifier": None,
            "displayName": self.display_name,
            "endDateTime": graph_datetime(self.end),
            "hint": self.hint,
            "keyId": self.key_id,
            "secretText": None,
            "startDateTime": graph_datetime(self.start),
        }


@dataclass(frozen=True)
class KeyCredential:
    """One certificate registered on the app, as Graph lists it."""

    certificate: AppCertificate
    key_id: str
    custom_key_identifier: bytes

    @property
    def start(self) -> datetime.datetime:
        return self.certificate.not_before

    @property
    def end(self) -> datetime.datetime:
        return self.certificate.not_after

    def graph_json(self) -> dict[str, Any]:
        return {
            "customKeyIdentifier": base64.b64encode(self.custom_key_identifier).decode("ascii"),
            "displayName": self.certificate.subject,
            "endDateTime": graph_datetime(self.end),
            # Only when one application is read with $select=keyCredentials.
            "key": base64.b64encode(self.certificate.der).decode("ascii"),
            "keyId": self.key_id,
            "startDateTime": graph_datetime(self.start),
            "type": "AsymmetricX509Cert",
            "usage": "Verify",
        }


@dataclass(frozen=True)
class AppCredentials:
    """What the app registration holds: its client secrets and registered certificates."""

    now: datetime.datetime
    # The certificate the sandbox hands to the plugin.
    certificate: AppCertificate
    # The secret the sandbox hands to the plugin (SANDBOX_CLIENT_SECRET).
    configured_secret: PasswordCredential
    # The secrets Graph lists: normally the configured one first, then the others.
    secrets: tuple[PasswordCredential, ...]
    keys: tuple[KeyCredential, ...]

    @classmethod
    def for_scenario(
        cls,
        scenario: Scenario,
        now: datetime.datetime,
        *,
        private_keys: Sequence[rsa.RSAPrivateKey] | None = None,
    ) -> "AppCredentials":
        """The credentials a scenario describes, dated from `now` (UTC aware).

        private_keys: the handed-out certificate's key, then the key of the other
        certificate of certificate_uploaded=False; by default keys made once per process.
        """
        now = now.astimezone(datetime.UTC).replace(microsecond=0)
        given = list(private_keys or ())
        handed_out_key = given[0] if given else process_key(0)
        other_key = given[1] if len(given) > 1 else process_key(1)
        certificate = AppCertificate.generate(
            now - CERTIFICATE_AGE, ends_after(now, scenario.certificate_days), handed_out_key
        )
        registered = certificate
        if not scenario.certificate_uploaded:
            registered = AppCertificate.generate(
                now - CERTIFICATE_AGE, ends_after(now, scenario.certificate_days), other_key
            )
        thumbprint = bytes.fromhex(registered.sha1_thumbprint)
        key = KeyCredential(
            registered,
            str(uuid.uuid4()),
            thumbprint if scenario.certificate_key_id_is_thumbprint else OTHER_KEY_IDENTIFIER,
        )
        configured = PasswordCredential(
            SECRET_DISPLAY_NAME,
            SANDBOX_CLIENT_SECRET[:HINT_LENGTH],
            SANDBOX_SECRET_KEY_ID,
            now - SECRET_AGE,
            ends_after(now, scenario.secret_days),
        )
        others = tuple(
            PasswordCredential(
                name, hint, str(uuid.uuid4()), now - SECRET_AGE, ends_after(now, days)
            )
            for name, hint, days in scenario.other_secrets
        )
        listed = (configured, *others) if scenario.secret_listed else others
        return cls(now, certificate, configured, listed, (key,))

    @property
    def registered(self) -> list[AppCertificate]:
        """Certificates the app knows: client assertions signed by their keys are accepted."""
        return [key.certificate for key in self.keys]

    def password_credentials(self) -> list[dict[str, Any]]:
        return [secret.graph_json() for secret in self.secrets]

    def key_credentials(self) -> list[dict[str, Any]]:
        return [key.graph_json() for key in self.keys]

    def key_with_thumbprint(
        self, *, sha1: bytes | None = None, sha256: bytes | None = None
    ) -> KeyCredential | None:
        """The registered certificate a client assertion names by x5t or x5t#S256."""
        for key in self.keys:
            if sha256 is not None and sha256.hex().upper() == key.certificate.sha256_thumbprint:
                return key
            if sha1 is not None and sha1.hex().upper() == key.certificate.sha1_thumbprint:
                return key
        return None
