"""The local Graph's sendMail (sandbox/m365/graph_api.py), driven by requests."""

import re
import time

import pytest
import requests
from m365_clients import (
    EXCHANGE_SCOPE,
    GRAPH_SCOPE,
    GUID,
    StartM365,
    access_token,
    graph_error,
    jwt_part,
    send_mail,
)

from check_mailgw.sandbox.accounts import SANDBOX_USER
from check_mailgw.sandbox.m365.access_tokens import AccessTokens
from check_mailgw.sandbox.m365.tenant import SANDBOX_MAILBOXES, SANDBOX_OPS_MAILBOX

pytest_plugins = ["m365_fixtures"]


def test_graph_send_mail_is_accepted_with_202_and_recorded(
    m365: StartM365, https: requests.Session
) -> None:
    sandbox = m365()
    token = access_token(sandbox, https, GRAPH_SCOPE)
    response = send_mail(sandbox, https, token)
    assert response.status_code == 202
    assert response.content == b""
    assert re.fullmatch(GUID, response.headers["request-id"])
    # By object id as well as by user principal name.
    object_id = SANDBOX_MAILBOXES[SANDBOX_OPS_MAILBOX]
    assert send_mail(sandbox, https, token, user=object_id).status_code == 202
    first, second = sandbox.graph_messages
    assert (first.mailbox, first.sender, first.to, first.subject) == (
        SANDBOX_USER,
        SANDBOX_USER,
        ("alerts@example.com",),
        "probe",
    )
    assert first.save_to_sent_items is False
    assert second.mailbox == SANDBOX_OPS_MAILBOX


def test_graph_refuses_a_message_without_recipients(
    m365: StartM365, https: requests.Session
) -> None:
    sandbox = m365()
    token = access_token(sandbox, https, GRAPH_SCOPE)
    status, code, message = graph_error(send_mail(sandbox, https, token, recipients=()))
    assert (status, code) == (400, "ErrorInvalidRecipients")
    assert "contains no recipients" in message
    assert sandbox.graph_messages == []


def test_graph_refuses_an_unknown_user(m365: StartM365, https: requests.Session) -> None:
    sandbox = m365()
    token = access_token(sandbox, https, GRAPH_SCOPE)
    response = send_mail(sandbox, https, token, user="nobody@sandbox.test")
    assert graph_error(response) == (
        404,
        "ErrorInvalidUser",
        "The requested user 'nobody@sandbox.test' is invalid.",
    )


@pytest.mark.parametrize(
    ("token_kind", "message"),
    [
        ("none", "Access token is empty."),
        ("foreign-key", "Access token validation failure."),
        ("expired", "Lifetime validation failed, the token is expired."),
        ("exchange", "Access token validation failure. Invalid audience."),
    ],
)
def test_graph_refuses_bad_tokens_with_401(
    m365: StartM365,
    https: requests.Session,
    foreign_tokens: AccessTokens,
    token_kind: str,
    message: str,
) -> None:
    sandbox = m365()
    graph = "https://graph.microsoft.com"
    token = {
        "none": None,
        "foreign-key": foreign_tokens.mint(graph, roles=["Mail.Send"]),
        "expired": sandbox.tokens.mint(graph, roles=["Mail.Send"], issued_at=time.time() - 7200,
                                       lifetime=3600),
        "exchange": access_token(sandbox, https, EXCHANGE_SCOPE),
    }[token_kind]
    response = send_mail(sandbox, https, token)
    assert graph_error(response) == (401, "InvalidAuthenticationToken", message)
    assert response.headers["WWW-Authenticate"].startswith("Bearer ")
    assert sandbox.graph_messages == []


@pytest.mark.parametrize(
    ("scenario", "status", "code", "message", "retry_after"),
    [
        ("graph-denied", 403, "ErrorAccessDenied",
         "Access is denied. Check credentials and try again.", None),
        ("graph-no-roles", 401, "NoPermissionsInAccessToken",
         "The token contains no permissions, or permissions can not be understood.", None),
        ("graph-access-policy", 403, "ErrorAccessDenied", "Access to OData is disabled.", None),
        ("graph-mailbox-not-enabled", 404, "MailboxNotEnabledForRESTAPI",
         "The mailbox is either inactive, soft-deleted, or is hosted on-premise.", None),
        ("graph-resource-not-found", 404, "ResourceNotFound", "Resource could not be discovered.",
         None),
        ("graph-throttled", 429, "ApplicationThrottled",
         "Application is over its MailboxConcurrency limit.", "10"),
        ("graph-unavailable", 503, "ServiceNotAvailable",
         "The service is temporarily unavailable for maintenance or is overloaded.", "20"),
    ],
)
def test_graph_scenarios_answer_a_valid_send_mail(
    m365: StartM365,
    https: requests.Session,
    scenario: str,
    status: int,
    code: str,
    message: str,
    retry_after: str | None,
) -> None:
    sandbox = m365(scenario)
    token = access_token(sandbox, https, GRAPH_SCOPE)
    if scenario == "graph-no-roles":
        assert "roles" not in jwt_part(token, 1)
    response = send_mail(sandbox, https, token)
    assert graph_error(response) == (status, code, message)
    assert response.headers.get("Retry-After") == retry_after
    assert sandbox.graph_messages == []


def test_graph_not_json_answers_with_a_proxy_page(
    m365: StartM365, https: requests.Session
) -> None:
    sandbox = m365("graph-not-json")
    response = send_mail(sandbox, https, access_token(sandbox, https, GRAPH_SCOPE))
    assert response.status_code == 502
    assert response.headers["Content-Type"] == "text/html"
    assert "502 Bad Gateway" in response.text


def test_a_graph_scenario_leaves_the_token_endpoint_alone(
    m365: StartM365, https: requests.Session
) -> None:
    sandbox = m365("graph-not-json")
    claims = jwt_part(access_token(sandbox, https, GRAPH_SCOPE), 1)
    assert claims["roles"] == ["Mail.Send"]
