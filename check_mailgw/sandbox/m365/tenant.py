"""The sandbox's Microsoft 365 tenant: throwaway identities, its mailboxes and its signing key.

Every value here is made up and valid only against the sandbox.
"""

import base64
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from check_mailgw.sandbox.accounts import SANDBOX_DOMAIN, SANDBOX_USER, write_password_file

SANDBOX_TENANT_ID = "3f6b2a9e-5c1d-4e8a-9b7f-2d4c6e8a0b1c"
SANDBOX_TENANT_DOMAIN = SANDBOX_DOMAIN
SANDBOX_TENANT_NAME = "check_mailgw sandbox"

SANDBOX_CLIENT_ID = "8c2e4a6b-1d3f-4b5a-8c7e-9f0a1b2c3d4e"
SANDBOX_APP_NAME = "check_mailgw sandbox monitor"
# The app registration (application object): what Graph's applications/{id} names.
SANDBOX_APP_OBJECT_ID = "6d8f0a2c-4e6b-4c8d-b0f2-5a7c9e1b3d5f"
# The enterprise application (service principal): oid and sub of app-only tokens.
SANDBOX_SERVICE_PRINCIPAL_ID = "2a4c6e8f-0b1d-4f3a-9c5e-7b9d1f3a5c7e"
# Shaped like an Entra client secret value (3 characters, a digit, "Q~", 34 more);
# its first three characters are what Entra shows as the secret's hint.
SANDBOX_CLIENT_SECRET = "Sbx8Q~Sandbox.Only_N0t.Real~x4Tq9Lm2Zr7b"
# The secret's ID, which people paste by mistake instead of its value.
SANDBOX_SECRET_KEY_ID = "b7d9f1a3-5c2e-4d6b-a8f0-1e3c5a7b9d2f"

SANDBOX_OPS_MAILBOX = f"ops@{SANDBOX_DOMAIN}"
# User principal name -> object id, the two ways Graph names a user.
SANDBOX_MAILBOXES: dict[str, str] = {
    SANDBOX_USER: "4e6a8c0b-2d4f-4a6c-8e0b-3d5f7a9c1e2b",
    SANDBOX_OPS_MAILBOX: "9b1d3f5a-7c9e-4b2d-a4f6-8c0e2a4b6d8f",
}

CLIENT_SECRET_FILE_NAME = "client-secret"
# Certificate and private key (PEM) of the app's certificate credential.
CLIENT_CERTIFICATE_FILE_NAME = "client-certificate.pem"

_GUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.I)
_DOMAIN = re.compile(r"(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}", re.I)

TenantForm = Literal["guid", "domain"]


def tenant_form(tenant: str) -> TenantForm | None:
    """Whether a tenant identifier is a GUID, a domain name, or neither."""
    if _GUID.fullmatch(tenant):
        return "guid"
    if _DOMAIN.fullmatch(tenant):
        return "domain"
    return None


def resolve_tenant(tenant: str) -> str | None:
    """The sandbox tenant's id if the identifier names it (by GUID or domain), else None."""
    if tenant.lower() in (SANDBOX_TENANT_ID, SANDBOX_TENANT_DOMAIN):
        return SANDBOX_TENANT_ID
    return None


def mailbox_named(user: str) -> str | None:
    """The mailbox's address for a user principal name or object id; None if unknown."""
    user = user.lower()
    for address, object_id in SANDBOX_MAILBOXES.items():
        if user in (address, object_id):
            return address
    return None


def write_client_secret_file(path: str | Path, secret: str = SANDBOX_CLIENT_SECRET) -> Path:
    """Write the client secret to a file only its owner can read, for --client-secret-file."""
    return write_password_file(path, secret)


def base64url(data: bytes) -> str:
    """Base64url without padding, as JOSE writes it (RFC 7515)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unbase64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class SigningKey:
    """The tenant's token signing key: an RSA key made per sandbox run."""

    private_key: rsa.RSAPrivateKey
    kid: str

    @classmethod
    def generate(cls) -> "SigningKey":
        private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        der = private_key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        # Entra's key ids look like certificate thumbprints in base64url.
        return cls(private_key, base64url(hashlib.sha1(der).digest()))

    def sign(self, data: bytes) -> bytes:
        """RS256: RSASSA-PKCS1-v1_5 with SHA-256."""
        return self.private_key.sign(data, padding.PKCS1v15(), hashes.SHA256())

    def verify(self, signature: bytes, data: bytes) -> bool:
        try:
            self.private_key.public_key().verify(
                signature, data, padding.PKCS1v15(), hashes.SHA256()
            )
        except InvalidSignature:
            return False
        return True

    def jwk(self) -> dict[str, str]:
        """The public key as a JSON Web Key, as the tenant's jwks_uri lists it."""
        numbers = self.private_key.public_key().public_numbers()
        return {
            "kty": "RSA",
            "use": "sig",
            "kid": self.kid,
            "x5t": self.kid,
            "n": base64url(numbers.n.to_bytes((numbers.n.bit_length() + 7) // 8, "big")),
            "e": base64url(numbers.e.to_bytes((numbers.e.bit_length() + 7) // 8, "big")),
        }
