"""The sandbox's identity provider, imitating Entra ID: tenant discovery and client credentials
(a client secret, or a client assertion signed with a registered certificate).

Paths as on login.microsoftonline.com, below the sandbox's base URL:
GET /{tenant}/v2.0/.well-known/openid-configuration, GET
/{tenant}/discovery/v2.0/keys and POST /{tenant}/oauth2/v2.0/token. The tenant
may be named by its GUID or its domain.
"""

import asyncio
import binascii
import datetime
import hmac
import time
from base64 import b64decode
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeGuard
from urllib.parse import unquote_plus

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from check_mailgw.sandbox.m365 import entra_errors
from check_mailgw.sandbox.m365.access_tokens import (
    CLOCK_SKEW,
    DEFAULT_ROLES,
    EXCHANGE_RESOURCE,
    EXPIRES_IN,
    GRAPH_RESOURCE,
    AccessTokens,
    ClientCredential,
    split_jwt,
)
from check_mailgw.sandbox.m365.app_credentials import AppCredentials, KeyCredential
from check_mailgw.sandbox.m365.entra_errors import EntraError
from check_mailgw.sandbox.m365.tenant import (
    SANDBOX_APP_NAME,
    SANDBOX_CLIENT_SECRET,
    SANDBOX_TENANT_DOMAIN,
    resolve_tenant,
    tenant_form,
    unbase64url,
)
from check_mailgw.sandbox.plumbing.http_answers import (
    HttpAnswer,
    HttpRequest,
    ProxyFailure,
    request_guid,
)
from check_mailgw.sandbox.scenarios import Scenario

DEFAULT_SCOPE_SUFFIX = "/.default"
CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

GET_ONLY = EntraError(
    "invalid_request",
    400,
    "The endpoint only accepts POST requests. Received a {method} request.",
    code=900561,
)


@dataclass
class IdentityProvider:
    """Answers discovery, key and token requests for the sandbox tenant."""

    scenario: Scenario
    tokens: AccessTokens
    base_url: str
    # The app registration's secrets and certificates.
    app: AppCredentials
    token_requests: int = 0
    # The claims of every token issued, oldest first (never the tokens themselves).
    issued: list[dict[str, Any]] = field(default_factory=list)

    def resource_audiences(self) -> dict[str, str]:
        """Resource (scope without /.default) -> the aud of its tokens."""
        return {
            EXCHANGE_RESOURCE: EXCHANGE_RESOURCE,
            "https://outlook.office.com": "https://outlook.office.com",
            GRAPH_RESOURCE: GRAPH_RESOURCE,
            # The sandbox's own Graph, for a scope derived from --graph-url.
            self.base_url.lower(): self.base_url,
        }

    async def answer(self, request: HttpRequest) -> HttpAnswer:
        segments = request.path.strip("/").split("/")
        tenant, rest = segments[0], "/".join(segments[1:]).lower()
        if rest == "oauth2/v2.0/token":
            return await self._token_endpoint(tenant, request)
        if rest == "v2.0/.well-known/openid-configuration":
            return self._discovery(tenant, request)
        if rest == "discovery/v2.0/keys":
            return self._keys(tenant, request)
        return HttpAnswer(404)

    def _tenant_id(self, tenant: str, request: HttpRequest) -> str | HttpAnswer:
        """The tenant's GUID, or the error answer for an identifier that names none."""
        correlation_id = request_guid(request, "client-request-id")
        if tenant_form(tenant) is None:
            return entra_errors.TENANT_MALFORMED.answer(correlation_id, tenant=tenant)
        tenant_id = resolve_tenant(tenant)
        if tenant_id is None:
            return entra_errors.TENANT_NOT_FOUND.answer(correlation_id, tenant=tenant)
        return tenant_id

    def _discovery(self, tenant: str, request: HttpRequest) -> HttpAnswer:
        tenant_id = self._tenant_id(tenant, request)
        if isinstance(tenant_id, HttpAnswer):
            return tenant_id
        return HttpAnswer.json(200, self.openid_configuration(tenant_id))

    def openid_configuration(self, tenant_id: str) -> dict[str, object]:
        base = f"{self.base_url}/{tenant_id}"
        return {
            "token_endpoint": f"{base}/oauth2/v2.0/token",
            "token_endpoint_auth_methods_supported": [
                "client_secret_post",
                "private_key_jwt",
                "client_secret_basic",
            ],
            "jwks_uri": f"{base}/discovery/v2.0/keys",
            "response_modes_supported": ["query", "fragment", "form_post"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "issuer": f"{base}/v2.0",
            "request_uri_parameter_supported": False,
            "userinfo_endpoint": f"{self.base_url}/oidc/userinfo",
            "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
            "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
            "http_logout_supported": True,
            "frontchannel_logout_supported": True,
            "end_session_endpoint": f"{base}/oauth2/v2.0/logout",
            "claims_supported": ["sub", "iss", "aud", "exp", "iat", "nbf", "tid", "ver"],
            "tenant_region_scope": "EU",
        }

    def _keys(self, tenant: str, request: HttpRequest) -> HttpAnswer:
        tenant_id = self._tenant_id(tenant, request)
        if isinstance(tenant_id, HttpAnswer):
            return tenant_id
        return HttpAnswer.json(200, {"keys": [self.tokens.key.jwk()]})

    async def _token_endpoint(self, tenant: str, request: HttpRequest) -> HttpAnswer:
        if request.method == "POST":
            self.token_requests += 1
        if self.scenario.token_delay:
            await asyncio.sleep(self.scenario.token_delay)
        failure = self.scenario.token_failure
        # Outages come before anything is looked at.
        if isinstance(failure, ProxyFailure):
            return failure.answer()
        if failure is not None and failure.status >= 429:
            return failure.answer(request_guid(request, "client-request-id"))
        answer = self._token(tenant, request)
        if isinstance(answer, HttpAnswer):
            return answer
        # A refusal the scenario forces, once the request itself is fine.
        if failure is not None:
            values = _app_values(answer.client_id, answer.thumbprint)
            return failure.answer(answer.correlation_id, **values)
        return answer.success()

    def _token(self, tenant: str, request: HttpRequest) -> "_TokenRequest | HttpAnswer":
        """The checks of a token request, in Entra's order; the first failure is answered."""
        correlation_id = request_guid(request, "client-request-id")

        def refuse(error: EntraError, **values: str) -> HttpAnswer:
            return error.answer(correlation_id, **values)

        if request.method != "POST":
            return refuse(GET_ONLY, method=request.method)
        tenant_id = self._tenant_id(tenant, request)
        if isinstance(tenant_id, HttpAnswer):
            return tenant_id
        form = request.form()
        basic_client, basic_secret = _basic_credentials(request)
        client_id = form.get("client_id") or basic_client
        secret = form.get("client_secret") or basic_secret
        assertion = form.get("client_assertion")
        grant_type = form.get("grant_type")
        if not grant_type:
            return refuse(entra_errors.PARAMETER_MISSING, parameter="grant_type")
        if grant_type != "client_credentials":
            return refuse(entra_errors.GRANT_UNSUPPORTED, grant_type=grant_type)
        if not client_id:
            return refuse(entra_errors.PARAMETER_MISSING, parameter="client_id")
        values = _app_values(client_id)
        if client_id.lower() != self.tokens.client_id:
            return refuse(entra_errors.APP_NOT_FOUND, **values)
        credential: ClientCredential = "secret"
        thumbprint = ""
        if assertion:
            key = self._assertion_key(assertion, form, tenant, tenant_id, client_id, refuse)
            if isinstance(key, HttpAnswer):
                return key
            credential, thumbprint = "certificate", key.certificate.sha1_thumbprint
        elif not secret:
            return refuse(entra_errors.CREDENTIAL_MISSING)
        elif not hmac.compare_digest(secret.encode(), SANDBOX_CLIENT_SECRET.encode()):
            return refuse(entra_errors.SECRET_INVALID, **values)
        elif time.time() >= self.app.configured_secret.end.timestamp():
            return refuse(entra_errors.SECRET_EXPIRED, **values)
        scope = form.get("scope", "").strip()
        if not scope:
            return refuse(entra_errors.PARAMETER_MISSING, parameter="scope")
        audiences = self.resource_audiences()
        resources: list[str] = []
        for item in scope.split():
            if not item.lower().endswith(DEFAULT_SCOPE_SUFFIX):
                return refuse(entra_errors.SCOPE_NOT_DEFAULT, scope=scope)
            resource = item[: -len(DEFAULT_SCOPE_SUFFIX)].rstrip("/")
            if resource.lower() not in audiences:
                return refuse(entra_errors.RESOURCE_NOT_FOUND, resource=resource, **values)
            resources.append(audiences[resource.lower()])
        if len(set(resources)) > 1:
            return refuse(entra_errors.SCOPE_INVALID, scope=scope)
        return _TokenRequest(self, resources[0], correlation_id, client_id, credential, thumbprint)

    def _assertion_key(
        self,
        assertion: str,
        form: dict[str, str],
        tenant: str,
        tenant_id: str,
        client_id: str,
        refuse: Callable[..., HttpAnswer],
    ) -> KeyCredential | HttpAnswer:
        """The registered certificate that signed a valid client assertion, or the refusal.

        Checked as Entra does for certificate credentials: the assertion type, the
        certificate named by x5t (RS256) or x5t#S256 (PS256), its registration's end,
        the signature, then the claims iss, sub, aud, exp and nbf.
        """
        assertion_type = form.get("client_assertion_type")
        if not assertion_type:
            return refuse(entra_errors.PARAMETER_MISSING, parameter="client_assertion_type")
        if assertion_type != CLIENT_ASSERTION_TYPE:
            return refuse(entra_errors.ASSERTION_TYPE_UNSUPPORTED, assertion_type=assertion_type)
        try:
            header, claims, signing_input, signature = split_jwt(assertion)
        except ValueError:
            return refuse(entra_errors.ASSERTION_MALFORMED)
        sha1 = _thumbprint_bytes(header.get("x5t"))
        sha256 = _thumbprint_bytes(header.get("x5t#S256"))
        # Entra quotes the thumbprint the client named.
        named = (sha256 or sha1 or b"").hex().upper()
        values = _app_values(client_id, named)
        key = self.app.key_with_thumbprint(sha1=sha1, sha256=sha256)
        if key is None:
            return refuse(entra_errors.CERTIFICATE_UNKNOWN, **values)
        values.update(key_start=_key_date(key.start), key_end=_key_date(key.end))
        now = time.time()
        if now >= key.end.timestamp():
            return refuse(entra_errors.CERTIFICATE_EXPIRED, **values)
        if not _signed_by(key, header.get("alg"), signing_input, signature):
            return refuse(entra_errors.CERTIFICATE_SIGNATURE_INVALID, **values)
        if not all(_same_id(claims.get(name), client_id) for name in ("iss", "sub")):
            return refuse(entra_errors.ASSERTION_ISSUER, **values)
        audiences = claims.get("aud")
        audiences = audiences if isinstance(audiences, list) else [audiences]
        endpoints = self.token_endpoints(tenant, tenant_id)
        if not any(isinstance(aud, str) and aud.lower() in endpoints for aud in audiences):
            return refuse(entra_errors.ASSERTION_AUDIENCE, **values)
        expires, not_before = claims.get("exp"), claims.get("nbf")
        if not _within_time_range(expires, not_before, now):
            return refuse(
                entra_errors.ASSERTION_TIME,
                current_time=_assertion_time(now),
                valid_from=_assertion_time(not_before if _is_time(not_before) else 0),
                expires=_assertion_time(expires if _is_time(expires) else 0),
            )
        return key

    def token_endpoints(self, tenant: str, tenant_id: str) -> set[str]:
        """The token endpoint URLs a client assertion's aud may name, lower case.

        The one discovery announces, and the same with the tenant as the request
        names it (domain or GUID) or with the v1.0 path.
        """
        return {
            f"{self.base_url}/{name}/{path}".lower()
            for name in (tenant_id, tenant)
            for path in ("oauth2/v2.0/token", "oauth2/token")
        }


@dataclass(frozen=True)
class _TokenRequest:
    """A token request that passed every check: what it asks for."""

    provider: IdentityProvider
    audience: str
    correlation_id: str
    client_id: str
    credential: ClientCredential = "secret"
    # SHA-1 thumbprint of the certificate that signed the assertion ("" for a secret).
    thumbprint: str = ""

    def success(self) -> HttpAnswer:
        roles: list[str] | None = None
        if self.provider.scenario.token_roles:
            api = EXCHANGE_RESOURCE if self.audience.startswith("https://outlook.") else None
            roles = [DEFAULT_ROLES[api or GRAPH_RESOURCE]]
        token = self.provider.tokens.mint(self.audience, roles=roles, credential=self.credential)
        self.provider.issued.append(split_jwt(token)[1])
        body = {
            "token_type": "Bearer",
            "expires_in": EXPIRES_IN,
            "ext_expires_in": EXPIRES_IN,
            "access_token": token,
        }
        return HttpAnswer.json(200, body, (("Pragma", "no-cache"),))


def _app_values(client_id: str, thumbprint: str = "") -> dict[str, str]:
    """What Entra's texts say about the app and its directory."""
    return {
        "client_id": client_id,
        "app_name": SANDBOX_APP_NAME,
        "tenant_name": SANDBOX_TENANT_DOMAIN,
        "thumbprint": thumbprint,
    }


def _basic_credentials(request: HttpRequest) -> tuple[str | None, str | None]:
    """Client id and secret from an Authorization: Basic header (client_secret_basic)."""
    scheme, _, encoded = (request.header("Authorization") or "").partition(" ")
    if scheme.lower() != "basic":
        return None, None
    try:
        decoded = b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None, None
    client_id, _, secret = decoded.partition(":")
    return unquote_plus(client_id), unquote_plus(secret)


def _thumbprint_bytes(encoded: object) -> bytes | None:
    """A certificate thumbprint from a JOSE header (x5t, x5t#S256: base64url); None if absent."""
    if not isinstance(encoded, str) or not encoded:
        return None
    try:
        return unbase64url(encoded.rstrip("="))
    except ValueError:
        return None


def _signed_by(
    key: KeyCredential, algorithm: object, signing_input: bytes, signature: bytes
) -> bool:
    """Whether the registered certificate's key made the signature (RS256 or PS256)."""
    public_key = key.certificate.certificate.public_key()
    if not isinstance(public_key, rsa.RSAPublicKey):
        return False
    scheme: padding.AsymmetricPadding
    if algorithm == "RS256":
        scheme = padding.PKCS1v15()
    elif algorithm == "PS256":
        # Any salt length: signers differ (msal's uses the longest, others the hash's).
        scheme = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.AUTO)
    else:
        return False
    try:
        public_key.verify(signature, signing_input, scheme, hashes.SHA256())
    except InvalidSignature:
        return False
    return True


def _same_id(claim: object, client_id: str) -> bool:
    return isinstance(claim, str) and claim.lower() == client_id.lower()


def _is_time(value: object) -> TypeGuard[float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _within_time_range(expires: object, not_before: object, now: float) -> bool:
    """exp still ahead; nbf, if given, reached (give or take Entra's clock skew)."""
    if not _is_time(expires) or expires <= now:
        return False
    if not_before is None:
        return True
    return _is_time(not_before) and not_before <= now + CLOCK_SKEW


def _key_date(moment: datetime.datetime) -> str:
    """A key's start or end as Entra quotes it: 08/18/2029 19:33:23 (UTC)."""
    return moment.astimezone(datetime.UTC).strftime("%m/%d/%Y %H:%M:%S")


def _assertion_time(seconds: float) -> str:
    """A time as Entra's time-range error writes it: 2024-10-02T22:05:03.6755165Z."""
    moment = datetime.datetime.fromtimestamp(seconds, datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond * 10:07d}Z"
