"""The local Entra ID (sandbox/m365/identity_provider.py): discovery, the token endpoint."""

import base64
import json
import time

import pytest
import requests
from m365_clients import (
    EXCHANGE_SCOPE,
    GRAPH_SCOPE,
    StartM365,
    access_token,
    assert_entra_error,
    jwt_part,
    msal_app,
    send_mail,
    token_response,
)
from smtp_clients import exchange_session, xoauth2_login

from check_mailgw.sandbox.accounts import SANDBOX_USER
from check_mailgw.sandbox.m365.tenant import (
    SANDBOX_CLIENT_ID,
    SANDBOX_SECRET_KEY_ID,
    SANDBOX_TENANT_ID,
)
from check_mailgw.sandbox.plumbing.ca import SandboxCA
from check_mailgw.sandbox.smtp import canned_replies

pytest_plugins = ["m365_fixtures"]


# A client assertion naming a certificate by its thumbprint (x5t), signed by nobody.
THUMBPRINT = "5BA93C9DB0CFF93F52B521D7420E43F6EDA2784F"
ASSERTION = ".".join(
    base64.urlsafe_b64encode(part).decode().rstrip("=")
    for part in (
        json.dumps({"alg": "RS256", "typ": "JWT", "x5t": base64.urlsafe_b64encode(
            bytes.fromhex(THUMBPRINT)).decode().rstrip("=")}).encode(),
        b"{}",
        b"signature",
    )
)


# Tenant discovery


@pytest.mark.parametrize("tenant", [SANDBOX_TENANT_ID, "sandbox.test", "SANDBOX.test"])
def test_discovery_names_the_token_endpoint_by_tenant_guid(
    m365: StartM365, https: requests.Session, tenant: str
) -> None:
    sandbox = m365()
    response = https.get(f"{sandbox.authority}/{tenant}/v2.0/.well-known/openid-configuration")
    assert response.status_code == 200
    document = response.json()
    base = f"{sandbox.authority}/{SANDBOX_TENANT_ID}"
    assert document["token_endpoint"] == f"{base}/oauth2/v2.0/token"
    assert document["authorization_endpoint"] == f"{base}/oauth2/v2.0/authorize"
    assert document["issuer"] == f"{base}/v2.0"
    assert "client_secret_post" in document["token_endpoint_auth_methods_supported"]
    keys = https.get(document["jwks_uri"]).json()["keys"]
    assert [key["kid"] for key in keys] == [sandbox.tokens.key.kid]


@pytest.mark.parametrize("tenant", ["0b5c7e9a-1d3f-4a6c-8e0b-2d4f6a8c0e1a", "contoso.example"])
def test_discovery_of_an_unknown_tenant_is_aadsts90002(
    m365: StartM365, https: requests.Session, tenant: str
) -> None:
    sandbox = m365()
    response = https.get(f"{sandbox.authority}/{tenant}/v2.0/.well-known/openid-configuration")
    description = assert_entra_error(response, 400, "invalid_tenant", 90002)
    assert description.startswith(f"AADSTS90002: Tenant '{tenant}' not found. ")


def test_a_tenant_neither_guid_nor_domain_is_aadsts900023(
    m365: StartM365, https: requests.Session
) -> None:
    sandbox = m365()
    response = https.get(f"{sandbox.authority}/not_a_tenant/v2.0/.well-known/openid-configuration")
    description = assert_entra_error(response, 400, "invalid_request", 900023)
    assert "'not_a_tenant' is neither a valid DNS name" in description


def test_msal_reports_an_unknown_tenant_from_its_constructor(
    m365: StartM365, https: requests.Session
) -> None:
    sandbox = m365()
    with pytest.raises(ValueError, match="Unable to get authority configuration"):
        msal_app(sandbox, https, tenant="contoso.example")
    assert sandbox.token_requests == 0


# Token endpoint


@pytest.mark.parametrize(
    ("scope", "audience", "roles"),
    [
        (EXCHANGE_SCOPE, "https://outlook.office365.com", ["SMTP.SendAsApp"]),
        ("https://outlook.office.com/.default", "https://outlook.office.com", ["SMTP.SendAsApp"]),
        (GRAPH_SCOPE, "https://graph.microsoft.com", ["Mail.Send"]),
        ("{authority}/.default", "{authority}", ["Mail.Send"]),
    ],
    ids=["exchange", "outlook", "graph", "sandbox-graph"],
)
def test_msal_gets_a_signed_v1_token_for_the_scope(
    m365: StartM365, https: requests.Session, scope: str, audience: str, roles: list[str]
) -> None:
    sandbox = m365()
    scope, audience = (text.format(authority=sandbox.authority) for text in (scope, audience))
    before = time.time()
    result = msal_app(sandbox, https).acquire_token_for_client([scope])
    assert result["token_type"] == "Bearer"
    assert result["expires_in"] == 3599
    assert result["token_source"] == "identity_provider"
    token = result["access_token"]
    header, claims = jwt_part(token, 0), jwt_part(token, 1)
    assert header["alg"] == "RS256"
    assert header["kid"] == sandbox.tokens.key.kid
    assert claims["aud"] == audience
    assert claims["roles"] == roles
    issuer = f"https://sts.windows.net/{SANDBOX_TENANT_ID}/"
    assert (claims["iss"], claims["idp"], claims["tid"]) == (issuer, issuer, SANDBOX_TENANT_ID)
    assert (claims["appid"], claims["appidacr"], claims["ver"]) == (SANDBOX_CLIENT_ID, "1", "1.0")
    assert claims["oid"] == claims["sub"]
    assert isinstance(claims["iat"], int) and isinstance(claims["exp"], int)
    assert claims["nbf"] == claims["iat"] <= before
    assert 3600 <= claims["exp"] - claims["iat"] <= 5400
    assert sandbox.tokens.verify(token, {audience}) == claims
    assert sandbox.token_requests == 1


def test_token_lifetimes_vary_between_60_and_90_minutes(
    m365: StartM365, https: requests.Session
) -> None:
    sandbox = m365()
    lifetimes = set()
    for _ in range(8):
        claims = jwt_part(access_token(sandbox, https, GRAPH_SCOPE), 1)
        lifetime = int(claims["exp"]) - int(claims["iat"])  # type: ignore[call-overload]
        assert 3600 <= lifetime <= 5400
        lifetimes.add(lifetime)
    assert len(lifetimes) > 1


def test_token_endpoint_answers_well_under_100_ms(
    m365: StartM365, https: requests.Session
) -> None:
    sandbox = m365()
    access_token(sandbox, https, GRAPH_SCOPE)
    timings = []
    for _ in range(5):
        started = time.monotonic()
        access_token(sandbox, https, EXCHANGE_SCOPE)
        timings.append(time.monotonic() - started)
    assert sorted(timings)[2] < 0.1


@pytest.mark.parametrize(
    ("form", "status", "error", "code", "text"),
    [
        (
            {"client_id": "0c1d2e3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f", "client_secret": "wrong"},
            400,
            "unauthorized_client",
            700016,
            "Application with identifier '0c1d2e3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f' was not found "
            "in the directory 'sandbox.test'.",
        ),
        (
            {"client_secret": ""},
            401,
            "invalid_client",
            7000218,
            "must contain the following parameter: 'client_assertion' or 'client_secret'.",
        ),
        (
            {"client_secret": "wrong", "scope": "Mail.Send"},
            401,
            "invalid_client",
            7000215,
            "Invalid client secret provided. Ensure the secret being sent in the request is the "
            f"client secret value, not the client secret ID, for a secret added to app "
            f"'{SANDBOX_CLIENT_ID}'.",
        ),
        (
            {"client_secret": SANDBOX_SECRET_KEY_ID},
            401,
            "invalid_client",
            7000215,
            "not the client secret ID",
        ),
        (
            {"scope": "https://graph.microsoft.com/Mail.Send"},
            400,
            "invalid_scope",
            1002012,
            "The provided value for scope https://graph.microsoft.com/Mail.Send is not valid. "
            "Client credential flows must have a scope value with /.default suffixed",
        ),
        (
            {"scope": "https://outlook.office365.us/.default"},
            400,
            "invalid_resource",
            500011,
            "The resource principal named https://outlook.office365.us was not found in the "
            "tenant named sandbox.test.",
        ),
        (
            {"scope": f"{GRAPH_SCOPE} {EXCHANGE_SCOPE}"},
            400,
            "invalid_scope",
            70011,
            f"The scope {GRAPH_SCOPE} {EXCHANGE_SCOPE} is not valid.",
        ),
        (
            {
                "client_secret": "",
                "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                "client_assertion": ASSERTION,
            },
            401,
            "invalid_client",
            700027,
            f"Thumbprint of key used by client: '{THUMBPRINT}'",
        ),
        ({"grant_type": ""}, 400, "invalid_request", 900144, "parameter: 'grant_type'."),
    ],
    ids=[
        "unknown-client-before-secret",
        "no-credential",
        "wrong-secret-before-scope",
        "secret-id-instead-of-value",
        "scope-without-default",
        "unknown-resource",
        "two-resources",
        "unregistered-certificate",
        "no-grant-type",
    ],
)
def test_token_request_errors_come_in_entra_order_with_its_words(
    m365: StartM365,
    https: requests.Session,
    form: dict[str, str],
    status: int,
    error: str,
    code: int,
    text: str,
) -> None:
    sandbox = m365()
    description = assert_entra_error(token_response(sandbox, https, **form), status, error, code)
    assert text in description
    assert sandbox.token_requests == 1


def test_msal_hands_a_refusal_back_as_the_error_body(
    m365: StartM365, https: requests.Session
) -> None:
    sandbox = m365()
    result = msal_app(sandbox, https, secret="not-the-secret").acquire_token_for_client(
        [GRAPH_SCOPE]
    )
    assert result["error"] == "invalid_client"
    assert result["error_codes"] == [7000215]
    assert "access_token" not in result


@pytest.mark.parametrize(
    ("scenario", "status", "error", "code"),
    [
        ("secret-expired", 401, "invalid_client", 7000222),
        ("app-disabled", 400, "unauthorized_client", 7000112),
        ("conditional-access", 400, "invalid_grant", 53003),
        ("certificate-unknown", 401, "invalid_client", 700027),
    ],
)
def test_token_scenarios_refuse_a_valid_request(
    m365: StartM365, https: requests.Session, scenario: str, status: int, error: str, code: int
) -> None:
    sandbox = m365(scenario)
    response = token_response(sandbox, https)
    description = assert_entra_error(response, status, error, code)
    if scenario == "secret-expired":
        assert f"client secret keys for app '{SANDBOX_CLIENT_ID}' are expired" in description
    if scenario == "app-disabled":
        assert f"Application '{SANDBOX_CLIENT_ID}'(" in description
        assert description.split(": ", 1)[1].startswith(f"Application '{SANDBOX_CLIENT_ID}'")
    if scenario == "conditional-access":
        body = response.json()
        assert body["suberror"] == "message_only"
        assert json.loads(body["claims"])["access_token"]["capolids"]["essential"] is True
    # A request that is wrong itself still gets its own answer first.
    assert_entra_error(token_response(sandbox, https, client_secret="x"), 401, "invalid_client",
                       7000215)


@pytest.mark.parametrize(
    ("scenario", "status", "content_type", "retry_after"),
    [
        ("token-throttled", 429, "application/json", "30"),
        ("token-unavailable", 503, "application/json", None),
        ("token-not-json", 502, "text/html", None),
    ],
)
def test_token_outages_answer_before_the_request_is_read(
    m365: StartM365,
    https: requests.Session,
    scenario: str,
    status: int,
    content_type: str,
    retry_after: str | None,
) -> None:
    sandbox = m365(scenario)
    # Even a request with a wrong secret: the outage answers first.
    response = token_response(sandbox, https, client_secret="wrong")
    assert response.status_code == status
    assert response.headers["Content-Type"].startswith(content_type)
    assert response.headers.get("Retry-After") == retry_after
    if content_type == "application/json":
        assert response.json()["error"] == "temporarily_unavailable"
    else:
        assert "<h1>502 Bad Gateway</h1>" in response.text


@pytest.mark.parametrize("scenario", ["token-slow", "slow-token-and-transport"])
def test_slow_token_endpoint_answers_after_a_second_and_a_half(
    m365: StartM365, https: requests.Session, scenario: str
) -> None:
    sandbox = m365(scenario)
    started = time.monotonic()
    access_token(sandbox, https, GRAPH_SCOPE)
    assert 1.5 <= time.monotonic() - started < 3


def test_rbac_only_tokens_carry_no_roles_and_still_send(
    m365: StartM365, https: requests.Session, sandbox_ca: SandboxCA
) -> None:
    sandbox = m365("rbac-only")
    graph_token = access_token(sandbox, https, GRAPH_SCOPE)
    exchange_token = access_token(sandbox, https, EXCHANGE_SCOPE)
    assert "roles" not in jwt_part(graph_token, 1)
    assert "roles" not in jwt_part(exchange_token, 1)
    assert send_mail(sandbox, https, graph_token).status_code == 202
    with exchange_session(sandbox, sandbox_ca) as client:
        assert xoauth2_login(client, SANDBOX_USER, exchange_token) == canned_replies.AUTH_SUCCESSFUL
