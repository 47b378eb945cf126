"""The sandbox itself, driven by standard clients (smtplib, ssl, dnspython) over loopback."""

import base64
import datetime
import gc
import hashlib
import json
import logging
import math
import os
import re
import select
import signal
import smtplib
import socket
import ssl
import stat
import struct
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal
from urllib.parse import parse_qs

import dns.exception
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import dns.resolver
import msal
import pytest
import requests
from checkrun import run_check
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.serialization import pkcs12

from check_mailgw.sandbox.accounts import SANDBOX_PASSWORD, SANDBOX_USER
from check_mailgw.sandbox.check_commands import SandboxPorts, check_commands, oauth_args
from check_mailgw.sandbox.config_file import write_config
from check_mailgw.sandbox.m365.access_tokens import AccessTokens
from check_mailgw.sandbox.m365.app_credentials import AppCertificate
from check_mailgw.sandbox.m365.cloud import M365Sandbox, start_m365
from check_mailgw.sandbox.m365.tenant import (
    SANDBOX_CLIENT_ID,
    SANDBOX_CLIENT_SECRET,
    SANDBOX_MAILBOXES,
    SANDBOX_OPS_MAILBOX,
    SANDBOX_SECRET_KEY_ID,
    SANDBOX_TENANT_ID,
    SigningKey,
)
from check_mailgw.sandbox.mailgw_sandbox import READY_LINE, main
from check_mailgw.sandbox.plumbing.ca import SandboxCA
from check_mailgw.sandbox.plumbing.dns_server import DnsServer
from check_mailgw.sandbox.scenarios import PART_TITLES, SCENARIOS
from check_mailgw.sandbox.smtp import canned_replies
from check_mailgw.sandbox.smtp.listeners import Security, SmtpServer, start_smtp

TIMEOUT = 5.0
SECURITIES: tuple[Security, ...] = ("starttls", "implicit", "plain")
StartSmtp = Callable[..., SmtpServer]

PLAIN_CREDENTIALS = base64.b64encode(f"\0{SANDBOX_USER}\0{SANDBOX_PASSWORD}".encode()).decode()


class LineClient:
    """Test helper: speaks raw SMTP over a (TLS) socket, one CRLF line at a time."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._buffer = b""

    def send(self, text: str) -> None:
        self.sock.sendall(text.encode("ascii"))

    def line(self) -> str:
        while b"\r\n" not in self._buffer:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("closed by the server")
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\r\n")
        return line.decode("ascii")

    def reply(self) -> list[str]:
        """All lines of one (possibly multi-line) reply."""
        lines = [self.line()]
        while lines[-1][3:4] == "-":
            lines.append(self.line())
        return lines

    def last(self) -> str:
        return self.reply()[-1]


@contextmanager
def raw_client(
    server: SmtpServer, context: ssl.SSLContext | None = None, timeout: float = TIMEOUT
) -> Iterator[LineClient]:
    sock = socket.create_connection((server.host, server.port), timeout=timeout)
    try:
        if context is not None:
            sock = context.wrap_socket(sock, server_hostname=server.host)
        yield LineClient(sock)
    finally:
        sock.close()


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


def reply_text(code: int, message: bytes) -> str:
    return f"{code} {message.decode()}"


def no_errors_logged(caplog: pytest.LogCaptureFixture) -> bool:
    return not [record for record in caplog.records if record.levelno >= logging.ERROR]


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


# DNS


def resolver_for(server: DnsServer) -> dns.resolver.Resolver:
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = [server.host]
    resolver.port = server.port
    resolver.lifetime = 1.0
    return resolver


def test_dns_answers_a_and_aaaa(dns_server: DnsServer) -> None:
    resolver = resolver_for(dns_server)
    assert [r.address for r in resolver.resolve("mail.sandbox.test", "A")] == ["127.0.0.1"]
    assert [r.address for r in resolver.resolve("DUAL.sandbox.test", "AAAA")] == ["::1"]
    with pytest.raises(dns.resolver.NoAnswer):
        resolver.resolve("mail.sandbox.test", "AAAA")


def test_dns_unknown_name_is_nxdomain_with_soa(dns_server: DnsServer) -> None:
    with pytest.raises(dns.resolver.NXDOMAIN):
        resolver_for(dns_server).resolve("nope.sandbox.test", "A")
    query = dns.message.make_query("nope.sandbox.test", "A")
    response = dns.query.udp(query, dns_server.host, port=dns_server.port, timeout=1)
    assert response.rcode() == dns.rcode.NXDOMAIN
    assert response.authority[0].rdtype == dns.rdatatype.SOA


def test_dns_servfail_name(dns_server: DnsServer) -> None:
    query = dns.message.make_query("servfail.sandbox.test", "A")
    response = dns.query.udp(query, dns_server.host, port=dns_server.port, timeout=1)
    assert response.rcode() == dns.rcode.SERVFAIL
    with pytest.raises(dns.resolver.NoNameservers):
        resolver_for(dns_server).resolve("servfail.sandbox.test", "A")


def test_dns_timeout_name_gets_no_answer(dns_server: DnsServer) -> None:
    query = dns.message.make_query("timeout.sandbox.test", "A")
    with pytest.raises(dns.exception.Timeout):
        dns.query.udp(query, dns_server.host, port=dns_server.port, timeout=0.3)
    resolver = resolver_for(dns_server)
    resolver.lifetime = 0.5
    with pytest.raises(dns.resolver.LifetimeTimeout):
        resolver.resolve("timeout.sandbox.test", "A")


def test_dns_over_tcp_and_query_count(dns_server: DnsServer) -> None:
    query = dns.message.make_query("mail.sandbox.test", "A")
    response = dns.query.tcp(query, dns_server.host, port=dns_server.port, timeout=1)
    assert response.answer[0][0].address == "127.0.0.1"
    assert dns_server.queries == 1


# Command line


def test_list_scenarios_prints_every_name_with_its_description_under_its_part(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["--list-scenarios"]) == 0
    printed = capsys.readouterr().out
    for scenario in SCENARIOS.values():
        assert re.search(
            rf"^  {re.escape(scenario.name)} +{re.escape(scenario.description)}$", printed, re.M
        )
        title = PART_TITLES[scenario.part]
        assert printed.index(f"{title}:") < printed.index(f"  {scenario.name} ")


def test_check_commands_point_at_the_sandbox_files(tmp_path: Path) -> None:
    commands = check_commands(tmp_path, SandboxPorts.from_base(2500))
    assert [command[:2] for command in commands] == [
        *[["--mode", "smtp"]] * 4,
        ["--mode", "o365-smtp"],
        ["--mode", "graph"],
        ["--mode", "graph"],
    ]
    assert [command[command.index("-p") + 1] for command in commands[:5]] == [
        "2587",
        "2465",
        "2587",
        "2525",
        "2588",
    ]
    assert commands[2][commands[2].index("--dns-server") + 1] == "127.0.0.1:2553"
    for command in commands[:3]:
        assert command[command.index("--password-file") + 1] == str(tmp_path / "password")
        assert command[command.index("--ca-file") + 1] == str(tmp_path / "ca.pem")
    assert commands[1][commands[1].index("--tls") + 1] == "implicit"
    assert "--tls" not in commands[3]
    assert "--username" not in commands[3]
    for command in commands[4:]:
        assert command[command.index("--authority") + 1] == "https://127.0.0.1:2443"
        assert command[command.index("--graph-url") + 1] == "https://127.0.0.1:2443"
        assert command[command.index("--tenant-id") + 1] == SANDBOX_TENANT_ID
        assert command[command.index("--client-id") + 1] == SANDBOX_CLIENT_ID
        assert command[command.index("--from") + 1] == SANDBOX_USER
        assert command[command.index("--ca-file") + 1] == str(tmp_path / "ca.pem")
        assert "--tls" not in command
    for command in commands[4:6]:
        assert command[command.index("--client-secret-file") + 1] == str(
            tmp_path / "client-secret"
        )
        assert "--check" not in command
    assert "-H" not in commands[5]
    # The last one: a daily service on the credential expiry, signing in with the certificate.
    expiry = commands[6]
    assert expiry[expiry.index("--client-certificate") + 1] == str(
        tmp_path / "client-certificate.pem"
    )
    assert expiry[-2:] == ["--check", "expiry"]
    assert "--client-secret-file" not in expiry and "-H" not in expiry


def read_until(fd: int, marker: str, timeout: float) -> str:
    """Read a child's output until a line equals marker, without blocking past timeout."""
    deadline = time.monotonic() + timeout
    seen = b""
    while f"\n{marker}\n".encode() not in b"\n" + seen:
        remaining = deadline - time.monotonic()
        ready, _, _ = select.select([fd], [], [], max(0.0, remaining))
        chunk = os.read(fd, 65536) if ready else b""
        if not chunk:
            raise AssertionError(f"no {marker!r} within {timeout} s; got:\n{seen.decode()}")
        seen += chunk
    return seen.decode()


def test_sandbox_command_serves_until_sigterm(tmp_path: Path) -> None:
    config = tmp_path / "check_mailgw.toml"
    child = subprocess.Popen(
        [
            *(sys.executable, "-m", "check_mailgw.sandbox", "--port-base", "0"),
            *("--dir", str(tmp_path), "--write-config", str(config)),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert child.stdout is not None
    try:
        banner = read_until(child.stdout.fileno(), READY_LINE, timeout=15)
        # The config file points at the running sandbox: the plugin checks it through it.
        via_config = run_check("--config", config, "--profile", "smtp")
        child.send_signal(signal.SIGTERM)
        _, errors = child.communicate(timeout=10)
    finally:
        if child.poll() is None:
            child.kill()
            child.communicate()
    assert child.returncode == 0, errors
    assert b"Traceback" not in errors
    assert "check_mailgw --mode smtp -H 127.0.0.1" in banner
    assert "check_mailgw --mode o365-smtp -H 127.0.0.1" in banner
    assert "check_mailgw --mode graph --authority https://127.0.0.1:" in banner
    certificate_file = tmp_path / "client-certificate.pem"
    assert f"client certificate    {certificate_file}  (certificate and key; thumbprint " in banner
    assert f"--client-certificate {certificate_file} " in banner
    assert re.search(r"^  check_mailgw --mode graph .* --check expiry$", banner, re.M)
    assert f"check_mailgw --config {config} --profile smtp" in banner
    assert SANDBOX_TENANT_ID in banner and SANDBOX_CLIENT_ID in banner
    assert SANDBOX_PASSWORD not in banner
    assert SANDBOX_CLIENT_SECRET not in banner
    for name, secret in (("password", SANDBOX_PASSWORD), ("client-secret", SANDBOX_CLIENT_SECRET)):
        assert (tmp_path / name).read_text() == secret
        assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == 0o600
    assert (tmp_path / "ca.pem").read_text().startswith("-----BEGIN CERTIFICATE-----")
    pem = certificate_file.read_text()
    assert pem.startswith("-----BEGIN CERTIFICATE-----")
    assert "-----BEGIN PRIVATE KEY-----" in pem
    assert stat.S_IMODE(os.stat(certificate_file).st_mode) == 0o600
    # The banner names the certificate by the thumbprint of the file's certificate.
    thumbprint = x509.load_pem_x509_certificate(pem.encode()).fingerprint(hashes.SHA1())
    assert f"thumbprint {thumbprint.hex().upper()}, ends " in banner
    assert via_config.exit_code == 0, via_config.stdout + via_config.stderr
    assert via_config.first_line.startswith("MAILGW OK")
    assert SANDBOX_CLIENT_SECRET not in config.read_text()


def test_written_config_has_a_profile_per_mode_matching_the_command_lines(
    tmp_path: Path,
) -> None:
    ports = SandboxPorts.from_base(2500)
    config = write_config(tmp_path / "sandbox.toml", tmp_path, ports, ports)
    document = tomllib.loads(config.read_text())
    assert document["defaults"] == {"from": SANDBOX_USER, "ca_file": str(tmp_path / "ca.pem")}
    profiles = document["profiles"]
    assert list(profiles) == ["smtp", "o365-smtp", "graph", "sandbox-expiry"]
    assert profiles["smtp"] == {
        "mode": "smtp",
        "hostname": "127.0.0.1",
        "port": 2587,
        "tls": "starttls",
        "username": SANDBOX_USER,
        "password_file": str(tmp_path / "password"),
    }
    oauth = zip(
        ("o365-smtp", "graph", "sandbox-expiry"), check_commands(tmp_path, ports)[4:], strict=True
    )
    for mode, arguments in oauth:
        options = dict(zip(arguments[::2], arguments[1::2], strict=True))
        profile = {**document["defaults"], **profiles[mode]}
        for option, value in options.items():
            key = {"-H": "hostname", "-p": "port"}.get(option, option[2:].replace("-", "_"))
            assert str(profile.pop(key)) == value, option
        assert profile == {}


# Microsoft 365: identity provider, Graph and Exchange SMTP

StartM365 = Callable[..., M365Sandbox]
GUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
EXCHANGE_SCOPE = "https://outlook.office365.com/.default"
GRAPH_SCOPE = "https://graph.microsoft.com/.default"
EXCHANGE_TRAILER = (
    r"\[SN4PR0501CA0042\.namprd05\.prod\.outlook\.com "
    r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z 08DC1234567890AB\]"
)
AUTH_UNSUCCESSFUL = rf"535 5\.7\.3 Authentication unsuccessful {EXCHANGE_TRAILER}"


@pytest.fixture(scope="module")
def foreign_tokens() -> AccessTokens:
    """Tokens signed with a key the sandbox does not know."""
    return AccessTokens(SigningKey.generate())


@pytest.fixture
def https(ca_file: Path) -> Iterator[requests.Session]:
    """A requests session trusting only the sandbox CA, whatever the environment says."""
    with requests.Session() as session:
        # Without this, REQUESTS_CA_BUNDLE in the environment overrides verify.
        session.trust_env = False
        session.verify = str(ca_file)
        yield session


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


def xoauth2(user: str, token: str) -> str:
    return base64.b64encode(f"user={user}\x01auth=Bearer {token}\x01\x01".encode()).decode()


@contextmanager
def exchange_session(sandbox: M365Sandbox, ca: SandboxCA) -> Iterator[smtplib.SMTP]:
    """smtplib session with the Exchange listener, after STARTTLS and the second EHLO."""
    client = smtplib.SMTP(sandbox.smtp_host, sandbox.smtp_port, timeout=TIMEOUT)
    try:
        client.ehlo()
        client.starttls(context=ca.client_context())
        client.ehlo()
        yield client
    finally:
        client.close()


def xoauth2_login(client: smtplib.SMTP, user: str, token: str) -> str:
    """AUTH XOAUTH2 as Microsoft documents it: the blob after an empty 334 challenge."""
    code, challenge = client.docmd("AUTH", "XOAUTH2")
    assert (code, challenge) == (334, b"")
    return reply_text(*client.docmd(xoauth2(user, token)))


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

PROBE = f"From: {SANDBOX_USER}\r\nTo: alerts@example.com\r\nSubject: probe\r\n\r\nhello\r\n"


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


# Graph


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


# Exchange SMTP


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


# Starting and stopping a local Microsoft 365


def test_every_scenario_starts_and_stops_the_m365_listeners(
    sandbox_ca: SandboxCA, sandbox_signing_key: SigningKey
) -> None:
    for name in SCENARIOS:
        with start_m365(ca=sandbox_ca, scenario=name, signing_key=sandbox_signing_key) as sandbox:
            assert sandbox.https.port > 0 and sandbox.smtp_port > 0


def test_stopping_cuts_open_keep_alive_and_slow_requests_at_once(
    m365: StartM365, https: requests.Session, ca_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    sandbox = m365("token-slow")
    # A keep-alive connection, idle in the pool.
    assert https.get(f"{sandbox.authority}/{SANDBOX_TENANT_ID}/discovery/v2.0/keys").ok
    # And a token request the server is still sleeping on.
    context = ssl.create_default_context(cafile=str(ca_file))
    raw = context.wrap_socket(
        socket.create_connection((sandbox.smtp_host, sandbox.https.port), timeout=TIMEOUT),
        server_hostname=sandbox.smtp_host,
    )
    with raw:
        raw.sendall(
            f"POST /{SANDBOX_TENANT_ID}/oauth2/v2.0/token HTTP/1.1\r\nHost: x\r\n"
            "Content-Length: 0\r\n\r\n".encode()
        )
        time.sleep(0.2)
        started = time.monotonic()
        sandbox.stop()
        assert time.monotonic() - started < 1
        try:
            left = raw.recv(4096)
        except (ConnectionError, ssl.SSLError):
            left = b""
        assert left == b""
    gc.collect()
    assert no_errors_logged(caplog)


def test_oauth_args_point_the_plugin_at_a_running_sandbox(
    m365: StartM365, ca_file: Path, client_secret_file: Path
) -> None:
    sandbox = m365()
    arguments = oauth_args(sandbox, "o365-smtp", ca_file, client_secret_file)
    options = dict(zip(arguments[::2], arguments[1::2], strict=True))
    assert options == {
        "--mode": "o365-smtp",
        "-H": "127.0.0.1",
        "-p": str(sandbox.smtp_port),
        "--authority": sandbox.authority,
        "--graph-url": sandbox.graph_url,
        "--tenant-id": SANDBOX_TENANT_ID,
        "--client-id": SANDBOX_CLIENT_ID,
        "--client-secret-file": str(client_secret_file),
        "--from": SANDBOX_USER,
        "--ca-file": str(ca_file),
    }
    assert client_secret_file.read_text() == SANDBOX_CLIENT_SECRET
    assert stat.S_IMODE(os.stat(client_secret_file).st_mode) == 0o600
    graph = oauth_args(sandbox, "graph", ca_file, client_secret_file)
    assert "-H" not in graph and "-p" not in graph


# The app's credentials: certificate sign-in and the applications lookup

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


def test_demo_runs_every_printed_check_including_the_expiry_service(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Needs the plugin's --client-certificate and --check expiry.
    exit_code = main(["--port-base", "0", "--demo"])
    printed = capsys.readouterr().out
    assert re.search(
        r"^\$ check_mailgw --mode graph .* --client-certificate \S+/client-certificate\.pem "
        r".* --check expiry -v$",
        printed,
        re.M,
    )
    assert "7 of 7 checks exited 0." in printed, printed
    assert exit_code == 0
    assert SANDBOX_CLIENT_SECRET not in printed
    assert "PRIVATE KEY" not in printed
