"""Microsoft Graph's error answers, in one place: the sandbox Graph API's table.

Texts follow Microsoft Graph's error responses and the answers reported in public
threads; placeholders in braces are filled
in per request.
"""

import datetime
from dataclasses import dataclass

from check_mailgw.sandbox.plumbing.http_answers import HttpAnswer

# What Graph sends along with a 401, pointing the client at the identity provider.
WWW_AUTHENTICATE = (
    'Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/'
    'authorize", client_id="00000003-0000-0000-c000-000000000000"'
)


@dataclass(frozen=True)
class GraphError:
    """One Graph error answer: status, code and message."""

    status: int
    code: str
    message: str
    retry_after: int | None = None

    def answer(self, request_id: str, client_request_id: str, **values: str) -> HttpAnswer:
        now = datetime.datetime.now(datetime.UTC).replace(tzinfo=None)
        body = {
            "error": {
                "code": self.code,
                "message": self.message.format(**values),
                "innerError": {
                    "date": now.isoformat(timespec="seconds"),
                    "request-id": request_id,
                    "client-request-id": client_request_id,
                },
            }
        }
        headers = [("request-id", request_id), ("client-request-id", client_request_id)]
        if self.status == 401:
            headers.append(("WWW-Authenticate", WWW_AUTHENTICATE))
        if self.retry_after is not None:
            headers.append(("Retry-After", str(self.retry_after)))
        return HttpAnswer.json(self.status, body, tuple(headers))


# The request
NOT_FOUND_SEGMENT = GraphError(400, "BadRequest", "Resource not found for the segment '{segment}'.")
METHOD_NOT_ALLOWED = GraphError(
    405, "Request_BadRequest", "Specified HTTP method is not allowed for the request target."
)
NOT_JSON = GraphError(
    400,
    "BadRequest",
    "Unable to read JSON request payload. Please ensure Content-Type header is set and payload "
    "is of valid JSON format.",
)
NO_RECIPIENTS = GraphError(
    400,
    "ErrorInvalidRecipients",
    "At least one recipient isn't valid., A message can't be sent because it contains no "
    "recipients.",
)

# The token
TOKEN_EMPTY = GraphError(401, "InvalidAuthenticationToken", "Access token is empty.")
TOKEN_MALFORMED = GraphError(
    401, "InvalidAuthenticationToken", "CompactToken parsing failed with error code: 80049217"
)
TOKEN_INVALID = GraphError(401, "InvalidAuthenticationToken", "Access token validation failure.")
TOKEN_EXPIRED = GraphError(
    401, "InvalidAuthenticationToken", "Lifetime validation failed, the token is expired."
)
TOKEN_WRONG_AUDIENCE = GraphError(
    401, "InvalidAuthenticationToken", "Access token validation failure. Invalid audience."
)

# The app registration: applications(appId='...')
# Sandbox wording for an unknown $select property, in the style of Graph's OData errors.
PROPERTY_UNKNOWN = GraphError(
    400,
    "Request_BadRequest",
    "Could not find a property named '{property}' on type 'microsoft.graph.application'.",
)
# Without Application.Read.All (the status is inferred from Graph's error responses page).
APPLICATION_READ_DENIED = GraphError(
    403, "Authorization_RequestDenied", "Insufficient privileges to complete the operation."
)
APPLICATION_NOT_FOUND = GraphError(
    404,
    "Request_ResourceNotFound",
    "Resource '{app_id}' does not exist or one of its queried reference-property objects are "
    "not present.",
)

# The user
USER_INVALID = GraphError(404, "ErrorInvalidUser", "The requested user '{user}' is invalid.")

# Failures a scenario forces once the request itself is fine
ACCESS_DENIED = GraphError(
    403, "ErrorAccessDenied", "Access is denied. Check credentials and try again."
)
NO_PERMISSIONS = GraphError(
    401,
    "NoPermissionsInAccessToken",
    "The token contains no permissions, or permissions can not be understood.",
)
ACCESS_POLICY = GraphError(403, "ErrorAccessDenied", "Access to OData is disabled.")
MAILBOX_NOT_ENABLED = GraphError(
    404,
    "MailboxNotEnabledForRESTAPI",
    "The mailbox is either inactive, soft-deleted, or is hosted on-premise.",
)
RESOURCE_NOT_FOUND = GraphError(404, "ResourceNotFound", "Resource could not be discovered.")
THROTTLED = GraphError(
    429,
    "ApplicationThrottled",
    "Application is over its MailboxConcurrency limit.",
    retry_after=10,
)
UNAVAILABLE = GraphError(
    503,
    "ServiceNotAvailable",
    "The service is temporarily unavailable for maintenance or is overloaded.",
    retry_after=20,
)
