"""Certificate credentials: the app's certificate and private key, read and checked locally.

PEM (certificate and key in one file, or the key in a second file) or PKCS#12 (.pfx), the
key possibly encrypted. The thumbprints are computed here, never typed: Entra ID names a
certificate by its SHA-1 thumbprint, newer assertions by its SHA-256 one.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12

from check_mailgw import secret
from check_mailgw.errors import SettingsError
from check_mailgw.secret import Secret

PEM_CERTIFICATE = b"-----BEGIN CERTIFICATE-----"
PEM_KEY_MARKERS = (b"PRIVATE KEY-----",)
MAX_FILE = 1024 * 1024  # a certificate with its chain is a few kilobytes


@dataclass(frozen=True)
class ClientCertificate:
    """Domain model: the certificate an app signs in with, and its private key (kept secret)."""

    certificate: x509.Certificate
    private_key_pem: Secret  # unencrypted PKCS#8, for msal; never shown

    @property
    def der(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.DER)

    @property
    def sha1(self) -> bytes:
        return self.certificate.fingerprint(hashes.SHA1())  # Entra ID's thumbprint

    @property
    def sha256(self) -> bytes:
        return self.certificate.fingerprint(hashes.SHA256())

    @property
    def thumbprint(self) -> str:
        """The SHA-1 thumbprint as the Entra portal shows it."""
        return self.sha1.hex().upper()

    @property
    def not_after(self) -> datetime.datetime:
        return self.certificate.not_valid_after_utc

    @property
    def subject(self) -> str:
        return self.certificate.subject.rfc4514_string()

    def msal_credential(self) -> dict[str, str]:
        """msal signs PS256 with x5t#S256 (and sends x5c) when given the certificate."""
        return {"private_key": self.private_key_pem.reveal(),
                "public_certificate": self.certificate.public_bytes(
                    serialization.Encoding.PEM).decode("ascii")}


def read_bounded(path: str, option: str) -> bytes:
    """The file's bytes: size-capped, and a FIFO or device never hangs the run."""
    data = secret.read_bounded(path, option, MAX_FILE, "not a certificate file")
    if not data.strip():
        raise SettingsError(f"{option} {path}: the file is empty")
    return data


def load_client_certificate(certificate_path: str, key_path: str | None,
                            passphrase: Secret | None) -> ClientCertificate:
    """The certificate and key from the files the options name, or a SettingsError saying why."""
    option = "--client-certificate"
    data = read_bounded(certificate_path, option)
    password = passphrase.reveal().encode() if passphrase else None
    if PEM_CERTIFICATE not in data and b"-----BEGIN" not in data:
        if key_path:
            raise SettingsError(f"--client-key: a PKCS#12 file ({certificate_path}) holds its "
                                "own key; give only --client-certificate")
        return from_pkcs12(data, certificate_path, password)
    certificate = first_certificate(data, certificate_path)
    key_option, key_data = option, data
    if key_path:
        key_option, key_data = "--client-key", read_bounded(key_path, "--client-key")
    elif not any(marker in data for marker in PEM_KEY_MARKERS):
        raise SettingsError(f"{option} {certificate_path}: no private key in the file: add it "
                            "(certificate and key in one PEM file) or give --client-key FILE")
    key = private_key(key_data, key_path or certificate_path, key_option, password)
    return checked(certificate, key, f"{key_option} {key_path or certificate_path}")


def first_certificate(data: bytes, path: str) -> x509.Certificate:
    try:
        certificates = x509.load_pem_x509_certificates(data)
    except ValueError:
        raise SettingsError(f"--client-certificate {path}: no PEM certificate in the file "
                            "(-----BEGIN CERTIFICATE-----)") from None
    return certificates[0]


def private_key(data: bytes, path: str, option: str,
                password: bytes | None) -> rsa.RSAPrivateKey:
    try:
        key = serialization.load_pem_private_key(data, password)
    except TypeError as error:  # encrypted without a passphrase, or a passphrase for a clear key
        if password is None:
            raise SettingsError(
                f"{option} {path}: the private key is encrypted: give its passphrase with "
                "--client-key-passphrase-file FILE or $MAILGW_CLIENT_KEY_PASSPHRASE") from None
        raise SettingsError(f"{option} {path}: {error}") from None
    except ValueError:
        words = "wrong passphrase, or no readable private key" if password else \
            "no readable private key (PEM, PKCS#8 or PKCS#1)"
        raise SettingsError(f"{option} {path}: {words}") from None
    except Exception as error:  # unsupported key type and the like
        raise SettingsError(f"{option} {path}: cannot read the private key "
                            f"({type(error).__name__})") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise SettingsError(f"{option} {path}: Entra ID client certificates need an RSA key")
    return key


def from_pkcs12(data: bytes, path: str, password: bytes | None) -> ClientCertificate:
    try:
        key, certificate, _ = pkcs12.load_key_and_certificates(data, password)
    except ValueError:
        words = "wrong passphrase, or not a PKCS#12 (.pfx) file" if password else \
            "not a PEM or PKCS#12 (.pfx) file, or a .pfx that needs its passphrase " \
            "(--client-key-passphrase-file FILE or $MAILGW_CLIENT_KEY_PASSPHRASE)"
        raise SettingsError(f"--client-certificate {path}: {words}") from None
    if certificate is None or key is None:
        raise SettingsError(f"--client-certificate {path}: the .pfx file needs both the "
                            "certificate and its private key")
    if not isinstance(key, rsa.RSAPrivateKey):
        raise SettingsError(f"--client-certificate {path}: Entra ID client certificates need "
                            "an RSA key")
    return checked(certificate, key, f"--client-certificate {path}")


def checked(certificate: x509.Certificate, key: rsa.RSAPrivateKey,
            key_source: str) -> ClientCertificate:
    """The pair, once the key is known to belong to the certificate."""
    if certificate.public_key().public_numbers() != key.public_key().public_numbers():
        raise SettingsError(f"{key_source}: the private key does not belong to the certificate "
                            f"({certificate.subject.rfc4514_string()})")
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode("ascii")
    return ClientCertificate(certificate, Secret(pem))
