"""The smtp mode against the sandbox's servers: one case per way a gateway breaks.

Each case is named by the state it expects first; it gives the server's security and
scenario, the options beyond the usual ones, and what a user must see.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from checkrun import run_check

from check_mailgw.sandbox.accounts import SANDBOX_USER

OK, WARNING, CRITICAL, UNKNOWN = 0, 1, 2, 3


@dataclass(frozen=True)
class Case:
    name: str
    security: str
    scenario: str
    options: tuple[str, ...]
    exit_code: int
    first_line: str  # regex, searched in the first line
    long_output: str = ""  # regex, searched in the -v output
    perfdata: frozenset[str] = field(default_factory=frozenset)  # labels that must be there
    login: bool = True


def perf(*labels: str) -> frozenset[str]:
    return frozenset(labels)


SESSION = perf("connect_time", "greeting_time", "tls_time", "total_time", "cert_days")

CASES = [
    Case("ok-starttls-auth-envelope", "starttls", "ok", ("--tls",), OK,
         r"^MAILGW OK - smtp 127\.0\.0\.1:\d+: STARTTLS TLSv1\.[23], AUTH PLAIN as "
         r"monitor@sandbox\.test, MAIL/RCPT accepted, nothing sent in [\d.]+s$",
         r"envelope\s+OK .*mail_from=250", SESSION | perf("auth_time", "envelope_time")),
    Case("ok-implicit-tls-port-465-style", "implicit", "ok", ("--tls", "implicit"), OK,
         r"^MAILGW OK - .*implicit TLS TLSv1\.[23], AUTH PLAIN", r"tls\s+OK .*cert_days=\d+",
         SESSION | perf("auth_time")),
    Case("ok-plain-relay-without-auth", "plain", "ok", (), OK,
         r"^MAILGW OK - smtp 127\.0\.0\.1:\d+: MAIL/RCPT accepted, nothing sent",
         perfdata=perf("connect_time", "greeting_time", "envelope_time"), login=False),
    Case("crit-tls-handshake-failure", "starttls", "tls-handshake-failure", ("--tls",), CRITICAL,
         r"^MAILGW CRITICAL - tls on 127\.0\.0\.1:\d+: TLS handshake failed \(STARTTLS\)",
         r"fix: ", perf("connect_time", "greeting_time", "tls_time")),
    Case("crit-implicit-tls-on-a-plaintext-port", "plain", "ok", ("--tls", "implicit"),
         CRITICAL, r"TLS handshake failed \(implicit TLS\): the server did not answer with TLS "
         r"\(WRONG_VERSION_NUMBER\)",
         r"fix: .*--tls starttls"),
    Case("crit-certificate-expired", "starttls", "cert-expired", ("--tls",), CRITICAL,
         r"tls on .*: server certificate expired: certificate has expired",
         r"fix: renew the server's certificate"),
    Case("crit-certificate-for-another-host", "starttls", "cert-wrong-host", ("--tls",),
         CRITICAL, r"server certificate is not valid for 127\.0\.0\.1: .*mismatch",
         r"fix: connect with the name the certificate was issued for"),
    Case("warn-certificate-expires-in-9-days", "starttls", "cert-expiring", ("--tls",), WARNING,
         r"^MAILGW WARNING - server certificate expires in 9 days \(warning below 14",
         r"fix: renew the server's certificate", SESSION),
    Case("crit-certificate-within-D-critical-days", "starttls", "cert-expiring",
         ("--tls", "-D", "30,10"), CRITICAL,
         r"^MAILGW CRITICAL - server certificate expires in 9 days \(warning below 30, "
         r"critical below 10\)"),
    Case("crit-starttls-not-offered-downgrade", "starttls", "no-starttls", ("--tls",), CRITICAL,
         r"tls on .*: STARTTLS not offered: TLS requested, refusing to go on in clear",
         r"fix: .*enable STARTTLS", perf("connect_time", "greeting_time", "tls_time")),
    Case("crit-auth-not-offered", "starttls", "no-auth", ("--tls",), CRITICAL,
         r"auth on .*: AUTH not offered: no AUTH in the EHLO reply",
         r"fix: the server offers no password login"),
    Case("crit-auth-530-5.7.0-starttls-first", "plain", "starttls-required",
         ("--allow-cleartext-auth",), CRITICAL,
         r"auth on .*: authentication refused: TLS required: 530 5\.7\.0 Must issue a "
         r"STARTTLS command first", r"fix: .*add --tls"),
    Case("crit-auth-535-5.7.139-smtp-auth-disabled", "starttls", "auth-disabled", ("--tls",),
         CRITICAL, r"authentication refused \(SMTP AUTH is disabled for the tenant or the "
         r"mailbox\): 535 5\.7\.139 ",
         # The server's whole reply is longer than a first line: -v has it.
         r"535 5\.7\.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for "
         r"the Tenant(?s:.*)fix: .*Set-CASMailbox .*SmtpClientAuthenticationDisabled"),
    Case("crit-auth-550-5.7.30-basic-auth-retired-exchange", "starttls", "basic-auth-retired",
         ("--tls",), CRITICAL, r"\): 550 5\.7\.30 ",
         r"550 5\.7\.30 Basic authentication is not supported for Client Submission(?s:.*)"
         r"fix: Microsoft is retiring basic authentication .*--mode o365-smtp.*--mode graph"),
    Case("crit-sender-refused-at-mail-from", "starttls", "ok",
         ("--tls", "--from", "stranger@elsewhere.test"), CRITICAL,
         r"envelope on .*: sender refused at MAIL FROM: 553 5\.7\.1 "
         r"<stranger@elsewhere\.test>: Sender address rejected",
         r"fix: the account may not send as the From address"),
    Case("crit-recipient-refused-at-rcpt-to", "starttls", "ok",
         ("--tls", "--send-to", "nobody@nowhere.invalid"), CRITICAL,
         r"send on .*: recipient refused at RCPT TO: 550 5\.1\.1 <nobody@nowhere\.invalid>",
         r"fix: check the recipient address", SESSION | perf("auth_time", "send_time")),
    Case("warn-421-service-not-available", "starttls", "busy", ("--tls",), WARNING,
         r"greeting on .*: service not available, the server closes the session: 421 4\.3\.2",
         r"fix: the gateway is overloaded", perf("connect_time", "greeting_time")),
    Case("warn-451-temporary-failure", "starttls", "tempfail", ("--tls",), WARNING,
         r"envelope on .*: temporary failure: sender refused at MAIL FROM: 451 4\.7\.500 "
         r"Server busy", r"fix: the server asks to retry later"),
    Case("crit-server-closes-mid-session", "starttls", "drop-mid-session", ("--tls",), CRITICAL,
         r"auth on .*: the server closed the connection: no reply while waiting for the "
         r"reply to AUTH", r"fix: the server dropped the session"),
    Case("crit-greeting-554-not-220", "starttls", "bad-greeting", ("--tls",), CRITICAL,
         r"greeting on .*: server refused the session: 554 5\.3\.2 mail\.sandbox\.test No SMTP "
         r"service here", r"fix: this server does not accept SMTP from this client"),
    Case("crit-greeting-not-smtp-at-all", "starttls", "not-smtp", ("--tls",), CRITICAL,
         r"greeting on .*: the server does not speak SMTP: SSH-2\.0-OpenSSH",
         r"fix: another service listens on this port"),
    Case("unknown-timeout-waiting-for-greeting", "starttls", "silent", ("--tls", "-t", "2"),
         UNKNOWN, r"^MAILGW UNKNOWN - greeting on .*: timed out after 2s \(-t\) waiting for "
         r"the server's greeting", r"fix: .*if this port expects implicit TLS .*--tls implicit",
         perf("connect_time", "greeting_time", "total_time")),
    Case("unknown-timeout-mid-auth", "starttls", "slow-auth", ("--tls", "-t", "2"), UNKNOWN,
         r"auth on .*: timed out after 2s \(-t\) waiting for the reply to AUTH",
         perfdata=SESSION | perf("auth_time")),
    Case("crit-timeout-state-critical", "starttls", "silent",
         ("--tls", "-t", "1", "--timeout-state", "critical"), CRITICAL,
         r"^MAILGW CRITICAL - greeting on .*: timed out after 1s"),
    Case("crit-connect-timeout-syn-unanswered", "starttls", "blackhole", ("--tls", "-t", "3"),
         CRITICAL, r"connect on .*: connection timed out: 127\.0\.0\.1:\d+ timed out after",
         r"fix: no answer to the TCP handshake", perf("connect_time", "total_time")),
    Case("crit-reply-that-never-ends", "plain", "endless-reply", (), CRITICAL,
         r"^MAILGW CRITICAL - greeting on 127\.0\.0\.1:\d+: the reply to EHLO did not end "
         r"after 200 lines: 250 mail\.sandbox\.test$",
         r"fix: no SMTP server sends a reply that long", perf("connect_time", "greeting_time"),
         login=False),
    Case("crit-reply-that-never-ends-behind-tls", "implicit", "endless-reply",
         ("--tls", "implicit"), CRITICAL,
         r"^MAILGW CRITICAL - greeting on .*: the reply to EHLO did not end after 200 lines: "
         r"250 mail\.sandbox\.test$", perfdata=perf("connect_time", "tls_time", "greeting_time"),
         login=False),
    Case("ok-replies-of-a-code-alone", "plain", "terse-replies", (), OK,
         r"^MAILGW OK - smtp 127\.0\.0\.1:\d+: MAIL/RCPT accepted, nothing sent",
         r"greeting\s+OK .*banner=220\n.*envelope\s+OK .*mail_from=250; rcpt_to=250(;|\n|$)",
         perf("connect_time", "greeting_time", "envelope_time"),
         login=False),
    Case("crit-auth-mechanism-not-offered", "starttls", "login-only", ("--tls", "-A", "PLAIN"),
         CRITICAL, r"auth on .*: the server does not offer AUTH PLAIN \(it offers LOGIN\)$",
         r"fix: use -A LOGIN, or leave -A out to take what the server offers",
         SESSION | perf("auth_time")),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_scenario(case: Case, smtp_server, ca_file: Path, password_file: Path) -> None:
    server = smtp_server(case.security, case.scenario)
    args = ["-H", server.host, "-p", server.port, "--from", SANDBOX_USER, "--ca-file", ca_file]
    if case.login:
        args += ["--username", SANDBOX_USER, "--password-file", password_file]
    result = run_check(*args, *case.options, "-v")

    assert result.exit_code == case.exit_code, result.stdout
    assert re.search(case.first_line, result.first_line), result.first_line
    assert re.search(case.long_output, result.long_output), result.stdout
    assert case.perfdata <= set(result.perfdata), result.perfdata
    assert "total_time" in result.perfdata
    assert "Traceback" not in result.stdout + result.stderr


def test_wrong_password_is_535_with_the_servers_words(smtp_server, ca_file, tmp_path) -> None:
    server = smtp_server("starttls", "ok")
    wrong = tmp_path / "password"
    wrong.write_text("not-the-password\n")
    result = run_check("-H", server.host, "-p", server.port, "--tls", "--from", SANDBOX_USER,
                       "-U", SANDBOX_USER, "--password-file", wrong, "--ca-file", ca_file, "-v")
    assert result.exit_code == CRITICAL
    assert re.search(r"auth on .*: authentication refused: 535 5\.7\.8 Authentication "
                     r"credentials invalid", result.first_line)
    assert "fix: check the Username and Password" in result.long_output
    assert {"auth_time", "tls_time", "cert_days"} <= set(result.perfdata)


def test_untrusted_certificate_without_the_ca(smtp_server, password_file) -> None:
    server = smtp_server("starttls", "ok")
    result = run_check("-H", server.host, "-p", server.port, "--tls", "--from", SANDBOX_USER,
                       "-U", SANDBOX_USER, "--password-file", password_file, "-v")
    assert result.exit_code == CRITICAL
    assert re.search(r"tls on .*: server certificate not trusted: .*(unable to get local "
                     r"issuer certificate|self.signed)", result.first_line)
    assert "fix: the chain does not lead to a trusted CA: give the CA with --ca-file" in \
        result.long_output


def test_insecure_skips_verification_but_still_reads_expiry(smtp_server, password_file) -> None:
    server = smtp_server("starttls", "cert-expiring")
    result = run_check("-H", server.host, "-p", server.port, "--tls", "--from", SANDBOX_USER,
                       "-U", SANDBOX_USER, "--password-file", password_file, "--insecure", "-v")
    assert result.exit_code == WARNING, result.stdout
    assert "verification=off (--insecure)" in result.long_output
    assert result.value("cert_days") == 9


def test_connection_refused(ca_file) -> None:
    import socket

    with socket.socket() as probe:  # a port that was just free, so nothing listens on it
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = run_check("-H", "127.0.0.1", "-p", port, "--from", SANDBOX_USER, "-v")
    assert result.exit_code == CRITICAL
    assert re.search(rf"connect on 127\.0\.0\.1:{port}: connection refused: "
                     rf"127\.0\.0\.1:{port} refused", result.first_line)
    assert "fix: nothing listens on that port" in result.long_output
    assert {"connect_time", "total_time"} <= set(result.perfdata)


def test_the_run_never_outlives_its_timeout(smtp_server, ca_file, password_file) -> None:
    server = smtp_server("starttls", "slow-auth")
    # The server would keep AUTH waiting for a minute; -t 1 must end the run first.
    result = run_check("-H", server.host, "-p", server.port, "--tls", "--from", SANDBOX_USER,
                       "-U", SANDBOX_USER, "--password-file", password_file,
                       "--ca-file", ca_file, "-t", "1", timeout=15)
    assert result.exit_code == UNKNOWN
    assert "auth on" in result.first_line and "timed out after 1s (-t)" in result.first_line


def dialogue_of(result) -> list[str]:
    """The protocol lines of the -vv output, as sent (C:) and received (S:)."""
    return [line.strip() for line in result.stdout.splitlines()
            if line.strip().startswith(("C: ", "S: "))]


def test_a_reply_that_never_ends_stops_the_chain_where_it_came(smtp_server) -> None:
    server = smtp_server("plain", "endless-reply")
    result = run_check("-H", server.host, "-p", server.port, "--from", SANDBOX_USER, "-vv")
    assert result.exit_code == CRITICAL, result.stdout
    # Cut off at the limit, and not read on as replies to later commands: nothing follows.
    assert dialogue_of(result) == [
        "S: 220 mail.sandbox.test ESMTP check_mailgw sandbox",
        "C: EHLO " + dialogue_of(result)[1].split(" ", 2)[2],
        "S: 250 mail.sandbox.test ... (200 lines, no last one)",
    ]
    assert not re.search(r"^envelope", result.long_output, re.MULTILINE)
    assert "envelope_time" not in result.perfdata


def test_without_pipelining_quit_ends_the_transaction_without_rset(smtp_server) -> None:
    server = smtp_server("plain", "no-pipelining")
    result = run_check("-H", server.host, "-p", server.port, "--from", SANDBOX_USER, "-vv")
    assert result.exit_code == OK, result.stdout
    assert "pipelined=False" in result.long_output
    # One reply waited for per command, and no RSET: QUIT (not waited for) ends it.
    assert dialogue_of(result)[-4:] == [
        f"C: MAIL FROM:<{SANDBOX_USER}>", "S: 250 2.1.0 Ok",
        f"C: RCPT TO:<{SANDBOX_USER}>", "S: 250 2.1.5 Ok",
    ]
    assert "RSET" not in result.stdout


def test_with_pipelining_rset_rides_in_the_same_batch(smtp_server) -> None:
    server = smtp_server("plain", "ok")
    result = run_check("-H", server.host, "-p", server.port, "--from", SANDBOX_USER, "-vv")
    assert result.exit_code == OK, result.stdout
    assert "pipelined=True" in result.long_output
    assert dialogue_of(result)[-6:] == [
        f"C: MAIL FROM:<{SANDBOX_USER}>", f"C: RCPT TO:<{SANDBOX_USER}>", "C: RSET",
        "S: 250 2.1.0 Ok", "S: 250 2.1.5 Ok", "S: 250 2.0.0 Ok",
    ]


def test_without_pipelining_a_refused_sender_ends_the_envelope(smtp_server) -> None:
    server = smtp_server("plain", "no-pipelining")
    result = run_check("-H", server.host, "-p", server.port, "--from", "stranger@elsewhere.test",
                       "-vv")
    assert result.exit_code == CRITICAL, result.stdout
    assert re.search(r"envelope on .*: sender refused at MAIL FROM: 553 5\.7\.1 "
                     r"<stranger@elsewhere\.test>", result.first_line)
    # RCPT would only be refused in turn: the envelope ends at the first refusal.
    assert dialogue_of(result)[-2:] == [
        "C: MAIL FROM:<stranger@elsewhere.test>",
        "S: 553 5.7.1 <stranger@elsewhere.test>: Sender address rejected: not owned by this "
        "relay",
    ]


def test_auth_mechanism_chosen_with_A(smtp_server, ca_file, password_file) -> None:
    server = smtp_server("starttls", "ok")  # offers PLAIN and LOGIN; PLAIN is the default
    result = run_check("-H", server.host, "-p", server.port, "--tls", "--from", SANDBOX_USER,
                       "-U", SANDBOX_USER, "--password-file", password_file,
                       "--ca-file", ca_file, "-A", "login", "-vv")
    assert result.exit_code == OK, result.stdout
    assert "AUTH LOGIN as monitor@sandbox.test" in result.first_line
    assert any(line.startswith("C: AUTH LOGIN ") for line in dialogue_of(result))
    assert not any(line.startswith("C: AUTH PLAIN") for line in dialogue_of(result))
