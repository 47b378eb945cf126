"""The sandbox's SMTP listeners (sandbox/smtp/), driven by smtplib and raw lines."""

import base64
import gc
import re
import smtplib
import socket
import ssl
import struct
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
from smtp_clients import TIMEOUT, no_errors_logged, raw_client, reply_text

from check_mailgw.sandbox.accounts import SANDBOX_PASSWORD, SANDBOX_USER
from check_mailgw.sandbox.plumbing.ca import SandboxCA
from check_mailgw.sandbox.scenarios import SCENARIOS
from check_mailgw.sandbox.smtp import canned_replies
from check_mailgw.sandbox.smtp.listeners import Security, SmtpServer, start_smtp

SECURITIES: tuple[Security, ...] = ("starttls", "implicit", "plain")
StartSmtp = Callable[..., SmtpServer]

PLAIN_CREDENTIALS = base64.b64encode(f"\0{SANDBOX_USER}\0{SANDBOX_PASSWORD}".encode()).decode()


@contextmanager
def smtp_session(
    server: SmtpServer, ca: SandboxCA, *, starttls: bool = True
) -> Iterator[smtplib.SMTP]:
    """smtplib session after EHLO, with TLS as the server's security mode has it."""
    client: smtplib.SMTP
    if server.security == "implicit":
        client = smtplib.SMTP_SSL(
            server.host, server.port, context=ca.client_context(), timeout=TIMEOUT
        )
    else:
        client = smtplib.SMTP(server.host, server.port, timeout=TIMEOUT)
    try:
        client.ehlo()
        if starttls and server.security == "starttls":
            client.starttls(context=ca.client_context())
            client.ehlo()
        yield client
    finally:
        client.close()


# A healthy server


def test_starttls_auth_plain_and_send_delivers_the_message(
    smtp_server: StartSmtp, sandbox_ca: SandboxCA
) -> None:
    server = smtp_server("starttls")
    with smtp_session(server, sandbox_ca) as client:
        assert client.login(SANDBOX_USER, SANDBOX_PASSWORD)[0] == 235
        client.sendmail(
            SANDBOX_USER,
            ["alerts@example.com"],
            f"From: {SANDBOX_USER}\r\nTo: alerts@example.com\r\nSubject: probe\r\n\r\nhello\r\n",
        )
        client.quit()
    [received] = server.messages
    assert received.mail_from == SANDBOX_USER
    assert received.rcpt_tos == ("alerts@example.com",)
    assert received.authenticated_as == SANDBOX_USER
    assert received.message["Subject"] == "probe"
    assert received.message.get_content().strip() == "hello"


def test_greeting_and_ehlo_before_and_after_starttls(
    smtp_server: StartSmtp, sandbox_ca: SandboxCA
) -> None:
    server = smtp_server("starttls")
    client = smtplib.SMTP(server.host, server.port, timeout=TIMEOUT)
    try:
        code, banner = client.ehlo()
        assert code == 250
        assert banner.decode().splitlines()[0] == "mail.sandbox.test"
        for extension in ("size", "pipelining", "8bitmime", "enhancedstatuscodes", "starttls"):
            assert client.has_extn(extension), extension
        assert not client.has_extn("auth")
        client.starttls(context=sandbox_ca.client_context())
        client.ehlo()
        assert client.esmtp_features["auth"].split() == ["PLAIN", "LOGIN"]
        assert not client.has_extn("starttls")
    finally:
        client.close()


def test_greeting_names_the_sandbox(smtp_server: StartSmtp) -> None:
    with raw_client(smtp_server("plain")) as client:
        assert client.last() == "220 mail.sandbox.test ESMTP check_mailgw sandbox"


def test_auth_before_starttls_needs_encryption(
    smtp_server: StartSmtp, sandbox_ca: SandboxCA
) -> None:
    with smtp_session(smtp_server("starttls"), sandbox_ca, starttls=False) as client:
        assert reply_text(*client.docmd("AUTH", f"PLAIN {PLAIN_CREDENTIALS}")) == (
            canned_replies.ENCRYPTION_REQUIRED
        )


@pytest.mark.parametrize("security", ["starttls", "implicit"])
def test_mail_from_before_auth_is_refused(
    smtp_server: StartSmtp, sandbox_ca: SandboxCA, security: str
) -> None:
    with smtp_session(smtp_server(security), sandbox_ca) as client:
        assert reply_text(*client.mail(SANDBOX_USER)) == canned_replies.AUTH_REQUIRED


def test_bad_password_is_refused(smtp_server: StartSmtp, sandbox_ca: SandboxCA) -> None:
    with (
        smtp_session(smtp_server("starttls"), sandbox_ca) as client,
        pytest.raises(smtplib.SMTPAuthenticationError) as refused,
    ):
        client.login(SANDBOX_USER, "wrong")
    refusal = reply_text(refused.value.smtp_code, refused.value.smtp_error)
    assert refusal == canned_replies.AUTH_INVALID


@pytest.mark.parametrize(
    "dialogue",
    [
        [("AUTH PLAIN", "334 "), (PLAIN_CREDENTIALS, canned_replies.AUTH_SUCCESSFUL)],
        [
            ("AUTH LOGIN", "334 VXNlcm5hbWU6"),
            (base64.b64encode(SANDBOX_USER.encode()).decode(), "334 UGFzc3dvcmQ6"),
            (base64.b64encode(SANDBOX_PASSWORD.encode()).decode(), canned_replies.AUTH_SUCCESSFUL),
        ],
        [
            ("AUTH LOGIN " + base64.b64encode(SANDBOX_USER.encode()).decode(), "334 UGFzc3dvcmQ6"),
            (base64.b64encode(SANDBOX_PASSWORD.encode()).decode(), canned_replies.AUTH_SUCCESSFUL),
        ],
    ],
    ids=["plain-challenge", "login-challenge", "login-initial-response"],
)
def test_auth_challenge_forms(
    smtp_server: StartSmtp, sandbox_ca: SandboxCA, dialogue: list[tuple[str, str]]
) -> None:
    server = smtp_server("implicit")
    with raw_client(server, sandbox_ca.client_context()) as client:
        client.reply()
        client.send("EHLO client.test\r\n")
        client.reply()
        for sent, expected in dialogue:
            client.send(sent + "\r\n")
            assert client.last() == expected


def test_implicit_tls_offers_auth_and_no_starttls(
    smtp_server: StartSmtp, sandbox_ca: SandboxCA
) -> None:
    server = smtp_server("implicit")
    with smtp_session(server, sandbox_ca) as client:
        assert client.has_extn("auth")
        assert not client.has_extn("starttls")
        client.login(SANDBOX_USER, SANDBOX_PASSWORD)
        client.sendmail(SANDBOX_USER, ["ops@example.com"], "Subject: tls\r\n\r\nbody\r\n")
    assert [m.rcpt_tos for m in server.messages] == [("ops@example.com",)]


def test_plain_offers_auth_in_cleartext_and_relays_without_it(
    smtp_server: StartSmtp, sandbox_ca: SandboxCA
) -> None:
    server = smtp_server("plain")
    with smtp_session(server, sandbox_ca) as client:
        assert client.has_extn("auth")
        assert not client.has_extn("starttls")
        client.sendmail(SANDBOX_USER, ["ops@example.com"], "Subject: plain\r\n\r\nbody\r\n")
    assert server.messages[0].authenticated_as is None


def test_pipelined_mail_rcpt_rset_get_three_replies(
    smtp_server: StartSmtp, sandbox_ca: SandboxCA
) -> None:
    server = smtp_server("implicit")
    with raw_client(server, sandbox_ca.client_context()) as client:
        client.reply()
        client.send("EHLO client.test\r\n")
        assert "250-PIPELINING" in client.reply()
        client.send(f"AUTH PLAIN {PLAIN_CREDENTIALS}\r\n")
        assert client.last() == canned_replies.AUTH_SUCCESSFUL
        client.send(f"MAIL FROM:<{SANDBOX_USER}>\r\nRCPT TO:<ops@example.com>\r\nRSET\r\n")
        assert [client.last() for _ in range(3)] == [
            canned_replies.SENDER_OK,
            canned_replies.RECIPIENT_OK,
            canned_replies.OK,
        ]
    assert server.messages == []


@pytest.mark.parametrize(
    ("sender", "accepted"),
    [(SANDBOX_USER, True), ("other@sandbox.test", True), ("ceo@example.com", False)],
)
def test_sender_must_belong_to_the_authenticated_user(
    smtp_server: StartSmtp, sandbox_ca: SandboxCA, sender: str, accepted: bool
) -> None:
    with smtp_session(smtp_server("starttls"), sandbox_ca) as client:
        client.login(SANDBOX_USER, SANDBOX_PASSWORD)
        reply = reply_text(*client.mail(sender))
    expected = (
        canned_replies.SENDER_OK
        if accepted
        else canned_replies.SENDER_NOT_OWNED.format(address=sender, user=SANDBOX_USER)
    )
    assert reply == expected


@pytest.mark.parametrize(
    ("recipient", "accepted"),
    [("ops@example.com", True), ("nobody@example.invalid", False), ("x@invalid", False)],
)
def test_recipients_in_invalid_domains_are_unknown(
    smtp_server: StartSmtp, sandbox_ca: SandboxCA, recipient: str, accepted: bool
) -> None:
    with smtp_session(smtp_server("starttls"), sandbox_ca) as client:
        client.login(SANDBOX_USER, SANDBOX_PASSWORD)
        client.mail(SANDBOX_USER)
        reply = reply_text(*client.rcpt(recipient))
    unknown = canned_replies.RECIPIENT_UNKNOWN.format(address=recipient)
    expected = canned_replies.RECIPIENT_OK if accepted else unknown
    assert reply == expected


def test_clients_that_vanish_leave_the_server_serving(
    smtp_server: StartSmtp, sandbox_ca: SandboxCA, caplog: pytest.LogCaptureFixture
) -> None:
    server = smtp_server("implicit")
    context = sandbox_ca.client_context()
    for _ in range(5):
        with raw_client(server, context) as client:
            client.reply()
            client.send("EHLO client.test\r\nQUIT\r\n")
        with raw_client(server, context) as client:
            client.reply()
            client.send(f"EHLO client.test\r\nAUTH PLAIN {PLAIN_CREDENTIALS}\r\nMAIL FROM:<")
        with raw_client(server, context) as client:
            client.reply()
            client.send("EHLO client.test\r\n")
            # Linger 0: close() resets the connection instead of ending it.
            client.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with smtp_session(server, sandbox_ca) as client:
        assert client.noop() == (250, b"2.0.0 Ok")
    assert no_errors_logged(caplog)


@pytest.mark.parametrize("security", SECURITIES)
def test_stop_cuts_open_sessions_quickly_and_cleanly(
    sandbox_ca: SandboxCA, security: Security, caplog: pytest.LogCaptureFixture
) -> None:
    server = start_smtp(security=security, ca=sandbox_ca)
    with smtp_session(server, sandbox_ca) as client, raw_client(server):
        started = time.monotonic()
        server.stop()
        assert time.monotonic() - started < 2
        with pytest.raises((smtplib.SMTPServerDisconnected, ConnectionError)):
            client.noop()
    server.stop()
    gc.collect()
    assert no_errors_logged(caplog)


def test_unknown_scenario_names_the_valid_ones(sandbox_ca: SandboxCA) -> None:
    with pytest.raises(ValueError, match="cert-expired"):
        start_smtp(security="starttls", scenario="nope", ca=sandbox_ca)


# Scenarios


def test_no_starttls_offers_auth_in_cleartext(
    smtp_server: StartSmtp, sandbox_ca: SandboxCA
) -> None:
    with smtp_session(smtp_server("starttls", "no-starttls"), sandbox_ca, starttls=False) as client:
        assert not client.has_extn("starttls")
        assert client.has_extn("auth")
        assert reply_text(*client.docmd("STARTTLS")) == canned_replies.NOT_IMPLEMENTED
        assert client.login(SANDBOX_USER, SANDBOX_PASSWORD)[0] == 235


def test_no_auth_never_offers_auth(smtp_server: StartSmtp, sandbox_ca: SandboxCA) -> None:
    with smtp_session(smtp_server("starttls", "no-auth"), sandbox_ca) as client:
        assert not client.has_extn("auth")
        assert reply_text(*client.docmd("AUTH", f"PLAIN {PLAIN_CREDENTIALS}")) == (
            canned_replies.NOT_IMPLEMENTED
        )
        assert reply_text(*client.mail(SANDBOX_USER)) == canned_replies.SENDER_OK


def test_login_only_offers_and_accepts_login_alone(
    smtp_server: StartSmtp, sandbox_ca: SandboxCA
) -> None:
    with smtp_session(smtp_server("starttls", "login-only"), sandbox_ca) as client:
        assert client.esmtp_features["auth"].split() == ["LOGIN"]
        assert reply_text(*client.docmd("AUTH", f"PLAIN {PLAIN_CREDENTIALS}")) == (
            canned_replies.MECHANISM_UNKNOWN
        )
        assert client.login(SANDBOX_USER, SANDBOX_PASSWORD)[0] == 235


@pytest.mark.parametrize("security", ["starttls", "plain"])
def test_starttls_required_refuses_auth_until_starttls(
    smtp_server: StartSmtp, sandbox_ca: SandboxCA, security: str
) -> None:
    server = smtp_server(security, "starttls-required")
    with smtp_session(server, sandbox_ca, starttls=False) as client:
        assert client.has_extn("auth")
        assert client.has_extn("starttls")
        assert reply_text(*client.docmd("AUTH", f"PLAIN {PLAIN_CREDENTIALS}")) == (
            canned_replies.STARTTLS_FIRST
        )
        client.starttls(context=sandbox_ca.client_context())
        client.ehlo()
        assert client.login(SANDBOX_USER, SANDBOX_PASSWORD)[0] == 235


@pytest.mark.parametrize(
    ("scenario", "expected"),
    [
        (
            "auth-disabled",
            r"535 5\.7\.139 Authentication unsuccessful, SmtpClientAuthentication is disabled "
            r"for the Tenant\. Visit https://aka\.ms/smtp_auth_disabled for more information\. "
            r"\[SN4PR0501CA0042\.namprd05\.prod\.outlook\.com "
            r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z 08DC1234567890AB\]",
        ),
        (
            "basic-auth-retired",
            re.escape("550 5.7.30 Basic authentication is not supported for Client Submission."),
        ),
    ],
    ids=["auth-disabled", "basic-auth-retired"],
)
def test_exchange_refusals_of_basic_auth(
    smtp_server: StartSmtp, sandbox_ca: SandboxCA, scenario: str, expected: str
) -> None:
    server = smtp_server("starttls", scenario)
    with raw_client(server) as client:
        greeting = client.last()
    assert re.fullmatch(
        r"220 SN4PR0501CA0042\.outlook\.office365\.com Microsoft ESMTP MAIL Service ready at "
        r"\w{3}, \d\d \w{3} \d{4} \d\d:\d\d:\d\d [+-]\d{4}",
        greeting,
    )
    with (
        smtp_session(server, sandbox_ca) as client,
        pytest.raises(smtplib.SMTPAuthenticationError) as refused,
    ):
        client.login(SANDBOX_USER, SANDBOX_PASSWORD)
    assert re.fullmatch(expected, reply_text(refused.value.smtp_code, refused.value.smtp_error))


@pytest.mark.parametrize("security", SECURITIES)
def test_busy_greets_with_421_and_closes(
    smtp_server: StartSmtp, sandbox_ca: SandboxCA, security: str
) -> None:
    server = smtp_server(security, "busy")
    context = sandbox_ca.client_context() if security == "implicit" else None
    with raw_client(server, context) as client:
        assert client.last() == canned_replies.SERVICE_NOT_AVAILABLE
        with pytest.raises(ConnectionError):
            client.line()


def test_tempfail_answers_mail_from_with_451(smtp_server: StartSmtp, sandbox_ca: SandboxCA) -> None:
    with smtp_session(smtp_server("starttls", "tempfail"), sandbox_ca) as client:
        client.login(SANDBOX_USER, SANDBOX_PASSWORD)
        assert reply_text(*client.mail(SANDBOX_USER)) == canned_replies.EXCHANGE_SERVER_BUSY


def test_bad_greeting_answers_503_until_quit(smtp_server: StartSmtp) -> None:
    with raw_client(smtp_server("starttls", "bad-greeting")) as client:
        assert client.last() == canned_replies.NO_SMTP_SERVICE
        client.send("EHLO client.test\r\n")
        assert client.last() == canned_replies.BAD_SEQUENCE
        client.send("QUIT\r\n")
        assert client.last() == canned_replies.BYE
        with pytest.raises(ConnectionError):
            client.line()


def test_not_smtp_sends_an_ssh_banner_and_nothing_else(smtp_server: StartSmtp) -> None:
    with raw_client(smtp_server("implicit", "not-smtp"), timeout=0.3) as client:
        assert client.line() == canned_replies.SSH_BANNER
        client.send("EHLO client.test\r\n")
        with pytest.raises(TimeoutError):
            client.line()


def test_drop_mid_session_closes_when_auth_arrives(
    smtp_server: StartSmtp, sandbox_ca: SandboxCA
) -> None:
    with (
        smtp_session(smtp_server("starttls", "drop-mid-session"), sandbox_ca) as client,
        pytest.raises(smtplib.SMTPServerDisconnected),
    ):
        client.login(SANDBOX_USER, SANDBOX_PASSWORD)


def test_silent_accepts_and_says_nothing(smtp_server: StartSmtp) -> None:
    with (
        raw_client(smtp_server("starttls", "silent"), timeout=0.3) as client,
        pytest.raises(TimeoutError),
    ):
        client.line()


def test_blackhole_connect_times_out(smtp_server: StartSmtp) -> None:
    server = smtp_server("starttls", "blackhole")
    with pytest.raises(TimeoutError):
        socket.create_connection((server.host, server.port), timeout=1).close()


def test_slow_auth_outlasts_the_client_and_still_stops_at_once(
    smtp_server: StartSmtp, sandbox_ca: SandboxCA
) -> None:
    server = smtp_server("implicit", "slow-auth")
    with raw_client(server, sandbox_ca.client_context(), timeout=0.5) as client:
        client.reply()
        client.send("EHLO client.test\r\n")
        client.reply()
        client.send(f"AUTH PLAIN {PLAIN_CREDENTIALS}\r\n")
        with pytest.raises(TimeoutError):
            client.line()
        started = time.monotonic()
        server.stop()
    assert time.monotonic() - started < 2


@pytest.mark.parametrize("security", ["starttls", "implicit"])
def test_tls_handshake_failure_sends_standard_clients_an_alert(
    smtp_server: StartSmtp, sandbox_ca: SandboxCA, security: str, caplog: pytest.LogCaptureFixture
) -> None:
    server = smtp_server(security, "tls-handshake-failure")
    # Twice: the server survives a failed handshake and fails the next one alike.
    for _ in range(2):
        with pytest.raises(ssl.SSLError) as failed, smtp_session(server, sandbox_ca):
            pass
        assert failed.value.reason == "SSLV3_ALERT_HANDSHAKE_FAILURE"
    assert no_errors_logged(caplog)


@pytest.mark.parametrize("security", ["starttls", "implicit"])
@pytest.mark.parametrize(
    ("scenario", "message"),
    [("cert-expired", "certificate has expired"), ("cert-wrong-host", "mismatch")],
)
def test_bad_certificates_fail_verification(
    smtp_server: StartSmtp, sandbox_ca: SandboxCA, security: str, scenario: str, message: str
) -> None:
    server = smtp_server(security, scenario)
    with pytest.raises(ssl.SSLCertVerificationError) as failed, smtp_session(server, sandbox_ca):
        pass
    assert message in failed.value.verify_message


def test_expiring_certificate_verifies_and_ends_in_ten_days(
    smtp_server: StartSmtp, sandbox_ca: SandboxCA
) -> None:
    server = smtp_server("implicit", "cert-expiring")
    with raw_client(server, sandbox_ca.client_context()) as client:
        assert isinstance(client.sock, ssl.SSLSocket)
        certificate = client.sock.getpeercert()
    days_left = (ssl.cert_time_to_seconds(str(certificate["notAfter"])) - time.time()) / 86400
    assert 9 < days_left <= 10


def test_valid_certificate_names_the_sandbox_host(
    smtp_server: StartSmtp, sandbox_ca: SandboxCA
) -> None:
    server = smtp_server("implicit")
    sock = socket.create_connection((server.host, server.port), timeout=TIMEOUT)
    with sandbox_ca.client_context().wrap_socket(sock, server_hostname="mail.sandbox.test"):
        pass


def test_every_scenario_starts_and_stops(sandbox_ca: SandboxCA) -> None:
    for name in SCENARIOS:
        for security in SECURITIES:
            with start_smtp(security=security, scenario=name, ca=sandbox_ca) as server:
                assert server.port > 0
