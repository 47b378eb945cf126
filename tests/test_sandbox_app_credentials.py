"""The app's credentials (sandbox/m365/app_credentials.py): certificates, Graph's lookup."""

import base64
import datetime
import hashlib
import json
import math
import os
import re
import stat
import time
from pathlib import Path
from typing import Literal
from urllib.parse import parse_qs

import msal
import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.serialization import pkcs12
from m365_clients import (
    EXCHANGE_SCOPE,
    GRAPH_SCOPE,
    GUID,
    StartM365,
    access_token,
    assert_entra_error,
    graph_error,
    jwt_part,
    msal_app,
    send_mail,
    token_response,
)
from smtp_clients import exchange_session, xoauth2_login

from check_mailgw.sandbox.accounts import SANDBOX_USER
from check_mailgw.sandbox.m365.access_tokens import AccessTokens
from check_mailgw.sandbox.m365.app_credentials import AppCertificate
from check_mailgw.sandbox.m365.cloud import M365Sandbox, start_m365
from check_mailgw.sandbox.m365.tenant import (
    SANDBOX_CLIENT_ID,
    SANDBOX_CLIENT_SECRET,
    SANDBOX_SECRET_KEY_ID,
    SANDBOX_TENANT_ID,
    SigningKey,
)
from check_mailgw.sandbox.plumbing.ca import SandboxCA
from check_mailgw.sandbox.smtp import canned_replies

pytest_plugins = ["m365_fixtures"]


APP_SELECT = "passwordCredentials,keyCredentials"
DAY = datetime.timedelta(days=1)
CredentialForm = Literal["thumbprint", "public_certificate"]


@pytest.fixture(scope="module")
def foreign_certificate() -> AppCertificate:
    """A certificate for the sandbox app's name that no sandbox app has registered."""
    now = datetime.datetime.now(datetime.UTC)
    return AppCertificate.generate(now - DAY, now + 365 * DAY)


def certificate_credential(
    certificate: AppCertificate, form: CredentialForm
) -> dict[str, str]:
    """msal's client_credential for a certificate: RS256 with x5t, or PS256 with x5t#S256."""
    credential = {"private_key": certificate.key_pem().decode()}
    if form == "thumbprint":
        credential["thumbprint"] = certificate.sha1_thumbprint
    else:
        credential["public_certificate"] = certificate.certificate_pem.decode()
    return credential


def recorded_forms(session: requests.Session) -> list[dict[str, str]]:
    """Records the form of every POST the session makes from now on."""
    forms: list[dict[str, str]] = []

    def record(response: requests.Response, *args: object, **kwargs: object) -> None:
        body = response.request.body
        if response.request.method == "POST" and body:
            text = body.decode() if isinstance(body, bytes) else str(body)
            forms.append({name: values[0] for name, values in parse_qs(text).items()})

    session.hooks["response"].append(record)
    return forms


def certificate_token(
    sandbox: M365Sandbox,
    session: requests.Session,
    credential: dict[str, str],
    scope: str = GRAPH_SCOPE,
) -> dict[str, object]:
    app = msal.ConfidentialClientApplication(
        sandbox.client_id,
        client_credential=credential,
        authority=f"{sandbox.authority}/{sandbox.tenant_id}",
        instance_discovery=False,
        azure_region=False,
        http_client=session,
    )
    return dict(app.acquire_token_for_client([scope]))


def b64url_json(value: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


def assertion_for(
    sandbox: M365Sandbox,
    certificate: AppCertificate,
    *,
    algorithm: str = "RS256",
    signer: AppCertificate | None = None,
    **claims: object,
) -> str:
    """A client assertion naming `certificate`, signed with the key of `signer` (default: it);
    claims override the valid ones (None leaves one out)."""
    now = int(time.time())
    thumbprint = bytes.fromhex(
        certificate.sha1_thumbprint if algorithm == "RS256" else certificate.sha256_thumbprint
    )
    header = {
        "alg": algorithm,
        "typ": "JWT",
        ("x5t" if algorithm == "RS256" else "x5t#S256"): base64.urlsafe_b64encode(
            thumbprint
        ).decode(),
    }
    payload = {
        "aud": f"{sandbox.authority}/{sandbox.tenant_id}/oauth2/v2.0/token",
        "iss": sandbox.client_id,
        "sub": sandbox.client_id,
        "exp": now + 600,
        "iat": now,
        "jti": "4f1a6c2e-0b3d-4e5f-8a7b-9c0d1e2f3a4b",
        **claims,
    }
    payload = {name: value for name, value in payload.items() if value is not None}
    signing_input = f"{b64url_json(header)}.{b64url_json(payload)}".encode()
    key = (signer or certificate).private_key
    scheme: padding.AsymmetricPadding = (
        padding.PKCS1v15()
        if algorithm == "RS256"
        else padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
    )
    signature = key.sign(signing_input, scheme, hashes.SHA256())
    encoded = base64.urlsafe_b64encode(signature).decode().rstrip("=")
    return f"{signing_input.decode()}.{encoded}"


def assertion_response(
    sandbox: M365Sandbox, session: requests.Session, assertion: str, **form: str
) -> requests.Response:
    fields = {
        "client_secret": "",
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": assertion,
        **form,
    }
    return token_response(sandbox, session, **fields)


def application_lookup(
    sandbox: M365Sandbox,
    session: requests.Session,
    token: str | None,
    *,
    app_id: str | None = None,
    query: str | None = f"$select={APP_SELECT}",
) -> requests.Response:
    """GET applications(appId='...') as the plugin's expiry step asks for it."""
    path = f"/v1.0/applications(appId='{app_id or sandbox.client_id}')"
    url = f"{sandbox.graph_url}{path}" + (f"?{query}" if query is not None else "")
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return session.get(url, headers=headers)


def graph_time(text: str) -> datetime.datetime:
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", text), text
    return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.UTC)


def days_left(end: str, at: datetime.datetime) -> int:
    """Whole days left until a Graph endDateTime, as the plugin counts them."""
    return math.floor((graph_time(end) - at) / DAY)


@pytest.mark.parametrize(
    ("form", "algorithm", "thumbprint_header"),
    [("thumbprint", "RS256", "x5t"), ("public_certificate", "PS256", "x5t#S256")],
)
@pytest.mark.parametrize("scope", [GRAPH_SCOPE, EXCHANGE_SCOPE])
def test_msal_signs_in_with_the_app_certificate_and_gets_appidacr_2(
    m365: StartM365,
    https: requests.Session,
    form: CredentialForm,
    algorithm: str,
    thumbprint_header: str,
    scope: str,
) -> None:
    sandbox = m365()
    forms = recorded_forms(https)
    result = certificate_token(
        sandbox, https, certificate_credential(sandbox.app.certificate, form), scope
    )
    assert "error" not in result, result
    token = str(result["access_token"])
    claims = jwt_part(token, 1)
    assert (claims["appid"], claims["appidacr"]) == (SANDBOX_CLIENT_ID, "2")
    audience = scope.removesuffix("/.default")
    assert sandbox.tokens.verify(token, {audience}) == claims
    assert sandbox.token_requests == 1
    # What msal sent: the sandbox saw the assertion form it was meant to check.
    [sent] = forms
    assert "client_secret" not in sent
    header = jwt_part(sent["client_assertion"], 0)
    assert header["alg"] == algorithm
    assert set(header) & {"x5t", "x5t#S256"} == {thumbprint_header}


def test_a_certificate_token_is_accepted_by_graph_and_exchange(
    m365: StartM365, https: requests.Session, sandbox_ca: SandboxCA
) -> None:
    sandbox = m365()
    credential = certificate_credential(sandbox.app.certificate, "thumbprint")
    graph_token = str(certificate_token(sandbox, https, credential)["access_token"])
    exchange_token = str(certificate_token(sandbox, https, credential, EXCHANGE_SCOPE)
                         ["access_token"])
    assert send_mail(sandbox, https, graph_token).status_code == 202
    with exchange_session(sandbox, sandbox_ca) as client:
        assert xoauth2_login(client, SANDBOX_USER, exchange_token) == canned_replies.AUTH_SUCCESSFUL


@pytest.mark.parametrize("form", ["thumbprint", "public_certificate"])
def test_a_certificate_the_app_does_not_know_is_700027_with_its_thumbprint(
    m365: StartM365,
    https: requests.Session,
    foreign_certificate: AppCertificate,
    form: CredentialForm,
) -> None:
    sandbox = m365()
    result = certificate_token(sandbox, https, certificate_credential(foreign_certificate, form))
    assert result["error"] == "invalid_client"
    assert result["error_codes"] == [700027]
    # The thumbprint the client named: SHA-1 with x5t, SHA-256 with x5t#S256.
    named = (
        foreign_certificate.sha1_thumbprint
        if form == "thumbprint"
        else foreign_certificate.sha256_thumbprint
    )
    description = str(result["error_description"])
    assert "[Reason - The key was not found., Thumbprint of key used by client: " in description
    assert f"'{named}'" in description
    assert f"keys for app Id '{SANDBOX_CLIENT_ID}'" in description
    assert "access_token" not in result


def test_certificate_not_uploaded_refuses_the_handed_out_certificate(
    m365: StartM365, https: requests.Session
) -> None:
    sandbox = m365("certificate-not-uploaded")
    handed_out = sandbox.app.certificate
    [registered] = sandbox.app.registered
    assert registered.sha1_thumbprint != handed_out.sha1_thumbprint
    assert registered.der != handed_out.der
    result = certificate_token(sandbox, https, certificate_credential(handed_out, "thumbprint"))
    assert result["error_codes"] == [700027]
    assert f"Thumbprint of key used by client: '{handed_out.sha1_thumbprint}'" in str(
        result["error_description"]
    )
    # Graph lists the one certificate the app knows, not the handed-out one.
    token = access_token(sandbox, https, GRAPH_SCOPE)
    [key] = application_lookup(sandbox, https, token).json()["keyCredentials"]
    assert base64.b64decode(key["key"]) == registered.der
    # And a secret still works in this scenario.
    assert msal_app(sandbox, https).acquire_token_for_client([GRAPH_SCOPE])["access_token"]


@pytest.mark.parametrize("algorithm", ["RS256", "PS256"])
def test_a_valid_hand_made_assertion_gets_a_token(
    m365: StartM365, https: requests.Session, algorithm: str
) -> None:
    sandbox = m365()
    assertion = assertion_for(sandbox, sandbox.app.certificate, algorithm=algorithm)
    response = assertion_response(sandbox, https, assertion)
    assert response.status_code == 200, response.text
    assert jwt_part(response.json()["access_token"], 1)["appidacr"] == "2"


@pytest.mark.parametrize("algorithm", ["RS256", "PS256"])
def test_a_tampered_or_foreign_signature_is_700027_invalid_signature(
    m365: StartM365, https: requests.Session, foreign_certificate: AppCertificate, algorithm: str
) -> None:
    sandbox = m365()
    certificate = sandbox.app.certificate
    valid = assertion_for(sandbox, certificate, algorithm=algorithm)
    header, _, signature = valid.split(".")
    # The claims changed after signing: another subject.
    claims = jwt_part(valid, 1)
    tampered = f"{header}.{b64url_json({**claims, 'sub': SANDBOX_TENANT_ID})}.{signature}"
    # Names the registered certificate, signed with another key.
    foreign = assertion_for(sandbox, certificate, algorithm=algorithm, signer=foreign_certificate)
    # RS256 named, PS256 signed.
    wrong_scheme = ".".join(
        [b64url_json({**jwt_part(valid, 0), "alg": "PS256" if algorithm == "RS256" else "RS256"}),
         *valid.split(".")[1:]]
    )
    for assertion in (tampered, foreign, wrong_scheme):
        response = assertion_response(sandbox, https, assertion)
        description = assert_entra_error(response, 401, "invalid_client", 700027)
        assert "Client assertion contains an invalid signature. [Reason - The key was found" in (
            description
        )
        named = certificate.sha1_thumbprint if algorithm == "RS256" else (
            certificate.sha256_thumbprint
        )
        assert f"Thumbprint of key used by client: '{named}'" in description
        assert re.search(r"Found key 'Start=\d\d/\d\d/\d{4} \d\d:\d\d:\d\d, End=", description)
    assert sandbox.token_requests == 3


@pytest.mark.parametrize(
    ("claims", "form", "status", "error", "code", "text"),
    [
        ({"aud": "https://login.microsoftonline.com/common/oauth2/v2.0/token"}, {}, 401,
         "invalid_client", 700023, "Client assertion audience claim does not match Realm issuer."),
        ({"iss": "0c1d2e3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f"}, {}, 401, "invalid_client", 700021,
         "Client assertion application identifier doesn't match 'client_id' parameter."),
        ({"sub": None}, {}, 401, "invalid_client", 700021, "doesn't match 'client_id'"),
        ({"exp": 1_700_000_000}, {}, 401, "invalid_client", 700024,
         "Client assertion is not within its valid time range. Current time: "),
        ({"nbf": 4_000_000_000}, {}, 401, "invalid_client", 700024,
         "assertion valid from 2096-10-02T07:06:40.0000000Z"),
        ({"exp": None}, {}, 401, "invalid_client", 700024, "not within its valid time range"),
        ({}, {"client_assertion_type": ""}, 400, "invalid_request", 900144,
         "parameter: 'client_assertion_type'."),
        ({}, {"client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:saml2-bearer"},
         400, "invalid_request", 70002, "client_assertion_type 'urn:ietf:params:oauth:"),
        ({}, {"client_assertion": "not.a-jwt"}, 401, "invalid_client", 50027,
         "JWT token is invalid or malformed."),
    ],
    ids=["audience", "issuer", "no-subject", "expired", "not-yet-valid", "no-expiry",
         "no-assertion-type", "saml-assertion-type", "malformed"],
)
def test_client_assertion_claims_and_form_are_checked(
    m365: StartM365,
    https: requests.Session,
    claims: dict[str, object],
    form: dict[str, str],
    status: int,
    error: str,
    code: int,
    text: str,
) -> None:
    sandbox = m365()
    assertion = assertion_for(sandbox, sandbox.app.certificate, **claims)
    response = assertion_response(sandbox, https, assertion, **form)
    description = assert_entra_error(response, status, error, code)
    assert text in description


def test_assertion_audience_may_name_the_tenant_as_the_request_does(
    m365: StartM365, https: requests.Session
) -> None:
    sandbox = m365()
    by_domain = f"{sandbox.authority}/SANDBOX.test/oauth2/v2.0/token"
    assertion = assertion_for(sandbox, sandbox.app.certificate, aud=by_domain)
    url = f"{sandbox.authority}/sandbox.test/oauth2/v2.0/token"
    form = {
        "client_id": sandbox.client_id,
        "grant_type": "client_credentials",
        "scope": GRAPH_SCOPE,
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": assertion,
    }
    response = https.post(url, data=form)
    assert response.status_code == 200, response.text
    # The tenant a request does not name is another realm.
    elsewhere = https.post(f"{sandbox.authority}/{sandbox.tenant_id}/oauth2/v2.0/token",
                           data={**form, "client_assertion": assertion_for(
                               sandbox, sandbox.app.certificate,
                               aud=f"{sandbox.authority}/contoso.example/oauth2/v2.0/token")})
    assert_entra_error(elsewhere, 401, "invalid_client", 700023)


def test_ended_registrations_are_refused(
    sandbox_ca: SandboxCA, sandbox_signing_key: SigningKey, https: requests.Session
) -> None:
    # Dated 400 days back: the certificate (365 days) and the secret (180) have ended since.
    long_ago = datetime.datetime.now(datetime.UTC) - 400 * DAY
    with start_m365(
        ca=sandbox_ca, scenario="ok", signing_key=sandbox_signing_key, now=long_ago
    ) as sandbox:
        assert sandbox.now == long_ago.replace(microsecond=0)
        certificate = sandbox.app.certificate
        credential = certificate_credential(certificate, "thumbprint")
        result = certificate_token(sandbox, https, credential)
        assert result["error_codes"] == [700027]
        description = str(result["error_description"])
        assert "[Reason - The key used is expired., Thumbprint of key used by client: " in (
            description
        )
        assert f"End={certificate.not_after:%m/%d/%Y %H:%M:%S}'" in description
        refused = token_response(sandbox, https)
        assert_entra_error(refused, 401, "invalid_client", 7000222)


def test_certificate_unknown_scenario_refuses_even_a_registered_certificate(
    m365: StartM365, https: requests.Session
) -> None:
    sandbox = m365("certificate-unknown")
    certificate = sandbox.app.certificate
    result = certificate_token(sandbox, https, certificate_credential(certificate, "thumbprint"))
    assert result["error_codes"] == [700027]
    assert f"'{certificate.sha1_thumbprint}'" in str(result["error_description"])


def test_msal_reads_the_written_pem_with_passphrase_and_the_pfx(
    m365: StartM365, https: requests.Session, tmp_path: Path
) -> None:
    sandbox = m365()
    passphrase = "sandbox-passphrase"
    pem = sandbox.write_client_certificate(tmp_path / "keys" / "app.pem", passphrase=passphrase)
    pfx = sandbox.app.certificate.write_pfx(tmp_path / "keys" / "app.pfx", passphrase)
    for path in (pem, pfx):
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    text = pem.read_text()
    assert text.startswith("-----BEGIN CERTIFICATE-----")
    assert "-----BEGIN ENCRYPTED PRIVATE KEY-----" in text
    assert passphrase not in text
    from_pem = certificate_token(
        sandbox,
        https,
        {"private_key": text, "public_certificate": text, "passphrase": passphrase},
    )
    from_pfx = certificate_token(
        sandbox, https, {"private_key_pfx_path": str(pfx), "passphrase": passphrase}
    )
    for result in (from_pem, from_pfx):
        assert jwt_part(str(result["access_token"]), 1)["appidacr"] == "2", result


def test_app_certificate_writers(tmp_path: Path) -> None:
    now = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
    certificate = AppCertificate.generate(now - DAY, now + 10 * DAY)
    loaded = x509.load_pem_x509_certificate(
        certificate.write_certificate(tmp_path / "a" / "cert.pem").read_bytes()
    )
    assert loaded.subject.rfc4514_string() == "CN=check_mailgw sandbox monitor"
    assert loaded.issuer == loaded.subject
    assert certificate.not_after == now + 10 * DAY
    assert certificate.sha1_thumbprint == loaded.fingerprint(hashes.SHA1()).hex().upper()
    assert certificate.sha256_thumbprint == loaded.fingerprint(hashes.SHA256()).hex().upper()
    assert hashlib.sha1(certificate.der).hexdigest().upper() == certificate.sha1_thumbprint
    plain = certificate.write_key(tmp_path / "key.pem").read_bytes()
    assert serialization.load_pem_private_key(plain, None).public_key().public_numbers() == (
        certificate.private_key.public_key().public_numbers()
    )
    encrypted = certificate.write_key(tmp_path / "key.enc.pem", "s3cret").read_bytes()
    with pytest.raises(TypeError):
        serialization.load_pem_private_key(encrypted, None)
    assert serialization.load_pem_private_key(encrypted, b"s3cret")
    key, pfx_certificate, _ = pkcs12.load_key_and_certificates(
        certificate.write_pfx(tmp_path / "app.pfx", None).read_bytes(), None
    )
    assert key is not None and pfx_certificate == certificate.certificate
    for name in ("a/cert.pem", "key.pem", "key.enc.pem", "app.pfx"):
        assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == 0o600


def test_lookup_lists_the_secrets_and_the_certificate_of_the_app(
    m365: StartM365, https: requests.Session
) -> None:
    sandbox = m365()
    token = access_token(sandbox, https, GRAPH_SCOPE)
    response = application_lookup(sandbox, https, token)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    assert re.fullmatch(GUID, response.headers["request-id"])
    document = response.json()
    assert list(document) == ["@odata.context", "passwordCredentials", "keyCredentials"]
    assert document["@odata.context"] == (
        f"{sandbox.graph_url}/v1.0/$metadata#applications({APP_SELECT})/$entity"
    )
    in_use, old = document["passwordCredentials"]
    assert in_use == {
        "customKeyIdentifier": None,
        "displayName": "check_mailgw monitor",
        "endDateTime": in_use["endDateTime"],
        "hint": SANDBOX_CLIENT_SECRET[:3],
        "keyId": SANDBOX_SECRET_KEY_ID,
        "secretText": None,
        "startDateTime": in_use["startDateTime"],
    }
    assert in_use["hint"] == "Sbx"
    assert (old["displayName"], old["hint"], old["secretText"]) == ("old gateway secret", "Xq2",
                                                                    None)
    assert re.fullmatch(GUID, old["keyId"]) and old["keyId"] != SANDBOX_SECRET_KEY_ID
    # Days left read as the scenario says, at the start and a little later.
    for at in (sandbox.now, sandbox.now + datetime.timedelta(seconds=30)):
        assert days_left(in_use["endDateTime"], at) == 180
        assert days_left(old["endDateTime"], at) == 12
    assert graph_time(in_use["startDateTime"]) == sandbox.now - 30 * DAY
    [key] = document["keyCredentials"]
    certificate = sandbox.app.certificate
    assert key == {
        "customKeyIdentifier": base64.b64encode(bytes.fromhex(certificate.sha1_thumbprint))
        .decode(),
        "displayName": "CN=check_mailgw sandbox monitor",
        "endDateTime": key["endDateTime"],
        "key": base64.b64encode(certificate.der).decode(),
        "keyId": key["keyId"],
        "startDateTime": key["startDateTime"],
        "type": "AsymmetricX509Cert",
        "usage": "Verify",
    }
    assert re.fullmatch(GUID, key["keyId"])
    assert graph_time(key["endDateTime"]) == certificate.not_after
    assert days_left(key["endDateTime"], sandbox.now) == 365
    assert graph_time(key["startDateTime"]) == sandbox.now - DAY
    assert sandbox.app_lookups == 1


@pytest.mark.parametrize(
    ("scenario", "secrets", "certificate_days"),
    [
        ("secret-expired", [("Sbx", -2)], 365),
        ("secret-ends-in-20-days", [("Sbx", 20)], 365),
        ("secret-ends-in-3-days", [("Sbx", 3)], 365),
        ("secret-hint-shared", [("Sbx", 200), ("Sbx", 25)], 365),
        ("secret-not-listed", [("Q7w", 90)], 365),
        ("certificate-expiring", [("Sbx", 180)], 10),
    ],
)
def test_lookup_dates_follow_the_scenario(
    m365: StartM365,
    https: requests.Session,
    scenario: str,
    secrets: list[tuple[str, int]],
    certificate_days: int,
) -> None:
    sandbox = m365(scenario)
    # Minted here: secret-expired refuses every token request.
    token = sandbox.tokens.mint("https://graph.microsoft.com", roles=["Mail.Send"])
    document = application_lookup(sandbox, https, token).json()
    listed = [
        (secret["hint"], days_left(secret["endDateTime"], sandbox.now))
        for secret in document["passwordCredentials"]
    ]
    assert listed == secrets
    [key] = document["keyCredentials"]
    assert days_left(key["endDateTime"], sandbox.now) == certificate_days
    assert sandbox.app.certificate.not_after == graph_time(key["endDateTime"])


def test_an_unlisted_secret_still_signs_in(m365: StartM365, https: requests.Session) -> None:
    sandbox = m365("secret-not-listed")
    token = access_token(sandbox, https, GRAPH_SCOPE)
    [listed] = application_lookup(sandbox, https, token).json()["passwordCredentials"]
    assert listed["hint"] != SANDBOX_CLIENT_SECRET[:3]
    assert listed["keyId"] != SANDBOX_SECRET_KEY_ID


def test_lookup_of_certificate_accepted_matches_by_key_not_identifier(
    m365: StartM365, https: requests.Session
) -> None:
    sandbox = m365("certificate-accepted")
    certificate = sandbox.app.certificate
    result = certificate_token(sandbox, https, certificate_credential(certificate, "thumbprint"))
    [key] = application_lookup(sandbox, https, str(result["access_token"])).json()[
        "keyCredentials"
    ]
    identifier = base64.b64decode(key["customKeyIdentifier"])
    assert identifier != bytes.fromhex(certificate.sha1_thumbprint)
    assert identifier == b"check_mailgw-2026"
    der = base64.b64decode(key["key"])
    assert hashlib.sha1(der).hexdigest().upper() == certificate.sha1_thumbprint
    assert der == certificate.der


@pytest.mark.parametrize(
    ("path", "query", "properties"),
    [
        ("/v1.0/applications(appId='{app_id}')", None,
         ["id", "appId", "displayName", "passwordCredentials", "keyCredentials"]),
        ("/v1.0/applications(appId='{app_id}')", "$select=keyCredentials", ["keyCredentials"]),
        ("/V1.0/Applications(APPID='{APP_ID}')", "$select=KEYCREDENTIALS,passwordcredentials",
         ["keyCredentials", "passwordCredentials"]),
        ("/v1.0/applications(appId=%27{app_id}%27)",
         "%24select=passwordCredentials%2CkeyCredentials",
         ["passwordCredentials", "keyCredentials"]),
    ],
    ids=["no-select", "keys-only", "any-case", "percent-encoded"],
)
def test_lookup_paths_and_select(
    m365: StartM365,
    https: requests.Session,
    path: str,
    query: str | None,
    properties: list[str],
) -> None:
    sandbox = m365()
    token = access_token(sandbox, https, GRAPH_SCOPE)
    url = sandbox.graph_url + path.format(app_id=sandbox.client_id,
                                          APP_ID=sandbox.client_id.upper())
    response = https.get(url + (f"?{query}" if query else ""),
                         headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text
    document = response.json()
    assert list(document) == ["@odata.context", *properties]
    if "appId" in document:
        assert document["appId"] == SANDBOX_CLIENT_ID
        assert document["displayName"] == "check_mailgw sandbox monitor"
        assert document["@odata.context"].endswith("/v1.0/$metadata#applications/$entity")


def test_lookup_refusals(
    m365: StartM365, https: requests.Session, foreign_tokens: AccessTokens
) -> None:
    sandbox = m365()
    token = access_token(sandbox, https, GRAPH_SCOPE)
    other_app = "0c1d2e3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f"
    missing = application_lookup(sandbox, https, token, app_id=other_app)
    assert graph_error(missing) == (
        404,
        "Request_ResourceNotFound",
        f"Resource '{other_app}' does not exist or one of its queried reference-property "
        "objects are not present.",
    )
    no_token = application_lookup(sandbox, https, None)
    assert graph_error(no_token) == (401, "InvalidAuthenticationToken", "Access token is empty.")
    assert no_token.headers["WWW-Authenticate"].startswith("Bearer ")
    exchange = application_lookup(sandbox, https, access_token(sandbox, https, EXCHANGE_SCOPE))
    assert graph_error(exchange)[:2] == (401, "InvalidAuthenticationToken")
    foreign = application_lookup(
        sandbox, https, foreign_tokens.mint("https://graph.microsoft.com", roles=["Mail.Send"])
    )
    assert graph_error(foreign) == (401, "InvalidAuthenticationToken",
                                    "Access token validation failure.")
    unknown = application_lookup(sandbox, https, token, query="$select=keyCredentials,secrets")
    assert graph_error(unknown)[:2] == (400, "Request_BadRequest")
    assert "'secrets'" in graph_error(unknown)[2]
    posted = https.post(
        f"{sandbox.graph_url}/v1.0/applications(appId='{sandbox.client_id}')",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert graph_error(posted)[0] == 405
    # Every request that reached the endpoint counts, whatever its answer.
    assert sandbox.app_lookups == 6
    # Other paths keep their answers.
    nested = https.get(
        f"{sandbox.graph_url}/v1.0/applications(appId='{sandbox.client_id}')/owners",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert graph_error(nested) == (
        400, "BadRequest", "Resource not found for the segment 'owners'."
    )
    assert sandbox.app_lookups == 6


def test_lookup_forbidden_is_403_authorization_request_denied(
    m365: StartM365, https: requests.Session
) -> None:
    sandbox = m365("lookup-forbidden")
    token = access_token(sandbox, https, GRAPH_SCOPE)
    response = application_lookup(sandbox, https, token)
    assert graph_error(response) == (
        403,
        "Authorization_RequestDenied",
        "Insufficient privileges to complete the operation.",
    )
    # The rest of the app works.
    assert send_mail(sandbox, https, token).status_code == 202
    assert sandbox.app_lookups == 1


@pytest.mark.parametrize("scenario", ["graph-unavailable", "graph-not-json", "graph-denied"])
def test_graph_scenarios_leave_the_lookup_alone(
    m365: StartM365, https: requests.Session, scenario: str
) -> None:
    sandbox = m365(scenario)
    token = access_token(sandbox, https, GRAPH_SCOPE)
    assert application_lookup(sandbox, https, token).status_code == 200
    assert send_mail(sandbox, https, token).status_code != 202
