"""The sandbox's identity provider, imitating Entra ID: tenant discovery and client credentials.

Paths as on login.microsoftonline.com, below the sandbox's base URL:
GET /{tenant}/v2.0/.well-known/openid-configuration, GET
/{tenant}/discovery/v2.0/keys and POST /{tenant}/oauth2/v2.0/token. The tenant
may be named by its GUID or its domain.
"""

import asyncio
import binascii
import hmac
import json
from base64 import b64decode
from dataclasses import dataclass
from urllib.parse import unquote_plus

from check_mailgw.sandbox import entra_errors
from check_mailgw.sandbox.entra_errors import EntraError
from check_mailgw.sandbox.http_answers import HttpAnswer, HttpRequest, ProxyFailure, request_guid
from check_mailgw.sandbox.scenarios import Scenario
from check_mailgw.sandbox.tenant import (
    SANDBOX_APP_NAME,
    SANDBOX_CLIENT_SECRET,
    SANDBOX_TENANT_DOMAIN,
    resolve_tenant,
    tenant_form,
    unbase64url,
)
from check_mailgw.sandbox.tokens import (
    DEFAULT_ROLES,
    EXCHANGE_RESOURCE,
    EXPIRES_IN,
    GRAPH_RESOURCE,
    AccessTokens,
)

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
    token_requests: int = 0

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
            return failure.answer(answer.correlation_id, **_app_values(answer.client_id))
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
        if assertion:
            # No certificate is registered on the sandbox app.
            thumbprint = _assertion_thumbprint(assertion)
            return refuse(entra_errors.CERTIFICATE_UNKNOWN, **_app_values(client_id, thumbprint))
        if not secret:
            return refuse(entra_errors.CREDENTIAL_MISSING)
        if not hmac.compare_digest(secret.encode(), SANDBOX_CLIENT_SECRET.encode()):
            return refuse(entra_errors.SECRET_INVALID, **values)
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
        return _TokenRequest(self, resources[0], correlation_id, client_id)


@dataclass(frozen=True)
class _TokenRequest:
    """A token request that passed every check: what it asks for."""

    provider: IdentityProvider
    audience: str
    correlation_id: str
    client_id: str

    def success(self) -> HttpAnswer:
        roles: list[str] | None = None
        if self.provider.scenario.token_roles:
            api = EXCHANGE_RESOURCE if self.audience.startswith("https://outlook.") else None
            roles = [DEFAULT_ROLES[api or GRAPH_RESOURCE]]
        token = self.provider.tokens.mint(self.audience, roles=roles)
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


def _assertion_thumbprint(assertion: str) -> str:
    """The certificate thumbprint a client assertion names (x5t), as Entra quotes it."""
    try:
        header = json.loads(unbase64url(assertion.split(".")[0]))
        return unbase64url(header.get("x5t", "")).hex().upper()
    except (ValueError, AttributeError, binascii.Error):
        return ""
