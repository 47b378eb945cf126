"""App-only access tokens as Entra ID issues them (v1.0 JWTs, RS256), and their validation.

The sandbox's identity provider mints them; its Graph API and Exchange SMTP
listener validate them the way the real services do: signature, lifetime,
audience and tenant.
"""

import json
import random
import time
import uuid
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any, Literal

from check_mailgw.sandbox.m365.tenant import (
    SANDBOX_APP_NAME,
    SANDBOX_CLIENT_ID,
    SANDBOX_SERVICE_PRINCIPAL_ID,
    SANDBOX_TENANT_ID,
    SigningKey,
    base64url,
    unbase64url,
)

EXCHANGE_RESOURCE = "https://outlook.office365.com"
GRAPH_RESOURCE = "https://graph.microsoft.com"
# Resources a sandbox token can be asked for, by the aud their tokens carry.
EXCHANGE_AUDIENCES = frozenset(
    {
        EXCHANGE_RESOURCE,
        "https://outlook.office.com",
        "https://ps.outlook.com",
        "00000002-0000-0ff1-ce00-000000000000",
    }
)
GRAPH_AUDIENCES = frozenset({GRAPH_RESOURCE, "00000003-0000-0000-c000-000000000000"})

# Application roles a consented app gets for each API.
DEFAULT_ROLES = {EXCHANGE_RESOURCE: "SMTP.SendAsApp", GRAPH_RESOURCE: "Mail.Send"}

# Entra ID picks a token lifetime between 60 and 90 minutes at random.
LIFETIME_RANGE = (3600, 5400)
# expires_in in the token response is always this, whatever the token says.
EXPIRES_IN = 3599
# Entra backdates iat and nbf by five minutes to allow for clock skew.
CLOCK_SKEW = 300

Rejection = Literal["malformed", "signature", "expired", "audience", "tenant"]
# How the app proved itself: appidacr "1" for a client secret, "2" for a certificate.
ClientCredential = Literal["secret", "certificate"]
APPIDACR: dict[ClientCredential, str] = {"secret": "1", "certificate": "2"}


class TokenRejected(Exception):
    """A token the service does not accept, and which check failed."""

    def __init__(self, reason: Rejection) -> None:
        super().__init__(reason)
        self.reason: Rejection = reason


@dataclass(frozen=True)
class AccessTokens:
    """Mints and validates the tenant's app-only access tokens."""

    key: SigningKey
    tenant_id: str = SANDBOX_TENANT_ID
    client_id: str = SANDBOX_CLIENT_ID

    def mint(
        self,
        audience: str,
        *,
        roles: Collection[str] | None = None,
        issued_at: float | None = None,
        lifetime: int | None = None,
        credential: ClientCredential = "secret",
    ) -> str:
        """A signed token for an audience; roles None leaves the claim out, as Entra does."""
        now = int(time.time() if issued_at is None else issued_at)
        iat = now - CLOCK_SKEW if issued_at is None else now
        if lifetime is None:
            lifetime = random.randint(*LIFETIME_RANGE)
        issuer = f"https://sts.windows.net/{self.tenant_id}/"
        claims: dict[str, Any] = {
            "aud": audience,
            "iss": issuer,
            "iat": iat,
            "nbf": iat,
            "exp": iat + lifetime,
            "aio": base64url(uuid.uuid4().bytes * 2),
            "app_displayname": SANDBOX_APP_NAME,
            "appid": self.client_id,
            "appidacr": APPIDACR[credential],
            "idp": issuer,
            "idtyp": "app",
            "oid": SANDBOX_SERVICE_PRINCIPAL_ID,
            "sub": SANDBOX_SERVICE_PRINCIPAL_ID,
            "tid": self.tenant_id,
            "uti": base64url(uuid.uuid4().bytes),
            "ver": "1.0",
        }
        if roles is not None:
            claims["roles"] = list(roles)
        header = {"typ": "JWT", "alg": "RS256", "x5t": self.key.kid, "kid": self.key.kid}
        signing_input = f"{_encode(header)}.{_encode(claims)}".encode("ascii")
        return f"{signing_input.decode('ascii')}.{base64url(self.key.sign(signing_input))}"

    def verify(
        self, token: str, audiences: Collection[str], now: float | None = None
    ) -> dict[str, Any]:
        """The token's claims if it is valid for one of the audiences; else TokenRejected."""
        try:
            header, claims, signing_input, signature = split_jwt(token)
        except ValueError:
            raise TokenRejected("malformed") from None
        if header.get("alg") != "RS256" or not self.key.verify(signature, signing_input):
            raise TokenRejected("signature")
        now = time.time() if now is None else now
        expires = claims.get("exp")
        if not isinstance(expires, int | float) or expires <= now:
            raise TokenRejected("expired")
        if claims.get("aud") not in audiences:
            raise TokenRejected("audience")
        if claims.get("tid") != self.tenant_id:
            raise TokenRejected("tenant")
        return claims


def split_jwt(token: str) -> tuple[dict[str, Any], dict[str, Any], bytes, bytes]:
    """A compact JWS's header, claims, signing input and signature; ValueError if malformed."""
    parts = token.split(".")
    if len(parts) != 3:
        raise ValueError("a JWT has three parts")
    try:
        header = json.loads(unbase64url(parts[0]))
        claims = json.loads(unbase64url(parts[1]))
        signature = unbase64url(parts[2])
    except ValueError as error:  # binascii.Error and UnicodeDecodeError too
        raise ValueError(f"not a JWT: {error}") from None
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise ValueError("JWT header and claims must be JSON objects")
    signing_input = f"{parts[0]}.{parts[1]}".encode("ascii", errors="replace")
    return header, claims, signing_input, signature


def _encode(value: dict[str, Any]) -> str:
    return base64url(json.dumps(value, separators=(",", ":")).encode("utf-8"))
