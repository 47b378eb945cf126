"""Clients of the local Microsoft 365 for the sandbox tests: msal, the token endpoint, Graph.

Each returns what a test asserts on; the error helpers check an answer's shape first.
"""

import base64
import json
import re
from collections.abc import Callable

import msal
import requests

from check_mailgw.sandbox.accounts import SANDBOX_USER
from check_mailgw.sandbox.m365.cloud import M365Sandbox
from check_mailgw.sandbox.m365.tenant import SANDBOX_CLIENT_SECRET

StartM365 = Callable[..., M365Sandbox]
GUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
EXCHANGE_SCOPE = "https://outlook.office365.com/.default"
GRAPH_SCOPE = "https://graph.microsoft.com/.default"


def msal_app(
    sandbox: M365Sandbox,
    session: requests.Session,
    secret: str = SANDBOX_CLIENT_SECRET,
    tenant: str | None = None,
) -> msal.ConfidentialClientApplication:
    return msal.ConfidentialClientApplication(
        sandbox.client_id,
        client_credential=secret,
        authority=f"{sandbox.authority}/{tenant or sandbox.tenant_id}",
        instance_discovery=False,
        azure_region=False,
        http_client=session,
    )


def token_response(
    sandbox: M365Sandbox, session: requests.Session, **form: str
) -> requests.Response:
    """A raw client-credentials POST to the token endpoint; form fields override the valid ones."""
    fields = {
        "client_id": sandbox.client_id,
        "grant_type": "client_credentials",
        "client_info": "1",
        "scope": GRAPH_SCOPE,
        "client_secret": SANDBOX_CLIENT_SECRET,
        **form,
    }
    url = f"{sandbox.authority}/{sandbox.tenant_id}/oauth2/v2.0/token"
    return session.post(url, data={name: value for name, value in fields.items() if value})


def access_token(sandbox: M365Sandbox, session: requests.Session, scope: str) -> str:
    response = token_response(sandbox, session, scope=scope)
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


def jwt_part(token: str, index: int) -> dict[str, object]:
    segment = token.split(".")[index]
    return json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))


def assert_entra_error(response: requests.Response, status: int, error: str, code: int) -> str:
    """Check an Entra error answer's shape; return its description."""
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == error
    assert body["error_codes"] == [code]
    assert body["error_uri"] == f"https://login.microsoftonline.com/error?code={code}"
    assert re.fullmatch(GUID, body["trace_id"])
    assert re.fullmatch(GUID, body["correlation_id"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ", body["timestamp"])
    description = body["error_description"]
    assert re.fullmatch(
        rf"AADSTS{code}: .+ Trace ID: {body['trace_id']} Correlation ID: "
        rf"{body['correlation_id']} Timestamp: {body['timestamp']}",
        description,
    )
    return str(description)


def send_mail(
    sandbox: M365Sandbox,
    session: requests.Session,
    token: str | None,
    *,
    user: str = SANDBOX_USER,
    recipients: tuple[str, ...] = ("alerts@example.com",),
) -> requests.Response:
    message = {
        "subject": "probe",
        "body": {"contentType": "Text", "content": "hello"},
        "toRecipients": [{"emailAddress": {"address": address}} for address in recipients],
    }
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return session.post(
        f"{sandbox.graph_url}/v1.0/users/{user}/sendMail",
        json={"message": message, "saveToSentItems": False},
        headers=headers,
    )


def graph_error(response: requests.Response) -> tuple[int, str, str]:
    """Status, code and message of a Graph error answer, after checking its shape."""
    error = response.json()["error"]
    inner = error["innerError"]
    assert inner["request-id"] == response.headers["request-id"]
    assert re.fullmatch(GUID, inner["client-request-id"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", inner["date"])
    return response.status_code, error["code"], error["message"]
