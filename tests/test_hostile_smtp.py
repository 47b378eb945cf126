"""The SMTP side against hostile and non-Exchange servers.

Small servers scripted here send bytes no well-behaved server sends (NUL, escape sequences,
bytes that are not UTF-8, endless lines) or break TLS after the handshake; the sandbox plays a
Postfix with Dovecot's SASL that refuses tokens, a 421 to pipelined commands, Exchange's 430
4.2.0 and its refusals of tokens without roles. Each case runs the installed command and
checks what a user sees and what reached the server.
"""

from __future__ import annotations

import json
import os
import re
import socket
import socketserver
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from checkrun import CheckRun, run_check

from check_mailgw.sandbox.accounts import SANDBOX_USER
from check_mailgw.sandbox.check_commands import oauth_args
from check_mailgw.sandbox.plumbing.ca import SandboxCA
from check_mailgw.sandbox.smtp.listeners import start_smtp

OK, WARNING, CRITICAL, UNKNOWN = 0, 1, 2, 3
EHLO_OK = b"250-mail.hostile.test\r\n250 PIPELINING\r\n"
EHLO_PLAIN = b"250 mail.hostile.test\r\n"

# What no reply may carry to a reader: the client reads them, the output layer cleans them.
CONTROLS = b"NUL \x00 ESC \x1b[31mred\x1b[0m BEL \x07 C1 \x9b2J NEL \xc2\x85 CR \r in a line"
NOT_UTF8 = b"latin-1 \xe9t\xe9, stray \xff\xfe bytes"


# --- a server played by a script ------------------------------------------------------------


@dataclass
class Script:
    """What the server sends: a greeting, then a reply to each verb; None closes instead."""

    greeting: bytes
    replies: dict[str, bytes | None] = field(default_factory=dict)
    # Called with the connection after the greeting, instead of reading commands.
    after_greeting: Callable[[socket.socket], None] | None = None


class ScriptedServer:
    """A one-thread-per-connection TCP server on 127.0.0.1 that records every line it got."""

    def __init__(self, script: Script, tls: ssl.SSLContext | None = None) -> None:
        self.script = script
        self.received: list[bytes] = []
        self.batches: list[bytes] = []  # each read from the socket, to see pipelining
        server = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                server.play(self.request, tls)

        self._server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port: int = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def play(self, sock: socket.socket, tls: ssl.SSLContext | None) -> None:
        sock.settimeout(30)
        try:
            if tls:
                sock = tls.wrap_socket(sock, server_side=True)
            sock.sendall(self.script.greeting)
            if self.script.after_greeting:
                self.script.after_greeting(sock)
                return
            buffer = b""
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    return
                self.batches.append(chunk)
                buffer += chunk
                while b"\n" in buffer:
                    line, _, buffer = buffer.partition(b"\n")
                    self.received.append(line.rstrip(b"\r"))
                    verb = line.split(b" ", 1)[0].split(b":", 1)[0].strip().upper().decode()
                    reply = self.script.replies.get(verb, b"502 5.5.1 not here\r\n")
                    if reply is None or verb == "QUIT":
                        return
                    sock.sendall(reply)
                    if reply.startswith(b"421"):
                        return  # RFC 5321 3.8: a 421 ends the session
        except (OSError, ssl.SSLError):
            return
        finally:
            sock.close()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def scripted() -> Iterator[Callable[..., ScriptedServer]]:
    started: list[ScriptedServer] = []

    def start(script: Script, tls: ssl.SSLContext | None = None) -> ScriptedServer:
        server = ScriptedServer(script, tls)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def check(server: ScriptedServer, *options: object) -> CheckRun:
    return run_check("-H", "127.0.0.1", "-p", server.port, "--from", SANDBOX_USER, *options,
                     timeout=30)


def assert_no_crash(result: CheckRun) -> None:
    output = result.stdout + result.stderr
    assert "Traceback" not in output and "internal error" not in output, output


# --- hostile bytes ----------------------------------------------------------------------------


def test_control_characters_and_bad_bytes_in_replies_are_read_not_fatal(scripted) -> None:
    server = scripted(Script(
        greeting=b"220 mail.hostile.test " + CONTROLS + b" " + NOT_UTF8 + b"\r\n",
        replies={"EHLO": b"250-mail.hostile.test \xff\x00\r\n250-X-\x1b]0;title\x07\r\n"
                 b"250 PIPELINING\r\n",
                 "MAIL": b"550 5.7.1 refused " + CONTROLS + b" " + NOT_UTF8 + b"\r\n",
                 "RCPT": b"503 5.5.1 no MAIL\r\n", "RSET": b"250 ok\r\n"},
    ))
    result = check(server, "-vv")
    assert result.exit_code == CRITICAL, result.stdout
    assert result.first_line.startswith(
        f"MAILGW CRITICAL - envelope on 127.0.0.1:{server.port}: sender refused at MAIL FROM: "
        "550 5.7.1 refused NUL"), result.first_line
    assert_no_crash(result)
    # Bytes that are not UTF-8 are read as U+FFFD, never passed on as they came.
    assert "\udcff" not in result.stdout and "t\ufffd" in result.stdout, result.stdout
    assert f"MAIL FROM:<{SANDBOX_USER}>".encode() in server.received


def test_hostile_bytes_leave_valid_json(scripted) -> None:
    server = scripted(Script(
        greeting=b"220 " + CONTROLS + b"\r\n",
        replies={"EHLO": EHLO_OK, "MAIL": b"451 4.3.0 " + NOT_UTF8 + b" " + CONTROLS + b"\r\n",
                 "RCPT": b"503 5.5.1 no MAIL\r\n", "RSET": b"250 ok\r\n"},
    ))
    result = check(server, "--format", "json")
    assert result.exit_code == WARNING, result.stdout
    document = json.loads(result.stdout)
    envelope = next(step for step in document["steps"] if step["name"] == "envelope")
    assert envelope["state"] == "WARNING"
    assert envelope["reply"].startswith("451 4.3.0 latin-1 \ufffdt\ufffd"), envelope
    assert_no_crash(result)


def test_a_line_longer_than_the_limit_is_refused_in_plain_words(scripted) -> None:
    server = scripted(Script(greeting=b"220 mail.hostile.test\r\n",
                             replies={"EHLO": b"250-" + b"x" * 100_000 + b"\r\n250 OK\r\n"}))
    result = check(server, "-v")
    assert result.exit_code == CRITICAL, result.stdout
    assert re.search(r"^MAILGW CRITICAL - greeting on 127\.0\.0\.1:\d+: the reply to EHLO has "
                     r"a line longer than 8192 bytes: 250-xxx", result.first_line), result.stdout
    assert "fix: no SMTP server sends lines that long" in result.long_output
    assert len(result.stdout) < 4000  # the line itself is not passed on
    assert_no_crash(result)


def test_a_reply_of_many_long_lines_is_refused_at_its_size(scripted) -> None:
    many = b"".join(b"250-X-" + b"z" * 2000 + b"\r\n" for _ in range(100)) + b"250 OK\r\n"
    server = scripted(Script(greeting=b"220 mail.hostile.test\r\n", replies={"EHLO": many}))
    result = check(server, "-vv")
    assert result.exit_code == CRITICAL, result.stdout
    assert re.search(r"greeting on .*: the reply to EHLO is longer than 32768 bytes: "
                     r"250 X-zzz", result.first_line), result.stdout
    assert len(result.stdout) < 4000
    assert_no_crash(result)


def test_a_reply_without_line_ends_does_not_fill_memory(scripted) -> None:
    def endless_line(sock: socket.socket) -> None:
        sock.recv(1024)  # EHLO
        sock.sendall(b"250-")
        with_pause = b"y" * 65536
        for _ in range(200):  # 13 MB, unless the client leaves first
            sock.sendall(with_pause)

    server = scripted(Script(greeting=b"220 mail.hostile.test\r\n", after_greeting=endless_line))
    result = check(server, "-v")
    assert result.exit_code == CRITICAL, result.stdout
    assert "the reply to EHLO has a line longer than 8192 bytes" in result.first_line
    assert_no_crash(result)


def test_a_bare_lf_ends_a_line_and_what_follows_is_not_smtp(scripted) -> None:
    server = scripted(Script(greeting=b"220 mail.hostile.test\r\n",
                             replies={"EHLO": b"250-mail.hostile.test\nbroken\r\n250 OK\r\n"}))
    result = check(server, "-v")
    assert result.exit_code == CRITICAL, result.stdout
    assert re.search(r"greeting on .*: the server does not speak SMTP: broken$",
                     result.first_line), result.stdout
    assert_no_crash(result)


def test_a_greeting_that_trickles_ends_at_the_deadline(scripted) -> None:
    def trickle(sock: socket.socket) -> None:
        for _ in range(600):
            sock.sendall(b"x")
            time.sleep(0.1)

    server = scripted(Script(greeting=b"220-", after_greeting=trickle))
    started = time.monotonic()
    result = check(server, "-t", "2", "-v")
    assert time.monotonic() - started < 20  # generous: the point is that it did not hang
    assert result.exit_code == UNKNOWN, result.stdout
    assert re.search(r"greeting on .*: timed out after 2s \(-t\)", result.first_line)
    assert_no_crash(result)


def test_tls_that_breaks_after_the_handshake_is_critical(scripted, sandbox_ca) -> None:
    def garbage_record(sock: socket.socket) -> None:
        sock.recv(1024)  # EHLO, over TLS
        os.write(sock.fileno(), b"\x17\x03\x03\x00\x10" + b"\x00" * 16)  # not from this session
        time.sleep(1)

    server = scripted(Script(greeting=b"220 mail.hostile.test\r\n", after_greeting=garbage_record),
                      tls=sandbox_ca.server_context())
    result = check(server, "--tls", "implicit", "--ca-file", write_ca(sandbox_ca), "-v")
    assert result.exit_code == CRITICAL, result.stdout
    assert re.search(r"greeting on .*: TLS failed while waiting for the reply to EHLO: "
                     r"decryption failed or bad record mac$", result.first_line), result.stdout
    assert "_ssl.c" not in result.stdout
    assert_no_crash(result)


# --- 421 to pipelined and to single commands --------------------------------------------------


@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelined", "one-by-one"])
@pytest.mark.parametrize("verb", ["MAIL", "RCPT"])
def test_421_to_the_envelope_is_a_warning_with_the_servers_reply(scripted, pipelining,
                                                                  verb) -> None:
    busy = b"421 4.7.0 mail.hostile.test Error: too many connections\r\n"
    server = scripted(Script(
        greeting=b"220 mail.hostile.test\r\n",
        replies={"EHLO": EHLO_OK if pipelining else EHLO_PLAIN, "MAIL": b"250 2.1.0 Ok\r\n",
                 verb: busy},
    ))
    result = check(server, "-vv")
    assert result.exit_code == WARNING, result.stdout
    assert re.search(r"^MAILGW WARNING - envelope on .*: service not available, the server "
                     r"closes the session: 421 4\.7\.0 mail\.hostile\.test Error: too many",
                     result.first_line), result.stdout
    assert "fix: the gateway is overloaded" in result.long_output
    assert f"S: {busy.decode().strip()}" in result.long_output
    sent = [line.split(b":")[0] for line in server.received if not line.startswith(b"EHLO")]
    if pipelining:  # all three in one write; the server answered up to the 421 and left
        assert any(b"MAIL FROM" in batch and b"RCPT TO" in batch and b"RSET" in batch
                   for batch in server.batches), server.batches
    else:  # one by one, up to the 421
        assert sent == [b"MAIL FROM", b"RCPT TO"][:1 if verb == "MAIL" else 2], sent
    assert_no_crash(result)


def test_421_to_pipelined_mail_from_in_the_sandbox(smtp_server, ca_file, password_file) -> None:
    server = smtp_server("starttls", "busy-at-mail")
    result = run_check("-H", server.host, "-p", server.port, "--tls", "--from", SANDBOX_USER,
                       "-U", SANDBOX_USER, "--password-file", password_file,
                       "--ca-file", ca_file, "-vv")
    assert result.exit_code == WARNING, result.stdout
    assert re.search(r"envelope on .*: service not available, the server closes the session: "
                     r"421 4\.3\.2", result.first_line), result.stdout
    assert "pipelined" not in result.first_line
    assert "S: 421 4.3.2 Service not available" in result.long_output


def test_an_exchange_server_of_ones_own_is_not_exchange_online(scripted, tmp_path) -> None:
    server = scripted(Script(
        greeting=b"220 EXCH01.corp.example.com Microsoft ESMTP MAIL Service ready at Wed, "
                 b"2 Dec 2026 12:00:00 +0000\r\n",
        replies={"EHLO": b"250-EXCH01.corp.example.com Hello [127.0.0.1]\r\n250-PIPELINING\r\n"
                 b"250 AUTH LOGIN PLAIN\r\n",
                 "AUTH": b"235 2.7.0 Authentication successful\r\n",
                 "MAIL": b"250 2.1.0 Sender OK\r\n", "RCPT": b"250 2.1.5 Recipient OK\r\n",
                 "RSET": b"250 2.0.0 Resetting\r\n"},
    ))
    password = tmp_path / "password"
    password.write_text("a-password\n")
    password.chmod(0o600)
    result = check(server, "-U", SANDBOX_USER, "--password-file", password,
                   "--allow-cleartext-auth", "-v")
    assert result.exit_code == OK, result.stdout
    # No countdown to Microsoft's retirement of passwords, which is Exchange Online's.
    assert "server=Exchange Online" not in result.stdout
    assert "Microsoft disables SMTP AUTH" not in result.stdout
    assert any(line.startswith(b"AUTH PLAIN ") for line in server.received)


# --- TLS wording ------------------------------------------------------------------------------


def write_ca(ca: SandboxCA) -> Path:
    import tempfile

    return ca.write_ca(Path(tempfile.mkdtemp()) / "ca.pem")


def test_a_ca_file_that_does_not_sign_the_certificate_is_named(smtp_server, password_file,
                                                                tmp_path) -> None:
    server = smtp_server("starttls", "ok")
    other_ca = SandboxCA().write_ca(tmp_path / "other-ca.pem")
    result = run_check("-H", server.host, "-p", server.port, "--tls", "--from", SANDBOX_USER,
                       "-U", SANDBOX_USER, "--password-file", password_file,
                       "--ca-file", other_ca, "-v")
    assert result.exit_code == CRITICAL, result.stdout
    assert re.search(r"tls on .*: server certificate not trusted: unable to get local issuer "
                     r"certificate \(OpenSSL verify code 20\)$", result.first_line), result.stdout
    assert f"fix: the CA file {other_ca} (--ca-file) does not sign the server's certificate" \
        in result.long_output
    assert "give the CA with --ca-file" not in result.long_output


def test_a_server_that_wants_a_client_certificate_says_so(scripted, tmp_path) -> None:
    ca = SandboxCA()
    context = ca.server_context()
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_verify_locations(cadata=ca.ca_pem.decode())
    server = scripted(Script(greeting=b"220 mail.hostile.test\r\n"), tls=context)
    result = check(server, "--tls", "implicit", "--ca-file", ca.write_ca(tmp_path / "ca.pem"),
                   "-v")
    assert result.exit_code == CRITICAL, result.stdout
    # TLS 1.3 refuses the missing certificate after the handshake, at the first read.
    assert re.search(r"greeting on .*: TLS failed while waiting for the server's greeting: the "
                     r"server wants a client certificate$", result.first_line), result.stdout
    assert "fix: the server asks for a client certificate (mutual TLS)" in result.long_output
    assert "_ssl.c" not in result.stdout
    assert_no_crash(result)


# --- o365-smtp against a server that is not Exchange Online -----------------------------------


def o365_against(smtp_port: int, sandbox, ca_file, client_secret_file) -> list[str]:
    args = oauth_args(sandbox, "o365-smtp", ca_file, client_secret_file)
    port_at = args.index("-p") + 1
    args[args.index("-H") + 1], args[port_at] = "127.0.0.1", str(smtp_port)
    return args


def dialogue_of(result: CheckRun) -> list[str]:
    return [line.strip() for line in result.stdout.splitlines()
            if line.strip().startswith(("C: ", "S: "))]


def test_an_xoauth2_error_challenge_is_answered_and_ends_in_the_servers_535(
        m365, sandbox_ca, ca_file, client_secret_file) -> None:
    dovecot = start_smtp(security="starttls", scenario="dovecot-token-refused", ca=sandbox_ca)
    try:
        result = run_check(*o365_against(dovecot.port, m365("ok"), ca_file, client_secret_file),
                           "-vv")
    finally:
        dovecot.stop()
    assert result.exit_code == CRITICAL, result.stdout
    assert re.search(r"^MAILGW CRITICAL - auth on 127\.0\.0\.1:\d+: authentication refused: "
                     r"535 5\.7\.8 Error: authentication failed:$", result.first_line), \
        result.stdout
    assert re.search(r'auth\s+CRITICAL .*error_status=\{"status":"401","schemes":"bearer",'
                     r'"scope":"https://outlook\.office365\.com/\.default"\}', result.long_output)
    # The server got the empty line the error challenge asks for: it answers 535 to nothing else.
    lines = dialogue_of(result)
    answered = lines.index("C: (empty line)")
    assert lines[answered - 1].startswith("S: 334 ") and lines[answered + 1] == \
        "S: 535 5.7.8 Error: authentication failed:", result.stdout
    # Not Exchange Online, and a token is no password.
    assert "server=Exchange Online" not in result.stdout
    fix = next(line for line in result.long_output.splitlines() if "fix:" in line)
    assert "refused the app's token" in fix
    assert "password" not in fix.lower() and "username" not in fix.lower()
    assert_no_crash(result)


def test_an_error_challenge_is_in_the_json_too(m365, sandbox_ca, ca_file,
                                              client_secret_file) -> None:
    dovecot = start_smtp(security="starttls", scenario="dovecot-token-refused", ca=sandbox_ca)
    try:
        result = run_check(*o365_against(dovecot.port, m365("ok"), ca_file, client_secret_file),
                           "--format", "json")
    finally:
        dovecot.stop()
    document = json.loads(result.stdout)
    auth = next(step for step in document["steps"] if step["name"] == "auth")
    assert auth["state"] == "CRITICAL" and auth["reply"].startswith("535 5.7.8")
    assert json.loads(auth["facts"]["error_status"])["status"] == "401"
    greeting = next(step for step in document["steps"] if step["name"] == "greeting")
    assert "server" not in greeting["facts"]


# --- o365-smtp against Exchange Online --------------------------------------------------------


def test_an_ok_says_it_does_not_prove_the_send_as_right(m365, ca_file,
                                                         client_secret_file) -> None:
    sandbox = m365("ok")
    result = run_check(*oauth_args(sandbox, "o365-smtp", ca_file, client_secret_file), "-v")
    assert result.exit_code == OK, result.stdout
    assert re.search(r"envelope\s+OK .*note=this OK proves AUTH and MAIL/RCPT, not the right to "
                     r"send as From: Exchange checks it only at the end of DATA; run a daily "
                     r"service with --send-to to prove it", result.long_output), result.stdout
    assert "server=Exchange Online" in result.long_output


def test_a_sent_message_needs_no_such_note(m365, ca_file, client_secret_file) -> None:
    sandbox = m365("ok")
    result = run_check(*oauth_args(sandbox, "o365-smtp", ca_file, client_secret_file),
                       "--send-to", "ops@sandbox.test", "-v")
    assert result.exit_code == OK, result.stdout
    assert "not the right to send as From" not in result.stdout
    assert len(sandbox.smtp_messages) == 1


@pytest.mark.parametrize(("scenario", "options", "first_line"), [
    ("no-roles-refused", (), r"auth on .*: authentication refused \(token has no roles: "
     r"SMTP\.SendAsApp unconsented, or no RBAC role\): 535 5\.7\.3"),
    ("no-roles-send-as-denied", ("--send-to", "ops@sandbox.test"),
     r"send on .*: test message refused \(token has no roles: SMTP\.SendAsApp unconsented, or "
     r"no RBAC role\): 554 5\.2\.252"),
], ids=["at-auth", "at-end-of-data"])
def test_a_refusal_of_a_token_without_roles_names_the_likely_cause(
        scenario, options, first_line, m365, ca_file, client_secret_file) -> None:
    sandbox = m365(scenario)
    result = run_check(*oauth_args(sandbox, "o365-smtp", ca_file, client_secret_file), *options,
                       "-v")
    assert result.exit_code == CRITICAL, result.stdout
    assert re.search(first_line, result.first_line), result.stdout
    assert "..." not in result.first_line.split("(token has no roles")[1].split(")")[0]
    assert re.search(r"fix: the token carries no roles: grant SMTP\.SendAsApp with admin "
                     r"consent and register the app in Exchange with New-ServicePrincipal, or "
                     r"assign it the role Application SMTP\.SendAsApp in Exchange RBAC for "
                     r"Applications", result.long_output), result.stdout
    assert "roles=none" in result.long_output
    assert not sandbox.smtp_messages


def test_a_token_with_roles_is_refused_without_that_cause(m365, ca_file,
                                                            client_secret_file) -> None:
    sandbox = m365("sp-not-registered")
    result = run_check(*oauth_args(sandbox, "o365-smtp", ca_file, client_secret_file), "-v")
    assert result.exit_code == CRITICAL, result.stdout
    assert "no roles" not in result.stdout


# --- 430 4.2.0 wherever it comes --------------------------------------------------------------


def test_430_at_mail_from_is_critical(m365, ca_file, client_secret_file) -> None:
    sandbox = m365("mailbox-logon-failure-mail")
    result = run_check(*oauth_args(sandbox, "o365-smtp", ca_file, client_secret_file), "-vv")
    assert result.exit_code == CRITICAL, result.stdout
    assert re.search(r"envelope on .*: sender refused at MAIL FROM \(Exchange could not open the "
                     r"mailbox \(mailbox logon failure\)\): 430 4\.2\.0", result.first_line)
    assert "fix: the app lacks FullAccess" in result.long_output
    assert "S: 430 4.2.0 STOREDRV; mailbox logon failure" in result.long_output


def test_430_after_a_password_login_is_critical_too(m365, ca_file, password_file) -> None:
    sandbox = m365("mailbox-logon-failure")
    result = run_check("-H", sandbox.smtp_host, "-p", sandbox.smtp_port, "--tls",
                       "--from", SANDBOX_USER, "-U", SANDBOX_USER, "--password-file",
                       password_file, "--ca-file", ca_file, "--send-to", "ops@sandbox.test",
                       "-v")
    assert result.exit_code == CRITICAL, result.stdout
    assert re.search(r"send on .*: test message refused \(Exchange could not open the mailbox "
                     r"\(mailbox logon failure\)\): 430 4\.2\.0", result.first_line)
    assert "fix: Exchange cannot open the sending mailbox" in result.long_output
    assert not sandbox.smtp_messages


# --- the helper the HTTPS side shares ---------------------------------------------------------


@pytest.mark.parametrize(("text", "words"), [
    ("HTTPSConnectionPool(host='login.example', port=443): Max retries exceeded with url: /t "
     "(Caused by SSLError(SSLCertVerificationError(1, '[SSL: CERTIFICATE_VERIFY_FAILED] "
     "certificate verify failed: unable to get local issuer certificate (_ssl.c:992)')))",
     "certificate verify failed: unable to get local issuer certificate "
     "(CERTIFICATE_VERIFY_FAILED)"),
    ("[SSL: WRONG_VERSION_NUMBER] wrong version number (_ssl.c:1000)", "wrong version number"),
    ("EOF occurred in violation of protocol (_ssl.c:2426)",
     "EOF occurred in violation of protocol"),
    ("[X509: NO_CERTIFICATE_OR_CRL_FOUND] no certificate or crl found (_ssl.c:4154)",
     "no certificate or crl found"),
])
def test_ssl_reasons_are_whole_without_the_source_position(text: str, words: str) -> None:
    from check_mailgw.net.tls import ssl_reason

    assert ssl_reason(text) == words
