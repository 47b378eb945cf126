"""Entra ID's error answers, in one place: the sandbox identity provider's table.

Texts follow Microsoft Entra authentication and authorization error codes, the
answers reported in public threads, and Microsoft's own wording where
it is known; placeholders in braces are filled in per request.
"""

import datetime
import uuid
from dataclasses import dataclass, field
from typing import Any

from check_mailgw.sandbox.plumbing.http_answers import HttpAnswer


@dataclass(frozen=True)
class EntraError:
    """One error of the token or discovery endpoint: OAuth error, AADSTS code, status, text."""

    error: str
    status: int
    text: str
    # None for the errors that carry no AADSTS code (throttling, outages).
    code: int | None = None
    retry_after: int | None = None
    extra: tuple[tuple[str, Any], ...] = field(default=())

    def answer(self, correlation_id: str | None = None, **values: str) -> HttpAnswer:
        """The HTTP answer, with fresh trace id and timestamp, as Entra writes it."""
        now = datetime.datetime.now(datetime.UTC)
        timestamp = now.strftime("%Y-%m-%d %H:%M:%SZ")
        trace_id = str(uuid.uuid4())
        correlation_id = correlation_id or str(uuid.uuid4())
        text = self.text.format_map({"retry_after": str(self.retry_after), **values})
        if self.code is not None:
            text = f"AADSTS{self.code}: {text}"
        body: dict[str, Any] = {
            "error": self.error,
            # The newer one-line form of the trailer, as recent answers carry it.
            "error_description": f"{text} Trace ID: {trace_id} "
            f"Correlation ID: {correlation_id} Timestamp: {timestamp}",
        }
        if self.code is not None:
            body["error_codes"] = [self.code]
        body.update(timestamp=timestamp, trace_id=trace_id, correlation_id=correlation_id)
        if self.code is not None:
            body["error_uri"] = f"https://login.microsoftonline.com/error?code={self.code}"
        body.update(self.extra)
        headers: tuple[tuple[str, str], ...] = (("x-ms-request-id", trace_id),)
        if self.retry_after is not None:
            headers = (*headers, ("Retry-After", str(self.retry_after)))
        return HttpAnswer.json(self.status, body, headers)


# Tenant discovery and the tenant part of every endpoint
TENANT_NOT_FOUND = EntraError(
    "invalid_tenant",
    400,
    "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are "
    "signing into the correct cloud. Check with your subscription administrator, this may "
    "happen if there are no active subscriptions for the tenant.",
    code=90002,
)
TENANT_MALFORMED = EntraError(
    "invalid_request",
    400,
    "Specified tenant identifier '{tenant}' is neither a valid DNS name, nor a valid external "
    "domain.",
    code=900023,
)

# The token request itself
PARAMETER_MISSING = EntraError(
    "invalid_request",
    400,
    "The request body must contain the following parameter: '{parameter}'.",
    code=900144,
)
# Sandbox wording: only client credentials are imitated.
GRANT_UNSUPPORTED = EntraError(
    "unsupported_grant_type",
    400,
    "The app requested an unsupported grant type '{grant_type}'.",
    code=70003,
)
APP_NOT_FOUND = EntraError(
    "unauthorized_client",
    400,
    "Application with identifier '{client_id}' was not found in the directory '{tenant_name}'. "
    "This can happen if the application has not been installed by the administrator of the "
    "tenant or consented to by any user in the tenant. You may have sent your authentication "
    "request to the wrong tenant.",
    code=700016,
)
CREDENTIAL_MISSING = EntraError(
    "invalid_client",
    401,
    "The request body must contain the following parameter: 'client_assertion' or "
    "'client_secret'.",
    code=7000218,
)
SECRET_INVALID = EntraError(
    "invalid_client",
    401,
    "Invalid client secret provided. Ensure the secret being sent in the request is the client "
    "secret value, not the client secret ID, for a secret added to app '{client_id}'.",
    code=7000215,
)
SCOPE_NOT_DEFAULT = EntraError(
    "invalid_scope",
    400,
    "The provided value for scope {scope} is not valid. Client credential flows must have a "
    "scope value with /.default suffixed to the resource identifier (application ID URI).",
    code=1002012,
)
RESOURCE_NOT_FOUND = EntraError(
    "invalid_resource",
    400,
    "The resource principal named {resource} was not found in the tenant named {tenant_name}. "
    "This can happen if the application has not been installed by the administrator of the "
    "tenant or consented to by any user in the tenant. You might have sent your authentication "
    "request to the wrong tenant.",
    code=500011,
)
SCOPE_INVALID = EntraError(
    "invalid_scope",
    400,
    "The provided value for the input parameter 'scope' is not valid. The scope {scope} is not "
    "valid.",
    code=70011,
)

# Failures a scenario forces once the request itself is fine
SECRET_EXPIRED = EntraError(
    "invalid_client",
    401,
    "The provided client secret keys for app '{client_id}' are expired. Visit the Azure portal "
    "to create new keys for your app: https://aka.ms/NewClientSecret, or consider using "
    "certificate credentials for added security: https://aka.ms/certCreds.",
    code=7000222,
)
APP_DISABLED = EntraError(
    "unauthorized_client",
    400,
    "Application '{client_id}'({app_name}) is disabled.",
    code=7000112,
)
CONDITIONAL_ACCESS = EntraError(
    "invalid_grant",
    400,
    "Access has been blocked by Conditional Access policies. The access policy does not allow "
    "token issuance.",
    code=53003,
    extra=(
        ("suberror", "message_only"),
        (
            "claims",
            '{"access_token":{"capolids":{"essential":true,'
            '"values":["5e1d7f3b-2c4a-4e6b-8d0f-1a3c5e7b9d2f"]}}}',
        ),
    ),
)
CERTIFICATE_UNKNOWN = EntraError(
    "invalid_client",
    401,
    "The certificate with identifier used to sign the client assertion is not registered on "
    "application. [Reason - The key was not found., Thumbprint of key used by client: "
    "'{thumbprint}', Please visit the Azure Portal, Graph Explorer or directly use MS Graph to "
    "see configured keys for app Id '{client_id}'.]",
    code=700027,
)

# Client assertions (certificate credentials). Texts seen in public threads where
# marked "seen"; the others are sandbox wording in the same style.
CERTIFICATES_DOC = "https://learn.microsoft.com/entra/identity-platform/certificate-credentials"
_CONFIGURED_KEYS = (
    "Please visit the Azure Portal, Graph Explorer or directly use MS Graph to see configured "
    "keys for app Id '{client_id}'."
)
# Sandbox wording and code.
ASSERTION_TYPE_UNSUPPORTED = EntraError(
    "invalid_request",
    400,
    "Error validating credentials. The client_assertion_type '{assertion_type}' is not "
    "supported; use urn:ietf:params:oauth:client-assertion-type:jwt-bearer.",
    code=70002,
)
# Sandbox wording; the code is Entra's for a malformed JWT.
ASSERTION_MALFORMED = EntraError(
    "invalid_client",
    401,
    "JWT token is invalid or malformed. The client assertion is not a signed JWT.",
    code=50027,
)
# Sandbox wording for the reason, in the form of the seen ones.
CERTIFICATE_SIGNATURE_INVALID = EntraError(
    "invalid_client",
    401,
    "Client assertion contains an invalid signature. [Reason - The key was found but the "
    "signature is invalid., Thumbprint of key used by client: '{thumbprint}', Found key "
    f"'Start={{key_start}}, End={{key_end}}', {_CONFIGURED_KEYS}]",
    code=700027,
)
# Seen.
CERTIFICATE_EXPIRED = EntraError(
    "invalid_client",
    401,
    "Client assertion contains an invalid signature. [Reason - The key used is expired., "
    "Thumbprint of key used by client: '{thumbprint}', Found key 'Start={key_start}, "
    f"End={{key_end}}', {_CONFIGURED_KEYS}]",
    code=700027,
)
# Seen.
ASSERTION_AUDIENCE = EntraError(
    "invalid_client",
    401,
    f"Client assertion audience claim does not match Realm issuer. Review the documentation at "
    f"{CERTIFICATES_DOC} .",
    code=700023,
)
# Sandbox wording.
ASSERTION_ISSUER = EntraError(
    "invalid_client",
    401,
    "Client assertion application identifier doesn't match 'client_id' parameter. Review the "
    f"documentation at {CERTIFICATES_DOC} .",
    code=700021,
)
# Seen.
ASSERTION_TIME = EntraError(
    "invalid_client",
    401,
    "Client assertion is not within its valid time range. Current time: {current_time}, "
    "assertion valid from {valid_from}, expiry time of assertion {expires}. Review the "
    f"documentation at {CERTIFICATES_DOC} .",
    code=700024,
)

# Throttling and outage bodies are not documented; these are plausible imitations.
THROTTLED = EntraError(
    "temporarily_unavailable",
    429,
    "The service is temporarily throttling requests from this client. Retry after "
    "{retry_after} seconds.",
    retry_after=30,
)
UNAVAILABLE = EntraError(
    "temporarily_unavailable",
    503,
    "A transient error has occurred. Please try again.",
    code=90033,
)
