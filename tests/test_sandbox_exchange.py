"""The local Exchange Online SMTP (sandbox/m365/exchange_smtp.py), with XOAUTH2."""

import base64
import re
import smtplib
import time

import pytest
import requests
from m365_clients import EXCHANGE_SCOPE, GRAPH_SCOPE, StartM365, access_token
from smtp_clients import TIMEOUT, exchange_session, raw_client, reply_text, xoauth2, xoauth2_login

from check_mailgw.sandbox.accounts import SANDBOX_PASSWORD, SANDBOX_USER
from check_mailgw.sandbox.m365.access_tokens import AccessTokens
from check_mailgw.sandbox.m365.tenant import SANDBOX_OPS_MAILBOX
from check_mailgw.sandbox.plumbing.ca import SandboxCA
from check_mailgw.sandbox.smtp import canned_replies

pytest_plugins = ["m365_fixtures"]


EXCHANGE_TRAILER = (
    r"\[SN4PR0501CA0042\.namprd05\.prod\.outlook\.com "
    r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z 08DC1234567890AB\]"
)
AUTH_UNSUCCESSFUL = rf"535 5\.7\.3 Authentication unsuccessful {EXCHANGE_TRAILER}"


PROBE = f"From: {SANDBOX_USER}\r\nTo: alerts@example.com\r\nSubject: probe\r\n\r\nhello\r\n"


def test_exchange_greets_and_offers_xoauth2_only_after_starttls(
    m365: StartM365, sandbox_ca: SandboxCA
) -> None:
    sandbox = m365()
    client = smtplib.SMTP(sandbox.smtp_host, sandbox.smtp_port, timeout=TIMEOUT)
    try:
        code, hello = client.ehlo()
        assert (code, hello.decode().splitlines()[0]) == (
            250,
            "SN4PR0501CA0042.outlook.office365.com Hello [127.0.0.1]",
        )
        assert client.has_extn("starttls") and not client.has_extn("auth")
        assert client.esmtp_features["size"] == "157286400"
        assert client.starttls(context=sandbox_ca.client_context()) == (
            220,
            b"2.0.0 SMTP server ready",
        )
        client.ehlo()
        assert client.esmtp_features["auth"].split() == ["LOGIN", "XOAUTH2"]
        assert not client.has_extn("starttls")
    finally:
        client.close()
    with raw_client(sandbox.exchange) as raw:
        assert re.fullmatch(
            r"220 SN4PR0501CA0042\.outlook\.office365\.com Microsoft ESMTP MAIL Service ready "
            r"at \w{3}, \d\d \w{3} \d{4} \d\d:\d\d:\d\d [+-]\d{4}",
            raw.last(),
        )


def test_mail_from_before_auth_is_5_7_57(m365: StartM365, sandbox_ca: SandboxCA) -> None:
    with exchange_session(m365(), sandbox_ca) as client:
        assert re.fullmatch(
            rf"530 5\.7\.57 Client not authenticated to send mail\. {EXCHANGE_TRAILER}",
            reply_text(*client.mail(SANDBOX_USER)),
        )


@pytest.mark.parametrize("form", ["challenge", "initial-response"])
def test_xoauth2_authenticates_and_the_message_is_accepted(
    m365: StartM365, https: requests.Session, sandbox_ca: SandboxCA, form: str
) -> None:
    sandbox = m365()
    token = access_token(sandbox, https, EXCHANGE_SCOPE)
    with exchange_session(sandbox, sandbox_ca) as client:
        if form == "challenge":
            assert xoauth2_login(client, SANDBOX_USER, token) == canned_replies.AUTH_SUCCESSFUL
        else:
            # Longer than SMTP's 512-octet command line, which the listener allows for AUTH.
            reply = reply_text(*client.docmd("AUTH", f"XOAUTH2 {xoauth2(SANDBOX_USER, token)}"))
            assert reply == canned_replies.AUTH_SUCCESSFUL
        assert reply_text(*client.mail(SANDBOX_USER)) == "250 2.1.0 Sender OK"
        assert reply_text(*client.rcpt("alerts@example.com")) == "250 2.1.5 Recipient OK"
        code, text = client.data(PROBE)
        assert code == 250
        assert re.fullmatch(
            r"2\.0\.0 OK <[0-9a-f]{32}@sn4pr0501ca0042\.namprd05\.prod\.outlook\.com> "
            r"\[Hostname=SN4PR0501CA0042\.namprd05\.prod\.outlook\.com\]",
            text.decode(),
        )
        client.quit()
    [received] = sandbox.smtp_messages
    assert received.authenticated_as == SANDBOX_USER
    assert received.rcpt_tos == ("alerts@example.com",)
    assert received.message["Subject"] == "probe"


@pytest.mark.parametrize(
    ("user", "token_kind", "expected"),
    [
        (SANDBOX_USER, "graph", AUTH_UNSUCCESSFUL),
        (SANDBOX_USER, "foreign-key", AUTH_UNSUCCESSFUL),
        (SANDBOX_USER, "expired", AUTH_UNSUCCESSFUL),
        ("nobody@sandbox.test", "exchange", AUTH_UNSUCCESSFUL),
    ],
    ids=["graph-token", "foreign-key", "expired", "unknown-mailbox"],
)
def test_xoauth2_refuses_tokens_and_users_exchange_does_not_accept(
    m365: StartM365,
    https: requests.Session,
    sandbox_ca: SandboxCA,
    foreign_tokens: AccessTokens,
    user: str,
    token_kind: str,
    expected: str,
) -> None:
    sandbox = m365()
    exchange = "https://outlook.office365.com"
    token = {
        "graph": lambda: access_token(sandbox, https, GRAPH_SCOPE),
        "foreign-key": lambda: foreign_tokens.mint(exchange, roles=["SMTP.SendAsApp"]),
        "expired": lambda: sandbox.tokens.mint(
            exchange, roles=["SMTP.SendAsApp"], issued_at=time.time() - 7200, lifetime=3600
        ),
        "exchange": lambda: access_token(sandbox, https, EXCHANGE_SCOPE),
    }[token_kind]()
    with exchange_session(sandbox, sandbox_ca) as client:
        assert re.fullmatch(expected, xoauth2_login(client, user, token))
        assert reply_text(*client.mail(user)).startswith("530 5.7.57 ")


@pytest.mark.parametrize(
    "blob",
    [
        base64.b64encode(b"user=monitor@sandbox.test\x01auth=Bearer x").decode(),
        base64.b64encode(b"user=monitor@sandbox.test\x01auth=Basic x\x01\x01").decode(),
        "not base64!",
    ],
    ids=["unterminated", "not-bearer", "not-base64"],
)
def test_xoauth2_malformed_blob_is_5_5_124(
    m365: StartM365, sandbox_ca: SandboxCA, blob: str
) -> None:
    with exchange_session(m365(), sandbox_ca) as client:
        assert client.docmd("AUTH", "XOAUTH2")[0] == 334
        assert reply_text(*client.docmd(blob)) == canned_replies.EXCHANGE_XOAUTH2_MALFORMED


def test_send_as_another_mailbox_is_refused_only_at_the_end_of_data(
    m365: StartM365, https: requests.Session, sandbox_ca: SandboxCA
) -> None:
    sandbox = m365()
    token = access_token(sandbox, https, EXCHANGE_SCOPE)
    with exchange_session(sandbox, sandbox_ca) as client:
        assert xoauth2_login(client, SANDBOX_USER, token) == canned_replies.AUTH_SUCCESSFUL
        assert reply_text(*client.mail(SANDBOX_OPS_MAILBOX)) == "250 2.1.0 Sender OK"
        assert reply_text(*client.rcpt("alerts@example.com")) == "250 2.1.5 Recipient OK"
        reply = reply_text(*client.data(PROBE.replace(SANDBOX_USER, SANDBOX_OPS_MAILBOX)))
    assert reply.startswith(
        f"554 5.2.252 SendAsDenied; {SANDBOX_USER} not allowed to send as "
        f"{SANDBOX_OPS_MAILBOX}; STOREDRV.Submission.Exception:SendAsDeniedException"
    )
    assert sandbox.smtp_messages == []


@pytest.mark.parametrize(
    ("scenario", "expected"),
    [
        ("sp-not-registered", AUTH_UNSUCCESSFUL),
        (
            "auth-disabled",
            r"535 5\.7\.139 Authentication unsuccessful, SmtpClientAuthentication is disabled "
            rf"for the Tenant\. Visit https://aka\.ms/smtp_auth_disabled for more information\. "
            rf"{EXCHANGE_TRAILER}",
        ),
        (
            "smtp-auth-disabled-mailbox",
            r"535 5\.7\.139 Authentication unsuccessful, SmtpClientAuthentication is disabled "
            rf"for the Mailbox\. .*{EXCHANGE_TRAILER}",
        ),
        (
            "smtp-conditional-access",
            r"535 5\.7\.139 Authentication unsuccessful, the request did not meet the criteria "
            rf"to be authenticated successfully\. Contact your administrator\. {EXCHANGE_TRAILER}",
        ),
        ("xoauth2-malformed", re.escape(canned_replies.EXCHANGE_XOAUTH2_MALFORMED)),
        (
            "mailbox-logon-failure-auth",
            r"430 4\.2\.0 STOREDRV; mailbox logon failure; .*cn=monitor@sandbox\.test\. "
            r"MapiExceptionLogonFailed.*",
        ),
    ],
)
def test_exchange_scenarios_refuse_a_valid_xoauth2_login(
    m365: StartM365, https: requests.Session, sandbox_ca: SandboxCA, scenario: str, expected: str
) -> None:
    sandbox = m365(scenario)
    token = access_token(sandbox, https, EXCHANGE_SCOPE)
    with exchange_session(sandbox, sandbox_ca) as client:
        assert re.fullmatch(expected, xoauth2_login(client, SANDBOX_USER, token))


@pytest.mark.parametrize(
    ("scenario", "expected"),
    [
        (
            "mailbox-logon-failure",
            r"430 4\.2\.0 STOREDRV; mailbox logon failure; .*MapiExceptionLogonFailed.*",
        ),
        (
            "send-as-denied",
            rf"554 5\.2\.252 SendAsDenied; {SANDBOX_USER} not allowed to send as "
            rf"{SANDBOX_USER}; .*",
        ),
        (
            "send-as-denied-5760",
            r"550 5\.7\.60 SMTP; Client does not have permissions to send as this sender .*",
        ),
    ],
)
def test_exchange_scenarios_refuse_at_the_end_of_data(
    m365: StartM365, https: requests.Session, sandbox_ca: SandboxCA, scenario: str, expected: str
) -> None:
    sandbox = m365(scenario)
    token = access_token(sandbox, https, EXCHANGE_SCOPE)
    with exchange_session(sandbox, sandbox_ca) as client:
        assert xoauth2_login(client, SANDBOX_USER, token) == canned_replies.AUTH_SUCCESSFUL
        assert reply_text(*client.mail(SANDBOX_USER)) == "250 2.1.0 Sender OK"
        assert reply_text(*client.rcpt("alerts@example.com")) == "250 2.1.5 Recipient OK"
        assert re.fullmatch(expected, reply_text(*client.data(PROBE)))
    assert sandbox.smtp_messages == []


def test_tls_too_old_answers_the_ehlo_after_starttls_and_closes(
    m365: StartM365, sandbox_ca: SandboxCA
) -> None:
    sandbox = m365("tls-too-old")
    client = smtplib.SMTP(sandbox.smtp_host, sandbox.smtp_port, timeout=TIMEOUT)
    try:
        client.ehlo()
        client.starttls(context=sandbox_ca.client_context())
        refusal = reply_text(*client.docmd("EHLO", "client.test"))
        assert refusal == canned_replies.EXCHANGE_TLS_TOO_OLD
        with pytest.raises(smtplib.SMTPServerDisconnected):
            client.docmd("NOOP")
    finally:
        client.close()


def test_exchange_tempfail_answers_mail_from_with_451_prx4(
    m365: StartM365, https: requests.Session, sandbox_ca: SandboxCA
) -> None:
    sandbox = m365("exchange-tempfail")
    token = access_token(sandbox, https, EXCHANGE_SCOPE)
    with exchange_session(sandbox, sandbox_ca) as client:
        assert xoauth2_login(client, SANDBOX_USER, token) == canned_replies.AUTH_SUCCESSFUL
        assert re.fullmatch(
            rf"451 4\.7\.0 Temporary server error\. Please try again later\. PRX4 "
            rf"{EXCHANGE_TRAILER}",
            reply_text(*client.mail(SANDBOX_USER)),
        )


@pytest.mark.parametrize("scenario", ["exchange-slow", "slow-token-and-transport"])
def test_slow_exchange_greets_after_a_second_and_a_half(m365: StartM365, scenario: str) -> None:
    sandbox = m365(scenario)
    started = time.monotonic()
    with raw_client(sandbox.exchange) as client:
        assert client.last().startswith("220 SN4PR0501CA0042.outlook.office365.com ")
    assert 1.5 <= time.monotonic() - started < 3


def test_exchange_login_with_a_password_follows_the_scenario(
    m365: StartM365, sandbox_ca: SandboxCA
) -> None:
    with exchange_session(m365(), sandbox_ca) as client:
        assert client.login(SANDBOX_USER, SANDBOX_PASSWORD)[0] == 235
    with (
        exchange_session(m365("basic-auth-retired"), sandbox_ca) as client,
        pytest.raises(smtplib.SMTPAuthenticationError) as refused,
    ):
        client.login(SANDBOX_USER, SANDBOX_PASSWORD)
    assert refused.value.smtp_code == 550
